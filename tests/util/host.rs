//! Test hosts and LANs built from Linux namespaces, so integration tests can run the real
//! binaries (resource agents, heartbeat daemons) on several "machines" inside one test process.
//!
//! A [`Host`] is an *anchor* process that holds a fresh network, mount and UTS namespace:
//! its own interfaces (only `lo`, up), its own hostname, a private tmpfs on `/run` (so
//! `/run/resource-agents`, pid files and locks are per host) and a sysfs that shows its own
//! interfaces. Everything else in the filesystem is shared with the test, so built binaries
//! and temp dirs are reachable from every host. Processes are started inside a host with
//! [`Host::command`], which `setns`es into the anchor's namespaces before `exec`.
//!
//! A [`Lan`] is one more host (the "switch") holding a bridge; [`Lan::attach`] plugs a host
//! into it with a veth pair.
//!
//! Why it is built this way (the machine is shared and tests run in parallel threads):
//! - Nothing is named globally: no `ip netns add`, no interface in the root namespace. Veths
//!   are created inside a host's namespace and their peer is moved straight into the switch,
//!   so two tests may even use the same subnet at the same time.
//! - Everything is owned by a guard. Dropping a [`Host`] SIGKILLs every process that is in its
//!   net or mount namespace (found through `/proc/<pid>/ns`, never by name), then the anchor;
//!   the namespaces and their veths vanish with their last process.
//! - If the test process dies without running destructors (SIGKILL, abort, a CI timeout), the
//!   anchor notices: its stdin is a pipe whose only writer is the test process, so it reads EOF,
//!   sweeps its namespaces the same way and exits. This is sturdier than `PR_SET_PDEATHSIG`,
//!   which fires when the *thread* that forked the anchor exits (so a host created in a helper
//!   thread would die with that thread) and which would only kill the anchor, not the daemons
//!   started inside the host.
//!
//! Addresses: tests use 198.18.0.0/15 (RFC 2544 benchmarking) and 2001:db8::/32 (RFC 3849
//! documentation) only, and never add a route out of a LAN.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use nix::unistd::{mkdir, sethostname};

/// The only environment a command in a host starts with (callers add what they need), so
/// tests do not depend on the developer's shell or locale.
const HOST_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// How long [`Host`]'s drop keeps killing before it gives up and reports leftovers.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The anchor's program (`/bin/sh -c`). Its stdin is a pipe only the test process writes to,
/// so `read` returns at EOF exactly when the test process is gone; then (or on SIGTERM) it
/// SIGKILLs every other process in its net or mnt namespace (a few rounds, to catch processes
/// forked meanwhile) and exits, taking the namespaces with it. Only builtins are used, so the
/// sweep starts no process of its own. The anchor runs in its own session, so Ctrl-C or a
/// `timeout` aimed at the test's process group does not kill it before it can sweep.
const ANCHOR_SCRIPT: &str = r#"
sweep() {
    # Never sweep init's namespaces (that would be every process of the machine).
    if [ /proc/$$/ns/net -ef /proc/1/ns/net ] || [ /proc/$$/ns/mnt -ef /proc/1/ns/mnt ]; then
        exit 1
    fi
    for round in 1 2 3; do
        for dir in /proc/[0-9]*; do
            pid=${dir#/proc/}
            [ "$pid" = "$$" ] && continue
            if [ "$dir/ns/net" -ef /proc/$$/ns/net ] || [ "$dir/ns/mnt" -ef /proc/$$/ns/mnt ]; then
                kill -9 "$pid" 2>/dev/null
            fi
        done
    done
    exit 0
}
trap '' HUP INT QUIT PIPE
trap sweep TERM
read -r _
sweep
"#;

/// True when running as root (tests that need root are marked `#[ignore = "needs root"]`
/// and run by `make test`).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Poll `f` every `every` until it returns `Some(T)` or `timeout` passes; then panic with
/// `what` (say what was awaited, e.g. "vip 198.18.1.10 on alpha").
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(every);
    }
}

/// A child process that is SIGKILLed and reaped when the guard is dropped.
///
/// Only the child itself is killed; what it forked is swept when its [`Host`] is dropped.
pub struct Guarded {
    /// The process; use it to wait, read its pipes or check its status.
    pub child: Child,
}

