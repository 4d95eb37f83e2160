//! Real DRBD in QEMU guests: the host kernel has no DRBD module, Debian's kernel ships
//! `drbd.ko` 8.4.11, so the real-DRBD tier boots two small guests from it (see
//! `../shared/DRBD-VM.md`, and `tests/vm/build-guest.sh`, which builds the guest once and caches
//! it under `target/vm/`).
//!
//! A [`Guest`] is one QEMU process (TCG, `nice -n 19`) with:
//! - a sparse file as its virtio disk (`/dev/vda` inside), kept across [`Guest::power_off`] and
//!   [`Guest::boot`], so a killed guest comes back with its data;
//! - one virtio NIC whose frames go over UDP on 127.0.0.1 straight to the peer's QEMU: nothing
//!   is created in any network namespace, and a restarted guest finds the link again;
//! - a virtio-serial control channel served by the guest's `/init`: [`Guest::run`] sends a
//!   script and gets its exit code and output back (no ssh, no console scraping);
//! - an HMP monitor socket, for [`Guest::cut_link`] / [`Guest::restore_link`];
//! - a read-only 9p share of a host directory on `/share` (resource files, built binaries);
//!   `/init` links every `/share/*.res` into `/etc/drbd.d/`.
//!
//! Cleanup: sockets, disk and console log live in the guest's own [`tempfile::TempDir`]; `Drop`
//! SIGKILLs the QEMU pid it started and reaps it. QEMU is also started with
//! `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the thread that booted it if the test process
//! is killed without running destructors: boot guests from the test's own thread.
//!
//! [`Pair`] boots two guests, `alpha` (198.18.3.1) and `beta` (198.18.3.2), in parallel with a
//! DRBD resource `r0` on `/dev/vda` of each.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::cache;
use super::host::Host;

/// Default time limit of [`Guest::run`]: generous, TCG is slow and the host has two cores.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a guest may take from QEMU's start to an answer on the control channel
/// (10–12 s when the host is idle).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Size of each guest's DRBD backing disk.
pub const DISK_MIB: u64 = 64;

/// Which DRBD kernel module a guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drbd {
    /// 8.4.11, the module in Debian 12's kernel.
    V84,
    /// LINBIT's DRBD 9 (9.2.18), built from `vendor/drbd/` against the kernel's headers.
    V9,
}

impl Drbd {
    /// The version argument of `build-guest.sh`, also the fixture directory's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Drbd::V84 => "8.4",
            Drbd::V9 => "9",
        }
    }

    /// What `/proc/drbd`'s first line starts with on this module.
    pub fn proc_version_prefix(self) -> &'static str {
        match self {
            Drbd::V84 => "version: 8.4.",
            Drbd::V9 => "version: 9.2.",
        }
    }
}

/// The kernel and initramfs built by `tests/vm/build-guest.sh`.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// `vmlinuz` of Debian's kernel.
    pub kernel: PathBuf,
    /// The root filesystem as a zstd cpio initramfs.
    pub initrd: PathBuf,
}

/// Build (or reuse from `target/vm/`) the guest image running `drbd`, once per test process.
/// Panics with the script's output when the build fails (not root, no network, missing host
/// packages).
pub fn guest_image(drbd: Drbd) -> &'static GuestImage {
    static IMAGES: [OnceLock<GuestImage>; 2] = [OnceLock::new(), OnceLock::new()];
    IMAGES[drbd as usize].get_or_init(|| {
        let dir = cache::build(
            "tests/vm/build-guest.sh",
            "target/vm",
            &[drbd.as_str()],
            "qemu-system-x86 debootstrap cpio zstd kmod (DRBD 9: linux-headers coccinelle)",
        );
        let image = GuestImage {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("rootfs.cpio.zst"),
        };
        assert!(
            image.kernel.is_file() && image.initrd.is_file(),
            "build-guest.sh printed {dir:?}, which has no vmlinuz and rootfs.cpio.zst"
        );
        image
    })
}

/// Which binaries a guest needs on the host (checked before the first boot).
fn check_host_tools() {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "qemu-system-x86_64 not found: apt-get install qemu-system-x86"
    );
}

