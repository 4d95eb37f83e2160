//! hb-monitor's VIP failover against Heartbeat 3 (Debian's `heartbeat`, the daemon it
//! replaces) and keepalived (VRRPv3, the fastest peer), in the same harness in the same run:
//! two test hosts on a LAN, kill -9 of every process of the active node's daemon, time until
//! the standby holds the VIP (its address list polled every 5 ms). Medians over many runs,
//! each from fresh hosts with a random phase; each daemon at its defaults and at its fastest
//! stable setting; also each daemon's idle CPU (scheduler time, all threads and processes)
//! and memory on the active node, and any false failover during the idle window.
//!
//! Run as root: `make bench` (BENCH_RUNS=n runs per setting, default 10; BENCH_ONLY=a,b
//! keeps the settings whose name contains one of the comma-separated texts).

#[path = "../tests/util/host.rs"]
#[allow(dead_code)]
mod host;

#[path = "../tests/util/agent.rs"]
#[allow(dead_code)]
mod agent;

#[path = "../tests/util/heartbeat_node.rs"]
mod heartbeat_node;

#[path = "common/results.rs"]
mod results;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferroha::report::{Figure, Role};
use host::{Guarded, Host, Lan, wait_for};

const VIP: &str = "198.18.1.100";

fn has_vip(host: &Host) -> bool {
    host.sh("ip -o addr show dev eth0")
        .stdout
        .windows(VIP.len() + 2)
        .any(|w| w == format!(" {VIP}/").as_bytes())
}

/// A daemon implementation under test.
trait Daemon {
    fn name(&self) -> String;
    fn start(&self, host: &Host, node: usize) -> Guarded;
    /// Node `node`'s log, for counting false failovers (empty where not kept).
    fn log(&self, _node: usize) -> String {
        String::new()
    }
}

struct HbMonitor {
    dirs: Vec<tempfile::TempDir>,
    state: tempfile::TempDir,
    ocf_root: PathBuf,
    keepalive_ms: u64,
    deadtime_ms: u64,
}

impl HbMonitor {
    fn new(ocf_root: &Path, keepalive_ms: u64, deadtime_ms: u64) -> HbMonitor {
        let dirs = (1..=2)
            .map(|n| {
                let dir = tempfile::tempdir().unwrap();
                let peer = 3 - n;
                // initdead at least deadtime, as hb-monitor (and Heartbeat's advice) insist.
                let initdead_ms = deadtime_ms.max(5000);
                let ha_cf = format!(
                    "keepalive {keepalive_ms}ms\ndeadtime {deadtime_ms}ms\ninitdead {initdead_ms}ms\nucast eth0 198.18.1.{peer}\nauto_failback off\nnode n1\nnode n2\n"
                );
                std::fs::write(dir.path().join("ha.cf"), ha_cf).unwrap();
                std::fs::write(dir.path().join("haresources"), format!("n1 IPaddr2::{VIP}/24/eth0\n")).unwrap();
                let keys = dir.path().join("authkeys");
                std::fs::write(&keys, "auth 1\n1 sha256 bench\n").unwrap();
                std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
                dir
            })
            .collect();
        HbMonitor {
            dirs,
            state: tempfile::tempdir().unwrap(),
            ocf_root: ocf_root.to_path_buf(),
            keepalive_ms,
            deadtime_ms,
        }
    }
}

impl Daemon for HbMonitor {
    fn name(&self) -> String {
        format!("hb-monitor {}/{} ms", self.keepalive_ms, self.deadtime_ms)
    }
    fn start(&self, host: &Host, node: usize) -> Guarded {
        host.spawn(
            host.command(env!("CARGO_BIN_EXE_hb-monitor"))
                .arg("run")
                .arg("-c")
                .arg(self.dirs[node].path())
                .arg("--state-dir")
                .arg(self.state.path().join(host.name()))
                .arg("--ocf-root")
                .arg(&self.ocf_root)
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(self.dirs[node].path().join("daemon.log"))
                        .unwrap(),
                ),
        )
    }
    fn log(&self, node: usize) -> String {
        std::fs::read_to_string(self.dirs[node].path().join("daemon.log")).unwrap_or_default()
    }
}

