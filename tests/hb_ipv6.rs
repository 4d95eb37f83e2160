//! hb-monitor on an IPv6-only network (fd00:198:18::/48, no IPv4 on the nodes): `ucast6`
//! alone and `mcast6` alone each carry a two-node cluster (the IPv6 VIP starts on its
//! preferred node, a crash moves it), and a `ping6` node whose loss makes the active node
//! hand its group to the peer that still reaches it.

use std::time::Duration;

use crate::util::hb_cluster::{Cluster, VIP6, VIP6_IN_HARESOURCES, Watch};
use crate::util::host::{Host, Lan, wait_for};

fn log_of(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.dirs[i].path().join("daemon.log")).unwrap_or_default()
}

fn haresources() -> String {
    format!("n1 IPaddr2::{VIP6_IN_HARESOURCES}/64/eth0\n")
}

/// Two IPv6 heartbeats on the LAN as `tcpdump -v` shows them (captured in the switch).
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
            "ip6 and udp port 694",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `media` (the same on both nodes; `None`: `ucast6` to the peer) carries the cluster: the
/// VIP starts on n1, both nodes see each other on eth0:694, and n1's crash moves the VIP to
/// n2 (never on both). Returns what tcpdump saw of the heartbeats.
fn carried_by(media: Option<&str>) -> String {
    let mut c = Cluster::ipv6(
        media,
        &haresources(),
        "auto_failback off\n",
        "400ms",
        |_| {},
    );
    c.wait_addr_on(0, VIP6, 0, Duration::from_secs(15));
    assert!(!c.has(1, VIP6));
    for (i, peer) in [(0, "n2"), (1, "n1")] {
        let s = c.status(i);
        assert_eq!(s["media"], serde_json::json!(["eth0:694"]), "{s}");
        wait_for(
            &format!("n{} to hear {peer} on eth0:694", i + 1),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let s = c.status(i);
                let p = &s["peers"][0];
                (p["name"] == peer && p["state"] == "up" && p["media"][0]["up"] == true)
                    .then_some(())
            },
        );
    }
    let wire = captured(&c);
    let w = Watch::start(
        c.hosts.iter().map(|h| h.pid()).collect(),
        VIP6,
        Duration::from_millis(5),
    );
    c.crash(0);
    let took = c.wait_addr_on(1, VIP6, 0, Duration::from_secs(10));
    eprintln!(
        "{}: VIP on n2 {} ms after n1 crashed (deadtime 400 ms)",
        media.unwrap_or("ucast6").trim(),
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
fn ucast6_alone_carries_a_two_node_cluster() {
    let wire = carried_by(None);
    assert!(
        wire.contains("fd00:198:18:1::1.694 > fd00:198:18:1::2.694")
            || wire.contains("fd00:198:18:1::2.694 > fd00:198:18:1::1.694"),
        "no unicast IPv6 heartbeat seen:\n{wire}"
    );
}

#[test]
#[ignore = "needs root"]
fn mcast6_alone_on_a_link_local_group_carries_a_two_node_cluster() {
    // Heartbeat's own example group (transient, link-local scope), hop limit 1: the
    // heartbeats come from the nodes' link-local addresses, which the filter admits as the
    // interface's own network.
    let wire = carried_by(Some("mcast6 eth0 ff12::1:2:3:4 694 1 0\n"));
    assert!(
        wire.contains("> ff12::1:2:3:4.694") && wire.contains("hlim 1,"),
        "no multicast IPv6 heartbeat with hop limit 1 seen:\n{wire}"
    );
    assert!(
        wire.contains(" fe80::"),
        "not from a link-local address:\n{wire}"
    );
}

/// The ping node: a router on a second IPv6-only LAN (eth1 of each node).
const ROUTER6: &str = "fd00:198:18:2::fe";

fn router(uplink: &Lan) -> Host {
    let router = Host::new("router");
    uplink.attach(&router, "eth0", Some(&format!("{ROUTER6}/64")));
    router
}

fn ping6_reachable(c: &Cluster, i: usize) -> bool {
    c.status(i)["ping_nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["name"] == ROUTER6 && p["reachable"] == true)
}

#[test]
#[ignore = "needs root"]
fn a_node_that_loses_its_ping6_node_hands_the_group_to_the_peer_that_sees_it() {
    let uplink = Lan::new(2);
    let _router = router(&uplink);
    // Heartbeats on a site-local group (from the nodes' fd00: addresses), so that this test
    // does not share a medium with the two above.
    let c = Cluster::ipv6(
        Some("mcast6 eth0 ff05::1:694 694 1 0\n"),
        &haresources(),
        &format!("auto_failback off\nping6 {ROUTER6}\n"),
        "400ms",
        |host| {
            let n = &host.name()[1..];
            uplink.attach(host, "eth1", Some(&format!("fd00:198:18:2::{n}/64")));
        },
    );
    c.wait_addr_on(0, VIP6, 0, Duration::from_secs(15));
    // Both reach the router by its replies, not only by initdead's benefit of the doubt:
    // initdead (5 s) has not passed, so wait for a reply to show.
    wait_for(
        "both nodes to have a reply from the ping6 node",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            (0..2)
                .all(|i| c.status(i)["ping_nodes"][0]["last_reply_ms_ago"].is_u64())
                .then_some(())
        },
    );
    assert!(ping6_reachable(&c, 0) && ping6_reachable(&c, 1));
    let w = Watch::start(
        c.hosts.iter().map(|h| h.pid()).collect(),
        VIP6,
        Duration::from_millis(10),
    );
    c.hosts[0].sh_ok("ip link set eth1 down");
    c.wait_addr_on(1, VIP6, 0, Duration::from_secs(10));
    assert!(!c.has(0, VIP6));
    // An orderly handover (n1 stops, then n2 starts): never two holders.
    let t = w.finish();
    t.assert_never_two(10);
    let log = log_of(&c, 0);
    assert!(
        log.contains("n2 sees 1 ping nodes, this node 0"),
        "n1 does not say why it gave the group up:\n{log}"
    );
    assert!(!ping6_reachable(&c, 0) && ping6_reachable(&c, 1));
}