/// What a guest's one NIC is plugged into.
#[derive(Debug, Clone)]
pub enum Link {
    /// Frames over UDP on 127.0.0.1 straight to the peer's QEMU (two guests, nobody else).
    Udp {
        /// UDP port on 127.0.0.1 this guest's QEMU receives link frames on.
        port: u16,
        /// UDP port on 127.0.0.1 of the peer's QEMU.
        peer_port: u16,
    },
    /// A persistent tap device in the network namespace of the process `netns_pid` (QEMU is
    /// started in that namespace): see [`VmLan`].
    Tap {
        /// A process of the namespace (the [`VmLan`]'s anchor).
        netns_pid: u32,
        /// The tap's name there.
        ifname: String,
    },
}

/// How a guest is wired: its name (also hostname), address, link, and extra serial ports.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// Hostname inside the guest (DRBD's `on <name>` sections match it).
    pub name: String,
    /// Address with prefix on `eth0`, e.g. `198.18.3.1/24`.
    pub ipaddr: String,
    /// MAC of `eth0`.
    pub mac: String,
    /// Where the NIC goes.
    pub link: Link,
    /// Extra virtio-serial ports besides `ctl`, by name: `/dev/virtio-ports/NAME` in the
    /// guest, the socket [`Guest::port_path`] on the host (QEMU listens; connect to it).
    pub ports: Vec<String>,
    /// Size of the sparse disk (`/dev/vda`) in MiB.
    pub disk_mib: u64,
    /// What the disk holds at first (copied, then grown to `disk_mib`); zeros without.
    pub disk_image: Option<PathBuf>,
    /// Host directory shared read-only as `/share`.
    pub share: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// The DRBD module it boots with.
    pub drbd: Drbd,
}

/// What a script run in the guest returned.
#[derive(Debug, Clone)]
pub struct Exec {
    /// Exit code (137 when the guest-side time limit killed it).
    pub code: i32,
    /// Standard output, verbatim.
    pub stdout: String,
    /// Standard error, verbatim.
    pub stderr: String,
}

/// The control channel's host end and the bytes read past the last answer.
struct Ctl {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// One QEMU guest; see the module docs.
pub struct Guest {
    config: GuestConfig,
    dir: tempfile::TempDir,
    qemu: Mutex<Option<Child>>,
    ctl: Mutex<Option<Ctl>>,
}

static NONCE: AtomicU64 = AtomicU64::new(1);

impl Guest {
    /// A guest with a fresh sparse disk of `config.disk_mib` MiB, not started yet: call
    /// [`Guest::spawn`] then [`Guest::wait_ready`], or [`Guest::boot`].
    pub fn new(config: GuestConfig) -> Guest {
        check_host_tools();
        let dir = tempfile::Builder::new()
            .prefix(&format!("ferroha-vm-{}-", config.name))
            .tempdir()
            .expect("temp dir for a guest");
        let disk = dir.path().join("disk.img");
        if let Some(image) = &config.disk_image {
            let out = Command::new("cp")
                .arg("--sparse=always")
                .arg(image)
                .arg(&disk)
                .output()
                .expect("cp");
            assert!(out.status.success(), "copying {}: {out:?}", image.display());
        }
        fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&disk)
            .and_then(|f| f.set_len(config.disk_mib << 20))
            .expect("sparse disk file");
        Guest {
            config,
            dir,
            qemu: Mutex::new(None),
            ctl: Mutex::new(None),
        }
    }

    /// The guest's name (and hostname).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The address on `eth0`, without prefix length.
    pub fn ip(&self) -> &str {
        self.config.ipaddr.split('/').next().unwrap_or_default()
    }

    /// QEMU's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.qemu.lock().unwrap().as_ref().map(Child::id)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The host end of the extra serial port `name` (a Unix socket QEMU listens on while the
    /// guest runs; one client at a time).
    pub fn port_path(&self, name: &str) -> PathBuf {
        self.path(&format!("port-{name}.sock"))
    }

