//! Claims of docs/hb-monitor.md about the daemon itself, each checked on one node `n1` (its
//! peer `n2` never runs: what is checked happens at start): the split-brain warning without
//! `fence_command`, syslog lines with the configured facility, real-time scheduling and
//! locked memory (and what the daemon says when the system refuses them), and when the
//! stand-in heartbeat threads start; and how a `ping_group` counts (two nodes there).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use crate::hb_check::ok_agent_root;
use crate::util::hb_cluster::log_file;
use crate::util::host::{Guarded, Host, Lan, wait_for};

/// Logged once the controller starts, after the realtime, stand-in and fencing lines.
const STARTED: &str = "start-up clean-up: stopping the group here before taking part";

/// The split-brain warning of a cluster without `fence_command` (src/hb/controller.rs).
const SPLIT_BRAIN: &str = "WARN: no fence_command: a node whose daemon dies or whose heartbeat links all fail keeps what it runs, so its peer's takeover runs the group twice (split brain: two VIPs, DRBD Primary on both)";

/// `chrt -p`'s policy of the daemon with `realtime on`.
const RR: &str = "SCHED_RR|SCHED_RESET_ON_FORK";

const STAND_INS: &str = "stand-in heartbeats on CPUs";

/// n1 on 198.18.1.0/24 with one group of an always-succeeding agent, running hb-monitor
/// from a configuration of its own.
struct Node {
    host: Host,
    _lan: Lan,
    agents: tempfile::TempDir,
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    daemon: Option<Guarded>,
}

impl Node {
    fn new() -> Node {
        let lan = Lan::new(1);
        let host = Host::new("n1");
        lan.attach(&host, "eth0", Some("198.18.1.1/24"));
        Node {
            host,
            _lan: lan,
            agents: ok_agent_root(),
            dir: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            daemon: None,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Starts `hb-monitor run` with `ha_cf_extra` before the media and nodes, under
    /// `wrapper` (a program and its arguments that exec the daemon, e.g. `taskset -c 0`);
    /// waits until its controller started and returns the log of this run.
    fn start(&mut self, ha_cf_extra: &str, wrapper: &[&str]) -> String {
        self.daemon = None;
        let dir = self.dir.path();
        std::fs::write(
            dir.join("ha.cf"),
            format!("{ha_cf_extra}ucast eth0 198.18.1.2\nnode n1\nnode n2\n"),
        )
        .unwrap();
        std::fs::write(dir.join("haresources"), "n1 ferroha-test:ok::a=b\n").unwrap();
        let keys = dir.join("authkeys");
        std::fs::write(&keys, "auth 1\n1 sha256 hb-claims-test\n").unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        let _ = std::fs::remove_file(self.log_path());
        let bin = env!("CARGO_BIN_EXE_hb-monitor");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = self.host.command(program);
                c.args(args).arg(bin);
                c
            }
            None => self.host.command(bin),
        };
        cmd.arg("run")
            .arg("-c")
            .arg(dir)
            .arg("--state-dir")
            .arg(self.state.path())
            .arg("--ocf-root")
            .arg(self.agents.path())
            .stdout(std::process::Stdio::null())
            .stderr(log_file(&self.log_path()));
        self.daemon = Some(self.host.spawn(&mut cmd));
        self.wait_log(STARTED)
    }

    /// Waits until the log has `needle`; the whole log.
    fn wait_log(&self, needle: &str) -> String {
        wait_for(
            &format!("'{needle}' in n1's log"),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                log.contains(needle).then_some(log)
            },
        )
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().unwrap().pid()
    }

    /// Whether the daemon still runs.
    fn running(&mut self) -> bool {
        self.daemon
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_none()
    }

    /// A /dev of n1's own (its mount namespace only): a tmpfs with the devices the daemon
    /// uses bound from the real /dev (kept visible under n1's /run), and `log` (a socket of
    /// the test) bound at /dev/log, or no /dev/log at all.
    fn private_dev(&self, log: Option<&std::path::Path>) {
        let bind_log = log.map_or(String::new(), |socket| {
            format!(
                " && touch /dev/log && mount --bind {} /dev/log",
                socket.display()
            )
        });
        self.host.sh_ok(&format!(
            "mkdir /run/real-dev && mount --bind /dev /run/real-dev && \
             mount -t tmpfs -o mode=755 hb-claims-dev /dev && \
             for d in null zero full random urandom; do \
                 touch /dev/$d && mount --bind /run/real-dev/$d /dev/$d; done && \
             ln -s /proc/self/fd /dev/fd{bind_log}"
        ));
    }

    /// The daemon's main thread's scheduling as `chrt -p` says it: (policy, priority).
    fn scheduling(&self) -> (String, String) {
        let out = self.host.sh_ok(&format!("chrt -p {}", self.pid()));
        let field = |what: &str| {
            out.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.rsplit(": ").next())
                .unwrap_or_else(|| panic!("no {what} in chrt -p: {out}"))
                .trim()
                .to_string()
        };
        (field("scheduling policy"), field("scheduling priority"))
    }

    /// `VmLck` of the daemon, in kB.
    fn locked_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmLck in {status}"))
    }
}