impl Guarded {
    /// The child's pid (in the root pid namespace, which hosts share).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // The child stays our unreaped child until wait() below, so its pid cannot have been
        // recycled: kill() cannot hit an unrelated process. It may have exited already.
        let _ = self.child.kill();
        if let Err(err) = self.child.wait() {
            eprintln!("Guarded: waiting for pid {}: {err}", self.child.id());
        }
    }
}

/// A test host: an anchor process holding fresh net, mnt (propagation private) and uts
/// namespaces, with hostname = name, loopback up, a private tmpfs on `/run` (with `/run/lock`)
/// and its own sysfs on `/sys` (cgroup mounts carried over), so `/sys/class/net` lists the
/// host's interfaces. The pid namespace is shared: pids seen inside are the test's pids.
pub struct Host {
    name: String,
    /// `sh` waiting for EOF on stdin; see the module docs.
    anchor: Child,
    /// `/proc/<anchor>/ns/net` and `ns/mnt` link targets, e.g. `net:[4026532301]`: a process is
    /// part of this host when either of its links is equal.
    net_ns: String,
    mnt_ns: String,
    /// Only to check the fds [`Host::command`] opens.
    uts_ns: String,
}

impl Host {
    /// Start a host called `name` (also its hostname, at most 64 bytes). Takes a few ms.
    ///
    /// Panics with a clear message if it cannot (not root, or no namespace support).
    pub fn new(name: &str) -> Host {
        assert!(
            is_root(),
            "Host::new({name:?}): test hosts need root (namespaces, mounts); \
             run the test as root, e.g. `make test`"
        );
        assert!(
            !name.is_empty() && name.len() <= 64 && !name.contains('\0'),
            "Host::new({name:?}): a host name must be 1 to 64 bytes, without NUL"
        );
        let hostname = name.to_owned();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(ANCHOR_SCRIPT)
            .arg(format!("host-anchor-{name}")) // $0: shows in ps
            .env_clear()
            .env("PATH", HOST_PATH)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the closure only makes raw syscalls on data prepared before the fork
        // (`hostname` is moved in, not allocated in the child).
        unsafe {
            cmd.pre_exec(move || enter_fresh_namespaces(&hostname));
        }
        let mut anchor = cmd.spawn().unwrap_or_else(|err| {
            panic!(
                "Host::new({name:?}): cannot create its namespaces: {err} \
                 (needs root and a kernel with net/mnt/uts namespaces)"
            )
        });
        // spawn() returns once exec succeeded, so the pre_exec setup is complete. Still, every
        // later step (commands, teardown) trusts these links, so check that they really are
        // new namespaces and not the ones of the test process or of init.
        let pid = anchor.id();
        let links =
            NS_KINDS.map(|kind| ns_link(pid, kind).filter(|link| !is_outside_ns(kind, link)));
        let [Some(net_ns), Some(mnt_ns), Some(uts_ns)] = links else {
            let _ = anchor.kill();
            let _ = anchor.wait();
            panic!(
                "Host::new({name:?}): anchor pid {pid} is gone or not in new namespaces \
                 ({links:?}); refusing to use it"
            );
        };
        Host {
            name: name.to_owned(),
            anchor,
            net_ns,
            mnt_ns,
            uts_ns,
        }
    }

    /// The host's name (and hostname).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The anchor's pid: usable wherever a process stands for its namespaces
    /// (`ip link set X netns <pid>`, `nsenter -t <pid> -n -m -u`, `/proc/<pid>/root/...`).
    /// It stays valid for the host's life: the anchor is our child and is only reaped on drop.
    pub fn pid(&self) -> u32 {
        self.anchor.id()
    }

    /// The host's network namespace as the kernel names it, e.g. `net:[4026532301]`.
    pub fn net_ns(&self) -> &str {
        &self.net_ns
    }

