//! ferroha's agents under a real two-node Corosync + Pacemaker cluster (tests/util/pacemaker.rs):
//! DRBD (simulated, `examples/drbd-sim.rs`) as a promotable clone, and a group of file
//! system, MySQL and VIP tied to its Promoted instance, all configured with `cibadmin` and
//! run by `pacemaker-execd` as on a real cluster. Fencing is disabled (there is nothing to
//! fence in a namespace), so a partition runs the stack on both sides and Pacemaker's
//! multi-active recovery cleans up on rejoin: the link-cut test asserts that rather than
//! hiding it.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::agent::{AgentCmd, make_install, world_readable_tempdir};
use crate::util::host::{Lan, wait_for};
use crate::util::loopdev::LoopDevice;
use crate::util::pacemaker::{
    Agents, Cluster, Lab, MYSQL_RUN, MountWatch, Node, SETTLE, Status, dev_number, mysql_socket,
    primitive,
};

/// LAN 198.18.7.0/24 (no other test uses 7; LANs are isolated anyway).
const SUBNET: u8 = 7;

/// Corosync's totem token: a lost node is declared after about token + consensus (1.2 x
/// token), so about 2.2 s.
const TOKEN_MS: u32 = 1000;

/// The simulator's node letter of a cluster node (`<prefix>1` is `a`).
fn letter(node: &Node) -> &'static str {
    if node.name.ends_with('1') { "a" } else { "b" }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The stack comes up on one node with DRBD promoted there; a VIP deleted behind
/// Pacemaker's back and a MySQL server killed by pid are repaired by the monitors, in place.
#[test]
#[ignore = "needs root"]
fn stack_starts_on_one_node_and_failed_monitors_are_repaired_in_place() {
    let lab = Lab::start(SUBNET, "pcs", TOKEN_MS);
    let watch = MountWatch::start(&lab.cluster.nodes);
    let started = Instant::now();
    lab.configure(&lab.stack(Agents::Ferroha));
    let active = lab.wait_stack(&lab.cluster.nodes[0], SETTLE);
    eprintln!(
        "stack up on {active} {} ms after cibadmin",
        ms(started.elapsed())
    );
    let active = lab.cluster.node(&active);
    let standby = lab.cluster.other(&active.name);
    assert_eq!(
        lab.wait_stack(standby, SETTLE),
        active.name,
        "both nodes agree"
    );

    // DRBD: Primary where the stack runs, Secondary on the other node; both UpToDate and
    // connected, so both publish LINBIT's top score.
    let status = active.status().unwrap();
    assert_eq!(
        status.nodes_of("drbd", Some("Unpromoted")),
        [standby.name.as_str()]
    );
    assert!(lab.sim.events2(letter(active)).contains("role:Primary"));
    assert!(lab.sim.events2(letter(standby)).contains("role:Secondary"));
    for node in &lab.cluster.nodes {
        wait_for(
            &format!("promotion score 10000 on {}", node.name),
            SETTLE,
            Duration::from_millis(100),
            || (node.promotion_score("drbd").as_deref() == Some("10000")).then_some(()),
        );
    }
    // The disk is mounted on the active node only; the VIP answers; MySQL serves the datadir
    // on the disk.
    assert_eq!(active.mounted_devices(), [lab.disk.dev_number()]);
    assert!(standby.mounted_devices().is_empty());
    assert!(lab.cluster.lan.switch.ping(&lab.vip));
    let socket = mysql_socket();
    active
        .sql(
            &socket,
            "CREATE DATABASE t; CREATE TABLE t.kv (k INT PRIMARY KEY); INSERT INTO t.kv VALUES (1)",
        )
        .unwrap();

    // The VIP deleted behind Pacemaker's back: the 1 s monitor notices, vip is restarted on
    // the same node.
    active
        .host
        .ip_batch(&format!("addr del {}/24 dev eth0", lab.vip));
    let cut = Instant::now();
    wait_for("the VIP back", SETTLE, Duration::from_millis(10), || {
        active.has_ip(&lab.vip).then_some(())
    });
    eprintln!("VIP restored {} ms after deletion", ms(cut.elapsed()));
    wait_for(
        "vip's fail count",
        SETTLE,
        Duration::from_millis(100),
        || (active.fail_count("vip") == 1).then_some(()),
    );
    assert_eq!(lab.wait_stack(active, SETTLE), active.name);
    assert!(lab.cluster.lan.switch.ping(&lab.vip));

    // MySQL killed: the monitor notices, mysql (and vip, after it in the group) restart in
    // place, on the same data.
    let pid_file = format!("/proc/{}/root{MYSQL_RUN}/mysqld.pid", active.host.pid());
    let read_pid =
        || -> Option<i32> { std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok() };
    let pid = read_pid().expect("mysql-agent's pid file");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    wait_for("MySQL restarted", SETTLE, Duration::from_millis(20), || {
        read_pid()
            .filter(|&p| p != pid)
            .and_then(|_| active.sql(&socket, "SELECT k FROM t.kv").ok())
    });
    eprintln!(
        "MySQL answering again {} ms after kill -9",
        ms(killed.elapsed())
    );
    wait_for(
        "mysql's fail count",
        SETTLE,
        Duration::from_millis(100),
        || (active.fail_count("mysql") == 1).then_some(()),
    );
    assert_eq!(lab.wait_stack(active, SETTLE), active.name);
    assert_eq!(active.sql(&socket, "SELECT k FROM t.kv").unwrap(), "1\n");
    assert!(lab.cluster.lan.switch.ping(&lab.vip));
    assert!(standby.mounted_devices().is_empty());
    assert_eq!(watch.finish(), Vec::<String>::new(), "double mounts");
}

