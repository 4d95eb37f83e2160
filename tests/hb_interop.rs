//! hb-monitor and Debian's `heartbeat` 3.0.6 on the wire, beyond the hand-overs of
//! `hb_compat`: the identity a node keeps when it moves from Heartbeat to hb-monitor
//! (`srcuuid` from `hb_uuid`, a generation above Heartbeat's), the retransmission protocol
//! (`NS_rexmit`) both ways under real packet loss, and `md5` authkeys.
//!
//! What each side makes of the other is read from Heartbeat's own log and `cl_status`, and
//! from `hb-monitor status`. Packet loss is made by nftables in the LAN's switch (the kernel
//! here has no netem): a share of the UDP heartbeats forwarded by its bridge is dropped.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::util::hb_mixed::{Mixed, heartbeat_installed, peer};
use super::util::host::wait_for;

/// nftables' command line, which the loss test needs.
const NFT: &str = "/usr/sbin/nft";

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
    let status = wait_for(
        "hb-monitor on n2 to see n1 up",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let s = m.status(1);
            (peer(&s, "n1")["state"] == "up").then_some(s)
        },
    );
    let ours = status["generation"].as_u64().unwrap();
    eprintln!(
        "n2: Heartbeat's generation {heartbeats}, hb-monitor's {ours} (wall clock {})",
        wall_secs()
    );
    assert!(ours > heartbeats, "{status}");
    // Kept in hb-monitor's own state from now on.
    assert_eq!(std::fs::read(m.dir(1).join("state/uuid")).unwrap(), uuid);
}

/// nftables in the switch drops `percent` % of the heartbeat datagrams forwarded to each
/// node, counted per direction (`to_n1`, `to_n2`).
fn drop_heartbeats(m: &Mixed, percent: u32) {
    assert!(
        Path::new(NFT).exists(),
        "{NFT} missing: apt-get install nftables (scripts/install-deps does)"
    );
    let (n1, n2) = (m.lan.ip(1), m.lan.ip(2));
    m.lan.switch.sh_ok(&format!(
        r#"nft -f - <<'EOF'
table bridge loss {{
    counter to_n1 {{}}
    counter to_n2 {{}}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ip daddr {n1} udp dport 694 numgen random mod 100 < {percent} counter name to_n1 drop
        ip daddr {n2} udp dport 694 numgen random mod 100 < {percent} counter name to_n2 drop
    }}
}}
EOF"#
    ));
}