    /// A Command that runs `program` inside this host's namespaces, with a scrubbed
    /// environment (only `PATH=/usr/sbin:/usr/bin:/sbin:/bin` and `LC_ALL=C`) and cwd `/`.
    ///
    /// Callers may add env vars, args and a `current_dir`; std enters that directory *before*
    /// the namespaces are switched, so it must exist in the test's view too (anything outside
    /// `/run`, e.g. a tempdir), and it is then entered again inside the host. For a directory
    /// that exists only in the host (`/run/...`), use [`Host::command_in`].
    ///
    /// The namespace files are opened now (close-on-exec) and entered in the forked child:
    /// net, then uts, then mnt (last: it resets root and cwd). Descriptors the test process
    /// leaked without close-on-exec are not passed on.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.command_with_cwd(program.as_ref(), None)
    }

    /// Like [`Host::command`], but the program starts in `dir` as seen inside the host.
    pub fn command_in(&self, dir: impl AsRef<Path>, program: impl AsRef<OsStr>) -> Command {
        let dir = dir.as_ref();
        let dir = CString::new(dir.as_os_str().as_bytes())
            .unwrap_or_else(|_| panic!("host {}: NUL in directory {dir:?}", self.name));
        self.command_with_cwd(program.as_ref(), Some(dir))
    }

    fn command_with_cwd(&self, program: &OsStr, dir_in_host: Option<CString>) -> Command {
        // Check each opened file against the namespaces recorded at creation: a command must
        // never run in the test's own namespaces, whatever happened to the anchor.
        let open_ns = |kind: &str, expected: &str| {
            let path = format!("/proc/{}/ns/{kind}", self.pid());
            let file = File::open(&path)
                .unwrap_or_else(|err| panic!("host {}: cannot open {path}: {err}", self.name));
            let inode = file.metadata().map(|meta| meta.ino()).ok();
            assert!(
                inode.is_some() && inode == ns_inode(expected),
                "host {}: {path} is no longer {expected}; refusing to run a command",
                self.name
            );
            file
        };
        let net = open_ns("net", &self.net_ns);
        let uts = open_ns("uts", &self.uts_ns);
        let mnt = open_ns("mnt", &self.mnt_ns);
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", HOST_PATH)
            .env("LC_ALL", "C")
            .current_dir("/");
        // SAFETY: only raw syscalls, on a stack buffer and on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // setns(mnt) resets cwd to the host's root. std has already entered the
                // caller's current_dir in the test's view: remember its path and enter it
                // again, now resolved in the host's view of the filesystem.
                let mut cwd = [0u8; libc::PATH_MAX as usize];
                let have_cwd = !libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()).is_null();
                setns(&net, CloneFlags::CLONE_NEWNET)?;
                setns(&uts, CloneFlags::CLONE_NEWUTS)?;
                setns(&mnt, CloneFlags::CLONE_NEWNS)?;
                match &dir_in_host {
                    Some(dir) => os_result(libc::chdir(dir.as_ptr()))?,
                    None if have_cwd => os_result(libc::chdir(cwd.as_ptr().cast()))?,
                    None => {}
                }
                // Close-on-exec rather than close: pre_exec closures the caller adds run after
                // this one and may dup2 descriptors into place on purpose.
                mark_inherited_fds_cloexec()
            });
        }
        cmd
    }

    /// Run a command line inside the host with `/bin/sh -c` and return its Output.
    ///
    /// This waits for EOF on stdout and stderr, so a background process started by the
    /// script must redirect them (`daemon >/dev/null 2>&1 &`) or this call waits for it.
    pub fn sh(&self, script: &str) -> Output {
        let mut cmd = self.command("/bin/sh");
        cmd.arg("-c").arg(script);
        output_of(&self.name, script, &mut cmd)
    }

    /// Like [`Host::sh`] but panics with the exit status, stdout and stderr when the script
    /// fails; returns stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let output = self.sh(script);
        stdout_if_success(&self.name, script, output)
    }

    /// Run several `ip` commands (one per line, without the leading `ip`) in a single
    /// `ip -batch` process inside the host; panics if one fails. Faster than one `sh` each.
    pub fn ip_batch(&self, commands: &str) {
        let what = format!("ip -batch -  <<EOF\n{commands}\nEOF");
        let mut child = self
            .command("ip")
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("host {}: cannot run `{what}`: {err}", self.name));
        let mut stdin = child.stdin.take().expect("stdin was piped");
        // A write error means ip exited early; its status and stderr below say why.
        let _ = stdin.write_all(commands.as_bytes());
        drop(stdin);
        let output = child
            .wait_with_output()
            .unwrap_or_else(|err| panic!("host {}: waiting for `{what}`: {err}", self.name));
        stdout_if_success(&self.name, &what, output);
    }

    /// `ping -c1 -W1 <ip>` from this host: true when a reply came back.
    pub fn ping(&self, ip: &str) -> bool {
        let mut cmd = self.command("ping");
        cmd.args(["-c1", "-W1", "-n", ip]);
        output_of(&self.name, &format!("ping {ip}"), &mut cmd)
            .status
            .success()
    }

    /// Spawn a long-running process (typically built with [`Host::command`]); the returned
    /// guard SIGKILLs and reaps it on drop. Panics if it cannot be started.
    pub fn spawn(&self, cmd: &mut Command) -> Guarded {
        let child = cmd.spawn().unwrap_or_else(|err| {
            panic!(
                "host {}: cannot spawn {:?}: {err}",
                self.name,
                cmd.get_program()
            )
        });
        Guarded { child }
    }

    /// MAC address (lower-case, colon separated) of interface `ifname` in this host.
    /// Read from the host's own sysfs through `/proc/<anchor>/root`, without starting a process.
    pub fn mac(&self, ifname: &str) -> String {
        let path = format!("/proc/{}/root/sys/class/net/{ifname}/address", self.pid());
        match fs::read_to_string(&path) {
            Ok(mac) => mac.trim().to_owned(),
            Err(err) => panic!("host {}: no MAC for {ifname:?} ({path}: {err})", self.name),
        }
    }

    /// The link-layer address this host's neighbour table (ARP/NDP) holds for `ip`, if any:
    /// `None` when there is no entry or it has no address yet (INCOMPLETE, FAILED).
    pub fn neigh(&self, ip: &str) -> Option<String> {
        let mut cmd = self.command("ip");
        cmd.args(["neigh", "show", "to", ip]);
        let what = format!("ip neigh show to {ip}");
        let table = stdout_if_success(&self.name, &what, output_of(&self.name, &what, &mut cmd));
        let mut words = table.split_whitespace();
        words.find(|&word| word == "lladdr")?;
        words.next().map(str::to_owned)
    }

    /// Pids of the processes now in this host (in its net or mount namespace), without the
    /// anchor: e.g. to check that a daemon has exited.
    pub fn pids(&self) -> Vec<u32> {
        let anchor = self.pid();
        self.member_pids()
            .into_iter()
            .filter(|&pid| pid != anchor)
            .collect()
    }

    /// Every process in this host's net or mount namespace, anchor included, except the test
    /// process itself. Zombies have left their namespaces and are not listed.
    fn member_pids(&self) -> Vec<u32> {
        let me = std::process::id();
        if !self.is_isolated() {
            return Vec::new();
        }
        let Ok(proc_dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        proc_dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && self.contains(pid))
            .collect()
    }

    /// Whether the recorded namespaces are neither the test process's nor init's. Host::new
    /// guarantees it; checked again before killing anything, because a mistake there would
    /// kill every process of the machine.
    fn is_isolated(&self) -> bool {
        !is_outside_ns("net", &self.net_ns) && !is_outside_ns("mnt", &self.mnt_ns)
    }

    /// Whether process `pid` is in this host's net or mount namespace (false once it is gone).
    fn contains(&self, pid: u32) -> bool {
        ns_link(pid, "net").is_some_and(|link| link == self.net_ns)
            || ns_link(pid, "mnt").is_some_and(|link| link == self.mnt_ns)
    }

    /// SIGKILL `pid` if it is in this host, race-free against pid reuse: the pidfd pins one
    /// process, and membership is checked after opening it. If the pid was recycled by an
    /// outsider in between, the check fails and nothing is sent.
    fn kill_member(&self, pid: u32) {
        // SAFETY: plain syscalls; the returned fd is owned right away.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return; // already gone
        }
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        if self.is_isolated() && self.contains(pid) {
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
    }
}

