//! hb-monitor with several resource groups (one per haresources line) on two nodes in test
//! hosts, active/active: each node runs the group it is preferred for. A crashed node's group
//! moves to the survivor and comes back as auto_failback says, while the survivor's own group
//! never moves; standby and takeover scopes move exactly the groups they name; status shows
//! each group and each resource's last operation; a resource that keeps failing its monitor
//! fails over its own group only. Each VIP's holders are watched every 5 ms from outside the
//! nodes: never two, and every move (or flicker) is seen.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::util::hb_cluster::{Cluster, VIP, Watch};
use crate::util::host::wait_for;

/// Group 1's VIP (n1 is preferred), and group 2's (n2).
const VIP1: &str = VIP;
const VIP2: &str = "198.18.1.101";
/// The groups' names: their first resource as written in haresources.
const G1: &str = "IPaddr2::198.18.1.100/24/eth0";
const G2: &str = "IPaddr2::198.18.1.101/24/eth0";

const DEADTIME: Duration = Duration::from_millis(400);

fn haresources() -> String {
    format!("n1 {G1}\nn2 {G2}\n")
}

/// Waits for each node to hold the group it is preferred for.
fn wait_active_active(c: &Cluster) {
    c.wait_addr_on(0, VIP1, 0, Duration::from_secs(15));
    c.wait_addr_on(1, VIP2, 1, Duration::from_secs(15));
    assert!(!c.has(1, VIP1) && !c.has(0, VIP2));
}

fn active_active(ha_cf_extra: &str) -> Cluster {
    let c = Cluster::new(&haresources(), ha_cf_extra, "400ms", |_| {});
    wait_active_active(&c);
    c
}

fn watch(c: &Cluster, ip: &'static str) -> Watch {
    Watch::start(
        c.hosts.iter().map(|h| h.pid()).collect(),
        ip,
        Duration::from_millis(5),
    )
}

fn log_of(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.dirs[i].path().join("daemon.log")).unwrap_or_default()
}

/// Waits until node i's daemon takes part again after a boot: its start-up clean-up of group
/// `g` is done (the second in its log) and its peer is up.
fn wait_back(c: &Cluster, i: usize, g: usize) {
    let name = [G1, G2][g];
    let done = format!("start-up clean-up done: nothing of group {name} runs here");
    wait_for(
        &format!("n{} to take part again", i + 1),
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            (log_of(c, i).matches(&done).count() >= 2 && c.status(i)["peers"][0]["state"] == "up")
                .then_some(())
        },
    );
}

/// n1 crashes: n2 runs both groups; n1 boots again: group 1 goes back to n1 if `back`, else
/// stays on n2. Group 2 never leaves n2, not for one sample.
fn crash_and_return(ha_cf_extra: &str, back: bool) {
    let mut c = active_active(ha_cf_extra);
    let (w1, w2) = (watch(&c, VIP1), watch(&c, VIP2));
    c.crash(0);
    let took = c.wait_addr_on(1, VIP1, 0, Duration::from_secs(10));
    eprintln!(
        "group 1 on n2 {} ms after n1 crashed (deadtime 400 ms)",
        took.as_millis()
    );
    assert_eq!(c.holding_of(1, 1), "held");
    c.boot(0);
    if back {
        let returned = c.wait_addr_on(0, VIP1, 0, Duration::from_secs(20));
        eprintln!(
            "group 1 back on n1 {} ms after its daemon started",
            returned.as_millis()
        );
        assert!(!c.has(1, VIP1));
        assert_eq!(c.holding_of(1, 0), "none");
    } else {
        wait_back(&c, 0, 0);
        // Long enough for a failback to have begun several times over.
        std::thread::sleep(3 * DEADTIME + Duration::from_millis(500));
        assert!(c.has(1, VIP1) && !c.has(0, VIP1), "group 1 moved back");
        assert_eq!(c.holding_of(1, 0), "held");
        assert_eq!(c.holding_of(0, 0), "none");
    }
    // n1 never takes n2's group: it is available, n2 holds it.
    assert_eq!(c.holding_of(0, 1), "none");
    std::thread::sleep(Duration::from_millis(200));
    let (t1, t2) = (w1.finish(), w2.finish());
    t1.assert_never_two(50);
    t2.assert_never_two(50);
    let moves: &[&[usize]] = if back {
        &[&[0], &[1], &[0]]
    } else {
        &[&[0], &[1]]
    };
    assert_eq!(t1.holders(), moves, "group 1's VIP: {:?}", t1.changes);
    assert!(
        t2.stayed_on(1),
        "group 2's VIP left n2 (or was removed there): {:?}",
        t2.changes
    );
}