/// Debian's heartbeat 3.0.6 in v1 mode (haresources), each node with private copies of
/// `/etc/ha.d` and `/var/lib/heartbeat` bind-mounted inside its host (the host's mount
/// namespace and private `/run` keep the two daemons apart).
struct Heartbeat {
    dirs: Vec<tempfile::TempDir>,
    keepalive_ms: u64,
    deadtime_ms: u64,
}

impl Heartbeat {
    fn new(keepalive_ms: u64, deadtime_ms: u64, warntime_ms: u64) -> Heartbeat {
        let dirs = (1..=2)
            .map(|n| {
                let dir = tempfile::tempdir().unwrap();
                let settings =
                    heartbeat_node::Settings::timed(keepalive_ms, deadtime_ms, warntime_ms);
                heartbeat_node::write_files(
                    dir.path(),
                    n,
                    &settings,
                    &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
                    "bench",
                );
                dir
            })
            .collect();
        Heartbeat {
            dirs,
            keepalive_ms,
            deadtime_ms,
        }
    }
}

impl Daemon for Heartbeat {
    fn name(&self) -> String {
        format!("heartbeat 3 {}/{} ms", self.keepalive_ms, self.deadtime_ms)
    }
    fn start(&self, host: &Host, node: usize) -> Guarded {
        heartbeat_node::bind_files(host, self.dirs[node].path());
        // heartbeat daemonises: the shell's child returns at once, the daemon's processes
        // are found later by namespace membership and executable.
        let mut guard = host.spawn(host.command("sh").arg("-c").arg(format!(
            "exec {} >/dev/null 2>&1",
            heartbeat_node::HEARTBEAT
        )));
        let _ = guard.child.wait();
        guard
    }
    fn log(&self, node: usize) -> String {
        std::fs::read_to_string(self.dirs[node].path().join("ha-log")).unwrap_or_default()
    }
}

struct Keepalived {
    dirs: Vec<tempfile::TempDir>,
    advert: &'static str,
}

impl Keepalived {
    fn new(advert: &'static str) -> Keepalived {
        let dirs = (1..=2)
            .map(|n| {
                let dir = tempfile::tempdir().unwrap();
                let (state, prio, me, peer) = if n == 1 { ("MASTER", 150, 1, 2) } else { ("BACKUP", 100, 2, 1) };
                let conf = format!(
                    "global_defs {{\n router_id n{n}\n vrrp_version 3\n vrrp_garp_master_delay 0\n vrrp_garp_master_repeat 5\n}}\n\
                     vrrp_instance VI_1 {{\n state {state}\n interface eth0\n virtual_router_id 51\n priority {prio}\n advert_int {advert}\n garp_master_delay 0\n\
                     unicast_src_ip 198.18.1.{me}\n unicast_peer {{\n  198.18.1.{peer}\n }}\n virtual_ipaddress {{\n  {VIP}/24 dev eth0\n }}\n}}\n"
                );
                std::fs::write(dir.path().join("keepalived.conf"), conf).unwrap();
                dir
            })
            .collect();
        Keepalived { dirs, advert }
    }
}

