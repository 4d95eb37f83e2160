//! hb-monitor running a haresources group that mixes ferroha's VIP agent with a Heartbeat
//! resource script (`resource.d`) and an LSB init script (`--init-dir`), on two nodes: the
//! calls each script gets, in order and with their arguments, as Heartbeat's ResourceManager
//! makes them; `status` read from the output for the Heartbeat script and from the exit
//! code for the init script; a takeover after a crash; a status that says "not running"
//! restarting and then failing the group over; a hanging start killed at `--op-timeout`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::util::hb_mixed::{Mixed, heartbeat_installed};
use crate::util::host::wait_for;

use crate::util::hb_cluster::{Cluster, VIP};

/// The group: our VIP, the Heartbeat script with two arguments, the init script. Both
/// scripts are written without a class: hb-monitor finds hbsvc in resource.d and lsbsvc,
/// which is not there, in the init directory.
fn haresources() -> String {
    format!("n1 IPaddr2::{VIP}/24/eth0 hbsvc::alpha::beta lsbsvc\n")
}

/// Each call is a line `<ns since the epoch> <HA_CURHOST> <name> <arguments and action>`
/// in `$HA_DIR/calls`; a start or stop of hbsvc also says whether the VIP was up then.
/// `status` prints "is stopped" (exit 0) when stopped: only its output says so. With
/// `hbsvc.lie` in the directory it prints "is not running" whatever the truth.
const HBSVC: &str = r#"#!/bin/sh
for action; do :; done
extra=
case "$action" in start|stop)
    if ip -o addr show | grep -q " 198.18.1.100/"; then extra=vip=up; else extra=vip=down; fi
esac
echo "$(date +%s%N) $HA_CURHOST hbsvc $* $extra" >> "$HA_DIR/calls"
state=$HA_DIR/hbsvc.running
case "$action" in
start) touch "$state" ;;
stop) rm -f "$state" ;;
status)
    if [ -e "$HA_DIR/hbsvc.lie" ]; then echo "hbsvc is not running"
    elif [ -e "$state" ]; then echo "hbsvc is running"
    else echo "hbsvc is stopped"; fi ;;
esac
exit 0
"#;

/// An LSB init script whose start leaves a "daemon" behind that keeps the script's stdout
/// and stderr open (as a careless init script does), and whose stopped `status` prints
/// "running" but exits 3: only its exit code says it is stopped. With `lsbsvc.hang` in the
/// directory its start hangs, with a child, recording both pids.
const LSBSVC: &str = r#"#!/bin/sh
echo "$(date +%s%N) $HA_CURHOST lsbsvc $*" >> "$HA_DIR/calls"
state=$HA_DIR/lsbsvc.running
case "$1" in
start)
    if [ -e "$HA_DIR/lsbsvc.hang" ]; then
        echo $$ > "$HA_DIR/lsbsvc.pid"
        sleep 1000 &
        echo $! > "$HA_DIR/lsbsvc.child"
        wait
    fi
    sleep 1000 &
    echo $! > "$HA_DIR/lsbsvc.daemon"
    touch "$state" ;;
stop)
    [ -e "$HA_DIR/lsbsvc.daemon" ] && kill "$(cat "$HA_DIR/lsbsvc.daemon")" 2>/dev/null
    rm -f "$state" "$HA_DIR/lsbsvc.daemon" ;;
status)
    if [ -e "$state" ]; then echo "lsbsvc is running"; exit 0; fi
    echo "lsbsvc is running? no"; exit 3 ;;
esac
exit 0
"#;