    /// The guest's console since its first boot (kernel messages, `/init`, and whatever
    /// writes to `/dev/console`), every boot appended.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.path("console.log")).unwrap_or_default())
            .into_owned()
    }

    /// Start QEMU (returns at once; the guest is usable after [`Guest::wait_ready`]).
    /// Panics if this guest is already running.
    pub fn spawn(&self) {
        let mut qemu = self.qemu.lock().unwrap();
        assert!(qemu.is_none(), "guest {}: already running", self.name());
        let c = &self.config;
        let image = guest_image(c.drbd);
        // Stale sockets of a previous run: QEMU would refuse to bind them.
        for file in ["ctl.sock", "mon.sock"] {
            let _ = fs::remove_file(self.path(file));
        }
        for port in &c.ports {
            let _ = fs::remove_file(self.port_path(port));
        }
        let disk = self.path("disk.img");
        let console = self.path("console.log");
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "19", "qemu-system-x86_64"])
            .args([
                "-accel",
                "tcg,thread=multi",
                "-cpu",
                "max",
                "-machine",
                "pc",
            ])
            .args(["-m", &c.memory_mib.to_string(), "-smp", "1"])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 panic=-1 node={} ipaddr={}",
                c.name, c.ipaddr
            ))
            // Appended, so that the console of every boot is kept.
            .arg("-chardev")
            .arg(format!("file,id=con,path={},append=on", console.display()))
            .args(["-serial", "chardev:con"])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", disk.display()))
            .arg("-netdev")
            .arg(match &c.link {
                Link::Udp { port, peer_port } => {
                    format!("socket,id=n0,udp=127.0.0.1:{peer_port},localaddr=127.0.0.1:{port}")
                }
                Link::Tap { ifname, .. } => {
                    format!("tap,id=n0,ifname={ifname},script=no,downscript=no")
                }
            })
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,mac={}", c.mac))
            .args(["-device", "virtio-serial-pci", "-chardev"])
            .arg(format!(
                "socket,id=ctl,path={},server=on,wait=off",
                self.path("ctl.sock").display()
            ))
            .args(["-device", "virtserialport,chardev=ctl,name=ctl"]);
        for (n, port) in c.ports.iter().enumerate() {
            cmd.arg("-chardev")
                .arg(format!(
                    "socket,id=p{n},path={},server=on,wait=off",
                    self.port_path(port).display()
                ))
                .arg("-device")
                .arg(format!("virtserialport,chardev=p{n},name={port}"));
        }
        cmd.arg("-monitor")
            .arg(format!(
                "unix:{},server=on,wait=off",
                self.path("mon.sock").display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=share,security_model=none,readonly=on",
                c.share.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.path("qemu.stderr")).expect("qemu stderr file"));
        // A tap lives in its namespace: QEMU is started there (opened now, entered in the
        // child; the file is closed when this function returns).
        let netns = match &c.link {
            Link::Tap { netns_pid, .. } => Some(
                fs::File::open(format!("/proc/{netns_pid}/ns/net"))
                    .unwrap_or_else(|e| panic!("guest {}: netns of {netns_pid}: {e}", c.name)),
            ),
            Link::Udp { .. } => None,
        };
        let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        // SAFETY: prctl and setns with integer arguments only, async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(fd) = netns_fd
                    && libc::setns(fd, libc::CLONE_NEWNET) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("guest {}: cannot start qemu: {err}", c.name));
        *qemu = Some(child);
        *self.ctl.lock().unwrap() = None;
    }

    /// Wait until the guest answers on its control channel; panics after [`BOOT_TIMEOUT`]
    /// (or at once if QEMU exits) with the end of the guest's console log.
    pub fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            self.assert_alive("booting");
            if let Ok(exec) = self.try_exec("echo ready", Duration::from_secs(3))
                && exec.code == 0
            {
                eprintln!("guest {}: ready in {:.1?}", self.name(), start.elapsed());
                return;
            }
            if start.elapsed() >= BOOT_TIMEOUT {
                panic!(
                    "guest {}: no answer on the control channel after {BOOT_TIMEOUT:?}\n{}",
                    self.name(),
                    self.diagnostics()
                );
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// [`Guest::spawn`] then [`Guest::wait_ready`]: used again after [`Guest::power_off`],
    /// the guest comes back with the same disk.
    pub fn boot(&self) {
        self.spawn();
        self.wait_ready();
    }

    /// A power failure: SIGKILL of the QEMU process (no shutdown, no FIN on the link), then
    /// reap it. The disk keeps what the guest had written.
    pub fn power_off(&self) {
        // QEMU first: a script running on the control channel then ends at once (EOF) and
        // releases the channel, instead of delaying the power-off (a fence) until it returns.
        if let Some(mut child) = self.qemu.lock().unwrap().take() {
            // Our unreaped child: the pid cannot have been recycled.
            let _ = child.kill();
            let _ = child.wait();
        }
        *self.ctl.lock().unwrap() = None;
    }

    /// Whether QEMU is running.
    pub fn is_running(&self) -> bool {
        let mut qemu = self.qemu.lock().unwrap();
        match qemu.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn assert_alive(&self, doing: &str) {
        if !self.is_running() {
            panic!(
                "guest {}: qemu is not running ({doing})\n{}",
                self.name(),
                self.diagnostics()
            );
        }
    }

    /// QEMU's stderr and the last lines of the guest console, for panic messages.
    fn diagnostics(&self) -> String {
        let tail = |file: &str, n: usize| {
            let text = fs::read_to_string(self.path(file)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "--- qemu stderr\n{}\n--- console (last lines)\n{}",
            tail("qemu.stderr", 20),
            tail("console.log", 30)
        )
    }

    /// Run `script` with `sh` in the guest, time limit [`RUN_TIMEOUT`]; returns the exit code
    /// and stdout followed by stderr. Panics if the guest does not answer.
    pub fn run(&self, script: &str) -> (i32, String) {
        let exec = self.exec(script, RUN_TIMEOUT);
        (exec.code, exec.stdout + &exec.stderr)
    }

    /// Like [`Guest::run`], but panics unless the script exits 0; returns its stdout.
    pub fn run_ok(&self, script: &str) -> String {
        let exec = self.exec(script, RUN_TIMEOUT);
        assert!(
            exec.code == 0,
            "guest {}: `{script}` exited {}\n--- stdout\n{}--- stderr\n{}",
            self.name(),
            exec.code,
            exec.stdout,
            exec.stderr
        );
        exec.stdout
    }

    /// Run `script` with `sh` in the guest (stdin `/dev/null`), killed after `timeout`;
    /// stdout and stderr separately. Panics if the guest does not answer in time.
    pub fn exec(&self, script: &str, timeout: Duration) -> Exec {
        self.try_exec(script, timeout).unwrap_or_else(|err| {
            panic!(
                "guest {}: `{script}`: {err}\n{}",
                self.name(),
                self.diagnostics()
            )
        })
    }

    /// Like [`Guest::exec`], but an error instead of a panic when the guest does not answer
    /// (for guests that may be powered off meanwhile, by a fence say).
    pub fn try_exec(&self, script: &str, timeout: Duration) -> io::Result<Exec> {
        let mut guard = self.ctl.lock().unwrap();
        if guard.is_none() {
            let stream = UnixStream::connect(self.path("ctl.sock"))?;
            *guard = Some(Ctl {
                stream,
                buf: Vec::new(),
            });
        }
        let result = exchange(guard.as_mut().unwrap(), script, timeout);
        if result.is_err() {
            // A late answer would only be skipped (nonces), but a broken stream is useless.
            *guard = None;
        }
        result
    }

    /// Cut the replication link (HMP `set_link n0 off`): the NIC reports no carrier and
    /// frames are dropped both ways, as with a pulled cable.
    pub fn cut_link(&self) {
        self.monitor("set_link n0 off");
    }

    /// Restore the link cut by [`Guest::cut_link`].
    pub fn restore_link(&self) {
        self.monitor("set_link n0 on");
    }

    /// Send one HMP command to QEMU's monitor and return its output.
    pub fn monitor(&self, command: &str) -> String {
        self.assert_alive(command);
        let fail =
            |err: io::Error| -> ! { panic!("guest {}: monitor `{command}`: {err}", self.name()) };
        let mut mon = UnixStream::connect(self.path("mon.sock")).unwrap_or_else(|e| fail(e));
        mon.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap_or_else(|e| fail(e));
        read_until_prompt(&mut mon).unwrap_or_else(|e| fail(e));
        mon.write_all(format!("{command}\n").as_bytes())
            .unwrap_or_else(|e| fail(e));
        let out = read_until_prompt(&mut mon).unwrap_or_else(|e| fail(e));
        assert!(
            !out.contains("Error") && !out.contains("unknown command"),
            "guest {}: monitor `{command}` failed: {out}",
            self.name()
        );
        out
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.power_off();
    }
}

/// Read HMP output up to and including the `(qemu) ` prompt.
fn read_until_prompt(mon: &mut UnixStream) -> io::Result<String> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while !out.ends_with(b"(qemu) ") {
        let n = mon.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "monitor closed",
            ));
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One request/answer on the control channel (protocol in `build-guest.sh`'s `/init`).
fn exchange(ctl: &mut Ctl, script: &str, timeout: Duration) -> io::Result<Exec> {
    let nonce = format!("n{}", NONCE.fetch_add(1, Ordering::Relaxed));
    let secs = timeout.as_secs().max(1);
    let request = format!("{nonce} {secs} {}\n", b64_encode(script.as_bytes()));
    ctl.stream.write_all(request.as_bytes())?;
    // The guest kills the script after `secs`; allow for a slow answer on top.
    let deadline = Instant::now() + timeout + Duration::from_secs(10);
    loop {
        while let Some(end) = ctl.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = ctl.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            let mut fields = line.split(' ');
            if fields.next() != Some(nonce.as_str()) {
                continue; // an answer to an earlier request that timed out
            }
            let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad answer {line:?}"));
            let code = fields.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
            let stdout = b64_decode(fields.next().unwrap_or("")).ok_or_else(bad)?;
            let stderr = b64_decode(fields.next().unwrap_or("")).ok_or_else(bad)?;
            return Ok(Exec {
                code,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {:?}", timeout + Duration::from_secs(10)),
            ));
        }
        ctl.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 16384];
        match ctl.stream.read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "control channel closed",
                ));
            }
            Ok(n) => ctl.buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(err),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A free UDP port on 127.0.0.1 (the kernel's choice; released before QEMU binds it).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port on 127.0.0.1")
        .port()
}