/// A start that fails shows the agent's `ocf-exit-reason` in `crm_mon`, on every node
/// Pacemaker tried, word for word what the agent printed.
#[test]
#[ignore = "needs root"]
fn crm_mon_shows_our_exit_reason_for_a_failing_start() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    // A block device without a file system: validation passes, the mount fails.
    let blank = LoopDevice::new(16);
    let mnt = world_readable_tempdir();
    let cluster = Cluster::start(
        SUBNET,
        "pcx",
        TOKEN_MS,
        &dest.path().join("usr/lib/ocf/resource.d/ferroha"),
    );
    let params = [
        ("device", blank.name()),
        ("directory", mnt.path().display().to_string()),
        ("fstype", "ext4".to_string()),
    ];
    let xml = primitive(
        "blank",
        "ferroha",
        "fs",
        &params,
        &[("monitor", "2s", "20s", None), ("start", "0s", "20s", None)],
    );
    let first = &cluster.nodes[0];
    first.cibadmin(&["--create", "-o", "resources", "-X", &xml]);
    // start-failure-is-fatal: one failed start per node, then it stays stopped.
    let status = first.wait_status("a failed start on both nodes", SETTLE, |s| {
        s.failures
            .iter()
            .filter(|f| f.op_key == "blank_start_0")
            .count()
            == 2
    });
    // What the agent itself says when started by hand the same way.
    let own = AgentCmd::new("fs")
        .on(&first.host)
        .param("device", &params[0].1)
        .param("directory", &params[1].1)
        .param("fstype", "ext4")
        .run("start");
    own.rc(1);
    let reason = own.reasons()[0].trim().to_string();
    assert!(reason.contains("mount"), "{reason}");
    let mut failed_on = Vec::new();
    for failure in status
        .failures
        .iter()
        .filter(|f| f.op_key == "blank_start_0")
    {
        assert_eq!(failure.exitstatus, "error", "{failure:?}");
        assert_eq!(failure.exitreason, reason, "{failure:?}");
        failed_on.push(failure.node.clone());
    }
    failed_on.sort();
    assert_eq!(failed_on, ["pcx1", "pcx2"]);
    // crm_mon's text, as an operator reads it.
    let text = first.crm_mon_text();
    for node in ["pcx1", "pcx2"] {
        assert!(
            text.contains(&format!(
                "blank start on {node} returned 'error' ({reason})"
            )),
            "crm_mon shows the reason:\n{text}"
        );
    }
    assert!(first.status().unwrap().nodes_of("blank", None).is_empty());
    for node in &cluster.nodes {
        assert!(node.mounted_devices().is_empty());
    }
}

