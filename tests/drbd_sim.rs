//! The DRBD simulator (`examples/drbd-sim.rs`): its output checked against what real DRBD 8.4
//! and 9 printed (`tests/fixtures/drbd/8.4`, `tests/fixtures/drbd/9`), and drbd-agent driven
//! through it on two simulated nodes, as a clone and under ocf-tester, on both versions. No
//! root and no DRBD kernel needed.

use std::path::Path;
use std::process::Command;

use crate::util::agent::{agent_bin, world_readable_tempdir};
use crate::util::drbd_sim::{DrbdSim, DrbdVersion};

/// Runs each scenario `fn name(version: DrbdVersion)` as two tests, `name::drbd_8_4` and
/// `name::drbd_9`.
macro_rules! on_both_versions {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn drbd_8_4() {
                super::$name(crate::util::drbd_sim::DrbdVersion::V84)
            }
            #[test]
            fn drbd_9() {
                super::$name(crate::util::drbd_sim::DrbdVersion::V9)
            }
        }
    )*};
}

on_both_versions!(
    simulator_prints_what_real_drbd_printed,
    clone_promotion_follows_drbd,
    resync_takes_its_time_and_the_target_cannot_be_promoted_meanwhile,
    split_brain_after_dual_promotion_is_detected_and_left_to_the_operator,
    primitive_start_makes_primary_and_stop_leaves_it_up,
    primitive_start_waits_for_drbd_to_notice_a_fenced_primary_peer,
    ocf_tester_passes_on_drbd_agent,
    a_scrubbed_environment_finds_the_state_and_the_node_by_hostname,
    stop_outdates_secondary_outdates_a_secondary_stopped_beside_a_primary,
    consistent_data_gets_the_first_adjust_master_score_value,
    notify_adjusts_before_a_peer_starts_and_rescores_after_an_operation,
    primitive_start_waits_at_most_15_s_for_a_primary_peer_to_go,
);

/// A recorded fixture of `version`: `tests/fixtures/drbd/<version>/<state>/<file>`.
fn fixture(version: DrbdVersion, state: &str, file: &str) -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/drbd")
        .join(version.name())
        .join(state)
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// The stdout part of a recorded fixture (after `# exit 0`, before any `# stderr`).
fn fixture_stdout(version: DrbdVersion, state: &str, file: &str) -> String {
    let (path, text) = fixture(version, state, file);
    let body = text
        .strip_prefix("# exit 0\n")
        .unwrap_or_else(|| panic!("{}: not exit 0", path.display()));
    body.split("# stderr\n").next().unwrap().to_string()
}

/// The host a simulated node stands for in DRBD 9's recordings.
fn host(node: &str) -> &'static str {
    match node {
        "a" => "alpha",
        "b" => "beta",
        _ => panic!("node {node}"),
    }
}

/// Whether `version`'s recording of `state` was made on the other node than `node`: DRBD 9
/// names the peer (`conn-name`), 8.4 does not (every state reads the same on both nodes).
fn recorded_on_the_peer_of(version: DrbdVersion, state: &str, node: &str) -> bool {
    let text = fixture_stdout(version, state, "drbdsetup-events2-now.txt");
    version == DrbdVersion::V9 && text.contains(&format!(" conn-name:{} ", host(node)))
}

/// `line` of a two-node DRBD 9 state as the other node prints it: the same state, with the
/// peer's name, node-id and address swapped for this node's (alpha is node-id 1 and beta 0 in
/// the recorded two-node configuration, which leaves the ids to drbd-utils).
fn seen_from_the_peer(line: &str) -> String {
    const SWAPS: [(&str, &str); 3] = [
        ("conn-name:alpha", "conn-name:beta"),
        ("peer-node-id:1", "peer-node-id:0"),
        ("198.18.3.1:", "198.18.3.2:"),
    ];
    let token = |t: &str| {
        for (x, y) in SWAPS {
            if t.contains(x) {
                return t.replace(x, y);
            }
            if t.contains(y) {
                return t.replace(y, x);
            }
        }
        t.to_string()
    };
    line.split(' ').map(token).collect::<Vec<_>>().join(" ")
}

