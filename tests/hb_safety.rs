//! hb-monitor, part 2: fencing before a takeover from a node that did not hand over cleanly,
//! local recovery of a failing resource, and the root-only control socket. The VIP's holders
//! are sampled every 10 ms from outside the nodes (`/proc/<pid>/net/fib_trie`): with fencing
//! configured, two nodes never hold it at once.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::fence::{Fence, fenced_cluster};
use crate::util::hb_cluster::{Cluster, Sampler, VIP, on_second_lan};
use crate::util::host::{Guarded, Host, Lan, wait_for};

fn anchors(c: &Cluster) -> Vec<u32> {
    c.hosts.iter().map(|h| h.pid()).collect()
}

fn log_of(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.dirs[i].path().join("daemon.log")).unwrap_or_default()
}

#[test]
#[ignore = "needs root"]
fn a_killed_active_daemon_is_fenced_before_the_takeover_and_two_never_hold_the_vip() {
    let fence = Fence::new();
    let mut c = fenced_cluster(&fence, &format!("n1 IPaddr2::{VIP}/24/eth0\n"), "");
    c.wait_vip_on(0, Duration::from_secs(15));
    let sampler = Sampler::start(anchors(&c), VIP, Duration::from_millis(10));
    let t0 = Instant::now();
    c.kill(0);
    c.wait_vip_on(1, Duration::from_secs(10));
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    sampler.finish().assert_never_two(10);
    assert_eq!(fence.calls(), ["n1 n1"], "n1 fenced exactly once");
    assert!(!c.has(0, VIP), "the fence powered n1 off");
    let log = log_of(&c, 1);
    let fenced_at = log.find("n1 is fenced").expect("fence logged");
    let taking_at = log
        .find("taking the resource group")
        .expect("takeover logged");
    assert!(fenced_at < taking_at, "takeover before the fence:\n{log}");
    eprintln!(
        "kill -9 of n1's daemon to the VIP on n2, fencing included: {} ms (deadtime 400 ms)",
        took.as_millis()
    );
}

#[test]
#[ignore = "needs root"]
fn a_cut_link_is_fenced_and_a_failing_fence_blocks_the_takeover_until_it_works() {
    let fence = Fence::new();
    let c = fenced_cluster(&fence, &format!("n1 IPaddr2::{VIP}/24/eth0\n"), "");
    c.wait_vip_on(0, Duration::from_secs(15));
    // Each attempt takes a second, then fails.
    fence.set_failing_after(Some(1));
    let sampler = Sampler::start(anchors(&c), VIP, Duration::from_millis(10));
    c.hosts[0].sh_ok("ip link set eth0 down");
    // n2 sees n1 dead but cannot fence it: no takeover, however long; and it waits for the
    // fence without spinning (a spent retry time once woke its loop at once, again and
    // again, while the next attempt ran).
    let n2 = c.daemons[1].as_ref().unwrap().pid();
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after_comm = stat.rsplit(") ").next().unwrap_or("");
        let f: Vec<u64> = after_comm
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect();
        // utime and stime: fields 14 and 15 of stat, 12th and 13th after "(comm) S".
        f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu(n2);
    std::thread::sleep(Duration::from_millis(3000));
    let ticks = cpu(n2) - before;
    eprintln!("n2's daemon: {ticks} ticks of CPU in 3 s of failing fences");
    // Clock ticks are 1/100 s. Measured: 1 tick; 41 with the spin (a spinning loop between
    // attempts, idle while the next one was not due).
    assert!(
        ticks < 15,
        "n2's daemon used {ticks} ticks of CPU in 3 s while fencing failed"
    );
    assert!(!c.has(1, VIP), "n2 took over without a successful fence");
    assert!(
        log_of(&c, 1).contains("fencing n1 failed"),
        "{}",
        log_of(&c, 1)
    );
    fence.set_failing(false);
    c.wait_vip_on(1, Duration::from_secs(10));
    sampler.finish().assert_never_two(10);
    assert_eq!(fence.calls(), ["n1 n1"]);
}

