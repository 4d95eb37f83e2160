//! The metrics of a status, line by line, and the format's rules: every sample under its
//! family's `# TYPE`, each family once and contiguous, label values escaped.

use std::collections::BTreeSet;

use super::*;

fn status() -> Value {
    serde_json::json!({
        "node": "n2",
        "generation": 7,
        "uptime_ms": 61_500,
        "peers": [{
            "name": "n1",
            "state": "dead",
            "media": [
                {"medium": "eth0:694", "last_heartbeat_ms_ago": 1250, "up": false},
                {"medium": "/dev/ttyS0", "last_heartbeat_ms_ago": 40, "up": true},
            ],
        }],
        "dropped": {"replayed": 3, "unknown_node": 0, "incomplete": 1, "kernel": 9},
        "dropped_by_medium": {
            "eth0:694": {"bad_signature": 5, "unknown_key": 0, "malformed": 0, "too_large": 0, "kernel": 9},
        },
        "accepted": 1000,
        "retransmission": {"requested": 12, "recovered": 10, "abandoned": 1, "resent": 6, "not_found": 0},
        "pauses": {"count": 2, "longest_ms": 120},
        "stand_in": {"heartbeats": 4},
        "groups": [{
            "name": "IPaddr2::198.18.1.100/24/eth0",
            "holder": "n2",
            "holding": "held",
            "failovers": 1,
            "restarts": 2,
            "resources": [
                {"name": "IPaddr2::198.18.1.100/24/eth0", "last_op": "start", "last_op_ok": true,
                 "last_op_duration_ms": 35, "last_op_ms_ago": 2000},
                {"name": "never-run", "last_op": null, "last_op_ok": null},
            ],
        }],
        "fences": {"n1": {"succeeded": 1, "failed": 2}},
        "fence_running": null,
        "ping_nodes": null,
    })
}

/// The sample lines of `text` as `name{labels} value`.
fn samples(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_status_becomes_these_samples() {
    let text = render(&status());
    let have = samples(&text);
    for want in [
        "ha_cluster_hb_up 1",
        "ha_cluster_hb_generation 7",
        "ha_cluster_hb_uptime_seconds 61.5",
        r#"ha_cluster_hb_node_up{node="n2"} 1"#,
        r#"ha_cluster_hb_node_up{node="n1"} 0"#,
        r#"ha_cluster_hb_peer_last_heartbeat_seconds{peer="n1",medium="eth0:694"} 1.25"#,
        r#"ha_cluster_hb_peer_last_heartbeat_seconds{peer="n1",medium="/dev/ttyS0"} 0.04"#,
        r#"ha_cluster_hb_medium_up{peer="n1",medium="eth0:694"} 0"#,
        r#"ha_cluster_hb_dropped_packets_total{kind="bad_signature",medium="eth0:694"} 5"#,
        r#"ha_cluster_hb_dropped_packets_total{kind="kernel",medium="eth0:694"} 9"#,
        r#"ha_cluster_hb_dropped_packets_total{kind="replayed",medium="all"} 3"#,
        "ha_cluster_hb_accepted_packets_total 1000",
        r#"ha_cluster_hb_retransmitted_messages_total{kind="requested"} 12"#,
        r#"ha_cluster_hb_retransmitted_messages_total{kind="recovered"} 10"#,
        r#"ha_cluster_hb_retransmitted_messages_total{kind="abandoned"} 1"#,
        r#"ha_cluster_hb_retransmitted_messages_total{kind="resent"} 6"#,
        r#"ha_cluster_hb_retransmitted_messages_total{kind="not_found"} 0"#,
        "ha_cluster_hb_pauses_total 2",
        "ha_cluster_hb_longest_pause_seconds 0.12",
        "ha_cluster_hb_stand_in_heartbeats_total 4",
        r#"ha_cluster_hb_group_holder{group="IPaddr2::198.18.1.100/24/eth0",node="n2"} 1"#,
        r#"ha_cluster_hb_group_holder{group="IPaddr2::198.18.1.100/24/eth0",node="n1"} 0"#,
        r#"ha_cluster_hb_group_state{group="IPaddr2::198.18.1.100/24/eth0",state="held"} 1"#,
        r#"ha_cluster_hb_group_state{group="IPaddr2::198.18.1.100/24/eth0",state="none"} 0"#,
        r#"ha_cluster_hb_failovers_total{group="IPaddr2::198.18.1.100/24/eth0"} 1"#,
        r#"ha_cluster_hb_local_restarts_total{group="IPaddr2::198.18.1.100/24/eth0"} 2"#,
        r#"ha_cluster_hb_resource_last_operation_seconds{group="IPaddr2::198.18.1.100/24/eth0",resource="IPaddr2::198.18.1.100/24/eth0",operation="start",result="ok"} 0.035"#,
        r#"ha_cluster_hb_resource_last_operation_age_seconds{group="IPaddr2::198.18.1.100/24/eth0",resource="IPaddr2::198.18.1.100/24/eth0",operation="start",result="ok"} 2"#,
        r#"ha_cluster_hb_fences_total{peer="n1",result="success"} 1"#,
        r#"ha_cluster_hb_fences_total{peer="n1",result="failure"} 2"#,
        "ha_cluster_hb_fence_running 0",
    ] {
        assert!(have.contains(want), "missing {want}:\n{text}");
    }
    // A resource never operated on has no last operation; eight states, one of them 1.
    assert!(!text.contains("never-run"), "{text}");
    let states: Vec<_> = have.iter().filter(|l| l.contains("group_state")).collect();
    assert_eq!(states.len(), 8);
    assert_eq!(states.iter().filter(|l| l.ends_with(" 1")).count(), 1);
    assert!(
        !text.contains("ping_node_reachable"),
        "no ping nodes, no family"
    );
}

#[test]
fn every_sample_is_under_its_family_and_each_family_is_whole() {
    for text in [render(&status()), render(&Value::Null), render_down()] {
        let mut seen = BTreeSet::new();
        let mut current: Option<String> = None;
        let mut help_of = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                help_of = rest.split(' ').next().map(str::to_string);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(help_of.as_deref(), Some(name), "HELP before TYPE: {line}");
                assert!(["gauge", "counter"].contains(&kind), "{line}");
                assert!(seen.insert(name.to_string()), "{name} twice:\n{text}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                current = Some(name.to_string());
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(Some(name), current.as_deref(), "{line} outside its family");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("ha_cluster_hb_"), "{line}");
        }
    }
}

#[test]
fn label_values_are_escaped() {
    let mut s = status();
    s["groups"][0]["name"] = "a\"b\\c\nd".into();
    let text = render(&s);
    assert!(
        text.contains(r#"ha_cluster_hb_failovers_total{group="a\"b\\c\nd"} 1"#),
        "{text}"
    );
}

#[test]
fn a_daemon_that_does_not_answer_is_down() {
    assert_eq!(
        samples(&render_down()),
        BTreeSet::from(["ha_cluster_hb_up 0".to_string()])
    );
}