fn install(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Two nodes with the group, the scripts installed in each node's directories, not yet
/// started; the init scripts are in `<node's directory>/init.d`.
fn cluster(ha_cf_extra: &str) -> Cluster {
    let mut c = Cluster::stopped(2, &haresources(), ha_cf_extra, "400ms", |_| {});
    for dir in &c.dirs {
        install(&dir.path().join("resource.d/hbsvc"), HBSVC);
        install(&dir.path().join("init.d/lsbsvc"), LSBSVC);
    }
    c.run_args = vec!["--init-dir".into(), "{dir}/init.d".into()];
    c
}

/// Node i's calls so far: (ns since the epoch, the call without time and node), each line
/// checked to come from node i (HA_CURHOST).
fn calls(c: &Cluster, i: usize) -> Vec<(u128, String)> {
    calls_in(&c.dirs[i].path().join("calls"), c.hosts[i].name())
}

/// The calls recorded in `file`, each checked to come from `node`.
fn calls_in(file: &Path, node: &str) -> Vec<(u128, String)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut words = line.splitn(3, ' ');
            let (at, from, call) = (
                words.next().unwrap().parse().unwrap(),
                words.next().unwrap_or(""),
                words.next().unwrap_or("").trim().to_string(),
            );
            assert_eq!(from, node, "HA_CURHOST of {line:?}");
            (at, call)
        })
        .collect()
}

/// Only the calls, in order.
fn words(calls: &[(u128, String)]) -> Vec<&str> {
    calls.iter().map(|(_, c)| c.as_str()).collect()
}

/// The start-up clean-up every node does: stop right to left (the VIP's stop is not a
/// script's).
const CLEAN: [&str; 2] = ["lsbsvc stop", "hbsvc alpha beta stop vip=down"];

/// A start as ResourceManager makes it, left to right: each script asked for its status
/// first (stopped: hbsvc by what it prints, lsbsvc by its exit code), then started.
const START: [&str; 4] = [
    "hbsvc alpha beta status",
    "hbsvc alpha beta start vip=up",
    "lsbsvc status",
    "lsbsvc start",
];

/// The start and stop calls only (a monitor is a status call too).
fn starts_and_stops(calls: &[(u128, String)]) -> Vec<&str> {
    words(calls)
        .into_iter()
        .filter(|c| !c.ends_with("status"))
        .collect()
}

