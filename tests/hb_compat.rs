//! hb-monitor in a cluster with Debian's `heartbeat` 3.0.6 (issue 10): the same `ha.cf`,
//! `haresources` and `authkeys`, Heartbeat's wire format both ways, membership, the resource
//! hand-over (`hb_standby` / `hb-monitor standby`), death detection, and the rolling
//! migration of a live two-node Heartbeat cluster to hb-monitor, one node at a time, with the
//! VIP sampled every 10 ms from outside the nodes.
//!
//! Each node is a test host (network, mount and UTS namespaces) with private copies of
//! `/etc/ha.d` and `/var/lib/heartbeat` bind-mounted in its mount namespace and a private
//! `/run` (Heartbeat's pid file and API sockets): the same files serve Heartbeat first and
//! hb-monitor after the switch (`hb-monitor run -c /etc/ha.d`; it runs `IPaddr2::` lines with
//! ferroha's vip agent, which takes IPaddr2's parameters).

use std::time::{Duration, Instant};

use super::util::agent::built_bin;
use super::util::hb_cluster::has_local_address;
use super::util::hb_mixed::{HEARTBEAT, Mixed, heartbeat_installed, peer};
use super::util::host::wait_for;
use super::util::stack::VIP;

const KEEPALIVE_MS: u64 = 100;
const DEADTIME_MS: u64 = 600;

/// Samples which node holds the VIP every 10 ms from outside the nodes; reports the gaps
/// (no holder) and the moments with two holders.
struct VipWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, Vec<Duration>, u64)>>,
}

