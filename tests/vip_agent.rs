//! vip-agent as a process: the OCF contract from the command line, and the real kernel in
//! network namespaces (two hosts and a peer on a bridged LAN), checked from the other hosts.

use std::time::Duration;

use crate::util::agent::{AgentCmd, AgentRun};
use crate::util::host::{Host, Lan, wait_for};

fn vip() -> AgentCmd<'static> {
    AgentCmd::new("vip")
}

/// vip-agent on `host` for `ip` (nic and prefix inferred).
fn vip_on<'h>(host: &'h Host, ip: &str) -> AgentCmd<'h> {
    AgentCmd::new("vip").on(host).param("ip", ip)
}

/// The addresses of `ifname` in `host`, as `ip -br` prints them.
fn addrs(host: &Host, ifname: &str) -> Vec<String> {
    host.sh_ok(&format!("ip -br addr show dev {ifname}"))
        .split_whitespace()
        .skip(2)
        .map(str::to_string)
        .collect()
}

// ---- the OCF contract, no privileges needed ------------------------------------------

#[test]
fn meta_data_works_with_an_empty_environment() {
    let run = vip().run("meta-data");
    run.rc(0);
    assert!(run.stdout.starts_with("<?xml"), "{}", run.stdout);
    assert!(run.stdout.contains(r#"<resource-agent name="vip""#));
    assert!(
        run.stderr.is_empty(),
        "meta-data must be silent: {}",
        run.stderr
    );
}

#[test]
fn usage_and_help_succeed_and_no_action_is_err_args() {
    vip().run("usage").rc(0);
    vip().run("help").rc(0);
    let help = vip().run("--help");
    help.rc(0);
    assert!(help.stdout.contains("--cidr_netmask"), "{}", help.stdout);
    let run = AgentCmd::new("vip").args(&[]).run("");
    assert_ne!(run.rc, 0);
}

#[test]
fn unknown_action_is_unimplemented() {
    vip()
        .param("ip", "198.18.0.10")
        .run("frobnicate")
        .rc(3)
        .reason_contains("frobnicate");
    vip().param("ip", "198.18.0.10").run("promote").rc(3);
}

#[test]
fn unknown_flag_is_err_args() {
    vip()
        .args(&["--ipaddress", "198.18.0.10"])
        .run("start")
        .rc(2)
        .reason_contains("ipaddress");
}

#[test]
fn missing_ip_is_err_configured_but_stop_and_probe_succeed() {
    vip().run("validate-all").rc(6).reason_contains("'ip'");
    vip().run("start").rc(6);
    vip().run("stop").rc(0);
    vip()
        .env("OCF_RESKEY_CRM_meta_interval", "0")
        .run("monitor")
        .rc(7);
    vip()
        .env("OCF_RESKEY_CRM_meta_interval", "10000")
        .run("monitor")
        .rc(6);
}

#[test]
fn bad_input_gets_a_clear_reason_and_err_configured() {
    let cases = [
        (&[("ip", "198.18.0.256")][..], "not an IPv4 or IPv6 address"),
        (
            &[("ip", "198.18.0.10"), ("cidr_netmask", "40")],
            "out of range",
        ),
        (
            &[("ip", "2001:db8::10"), ("cidr_netmask", "255.255.255.0")],
            "IPv4 netmask",
        ),
        (
            &[("ip", "198.18.0.10"), ("nic", "bad/name")],
            "not a valid interface name",
        ),
        (&[("ip", "198.18.0.10"), ("arp_count", "0")], "arp_count"),
        (
            &[("ip", "198.18.0.10"), ("arp_interval", "fast")],
            "arp_interval",
        ),
    ];
    for (params, reason) in cases {
        let mut cmd = vip();
        for (k, v) in params {
            cmd = cmd.param(k, v);
        }
        cmd.run("validate-all").rc(6).reason_contains(reason);
        // Flags mean the same as the environment.
        let mut flags = vec![];
        for (k, v) in params {
            flags.push(format!("--{k}"));
            flags.push(v.to_string());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        AgentCmd::new("vip")
            .args(&flags)
            .run("validate-all")
            .rc(6)
            .reason_contains(reason);
    }
}

#[test]
fn exit_reason_prefix_is_honoured() {
    let run = vip().env("OCF_EXIT_REASON_PREFIX", "WHY:").run("start");
    run.rc(6);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("WHY:") && l.contains("'ip'")),
        "{}",
        run.stderr
    );
}

#[test]
fn log_lines_name_the_instance_and_action() {
    let run = vip().env("OCF_RESOURCE_INSTANCE", "my_vip").run("start");
    assert!(run.stderr.contains("vip(my_vip)["), "{}", run.stderr);
    assert!(run.stderr.contains("]: start: ERROR:"), "{}", run.stderr);
    assert!(!run.stderr.contains("DEBUG"));
    let debug = vip()
        .env("HA_debug", "1")
        .param("ip", "198.18.0.10")
        .run("stop");
    assert!(debug.stderr.is_empty() || !debug.stderr.contains("panicked"));
}

// ---- the real kernel, in namespaces -----------------------------------------------------

/// A LAN with host a (198.18.1.1) and b (198.18.1.2), and a client c (198.18.1.3).
struct World {
    lan: Lan,
    a: Host,
    b: Host,
    c: Host,
    mac_a: String,
    mac_b: String,
}

fn world() -> World {
    let lan = Lan::new(1);
    let (a, b, c) = (
        Host::new("node-a"),
        Host::new("node-b"),
        Host::new("client"),
    );
    let mac_a = lan.attach(&a, "eth0", Some("198.18.1.1/24"));
    let mac_b = lan.attach(&b, "eth0", Some("198.18.1.2/24"));
    lan.attach(&c, "eth0", Some("198.18.1.3/24"));
    World {
        lan,
        a,
        b,
        c,
        mac_a,
        mac_b,
    }
}

/// The same LAN with IPv6 addresses 2001:db8:1::1, ::2, ::3 on the hosts too.
fn world_v6() -> World {
    let w = world();
    for (host, n) in [(&w.a, 1), (&w.b, 2), (&w.c, 3)] {
        host.sh_ok(&format!("ip addr add {}/64 dev eth0 nodad", w.lan.ip6(n)));
    }
    w
}

const VIP: &str = "198.18.1.100";

/// tcpdump of what `filter` selects on `ifname` in `host`, started before the test's action.
struct Capture {
    tcpdump: crate::util::host::Guarded,
    /// What tcpdump printed so far, read as it prints (`-l`), so that a test can wait for
    /// the packets it expects instead of sleeping for as long as they should take.
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    fn start(host: &Host, ifname: &str, filter: &str) -> Capture {
        let mut tcpdump = host.spawn(
            host.command("tcpdump")
                .args([
                    "-i",
                    ifname,
                    "-n",
                    "-e",
                    "-l",
                    "-tt",
                    "--immediate-mode",
                    filter,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        );
        // What tcpdump misses would fail the test: wait until it says it is listening
        // (printed once the capture is open and its filter set), then keep draining its
        // stderr so that it never blocks on it.
        let stderr = tcpdump.child.stderr.take().expect("stderr piped");
        let (ready, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut said = String::new();
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { break };
                if line.starts_with("listening on") {
                    let _ = ready.send(Ok(()));
                }
                said += &line;
            }
            let _ = ready.send(Err(said));
        });
        match listening.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(said)) => panic!("tcpdump on {ifname} ended before listening: {said}"),
            Err(e) => panic!("tcpdump on {ifname} not listening after 10 s: {e}"),
        }
        let stdout = tcpdump.child.stdout.take().expect("stdout piped");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Capture {
            tcpdump,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits (at most 10 s) until `count` captured lines contain `needle`.
    fn wait_for_lines(&self, needle: &str, count: usize) {
        crate::util::host::wait_for(
            &format!("{count} captured lines with {needle:?}"),
            Duration::from_secs(10),
            Duration::from_millis(5),
            || {
                let lines = self.lines.lock().unwrap();
                (lines.iter().filter(|l| l.contains(needle)).count() >= count).then_some(())
            },
        );
    }

    /// Stops the capture and returns its lines (`<epoch seconds> <src mac> > <dst mac> ...`).
    fn finish(mut self) -> String {
        // SAFETY: signalling our own child so that it flushes and exits.
        unsafe { libc::kill(self.tcpdump.pid() as i32, libc::SIGINT) };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let lines = self.lines.lock().unwrap();
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

#[test]
#[ignore = "needs root"]
fn start_monitor_stop_with_the_real_kernel() {
    let w = world();
    let agent = vip_on(&w.a, VIP);
    agent.run("monitor").rc(7);
    agent.run("start").rc(0);
    assert_eq!(
        addrs(&w.a, "eth0")[..2],
        ["198.18.1.1/24".to_string(), format!("{VIP}/24")]
    );
    agent.run("monitor").rc(0);
    agent.run("start").rc(0);
    assert!(w.c.ping(VIP), "client cannot reach the VIP");
    assert_eq!(w.c.neigh(VIP).as_deref(), Some(w.mac_a.as_str()));
    agent.run("stop").rc(0);
    agent.run("stop").rc(0);
    agent.run("monitor").rc(7);
    assert!(!addrs(&w.a, "eth0").contains(&format!("{VIP}/24")));
    assert!(
        addrs(&w.a, "eth0").contains(&"198.18.1.1/24".to_string()),
        "stop took the node's address"
    );
    assert!(!w.lan.switch.ping(VIP));
}

#[test]
#[ignore = "needs root"]
fn vip_moves_between_hosts_and_the_peers_neighbour_entry_follows() {
    let w = world();
    vip_on(&w.a, VIP).run("start").rc(0);
    assert!(w.c.ping(VIP));
    assert_eq!(w.c.neigh(VIP).as_deref(), Some(w.mac_a.as_str()));
    // a loses the VIP (as after its stop); b takes over. The client sends nothing meanwhile:
    // only b's gratuitous ARP can move its neighbour entry.
    vip_on(&w.a, VIP).run("stop").rc(0);
    vip_on(&w.b, VIP).run("start").rc(0);
    wait_for(
        "the client's neighbour entry to point at b",
        Duration::from_secs(3),
        Duration::from_millis(5),
        || (w.c.neigh(VIP).as_deref() == Some(w.mac_b.as_str())).then_some(()),
    );
    assert!(w.c.ping(VIP));
    vip_on(&w.b, VIP).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn announcements_arrive_arp_count_times_arp_interval_apart() {
    let w = world();
    // The client records every ARP packet it sees, with timestamps.
    let capture = Capture::start(&w.c, "eth0", "arp");
    vip_on(&w.a, VIP)
        .param("arp_count", "4")
        .param("arp_interval", "150")
        .param("arp_mode", "request")
        .run("start")
        .rc(0);
    capture.wait_for_lines(&format!("Request who-has {VIP} tell {VIP}"), 4);
    // A fifth, if the agent sent one, would follow one arp_interval after the fourth: wait
    // twice that (a loaded machine wakes the agent late) before counting.
    std::thread::sleep(Duration::from_millis(300));
    let out = capture.finish();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(&format!("Request who-has {VIP} tell {VIP}")))
        .collect();
    assert_eq!(lines.len(), 4, "expected 4 gratuitous requests:\n{out}");
    assert!(
        lines.iter().all(|l| l.contains(&w.mac_a)),
        "sender MAC must be a's:\n{out}"
    );
    let times: Vec<f64> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]) * 1000.0;
        // The agent sleeps arp_interval between rounds: measured 150.2..152.3 ms. Below:
        // 2 ms for timestamps taken where the client receives, not where a sends. Above:
        // 50 ms for a loaded 2-core machine to be late waking the agent from its sleep.
        assert!(
            (148.0..200.0).contains(&gap),
            "gap {gap:.1} ms, arp_interval 150: {times:?}"
        );
    }
    vip_on(&w.a, VIP).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn stop_removes_only_the_configured_address() {
    let w = world();
    w.a.sh_ok("ip addr add 198.18.1.50/24 dev eth0");
    vip_on(&w.a, VIP).run("start").rc(0);
    w.a.sh_ok("ip addr add 198.18.1.51/24 dev eth0");
    vip_on(&w.a, VIP).run("stop").rc(0);
    assert_eq!(
        addrs(&w.a, "eth0")[..3],
        [
            "198.18.1.1/24".to_string(),
            "198.18.1.50/24".into(),
            "198.18.1.51/24".into()
        ]
    );
    // A VIP that is the primary of its subnet (nothing else of 198.18.9.0/24 on eth0), with a
    // secondary added after it: stopping the VIP must not take the secondary down with it.
    let primary_vip = vip_on(&w.a, "198.18.9.1")
        .param("nic", "eth0")
        .param("cidr_netmask", "24");
    w.a.sh_ok("sysctl -qw net.ipv4.conf.eth0.promote_secondaries=0");
    primary_vip.run("start").rc(0);
    w.a.sh_ok("ip addr add 198.18.9.2/24 dev eth0");
    primary_vip.run("stop").rc(0);
    let left = addrs(&w.a, "eth0");
    assert!(
        left.contains(&"198.18.9.2/24".to_string()),
        "secondary lost: {left:?}"
    );
    assert!(!left.contains(&"198.18.9.1/24".to_string()), "{left:?}");
}

#[test]
#[ignore = "needs root"]
fn the_nodes_own_address_is_refused_and_never_removed() {
    let w = world();
    let own = vip_on(&w.a, "198.18.1.1");
    own.run("start").rc(6).reason_contains("primary address");
    own.run("validate-all").rc(6);
    own.run("stop").rc(0);
    own.env("OCF_RESKEY_CRM_meta_interval", "0")
        .run("monitor")
        .rc(7);
    assert!(addrs(&w.a, "eth0").contains(&"198.18.1.1/24".to_string()));
    assert!(w.c.ping("198.18.1.1"));
}

// ---- exit codes that let Pacemaker recover: node-local conditions are never 6 -------------
//
// 6 (OCF_ERR_CONFIGURED) stops a resource on every node; a condition true on this node only
// must be 1 or 5 so that the VIP moves. Each case runs IPaddr2 (resource-agents, when
// installed) on the same host with the same parameters and checks that the two agree, or
// says why vip-agent deliberately differs.

/// `action` by vip-agent and by IPaddr2 on `host` with the same parameters and environment.
fn side_by_side(
    host: &Host,
    params: &[(&str, &str)],
    env: &[(&str, &str)],
    action: &str,
) -> (AgentRun, Option<AgentRun>) {
    let build = |mut cmd: AgentCmd<'_>| {
        for (k, v) in params {
            cmd = cmd.param(k, v);
        }
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd.run(action)
    };
    let ours = build(AgentCmd::new("vip").on(host));
    let theirs = AgentCmd::original("heartbeat/IPaddr2").map(|c| build(c.on(host)));
    (ours, theirs)
}