/// Node i's calls once it has made at least `n` (or `within` has passed: the assertion on
/// them then shows what it made).
fn wait_calls(c: &Cluster, i: usize, n: usize, within: Duration) -> Vec<(u128, String)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let calls = calls(c, i);
        if calls.len() >= n || std::time::Instant::now() >= deadline {
            return calls;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs root"]
fn a_mixed_group_runs_in_heartbeats_order_and_a_crash_moves_it() {
    let mut c = cluster("auto_failback off\nmonitor_interval 0\n");
    c.start(0);
    c.start(1);
    c.wait_vip_on(0, Duration::from_secs(20));
    let n1: Vec<&str> = CLEAN.iter().chain(&START).copied().collect();
    assert_eq!(
        words(&wait_calls(&c, 0, n1.len(), Duration::from_secs(5))),
        n1
    );
    // The init script's "daemon" still holds what was its stdout: the start ended anyway.
    assert!(c.dirs[0].path().join("lsbsvc.daemon").exists());
    assert_eq!(words(&wait_calls(&c, 1, 2, Duration::from_secs(5))), CLEAN);
    c.crash(0);
    c.wait_vip_on(1, Duration::from_secs(10));
    let n2: Vec<&str> = CLEAN.iter().chain(&START).copied().collect();
    assert_eq!(
        words(&wait_calls(&c, 1, n2.len(), Duration::from_secs(5))),
        n2
    );
    assert_eq!(words(&calls(&c, 0)), n1, "the crashed node made calls");
}

#[test]
#[ignore = "needs root"]
fn a_status_saying_not_running_restarts_the_script_then_fails_the_group_over() {
    // One local restart within a minute; the second failure moves the group.
    let mut c = cluster("auto_failback off\nmonitor_interval 200ms\nrestart_limit 1 60\n");
    c.start(0);
    c.start(1);
    c.wait_vip_on(0, Duration::from_secs(20));
    let started = wait_calls(&c, 0, CLEAN.len() + START.len(), Duration::from_secs(5)).len();
    // Monitors now ask both scripts for their status, which they pass.
    let monitors = wait_calls(&c, 0, started + 4, Duration::from_secs(5));
    assert!(
        words(&monitors[started..])
            .iter()
            .all(|c| c.ends_with("status")),
        "{monitors:?}"
    );
    // hbsvc's status says "hbsvc is not running" (the word "running" in it, exit 0).
    std::fs::write(c.dirs[0].path().join("hbsvc.lie"), "").unwrap();
    c.wait_vip_on(1, Duration::from_secs(15));
    let n1 = calls(&c, 0);
    assert_eq!(
        starts_and_stops(&n1[started..]),
        [
            // The restart: from hbsvc to the end, stopped right to left and started again.
            "lsbsvc stop",
            "hbsvc alpha beta stop vip=up",
            "hbsvc alpha beta start vip=up",
            "lsbsvc start",
            // Its status still says not running: the group goes to n2.
            "lsbsvc stop",
            "hbsvc alpha beta stop vip=up",
        ]
    );
    let n2 = wait_calls(&c, 1, CLEAN.len() + START.len(), Duration::from_secs(5));
    assert_eq!(
        words(&n2[..CLEAN.len() + START.len()]),
        [&CLEAN[..], &START[..]].concat()
    );
    let log = std::fs::read_to_string(c.dirs[0].path().join("daemon.log")).unwrap();
    assert!(
        log.contains(r#"not running (status printed \"hbsvc is not running\""#)
            || log.contains(r#"not running (status printed "hbsvc is not running""#),
        "n1's log does not say why hbsvc failed:\n{log}"
    );
}

#[test]
#[ignore = "needs root"]
fn a_hanging_start_is_killed_with_its_children_at_the_op_timeout() {
    let mut c = cluster("auto_failback off\nmonitor_interval 0\n");
    c.op_timeout = 2;
    std::fs::write(c.dirs[0].path().join("lsbsvc.hang"), "").unwrap();
    c.start(0);
    c.start(1);
    // n1's start of lsbsvc hangs; at the time limit it is killed, n1 undoes the group and
    // n2 takes it.
    c.wait_vip_on(1, Duration::from_secs(30));
    assert!(!c.has(0, VIP), "n1 kept the VIP of its failed start");
    let n1 = calls(&c, 0);
    let undo = ["lsbsvc stop", "hbsvc alpha beta stop vip=up"];
    let expected: Vec<&str> = CLEAN.iter().chain(&START).chain(&undo).copied().collect();
    assert_eq!(words(&n1), expected);
    // The action began with lsbsvc's status; its time limit counts from there.
    let (began, stop) = (n1[CLEAN.len() + 2].0, n1[CLEAN.len() + 4].0);
    let took = Duration::from_nanos((stop - began) as u64);
    eprintln!(
        "lsbsvc's start action ended {} ms after it began (op-timeout 2 s)",
        took.as_millis()
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "killed after {took:?}, not at the 2 s limit"
    );
    for file in ["lsbsvc.pid", "lsbsvc.child"] {
        let pid: u32 = std::fs::read_to_string(c.dirs[0].path().join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(gone(pid), "{file}: {pid} outlived the time limit");
    }
}

/// Whether process `pid` has exited (gone, or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// An LSB init script both Heartbeat and hb-monitor read alike: stopped, it prints nothing
/// and exits 3; running, it says so and exits 0.
const PLAIN_LSBSVC: &str = r#"#!/bin/sh
echo "$(date +%s%N) $HA_CURHOST lsbsvc $*" >> "$HA_DIR/calls"
state=$HA_DIR/lsbsvc.running
case "$1" in
start) touch "$state" ;;
stop) rm -f "$state" ;;
status)
    if [ -e "$state" ]; then echo "lsbsvc is running"; exit 0; fi
    exit 3 ;;
esac
exit 0
"#;

/// Until node i of `m` has recorded `call` (Heartbeat's first resource acquisition takes
/// its 11-14 s).
fn wait_for_call(m: &Mixed, i: usize, call: &str) {
    let file = m.dir(i).join("ha.d/calls");
    let node = format!("n{}", i + 1);
    wait_for(
        &format!("{call:?} on {node}"),
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            calls_in(&file, &node)
                .iter()
                .any(|(_, c)| c == call)
                .then_some(())
        },
    );
}

