//! hb-monitor's heartbeat media between two nodes in test hosts: `bcast` alone and `mcast`
//! alone (TTL 3, as on the wire) each carry a cluster (the VIP starts on its preferred node,
//! a crash moves it); with two media, one cut is reported in status and moves nothing.

use std::time::{Duration, Instant};

use crate::util::hb_cluster::{Cluster, VIP, Watch, on_second_lan};
use crate::util::host::{Lan, wait_for};

const DEADTIME: Duration = Duration::from_millis(400);

fn watch(c: &Cluster) -> Watch {
    Watch::start(
        c.hosts.iter().map(|h| h.pid()).collect(),
        VIP,
        Duration::from_millis(5),
    )
}

fn log_of(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.dirs[i].path().join("daemon.log")).unwrap_or_default()
}

/// Two heartbeats on the LAN as `tcpdump -v` shows them (captured in the switch).
fn captured(c: &Cluster) -> String {
    let out = c
        .lan
        .switch
        .command("timeout")
        .args([
            "5",
            "tcpdump",
            "-i",
            "br0",
            "-c",
            "2",
            "-nn",
            "-v",
            "udp port 694",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `media` (the same on both nodes, and nothing else) carries the cluster: the VIP starts
/// on n1, both nodes see each other on it, and n1's crash moves the VIP to n2 (never on
/// both). Returns what tcpdump saw of the heartbeats.
fn carried_by(media: &str) -> String {
    let mut c = Cluster::with_media(
        2,
        media,
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "auto_failback off\n",
        "400ms",
        |_| {},
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    assert!(!c.has(1, VIP));
    for (i, peer) in [(0, "n2"), (1, "n1")] {
        let s = c.status(i);
        assert_eq!(s["media"], serde_json::json!(["eth0:694"]), "{s}");
        // n1 may take the VIP before n2 has heard n1 (on a loaded machine, a while before).
        wait_for(
            &format!("n{} to hear {peer} on eth0:694", i + 1),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let s = c.status(i);
                let p = &s["peers"][0];
                (p["name"] == peer
                    && p["state"] == "up"
                    && p["media"]
                        == serde_json::json!([{
                            "medium": "eth0:694",
                            "up": true,
                            "last_heartbeat_ms_ago": p["media"][0]["last_heartbeat_ms_ago"],
                        }]))
                .then_some(())
            },
        );
    }
    let wire = captured(&c);
    let w = watch(&c);
    c.crash(0);
    let took = c.wait_vip_on(1, Duration::from_secs(10));
    eprintln!(
        "{}: VIP on n2 {} ms after n1 crashed (deadtime 400 ms)",
        media.trim(),
        took.as_millis()
    );
    std::thread::sleep(Duration::from_millis(200));
    let t = w.finish();
    t.assert_never_two(50);
    assert_eq!(t.holders(), [[0], [1]], "{:?}", t.changes);
    wire
}

#[test]
#[ignore = "needs root"]
fn bcast_alone_carries_a_two_node_cluster() {
    let wire = carried_by("bcast eth0\n");
    assert!(
        wire.contains(".694 > 255.255.255.255.694") || wire.contains(".694 > 198.18.1.255.694"),
        "no broadcast heartbeat seen:\n{wire}"
    );
}

#[test]
#[ignore = "needs root"]
fn mcast_alone_with_ttl_3_carries_a_two_node_cluster() {
    let wire = carried_by("mcast eth0 225.0.0.1 694 3 0\n");
    assert!(
        wire.contains("> 225.0.0.1.694") && wire.contains("ttl 3,"),
        "no multicast heartbeat with TTL 3 seen:\n{wire}"
    );
    assert!(!wire.contains("255.255.255.255"), "{wire}");
}

/// Node i's view of its peer's media: (name, up) for each.
fn media_of_peer(c: &Cluster, i: usize) -> Vec<(String, bool)> {
    c.status(i)["peers"][0]["media"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["medium"].as_str().unwrap_or_default().to_string(),
                m["up"] == true,
            )
        })
        .collect()
}

/// Both media, eth0 up and eth1 as given, as [`media_of_peer`] sorted says them.
fn media(eth1_up: bool) -> Vec<(String, bool)> {
    vec![("eth0:694".into(), true), ("eth1:694".into(), eth1_up)]
}

#[test]
#[ignore = "needs root"]
fn one_of_two_media_cut_is_reported_and_moves_nothing() {
    // ucast on eth0 (the cluster's LAN) and bcast on eth1, a second LAN: two media.
    let lan_b = Lan::new(2);
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "auto_failback off\nbcast eth1\n",
        "400ms",
        on_second_lan(&lan_b),
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    for i in 0..2 {
        wait_for(
            &format!("n{} to hear its peer on both media", i + 1),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let mut seen = media_of_peer(&c, i);
                seen.sort();
                (seen == media(true)).then_some(())
            },
        );
    }
    let w = watch(&c);
    // n2's port on the second LAN's switch goes down: eth1 carries nothing either way.
    lan_b.switch.sh_ok("ip link set port2 down");
    let cut = Instant::now();
    for i in 0..2 {
        wait_for(
            &format!("n{} to report eth1:694 down", i + 1),
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                let mut seen = media_of_peer(&c, i);
                seen.sort();
                (seen == media(false)).then_some(())
            },
        );
    }
    eprintln!(
        "eth1:694 reported down on both nodes {} ms after the cut",
        cut.elapsed().as_millis()
    );
    // Watched for more than three deadtimes after the cut: no death, no move.
    let watched = 3 * DEADTIME + Duration::from_millis(800);
    std::thread::sleep(watched.saturating_sub(cut.elapsed()));
    for (i, peer) in [(0, "n2"), (1, "n1")] {
        let s = c.status(i);
        assert_eq!(s["peers"][0]["name"], peer, "{s}");
        assert_eq!(
            s["peers"][0]["state"], "up",
            "one medium lost killed the peer: {s}"
        );
    }
    assert_eq!(c.holding(0), "held");
    assert_eq!(c.holding(1), "none");
    let t = w.finish();
    assert!(cut.elapsed() >= 3 * DEADTIME);
    t.assert_never_two(100);
    assert!(t.stayed_on(0), "the VIP left n1: {:?}", t.changes);
    for i in 0..2 {
        let log = log_of(&c, i);
        let peer = if i == 0 { "n2" } else { "n1" };
        assert!(
            log.contains(&format!("no heartbeats from {peer} on eth1:694"))
                && !log.contains("is dead"),
            "n{}:\n{log}",
            i + 1
        );
    }
    // The link back: the medium is up again.
    lan_b.switch.sh_ok("ip link set port2 up");
    for i in 0..2 {
        wait_for(
            &format!("n{} to report eth1:694 up again", i + 1),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let mut seen = media_of_peer(&c, i);
                seen.sort();
                (seen == media(true)).then_some(())
            },
        );
    }
    assert!(log_of(&c, 0).contains("heartbeats from n2 on eth1:694 again"));
}