impl Daemon for Keepalived {
    fn name(&self) -> String {
        format!("keepalived VRRPv3 advert {} s", self.advert)
    }
    fn start(&self, host: &Host, node: usize) -> Guarded {
        // Its pid files go to the host's private /run: with explicit -p/-r paths in a fresh
        // directory keepalived 2.2.7 refused to start ("daemon is already running").
        let dir = self.dirs[node].path();
        host.spawn(
            host.command("/usr/sbin/keepalived")
                .args(["-n", "-l", "-D", "-G", "-P", "-f"])
                .arg(dir.join("keepalived.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    }
}

/// The daemon's processes on `host`: members of its namespaces running one of the daemons'
/// executables (keepalived forks a VRRP child, heartbeat six processes), never by name alone.
fn daemon_pids(host: &Host) -> Vec<u32> {
    let ours = [
        PathBuf::from(env!("CARGO_BIN_EXE_hb-monitor")),
        PathBuf::from("/usr/sbin/keepalived"),
        PathBuf::from(heartbeat_node::HEARTBEAT),
    ];
    host.pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| ours.contains(&exe))
        })
        .collect()
}

/// Kills every process of the daemon on `host`.
fn kill_all(host: &Host, daemon: Guarded) {
    for pid in daemon_pids(host) {
        // SAFETY: a process inside this test host, identified by namespace membership and
        // executable.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    drop(daemon);
}

/// A fresh LAN with n1 and n2, the daemon started on both and the VIP up on n1.
fn running_pair(d: &dyn Daemon) -> (Lan, [Host; 2], Guarded, Guarded) {
    let lan = Lan::new(1);
    let nodes = [Host::new("n1"), Host::new("n2")];
    for (i, n) in nodes.iter().enumerate() {
        lan.attach(n, "eth0", Some(&format!("198.18.1.{}/24", i + 1)));
    }
    let d1 = d.start(&nodes[0], 0);
    let d2 = d.start(&nodes[1], 1);
    wait_for(
        "the VIP on n1",
        Duration::from_secs(90),
        Duration::from_millis(10),
        || has_vip(&nodes[0]).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(500));
    (lan, nodes, d1, d2)
}

fn failover_runs(d: &dyn Daemon, runs: usize) -> Vec<Duration> {
    let mut times = vec![];
    let mut seed = 0x9e37_79b9u64;
    for _ in 0..runs {
        // Fresh hosts every run: nothing (pid files in /run, a VIP, a daemon) carries over.
        let (_lan, nodes, d1, d2) = running_pair(d);
        // Random phase within 50 ms, so failures do not always hit the same point of the cycle.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 50));
        let t0 = Instant::now();
        kill_all(&nodes[0], d1);
        wait_for(
            "the VIP on n2",
            Duration::from_secs(120),
            Duration::from_millis(5),
            || has_vip(&nodes[1]).then_some(()),
        );
        times.push(t0.elapsed());
        kill_all(&nodes[1], d2);
    }
    times
}

/// Idle CPU (% of a core) and RSS (KiB) of the daemon's processes on the active node, and
/// the false failovers of the window (the standby took the VIP, or a log says a peer died).
fn idle_cost(d: &dyn Daemon, window: Duration) -> (f64, u64, usize) {
    let (_lan, nodes, _d1, _d2) = running_pair(d);
    // Time on a CPU from the scheduler's own accounting (ns, every thread), not the 100 Hz
    // tick sampling of /proc/PID/stat: a daemon that wakes briefly hundreds of times a
    // second is what this measures.
    let on_cpu_ns = |pids: &[u32]| -> u64 {
        pids.iter()
            .flat_map(|p| {
                std::fs::read_dir(format!("/proc/{p}/task"))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    let deaths = |d: &dyn Daemon| -> usize {
        (0..2)
            .map(|n| d.log(n).lines().filter(|l| l.contains("is dead")).count())
            .sum()
    };
    let deaths_before = deaths(d);
    let pids = daemon_pids(&nodes[0]);
    let before = on_cpu_ns(&pids);
    std::thread::sleep(window);
    let after = on_cpu_ns(&pids);
    let cpu = (after - before) as f64 / 1e9 / window.as_secs_f64() * 100.0;
    let rss: u64 = pids
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum();
    let false_failovers = deaths(d) - deaths_before + usize::from(has_vip(&nodes[1]));
    (cpu, rss, false_failovers)
}

fn median(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = v[((v.len() as f64) * 0.99).ceil() as usize - 1];
    (ms(v[v.len() / 2]), ms(v[0]), ms(p99))
}

fn main() {
    if !host::is_root() {
        eprintln!("make bench needs root (network namespaces)");
        std::process::exit(1);
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let install = agent::world_readable_tempdir();
    agent::make_install(install.path());
    let ocf_root = install.path().join("usr/lib/ocf");
    // Each daemon at its defaults and at its fastest setting that holds stably here; for
    // hb-monitor also the setting README recommends for real networks.
    let mut daemons: Vec<Box<dyn Daemon>> = vec![
        Box::new(HbMonitor::new(&ocf_root, 5, 20)),
        Box::new(HbMonitor::new(&ocf_root, 10, 30)),
        Box::new(HbMonitor::new(&ocf_root, 10, 50)),
        Box::new(HbMonitor::new(&ocf_root, 200, 1000)),
        Box::new(HbMonitor::new(&ocf_root, 2000, 30000)),
    ];
    if Path::new("/usr/sbin/keepalived").exists() {
        daemons.push(Box::new(Keepalived::new("0.01")));
        daemons.push(Box::new(Keepalived::new("1")));
    } else {
        println!("keepalived is not installed: apt-get install keepalived");
    }
    if Path::new(heartbeat_node::HEARTBEAT).exists() {
        daemons.push(Box::new(Heartbeat::new(100, 300, 200)));
        daemons.push(Box::new(Heartbeat::new(2000, 30000, 10000)));
    } else {
        println!("heartbeat is not installed: apt-get install heartbeat");
    }
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        daemons.retain(|d| only.split(',').any(|o| d.name().contains(o)));
    }
    println!(
        "VIP failover after kill -9 of the active daemon: {runs} runs each, ms until the standby holds the VIP\n"
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>11} {:>10} {:>6}",
        "daemon", "median", "min", "p99", "idle CPU %", "idle RSS", "false"
    );
    let mut medians = vec![];
    let mut samples = vec![];
    for d in &daemons {
        let times = failover_runs(d.as_ref(), runs);
        samples.push((d.name(), times.clone()));
        let (med, min, p99) = median(times);
        let (cpu, rss, false_failovers) = idle_cost(d.as_ref(), Duration::from_secs(10));
        println!(
            "{:<34} {med:>9.1} {min:>9.1} {p99:>9.1} {cpu:>11.2} {:>7} KiB {false_failovers:>6}",
            d.name(),
            rss
        );
        medians.push((d.name(), med));
    }
    let find = |prefix: &str| medians.iter().find(|(n, _)| n.starts_with(prefix));
    if let (Some((ours, a)), Some((theirs, b))) =
        (find("hb-monitor 5/"), find("keepalived VRRPv3 advert 0.01"))
    {
        println!("\nfastest: {theirs} / {ours} = {:.2}x", b / a);
    }
    if let (Some((ours, a)), Some((theirs, b))) = (find("hb-monitor 5/"), find("heartbeat 3 100/"))
    {
        println!("fastest: {theirs} / {ours} = {:.1}x", b / a);
    }
    if let (Some((ours, a)), Some((theirs, b))) =
        (find("hb-monitor 2000/"), find("heartbeat 3 2000/"))
    {
        println!("defaults: {theirs} / {ours} = {:.2}x", b / a);
    }
    println!("(false: failovers during a 10 s idle window, which must be 0)");
    results::save(
        [
            group(
                &samples,
                "failover-fastest",
                "VIP failover after kill -9 of the active daemon, each at its fastest setting",
                "hb-monitor 5/",
                &["keepalived VRRPv3 advert 0.01", "heartbeat 3 100/"],
            ),
            group(
                &samples,
                "failover-defaults",
                "VIP failover after kill -9 of the active daemon, each at its defaults",
                "hb-monitor 2000/",
                &["keepalived VRRPv3 advert 1 ", "heartbeat 3 2000/"],
            ),
        ]
        .into_iter()
        .flatten()
        .collect(),
    );
}

/// The figure of hb-monitor's setting named `ours` (a name's start) beside the daemons named
/// `peers` that ran; None unless it and at least one of them ran (`BENCH_ONLY`).
fn group(
    samples: &[(String, Vec<Duration>)],
    id: &str,
    label: &str,
    ours: &str,
    peers: &[&str],
) -> Option<Figure> {
    let find = |prefix: &str| samples.iter().find(|(name, _)| name.starts_with(prefix));
    let (name, times) = find(ours)?;
    let mut systems = vec![(name.as_str(), Role::Ferroha, times.as_slice())];
    for (name, times) in peers.iter().filter_map(|p| find(p)) {
        systems.push((name.as_str(), Role::Peer, times.as_slice()));
    }
    (systems.len() > 1).then(|| results::figure(id, label, "ms", &systems))
}
