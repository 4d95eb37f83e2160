//! Self-tests of the test harness (`util::host`): hosts are isolated, reachable over a LAN,
//! and leave nothing behind, whether a test passes, panics, or its process is killed.
//!
//! Everything here that creates hosts needs root and is `#[ignore = "needs root"]`; run with
//! `cargo test --test integration harness -- --include-ignored`. Tests run in parallel with
//! each other and with the rest of the suite, so none of them assumes it is alone: each one
//! builds its own LAN, and checks on global state only look for the test's own objects.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::host::{Host, Lan, is_root, wait_for};

/// Set in the environment of the child test process that
/// `hosts_are_swept_when_the_test_process_is_killed` starts and then kills.
const KILLED_CHILD_ENV: &str = "FERROHA_HARNESS_KILLED_CHILD";

/// Pids of every process whose `/proc/<pid>/ns/net` is `net_ns` (e.g. `net:[4026532301]`).
fn pids_in_netns(net_ns: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.as_os_str() == net_ns)
        })
        .collect()
}

/// True when `pid` is a live (non-zombie) process in `net_ns`; false once it has exited,
/// even if its pid has been recycled by a process elsewhere.
fn alive_in(pid: u32, net_ns: &str) -> bool {
    fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|link| link.as_os_str() == net_ns)
}