/// Cutting the active node's only link: the other node promotes DRBD and starts the stack
/// (the VIP answers there, the data is there). Without fencing the cut-off node keeps its
/// copy running (a split brain, on its own copy of the disk: never one device mounted
/// twice); on rejoin Pacemaker finds everything active twice and recovers to one copy, and
/// DRBD reports the split brain (both StandAlone) for the operator.
#[test]
#[ignore = "needs root"]
fn cutting_the_active_link_moves_the_stack_and_rejoin_recovers_from_multi_active() {
    let mut lab = Lab::start(SUBNET, "pcl", TOKEN_MS);
    let watch = MountWatch::start(&lab.cluster.nodes);
    lab.configure(&lab.stack(Agents::Ferroha));
    let old = lab.wait_stack(&lab.cluster.nodes[0], SETTLE);
    let socket = mysql_socket();
    let (old, new) = (lab.cluster.node(&old), lab.cluster.other(&old));
    old.sql(
        &socket,
        "CREATE DATABASE t; CREATE TABLE t.kv (k INT PRIMARY KEY); INSERT INTO t.kv VALUES (1)",
    )
    .unwrap();
    let shared = lab.disk.dev_number();

    let mut cut = None;
    let replica = lab.disk.split(old, new, &lab.mountpoint, || {
        lab.sim.ctl(&["cut-link"]);
        lab.cluster.set_cable(old, false);
        cut = Some(Instant::now());
    });
    let cut = cut.expect("cut");
    let on_new = [new.name.as_str()];
    new.wait_status("the VIP on the other node", SETTLE, |s| {
        s.nodes_of("vip", Some("Started")) == on_new
    });
    eprintln!(
        "VIP up on {} {} ms after the cut",
        new.name,
        ms(cut.elapsed())
    );
    wait_for(
        "the VIP to answer from the other node",
        SETTLE,
        Duration::from_millis(1),
        || lab.cluster.lan.switch.ping(&lab.vip).then_some(()),
    );
    assert_eq!(lab.wait_stack(new, SETTLE), new.name);
    assert!(lab.sim.events2(letter(new)).contains("role:Primary"));
    assert_eq!(new.sql(&socket, "SELECT k FROM t.kv").unwrap(), "1\n");
    new.sql(&socket, "INSERT INTO t.kv VALUES (2)").unwrap();
    // Only the new node can have answered: the old one's cable is out.
    let port = lab
        .cluster
        .lan
        .switch
        .sh_ok(&format!("ip -o link show dev {}", old.port()));
    assert!(port.contains("state DOWN"), "{port}");
    // The cut-off node still runs DRBD Primary, its file system (on the disk as it was) and
    // MySQL: no fencing, and two_node keeps its quorum (the split brain fencing prevents).
    // Its VIP goes: vip's monitor finds no carrier, and the restart refuses to start there.
    let on_old = [old.name.as_str()];
    let status = old.wait_status("the cut-off node's VIP given up", SETTLE, |s| {
        s.nodes_of("drbd", Some("Promoted")) == on_old
            && s.nodes_of("fs", Some("Started")) == on_old
            && s.nodes_of("mysql", Some("Started")) == on_old
            && s.nodes_of("vip", Some("Started")).is_empty()
            && s.failures.iter().any(|f| f.op_key == "vip_start_0")
    });
    let failure = status.failures.iter().find(|f| f.op_key == "vip_start_0");
    assert!(
        failure.is_some_and(|f| f.exitreason.contains("no carrier")),
        "{failure:?}"
    );
    assert!(!old.has_ip(&lab.vip));
    assert_eq!(old.mounted_devices(), [shared.as_str()]);
    assert_eq!(new.mounted_devices(), [dev_number(&replica)]);

    // Rejoin.
    let rejoin = Instant::now();
    lab.cluster.set_cable(old, true);
    lab.sim.ctl(&["restore-link"]);
    lab.cluster.wait_formed(SETTLE);
    // Pacemaker finds the file system and MySQL active on both nodes, and says so.
    for rsc in ["fs", "mysql"] {
        let line = lab.cluster.wait_log(
            &format!("resource {rsc} might be active on 2 nodes"),
            SETTLE,
        );
        assert!(line.contains("attempting recovery"), "{line}");
    }
    lab.cluster.wait_idle(SETTLE);
    let winner = lab.wait_stack(new, SETTLE);
    assert_eq!(lab.wait_stack(old, SETTLE), winner);
    eprintln!(
        "one copy again, on {winner}, {} ms after the rejoin",
        ms(rejoin.elapsed())
    );
    let status = old.status().unwrap();
    assert_eq!(status.nodes_of("drbd", Some("Promoted")), [winner.as_str()]);
    for rsc in ["fs", "mysql", "vip"] {
        assert_eq!(status.nodes_of(rsc, None), [winner.as_str()], "{rsc}");
    }
    let loser = lab.cluster.other(&winner);
    assert!(loser.mounted_devices().is_empty());
    assert!(!loser.has_ip(&lab.vip));
    // Each side wrote on its own: DRBD refuses to reconnect (split brain) until told which
    // side's changes to drop.
    for node in &lab.cluster.nodes {
        assert!(
            lab.sim.events2(letter(node)).contains("StandAlone"),
            "{}: {}",
            node.name,
            lab.sim.events2(letter(node))
        );
    }
    let winner = lab.cluster.node(&winner);
    let rows = winner.sql(&socket, "SELECT k FROM t.kv").unwrap();
    assert!(rows == "1\n" || rows == "1\n2\n", "{rows}");
    assert_eq!(watch.finish(), Vec::<String>::new(), "double mounts");
}