/// The DRBD resource both guests of a [`Pair`] use.
pub const RESOURCE: &str = "r0";

/// Two guests, `a` = `alpha` (198.18.3.1) and `b` = `beta` (198.18.3.2), linked to each
/// other, sharing a directory that holds `r0.res`: resource `r0` on `/dev/drbd0` over
/// `/dev/vda`, port 7789, internal meta-data, `ping-int 2; ping-timeout 10` (a dead peer is
/// noticed in a few seconds).
pub struct Pair {
    /// alpha, 198.18.3.1.
    pub a: Guest,
    /// beta, 198.18.3.2.
    pub b: Guest,
    share: tempfile::TempDir,
    /// The bridged link, when there is one (dropped after the guests).
    lan: Option<VmLan>,
}

/// How [`Pair::with`] builds a pair.
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// Plug both NICs into a [`VmLan`] instead of the UDP link (the host can then join the
    /// guests' network through the lan's namespace).
    pub bridged: bool,
    /// Extra serial ports of each guest (see [`GuestConfig::ports`]).
    pub ports: Vec<String>,
    /// Disk size of each guest.
    pub disk_mib: u64,
    /// Initial contents of both guests' disks (see [`GuestConfig::disk_image`]).
    pub disk_image: Option<PathBuf>,
    /// The `net { }` options of `r0.res`.
    pub net_options: String,
    /// The `disk { }` options of `r0.res` (none by default).
    pub disk_options: String,
    /// Files written into the share before the guests boot (name, contents, mode).
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// The DRBD module both guests run.
    pub drbd: Drbd,
}