/// Interface names (with their index) of the test process's own network namespace.
fn own_interfaces() -> BTreeSet<String> {
    let output = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("run ip -o link");
    assert!(output.status.success(), "ip -o link failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        // "2: eth0: <BROADCAST,...> mtu ..." -> "2: eth0"; flags and counters may change.
        .filter_map(|line| {
            let mut fields = line.splitn(3, ": ");
            Some(format!("{}: {}", fields.next()?, fields.next()?))
        })
        .collect()
}

fn require_root() {
    assert!(is_root(), "this test creates namespaces: run it as root");
}

#[test]
fn wait_for_returns_the_first_some() {
    let mut polls = 0;
    let value = wait_for(
        "the third poll",
        Duration::from_secs(5),
        Duration::from_millis(1),
        || {
            polls += 1;
            (polls == 3).then_some(polls * 10)
        },
    );
    assert_eq!((value, polls), (30, 3));
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_for_panics_naming_what_it_waited_for() {
    let start = Instant::now();
    wait_for(
        "the impossible",
        Duration::from_millis(30),
        Duration::from_millis(5),
        || {
            assert!(start.elapsed() < Duration::from_secs(5), "wait_for overran");
            None::<()>
        },
    );
}

#[test]
#[ignore = "needs root"]
fn two_hosts_on_a_lan_ping_each_other_and_learn_macs() {
    require_root();
    let lan = Lan::new(1);
    let alpha = Host::new("alpha");
    let beta = Host::new("beta");
    let alpha_mac = lan.attach(&alpha, "eth0", Some(&lan.cidr(1)));
    let beta_mac = lan.attach(&beta, "eth0", Some(&lan.cidr(2)));
    assert_ne!(alpha_mac, beta_mac);
    assert_eq!(alpha.mac("eth0"), alpha_mac);

    assert_eq!(
        alpha.neigh(&lan.ip(2)),
        None,
        "fresh host has an empty ARP table"
    );
    alpha.sh_ok(&format!("ping -c1 -W1 {}", lan.ip(2)));
    beta.sh_ok(&format!("ping -c1 -W1 {}", lan.ip(1)));
    assert!(alpha.ping(&lan.ip(254)), "alpha reaches the switch");
    assert!(lan.switch.ping(&lan.ip(2)), "the switch reaches beta");
    assert!(!alpha.ping(&lan.ip(3)), "nobody has .3");

    assert_eq!(alpha.neigh(&lan.ip(2)), Some(beta_mac.clone()));
    assert_eq!(beta.neigh(&lan.ip(1)), Some(alpha_mac.clone()));
    assert_eq!(lan.switch.neigh(&lan.ip(2)), Some(beta_mac));

    // IPv6 addresses are usable at once (attach adds them without DAD).
    let gamma = Host::new("gamma");
    lan.attach(&gamma, "eth0", Some(&format!("{}/64", lan.ip6(3))));
    gamma.sh_ok(&format!("ping -c1 -W1 {}", lan.ip6(0xfe)));
}

#[test]
#[ignore = "needs root"]
fn a_host_may_sit_on_two_lans() {
    require_root();
    // The same subnet numbers as other tests: LANs are isolated from each other.
    let (public, replication) = (Lan::new(1), Lan::new(2));
    let db1 = Host::new("db1");
    let db2 = Host::new("db2");
    for (n, host) in [(1, &db1), (2, &db2)] {
        public.attach(host, "eth0", Some(&public.cidr(n)));
        replication.attach(host, "eth1", Some(&replication.cidr(n)));
    }
    db1.sh_ok(&format!("ping -c1 -W1 {}", replication.ip(2)));
    db2.sh_ok(&format!("ping -c1 -W1 {}", public.ip(1)));
    let links = db1.sh_ok("ip -br link");
    let names: BTreeSet<&str> = links
        .lines()
        .filter_map(|line| line.split(['@', ' ']).next())
        .collect();
    assert_eq!(names, BTreeSet::from(["eth0", "eth1", "lo"]));
    assert_eq!((public.subnet(), replication.subnet()), (1, 2));
}

#[test]
#[ignore = "needs root"]
fn commands_run_in_the_hosts_namespaces_never_in_ours() {
    require_root();
    let host = Host::new("ns-check");
    for kind in ["net", "mnt", "uts"] {
        let ours = fs::read_link(format!("/proc/self/ns/{kind}")).expect("own namespace");
        let anchors = fs::read_link(format!("/proc/{}/ns/{kind}", host.pid())).expect("anchor");
        let inside = host.sh_ok(&format!("readlink /proc/self/ns/{kind}"));
        assert_ne!(
            anchors, ours,
            "{kind}: the anchor has a namespace of its own"
        );
        assert_eq!(
            inside.trim(),
            anchors.to_string_lossy(),
            "{kind}: commands join it"
        );
    }
    assert_eq!(
        host.net_ns(),
        fs::read_link(format!("/proc/{}/ns/net", host.pid()))
            .expect("anchor netns")
            .to_string_lossy()
    );
}

#[test]
#[ignore = "needs root"]
fn the_hostname_inside_is_the_host_name() {
    require_root();
    let host = Host::new("db-node-7");
    assert_eq!(host.name(), "db-node-7");
    assert_eq!(host.sh_ok("hostname").trim(), "db-node-7");
    assert_eq!(host.sh_ok("uname -n").trim(), "db-node-7");
    let ours = nix::unistd::gethostname().expect("gethostname");
    assert_ne!(
        ours.to_str(),
        Some("db-node-7"),
        "the test's own hostname is untouched"
    );
}

#[test]
#[ignore = "needs root"]
fn run_is_a_private_tmpfs_per_host() {
    require_root();
    let one = Host::new("run-one");
    let two = Host::new("run-two");
    assert_eq!(one.sh_ok("stat -f -c %T /run").trim(), "tmpfs");
    assert_eq!(one.sh_ok("stat -c %a /run/lock").trim(), "1777");

    let root_dev = fs::metadata("/run").expect("stat /run").dev();
    let dev_of_run = |host: &Host| -> u64 {
        let dev = host.sh_ok("stat -c %d /run");
        dev.trim().parse().expect("stat -c %d prints a number")
    };
    let (one_dev, two_dev) = (dev_of_run(&one), dev_of_run(&two));
    assert_ne!(one_dev, root_dev);
    assert_ne!(one_dev, two_dev);

    let marker = format!("harness-marker-{}", one.pid());
    one.sh_ok(&format!(
        "mkdir -p /run/resource-agents && touch /run/resource-agents/{marker}"
    ));
    assert!(
        one.sh(&format!("test -e /run/resource-agents/{marker}"))
            .status
            .success()
    );
    assert!(
        !two.sh(&format!("test -e /run/resource-agents/{marker}"))
            .status
            .success()
    );
    assert!(!fs::exists(format!("/run/resource-agents/{marker}")).unwrap_or(true));

    // The rest of the filesystem is shared, so tests can hand files to hosts.
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("note"), "from the test").expect("write note");
    let note = one.sh_ok(&format!("cat {}/note", dir.path().display()));
    assert_eq!(note, "from the test");
}

#[test]
#[ignore = "needs root"]
fn sysfs_lists_the_hosts_own_interfaces() {
    require_root();
    let lan = Lan::new(3);
    let host = Host::new("sysfs");
    assert_eq!(
        host.sh_ok("ls /sys/class/net")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["lo"]
    );
    lan.attach(&host, "eth0", None);
    let names = host.sh_ok("ls /sys/class/net");
    assert_eq!(names.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    assert_eq!(
        host.sh_ok("cat /sys/class/net/lo/operstate").trim(),
        "unknown"
    );
    assert!(host.sh_ok("ip -br link show lo").contains("UP"), "lo is up");
    if fs::exists("/sys/fs/cgroup").unwrap_or(false) {
        let listing = |dir: &str| {
            let mut names: Vec<_> = fs::read_dir(dir)
                .map(|entries| entries.filter_map(|e| Some(e.ok()?.file_name())).collect())
                .unwrap_or_default();
            names.sort();
            names
        };
        let inside = listing(&format!("/proc/{}/root/sys/fs/cgroup", host.pid()));
        assert_eq!(
            inside,
            listing("/sys/fs/cgroup"),
            "cgroup mounts carried over"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn commands_get_a_scrubbed_env_and_a_cwd_inside_the_host() {
    require_root();
    let host = Host::new("env");
    let env = host.command("env").output().expect("run env");
    let env = String::from_utf8_lossy(&env.stdout).into_owned();
    let mut vars: Vec<&str> = env.lines().collect();
    vars.sort();
    assert_eq!(vars, ["LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);

    assert_eq!(host.sh_ok("pwd").trim(), "/");
    host.sh_ok("mkdir /run/only-in-host && touch /run/only-in-host/marker");
    let output = host
        .command_in("/run/only-in-host", "ls")
        .output()
        .expect("run ls");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "marker\n");

    // A current_dir that both views share works as with any Command.
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("shared"), "").expect("write");
    let output = host
        .command("ls")
        .current_dir(dir.path())
        .output()
        .expect("run ls");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "shared\n");

    let output = host
        .command("true")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("X", "1")
        .output();
    assert!(output.expect("run true").status.success());
}

#[test]
#[ignore = "needs root"]
fn dropping_a_host_kills_its_processes_and_frees_its_netns() {
    require_root();
    let lan = Lan::new(4);
    let host = Host::new("doomed");
    lan.attach(&host, "eth0", Some(&lan.cidr(1)));
    let net_ns = host.net_ns().to_owned();
    assert_ne!(
        fs::read_link("/proc/self/ns/net")
            .expect("own netns")
            .as_os_str(),
        net_ns.as_str()
    );

    let mut child = host
        .command("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep");
    let guarded = host.spawn(host.command("sleep").arg("1001").stdin(Stdio::null()));
    // A daemon: detached from us (setsid, reparented), found only by its namespace.
    let daemon: u32 = host
        .sh_ok("setsid sleep 1002 </dev/null >/dev/null 2>&1 & echo $!")
        .trim()
        .parse()
        .expect("pid of the daemon");
    let members = host.pids();
    for pid in [child.id(), guarded.pid(), daemon] {
        assert!(members.contains(&pid), "{pid} listed in {members:?}");
    }
    assert_eq!(
        lan.switch
            .sh_ok("ls /sys/class/net")
            .split_whitespace()
            .count(),
        3
    );

    let start = Instant::now();
    drop(host);
    let teardown = start.elapsed();
    eprintln!("teardown of a host with 3 processes and a veth: {teardown:?}");

    assert_eq!(
        child.wait().expect("reap child").signal(),
        Some(libc::SIGKILL)
    );
    assert!(
        !alive_in(guarded.pid(), &net_ns),
        "guarded child killed by the host"
    );
    assert!(!alive_in(daemon, &net_ns), "daemon killed");
    assert_eq!(
        pids_in_netns(&net_ns),
        Vec::<u32>::new(),
        "nothing left in {net_ns}"
    );
    drop(guarded); // reaps the already killed child

    // The kernel destroys the netns (and so the veth pair) once nothing holds it.
    wait_for(
        "the switch port of the dropped host to vanish",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || {
            let names = lan.switch.sh_ok("ls /sys/class/net");
            (!names.contains("port1")).then_some(())
        },
    );
}

#[test]
#[ignore = "needs root"]
fn dropping_a_host_while_a_test_panics_still_cleans_up() {
    require_root();
    let mut seen = None;
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let host = Host::new("panicky");
        let guarded = host.spawn(host.command("sleep").arg("1000"));
        let daemon = host.sh_ok("sleep 1001 </dev/null >/dev/null 2>&1 & echo $!");
        seen = Some((host.net_ns().to_owned(), host.pid(), guarded.pid(), daemon));
        panic!("deliberate panic with a live host");
    }));
    assert!(result.is_err(), "the closure panicked");
    let (net_ns, anchor, guarded, daemon) = seen.expect("host was created");
    let daemon: u32 = daemon.trim().parse().expect("daemon pid");
    for pid in [anchor, guarded, daemon] {
        assert!(!alive_in(pid, &net_ns), "{pid} is gone");
    }
    assert_eq!(pids_in_netns(&net_ns), Vec::<u32>::new());
}

#[test]
#[ignore = "needs root"]
fn a_host_outlives_the_thread_that_created_it() {
    require_root();
    let host = thread::spawn(|| Host::new("from-thread"))
        .join()
        .expect("thread");
    thread::sleep(Duration::from_millis(20));
    assert_eq!(host.sh_ok("hostname").trim(), "from-thread");
    assert!(host.ping("127.0.0.1"));
}

#[test]
#[ignore = "needs root"]
fn the_root_namespace_interfaces_are_untouched() {
    require_root();
    let before = own_interfaces();
    let lan = Lan::new(5);
    let alpha = Host::new("iso-alpha");
    let beta = Host::new("iso-beta");
    lan.attach(&alpha, "eth0", Some(&lan.cidr(1)));
    lan.attach(&beta, "eth0", Some(&lan.cidr(2)));
    alpha.sh_ok(&format!("ping -c1 -W1 {}", lan.ip(2)));
    assert_eq!(own_interfaces(), before, "while the LAN exists");
    drop((alpha, beta, lan));
    assert_eq!(own_interfaces(), before, "after the LAN is gone");
}

#[test]
#[ignore = "needs root"]
fn hosts_are_fast_to_create_and_drop() {
    require_root();
    const ROUNDS: u32 = 10;
    let (mut create, mut teardown) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let start = Instant::now();
        let host = Host::new(&format!("fast{round}"));
        create += start.elapsed();
        let start = Instant::now();
        drop(host);
        teardown += start.elapsed();
    }
    let start = Instant::now();
    let lan = Lan::new(6);
    let lan_created = start.elapsed();
    let start = Instant::now();
    let hosts: Vec<Host> = (1..=2)
        .map(|n| Host::new(&format!("lan-fast{n}")))
        .collect();
    for (n, host) in (1..).zip(&hosts) {
        lan.attach(host, "eth0", Some(&lan.cidr(n)));
    }
    let two_attached = start.elapsed();
    let start = Instant::now();
    drop((hosts, lan));
    let lan_dropped = start.elapsed();
    eprintln!(
        "host: create {:?}, drop {:?} (mean of {ROUNDS}); Lan::new {lan_created:?}; \
         2 hosts created+attached {two_attached:?}; drop of all three {lan_dropped:?}",
        create / ROUNDS,
        teardown / ROUNDS
    );
    // Generous bounds: CI machines are small and busy; this catches pathologies only.
    assert!(
        create / ROUNDS < Duration::from_millis(500),
        "host creation is slow"
    );
    assert!(
        teardown / ROUNDS < Duration::from_millis(500),
        "host teardown is slow"
    );
}