/// What `node` prints for `drbdsetup events2 --now r0` in the recorded `state`: the recording
/// itself, or the recording seen from the peer when it was made on the other node.
fn recorded_events2(version: DrbdVersion, state: &str, node: &str) -> String {
    let text = fixture_stdout(version, state, "drbdsetup-events2-now.txt");
    if !recorded_on_the_peer_of(version, state, node) {
        return text;
    }
    text.lines().map(|l| seen_from_the_peer(l) + "\n").collect()
}

fn assert_events2(sim: &DrbdSim, node: &str, state: &str) {
    assert_eq!(
        sim.events2(node),
        recorded_events2(sim.version(), state, node),
        "node {node} vs the recorded state {state} of DRBD {}",
        sim.version().name()
    );
}

/// A recorded refusal: exit code and the first stderr line (drbdadm's "Command '…'
/// terminated" line and DRBD 9's "additional info from kernel" lines, which name a pid and a
/// time, are not simulated).
fn fixture_refusal(version: DrbdVersion, state: &str, file: &str) -> (i32, String) {
    let (_, text) = fixture(version, state, file);
    let code = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# exit "))
        .unwrap()
        .parse()
        .unwrap();
    let stderr = text.split("# stderr\n").nth(1).unwrap();
    (code, stderr.lines().next().unwrap().to_string())
}

/// The simulator replaying a recording: its checks against the recorded states, on the node
/// each was recorded on, and the states they covered.
struct Replay {
    sim: DrbdSim,
    covered: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl Replay {
    fn new(version: DrbdVersion) -> Replay {
        Replay {
            sim: DrbdSim::with_version(version),
            covered: Default::default(),
        }
    }

    /// `node` prints the recorded events2 of `state`, which was recorded there.
    fn events2(&self, node: &str, state: &str) {
        assert!(
            !recorded_on_the_peer_of(self.sim.version(), state, node),
            "{state} was recorded on the peer of {node}"
        );
        assert_events2(&self.sim, node, state);
        self.covered.borrow_mut().insert(state.to_string());
    }

    /// `drbdadm <verb> r0` on `node` is refused as recorded in `state`'s `drbdadm-<verb>.txt`.
    fn refused(&self, node: &str, verb: &str, state: &str) {
        let version = self.sim.version();
        let want = fixture_refusal(version, state, &format!("drbdadm-{verb}.txt"));
        let r = self.sim.drbdadm(node, &[verb, "r0"]);
        assert_eq!(
            (r.rc, r.stderr.trim_end().to_string()),
            want,
            "{verb} in {state}"
        );
        self.covered.borrow_mut().insert(state.to_string());
    }

    /// Every two-node state recorded for the version was checked (the three-node states of
    /// DRBD 9 are out of the two-node simulator's reach).
    fn assert_every_two_node_state_covered(&self) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/drbd")
            .join(self.sim.version().name());
        let recorded: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|state| !state.starts_with("three-"))
            .collect();
        let covered = self.covered.borrow();
        let missed: Vec<_> = recorded.difference(&covered).collect();
        assert!(
            missed.is_empty(),
            "recorded states not replayed: {missed:?}"
        );
    }
}