impl Drop for Host {
    /// Kill every process in the host (by namespace membership, pid by pid), wait until none
    /// is left (bounded), then kill and reap the anchor. Reports problems on stderr: a panic
    /// here would abort a test that is already unwinding.
    fn drop(&mut self) {
        let deadline = Instant::now() + TEARDOWN_TIMEOUT;
        let anchor = self.pid();
        if !self.is_isolated() {
            eprintln!(
                "host {}: recorded namespaces are the test's or init's; killing only the anchor",
                self.name
            );
        }
        let mut pause = Duration::from_millis(1);
        loop {
            let others: Vec<u32> = self.pids();
            if others.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "host {}: processes {others:?} still alive after {TEARDOWN_TIMEOUT:?} of SIGKILL",
                    self.name
                );
                break;
            }
            for pid in others {
                self.kill_member(pid);
            }
            // Killed processes leave their namespaces only once their memory is torn down.
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        // The anchor is our child, unreaped until here, so its pid is still its own.
        let _ = self.anchor.kill();
        loop {
            match self.anchor.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
                Ok(None) => {
                    eprintln!("host {}: anchor {anchor} did not exit", self.name);
                    break;
                }
                Err(err) => {
                    eprintln!("host {}: waiting for anchor {anchor}: {err}", self.name);
                    break;
                }
            }
        }
    }
}

