//! The DRBD simulator (`examples/drbd-sim.rs`): its output checked against what real DRBD 8.4
//! printed (`tests/fixtures/drbd/8.4`), and drbd-agent driven through it on two simulated
//! nodes, as a clone and under ocf-tester. No root and no DRBD kernel needed.

use std::path::Path;
use std::process::Command;

use crate::util::agent::{agent_bin, world_readable_tempdir};
use crate::util::drbd_sim::DrbdSim;

/// The stdout part of a recorded fixture (after `# exit 0`, before any `# stderr`).
fn fixture_stdout(state: &str, file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/drbd/8.4")
        .join(state)
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let body = text
        .strip_prefix("# exit 0\n")
        .unwrap_or_else(|| panic!("{}: not exit 0", path.display()));
    body.split("# stderr\n").next().unwrap().to_string()
}

fn assert_events2(sim: &DrbdSim, node: &str, state: &str) {
    assert_eq!(
        sim.events2(node),
        fixture_stdout(state, "drbdsetup-events2-now.txt"),
        "node {node} vs the recorded state {state}"
    );
}

/// A recorded refusal: exit code and the first stderr line (drbdadm's "Command '…'
/// terminated" line is not simulated).
fn fixture_refusal(state: &str, file: &str) -> (i32, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/drbd/8.4")
        .join(state)
        .join(file);
    let text = std::fs::read_to_string(path).unwrap();
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

#[test]
fn simulator_prints_what_real_drbd_printed() {
    let sim = DrbdSim::new();
    assert_events2(&sim, "a", "down");
    assert_eq!(sim.drbdadm("a", &["up", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("b", &["up", "r0"]).rc, 0);
    assert_events2(&sim, "a", "secondary-inconsistent-connected");
    let (code, line) = fixture_refusal("secondary-inconsistent-connected", "drbdadm-primary.txt");
    let r = sim.drbdadm("a", &["primary", "r0"]);
    assert_eq!((r.rc, r.stderr.trim_end().to_string()), (code, line));

    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    assert_events2(&sim, "a", "primary-uptodate-connected");
    // The other side of the same moment (beta is Secondary with alpha Primary).
    assert_events2(&sim, "b", "secondary-uptodate-connected");

    sim.ctl(&["held-open", "a", "1"]);
    let (code, line) = fixture_refusal("primary-mounted", "drbdadm-secondary.txt");
    let r = sim.drbdadm("a", &["secondary", "r0"]);
    assert_eq!((r.rc, r.stderr.trim_end().to_string()), (code, line));
    sim.ctl(&["held-open", "a", "0"]);

    sim.ctl(&["cut-link"]);
    assert_events2(&sim, "a", "primary-link-cut");
    assert_events2(&sim, "b", "secondary-link-cut");
    assert_eq!(sim.drbdadm("b", &["outdate", "r0"]).rc, 0);
    assert_events2(&sim, "b", "secondary-outdated");
    let (code, line) = fixture_refusal("secondary-outdated", "drbdadm-primary.txt");
    let r = sim.drbdadm("b", &["primary", "r0"]);
    assert_eq!((r.rc, r.stderr.trim_end().to_string()), (code, line));

    sim.ctl(&["restore-link"]);
    assert_events2(&sim, "b", "secondary-uptodate-connected");
    assert_eq!(sim.drbdadm("a", &["secondary", "r0"]).rc, 0);
    assert_events2(&sim, "a", "secondary-secondary-uptodate");

    sim.ctl(&["crash", "a"]);
    assert_events2(&sim, "b", "secondary-peer-gone");
    assert_eq!(sim.drbdadm("b", &["primary", "r0"]).rc, 0);
    assert_events2(&sim, "b", "primary-peer-gone");
    assert_events2(&sim, "a", "down");

    let r = sim.drbdadm("a", &["dump", "r9"]);
    assert_eq!(r.rc, 10);
    assert_eq!(
        r.stderr.trim_end(),
        "'r9' not defined in your config (for this host)."
    );
    assert_eq!(sim.drbdadm("a", &["dump", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("b", &["adjust", "r0"]).rc, 0);
}

#[test]
fn clone_promotion_follows_drbd() {
    let sim = DrbdSim::new();
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
    let want = fixture_stdout(state, "drbdsetup-events2-now.txt");
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

#[test]
fn resync_takes_its_time_and_the_target_cannot_be_promoted_meanwhile() {
    let sim = DrbdSim::new();
    sim.ctl(&["resync-ms", "600"]);
    sim.clone_run("a", "start").rc(0);
    sim.clone_run("b", "start").rc(0);
    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    // The initial sync, as real DRBD printed it on both sides.
    assert_events2(&sim, "a", "primary-sync-source");
    assert_events2(&sim, "b", "secondary-sync-target");
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
    assert_events2(&sim, "b", "secondary-sync-target");
    sim.ctl(&["crash", "a"]);
    sim.agent("b")
        .run("start")
        .rc(1)
        .reason_contains("Inconsistent");
    sim.clone_run("a", "start").rc(0);
    let b = sim.events2("b");
    assert!(
        b.contains("disk:Inconsistent") && b.contains("replication:SyncTarget"),
        "{b}"
    );
    wait_events2(&sim, "b", "secondary-secondary-uptodate");
}

#[test]
fn split_brain_after_dual_promotion_is_detected_and_left_to_the_operator() {
    let sim = DrbdSim::new();
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

#[test]
fn primitive_start_makes_primary_and_stop_leaves_it_up() {
    let sim = DrbdSim::new();
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
#[test]
fn primitive_start_waits_for_drbd_to_notice_a_fenced_primary_peer() {
    let sim = DrbdSim::new();
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

#[test]
fn ocf_tester_passes_on_drbd_agent() {
    assert!(
        Path::new("/usr/sbin/ocf-tester").exists(),
        "ocf-tester (resource-agents) is missing: `make deps` installs it"
    );
    let sim = DrbdSim::new();
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

#[test]
fn a_scrubbed_environment_finds_the_state_and_the_node_by_hostname() {
    // Pacemaker and hb-monitor pass agents no DRBD_SIM_* variables.
    let sim = DrbdSim::new();
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
fn primary_a_secondary_b() -> DrbdSim {
    let sim = DrbdSim::new();
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
#[test]
fn stop_outdates_secondary_outdates_a_secondary_stopped_beside_a_primary() {
    let sim = primary_a_secondary_b();
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
    let sim = primary_a_secondary_b();
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
#[test]
fn consistent_data_gets_the_first_adjust_master_score_value() {
    let sim = DrbdSim::new();
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
#[test]
fn notify_adjusts_before_a_peer_starts_and_rescores_after_an_operation() {
    let sim = primary_a_secondary_b();
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
#[test]
fn primitive_start_waits_at_most_15_s_for_a_primary_peer_to_go() {
    let sim = DrbdSim::new();
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