/// Runs only as the child process of `hosts_are_swept_when_the_test_process_is_killed`
/// (otherwise it passes at once): creates a host with processes in it, writes them to the
/// file named by `KILLED_CHILD_ENV` and waits to be SIGKILLed, so no destructor runs.
#[test]
#[ignore = "needs root"]
fn killed_test_process_child() {
    let Some(report_path) = std::env::var_os(KILLED_CHILD_ENV) else {
        return;
    };
    let host = Host::new("orphaned");
    let guarded = host.spawn(host.command("sleep").arg("1000"));
    let daemon = host.sh_ok("setsid sleep 1001 </dev/null >/dev/null 2>&1 & echo $!");
    let report = format!(
        "{} {} {} {}",
        host.net_ns(),
        host.pid(),
        guarded.pid(),
        daemon.trim()
    );
    let partial = format!("{}.partial", report_path.to_string_lossy());
    fs::write(&partial, report).expect("write report");
    fs::rename(&partial, &report_path).expect("publish report");
    thread::sleep(Duration::from_secs(60));
}

#[test]
#[ignore = "needs root"]
fn hosts_are_swept_when_the_test_process_is_killed() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("report");
    let exe = std::env::current_exe().expect("path of the test binary");
    // Its own process group, killed as a whole below: like Ctrl-C or `timeout` on `cargo test`.
    let mut child = Command::new(exe)
        .args(["--exact", "harness::killed_test_process_child"])
        .args(["--include-ignored", "--test-threads=1"])
        .env(KILLED_CHILD_ENV, &report_path)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the test binary again");
    let report = panic::catch_unwind(|| {
        wait_for(
            "the child test process to report its host",
            Duration::from_secs(30),
            Duration::from_millis(10),
            || fs::read_to_string(&report_path).ok(),
        )
    });
    // Our child leads its own group (process_group(0) above), so its pid names that group.
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let status = child.wait().expect("reap the child test process");
    let report = report.unwrap_or_else(|_| panic!("child reported no host ({status})"));
    let fields: Vec<&str> = report.split_whitespace().collect();
    let net_ns = fields[0];
    let pids: Vec<u32> = fields[1..]
        .iter()
        .map(|pid| pid.parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 3, "{report}");
    // The anchor, in its own session, survives the group kill, reads EOF and sweeps.
    wait_for(
        "the orphaned host's processes to be swept",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || pids_in_netns(net_ns).is_empty().then_some(()),
    );
    for pid in pids {
        assert!(!alive_in(pid, net_ns), "{pid} is gone");
    }
}