#[test]
#[ignore = "needs root"]
fn active_active_auto_failback_on_returns_the_crashed_nodes_group_only() {
    crash_and_return("auto_failback on\n", true);
}

/// No auto_failback line: Heartbeat 3's default (`legacy`) fails back as `on` does.
#[test]
#[ignore = "needs root"]
fn active_active_without_an_auto_failback_line_fails_back() {
    crash_and_return("", true);
}

#[test]
#[ignore = "needs root"]
fn active_active_auto_failback_off_leaves_the_group_with_the_survivor() {
    crash_and_return("auto_failback off\n", false);
}

/// `hb-monitor REQUEST` on n1, which must succeed; the groups its answer names.
fn request(c: &Cluster, text: &str) -> Vec<String> {
    let out = c.control_output(0, text);
    assert!(
        out.status.success(),
        "{text}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{text}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    reply["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}: {reply}"))
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect()
}

/// Waits until group 1 is on node `on[0]` and group 2 on `on[1]`, and only there.
fn wait_placed(c: &Cluster, on: [usize; 2], what: &str) {
    for (g, (ip, holder)) in [(VIP1, on[0]), (VIP2, on[1])].into_iter().enumerate() {
        wait_for(
            &format!("{what}: group {} on n{} only", g + 1, holder + 1),
            Duration::from_secs(15),
            Duration::from_millis(10),
            || {
                (c.has(holder, ip) && !c.has(1 - holder, ip) && c.holding_of(holder, g) == "held")
                    .then_some(())
            },
        );
    }
}