impl VipWatch {
    fn start(pids: [u32; 2]) -> VipWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut samples, mut doubles) = (0u64, 0u64);
            let mut gaps = vec![];
            let mut gap_since: Option<Instant> = None;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let holders = pids.iter().filter(|p| has_local_address(**p, VIP)).count();
                samples += 1;
                if holders > 1 {
                    doubles += 1;
                }
                match (holders, gap_since) {
                    (0, None) => gap_since = Some(Instant::now()),
                    (1.., Some(t)) => {
                        gaps.push(t.elapsed());
                        gap_since = None;
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(t) = gap_since {
                gaps.push(t.elapsed());
            }
            (samples, gaps, doubles)
        });
        VipWatch {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, Vec<Duration>, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
#[ignore = "needs root"]
fn heartbeat_and_hb_monitor_see_each_other_hand_over_both_ways_and_detect_death() {
    heartbeat_installed();
    let mut m = Mixed::new();
    m.start_hb_monitor(1);
    m.start_heartbeat(0);
    // Heartbeat's start-up: the preferred node n1 takes the VIP once it knows n2's state.
    m.wait_vip_only_on(0, Duration::from_secs(40));

    // Membership both ways.
    let nodestatus = m.hosts[0]
        .sh_ok("cl_status nodestatus n2")
        .trim()
        .to_string();
    assert_eq!(nodestatus, "active", "Heartbeat's view of hb-monitor");
    let status = m.status(1);
    let n1 = peer(&status, "n1");
    assert_eq!(n1["state"], "up", "{status}");
    assert_eq!(n1["kind"], "heartbeat", "{status}");
    assert!(n1["generation"].as_u64().is_some_and(|g| g > 0), "{status}");
    assert_eq!(n1["holding"], "held", "{status}");
    assert_eq!(status["dropped"]["bad_signature"], 0, "{status}");
    assert_eq!(status["dropped"]["incomplete"], 0, "{status}");

    // hb_standby on the Heartbeat node: the group moves to hb-monitor.
    let watch = VipWatch::start([m.hosts[0].pid(), m.hosts[1].pid()]);
    let t = Instant::now();
    m.hosts[0].sh_ok("/usr/share/heartbeat/hb_standby >/dev/null 2>&1 || true");
    m.wait_vip_only_on(1, Duration::from_secs(20));
    let to_hb_monitor = t.elapsed();
    wait_for(
        "n2 to say it holds the group",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || (m.status(1)["groups"][0]["holding"] == "held").then_some(()),
    );

    // hb-monitor standby: back to the Heartbeat node.
    let t = Instant::now();
    let out = m.hosts[1]
        .command(built_bin("hb-monitor"))
        .arg("standby")
        .output()
        .unwrap();
    assert!(out.status.success());
    m.wait_vip_only_on(0, Duration::from_secs(20));
    let to_heartbeat = t.elapsed();
    let (samples, gaps, doubles) = watch.finish();
    eprintln!(
        "hb_standby -> hb-monitor: {} ms; hb-monitor standby -> heartbeat: {} ms; VIP gaps {:?}; {samples} samples, {doubles} with two holders",
        to_hb_monitor.as_millis(),
        to_heartbeat.as_millis(),
        gaps.iter().map(|g| g.as_millis()).collect::<Vec<_>>()
    );
    assert_eq!(doubles, 0, "two holders of the VIP");
    let complaints = m.protocol_complaints(0, 0);
    assert!(
        complaints.is_empty(),
        "Heartbeat complained:\n{}",
        complaints.join("\n")
    );

    // hb-monitor's standby lasts until `takeover`: leave it (the group stays where it is,
    // Heartbeat ignores hb-monitor's takeover wish), so that n2 may take over on death.
    let out = m.hosts[1]
        .command(built_bin("hb-monitor"))
        .arg("takeover")
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        m.has_vip(0) && !m.has_vip(1),
        "the VIP stays on the Heartbeat node"
    );

    // Death both ways: the link between them cut, each declares the other dead within its
    // deadtime; hb-monitor (no fence_command) takes the VIP, which Heartbeat keeps too: the
    // split brain a cluster without fencing has, shown, not hidden.
    let t = Instant::now();
    m.hosts[0].sh_ok("ip link set eth0 down");
    wait_for(
        "hb-monitor to declare n1 dead",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || {
            m.hb_monitor_log(1)
                .contains("node n1 is dead")
                .then_some(())
        },
    );
    let ours = t.elapsed();
    wait_for(
        "heartbeat to declare n2 dead",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || {
            m.heartbeat_log(0)
                .lines()
                .any(|l| l.contains("n2") && l.contains("dead"))
                .then_some(())
        },
    );
    let theirs = t.elapsed();
    wait_for(
        "hb-monitor to take the VIP",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || m.has_vip(1).then_some(()),
    );
    eprintln!(
        "link cut: hb-monitor saw n1 dead after {} ms, heartbeat saw n2 dead after {} ms (deadtime {DEADTIME_MS} ms)",
        ours.as_millis(),
        theirs.as_millis()
    );
    // Log polling adds up to a few ms; Heartbeat checks its timers every keepalive.
    let bound = Duration::from_millis(DEADTIME_MS + 2 * KEEPALIVE_MS + 300);
    assert!(ours <= bound, "hb-monitor: {ours:?} > {bound:?}");
    assert!(theirs <= bound, "heartbeat: {theirs:?} > {bound:?}");
    assert!(
        m.has_vip(0),
        "n1 keeps the VIP (no fencing): split brain, as documented"
    );
}