#[test]
#[ignore = "needs root"]
fn without_fence_command_the_daemon_warns_of_split_brain_at_start() {
    let mut n1 = Node::new();
    let log = n1.start("keepalive 50ms\ndeadtime 1\n", &[]);
    assert!(log.contains(SPLIT_BRAIN), "{log}");
    // With a fence command the same start says nothing of it.
    let log = n1.start("keepalive 50ms\ndeadtime 1\nfence_command /bin/true\n", &[]);
    assert!(!log.contains("split brain"), "{log}");
}

#[test]
#[ignore = "needs root"]
fn logfacility_sends_each_line_to_syslog_with_its_facility_and_severity() {
    let mut n1 = Node::new();
    // A private /dev/log, in n1's mount namespace only: a tmpfs over /dev there with the
    // devices the daemon uses bound from the real /dev (kept visible under n1's own /run),
    // and a socket of this test bound at /dev/log.
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("log");
    let syslog = UnixDatagram::bind(&socket).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    n1.private_dev(Some(&socket));
    n1.start("keepalive 50ms\ndeadtime 1\nlogfacility local3\n", &[]);
    let pid = n1.pid();
    // local3 is facility 19: <19*8 + severity>, warning 4 and informational 6.
    let (warning, info) = (
        format!("<156>hb-monitor[{pid}]: {SPLIT_BRAIN}"),
        format!("<158>hb-monitor[{pid}]: INFO: {STARTED}"),
    );
    let mut received = vec![];
    let mut buf = [0u8; 8192];
    // The daemon keeps logging (its peer stays silent), so the receive timeout alone would
    // never end a wait for lines that do not come.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(received.iter().any(|l: &String| l.starts_with(&warning))
        && received.iter().any(|l| l.starts_with(&info)))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no {warning:?} and {info:?} within 10 s; received:\n{}",
            received.join("\n")
        );
        let n = syslog
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("syslog: {e}; received so far:\n{}", received.join("\n")));
        received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
}

#[test]
#[ignore = "needs root"]
fn a_syslog_that_cannot_be_reached_is_said_in_the_log() {
    let mut n1 = Node::new();
    n1.private_dev(None);
    n1.start("keepalive 50ms\ndeadtime 1\nlogfacility local3\n", &[]);
    let log = n1.wait_log("not logging to syslog");
    assert!(
        log.contains("WARN: logfacility local3: syslog at /dev/log: No such file or directory"),
        "{log}"
    );
}

#[test]
#[ignore = "needs root"]
fn realtime_runs_sched_rr_at_rtprio_with_memory_locked() {
    let mut n1 = Node::new();
    n1.start("keepalive 50ms\ndeadtime 1\nrtprio 33\n", &[]);
    // SCHED_RESET_ON_FORK: the agents it runs do not inherit SCHED_RR.
    assert_eq!(n1.scheduling(), (RR.into(), "33".into()));
    assert!(n1.locked_kb() > 0, "VmLck {} kB", n1.locked_kb());
    // Heartbeat's default priority, 10.
    n1.start("keepalive 50ms\ndeadtime 1\n", &[]);
    assert_eq!(n1.scheduling(), (RR.into(), "10".into()));

    let log = n1.start("keepalive 50ms\ndeadtime 1\nrealtime off\n", &[]);
    assert!(
        log.contains("INFO: realtime off: heartbeats run at normal priority"),
        "{log}"
    );
    assert_eq!(n1.scheduling(), ("SCHED_OTHER".into(), "0".into()));
    assert_eq!(n1.locked_kb(), 0);
}