/// Asserts that vip-agent returns `rc` and IPaddr2 (if installed) `original_rc`.
fn expect_codes(
    host: &Host,
    params: &[(&str, &str)],
    env: &[(&str, &str)],
    action: &str,
    rc: i32,
    original_rc: i32,
) -> AgentRun {
    let (ours, theirs) = side_by_side(host, params, env, action);
    ours.rc(rc);
    if let Some(theirs) = theirs {
        assert_eq!(
            theirs.rc, original_rc,
            "IPaddr2 {action} {params:?}: stderr:\n{}",
            theirs.stderr
        );
    }
    ours
}

const PROBE: &[(&str, &str)] = &[("OCF_RESKEY_CRM_meta_interval", "0")];
const RECURRING: &[(&str, &str)] = &[("OCF_RESKEY_CRM_meta_interval", "10000")];

#[test]
#[ignore = "needs root"]
fn no_connected_route_for_the_vip_is_a_soft_error_as_with_ipaddr2() {
    let w = world();
    // This node lost (or never had) an address in the VIP's subnet: 1, so that Pacemaker
    // moves the VIP to a node that has one, never 6.
    let unroutable = [("ip", "198.19.7.7")];
    expect_codes(&w.a, &unroutable, &[], "validate-all", 1, 1)
        .reason_contains("set nic and cidr_netmask");
    expect_codes(&w.a, &unroutable, &[], "start", 1, 1).reason_contains("no connected route");
    expect_codes(&w.a, &unroutable, PROBE, "monitor", 7, 7);
    expect_codes(&w.a, &unroutable, &[], "stop", 0, 0);
    // A forced nic without an address in the VIP's subnet: the same.
    w.lan.attach(&w.a, "eth1", None);
    let bare_nic = [("ip", VIP), ("nic", "eth1")];
    expect_codes(&w.a, &bare_nic, &[], "validate-all", 1, 1).reason_contains("eth1");
    expect_codes(&w.a, &bare_nic, &[], "start", 1, 1);
    expect_codes(&w.a, &bare_nic, PROBE, "monitor", 7, 7);
    expect_codes(&w.a, &bare_nic, &[], "stop", 0, 0);
    let all = w.a.sh_ok("ip -br addr");
    assert!(!all.contains("198.19.7.7") && !all.contains(VIP), "{all}");
    // With nic and prefix given, no route is needed.
    let explicit = vip_on(&w.a, "198.19.7.7")
        .param("nic", "eth0")
        .param("cidr_netmask", "32");
    explicit.run("start").rc(0);
    explicit.run("monitor").rc(0);
    explicit.run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn a_missing_interface_is_err_installed_where_ipaddr2_says_err_configured() {
    let w = world();
    // IPaddr2's findif answers 6 for a nic that `ip link show` does not know. An interface
    // that exists on the other nodes (a renamed or unplugged NIC here) must not stop the VIP
    // cluster-wide: vip-agent says 5, which bans only this node.
    let missing = [("ip", VIP), ("nic", "eth7")];
    expect_codes(&w.a, &missing, &[], "validate-all", 5, 6).reason_contains("eth7");
    expect_codes(&w.a, &missing, &[], "start", 5, 6).reason_contains("eth7");
    // Probes and stops never fail for it.
    expect_codes(&w.a, &missing, PROBE, "monitor", 7, 7);
    expect_codes(&w.a, &missing, &[], "stop", 0, 0);
}

#[test]
#[ignore = "needs root"]
fn what_depends_on_this_nodes_interfaces_is_err_installed() {
    let w = world();
    // A label too long for the inferred interface's name: another node's NIC may have a
    // shorter one (eth0 vs enp0s31f6), so 5; with nic set it is wrong everywhere, 6.
    // IPaddr2 says 6 for both.
    let label = [("ip", VIP), ("iflabel", "abcdefghijk")];
    expect_codes(&w.a, &label, &[], "validate-all", 5, 6).reason_contains("inferred on this node");
    let label_nic = [("ip", VIP), ("iflabel", "abcdefghijk"), ("nic", "eth0")];
    expect_codes(&w.a, &label_nic, &[], "validate-all", 6, 6).reason_contains("iflabel");
    // The VIP already sits on another interface of this node: refused (5) rather than
    // added a second time. IPaddr2 does not look (its validate-all says 0, its start adds a
    // duplicate), so it is not compared.
    w.lan.attach(&w.a, "eth1", None);
    w.a.sh_ok(&format!("ip addr add {VIP}/24 dev eth1"));
    vip_on(&w.a, VIP)
        .param("nic", "eth0")
        .param("cidr_netmask", "24")
        .run("validate-all")
        .rc(5)
        .reason_contains("another interface");
    w.a.sh_ok(&format!("ip addr del {VIP}/24 dev eth1"));
}

#[test]
#[ignore = "needs root"]
fn a_netmask_wider_than_the_connected_subnet_is_refused_as_by_ipaddr2() {
    let w = world();
    let routes_before = w.a.sh_ok("ip route show table all");
    // The VIP's /16 would install an on-link route for all of 198.18.0.0/16 on eth0, whose
    // connected subnet is a /24: traffic to the rest of the /16 would stop going through
    // the gateway. IPaddr2 finds no route matching 198.18.1.100/16 and refuses with 1.
    let wide = [("ip", VIP), ("cidr_netmask", "16")];
    expect_codes(&w.a, &wide, &[], "validate-all", 1, 1)
        .reason_contains("cidr_netmask 16 is wider than");
    expect_codes(&w.a, &wide, &[], "start", 1, 1).reason_contains("set cidr_netmask to 24");
    expect_codes(&w.a, &wide, &[], "stop", 0, 0);
    assert_eq!(w.a.sh_ok("ip route show table all"), routes_before);
    assert!(!w.a.sh_ok("ip -br addr").contains(VIP));
    // Narrower than (or equal to) the subnet is fine, as with IPaddr2.
    for prefix in ["24", "32"] {
        let ok = vip_on(&w.a, VIP).param("cidr_netmask", prefix);
        ok.run("start").rc(0);
        assert!(addrs(&w.a, "eth0").contains(&format!("{VIP}/{prefix}")));
        ok.run("stop").rc(0);
    }
}

#[test]
#[ignore = "needs root"]
fn a_vanished_nic_fails_the_recurring_monitor_as_with_ipaddr2() {
    let w = world();
    let lan2 = Lan::new(2);
    lan2.attach(&w.a, "eth1", Some("198.18.2.1/24"));
    let vip2 = "198.18.2.100";
    let params = [("ip", vip2), ("nic", "eth1")];
    vip_on(&w.a, vip2).param("nic", "eth1").run("start").rc(0);
    w.a.sh_ok("ip link del eth1");
    // Pacemaker must recover the VIP (1), not believe it cleanly stopped (7); the reason
    // names the interface.
    expect_codes(&w.a, &params, RECURRING, "monitor", 1, 1).reason_contains("eth1");
    // A probe: nothing can be configured on an interface that does not exist.
    expect_codes(&w.a, &params, PROBE, "monitor", 7, 7);
    expect_codes(&w.a, &params, &[], "stop", 0, 0);
}

#[test]
#[ignore = "needs root"]
fn a_vip_in_a_loopback_prefix_is_inferred_to_lo() {
    let w = world();
    // A prefix on lo is local as a whole (the kernel's `local 198.18.7.0/24 dev lo` route,
    // as for 127.0.0.0/8): a VIP in it goes on lo, as IPaddr2's findif does for 127.x.
    // (IPaddr2 knows only 127/8, which these tests do not use; the unit tests cover it.)
    w.a.sh_ok("ip addr add 198.18.7.1/24 dev lo");
    let agent = vip_on(&w.a, "198.18.7.100");
    agent.run("validate-all").rc(0);
    agent.run("start").rc(0);
    assert!(
        addrs(&w.a, "lo").contains(&"198.18.7.100/24".to_string()),
        "{:?}",
        addrs(&w.a, "lo")
    );
    agent.run("monitor").rc(0);
    agent.run("stop").rc(0);
    agent.run("monitor").rc(7);
    assert!(!addrs(&w.a, "lo").contains(&"198.18.7.100/24".to_string()));
}

#[test]
#[ignore = "needs root"]
fn monitor_fails_when_the_nic_goes_down_and_start_brings_it_back() {
    let w = world();
    let agent = vip_on(&w.a, VIP).param("nic", "eth0");
    agent.run("start").rc(0);
    w.a.sh_ok("ip link set eth0 down");
    agent.run("monitor").rc(1).reason_contains("down");
    agent.run("start").rc(0);
    agent.run("monitor").rc(0);
    assert!(w.c.ping(VIP));
    // No carrier: the switch side of the cable is unplugged.
    w.lan.switch.sh_ok("ip link set port1 down");
    agent.run("monitor").rc(1).reason_contains("carrier");
    w.lan.switch.sh_ok("ip link set port1 up");
    agent.run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn depth_10_monitor_finds_another_host_answering_for_the_vip() {
    let w = world();
    let agent = vip_on(&w.a, VIP).env("OCF_CHECK_LEVEL", "10");
    agent.run("start").rc(0);
    agent.run("monitor").rc(0);
    // b claims the same address behind the cluster's back.
    w.b.sh_ok(&format!("ip addr add {VIP}/24 dev eth0"));
    agent.run("monitor").rc(1).reason_contains(&w.mac_b);
    vip_on(&w.a, VIP).run("monitor").rc(0);
    agent.run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn ipv6_vip_with_duplicate_address_detection() {
    let w = world_v6();
    let ip = w.lan.ip6(0x100);
    let agent = vip_on(&w.a, &ip);
    agent.run("start").rc(0);
    let shown = w.a.sh_ok("ip -6 -o addr show dev eth0");
    let line = shown
        .lines()
        .find(|l| l.contains(&format!("{ip}/64")))
        .unwrap_or_else(|| panic!("VIP missing: {shown}"));
    assert!(
        !line.contains("tentative"),
        "start must wait for DAD: {line}"
    );
    agent.run("monitor").rc(0);
    assert!(w.c.sh(&format!("ping -6 -c1 -W1 {ip}")).status.success());
    // The unsolicited advertisement reached the peer: its entry is a's MAC.
    assert_eq!(w.c.neigh(&ip).as_deref(), Some(w.mac_a.as_str()));
    // b taking the same address fails DAD instead of stealing it.
    vip_on(&w.b, &ip)
        .run("start")
        .rc(1)
        .reason_contains("duplicate");
    assert!(!w.b.sh_ok("ip -6 -o addr show dev eth0").contains(&ip));
    agent.run("stop").rc(0);
    agent.run("monitor").rc(7);
}

#[test]
#[ignore = "needs root"]
fn ipv6_deprecated_vip_is_not_a_source_address() {
    let w = world_v6();
    let ip = w.lan.ip6(0x101);
    vip_on(&w.a, &ip)
        .param("preferred_lft", "0")
        .param("nodad", "true")
        .run("start")
        .rc(0);
    let shown = w.a.sh_ok("ip -6 -o addr show dev eth0");
    assert!(shown.contains("deprecated"), "{shown}");
    vip_on(&w.a, &ip).run("stop").rc(0);
}

/// The pids of the background announcers recorded on `host` (pid files hold "pid starttime").
fn announcer_pids(host: &Host) -> Vec<String> {
    let out = host.sh("cat /run/resource-agents/ferroha-vip/*.pid 2>/dev/null");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn start_returns_before_the_background_announcements_and_stop_ends_them() {
    let w = world();
    let agent = vip_on(&w.a, VIP)
        .param("arp_count", "100")
        .param("arp_interval", "100");
    let run: AgentRun = agent.run("start");
    run.rc(0);
    let pids = announcer_pids(&w.a);
    assert_eq!(pids.len(), 1, "one announcer recorded");
    let pid = &pids[0];
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "announcer running"
    );
    agent.run("stop").rc(0);
    wait_for(
        "the announcer to end",
        Duration::from_secs(3),
        Duration::from_millis(10),
        || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for its reaper.
            (stat.is_empty() || stat.contains(") Z ")).then_some(())
        },
    );
}

#[test]
#[ignore = "needs root"]
fn start_finishes_inside_a_short_op_timeout() {
    // 100 rounds 100 ms apart in the foreground would take 10 s; the op timeout is 1 s. The
    // agent must stop announcing in time and succeed, not be killed by its caller.
    let w = world();
    let started = std::time::Instant::now();
    vip_on(&w.a, VIP)
        .param("arp_bg", "false")
        .param("arp_count", "100")
        .param("arp_interval", "100")
        .env("OCF_RESKEY_CRM_meta_timeout", "1000")
        .run("start")
        .rc(0);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "start took {took:?}, op timeout 1 s"
    );
    vip_on(&w.a, VIP).run("monitor").rc(0);
    vip_on(&w.a, VIP).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn announcements_are_also_unicast_to_the_default_gateway() {
    let w = world();
    // The switch is a's default gateway (inside the isolated LAN; nothing leaves it).
    w.a.sh_ok("ip route add default via 198.18.1.254 dev eth0");
    let gateway_mac = w.lan.switch.mac("br0");
    let capture = Capture::start(&w.lan.switch, "br0", "arp");
    vip_on(&w.a, VIP)
        .param("arp_unicast_gateway", "true")
        .param("arp_mode", "reply")
        .param("arp_count", "2")
        .param("arp_interval", "50")
        .run("start")
        .rc(0);
    capture.wait_for_lines(&format!("Reply {VIP} is-at"), 4);
    // Any further reply would come one arp_interval (50 ms) later: wait for it twice over.
    std::thread::sleep(Duration::from_millis(100));
    let out = capture.finish();
    let replies: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(&format!("Reply {VIP} is-at")))
        .collect();
    let unicast = replies
        .iter()
        .filter(|l| l.contains(&format!("> {gateway_mac}")))
        .count();
    let broadcast = replies
        .iter()
        .filter(|l| l.contains("> ff:ff:ff:ff:ff:ff"))
        .count();
    assert_eq!(
        (broadcast, unicast),
        (2, 2),
        "two rounds, each broadcast and to the gateway:\n{out}"
    );
    vip_on(&w.a, VIP).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn log_lines_go_to_syslog_when_ha_logfacility_is_set() {
    // The test listens on a datagram socket that the host sees as /dev/log (bind-mounted over
    // a private /dev in the host's mount namespace; the machine's /dev is untouched).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let host = Host::new("syslogged");
    host.sh_ok(&format!(
        "set -e; mkdir -p /run/keep; touch /run/keep/null; mount --bind /dev/null /run/keep/null
         mount -t tmpfs -o mode=755 tmpfs /dev; touch /dev/null /dev/log
         mount --bind /run/keep/null /dev/null; mount --bind {} /dev/log",
        path.display()
    ));
    let run = vip_on(&host, "198.18.1.100")
        .env("HA_LOGFACILITY", "local3")
        .env("OCF_RESOURCE_INSTANCE", "logged_vip")
        .param("nic", "nosuch0")
        .param("cidr_netmask", "24")
        .run("start");
    run.rc(5);
    let mut buf = [0u8; 2048];
    let n = listener.recv(&mut buf).expect("a syslog message");
    let message = String::from_utf8_lossy(&buf[..n]);
    // local3 (19) * 8 + err (3) = 155.
    assert!(message.starts_with("<155>vip(logged_vip)["), "{message}");
    assert!(
        message.contains("start: ERROR: interface 'nosuch0' does not exist"),
        "{message}"
    );
    // Without HA_LOGFACILITY nothing is sent.
    vip_on(&host, "198.18.1.100")
        .param("nic", "nosuch0")
        .run("start")
        .rc(5);
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        listener.recv(&mut buf).is_err(),
        "unexpected syslog message"
    );
}

#[test]
#[ignore = "needs root"]
fn a_stalled_action_fails_with_a_reason_before_its_op_timeout() {
    // The agent is frozen (SIGSTOP, as a stalled machine would) past its 2 s op timeout; the
    // watchdog fires when it runs again and fails the action clearly instead of letting the
    // caller kill it.
    let w = world();
    let child =
        w.a.command(crate::util::agent::agent_bin("vip"))
            .arg("start")
            .env("OCF_RESKEY_ip", VIP)
            .env("OCF_RESKEY_arp_bg", "false")
            .env("OCF_RESKEY_arp_count", "100")
            .env("OCF_RESKEY_arp_interval", "100")
            .env("OCF_RESKEY_CRM_meta_timeout", "2000")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let pid = child.id() as i32;
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(2500));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "ocf-exit-reason:vip start: did not finish within the operation timeout (2000 ms)"
        ),
        "{stderr}"
    );
    vip_on(&w.a, VIP).run("stop").rc(0);
}