#[test]
#[ignore = "needs root"]
fn rolling_migration_from_heartbeat_to_hb_monitor_keeps_the_vip_up() {
    heartbeat_installed();
    let mut m = Mixed::new();
    m.start_heartbeat(0);
    m.start_heartbeat(1);
    m.wait_vip_only_on(0, Duration::from_secs(60));
    // Let Heartbeat finish its start-up on both nodes ("Initial resource acquisition
    // complete") before the first hand-over.
    wait_for(
        "both Heartbeat nodes to settle",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            (0..2)
                .all(|i| {
                    m.heartbeat_log(i)
                        .contains("Initial resource acquisition complete")
                })
                .then_some(())
        },
    );
    let watch = VipWatch::start([m.hosts[0].pid(), m.hosts[1].pid()]);
    let mut steps = vec![];
    let t0 = Instant::now();

    // 1. n2 (standby) switches to hb-monitor: stop Heartbeat there, start hb-monitor from
    //    the same files; it joins, learns that n1 holds the group, and stays standby.
    m.stop_heartbeat(1);
    // From here on n1's Heartbeat talks to hb-monitor: what it logs is checked.
    let n1_since = m.heartbeat_log(0).len();
    m.start_hb_monitor(1);
    wait_for(
        "n2 (hb-monitor) to see n1 holding the group",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let s = m.status(1);
            (peer(&s, "n1")["holding"] == "held" && s["groups"][0]["holding"] == "none")
                .then_some(())
        },
    );
    steps.push(("n2: heartbeat -> hb-monitor", t0.elapsed()));

    // 2. Hand the group over: hb_standby on n1 (still Heartbeat).
    m.hosts[0].sh_ok("/usr/share/heartbeat/hb_standby >/dev/null 2>&1 || true");
    m.wait_vip_only_on(1, Duration::from_secs(20));
    steps.push(("hb_standby on n1: group to n2", t0.elapsed()));

    // 3. n1 switches to hb-monitor; auto_failback off: the group stays on n2.
    m.stop_heartbeat(0);
    m.start_hb_monitor(0);
    wait_for(
        "n1 (hb-monitor) to see n2 holding the group",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let s = m.status(0);
            (peer(&s, "n2")["holding"] == "held"
                && peer(&s, "n2")["kind"] == "hb-monitor"
                && s["groups"][0]["holding"] == "none")
                .then_some(())
        },
    );
    steps.push(("n1: heartbeat -> hb-monitor", t0.elapsed()));

    // 4. Hand back to the preferred node, now between two hb-monitor nodes.
    let out = m.hosts[1]
        .command(built_bin("hb-monitor"))
        .arg("standby")
        .output()
        .unwrap();
    assert!(out.status.success());
    m.wait_vip_only_on(0, Duration::from_secs(20));
    steps.push(("hb-monitor standby on n2: group to n1", t0.elapsed()));
    std::thread::sleep(Duration::from_millis(300));
    let (samples, gaps, doubles) = watch.finish();

    for (what, at) in &steps {
        eprintln!("{:>7} ms  {what}", at.as_millis());
    }
    eprintln!(
        "VIP sampled {samples} times every 10 ms: gaps {:?} ms, {doubles} samples with two holders",
        gaps.iter().map(|g| g.as_millis()).collect::<Vec<_>>()
    );
    assert_eq!(doubles, 0, "two nodes held the VIP");
    assert!(
        gaps.len() <= 2,
        "the VIP was missing more often than the two hand-overs: {gaps:?}"
    );
    // Each hand-over waits for no timer: the taker starts the VIP on the giver's message
    // (Heartbeat's `info=done`, hb-monitor's heartbeat sent at once on the change), so a gap
    // is the giver's last stop step, one datagram and the taker's vip agent start, seen
    // through a 10 ms sampler: 10-36 ms in 14 runs, some beside a release build or three
    // other mixed clusters. The bound is about seven times that, as margin for a loaded
    // 2-core machine, where each of those processes and the sampler itself may wait tens
    // of milliseconds for a CPU; a takeover that waited for deadtime (600 ms) does not pass
    // it, nor does a taker 300 ms slower to start the VIP (seen to fail so).
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        longest <= Duration::from_millis(250),
        "a gap longer than an orderly hand-over: {longest:?}"
    );
    // n2's Heartbeat never had an hb-monitor peer; n1's had one from step 1 to step 3.
    let complaints = m.protocol_complaints(0, n1_since);
    assert!(
        complaints.is_empty(),
        "Heartbeat on n1 complained about hb-monitor:\n{}",
        complaints.join("\n")
    );
}