/// An agent whose stop fails while `<dir>/stuck` exists (and whose state is a file).
fn stubborn_agent(ocf_root: &Path, dir: &Path) {
    let agent_dir = ocf_root.join("resource.d/ferroha-test");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent = agent_dir.join("stubborn");
    std::fs::write(
        &agent,
        format!(
            r#"#!/bin/sh
state={dir}/$(uname -n).running
case "$1" in
  start) touch "$state" ;;
  stop) [ -e {dir}/stuck ] && {{ echo "ocf-exit-reason:told to be stuck" >&2; exit 1; }}; rm -f "$state" ;;
  monitor) [ -e "$state" ] || exit 7 ;;
  meta-data|validate-all) ;;
esac
exit 0
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
#[ignore = "needs root"]
fn a_failed_stop_is_fenced_by_the_peer_and_without_fencing_nobody_takes_over() {
    for with_fencing in [true, false] {
        let fence = Fence::new();
        let scratch = crate::util::agent::world_readable_tempdir();
        let haresources = format!("n1 IPaddr2::{VIP}/24/eth0 ferroha-test:stubborn\n");
        let extra = if with_fencing {
            format!(
                "fence_command {}\nfence_timeout 10\n",
                fence.command().display()
            )
        } else {
            String::new()
        };
        let mut c = Cluster::stopped(
            2,
            &haresources,
            &format!("auto_failback off\n{extra}"),
            "400ms",
            |_| {},
        );
        fence.map(&c);
        stubborn_agent(&c.ocf_root(), scratch.path());
        c.start(0);
        c.start(1);
        c.wait_vip_on(0, Duration::from_secs(15));
        c.wait_ready(1);
        c.control(1, "takeover");
        std::fs::write(scratch.path().join("stuck"), "").unwrap();
        let sampler = Sampler::start(anchors(&c), VIP, Duration::from_millis(10));
        // n2's takeover asks n1 to hand over; n1's stop fails.
        wait_for(
            "n1 to report its failed stop",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || (c.holding(0) == "unclean" || fence.calls().len() == 1).then_some(()),
        );
        if with_fencing {
            c.wait_vip_on(1, Duration::from_secs(10));
            assert_eq!(fence.calls(), ["n1 n1"]);
            // The hand-over can finish within a few samples; watch the new holder a while.
            std::thread::sleep(Duration::from_millis(200));
        } else {
            std::thread::sleep(Duration::from_millis(2000));
            assert_eq!(c.holding(0), "unclean");
            assert_eq!(
                c.holding(1),
                "none",
                "n2 took the group beside a failed stop"
            );
            assert!(!c.has(1, VIP));
            let log = log_of(&c, 1);
            assert!(
                log.contains("no fence_command is configured"),
                "n2 does not say why it waits:\n{log}"
            );
        }
        sampler.finish().assert_never_two(10);
    }
}

#[test]
#[ignore = "needs root"]
fn a_failing_monitor_is_restarted_in_place_then_the_group_fails_over() {
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "auto_failback off\nmonitor_interval 200ms\nrestart_limit 1 60\n",
        "400ms",
        |_| {},
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    // The VIP deleted behind the daemon's back: restarted here, once.
    c.hosts[0].sh_ok(&format!("ip addr del {VIP}/24 dev eth0"));
    c.wait_vip_on(0, Duration::from_secs(5));
    wait_for(
        "the restart to be logged",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || log_of(&c, 0).contains("restarting it").then_some(()),
    );
    assert!(!c.has(1, VIP));
    let log = log_of(&c, 0);
    assert!(
        log.contains("IPaddr2") && log.contains("monitor: exit 7"),
        "the decision names the resource and the agent's exit code:\n{log}"
    );
    // Again: the limit (1 in 60 s) is reached, the group goes to n2.
    c.hosts[0].sh_ok(&format!("ip addr del {VIP}/24 dev eth0"));
    c.wait_vip_on(1, Duration::from_secs(10));
    assert!(!c.has(0, VIP));
    assert_eq!(c.holding(0), "failed");
    assert!(log_of(&c, 0).contains("giving the group up"));
}