/// Two hosts on a LAN of their own: the node (`::1`, 198.18.12.1) and a client (`::3`,
/// 198.18.12.3), IPv6 without DAD.
fn node_and_client() -> (Lan, Host, Host) {
    let lan = Lan::new(12);
    let (node, client) = (Host::new("node-a"), Host::new("client"));
    lan.attach(&node, "eth0", Some(&lan.cidr(1)));
    lan.attach(&client, "eth0", Some(&lan.cidr(3)));
    for (host, n) in [(&node, 1), (&client, 3)] {
        host.sh_ok(&format!("ip addr add {}/64 dev eth0 nodad", lan.ip6(n)));
    }
    (lan, node, client)
}

/// `HA_RSCTMP` says where the records go: the ownership record and the announcer's pid file
/// are there and not in the default directory, and it is that record which lets stop remove
/// the VIP once it became the interface's primary address (its base address deleted).
#[test]
#[ignore = "needs root"]
fn ha_rsctmp_holds_the_records_that_stop_relies_on() {
    let (lan, node, _client) = node_and_client();
    let rsctmp = tempfile::tempdir().unwrap();
    let rsctmp_dir = rsctmp.path().display().to_string();
    let ip = lan.ip(100);
    let agent = || {
        vip_on(&node, &ip)
            .param("arp_count", "100")
            .param("arp_interval", "100")
            .env("HA_RSCTMP", &rsctmp_dir)
    };
    agent().run("start").rc(0);
    let records = rsctmp.path().join("ferroha-vip");
    assert!(
        records.join(&ip).exists(),
        "no ownership record in HA_RSCTMP"
    );
    assert!(
        records.join(format!("{ip}.announce.pid")).exists(),
        "no announcer pid file in HA_RSCTMP"
    );
    assert!(
        !node
            .sh("test -e /run/resource-agents/ferroha-vip")
            .status
            .success(),
        "records written to the default directory too"
    );
    node.sh_ok(&format!(
        "sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1 && ip addr del {} dev eth0",
        lan.cidr(1)
    ));
    // Without the record, the primary address looks like the node's own: kept.
    vip_on(&node, &ip).run("stop").rc(0);
    assert!(addrs(&node, "eth0").contains(&format!("{ip}/24")));
    agent().run("stop").rc(0);
    assert!(!addrs(&node, "eth0").contains(&format!("{ip}/24")));
    assert!(!records.join(&ip).exists() && announcer_pids_in(&records).is_empty());
}