/// auto_failback on, either way round: the preferred node dies, the other takes the group
/// over, the preferred node comes back and gets it back through Heartbeat's hand-over —
/// started by Heartbeat (hb-monitor preferred) or by hb-monitor (Heartbeat preferred).
fn failback_round_trip(hb_monitor_preferred: bool) {
    heartbeat_installed();
    let mut m = Mixed::with("on", KEEPALIVE_MS);
    let start = |m: &mut Mixed, i: usize| {
        if (i == 0) == hb_monitor_preferred {
            m.start_hb_monitor(i)
        } else {
            m.start_heartbeat(i)
        }
    };
    // Both start together: the start-up negotiation gives the group to the preferred n1.
    start(&mut m, 0);
    start(&mut m, 1);
    m.wait_vip_only_on(0, Duration::from_secs(60));
    let watch = VipWatch::start([m.hosts[0].pid(), m.hosts[1].pid()]);

    // n1 dies: n2 takes the group over (neither has a fence device: Heartbeat warns).
    let t = Instant::now();
    m.power_off(0);
    m.wait_vip_only_on(1, Duration::from_secs(20));
    let takeover = t.elapsed();

    // n1 comes back: auto_failback moves the group home.
    m.power_on(0);
    let t = Instant::now();
    start(&mut m, 0);
    m.wait_vip_only_on(0, Duration::from_secs(60));
    let failback = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (samples, gaps, doubles) = watch.finish();
    eprintln!(
        "{} preferred: takeover after power-off {} ms, failback {} ms after restart; VIP gaps {:?} ms; {samples} samples, {doubles} with two holders",
        if hb_monitor_preferred {
            "hb-monitor"
        } else {
            "heartbeat"
        },
        takeover.as_millis(),
        failback.as_millis(),
        gaps.iter().map(|g| g.as_millis()).collect::<Vec<_>>()
    );
    assert_eq!(doubles, 0, "two nodes held the VIP");
    assert!(
        takeover <= Duration::from_millis(DEADTIME_MS + 3000),
        "takeover took {takeover:?}"
    );
    let heartbeat_node = if hb_monitor_preferred { 1 } else { 0 };
    let complaints = m.protocol_complaints(heartbeat_node, 0);
    assert!(
        complaints.is_empty(),
        "Heartbeat complained:\n{}",
        complaints.join("\n")
    );
}

#[test]
#[ignore = "needs root"]
fn auto_failback_to_a_returning_hb_monitor_node() {
    failback_round_trip(true);
}

#[test]
#[ignore = "needs root"]
fn auto_failback_to_a_returning_heartbeat_node() {
    failback_round_trip(false);
}

/// Heartbeat keeps what it sends until every peer acknowledges it (`NS_ackmsg`) and logs
/// "Message hist queue is filling up" once three quarters of its 500-message history are
/// unacknowledged: at a 20 ms keepalive that is 7.5 s. hb-monitor must acknowledge as
/// Heartbeat does. (With `Compat::acknowledge` sending nothing, Heartbeat logs the warning
/// and this test fails within its 14 s.)
#[test]
#[ignore = "needs root"]
fn hb_monitor_acknowledges_so_that_heartbeat_never_fills_its_history() {
    heartbeat_installed();
    let mut m = Mixed::with("off", 20);
    m.start_hb_monitor(1);
    m.start_heartbeat(0);
    m.wait_vip_only_on(0, Duration::from_secs(40));
    let since = m.heartbeat_log(0).len();
    std::thread::sleep(Duration::from_secs(12));
    let complaints = m.protocol_complaints(0, since);
    assert!(
        complaints.is_empty(),
        "Heartbeat complained:\n{}",
        complaints.join("\n")
    );
    let status = m.status(1);
    assert_eq!(peer(&status, "n1")["state"], "up", "{status}");
}