#[test]
#[ignore = "needs root"]
fn standby_and_takeover_scopes_move_exactly_the_groups_they_name() {
    let c = active_active("auto_failback off\n");
    let (w1, w2) = (watch(&c, VIP1), watch(&c, VIP2));
    // Every request on n1 (n1 is preferred for group 1: local; group 2 is foreign), with the
    // groups it must name and where each group is afterwards.
    let by_name = format!("standby {G2}");
    let steps: [(&str, &[&str], [usize; 2]); 7] = [
        ("takeover all", &[G1, G2], [0, 0]),
        ("standby foreign", &[G2], [0, 1]),
        ("standby local", &[G1], [1, 1]),
        ("takeover all", &[G1, G2], [0, 0]),
        (&by_name, &[G2], [0, 1]),
        ("standby 1", &[G1], [1, 1]),
        // A takeover of one group leaves the other's standby as it is.
        ("takeover 2", &[G2], [1, 0]),
    ];
    for (text, named, on) in steps {
        assert_eq!(request(&c, text), named, "{text}");
        wait_placed(&c, on, text);
        // Whatever else this request would start has begun within this.
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(c.status(0)["groups"][0]["standby"] == true);
    assert!(c.status(0)["groups"][1]["standby"] == false);
    // Unknown groups are refused, naming the groups there are; nothing moves.
    for text in [
        "standby nosuch",
        "takeover nosuch",
        "standby 3",
        "takeover 0",
    ] {
        let out = c.control_output(0, text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {out:?}");
        let word = text.split_whitespace().nth(1).unwrap();
        assert!(
            stderr.contains(&format!("no group \"{word}\""))
                && stderr.contains(G1)
                && stderr.contains(G2)
                && stderr.contains("1 to 2"),
            "{text}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{text}: {out:?}");
    }
    std::thread::sleep(Duration::from_millis(500));
    wait_placed(&c, [1, 0], "after the refused requests");
    let (t1, t2) = (w1.finish(), w2.finish());
    t1.assert_never_two(200);
    t2.assert_never_two(200);
    // Each group moved exactly when a request named it, and at no other time (a stop and
    // start on the same node would show that node twice in a row).
    assert_eq!(
        t1.holders(),
        [[0], [1], [0], [1]],
        "group 1's VIP: {:?}",
        t1.changes
    );
    assert_eq!(
        t2.holders(),
        [[1], [0], [1], [0], [1], [0]],
        "group 2's VIP: {:?}",
        t2.changes
    );
}

/// A resource line of `hb-monitor status` (human): `    "NAME": last "OP" "RESULT"`.
fn resource_line(name: &str, op: &str, result: &str) -> String {
    format!("    \"{name}\": last \"{op}\" \"{result}\"")
}

#[test]
#[ignore = "needs root"]
fn status_shows_each_group_its_holder_and_each_resources_last_operation() {
    // No monitor during the test: each resource's last operation stays what it was.
    let c = active_active("auto_failback on\nmonitor_interval 0\n");
    // Each node learns of the other's start from its next heartbeat.
    for i in 0..2 {
        wait_for(
            &format!("n{} to see both holders", i + 1),
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                let s = c.status(i);
                (s["groups"][0]["holder"] == "n1" && s["groups"][1]["holder"] == "n2").then_some(())
            },
        );
    }
    for (i, node) in ["n1", "n2"].into_iter().enumerate() {
        let s = c.status(i);
        assert_eq!(s["node"], node);
        let groups = s["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), 2, "{s}");
        for (g, (name, preferred)) in [(G1, "n1"), (G2, "n2")].into_iter().enumerate() {
            let group = &groups[g];
            let here = i == g;
            assert_eq!(group["name"], name, "{group}");
            assert_eq!(group["preferred"], preferred, "{group}");
            assert_eq!(group["holder"], preferred, "{group}");
            assert_eq!(group["holding"], if here { "held" } else { "none" });
            assert_eq!(group["job"], serde_json::Value::Null, "{group}");
            assert_eq!(group["want"], false, "{group}");
            assert_eq!(group["standby"], false, "{group}");
            assert_eq!(group["last_error"], serde_json::Value::Null, "{group}");
            assert_eq!(group["restarts_in_window"], 0, "{group}");
            let resources = group["resources"].as_array().expect("resources");
            assert_eq!(resources.len(), 1, "{group}");
            let r = &resources[0];
            assert_eq!(r["name"], name, "{group}");
            // The holder started it; the other node's last operation on it was its start-up
            // clean-up (a stop).
            assert_eq!(r["last_op"], if here { "start" } else { "stop" }, "{group}");
            assert_eq!(r["last_result"], "ok", "{group}");
            assert!(r["last_op_ms_ago"].as_u64().is_some(), "{group}");
        }
        // The peer's holding: one word per group, in haresources order.
        let peer = &s["peers"][0];
        assert_eq!(peer["name"], if i == 0 { "n2" } else { "n1" });
        assert_eq!(
            peer["holding"],
            if i == 0 { "none,held" } else { "held,none" }
        );
    }
    let out = c.control_output(0, "status");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        format!("  group \"{G1}\" (preferred \"n1\"): held by \"n1\", here \"held\""),
        resource_line(G1, "start", "ok"),
        format!("  group \"{G2}\" (preferred \"n2\"): held by \"n2\", here \"none\""),
        resource_line(G2, "stop", "ok"),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "no {expected:?} in:\n{text}"
        );
    }
    // Each resource line follows its group's line.
    let at = |l: &str| lines.iter().position(|x| *x == l).unwrap();
    assert_eq!(
        at(&resource_line(G1, "start", "ok")),
        at(&format!(
            "  group \"{G1}\" (preferred \"n1\"): held by \"n1\", here \"held\""
        )) + 1,
        "{text}"
    );
    // A group in standby says so; the peer that took it is its holder.
    c.control(0, &format!("standby {G1}"));
    c.wait_addr_on(1, VIP1, 0, Duration::from_secs(10));
    // n1 learns of n2's start from n2's next heartbeat.
    wait_for(
        "n1 to see n2 hold group 1",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || (c.status(0)["groups"][0]["holder"] == "n2").then_some(()),
    );
    let text = String::from_utf8_lossy(&c.control_output(0, "status").stdout).into_owned();
    assert!(
        text.contains(&format!(
            "  group \"{G1}\" (preferred \"n1\"): held by \"n2\", here \"standby\", in standby"
        )) && text.contains(&resource_line(G1, "stop", "ok")),
        "{text}"
    );
    let s = c.status(0);
    assert_eq!(s["groups"][0]["holder"], "n2", "{s}");
    assert_eq!(s["groups"][0]["standby"], true, "{s}");
}

/// An agent whose monitor fails (exit 1) on a node while `<dir>/sick-<node>` exists.
fn sick_agent(ocf_root: &Path, dir: &Path) {
    let agent_dir = ocf_root.join("resource.d/ferroha-test");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent = agent_dir.join("sick");
    std::fs::write(
        &agent,
        format!(
            r#"#!/bin/sh
node=$(uname -n)
state={dir}/$node.running
case "$1" in
  start) touch "$state" ;;
  stop) rm -f "$state" ;;
  monitor)
    [ -e "$state" ] || exit 7
    [ -e {dir}/sick-$node ] && {{ echo "ocf-exit-reason:told to be sick" >&2; exit 1; }} ;;
  meta-data|validate-all) ;;