/// The pid files left in `records`.
fn announcer_pids_in(records: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(records)
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.to_string_lossy().ends_with(".pid"))
                .collect()
        })
        .unwrap_or_default()
}

/// The source address the node's kernel picks for a connection to the client, seen from the
/// client: the source of the node's ping.
fn source_seen_by_client(lan: &Lan, node: &Host, client: &Host) -> String {
    let capture = Capture::start(client, "eth0", "icmp6 and ip6[40] == 128");
    node.sh_ok(&format!("ping -6 -c1 -W1 {}", lan.ip6(3)));
    let out = capture.finish();
    let line = out
        .lines()
        .find(|l| l.contains("echo request"))
        .unwrap_or_else(|| panic!("no echo request captured:\n{out}"));
    // `<time> <mac> > <mac>, ethertype IPv6 (0x86dd), length N: <src> > <dst>: ICMP6, ...`
    line.split(": ")
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected line {line}"))
        .to_string()
}

/// `preferred_lft 0` makes the IPv6 VIP deprecated, so it is never a source address. The VIP
/// `::2` shares more leading bits with the client `::3` than the node's own `::1` and is the
/// newer address, so the kernel would pick it but for the deprecation.
#[test]
#[ignore = "needs root"]
fn ipv6_vip_with_preferred_lft_0_is_never_the_source_of_a_connection() {
    let (lan, node, client) = node_and_client();
    let ip = lan.ip6(2);
    for (preferred_lft, source) in [("forever", ip.clone()), ("0", lan.ip6(1))] {
        let agent = vip_on(&node, &ip)
            .param("preferred_lft", preferred_lft)
            .param("nodad", "true");
        agent.run("start").rc(0);
        assert_eq!(
            source_seen_by_client(&lan, &node, &client),
            source,
            "preferred_lft {preferred_lft}"
        );
        agent.run("stop").rc(0);
    }
}