/// SIGTERM to hb-monitor while it holds the group: it stops the group, says `shutdone`,
/// and the Heartbeat peer takes over at once instead of after deadtime.
#[test]
#[ignore = "needs root"]
fn an_orderly_hb_monitor_stop_hands_the_group_to_heartbeat_at_once() {
    heartbeat_installed();
    let mut m = Mixed::new();
    // hb-monitor once Heartbeat sends: within its initdead (1.5 s) it must hear n1.
    m.start_heartbeat(0);
    m.wait_heartbeat_sending(0);
    m.start_hb_monitor(1);
    m.wait_vip_only_on(0, Duration::from_secs(40));
    // hb_standby gives the group only to a peer Heartbeat knows is active.
    wait_for(
        "n1's Heartbeat to see n2 active",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let out = m.hosts[0].sh("cl_status nodestatus n2");
            (String::from_utf8_lossy(&out.stdout).trim() == "active").then_some(())
        },
    );
    m.hosts[0].sh_ok("/usr/share/heartbeat/hb_standby >/dev/null 2>&1 || true");
    m.wait_vip_only_on(1, Duration::from_secs(20));
    let since = m.heartbeat_log(0).len();
    let watch = VipWatch::start([m.hosts[0].pid(), m.hosts[1].pid()]);
    let mut daemon = m.hb_monitor[1].take().unwrap();
    let t = Instant::now();
    // SAFETY: our own child.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGTERM) };
    let status = wait_for(
        "hb-monitor to exit",
        Duration::from_secs(20),
        Duration::from_millis(5),
        || daemon.child.try_wait().ok().flatten(),
    );
    assert!(status.success(), "{status}");
    m.wait_vip_only_on(0, Duration::from_secs(20));
    let handed = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (samples, gaps, doubles) = watch.finish();
    eprintln!(
        "SIGTERM to hb-monitor -> VIP on the Heartbeat node: {} ms; gaps {:?} ms; {samples} samples, {doubles} with two holders",
        handed.as_millis(),
        gaps.iter().map(|g| g.as_millis()).collect::<Vec<_>>()
    );
    assert_eq!(doubles, 0);
    // Heartbeat took over on hb-monitor's shutdown notice, not on its death (which it
    // declares deadtime later, after hb-monitor has gone): the notice comes first in its log.
    // (The time depends on Heartbeat's own takeover: 250-530 ms here, more under load.)
    let log = m.heartbeat_log(0);
    let after = &log[since..];
    let notice = after
        .find("Received shutdown notice from 'n2'")
        .unwrap_or_else(|| panic!("no shutdown notice received:\n{after}"));
    let death = after.find("node n2: is dead").unwrap_or(usize::MAX);
    assert!(notice < death, "Heartbeat waited for deadtime:\n{after}");
    assert!(handed < Duration::from_secs(3), "took {handed:?}");
    let complaints = m.protocol_complaints(0, since);
    assert!(complaints.is_empty(), "{}", complaints.join("\n"));
}

/// `heartbeat -k` on the Heartbeat node that holds the group: hb-monitor takes over as soon
/// as Heartbeat says it has stopped (`shutdone`), not after deadtime.
#[test]
#[ignore = "needs root"]
fn an_orderly_heartbeat_stop_hands_the_group_to_hb_monitor_at_once() {
    heartbeat_installed();
    let mut m = Mixed::new();
    // hb-monitor once Heartbeat sends: within its initdead (1.5 s) it must hear n1.
    m.start_heartbeat(0);
    m.wait_heartbeat_sending(0);
    m.start_hb_monitor(1);
    m.wait_vip_only_on(0, Duration::from_secs(40));
    // The stop is taken for a hand-over only by a node that knows n1 holds the group.
    wait_for(
        "n2 (hb-monitor) to see n1 holding the group",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || (peer(&m.status(1), "n1")["holding"] == "held").then_some(()),
    );
    let watch = VipWatch::start([m.hosts[0].pid(), m.hosts[1].pid()]);
    let t = Instant::now();
    m.hosts[0].sh(&format!("{HEARTBEAT} -k >/dev/null 2>&1"));
    m.wait_vip_only_on(1, Duration::from_secs(20));
    let handed = t.elapsed();
    m.stop_heartbeat(0);
    let (samples, gaps, doubles) = watch.finish();
    eprintln!(
        "heartbeat -k -> VIP on hb-monitor: {} ms (Heartbeat's own shutdown included); gaps {:?} ms; {samples} samples, {doubles} with two holders",
        handed.as_millis(),
        gaps.iter().map(|g| g.as_millis()).collect::<Vec<_>>()
    );
    assert_eq!(doubles, 0);
    // Heartbeat takes seconds to begin its shutdown; from its VIP gone to ours is what the
    // clients see, and it must not be deadtime.
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(longest < Duration::from_millis(DEADTIME_MS), "{gaps:?}");
    let log = m.hb_monitor_log(1);
    assert!(
        !log.contains("node n1 is dead while it advertised the group"),
        "an orderly stop taken for a death:\n{log}"
    );
}