impl Default for PairOptions {
    fn default() -> PairOptions {
        PairOptions {
            bridged: false,
            ports: vec![],
            disk_mib: DISK_MIB,
            disk_image: None,
            net_options: "protocol C;\n    ping-int 2;\n    ping-timeout 10;".into(),
            disk_options: String::new(),
            files: vec![],
            drbd: Drbd::V84,
        }
    }
}

impl Pair {
    /// Build the guest image if needed and boot both guests in parallel, as `options` say.
    pub fn with(options: PairOptions) -> Pair {
        use std::os::unix::fs::PermissionsExt;
        guest_image(options.drbd);
        let share = tempfile::Builder::new()
            .prefix("ferroha-vm-share-")
            .tempdir()
            .expect("share dir");
        fs::write(
            share.path().join("r0.res"),
            resource_file(&options.net_options, &options.disk_options),
        )
        .expect("r0.res");
        for (name, data, mode) in &options.files {
            let path = share.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).expect("share subdir");
            fs::write(&path, data).expect("share file");
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod");
        }
        // QEMU (running as root with security_model=none) reads the share as it is.
        let lan = options.bridged.then(VmLan::new);
        let (port_a, port_b) = (free_udp_port(), free_udp_port());
        let config = |name: &str, n: u8, port, peer_port| GuestConfig {
            name: name.to_owned(),
            ipaddr: format!("198.18.3.{n}/24"),
            mac: format!("52:54:00:18:03:{n:02x}"),
            link: match &lan {
                Some(lan) => Link::Tap {
                    netns_pid: lan.pid(),
                    ifname: lan.add_tap(&format!("tap-{name}")),
                },
                None => Link::Udp { port, peer_port },
            },
            ports: options.ports.clone(),
            disk_mib: options.disk_mib,
            disk_image: options.disk_image.clone(),
            share: share.path().to_owned(),
            memory_mib: 768,
            drbd: options.drbd,
        };
        let pair = Pair {
            a: Guest::new(config("alpha", 1, port_a, port_b)),
            b: Guest::new(config("beta", 2, port_b, port_a)),
            share,
            lan,
        };
        // Spawned from this thread (PR_SET_PDEATHSIG), awaited in parallel.
        let start = Instant::now();
        pair.a.spawn();
        pair.b.spawn();
        thread::scope(|s| {
            s.spawn(|| pair.a.wait_ready());
            pair.b.wait_ready();
        });
        eprintln!("pair booted in {:.1?}", start.elapsed());
        pair
    }

    /// The host directory shared as `/share` in both guests.
    pub fn share(&self) -> &Path {
        self.share.path()
    }

    /// The bridged link of a pair made with [`PairOptions::bridged`].
    pub fn lan(&self) -> Option<&VmLan> {
        self.lan.as_ref()
    }

    /// Both guests, alpha first.
    pub fn guests(&self) -> [&Guest; 2] {
        [&self.a, &self.b]
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // QEMU first: the taps (and the namespace) go when the lan's anchor does.
        self.a.power_off();
        self.b.power_off();
    }
}