/// The unsolicited neighbour advertisement for an IPv6 VIP reaches the peer before any other
/// packet about the VIP, so the peer learns the new MAC without asking: from the VIP and the
/// node's MAC to all nodes, override set, solicited not.
#[test]
#[ignore = "needs root"]
fn ipv6_vip_is_announced_by_an_unsolicited_advertisement_before_any_traffic() {
    let (lan, node, client) = node_and_client();
    let ip = lan.ip6(0x100);
    let node_mac = node.mac("eth0");
    let capture = Capture::start(&client, "eth0", "icmp6");
    // Neighbour advertisements (type 136) whose flags byte has override and not solicited.
    let unsolicited = Capture::start(
        &client,
        "eth0",
        "icmp6 and ip6[40] == 136 and ip6[44] & 0x60 == 0x20",
    );
    let agent = vip_on(&node, &ip).param("arp_count", "1");
    agent.run("start").rc(0);
    assert!(client.sh(&format!("ping -6 -c1 -W1 {ip}")).status.success());
    std::thread::sleep(Duration::from_millis(200));
    let (out, unsolicited) = (capture.finish(), unsolicited.finish());
    agent.run("stop").rc(0);
    // Packets about the VIP, DAD's probes (from the unspecified address) aside.
    let first = out
        .lines()
        .find(|l| l.contains(&ip) && !l.contains(": :: > "))
        .unwrap_or_else(|| panic!("nothing about {ip} captured:\n{out}"));
    assert!(
        first.contains(&format!(
            ": {ip} > ff02::1: ICMP6, neighbor advertisement, tgt is {ip}"
        )) && first.starts_with(&format!("{} {node_mac} > ", time_of(first))),
        "the first packet about the VIP is not the node's advertisement to all nodes:\n{out}"
    );
    assert!(
        unsolicited.lines().any(|l| untimed(l) == untimed(first)),
        "the advertisement is solicited or does not override:\n{first}\n{unsolicited}"
    );
}

/// The timestamp tcpdump `-tt` starts a line with.
fn time_of(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// The line without it: the same packet as another capture shows it.
fn untimed(line: &str) -> &str {
    line.split_once(' ').map_or("", |(_, rest)| rest)
}