/// A LAN: a "switch" host holding a bridge `br0` (STP off, forward delay 0, multicast
/// snooping off so it floods like a dumb switch, fixed MAC) with 198.18.<n>.254/24 and
/// 2001:db8:<n>::fe/64, so tests can ping and ARP from the switch.
///
/// Each Lan is isolated from every other, so parallel tests may reuse a subnet number.
pub struct Lan {
    /// The host holding the bridge; its `br0` carries the addresses above.
    pub switch: Host,
    subnet: u8,
    /// Numbers the switch-side veth ends (`port1`, `port2`, ...).
    ports: AtomicU32,
}

impl Lan {
    /// A LAN on 198.18.<subnet>.0/24 (and 2001:db8:<subnet in hex>::/64).
    pub fn new(subnet: u8) -> Lan {
        let switch = Host::new(&format!("switch{subnet}"));
        // A bridge created without an address takes the lowest MAC of its ports, so it would
        // change as hosts attach; pin a locally administered one.
        switch.ip_batch(&format!(
            "link add br0 address 02:00:c6:12:{subnet:02x}:fe type bridge \
                 stp_state 0 forward_delay 0 mcast_snooping 0\n\
             addr add 198.18.{subnet}.254/24 dev br0\n\
             addr add 2001:db8:{subnet:x}::fe/64 dev br0 nodad\n\
             link set br0 up"
        ));
        Lan {
            switch,
            subnet,
            ports: AtomicU32::new(0),
        }
    }

    /// The subnet number n of 198.18.n.0/24.
    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    /// IPv4 address `198.18.<n>.<host>` on this LAN.
    pub fn ip(&self, host: u8) -> String {
        format!("198.18.{}.{host}", self.subnet)
    }

    /// IPv4 address with prefix, `198.18.<n>.<host>/24`, as [`Lan::attach`] takes it.
    pub fn cidr(&self, host: u8) -> String {
        format!("{}/24", self.ip(host))
    }

    /// IPv6 address `2001:db8:<n>::<host>` (hex) on this LAN; append `/64` for a cidr.
    pub fn ip6(&self, host: u16) -> String {
        format!("2001:db8:{:x}::{host:x}", self.subnet)
    }

    /// Create a veth pair inside `host`'s netns: `ifname` stays in `host`, the peer moves
    /// straight into the switch and is enslaved to `br0`; both up. If `cidr` is given
    /// (`"198.18.1.1/24"` or an IPv6 one, which is added without DAD so it is usable at once)
    /// it is assigned to `ifname`. Returns once the switch forwards on the port, with the MAC
    /// of `ifname`.
    pub fn attach(&self, host: &Host, ifname: &str, cidr: Option<&str>) -> String {
        let port = format!("port{}", self.ports.fetch_add(1, Ordering::Relaxed) + 1);
        let switch_pid = self.switch.pid();
        let mut commands = format!(
            "link add {ifname} type veth peer name {port} netns {switch_pid}\n\
             link set {ifname} up\n"
        );
        if let Some(cidr) = cidr {
            let nodad = if cidr.contains(':') { " nodad" } else { "" };
            commands.push_str(&format!("addr add {cidr} dev {ifname}{nodad}\n"));
        }
        host.ip_batch(&commands);
        self.switch
            .ip_batch(&format!("link set {port} master br0\nlink set {port} up"));
        // Even with STP off a new bridge port passes through listening and learning for a
        // tick; a first ARP request sent before it forwards would be lost and retried only
        // after a second, so wait for BR_STATE_FORWARDING (3).
        let state = format!("/proc/{switch_pid}/root/sys/class/net/{port}/brport/state");
        wait_for(
            &format!("switch port {port} for {}:{ifname} to forward", host.name()),
            Duration::from_secs(5),
            Duration::from_millis(1),
            || (fs::read_to_string(&state).ok()?.trim() == "3").then_some(()),
        );
        host.mac(ifname)
    }
}