/// drbd-agent's promotion scores decide where Pacemaker promotes: with DRBD disconnected,
/// the UpToDate node publishes a score and is promoted; the Outdated one publishes none and
/// is never promoted, not even when it is the only node left; when the data moves (the other
/// side UpToDate, this side Outdated) the promotion follows it.
#[test]
#[ignore = "needs root"]
fn promotion_follows_the_scores_drbd_agent_publishes() {
    let lab = Lab::start(SUBNET, "pcp", TOKEN_MS);
    let (n1, n2) = (&lab.cluster.nodes[0], &lab.cluster.nodes[1]);
    lab.sim.ctl(&["cut-link"]);
    lab.sim.ctl(&["disk", "b", "Outdated"]);
    n1.cibadmin(&[
        "--create",
        "-o",
        "resources",
        "-X",
        &lab.stack(Agents::Ferroha).clone,
    ]);
    fn promoted_on(node: &Node) -> impl Fn(&Status) -> bool + '_ {
        move |s| {
            s.nodes_of("drbd", Some("Promoted")) == [node.name.as_str()]
                && s.nodes_of("drbd", Some("Unpromoted")).len() == 1
        }
    }
    n1.wait_status(
        "drbd promoted on the UpToDate node",
        SETTLE,
        promoted_on(n1),
    );
    // Primary, the peer unknown: LINBIT's top score.
    wait_for("a's score", SETTLE, Duration::from_millis(100), || {
        (n1.promotion_score("drbd").as_deref() == Some("10000")).then_some(())
    });
    assert_eq!(n2.promotion_score("drbd"), None, "Outdated: no score");

    // The UpToDate node leaves: the Outdated one stays Unpromoted (several monitor rounds).
    n1.run_ok(
        "crm_attribute",
        &["--node", &n1.name, "--name", "standby", "--update", "on"],
    );
    n1.wait_status("drbd stopped on the standby node", SETTLE, |s| {
        s.nodes_of("drbd", None) == [n2.name.as_str()]
    });
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        let status = n2.status().unwrap_or_default();
        assert!(
            status.nodes_of("drbd", Some("Promoted")).is_empty(),
            "the Outdated node was promoted:\n{}",
            n2.crm_mon_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(n2.promotion_score("drbd"), None);

    // The data moves to b (a, stopped, is Outdated): b's monitor publishes a score and
    // Pacemaker promotes it; a comes back Outdated and stays Unpromoted.
    lab.sim.ctl(&["disk", "a", "Outdated"]);
    lab.sim.ctl(&["disk", "b", "UpToDate"]);
    n2.wait_status("drbd promoted on b", SETTLE, |s| {
        s.nodes_of("drbd", Some("Promoted")) == [n2.name.as_str()]
    });
    n1.run_ok(
        "crm_attribute",
        &["--node", &n1.name, "--name", "standby", "--update", "off"],
    );
    n1.wait_status("a back, Unpromoted", SETTLE, promoted_on(n2));
    // Primary with the peer unknown: LINBIT's top score (a Secondary in that state has 1000).
    wait_for(
        "b's score as Primary",
        SETTLE,
        Duration::from_millis(100),
        || (n2.promotion_score("drbd").as_deref() == Some("10000")).then_some(()),
    );
    assert_eq!(n1.promotion_score("drbd"), None);
}