esac
exit 0
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A third group, preferred by n1 too (only the failure test has it).
const VIP3: &str = "198.18.1.102";
const G3: &str = "IPaddr2::198.18.1.102/24/eth0";

#[test]
#[ignore = "needs root"]
fn a_resource_failing_its_monitor_fails_over_its_own_group_only() {
    // n1 runs groups 1 and 3, n2 group 2; group 1's second resource will fail its monitor
    // on n1.
    let scratch = crate::util::agent::world_readable_tempdir();
    let mut c = Cluster::stopped(
        2,
        &format!("n1 {G1} ferroha-test:sick\nn2 {G2}\nn1 {G3}\n"),
        "auto_failback off\nmonitor_interval 200ms\nrestart_limit 1 60\n",
        "400ms",
        |_| {},
    );
    sick_agent(&c.ocf_root(), scratch.path());
    c.start(0);
    c.start(1);
    wait_active_active(&c);
    c.wait_addr_on(0, VIP3, 2, Duration::from_secs(15));
    let (w1, w2, w3) = (watch(&c, VIP1), watch(&c, VIP2), watch(&c, VIP3));
    std::fs::write(scratch.path().join("sick-n1"), "").unwrap();
    // One restart in place (of the sick resource only: the VIP before it stays), then the
    // limit is reached and group 1 goes to n2, where the agent is well.
    c.wait_addr_on(1, VIP1, 0, Duration::from_secs(15));
    wait_for(
        "n1 to mark group 1 failed",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || (c.holding_of(0, 0) == "failed").then_some(()),
    );
    // A few more monitor rounds of every group.
    std::thread::sleep(Duration::from_millis(1000));
    let (t1, t2, t3) = (w1.finish(), w2.finish(), w3.finish());
    for t in [&t1, &t2, &t3] {
        t.assert_never_two(100);
    }
    assert_eq!(t1.holders(), [[0], [1]], "group 1's VIP: {:?}", t1.changes);
    assert!(
        t2.stayed_on(1),
        "group 2's VIP left n2 (or was removed there): {:?}",
        t2.changes
    );
    assert!(
        t3.stayed_on(0),
        "group 3's VIP left n1 (or was removed there) with group 1: {:?}",
        t3.changes
    );
    let log = log_of(&c, 0);
    assert!(
        log.contains("restarting it") && log.contains(&format!("giving group {G1} up")),
        "{log}"
    );
    // n1's status: group 1 failed here with the agent's reason, now held by n2; groups 2
    // and 3 untouched, no error.
    let s = c.status(0);
    let g1 = &s["groups"][0];
    assert_eq!(g1["holding"], "failed", "{g1}");
    assert_eq!(g1["holder"], "n2", "{g1}");
    assert_eq!(g1["restarts_in_window"], 1, "{g1}");
    let error = g1["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ferroha-test:sick monitor") && error.contains("told to be sick"),
        "{g1}"
    );
    assert_eq!(g1["resources"][1]["name"], "ferroha-test:sick", "{g1}");
    assert_eq!(g1["resources"][1]["last_op"], "stop", "{g1}");
    assert_eq!(g1["resources"][1]["last_result"], "ok", "{g1}");
    for (g, holding, holder) in [(1, "none", "n2"), (2, "held", "n1")] {
        let group = &s["groups"][g];
        assert_eq!(group["holding"], holding, "{group}");
        assert_eq!(group["holder"], holder, "{group}");
        assert_eq!(group["last_error"], serde_json::Value::Null, "{group}");
        assert_eq!(group["restarts_in_window"], 0, "{group}");
    }
    // n2 runs groups 1 and 2, monitored and well.
    let s = c.status(1);
    for g in 0..2 {
        let group = &s["groups"][g];
        assert_eq!(group["holding"], "held", "{group}");
        assert_eq!(group["last_error"], serde_json::Value::Null, "{group}");
    }
    assert_eq!(s["groups"][0]["resources"][1]["last_op"], "monitor", "{s}");
    assert_eq!(s["groups"][0]["resources"][1]["last_result"], "ok", "{s}");
}