#[test]
#[ignore = "needs root"]
fn the_control_socket_answers_root_only() {
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "auto_failback off\n",
        "400ms",
        |_| {},
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    for request in ["status", "standby"] {
        let out = c.hosts[0]
            .command("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_hb-monitor"))
            .arg(request)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{request}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("root only"),
            "{out:?}"
        );
    }
    assert_eq!(c.holding(0), "held", "a refused standby changed nothing");
}

/// Control clients that connect and say nothing (a hung script, a stopped `hb-monitor
/// status`) hold up neither the heartbeats nor other clients: each is read on a thread of
/// its own, the loop only answers.
#[test]
#[ignore = "needs root"]
fn stalled_control_clients_hold_up_neither_heartbeats_nor_other_clients() {
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "auto_failback off\nwarntime 100ms\n",
        "400ms",
        |_| {},
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    let before = log_of(&c, 1);
    // Five clients connect to n1's socket and stay silent for 3 s.
    let mut stalled: Vec<_> = (0..5)
        .map(|_| {
            c.hosts[0].spawn(
                c.hosts[0]
                    .command("python3")
                    .args([
                        "-c",
                        "import socket,time,sys; s=socket.socket(socket.AF_UNIX); \
                         s.connect('/run/hb-monitor.sock'); \
                         sys.stderr.write('connected\\n'); sys.stderr.flush(); time.sleep(3)",
                    ])
                    .stderr(std::process::Stdio::piped()),
            )
        })
        .collect();
    // And hostile ones: a slow loris (one byte a second), an oversized request, bytes that
    // are not text. Each must get an error, without reaching (or holding up) the loop.
    let hostile = |send: &str| {
        c.hosts[0].spawn(
            c.hosts[0]
                .command("python3")
                .args([
                    "-c",
                    &format!(
                        "import socket,time,sys; s=socket.socket(socket.AF_UNIX); \
                         s.connect('/run/hb-monitor.sock')\n\
                         sys.stderr.write('connected\\n'); sys.stderr.flush()\n{send}\n\
                         s.settimeout(5); sys.stdout.write(s.recv(4096).decode())"
                    ),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )
    };
    // Until a client says it is connected (so that the daemon holds its connection).
    let connected = |g: &mut crate::util::host::Guarded| {
        let mut line = String::new();
        let stderr = g.child.stderr.as_mut().expect("stderr piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).unwrap();
        assert_eq!(line, "connected\n", "a control client did not connect");
    };
    let mut slow = hostile(
        "try:\n  for b in b'status':\n    s.send(bytes([b])); time.sleep(1)\nexcept OSError: pass",
    );
    let mut long = hostile("s.sendall(b'status ' + b'x' * 65536)");
    let mut binary = hostile("s.sendall(b'\\xff\\xfe\\x00status\\n')");
    for client in stalled
        .iter_mut()
        .chain([&mut slow, &mut long, &mut binary])
    {
        connected(client);
    }
    let t = Instant::now();
    assert_eq!(c.holding(0), "held");
    let answered = t.elapsed();
    let reply = |g: &mut crate::util::host::Guarded| {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut g.child.stdout.take().unwrap(), &mut out).unwrap();
        out
    };
    let (slow, long, binary) = (reply(&mut slow), reply(&mut long), reply(&mut binary));
    assert!(slow.contains("no complete request within 1 s"), "{slow:?}");
    assert!(long.contains("request too long"), "{long:?}");
    assert!(binary.contains("request is not text"), "{binary:?}");
    std::thread::sleep(Duration::from_secs(3));
    drop(stalled);
    assert_eq!(c.holding(0), "held", "the daemon stopped answering");
    eprintln!(
        "status answered in {} ms beside 5 stalled clients",
        answered.as_millis()
    );
    assert!(answered < Duration::from_millis(500), "{answered:?}");
    let after = log_of(&c, 1);
    let late: Vec<&str> = after[before.len()..]
        .lines()
        .filter(|l| l.contains("late heartbeat from n1"))
        .collect();
    assert!(late.is_empty(), "n1's loop stalled:\n{}", late.join("\n"));
}

/// A cluster of two whose nodes also reach a router (the ping node, 198.18.2.254) on a
/// second LAN (eth1), separate from the heartbeat LAN; with `fence` when given.
fn pinged_cluster(uplink: &Lan, extra: &str) -> Cluster {
    Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        &format!("auto_failback off\nping 198.18.2.254\n{extra}"),
        "400ms",
        on_second_lan(uplink),
    )
}

fn router(uplink: &Lan) -> Host {
    let router = Host::new("router");
    uplink.attach(&router, "eth0", Some("198.18.2.254/24"));
    router
}

#[test]
#[ignore = "needs root"]
fn a_node_that_loses_its_ping_node_hands_the_group_to_the_peer_that_sees_it() {
    let uplink = Lan::new(2);
    let _router = router(&uplink);
    let c = pinged_cluster(&uplink, "");
    c.wait_vip_on(0, Duration::from_secs(15));
    let sampler = Sampler::start(anchors(&c), VIP, Duration::from_millis(10));
    c.hosts[0].sh_ok("ip link set eth1 down");
    c.wait_vip_on(1, Duration::from_secs(10));
    assert!(!c.has(0, VIP));
    // An orderly handover (n1 stops, then n2 starts): never two holders, no fencing needed.
    sampler.finish().assert_never_two(10);
    let log = log_of(&c, 0);
    assert!(
        log.contains("n2 sees 1 ping nodes, this node 0"),
        "n1 does not say why it gave the group up:\n{log}"
    );
    // n1's uplink returns: both see the router, auto_failback off keeps the group on n2.
    c.hosts[0].sh_ok("ip link set eth1 up");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.holding(1), "held");
    assert!(!c.has(0, VIP));
}