/// The forked anchor's setup before `exec`: new namespaces, private mounts, hostname, `lo` up.
/// Runs between fork and exec, so it makes raw syscalls only and allocates nothing.
fn enter_fresh_namespaces(hostname: &str) -> io::Result<()> {
    // Out of the test's process group and session: see ANCHOR_SCRIPT.
    nix::unistd::setsid()?;
    // The anchor needs no inherited descriptor; holding, say, the write end of a pipe someone
    // else waits on could keep them waiting for as long as the host lives.
    // Close-on-exec, not close: std reports exec failure through a close-on-exec pipe, and
    // spawn() returns when that pipe closes. Closing it here would let spawn() return before
    // the namespaces below exist (and the parent would record the test's own namespaces).
    mark_inherited_fds_cloexec()?;
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)?;
    // Private, so the mounts below do not propagate back to the test's namespace.
    mount(
        None::<&CStr>,
        c"/",
        None::<&CStr>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&CStr>,
    )?;
    mount(
        Some(c"tmpfs"),
        c"/run",
        Some(c"tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(c"mode=0755"),
    )?;
    // /run/lock is where Debian keeps lock files; chmod because mkdir applies the umask.
    mkdir(c"/run/lock", Mode::from_bits_truncate(0o755))?;
    // SAFETY: plain syscall on a static C string.
    os_result(unsafe { libc::chmod(c"/run/lock".as_ptr(), 0o1777) })?;
    remount_sysfs()?;
    sethostname(hostname)?;
    bring_loopback_up()
}

/// Replace /sys with a sysfs mounted from inside the new netns, whose `class/net` lists this
/// host's interfaces (the inherited one shows the root namespace's). Unmounting /sys drops its
/// submounts; /sys/fs/cgroup is parked under /run meanwhile and moved back, when there is one.
fn remount_sysfs() -> io::Result<()> {
    let parked = c"/run/.sys-fs-cgroup";
    mkdir(parked, Mode::from_bits_truncate(0o700))?;
    let have_cgroup = mount(
        Some(c"/sys/fs/cgroup"),
        parked,
        None::<&CStr>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&CStr>,
    )
    .is_ok();
    umount2(c"/sys", MntFlags::MNT_DETACH)?;
    mount(
        Some(c"sysfs"),
        c"/sys",
        Some(c"sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&CStr>,
    )?;
    if have_cgroup {
        mount(
            Some(parked),
            c"/sys/fs/cgroup",
            None::<&CStr>,
            MsFlags::MS_MOVE,
            None::<&CStr>,
        )?;
    }
    // SAFETY: plain syscall on a static C string.
    os_result(unsafe { libc::rmdir(parked.as_ptr()) })
}

/// Mark every descriptor above stderr close-on-exec, so the exec'd program inherits none that
/// the test process leaked. Not close: std's exec-error pipe must stay open until exec (see
/// [`enter_fresh_namespaces`]), and descriptors later pre_exec closures dup2 into place are
/// unaffected. Async-signal-safe: one syscall.
fn mark_inherited_fds_cloexec() -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    os_result(ret as libc::c_int)
}

/// Turn a libc-style return value (-1 and errno on failure) into a Result.
fn os_result(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `ip link set lo up`, done with two ioctls instead of running `ip`.
fn bring_loopback_up() -> io::Result<()> {
    // SAFETY: plain syscalls on a zeroed ifreq and a socket closed on every path.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(sock);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        os_result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        os_result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))
    }
}

/// The namespace kinds a host has of its own, as named under `/proc/<pid>/ns/`.
const NS_KINDS: [&str; 3] = ["net", "mnt", "uts"];

/// Whether `link` (e.g. `net:[4026531840]`) is the namespace of the test process or of init:
/// namespaces no host may be in, and whose processes a host must never kill.
fn is_outside_ns(kind: &str, link: &str) -> bool {
    [std::process::id(), 1]
        .into_iter()
        .any(|pid| ns_link(pid, kind).is_some_and(|outside| outside == link))
}

/// The inode number in a namespace link: `net:[4026531840]` -> 4026531840.
fn ns_inode(link: &str) -> Option<u64> {
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// The target of `/proc/<pid>/ns/<kind>`, e.g. `net:[4026531840]`; None once the process has
/// exited (zombies included: they have left their namespaces).
fn ns_link(pid: u32, kind: &str) -> Option<String> {
    let link = fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    link.into_os_string().into_string().ok()
}

/// Run `cmd` to completion, panicking (naming host and `what`) only if it cannot start.
fn output_of(host: &str, what: &str, cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("host {host}: cannot run `{what}`: {err}"))
}

/// stdout of a finished command, or a panic showing status, stdout and stderr.
fn stdout_if_success(host: &str, what: &str, output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "host {host}: `{what}` failed ({}):\n--- stdout\n{stdout}--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
}