/// SIGTERM to hb-monitor on node i of `m`, and its exit.
fn terminate_hb_monitor(m: &mut Mixed, i: usize) {
    let mut daemon = m.hb_monitor[i].take().unwrap();
    // SAFETY: our own, unreaped child.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGTERM) };
    let status = wait_for(
        "hb-monitor to exit",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || daemon.child.try_wait().ok().flatten(),
    );
    assert!(status.success(), "{status}");
}

#[test]
#[ignore = "needs root"]
fn heartbeat_and_hb_monitor_call_the_scripts_alike() {
    heartbeat_installed();
    let mut m = Mixed::build("off", 100, 600, &haresources(), |_, host, dir| {
        install(&dir.join("ha.d/resource.d/hbsvc"), HBSVC);
        install(&dir.join("init.d/lsbsvc"), PLAIN_LSBSVC);
        // Both daemons look for init scripts in /etc/init.d.
        host.sh_ok(&format!(
            "mount --bind {}/init.d /etc/init.d",
            dir.display()
        ));
    });
    let recorded = |m: &Mixed, i: usize| -> Vec<String> {
        calls_in(&m.dir(i).join("ha.d/calls"), &format!("n{}", i + 1))
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    };
    // Heartbeat: n1 takes the group, hands it to n2 on its orderly stop, n2 stops too.
    m.start_heartbeat(0);
    m.start_heartbeat(1);
    wait_for_call(&m, 0, "lsbsvc start");
    m.stop_heartbeat(0);
    wait_for_call(&m, 1, "lsbsvc start");
    m.stop_heartbeat(1);
    let heartbeat = [recorded(&m, 0), recorded(&m, 1)];
    // The same with hb-monitor, from the same files (monitors off: Heartbeat has none).
    for i in 0..2 {
        let dir = m.dir(i).join("ha.d");
        std::fs::remove_file(dir.join("calls")).unwrap();
        let mut ha_cf = std::fs::read_to_string(dir.join("ha.cf")).unwrap();
        ha_cf += "monitor_interval 0\n";
        std::fs::write(dir.join("ha.cf"), ha_cf).unwrap();
    }
    m.start_hb_monitor(0);
    m.start_hb_monitor(1);
    wait_for_call(&m, 0, "lsbsvc start");
    terminate_hb_monitor(&mut m, 0);
    wait_for_call(&m, 1, "lsbsvc start");
    terminate_hb_monitor(&mut m, 1);
    let hb_monitor = [recorded(&m, 0), recorded(&m, 1)];
    eprintln!("Heartbeat: {heartbeat:?}\nhb-monitor: {hb_monitor:?}");
    let whole: Vec<&str> = START
        .iter()
        .copied()
        .chain(["lsbsvc stop", "hbsvc alpha beta stop vip=up"])
        .collect();
    for i in 0..2 {
        assert_eq!(heartbeat[i], whole, "Heartbeat on n{}", i + 1);
        // hb-monitor also stops the group once as it starts (Heartbeat does not).
        assert_eq!(
            hb_monitor[i][..CLEAN.len()],
            CLEAN,
            "hb-monitor on n{}",
            i + 1
        );
        assert_eq!(
            hb_monitor[i][CLEAN.len()..],
            heartbeat[i],
            "hb-monitor on n{} called the scripts otherwise than Heartbeat",
            i + 1
        );
    }
}