/// Packets dropped so far by [`drop_heartbeats`]' counter `name`.
fn dropped(m: &Mixed, name: &str) -> u64 {
    let out = m
        .lan
        .switch
        .sh_ok(&format!("nft -j list counter bridge loss {name}"));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json["nftables"]
        .as_array()
        .and_then(|items| items.iter().find_map(|i| i["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("no counter {name} in {out}"))
}

/// 10 % of the heartbeat datagrams lost each way for 10 s between Heartbeat (n1) and
/// hb-monitor (n2). Heartbeat notices its gaps ("N lost packet(s) for [n2]"), asks, and
/// hb-monitor resends until Heartbeat says "No pkts missing from n2!"; hb-monitor asks for
/// its gaps and Heartbeat answers ("Retransmitting pkt N"), and hb-monitor takes each
/// resent message (not as a replay, and without asking again for it). Nobody is declared
/// dead and the VIP stays where it is.
#[test]
#[ignore = "needs root"]
fn lost_heartbeats_are_resent_both_ways_and_nobody_is_declared_dead() {
    heartbeat_installed();
    let mut m = Mixed::new();
    // hb-monitor once Heartbeat sends: within its initdead (1.5 s) it must hear n1.
    m.start_heartbeat(0);
    m.wait_heartbeat_sending(0);
    m.start_hb_monitor(1);
    m.wait_vip_only_on(0, Duration::from_secs(40));
    wait_for(
        "n1's Heartbeat to see n2 active",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || (nodestatus(&m, 0, "n2") == "active").then_some(()),
    );
    let before = m.status(1);
    let since = m.heartbeat_log(0).len();
    let monitor_since = m.hb_monitor_log(1).len();

    drop_heartbeats(&m, 10);
    std::thread::sleep(Duration::from_secs(10));
    let (to_n1, to_n2) = (dropped(&m, "to_n1"), dropped(&m, "to_n2"));
    m.lan.switch.sh_ok("nft delete table bridge loss");

    // Heartbeat's gaps in what n2 sent: each run of lost messages is logged, and so is the
    // moment none is missing any more; the last word must be the latter.
    let recovered = |log: &str| {
        log.lines()
            .rfind(|l| {
                l.contains("lost packet(s) for [n2]") || l.contains("No pkts missing from n2!")
            })
            .is_some_and(|l| l.contains("No pkts missing"))
    };
    let log = wait_for(
        "n1's Heartbeat to miss nothing of n2's",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let log = log_since(&m, 0, since);
            recovered(&log).then_some(log)
        },
    );
    let gaps = log
        .lines()
        .filter(|l| l.contains("lost packet(s) for [n2]"))
        .count();
    let mut resent: BTreeMap<u64, u32> = BTreeMap::new();
    for line in log.lines() {
        if let Some(seq) = line.split("Retransmitting pkt ").nth(1) {
            *resent.entry(seq.trim().parse().unwrap()).or_default() += 1;
        }
    }
    let status = m.status(1);
    eprintln!(
        "dropped {to_n1} datagrams to n1 (Heartbeat), {to_n2} to n2 (hb-monitor); \
         Heartbeat logged {gaps} gaps in n2's messages and resent {} messages on n2's \
         request (sends per sequence number: {resent:?}); hb-monitor: {}, {}",
        resent.len(),
        status["dropped"],
        status["retransmission"]
    );
    assert!(to_n1 > 0 && to_n2 > 0, "no loss: {to_n1} / {to_n2}");
    // Heartbeat asked hb-monitor and got what it missed (`recovered` above).
    assert!(gaps > 0, "Heartbeat saw no gap in n2's messages:\n{log}");
    // hb-monitor asked Heartbeat and took what it got: a resent message it did not take
    // would stay missing, be asked for again every 250 ms, and each later copy be dropped as
    // a replay, up to 20 times (a resend lost again on the way is asked for again too: three
    // sends of one message were seen at 10 % loss, six need five resends lost in a row).
    assert!(
        !resent.is_empty(),
        "hb-monitor asked Heartbeat for nothing:\n{log}"
    );
    assert_eq!(
        status["dropped"]["replayed"], before["dropped"]["replayed"],
        "resent messages dropped as replays: {status}"
    );
    // hb-monitor's own counts agree with Heartbeat's log: it asked at least for every message
    // Heartbeat resent, took some of those copies (each lost one is asked for again), gave
    // none up; and it resent what Heartbeat asked of it.
    let delta = |kind: &str| {
        let n = |s: &serde_json::Value| {
            s["retransmission"][kind]
                .as_u64()
                .unwrap_or_else(|| panic!("no retransmission.{kind} in {s}"))
        };
        n(&status) - n(&before)
    };
    let copies: u64 = resent.values().map(|n| u64::from(*n)).sum();
    assert!(
        delta("requested") >= resent.len() as u64,
        "hb-monitor counts {} requests, Heartbeat resent {} messages: {status}",
        delta("requested"),
        resent.len()
    );
    assert!(
        (1..=copies).contains(&delta("recovered")),
        "hb-monitor recovered {} of {copies} copies Heartbeat sent: {status}",
        delta("recovered")
    );
    assert_eq!(delta("abandoned"), 0, "{status}");
    assert!(
        delta("resent") >= 1,
        "Heartbeat logged {gaps} gaps, hb-monitor resent nothing: {status}"
    );
    let asked_often: Vec<_> = resent.iter().filter(|(_, n)| **n > 5).collect();
    assert!(
        asked_often.is_empty(),
        "resent more than five times: {asked_often:?}"
    );
    // Nobody declared dead, the VIP stayed.
    for l in log.lines() {
        assert!(
            !(l.contains("n2") && l.contains("dead")),
            "Heartbeat declared n2 dead: {l}"
        );
    }
    let monitor_log = m.hb_monitor_log(1);
    let monitor_log = monitor_log.get(monitor_since..).unwrap_or("");
    assert!(
        !monitor_log.contains("is dead"),
        "hb-monitor declared n1 dead:\n{monitor_log}"
    );
    assert_eq!(peer(&status, "n1")["state"], "up", "{status}");
    assert_eq!(nodestatus(&m, 0, "n2"), "active");
    assert!(m.has_vip(0) && !m.has_vip(1), "the VIP moved");
    assert!(
        !log.contains("hist queue") && !log.contains("replay"),
        "Heartbeat complained:\n{log}"
    );
}

/// `authkeys` with `auth 1` / `1 md5 KEY` on both: they see each other. A different md5 key
/// on the hb-monitor node: each refuses the other's messages (hb-monitor counts them as bad
/// signatures, Heartbeat logs "authtoken does not match") and neither sees the other.
#[test]
#[ignore = "needs root"]
fn md5_authkeys_interoperate_and_a_wrong_md5_key_keeps_them_apart() {
    heartbeat_installed();
    let mut m = Mixed::new();
    for i in 0..2 {
        m.set_authkeys(i, "md5", "interop-md5-secret");
    }
    // hb-monitor once Heartbeat sends: within its initdead (1.5 s) it must hear n1.
    m.start_heartbeat(0);
    m.wait_heartbeat_sending(0);
    m.start_hb_monitor(1);
    m.wait_vip_only_on(0, Duration::from_secs(40));
    wait_for(
        "n1's Heartbeat to see n2 active",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || (nodestatus(&m, 0, "n2") == "active").then_some(()),
    );
    let status = m.status(1);
    assert_eq!(peer(&status, "n1")["state"], "up", "{status}");
    assert_eq!(peer(&status, "n1")["kind"], "heartbeat", "{status}");
    assert_eq!(status["dropped"]["bad_signature"], 0, "{status}");
    let complaints = m.protocol_complaints(0, 0);
    assert!(complaints.is_empty(), "{}", complaints.join("\n"));

    // The same method, another key, on the hb-monitor node.
    drop(m.hb_monitor[1].take());
    wait_for(
        "n1's Heartbeat to see n2 dead",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (nodestatus(&m, 0, "n2") == "dead").then_some(()),
    );
    m.set_authkeys(1, "md5", "another-md5-secret");
    let since = m.heartbeat_log(0).len();
    m.start_hb_monitor(1);
    // Two seconds of each other's heartbeats (keepalive 100 ms), over three deadtimes.
    let status = wait_for(
        "each to refuse 20 of the other's heartbeats",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let s = m.status(1);
            let refused_by_heartbeat = log_since(&m, 0, since)
                .matches("authtoken does not match")
                .count();
            (s["dropped"]["bad_signature"].as_u64() >= Some(20) && refused_by_heartbeat >= 20)
                .then_some(s)
        },
    );
    let log = log_since(&m, 0, since);
    eprintln!(
        "wrong md5 key: hb-monitor dropped {}; Heartbeat refused {} messages",
        status["dropped"],
        log.matches("authtoken does not match").count()
    );
    assert_ne!(peer(&status, "n1")["state"], "up", "{status}");
    assert_eq!(nodestatus(&m, 0, "n2"), "dead");
    assert!(
        !log.contains("Heartbeat restart on node n2") && !log.contains("Link n2:eth0 up"),
        "n1's Heartbeat heard n2:\n{log}"
    );
}