/// Three DRBD 9 guests on one [`VmLan`]: `alpha` (198.18.3.1) and `beta` (198.18.3.2) with
/// disks, and `gamma` (198.18.3.3), a diskless tiebreaker (`disk none`), in a full mesh with
/// `quorum majority`: two of the three keep quorum when one is lost; `auto-promote no`, as a
/// cluster-managed resource should have. `r0.res` in the share.
pub struct Trio {
    /// alpha, beta, gamma.
    pub guests: [Guest; 3],
    /// Shared as `/share` (removed after the guests).
    _share: tempfile::TempDir,
    /// Dropped after the guests (their taps live in its namespace).
    _lan: VmLan,
}

impl Trio {
    /// The names of the three guests, in order.
    pub const NAMES: [&'static str; 3] = ["alpha", "beta", "gamma"];

    /// Boot the three in parallel, on DRBD 9 (quorum and diskless clients are DRBD 9's).
    pub fn new(files: Vec<(String, Vec<u8>, u32)>) -> Trio {
        use std::os::unix::fs::PermissionsExt;
        guest_image(Drbd::V9);
        let share = tempfile::Builder::new()
            .prefix("ferroha-vm-share-")
            .tempdir()
            .expect("share dir");
        fs::write(share.path().join("r0.res"), trio_resource_file()).expect("r0.res");
        for (name, data, mode) in &files {
            let path = share.path().join(name);
            fs::write(&path, data).expect("share file");
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod");
        }
        let lan = VmLan::new();
        let guest = |n: u8| {
            let name = Trio::NAMES[usize::from(n) - 1];
            Guest::new(GuestConfig {
                name: name.to_owned(),
                ipaddr: format!("198.18.3.{n}/24"),
                mac: format!("52:54:00:18:03:{n:02x}"),
                link: Link::Tap {
                    netns_pid: lan.pid(),
                    ifname: lan.add_tap(&format!("tap-{name}")),
                },
                ports: vec![],
                disk_mib: DISK_MIB,
                disk_image: None,
                share: share.path().to_owned(),
                // The tiebreaker holds no data; the three must fit beside the rest.
                memory_mib: if n == 3 { 512 } else { 768 },
                drbd: Drbd::V9,
            })
        };
        let trio = Trio {
            guests: [guest(1), guest(2), guest(3)],
            _share: share,
            _lan: lan,
        };
        let start = Instant::now();
        for g in &trio.guests {
            g.spawn();
        }
        thread::scope(|s| {
            for g in &trio.guests {
                s.spawn(|| g.wait_ready());
            }
        });
        eprintln!("trio booted in {:.1?}", start.elapsed());
        trio
    }
}

impl Drop for Trio {
    fn drop(&mut self) {
        for g in &self.guests {
            g.power_off();
        }
    }
}

/// `r0.res` for [`Trio`].
fn trio_resource_file() -> String {
    let on = |name: &str, id: u8, disk: &str| {
        format!(
            "  on {name} {{\n    node-id {id};\n    device /dev/drbd0;\n    disk {disk};\n    \
             address 198.18.3.{}:7789;\n    meta-disk internal;\n  }}\n",
            id + 1
        )
    };
    format!(
        "resource {RESOURCE} {{\n  options {{\n    quorum majority;\n    on-no-quorum io-error;\n    \
         auto-promote no;\n  }}\n  \
         net {{\n    protocol C;\n    ping-int 2;\n    ping-timeout 10;\n  }}\n{}{}{}  \
         connection-mesh {{\n    hosts alpha beta gamma;\n  }}\n}}\n",
        on("alpha", 0, "/dev/vda"),
        on("beta", 1, "/dev/vda"),
        on("gamma", 2, "none")
    )
}

/// The guests' LAN when the host must reach them too: a network namespace of its own (a test
/// [`Host`] called `vmlan`), a bridge `br0` in it holding [`VmLan::HOST_IP`], and one
/// persistent tap per guest on that bridge. QEMU runs in that namespace (it opens its tap
/// there); a test thread that enters it (`setns`) talks to the guests as a third machine on
/// their link. Nothing is attached to the root namespace; the namespace, bridge and taps go
/// with the anchor when this is dropped. Cutting a guest's link (`set_link n0 off`) cuts it
/// from the host too.
pub struct VmLan {
    host: Host,
}

impl VmLan {
    /// The host's address on the guests' link.
    pub const HOST_IP: &'static str = "198.18.3.200";