#[test]
#[ignore = "needs root"]
fn realtime_refused_by_the_system_is_said_plainly_and_the_daemon_runs_on() {
    let mut n1 = Node::new();
    // Without CAP_SYS_NICE and CAP_IPC_LOCK, the limits decide: none for either.
    let log = n1.start(
        "keepalive 50ms\ndeadtime 1\n",
        &[
            "prlimit",
            "--memlock=0",
            "--rtprio=0",
            "capsh",
            "--drop=cap_sys_nice,cap_ipc_lock",
            "--",
            "-c",
            "exec \"$0\" \"$@\"",
        ],
    );
    assert!(
        log.contains("WARN: realtime: cannot run SCHED_RR at priority 10 (")
            && log.contains("heartbeats run at normal priority, and a busy machine can delay them into a false failover"),
        "{log}"
    );
    assert!(
        log.contains("WARN: realtime: cannot lock memory (")
            && log.contains("the daemon can be paged out under memory pressure"),
        "{log}"
    );
    assert_eq!(n1.scheduling(), ("SCHED_OTHER".into(), "0".into()));
    assert_eq!(n1.locked_kb(), 0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(n1.running(), "the daemon exited: {log}");
}

#[test]
#[ignore = "needs root"]
fn stand_ins_start_only_with_two_cpus_and_keepalive_under_250_ms() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(
        cpus >= 2,
        "this test needs two CPUs, the machine has {cpus}"
    );
    let mut n1 = Node::new();
    let log = n1.start("keepalive 240ms\ndeadtime 1\n", &[]);
    assert!(log.contains(&format!("{STAND_INS} [0, 1]")), "{log}");
    let log = n1.start("keepalive 250ms\ndeadtime 1\n", &[]);
    assert!(!log.contains(STAND_INS), "{log}");
    let log = n1.start("keepalive 50ms\ndeadtime 1\n", &["taskset", "-c", "0"]);
    assert!(!log.contains(STAND_INS), "{log}");
}

/// Whether node `i` says its `ping_group` `name` answers (`hb-monitor status --json`).
fn ping_group_reachable(c: &crate::util::hb_cluster::Cluster, i: usize, name: &str) -> bool {
    c.status(i)["ping_nodes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .and_then(|p| p["reachable"].as_bool())
        .unwrap_or_else(|| panic!("n{} has no ping node {name}: {}", i + 1, c.status(i)))
}

/// `ping_group NAME ADDRESS...` counts as one ping node, reached while any of its addresses
/// answers: losing one address of the group moves nothing; a node that loses them all hands
/// its group to the peer that still reaches the group.
#[test]
#[ignore = "needs root"]
fn a_ping_group_is_reached_while_any_member_answers() {
    use crate::util::hb_cluster::{Cluster, VIP, on_second_lan};
    let uplink = Lan::new(2);
    let router = Host::new("router");
    uplink.attach(&router, "eth0", Some("198.18.2.253/24"));
    router.sh_ok("ip addr add 198.18.2.254/24 dev eth0");
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "auto_failback off\nping_group uplink 198.18.2.253 198.18.2.254\n",
        "400ms",
        on_second_lan(&uplink),
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    wait_for(
        "both nodes to reach the ping group",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            (ping_group_reachable(&c, 0, "uplink") && ping_group_reachable(&c, 1, "uplink"))
                .then_some(())
        },
    );
    // The group's first address goes: the other still answers, for both nodes. Two
    // deadpings (deadtime, 400 ms) later the group must still count as reached.
    router.sh_ok("ip addr del 198.18.2.253/24 dev eth0");
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        ping_group_reachable(&c, 0, "uplink"),
        "n1 lost the group with one member up"
    );
    assert!(
        ping_group_reachable(&c, 1, "uplink"),
        "n2 lost the group with one member up"
    );
    assert_eq!(
        c.holding(0),
        "held",
        "losing one member of the group moved the group"
    );
    // n1 loses the whole group; n2 still reaches it and gets the resources.
    c.hosts[0].sh_ok("ip link set eth1 down");
    c.wait_vip_on(1, Duration::from_secs(10));
    assert!(!c.has(0, VIP));
    assert!(!ping_group_reachable(&c, 0, "uplink"));
    let log = std::fs::read_to_string(c.dirs[0].path().join("daemon.log")).unwrap();
    assert!(
        log.contains("n2 sees 1 ping nodes, this node 0"),
        "n1 does not say why it gave the group up:\n{log}"
    );
}