/// A node that lost its base address in the VIP's subnet: the VIP fails over to the other
/// node instead of being stopped cluster-wide. vip-agent's start there answers 1 (no route
/// for the VIP on this node, as IPaddr2 says), which Pacemaker handles by moving the VIP;
/// the 6 it used to answer made Pacemaker stop it on every node. The VIP's subnet is a
/// second LAN, so that Corosync's ring (on the first) survives the loss.
#[test]
#[ignore = "needs root"]
fn a_vip_whose_node_lost_its_base_address_fails_over() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let cluster = Cluster::start(
        SUBNET,
        "pcv",
        TOKEN_MS,
        &dest.path().join("usr/lib/ocf/resource.d/ferroha"),
    );
    let service = Lan::new(SUBNET + 1);
    for (i, node) in cluster.nodes.iter().enumerate() {
        service.attach(&node.host, "eth1", Some(&service.cidr(i as u8 + 1)));
    }
    let vip = service.ip(100);
    // nic and cidr_netmask inferred, as most IPaddr2 configurations do.
    let xml = primitive(
        "vip",
        "ferroha",
        "vip",
        &[("ip", vip.clone())],
        &[("monitor", "1s", "20s", None), ("start", "0s", "20s", None)],
    );
    let first = &cluster.nodes[0];
    first.cibadmin(&["--create", "-o", "resources", "-X", &xml]);
    let status = first.wait_status("the VIP started", SETTLE, |s| {
        s.nodes_of("vip", Some("Started")).len() == 1
    });
    let old = cluster.node(&status.nodes_of("vip", Some("Started"))[0]);
    let new = cluster.other(&old.name);
    assert!(service.switch.ping(&vip));

    // The base address goes (and the VIP with it, as the kernel removes a subnet's
    // secondaries with its primary).
    old.host.sh_ok("ip addr flush dev eth1");
    let lost = Instant::now();
    let on_new = [new.name.as_str()];
    let status = new.wait_status("the VIP on the other node", SETTLE, |s| {
        s.nodes_of("vip", Some("Started")) == on_new
    });
    eprintln!(
        "VIP started on {} {} ms after {} lost its address",
        new.name,
        ms(lost.elapsed()),
        old.name
    );
    wait_for(
        "the VIP to answer from the other node",
        SETTLE,
        Duration::from_millis(10),
        || service.switch.ping(&vip).then_some(()),
    );
    assert!(
        new.host
            .sh_ok("ip -o -4 addr show dev eth1")
            .contains(&format!(" {vip}/24"))
    );
    // Pacemaker saw a soft error on the old node ("error", 1), never "not configured" (6).
    let start_failure = status
        .failures
        .iter()
        .find(|f| f.op_key == "vip_start_0" && f.node == old.name)
        .unwrap_or_else(|| panic!("no failed start on {}: {:?}", old.name, status.failures));
    assert_eq!(start_failure.exitstatus, "error", "{start_failure:?}");
    assert!(
        start_failure.exitreason.contains("no connected route"),
        "{start_failure:?}"
    );
    assert!(
        status
            .failures
            .iter()
            .all(|f| f.exitstatus != "not configured"),
        "{:?}",
        status.failures
    );
}