    fn new() -> VmLan {
        let host = Host::new("vmlan");
        host.sh_ok(&format!(
            "ip link add br0 type bridge stp_state 0 forward_delay 0 && \
             ip addr add {}/24 dev br0 && ip link set br0 up",
            VmLan::HOST_IP
        ));
        VmLan { host }
    }

    /// A process of the namespace (the anchor), for `setns` through `/proc/PID/ns/net`.
    pub fn pid(&self) -> u32 {
        self.host.pid()
    }

    /// Create tap `name` on the bridge (persistent: it outlives QEMU restarts).
    fn add_tap(&self, name: &str) -> String {
        self.host.sh_ok(&format!(
            "ip tuntap add dev {name} mode tap && ip link set {name} master br0 && \
             ip link set {name} up"
        ));
        name.to_owned()
    }
}

/// `r0.res` for [`Pair`].
fn resource_file(net: &str, disk: &str) -> String {
    let on = |name: &str, ip: &str| {
        format!(
            "  on {name} {{\n    device /dev/drbd0;\n    disk /dev/vda;\n    \
             address {ip}:7789;\n    meta-disk internal;\n  }}\n"
        )
    };
    format!(
        "resource {RESOURCE} {{\n  net {{\n    {net}\n  }}\n  disk {{\n    {disk}\n  }}\n{}{}}}\n",
        on("alpha", "198.18.3.1"),
        on("beta", "198.18.3.2")
    )
}

#[cfg(test)]
mod tests {
    use super::{b64_decode, b64_encode};

    #[test]
    fn base64_round_trips() {
        for text in ["", "a", "ab", "abc", "abcd", "drbdadm status r0\n\u{e9}"] {
            let enc = b64_encode(text.as_bytes());
            assert_eq!(enc.len() % 4, 0);
            assert_eq!(b64_decode(&enc).unwrap(), text.as_bytes(), "{enc}");
        }
        assert_eq!(b64_encode(b"ab"), "YWI=");
    }
}
