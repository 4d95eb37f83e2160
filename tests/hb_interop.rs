//! hb-monitor and Debian's `heartbeat` 3.0.6 on the wire, beyond the hand-overs of
//! `hb_compat`: the identity a node keeps when it moves from Heartbeat to hb-monitor
//! (`srcuuid` from `hb_uuid`, a generation above Heartbeat's).
//!
//! What each side makes of the other is read from Heartbeat's own log and `cl_status`, and
//! from `hb-monitor status`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::util::hb_mixed::{Mixed, heartbeat_installed, peer};
use super::util::host::wait_for;

fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What `cl_status nodestatus NODE` says on Heartbeat node i.
fn nodestatus(m: &Mixed, i: usize, node: &str) -> String {
    let out = m.hosts[i].sh(&format!("cl_status nodestatus {node}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Heartbeat's log on node i from byte `since` on.
fn log_since(m: &Mixed, i: usize, since: usize) -> String {
    m.heartbeat_log(i).get(since..).unwrap_or("").to_string()
}

/// The rolling-migration case: n2 ran Heartbeat (with a generation ahead of the wall clock,
/// which Heartbeat allows: it adds one per start to what `hb_generation` holds, whatever the
/// clock says) and is restarted with hb-monitor on the same `/var/lib/heartbeat`. n1's
/// Heartbeat must take it for the same node restarted: the same uuid (else it logs "node n2
/// changed its uuid") and a higher generation (else it drops every message as "attempted
/// replay attack" and n2 stays dead).
#[test]
#[ignore = "needs root"]
fn a_node_moved_to_hb_monitor_keeps_heartbeats_uuid_and_counts_on_from_its_generation() {
    heartbeat_installed();
    let mut m = Mixed::new();
    let ahead = wall_secs() + 1_000_000;
    std::fs::write(
        m.heartbeat_state(1).join("hb_generation"),
        format!("{ahead:>16}\n"),
    )
    .unwrap();
    m.start_heartbeat(0);
    m.start_heartbeat(1);
    m.wait_vip_only_on(0, Duration::from_secs(60));
    wait_for(
        "n1's Heartbeat to see n2's Heartbeat active",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || (nodestatus(&m, 0, "n2") == "active").then_some(()),
    );
    let state = m.heartbeat_state(1);
    let uuid = std::fs::read(state.join("hb_uuid")).unwrap();
    assert_eq!(uuid.len(), 16, "hb_uuid: {uuid:?}");
    let heartbeats: u64 = std::fs::read_to_string(state.join("hb_generation"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        heartbeats,
        ahead + 1,
        "Heartbeat counts on from hb_generation"
    );

    m.stop_heartbeat(1);
    let since = m.heartbeat_log(0).len();
    m.start_hb_monitor(1);
    wait_for(
        "n1's Heartbeat to take n2 (now hb-monitor) back as active",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            (nodestatus(&m, 0, "n2") == "active"
                && log_since(&m, 0, since).contains("Heartbeat restart on node n2"))
            .then_some(())
        },
    );
    let log = log_since(&m, 0, since);
    assert!(
        !log.contains("changed its uuid"),
        "n1's Heartbeat saw another uuid for n2:\n{log}"
    );
    assert!(
        !log.contains("replay"),
        "n1's Heartbeat took n2's messages for replays:\n{log}"
    );
    let status = m.status(1);
    let ours = status["generation"].as_u64().unwrap();
    eprintln!(
        "n2: Heartbeat's generation {heartbeats}, hb-monitor's {ours} (wall clock {})",
        wall_secs()
    );
    assert!(ours > heartbeats, "{status}");
    assert_eq!(peer(&status, "n1")["state"], "up", "{status}");
    // Kept in hb-monitor's own state from now on.
    assert_eq!(std::fs::read(m.dir(1).join("state/uuid")).unwrap(), uuid);
}