/// The road on to Pacemaker: `hb-monitor cib` turns an `haresources` line for the MySQL on
/// DRBD stack (as DRBD's guide writes it for Heartbeat, with the lab's parameters) into a
/// CIB; crm_verify accepts it, Pacemaker runs it (DRBD promoted where the group runs, the
/// group on its preferred node), a standby of that node moves everything, and
/// `auto_failback off` keeps it there when the node returns.
#[test]
#[ignore = "needs root"]
fn the_cib_hb_monitor_writes_runs_the_stack_under_pacemaker_and_fails_it_over() {
    let lab = Lab::start(SUBNET, "pcb", TOKEN_MS);
    let named = |params: Vec<(&str, String)>| {
        params
            .iter()
            .map(|(n, v)| format!("::{n}={v}"))
            .collect::<String>()
    };
    let fs = vec![
        ("device", crate::util::pacemaker::DEVICE_LINK.to_string()),
        ("directory", lab.mountpoint.display().to_string()),
        ("fstype", "ext4".to_string()),
    ];
    let vip = vec![
        ("ip", lab.vip.clone()),
        ("cidr_netmask", "24".to_string()),
        ("nic", "eth0".to_string()),
    ];
    let dir = world_readable_tempdir();
    std::fs::write(
        dir.path().join("ha.cf"),
        "keepalive 1\ndeadtime 10\nucast eth0 198.18.7.2\nauto_failback off\nnode pcb1\nnode pcb2\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("haresources"),
        format!(
            "pcb1 drbd{} fs{} mysql{} vip{}\n",
            named(lab.drbd_params()),
            named(fs),
            named(lab.mysql_params(Agents::Ferroha)),
            named(vip)
        ),
    )
    .unwrap();
    let keys = dir.path().join("authkeys");
    std::fs::write(&keys, "auth 1\n1 sha1 secret\n").unwrap();
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new(crate::util::agent::built_bin("hb-monitor"))
        .args(["cib", "-c"])
        .arg(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cib = String::from_utf8(out.stdout).unwrap();
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("note: no fencing"), "{notes}");
    let file = dir.path().join("cib.xml");
    std::fs::write(&file, &cib).unwrap();
    let verify = std::process::Command::new("crm_verify")
        .arg("--xml-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "crm_verify refused the CIB: {}{}\n{cib}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // Into the running cluster in one update: its configuration with our resources,
    // constraints and resource defaults in place of its own (the lab's cluster options stay).
    let first = &lab.cluster.nodes[0];
    let live = first.cibadmin(&["--query", "--scope", "configuration"]);
    let ours = roxmltree::Document::parse(&cib).unwrap();
    let theirs = roxmltree::Document::parse(&live).unwrap();
    let mut configuration = live.clone();
    let mut sections: Vec<(std::ops::Range<usize>, &str)> = vec![];
    for name in ["resources", "constraints", "rsc_defaults"] {
        let section = |doc: &roxmltree::Document<'_>| {
            doc.descendants()
                .find(|n| n.has_tag_name(name))
                .map(|n| n.range())
        };
        let mine = section(&ours).expect("our CIB has the section");
        match section(&theirs) {
            Some(range) => sections.push((range, &cib[mine])),
            None => panic!("the live configuration has no <{name}>:\n{live}"),
        }
    }
    sections.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    for (range, text) in sections {
        configuration.replace_range(range, text);
    }
    first.cibadmin(&[
        "--replace",
        "--scope",
        "configuration",
        "--xml-text",
        &configuration,
    ]);

    let stack = ["fs_1", "mysql_2", "vip_3"];
    let on = |observer: &Node, node: &str, what: &str| {
        observer.wait_status(what, SETTLE, |s| {
            s.only_node("drbd_0", "Promoted").as_deref() == Some(node)
                && stack
                    .iter()
                    .all(|r| s.nodes_of(r, Some("Started")) == [node])
        });
    };
    on(first, "pcb1", "the stack on its preferred node pcb1");
    assert!(lab.cluster.lan.switch.ping(&lab.vip));

    // A standby of pcb1 moves it all to pcb2.
    let second = &lab.cluster.nodes[1];
    first.run_ok(
        "crm_attribute",
        &["--node", "pcb1", "--name", "standby", "--update", "on"],
    );
    on(second, "pcb2", "the stack on pcb2 after pcb1's standby");
    wait_for(
        "the VIP to answer from pcb2",
        SETTLE,
        Duration::from_millis(20),
        || lab.cluster.lan.switch.ping(&lab.vip).then_some(()),
    );
    // pcb1 back: auto_failback off, so nothing moves (Pacemaker idle, still on pcb2).
    first.run_ok(
        "crm_attribute",
        &["--node", "pcb1", "--name", "standby", "--update", "off"],
    );
    first.wait_status("pcb1 online again", SETTLE, |s| {
        s.nodes_of("drbd_0", Some("Unpromoted")) == ["pcb1"]
    });
    lab.cluster.wait_idle(SETTLE);
    on(
        second,
        "pcb2",
        "the stack still on pcb2 (auto_failback off)",
    );
}
