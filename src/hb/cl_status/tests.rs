use super::*;

/// n2's view: n1 up on eth0 (down on eth1), n3 never heard, one ping node reachable, the
/// group preferred by n1 held here.
fn status() -> Value {
    serde_json::json!({
        "node": "n2",
        "nodes": ["n1", "n2", "n3"],
        "media": ["eth0:694", "eth1:694", "/dev/ttyS0"],
        "peers": [
            {"name": "n1", "state": "up", "status": "active", "media": [
                {"medium": "eth0:694", "up": true},
                {"medium": "eth1:694", "up": false}
            ]},
            {"name": "n3", "state": "unknown", "status": "", "media": []}
        ],
        "ping_nodes": [{"name": "198.18.1.254", "reachable": true}],
        "groups": [{"name": "198.18.1.100", "preferred": "n1", "holding": "held"}]
    })
}

fn cl(args: &str, status: Option<&Value>) -> Outcome {
    let args: Vec<String> = args.split_whitespace().map(String::from).collect();
    run(&args, status)
}

#[test]
fn listnodes_gives_heartbeats_reverse_ha_cf_order_and_filters_by_type() {
    let s = status();
    assert_eq!(
        cl("listnodes", Some(&s)).stdout,
        "198.18.1.254\nn3\nn2\nn1\n"
    );
    assert_eq!(cl("listnodes -p", Some(&s)).stdout, "198.18.1.254\n");
    assert_eq!(cl("listnodes -n", Some(&s)).stdout, "n3\nn2\nn1\n");
    assert_eq!(cl("listnodes -pn", Some(&s)).stdout.lines().count(), 4);
    let verbose = cl("listnodes -v", Some(&s)).stdout;
    assert!(
        verbose.contains(
            "\nn1\tactive\t(nodetype: normal)\n\teth0\tup\n\teth1\tdead\n\t/dev/ttyS0\tdead\n"
        ) && verbose.contains("\nn2\tactive\t(nodetype: normal)\n\teth0\tdead\n"),
        "{verbose}"
    );
}

#[test]
fn nodestatus_and_its_exit_code_follow_heartbeat() {
    let s = status();
    let n1 = cl("nodestatus n1", Some(&s));
    assert_eq!((n1.stdout.as_str(), n1.code), ("active\n", OK));
    let me = cl("nodestatus n2", Some(&s));
    assert_eq!((me.stdout.as_str(), me.code), ("active\n", OK));
    let never = cl("nodestatus n3", Some(&s));
    assert_eq!((never.stdout.as_str(), never.code), ("dead\n", NORMAL_FAIL));
    let ping = cl("nodestatus 198.18.1.254", Some(&s));
    assert_eq!((ping.stdout.as_str(), ping.code), ("ping\n", OK));
    let human = cl("nodestatus -m n1", Some(&s));
    assert_eq!(human.stdout, "The cluster node n1 is active\n");
    let unknown = cl("nodestatus nosuch", Some(&s));
    assert_eq!(unknown.code, PARAMETER_ERROR);
    assert!(unknown.stderr.contains("incorrect node name"));
    assert_eq!(cl("nodestatus", Some(&s)).code, PARAMETER_ERROR);
}

#[test]
fn links_are_interfaces_with_their_state_per_node() {
    let s = status();
    assert_eq!(
        cl("listhblinks n1", Some(&s)).stdout,
        "\teth0\n\teth1\n\t/dev/ttyS0\n"
    );
    let up = cl("hblinkstatus n1 eth0", Some(&s));
    assert_eq!((up.stdout.as_str(), up.code), ("up\n", OK));
    let down = cl("hblinkstatus n1 eth1", Some(&s));
    assert_eq!((down.stdout.as_str(), down.code), ("dead\n", NORMAL_FAIL));
    assert_eq!(cl("hblinkstatus n1 eth9", Some(&s)).code, UNKNOWN_ERROR);
    assert_eq!(cl("listhblinks nosuch", Some(&s)).code, UNKNOWN_ERROR);
    assert_eq!(cl("hblinkstatus n1", Some(&s)).code, PARAMETER_ERROR);
    assert_eq!(cl("nodetype 198.18.1.254", Some(&s)).stdout, "ping\n");
    assert_eq!(cl("nodetype n3", Some(&s)).stdout, "normal\n");
}

#[test]
fn rscstatus_says_which_groups_this_node_holds_as_heartbeat_counts_them() {
    let mut s = status();
    // n2 holds n1's group and has none of its own.
    assert_eq!(cl("rscstatus", Some(&s)).stdout, "all\n");
    // A standby with no group of its own: local, as Heartbeat says on such a node.
    s["groups"][0]["holding"] = "none".into();
    assert_eq!(cl("rscstatus", Some(&s)).stdout, "local\n");
    s["groups"][0]["preferred"] = "n2".into();
    assert_eq!(cl("rscstatus", Some(&s)).stdout, "none\n");
    s["groups"][0]["holding"] = "held".into();
    assert_eq!(
        cl("rscstatus -m", Some(&s)).stdout,
        "This node is holding local resources.\n"
    );
}

#[test]
fn a_stopped_daemon_and_bad_arguments_get_heartbeats_answers() {
    let stopped = cl("hbstatus", None);
    assert_eq!(
        (stopped.stdout.as_str(), stopped.code),
        ("Heartbeat is stopped on this machine.\n", NORMAL_FAIL)
    );
    let s = status();
    let running = cl("hbstatus", Some(&s));
    assert_eq!(
        (running.stdout.as_str(), running.code),
        ("Heartbeat is running on this machine.\n", OK)
    );
    assert_eq!(cl("listnodes", None).code, NORMAL_FAIL);
    assert_eq!(cl("frobnicate", Some(&s)).code, PARAMETER_ERROR);
    assert_eq!(cl("listnodes -x", Some(&s)).code, PARAMETER_ERROR);
    assert_eq!(cl("", Some(&s)).code, OK, "no sub-command prints the usage");
    assert!(cl("", Some(&s)).stdout.starts_with("Usage: cl_status"));
}