#[test]
#[ignore = "needs root"]
fn a_node_cut_off_from_peers_and_ping_nodes_stops_its_group() {
    let uplink = Lan::new(2);
    let _router = router(&uplink);
    let c = pinged_cluster(&uplink, "");
    c.wait_vip_on(0, Duration::from_secs(15));
    c.hosts[0].sh_ok("ip link set eth0 down; ip link set eth1 down");
    // n1 cannot serve anyone: it stops its group by itself; n2 (which still sees the router)
    // takes over.
    wait_for(
        "n1 to stop its group",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || (!c.has(0, VIP) && c.holding(0) == "none").then_some(()),
    );
    c.wait_vip_on(1, Duration::from_secs(10));
    assert!(log_of(&c, 0).contains("isolated"), "{}", log_of(&c, 0));
    // Still isolated: n1 takes nothing, however long.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!c.has(0, VIP));
}

/// The heartbeat link cut while the ping node stays reachable from both (ipfail cannot tell
/// the nodes apart: each sees the router). Without fencing the peer takes over and both hold
/// the VIP — the split brain a two-node cluster with one heartbeat medium has, documented
/// here, not hidden. With fencing the peer powers the holder off first: one holder at every
/// sample.
#[test]
#[ignore = "needs root"]
fn a_cut_heartbeat_link_with_the_ping_node_reachable_from_both() {
    // Without fencing.
    let uplink = Lan::new(2);
    let _router = router(&uplink);
    let c = pinged_cluster(&uplink, "");
    c.wait_vip_on(0, Duration::from_secs(15));
    c.hosts[0].sh_ok("ip link set eth0 down");
    c.wait_vip_on(1, Duration::from_secs(10));
    assert!(
        c.has(0, VIP),
        "without fencing n1 keeps its VIP: both hold it (split brain)"
    );
    assert!(
        log_of(&c, 1).contains("without fencing"),
        "the takeover is not said to be unfenced:\n{}",
        log_of(&c, 1)
    );
    drop(c);

    // With fencing.
    let uplink = Lan::new(2);
    let _router = router(&uplink);
    let fence = Fence::new();
    let c = pinged_cluster(
        &uplink,
        &format!(
            "fence_command {}\nfence_timeout 10\n",
            fence.command().display()
        ),
    );
    fence.map(&c);
    c.wait_vip_on(0, Duration::from_secs(15));
    let sampler = Sampler::start(anchors(&c), VIP, Duration::from_millis(10));
    c.hosts[0].sh_ok("ip link set eth0 down");
    c.wait_vip_on(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    sampler.finish().assert_never_two(10);
    assert_eq!(
        fence.calls(),
        ["n1 n1"],
        "n1 fenced once, before the takeover"
    );
}

/// A null-modem cable for the test world: a `socat` pseudo-terminal pair whose ends are
/// `<dir>/tty-n1` and `<dir>/tty-n2`; killed (by pid) when dropped.
struct SerialCable {
    dir: tempfile::TempDir,
    socat: std::process::Child,
}

impl SerialCable {
    fn new() -> SerialCable {
        let dir = tempfile::tempdir().unwrap();
        let end = |n: &str| format!("pty,raw,echo=0,link={}/tty-{n}", dir.path().display());
        let socat = std::process::Command::new("socat")
            .args([end("n1"), end("n2")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat (make deps installs it)");
        wait_for(
            "socat's pseudo-terminals",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                (dir.path().join("tty-n1").exists() && dir.path().join("tty-n2").exists())
                    .then_some(())
            },
        );
        SerialCable { dir, socat }
    }
}

impl Drop for SerialCable {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

#[test]
#[ignore = "needs root"]
fn a_cut_udp_link_with_a_working_serial_link_is_no_failover() {
    let cable = SerialCable::new();
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        &format!(
            "auto_failback off\nserial {}/tty-{{node}}\nbaud 115200\n",
            cable.dir.path().display()
        ),
        "400ms",
        |_| {},
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    c.hosts[0].sh_ok("ip link set eth0 down");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        c.holding(1),
        "none",
        "n2 took over although the serial link works"
    );
    assert!(!c.has(1, VIP));
    assert_eq!(c.holding(0), "held");
    let log = log_of(&c, 1);
    assert!(
        log.contains("no heartbeats from n1 on eth0:694") && !log.contains("node n1 is dead"),
        "{log}"
    );
    // The cable pulled too: now n1 is dead for n2.
    drop(cable);
    c.wait_vip_on(1, Duration::from_secs(10));
}

/// Reads what the daemon writes to a pseudo-terminal standing in for `/dev/watchdog` (a
/// character device, as the daemon requires; `path` links to its slave side).
struct FakeWatchdog {
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl FakeWatchdog {
    fn new(path: &Path) -> FakeWatchdog {
        use std::io::Read as _;
        use std::os::fd::FromRawFd as _;
        // SAFETY: posix_openpt, grantpt, unlockpt and ptsname_r on the new master only; the
        // descriptor is owned by the File at once.
        let (mut file, slave) = unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK);
            assert!(
                master >= 0,
                "posix_openpt: {}",
                std::io::Error::last_os_error()
            );
            let file = std::fs::File::from_raw_fd(master);
            assert_eq!(libc::grantpt(master), 0);
            assert_eq!(libc::unlockpt(master), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
            let slave = std::ffi::CStr::from_ptr(name.as_ptr())
                .to_string_lossy()
                .into_owned();
            (file, slave)
        };
        // Raw: the bytes the daemon writes arrive as they are (no output processing).
        let _ = std::process::Command::new("stty")
            .args(["-F", &slave, "raw", "-echo"])
            .status();
        std::os::unix::fs::symlink(&slave, path).unwrap();
        let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (bytes.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match file.read(&mut buf) {
                    Ok(n) if n > 0 => b.lock().unwrap().extend_from_slice(&buf[..n]),
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeWatchdog {
            bytes,
            stop,
            reader: Some(reader),
        }
    }

    fn written(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }
}

impl Drop for FakeWatchdog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.reader.take().map(|r| r.join());
    }
}

#[test]
#[ignore = "needs root"]
fn the_watchdog_is_fed_every_keepalive_and_disarmed_on_an_orderly_exit() {
    let dir = tempfile::tempdir().unwrap();
    let dogs: Vec<FakeWatchdog> = ["n1", "n2"]
        .iter()
        .map(|n| FakeWatchdog::new(&dir.path().join(format!("watchdog-{n}"))))
        .collect();
    let mut c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        &format!(
            "auto_failback off\nwatchdog {}/watchdog-{{node}}\n",
            dir.path().display()
        ),
        "400ms",
        |_| {},
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    let before = dogs[0].written().len();
    std::thread::sleep(Duration::from_millis(1000));
    let fed = dogs[0].written().len() - before;
    // keepalive 50 ms: about 20 in a second.
    assert!((12..=30).contains(&fed), "fed {fed} times in 1 s");
    assert!(dogs[0].written().iter().all(|b| *b == 0));
    c.terminate(0);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        dogs[0].written().last(),
        Some(&b'V'),
        "no magic close on an orderly exit"
    );
}

#[test]
#[ignore = "needs root"]
fn a_missing_watchdog_device_is_refused_at_start_and_by_check() {
    let mut c = Cluster::stopped(
        2,
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "watchdog /dev/ferroha-no-such-watchdog\n",
        "400ms",
        |_| {},
    );
    c.start(0);
    let d = c.daemons[0].as_mut().unwrap();
    let status = wait_for(
        "the daemon to refuse",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || d.child.try_wait().ok().flatten(),
    );
    assert_eq!(status.code(), Some(6), "exit 6: not configured");
    let log = log_of(&c, 0);
    assert!(
        log.contains("watchdog /dev/ferroha-no-such-watchdog") && log.contains("softdog"),
        "{log}"
    );
    let out = c.hosts[0]
        .command(env!("CARGO_BIN_EXE_hb-monitor"))
        .arg("check")
        .arg("-c")
        .arg(c.dirs[0].path())
        .arg("--ocf-root")
        .arg(c.ocf_root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist")
            || String::from_utf8_lossy(&out.stdout).contains("does not exist"),
        "{out:?}"
    );
}

/// From node 2's restart until it holds the VIP of the silent n1; `replay`: a host that
/// sends meanwhile the recorded IP packets in a file, as they were (n1's address and port),
/// at n1's pace. Their UDP checksum is cleared (none, for IPv4): recorded on a veth, it is
/// only the partial sum the sender left for an offload that never ran.
fn takeover_after_restart(
    c: &mut Cluster,
    replay: Option<(&Host, &Path)>,
) -> (Duration, Option<Guarded>) {
    let restarted = Instant::now();
    c.start(1);
    let replayer = replay.map(|(intruder, packets)| {
        intruder.spawn(
            intruder
                .command("python3")
                .arg("-c")
                .arg(
                    "import socket, sys, time\n\
                     raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n\
                     for h in open(sys.argv[1]).read().split():\n\
                     \x20   p = bytearray.fromhex(h)\n\
                     \x20   ihl = (p[0] & 15) * 4\n\
                     \x20   p[ihl + 6:ihl + 8] = bytes(2)\n\
                     \x20   raw.sendto(p, ('198.18.1.2', 0))\n\
                     \x20   time.sleep(0.05)\n",
                )
                .arg(packets),
        )
    });
    c.wait_vip_on(1, Duration::from_secs(20));
    (restarted.elapsed(), replayer)
}

#[test]
#[ignore = "needs root"]
fn heartbeats_replayed_after_a_restart_do_not_delay_the_takeover() {
    let fence = Fence::new();
    let mut c = fenced_cluster(
        &fence,
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "initdead 1\n",
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    // n1's heartbeats as n2 receives them, for 4 s (80 of them at keepalive 50 ms).
    let recorded = c.hosts[1].sh_ok(
        r#"python3 -c "
import socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.settimeout(0.1)
end = time.time() + 4
while time.time() < end:
    try:
        p, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    ihl = (p[0] & 15) * 4
    if addr[2] == socket.PACKET_HOST and p[9] == 17 and p[12:16] == socket.inet_aton('198.18.1.1') and p[ihl + 2:ihl + 4] == (694).to_bytes(2, 'big'):
        print(p.hex())
""#,
    );
    let count = recorded.lines().count();
    assert!(count >= 40, "recorded only {count} heartbeats of n1");
    let packets = c.state.path().join("n1-heartbeats");
    std::fs::write(&packets, &recorded).unwrap();
    // The standby's daemon dies, then n1 is powered off. First a pause: the daemon reads its
    // socket once a keepalive, and what it never read is not what it accepted.
    std::thread::sleep(Duration::from_millis(200));
    c.kill(1);
    c.crash(0);
    let (baseline, _) = takeover_after_restart(&mut c, None);
    // Again, with the recording replayed by a third host from the moment n2 starts.
    c.kill(1);
    c.hosts[1].sh_ok(&format!("ip addr del {VIP}/24 dev eth0"));
    let intruder = Host::new("intruder");
    c.lan.attach(&intruder, "eth0", Some("198.18.1.66/24"));
    let (replayed, replayer) = takeover_after_restart(&mut c, Some((&intruder, &packets)));
    let mut replayer = replayer.unwrap();
    let sent = wait_for(
        "the replay to end",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || replayer.child.try_wait().ok().flatten(),
    );
    assert!(sent.success(), "replay: {sent}");
    eprintln!(
        "takeover after a restart (initdead 1 s, fencing): {} ms; with {count} recorded heartbeats replayed: {} ms",
        baseline.as_millis(),
        replayed.as_millis()
    );
    // Accepted, the replay would keep n1 alive for its 4 s; refused, it changes nothing. The
    // margin covers two daemon start-ups on a loaded machine.
    assert!(
        replayed < baseline + Duration::from_millis(1000),
        "the replay delayed the takeover: {replayed:?} against {baseline:?}"
    );
    // None accepted (n1 has no generation in n2's eyes), and all refused as replays but the
    // first few, sent before n2's daemon opened its socket.
    let status = c.status(1);
    let n1 = status["peers"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["name"] == "n1"))
        .cloned()
        .unwrap_or_default();
    assert!(n1["generation"].is_null(), "a replay was accepted: {n1}");
    let refused = status["dropped"]["replayed"].as_u64().unwrap_or(0);
    assert!(
        refused + 5 >= count as u64,
        "only {refused} of {count} replays refused: {}",
        status["dropped"]
    );
}

/// Heartbeat's `deadping`: a ping node counts as lost after `deadping` without a reply, not
/// after `deadtime`. With deadtime 3 s and deadping 300 ms, the node that loses its router
/// hands the group over in about deadping.
#[test]
#[ignore = "needs root"]
fn a_ping_node_is_lost_after_deadping_not_deadtime() {
    let uplink = Lan::new(2);
    let _router = router(&uplink);
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "auto_failback off\nkeepalive 50ms\nping 198.18.2.254\ndeadping 300ms\n",
        "3s",
        on_second_lan(&uplink),
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    let cut = Instant::now();
    c.hosts[0].sh_ok("ip link set eth1 down");
    c.wait_vip_on(1, Duration::from_secs(10));
    let took = cut.elapsed();
    // At least deadping after the last reply, which came at most one ping interval
    // (keepalive 50 ms) before the cut. At most deadping + a ping interval + n2 learning of
    // it (a heartbeat, 50 ms) + the VIP's stop and start (tens of ms), with a second of
    // margin for a loaded machine: still half of deadtime.
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "the group moved {} ms after the uplink cut (deadping 300 ms, deadtime 3 s)",
        took.as_millis()
    );
    eprintln!(
        "group moved {} ms after the ping node was lost",
        took.as_millis()
    );
}
