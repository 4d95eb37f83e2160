//! hb-monitor under a flood: a third host on the heartbeat LAN sends datagrams to the
//! standby's heartbeat port as fast as one core can (examples/udp-flood.rs), garbage from its
//! own address and forged heartbeats from the active node's address. The standby must not
//! take over (no fence command here: a false takeover would put the VIP on both nodes), the
//! VIP is watched every 5 ms from outside to prove it stayed on the active node, and the
//! standby counts what the kernel dropped. Runs alone (`make test` runs it after the rest):
//! a flood at line rate takes a whole CPU from everything else on the machine.

use std::time::Duration;

use ferroha::hb::config::{AuthKeys, AuthMethod};
use ferroha::hb::proto::{self, Message};

use crate::util::agent::built_example;
use crate::util::hb_cluster::{Cluster, VIP, Watch};
use crate::util::host::{Host, wait_for};

/// n1 holds the VIP, n2 stands by; no fencing, no failback.
fn cluster(keepalive: &str, deadtime: &str) -> Cluster {
    let c = Cluster::new(
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        &format!("keepalive {keepalive}\nauto_failback off\n"),
        deadtime,
        |_| {},
    );
    c.wait_vip_on(0, Duration::from_secs(20));
    wait_for(
        "n2 to see n1 up",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || (n1_seen_by_n2(&c)["state"] == "up").then_some(()),
    );
    c
}

/// n1 as n2's status shows it.
fn n1_seen_by_n2(c: &Cluster) -> serde_json::Value {
    let status = c.status(1);
    status["peers"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["name"] == "n1").cloned())
        .unwrap_or_default()
}

/// A heartbeat from n1 signed with a key nobody has: it passes any filter on addresses and
/// costs the receiver a full parse and HMAC.
fn forged_heartbeat() -> String {
    let msg = Message::new(&[
        ("t", "status"),
        ("st", "active"),
        ("src", "n1"),
        ("hg", "ffffffff"),
        ("seq", "1"),
        ("rsc", "none"),
    ]);
    let wrong = AuthKeys {
        active: 1,
        keys: [(1, (AuthMethod::Sha256, b"guessed".to_vec()))].into(),
    };
    proto::encode(&msg, &wrong)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Floods n2's heartbeat port from `intruder` for `secs`; the datagrams sent per second.
fn flood(intruder: &Host, secs: u32, args: &[&str]) -> f64 {
    let out = intruder
        .command(built_example("udp-flood"))
        .args(["198.18.1.2", "694", &secs.to_string()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "udp-flood {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "sent N in S s"
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let (sent, took): (f64, f64) = (words[1].parse().unwrap(), words[3].parse().unwrap());
    let rate = sent / took;
    let shown: Vec<String> = args.iter().map(|a| format!("{a:.24}")).collect();
    eprintln!("udp-flood {shown:?}: {sent} datagrams in {took:.2} s = {rate:.0}/s");
    rate
}

/// What n2's kernel dropped on its heartbeat medium, as n2's status reports it.
fn kernel_drops(c: &Cluster) -> u64 {
    c.status(1)["dropped"]["kernel"].as_u64().unwrap_or(0)
}

/// Runs `flood` while the VIP is watched, then asserts it never left n1 and n2 still sees
/// n1 up with the flood's drops counted where they belong.
fn holds(c: &Cluster, what: &str, flood: impl FnOnce() -> f64) -> f64 {
    let dropped_before = c.status(1)["dropped"].clone();
    let watch = Watch::start(
        c.hosts.iter().map(|h| h.pid()).collect(),
        VIP,
        Duration::from_millis(5),
    );
    let rate = flood();
    // Past a deadtime after the flood: a takeover it caused would show by now.
    std::thread::sleep(Duration::from_millis(1500));
    let timeline = watch.finish();
    timeline.assert_never_two(200);
    assert!(
        timeline.stayed_on(0),
        "{what} at {rate:.0}/s moved the VIP: {:?}",
        timeline.changes
    );
    let status = c.status(1);
    assert_eq!(n1_seen_by_n2(c)["state"], "up", "{what}: {status}");
    assert_eq!(
        status["groups"][0]["holding"], "none",
        "{what}: n2 acted on the flood: {status}"
    );
    eprintln!(
        "{what}: held at {rate:.0}/s; n2 dropped before {dropped_before}, after {}",
        status["dropped"]
    );
    rate
}

#[test]
#[ignore = "needs root"]
fn a_flood_at_line_rate_is_no_failover_at_5_20_ms() {
    let c = cluster("5ms", "20ms");
    let intruder = Host::new("intruder");
    c.lan.attach(&intruder, "eth0", Some("198.18.1.66/24"));
    for payload in ["random", "magic"] {
        let before = kernel_drops(&c);
        let rate = holds(&c, &format!("garbage ({payload})"), || {
            flood(&intruder, 5, &["--payload", payload])
        });
        // Refused in the kernel, by the socket filter: not one reached the daemon.
        let dropped = kernel_drops(&c) - before;
        assert!(
            dropped as f64 > rate,
            "{payload}: n2 counted {dropped} kernel drops of about {:.0} sent",
            rate * 5.0
        );
        assert_eq!(c.status(1)["dropped"]["malformed"], 0, "{payload}");
    }
    let forged = forged_heartbeat();
    let before = c.status(1)["dropped"]["bad_signature"].as_u64().unwrap();
    holds(&c, "forged heartbeats from n1's address at 20000/s", || {
        flood(
            &intruder,
            5,
            &[
                "--from",
                "198.18.1.1",
                "--rate",
                "20000",
                "--payload",
                &forged,
            ],
        )
    });
    let refused = c.status(1)["dropped"]["bad_signature"].as_u64().unwrap() - before;
    assert!(
        refused > 50_000,
        "n2 refused only {refused} of 100000 forged heartbeats"
    );
}

#[test]
#[ignore = "needs root"]
fn a_forged_flood_at_line_rate_is_no_failover_at_200ms_1s() {
    let c = cluster("200ms", "1s");
    let intruder = Host::new("intruder");
    c.lan.attach(&intruder, "eth0", Some("198.18.1.66/24"));
    let forged = forged_heartbeat();
    holds(
        &c,
        "forged heartbeats from n1's address at line rate",
        || {
            flood(
                &intruder,
                5,
                &["--from", "198.18.1.1", "--payload", &forged],
            )
        },
    );
    assert!(c.status(1)["dropped"]["bad_signature"].as_u64().unwrap() > 100_000);
}