/// The recording's scenario (`tests/drbd_vm.rs`,
/// `up_sync_crash_failover_resync_link_cut_demote_down`) step by step, `a` as alpha and `b`
/// as beta: in every recorded state the node it was recorded on prints what real DRBD
/// printed there, byte for byte, and refuses what real DRBD refused. The replay checks that
/// it went through every recorded two-node state (`primary-mounted` holds only a refusal).
fn simulator_prints_what_real_drbd_printed(version: DrbdVersion) {
    let v9 = version == DrbdVersion::V9;
    let replay = Replay::new(version);
    let sim = &replay.sim;
    replay.events2("a", "unconfigured-no-metadata");
    assert_eq!(sim.drbdadm("a", &["up", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("b", &["up", "r0"]).rc, 0);
    replay.events2("a", "secondary-inconsistent-connected");
    replay.refused("a", "primary", "secondary-inconsistent-connected");

    // The recording slowed the initial sync down to see it midway: 8.4 was recorded
    // mid-sync, DRBD 9 had finished it (its README).
    if !v9 {
        sim.ctl(&["resync-ms", "2000"]);
    }
    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    replay.events2("a", "primary-sync-source");
    replay.events2("b", "secondary-sync-target");
    sim.ctl(&["resync-ms", "0"]);
    wait_events2(sim, "b", "secondary-uptodate-connected");
    replay.events2("b", "secondary-uptodate-connected");
    replay.events2("a", "primary-uptodate-connected");

    // alpha loses power with the device mounted; beta takes over and mounts it.
    sim.ctl(&["held-open", "a", "1"]);
    sim.ctl(&["crash", "a"]);
    replay.events2("b", "secondary-peer-gone");
    assert_eq!(sim.drbdadm("b", &["primary", "r0"]).rc, 0);
    sim.ctl(&["held-open", "b", "1"]);
    replay.events2("b", "primary-peer-gone");

    // alpha back: resynced from beta; then the link is cut.
    assert_eq!(sim.drbdadm("a", &["up", "r0"]).rc, 0);
    sim.ctl(&["cut-link"]);
    replay.events2("b", "primary-link-cut");
    replay.events2("a", "secondary-link-cut");
    if v9 {
        // drbd-utils 9.22's `drbdadm outdate` fails on DRBD 9, and DRBD 9 refuses to outdate
        // while it tries to connect: the recording disconnected, then outdated by minor.
        assert_ne!(sim.drbdadm("a", &["outdate", "r0"]).rc, 0);
        assert_eq!(sim.drbdadm("a", &["disconnect", "r0"]).rc, 0);
        let r = sim.run("a", "drbdsetup", &["outdate", "0"]);
        assert_eq!(r.rc, 0, "{}", r.stderr);
    } else {
        assert_eq!(sim.drbdadm("a", &["outdate", "r0"]).rc, 0);
    }
    replay.events2("a", "secondary-outdated");
    replay.refused("a", "primary", "secondary-outdated");
    assert_eq!(sim.drbdadm("b", &["disconnect", "r0"]).rc, 0);
    replay.events2("b", "primary-standalone");

    // Reconnected and resynced from beta; beta's mount refuses its demotion.
    sim.ctl(&["restore-link"]);
    assert_eq!(sim.drbdadm("b", &["connect", "r0"]).rc, 0);
    if v9 {
        assert_eq!(sim.drbdadm("a", &["connect", "r0"]).rc, 0);
    }
    replay.refused("b", "secondary", "primary-mounted");
    sim.ctl(&["held-open", "b", "0"]);
    assert_eq!(sim.drbdadm("b", &["secondary", "r0"]).rc, 0);
    replay.events2("a", "secondary-secondary-uptodate");

    // A fail-back to alpha, then down on both.
    assert_eq!(sim.drbdadm("a", &["primary", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("a", &["secondary", "r0"]).rc, 0);
    for node in ["a", "b"] {
        assert_eq!(sim.drbdadm(node, &["down", "r0"]).rc, 0);
    }
    replay.events2("a", "down");

    let r = sim.drbdadm("a", &["dump", "r9"]);
    assert_eq!(r.rc, 10);
    assert_eq!(
        r.stderr.trim_end(),
        "'r9' not defined in your config (for this host)."
    );
    assert_eq!(sim.drbdadm("a", &["dump", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("b", &["adjust", "r0"]).rc, 0);
    replay.assert_every_two_node_state_covered();
}

fn clone_promotion_follows_drbd(version: DrbdVersion) {
    let sim = DrbdSim::with_version(version);
    sim.clone_run("a", "monitor").rc(7);
    sim.clone_run("a", "start").rc(0);
    sim.clone_run("b", "start").rc(0);
    sim.clone_run("a", "monitor").rc(0);
    // Fresh meta-data on both sides: nothing to promote.
    sim.clone_run("a", "promote")
        .rc(1)
        .reason_contains("Inconsistent");
    // The operator picks a side, as after create-md.
    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    sim.clone_run("a", "monitor").rc(8);
    sim.clone_run("b", "monitor").rc(0);
    sim.clone_run("b", "promote")
        .rc(1)
        .reason_contains("peer of r0 is Primary");
    // Swap.
    sim.clone_run("a", "demote").rc(0);
    sim.clone_run("b", "promote").rc(0);
    sim.clone_run("b", "monitor").rc(8);
    sim.clone_run("a", "monitor").rc(0);
    // A mount holds b: demote fails with DRBD's reason, then works once unmounted.
    sim.ctl(&["held-open", "b", "1"]);
    sim.clone_run("b", "demote")
        .rc(1)
        .reason_contains("held open");
    sim.clone_run("b", "monitor").rc(8);
    sim.ctl(&["held-open", "b", "0"]);
    sim.clone_run("b", "demote").rc(0);
    sim.clone_run("a", "promote").rc(0);

    // Link cut: a stays Primary, b stays Secondary; reconnection resyncs b from a.
    sim.ctl(&["cut-link"]);
    sim.clone_run("a", "monitor").rc(8);
    sim.clone_run("b", "monitor").rc(0);
    sim.ctl(&["restore-link"]);
    assert_events2(&sim, "a", "primary-uptodate-connected");

    // Stop of a Primary demotes first, then takes the resource down.
    sim.clone_run("a", "stop").rc(0);
    sim.clone_run("a", "monitor").rc(7);
    assert_eq!(sim.events2("a"), "exists -\n");
    sim.clone_run("a", "stop").rc(0);
    // A held-open Primary cannot be stopped.
    sim.clone_run("b", "promote").rc(0);
    sim.ctl(&["held-open", "b", "1"]);
    sim.clone_run("b", "stop")
        .rc(1)
        .reason_contains("held open");
    sim.ctl(&["held-open", "b", "0"]);
    sim.clone_run("b", "stop").rc(0);
    sim.clone_run("b", "monitor").rc(7);
}

/// Polls `node`'s events2 until it prints the recorded `state` (resyncs take wall-clock time).
fn wait_events2(sim: &DrbdSim, node: &str, state: &str) {
    let want = recorded_events2(sim.version(), state, node);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = sim.events2(node);
        if now == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {node} never reached {state}; last:\n{now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn resync_takes_its_time_and_the_target_cannot_be_promoted_meanwhile(version: DrbdVersion) {
    let sim = DrbdSim::with_version(version);
    sim.ctl(&["resync-ms", "600"]);
    sim.clone_run("a", "start").rc(0);
    sim.clone_run("b", "start").rc(0);
    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    // The initial sync.
    assert_syncing(&sim, "a", "b");
    sim.clone_run("b", "monitor").rc(0);
    sim.clone_run("b", "promote")
        .rc(1)
        .reason_contains("Inconsistent");
    wait_events2(&sim, "b", "secondary-uptodate-connected");
    assert_events2(&sim, "a", "primary-uptodate-connected");

    // Writes on a while the link is cut: b resyncs again on reconnection; a crash of the
    // source in the middle leaves b Inconsistent (never promotable) until a returns.
    sim.ctl(&["cut-link"]);
    assert_events2(&sim, "b", "secondary-link-cut");
    sim.ctl(&["restore-link"]);
    assert_syncing(&sim, "a", "b");
    sim.ctl(&["crash", "a"]);
    sim.agent("b")
        .run("start")
        .rc(1)
        .reason_contains("Inconsistent");
    sim.clone_run("a", "start").rc(0);
    assert_syncing(&sim, "a", "b");
    wait_events2(&sim, "b", "secondary-secondary-uptodate");
}

/// A resync from `source` to `target` runs, as both print it (the fields both versions share;
/// the recorded mid-sync states are checked byte for byte in the recording's scenario).
fn assert_syncing(sim: &DrbdSim, source: &str, target: &str) {
    for (node, fields) in [
        (
            source,
            [
                "disk:UpToDate",
                "replication:SyncSource",
                "peer-disk:Inconsistent",
            ],
        ),
        (
            target,
            [
                "disk:Inconsistent",
                "replication:SyncTarget",
                "peer-disk:UpToDate",
            ],
        ),
    ] {
        let now = sim.events2(node);
        for field in fields {
            assert!(
                now.split_whitespace().any(|f| f == field),
                "{node} lacks {field}:\n{now}"
            );
        }
    }
}

fn split_brain_after_dual_promotion_is_detected_and_left_to_the_operator(version: DrbdVersion) {
    let sim = DrbdSim::with_version(version);
    sim.clone_run("a", "start").rc(0);
    sim.clone_run("b", "start").rc(0);
    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    assert_events2(&sim, "b", "secondary-uptodate-connected");
    sim.ctl(&["cut-link"]);
    // b is UpToDate and sees no Primary peer (it sees no peer at all), so DRBD and the agent
    // both allow promoting it: only fencing (or an outdate of b by a) prevents this.
    sim.clone_run("b", "promote").rc(0);
    sim.clone_run("a", "monitor").rc(8);
    sim.clone_run("b", "monitor").rc(8);
    sim.ctl(&["restore-link"]);
    // Both wrote: DRBD refuses to connect and goes StandAlone on both sides, as recorded.
    assert_events2(&sim, "a", "primary-standalone");
    assert_events2(&sim, "b", "primary-standalone");
    // The agent keeps both Primary (it never discards a side) and says why on every monitor.
    for node in ["a", "b"] {
        let m = sim.clone_run(node, "monitor");
        m.rc(8);
        assert!(
            m.stderr.contains("StandAlone") && m.stderr.contains("--discard-my-data"),
            "{}",
            m.stderr
        );
    }
    // Demoting b does not reconnect it either.
    sim.clone_run("b", "demote").rc(0);
    sim.clone_run("b", "monitor").rc(0);
    let b = sim.events2("b");
    assert!(b.contains("connection:StandAlone"), "{b}");
    // Reconnecting without a decision: split brain again.
    assert_eq!(sim.drbdadm("b", &["connect", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("a", &["connect", "r0"]).rc, 0);
    assert_events2(&sim, "a", "primary-standalone");
    // The operator's decision: b's changes go.
    assert_eq!(
        sim.drbdadm("b", &["connect", "--discard-my-data", "r0"]).rc,
        0
    );
    assert_eq!(sim.drbdadm("a", &["connect", "r0"]).rc, 0);
    assert_events2(&sim, "a", "primary-uptodate-connected");
    assert_events2(&sim, "b", "secondary-uptodate-connected");
    let r = sim.drbdadm("a", &["connect", "r0"]);
    assert_eq!(r.rc, 10, "connect while connected");
}

fn primitive_start_makes_primary_and_stop_leaves_it_up(version: DrbdVersion) {
    let sim = DrbdSim::with_version(version);
    sim.agent("a")
        .run("start")
        .rc(1)
        .reason_contains("Inconsistent");
    sim.ctl(&["disk", "a", "UpToDate"]);
    sim.agent("a").run("start").rc(0);
    sim.agent("a").run("monitor").rc(0);
    // A live Primary peer: refused, once the start has waited what its 3 s allow for DRBD to
    // notice a peer that is gone (it is not).
    let t = std::time::Instant::now();
    sim.agent("b")
        .env("OCF_RESKEY_CRM_meta_timeout", "3000")
        .run("start")
        .rc(1)
        .reason_contains("Primary");
    assert!(t.elapsed() < std::time::Duration::from_millis(2900));
    sim.agent("a").run("stop").rc(0);
    sim.agent("a").run("monitor").rc(7);
    // Replicating as Secondary, as Heartbeat's drbddisk leaves it.
    assert_events2(&sim, "a", "secondary-secondary-uptodate");
}

/// A plain start right after the Primary peer was powered off (fenced): real DRBD still
/// shows it connected and Primary until its ping times out (seconds, DRBD-VM.md), and
/// refuses `drbdadm primary` meanwhile; the start waits for DRBD to see it gone, as
/// Heartbeat's drbddisk retries, instead of failing the takeover.
fn primitive_start_waits_for_drbd_to_notice_a_fenced_primary_peer(version: DrbdVersion) {
    let sim = DrbdSim::with_version(version);
    sim.ctl(&["disk", "a", "UpToDate"]);
    sim.agent("a").run("start").rc(0);
    let crash_after = std::time::Duration::from_millis(1000);
    let t = std::time::Instant::now();
    let run = std::thread::scope(|scope| {
        let start = scope.spawn(|| {
            sim.agent("b")
                .env("OCF_RESKEY_CRM_meta_timeout", "20000")
                .run("start")
        });
        std::thread::sleep(crash_after);
        // The fenced node's DRBD connection drops (the simulator's view of the ping
        // timeout).
        sim.ctl(&["crash", "a"]);
        start.join().unwrap()
    });
    run.rc(0);
    assert!(t.elapsed() >= crash_after, "promoted beside a Primary peer");
    sim.agent("b").run("monitor").rc(0);
}

fn ocf_tester_passes_on_drbd_agent(version: DrbdVersion) {
    assert!(
        Path::new("/usr/sbin/ocf-tester").exists(),
        "ocf-tester (resource-agents) is missing: `make deps` installs it"
    );
    let sim = DrbdSim::with_version(version);
    sim.ctl(&["disk", "a", "UpToDate"]);
    // ocf-tester runs meta-data as nobody: the agent in a directory nobody can traverse.
    let dir = world_readable_tempdir();
    let agent = dir.path().join("drbd");
    std::fs::copy(agent_bin("drbd"), &agent).unwrap();
    let o = |k: &str, v: &Path| format!("{k}={}", v.display());
    let out = Command::new("/usr/sbin/ocf-tester")
        .args(["-n", "drbd", "-o", "drbd_resource=r0", "-o"])
        .arg(o("drbdadm", &sim.bin("drbdadm")))
        .arg("-o")
        .arg(o("drbdsetup", &sim.bin("drbdsetup")))
        .arg("-o")
        .arg(o("drbdconf", &sim.conf()))
        .arg(&agent)
        // ocf-tester passes its own environment on to the agent.
        .env("DRBD_SIM_DIR", sim.path())
        .env("DRBD_SIM_NODE", "a")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "ocf-tester:\n{text}");
    assert!(text.contains("passed all tests"), "{text}");
}

fn a_scrubbed_environment_finds_the_state_and_the_node_by_hostname(version: DrbdVersion) {
    // Pacemaker and hb-monitor pass agents no DRBD_SIM_* variables.
    let sim = DrbdSim::with_version(version);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    sim.map_host(host.trim(), "b");
    assert_eq!(sim.drbdadm("b", &["up", "r0"]).rc, 0);
    let out = Command::new(sim.bin("drbdsetup"))
        .args(["events2", "--now", "r0"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        sim.events2("b"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sim.events2("a"), "exists -\n");
}

/// `drbd-sim-ctl show`'s value of `key` (`b.disk`).
fn sim_value(sim: &DrbdSim, key: &str) -> String {
    let r = sim.run("a", "drbd-sim-ctl", &["show"]);
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in:\n{}", r.stdout))
        .to_string()
}

/// Both nodes started as clone instances, UpToDate and connected, `a` Primary.
fn primary_a_secondary_b(version: DrbdVersion) -> DrbdSim {
    let sim = DrbdSim::with_version(version);
    sim.ctl(&["disk", "a", "UpToDate"]);
    sim.clone_run("a", "start").rc(0);
    sim.clone_run("b", "start").rc(0);
    sim.clone_run("a", "promote").rc(0);
    wait_events2(&sim, "b", "secondary-uptodate-connected");
    sim
}

/// `stop_outdates_secondary`: a Secondary stopped while its peer is Primary marks its own data
/// Outdated, so that it cannot be promoted later with what it has; without the parameter, or
/// with a Secondary peer, its data stays UpToDate.
fn stop_outdates_secondary_outdates_a_secondary_stopped_beside_a_primary(version: DrbdVersion) {
    let sim = primary_a_secondary_b(version);
    sim.clone_run("b", "stop").rc(0);
    assert_eq!(sim_value(&sim, "b.disk"), "UpToDate", "outdated by default");
    sim.clone_run("b", "start").rc(0);
    wait_events2(&sim, "b", "secondary-uptodate-connected");
    let outdating = |node: &str| {
        sim.clone_agent(node)
            .param("stop_outdates_secondary", "true")
    };
    let run = outdating("b").run("stop");
    run.rc(0);
    assert_eq!(sim_value(&sim, "b.up"), "0", "stop left b up");
    assert_eq!(
        sim_value(&sim, "b.disk"),
        "Outdated",
        "stop did not outdate b; stderr:\n{}",
        run.stderr
    );
    // The Primary goes away: b's stale data is refused.
    sim.ctl(&["crash", "a"]);
    sim.clone_run("b", "start").rc(0);
    sim.clone_run("b", "promote")
        .rc(1)
        .reason_contains("Outdated");
    // A Secondary beside a Secondary peer keeps its data.
    let sim = primary_a_secondary_b(version);
    sim.clone_run("a", "demote").rc(0);
    outdating("b").run("stop").rc(0);
    assert_eq!(sim_value(&sim, "b.disk"), "UpToDate");
}

/// A program `name` in `dir` that appends its arguments (one call a line) to
/// `<dir>/<name>.calls`, then runs `then` with them, or exits 0.
fn recording(dir: &Path, name: &str, then: Option<&Path>) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let tail = match then {
        Some(program) => format!("exec '{}' \"$@\"\n", program.display()),
        None => "exit 0\n".to_string(),
    };
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$*\" >> \"$0.calls\"\n{tail}"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The calls [`recording`] recorded for `name`.
fn calls(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{name}.calls")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// PATH with `dir` (stand-in programs) first.
fn path_with(dir: &Path) -> String {
    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.display())
}

/// LINBIT's promotion table, "Consistent → the first adjust_master_score value": a node whose
/// disk is Consistent and whose peer's disk is unknown publishes that value; a first value of
/// 0 (the default) publishes none, as LINBIT's set_master_score removes a score of 0; an
/// Inconsistent disk none either.
fn consistent_data_gets_the_first_adjust_master_score_value(version: DrbdVersion) {
    let sim = DrbdSim::with_version(version);
    let bin = tempfile::tempdir().unwrap();
    recording(bin.path(), "crm_attribute", None);
    sim.clone_run("a", "start").rc(0);
    let recurring_monitor = |scores: Option<&str>| {
        let mut agent = sim
            .clone_agent("a")
            .env("PATH", &path_with(bin.path()))
            .env("OCF_RESKEY_CRM_meta_interval", "10000");
        if let Some(scores) = scores {
            agent = agent.param("adjust_master_score", scores);
        }
        agent.run("monitor").rc(0);
        calls(bin.path(), "crm_attribute").pop().unwrap_or_default()
    };
    sim.ctl(&["disk", "a", "Consistent"]);
    assert_eq!(
        recurring_monitor(Some("5 10 1000 10000")),
        "--promotion --lifetime reboot --update 5"
    );
    assert_eq!(
        recurring_monitor(None),
        "--promotion --lifetime reboot --delete"
    );
    sim.ctl(&["disk", "a", "Inconsistent"]);
    assert_eq!(
        recurring_monitor(Some("5 10 1000 10000")),
        "--promotion --lifetime reboot --delete"
    );
}

/// The `notify` action the meta-data advertises: before a peer starts, a started instance
/// runs `drbdadm adjust` (so it connects to the peer); after any operation it publishes its
/// promotion score afresh, none once it is down; it never fails.
fn notify_adjusts_before_a_peer_starts_and_rescores_after_an_operation(version: DrbdVersion) {
    let sim = primary_a_secondary_b(version);
    let bin = tempfile::tempdir().unwrap();
    let drbdadm = recording(bin.path(), "drbdadm", Some(&sim.bin("drbdadm")));
    recording(bin.path(), "crm_attribute", None);
    let notify = |kind: &str, operation: &str| {
        sim.clone_agent("b")
            .param("drbdadm", &drbdadm)
            .env("PATH", &path_with(bin.path()))
            .env("OCF_RESKEY_CRM_meta_notify_type", kind)
            .env("OCF_RESKEY_CRM_meta_notify_operation", operation)
            .run("notify")
            .rc(0);
    };
    let conf = sim.conf().display().to_string();
    notify("pre", "start");
    assert_eq!(
        calls(bin.path(), "drbdadm"),
        [format!("-c {conf} adjust r0")]
    );
    notify("post", "promote");
    assert_eq!(
        calls(bin.path(), "crm_attribute"),
        ["--promotion --lifetime reboot --update 10000"]
    );
    sim.clone_run("b", "stop").rc(0);
    notify("pre", "start");
    notify("post", "stop");
    assert_eq!(
        calls(bin.path(), "drbdadm").len(),
        1,
        "adjust of a stopped instance"
    );
    assert_eq!(
        calls(bin.path(), "crm_attribute")
            .last()
            .map(String::as_str),
        Some("--promotion --lifetime reboot --delete")
    );
}

/// A plain start beside a Primary peer waits for DRBD to notice the peer gone (it may have
/// been fenced), but at most 15 s even when the op timeout allows far more: a peer that is
/// really alive and Primary fails the start then.
fn primitive_start_waits_at_most_15_s_for_a_primary_peer_to_go(version: DrbdVersion) {
    let sim = DrbdSim::with_version(version);
    sim.ctl(&["disk", "a", "UpToDate"]);
    sim.agent("a").run("start").rc(0);
    let t = std::time::Instant::now();
    sim.agent("b")
        .env("OCF_RESKEY_CRM_meta_timeout", "120000")
        .run("start")
        .rc(1)
        .reason_contains("Primary");
    let took = t.elapsed();
    // The wait polls every 200 ms; 2 s more for the agent's own calls on a loaded machine.
    assert!(
        took >= std::time::Duration::from_secs(15) && took < std::time::Duration::from_secs(17),
        "start took {took:?}"
    );
}
