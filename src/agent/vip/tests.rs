//! Decisions of the vip agent against a fake network and wire: what it adds, removes and
//! announces, and which exit codes bad input gets. The real kernel is exercised by the
//! integration tests in network namespaces.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::ocf::{Action, meta};
use crate::sys::netlink::{FakeNet, NetCall, RouteEntry};

#[derive(Default)]
struct Recorded {
    announced: Vec<(u32, IpAddr, ArpMode, Option<Mac>)>,
    later: Vec<AnnounceTask>,
    duplicate_owner: Option<Mac>,
}

#[derive(Clone, Default)]
struct FakeWire(Rc<RefCell<Recorded>>);

impl Wire for FakeWire {
    fn announce(
        &self,
        link: &LinkState,
        ip: IpAddr,
        mode: ArpMode,
        to: Option<Mac>,
    ) -> io::Result<()> {
        self.0
            .borrow_mut()
            .announced
            .push((link.index, ip, mode, to));
        Ok(())
    }
    fn probe_duplicate(&self, _: &LinkState, _: IpAddr, _: Duration) -> io::Result<Option<Mac>> {
        Ok(self.0.borrow().duplicate_owner)
    }
    fn resolve(&self, _: &LinkState, _: IpAddr, _: IpAddr, _: Duration) -> io::Result<Option<Mac>> {
        Ok(Some([2, 0, 0, 0, 0, 0xfe]))
    }
    fn announce_later(&self, task: &AnnounceTask) -> io::Result<ProcessId> {
        self.0.borrow_mut().later.push(task.clone());
        Ok(ProcessId {
            pid: i32::MAX,
            start_time: 0,
        })
    }
}

const ETH0: u32 = 2;
const MAC: Mac = [2, 0, 0, 0, 0, 1];

fn link(index: u32, name: &str) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        mac: Some(MAC),
        up: true,
        lower_up: true,
        loopback: false,
    }
}

fn addr(ip: &str, prefix_len: u8, secondary: bool) -> AddrEntry {
    AddrEntry {
        index: ETH0,
        ip: ip.parse().unwrap(),
        prefix_len,
        label: None,
        secondary,
        tentative: false,
        dadfailed: false,
    }
}

/// A host with eth0 = 198.18.0.1/24 and 2001:db8::1/64 and their connected routes.
fn host() -> FakeNet {
    let net = FakeNet::default();
    net.links.borrow_mut().push(link(1, "lo"));
    net.links.borrow_mut()[0].loopback = true;
    net.links.borrow_mut().push(link(ETH0, "eth0"));
    net.addrs.borrow_mut().push(addr("198.18.0.1", 24, false));
    net.addrs.borrow_mut().push(addr("2001:db8::1", 64, false));
    for (dst, p, v6) in [("198.18.0.0", 24u8, false), ("2001:db8::", 64, true)] {
        net.routes.borrow_mut().push(RouteEntry {
            dst: dst.parse().unwrap(),
            prefix_len: p,
            oif: Some(ETH0),
            gateway: None,
            scope_link: !v6,
            table: 254,
            unicast: true,
            local: false,
        });
    }
    net.routes.borrow_mut().push(RouteEntry {
        dst: "0.0.0.0".parse().unwrap(),
        prefix_len: 0,
        oif: Some(ETH0),
        gateway: Some("198.18.0.254".parse().unwrap()),
        scope_link: false,
        table: 254,
        unicast: true,
        local: false,
    });
    net
}

struct Setup {
    agent: VipAgent,
    net: Rc<FakeNet>,
    wire: FakeWire,
    ctx: Context,
    _state: tempfile::TempDir,
}

/// FakeNet behind an Rc so the test can inspect it after the agent took ownership.
struct SharedNet(Rc<FakeNet>);
impl NetOps for SharedNet {
    fn link_by_name(&self, n: &str) -> io::Result<Option<LinkState>> {
        self.0.link_by_name(n)
    }
    fn links(&self) -> io::Result<Vec<LinkState>> {
        self.0.links()
    }
    fn addresses(&self, v6: bool) -> io::Result<Vec<AddrEntry>> {
        self.0.addresses(v6)
    }
    fn add_address(&self, a: &NewAddr) -> io::Result<()> {
        self.0.add_address(a)
    }
    fn del_address(&self, i: u32, ip: IpAddr, p: u8) -> io::Result<()> {
        self.0.del_address(i, ip, p)
    }
    fn set_link_up(&self, i: u32) -> io::Result<()> {
        self.0.set_link_up(i)
    }
    fn routes(&self, v6: bool) -> io::Result<Vec<crate::sys::netlink::RouteEntry>> {
        self.0.routes(v6)
    }
    fn promote_secondaries(&self, n: &str) -> io::Result<()> {
        self.0.promote_secondaries(n)
    }
}

fn setup(net: FakeNet) -> Setup {
    let net = Rc::new(net);
    let wire = FakeWire::default();
    let agent = VipAgent::with(Box::new(SharedNet(net.clone())), Box::new(wire.clone()));
    let state = tempfile::tempdir().unwrap();
    let mut ctx = Context::for_test(Action::Start);
    ctx.env
        .insert("HA_RSCTMP".into(), state.path().display().to_string());
    Setup {
        agent,
        net,
        wire,
        ctx,
        _state: state,
    }
}

fn config(pairs: &[(&str, &str)]) -> AgentResult<VipConfig> {
    let params = Params::from_pairs(PARAMS, pairs)?;
    VipAgent::default().configure(&params)
}

fn changes(net: &FakeNet) -> Vec<NetCall> {
    net.calls.borrow().clone()
}

#[test]
fn meta_data_matches_the_parameter_table() {
    meta::check::assert_meta_matches(META, "vip", PARAMS, ACTIONS);
}

#[test]
fn start_infers_nic_and_prefix_like_findif_and_announces() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.10")]).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    assert_eq!(
        changes(&s.net),
        vec![NetCall::Add(NewAddr {
            index: ETH0,
            ip: cfg.ip,
            prefix_len: 24,
            broadcast: Some("198.18.0.255".parse().unwrap()),
            label: None,
            noprefixroute: false,
            nodad: false,
            preferred_lft: None,
        })]
    );
    let rec = s.wire.0.borrow();
    assert_eq!(rec.announced, vec![(ETH0, cfg.ip, ArpMode::Both, None)]);
    assert_eq!(
        rec.later.len(),
        1,
        "remaining rounds go to the detached announcer"
    );
    assert_eq!(rec.later[0].rounds, 4);
    assert_eq!(rec.later[0].interval, Duration::from_millis(200));
    assert_eq!(s.agent.monitor(&cfg, &s.ctx).unwrap(), Status::Running);
}

#[test]
fn double_start_is_success_and_adds_once() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.10")]).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    let adds = changes(&s.net)
        .iter()
        .filter(|c| matches!(c, NetCall::Add(_)))
        .count();
    assert_eq!(adds, 1);
}

#[test]
fn double_stop_is_success_and_removes_only_the_vip() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.10")]).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    s.agent.stop(&cfg, &s.ctx).unwrap();
    s.agent.stop(&cfg, &s.ctx).unwrap();
    let dels: Vec<_> = changes(&s.net)
        .into_iter()
        .filter(|c| matches!(c, NetCall::Del(..)))
        .collect();
    assert_eq!(dels, vec![NetCall::Del(ETH0, cfg.ip, 24)]);
    assert_eq!(s.agent.monitor(&cfg, &s.ctx).unwrap(), Status::Stopped);
    assert_eq!(
        s.net.addrs.borrow().len(),
        2,
        "the node's own addresses stay"
    );
}

#[test]
fn arp_bg_false_sends_every_round_in_start() {
    let s = setup(host());
    let cfg = config(&[
        ("ip", "198.18.0.10"),
        ("arp_bg", "false"),
        ("arp_count", "3"),
        ("arp_interval", "1"),
    ])
    .unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    assert_eq!(s.wire.0.borrow().announced.len(), 3);
    assert!(s.wire.0.borrow().later.is_empty());
}

#[test]
fn unicast_gateway_announcement_uses_the_resolved_mac() {
    let s = setup(host());
    let cfg = config(&[
        ("ip", "198.18.0.10"),
        ("arp_unicast_gateway", "true"),
        ("arp_mode", "reply"),
    ])
    .unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    let gw = Some([2, 0, 0, 0, 0, 0xfe]);
    assert_eq!(
        s.wire.0.borrow().announced,
        vec![(ETH0, cfg.ip, ArpMode::Reply, gw)]
    );
    assert_eq!(s.wire.0.borrow().later[0].unicast_to, gw);
}

#[test]
fn explicit_nic_prefix_label_and_flags_reach_netlink() {
    let s = setup(host());
    let cfg = config(&[
        ("ip", "198.18.7.7"),
        ("nic", "eth0:web"),
        ("cidr_netmask", "255.255.255.0"),
        ("broadcast", "-"),
        ("noprefixroute", "yes"),
    ])
    .unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    let NetCall::Add(add) = &changes(&s.net)[0] else {
        panic!("no add")
    };
    assert_eq!(add.label.as_deref(), Some("eth0:web"));
    assert_eq!(add.prefix_len, 24);
    assert_eq!(add.broadcast, None);
    assert!(add.noprefixroute);
}

#[test]
fn ipv6_start_passes_lifetimes_and_nodad() {
    let s = setup(host());
    let cfg = config(&[
        ("ip", "2001:db8::10"),
        ("preferred_lft", "0"),
        ("nodad", "true"),
    ])
    .unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    let NetCall::Add(add) = &changes(&s.net)[0] else {
        panic!("no add")
    };
    assert_eq!(
        (add.prefix_len, add.preferred_lft, add.nodad, add.broadcast),
        (64, Some(0), true, None)
    );
    assert_eq!(s.wire.0.borrow().announced.len(), 1);
}

#[test]
fn no_matching_route_is_a_soft_error_and_says_what_to_set() {
    // Node-local (this node has no address in the subnet): 1, as IPaddr2, never 6.
    let s = setup(host());
    let cfg = config(&[("ip", "198.19.9.9")]).unwrap();
    let err = s.agent.start(&cfg, &s.ctx).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
    assert!(err.reason().contains("set nic and cidr_netmask"), "{err}");
    assert!(changes(&s.net).is_empty());
}

#[test]
fn a_prefix_wider_than_the_connected_route_is_refused() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.10"), ("cidr_netmask", "16")]).unwrap();
    let err = s.agent.start(&cfg, &s.ctx).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
    assert!(err.reason().contains("set cidr_netmask to 24"), "{err}");
    assert!(changes(&s.net).is_empty());
    // Narrower fits, as `ip route list match 198.18.0.10/32` finds the /24.
    let narrow = config(&[("ip", "198.18.0.10"), ("cidr_netmask", "32")]).unwrap();
    s.agent.start(&narrow, &s.ctx).unwrap();
}

#[test]
fn a_loopback_address_is_inferred_to_lo_like_findif() {
    let net = host();
    net.routes.borrow_mut().push(RouteEntry {
        dst: "127.0.0.0".parse().unwrap(),
        prefix_len: 8,
        oif: Some(1),
        gateway: None,
        scope_link: false,
        table: 255,
        unicast: false,
        local: true,
    });
    let s = setup(net);
    let cfg = config(&[("ip", "127.0.0.2")]).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    assert!(
        matches!(&changes(&s.net)[..], [NetCall::Add(a)] if a.index == 1 && a.prefix_len == 8),
        "{:?}",
        changes(&s.net)
    );
    // Not a local prefix on a loopback interface: nothing to infer.
    let s = setup(host());
    let err = s.agent.start(&cfg, &s.ctx).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
}

#[test]
fn unknown_interface_is_err_installed() {
    let s = setup(host());
    let cfg = config(&[
        ("ip", "198.18.0.10"),
        ("nic", "eth9"),
        ("cidr_netmask", "24"),
    ])
    .unwrap();
    let err = s.agent.start(&cfg, &s.ctx).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrInstalled);
    assert!(err.reason().contains("eth9"));
    // A probe of an interface that does not exist reports not running; a recurring monitor
    // of one that vanished fails (1), so that Pacemaker recovers; never 6.
    let probe = Context::for_test(Action::Monitor);
    assert_eq!(s.agent.monitor(&cfg, &probe).unwrap(), Status::Stopped);
    let mut recurring = Context::for_test(Action::Monitor);
    recurring.interval_ms = Some(10_000);
    let err = s.agent.monitor(&cfg, &recurring).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
    assert!(err.reason().contains("eth9"));
}

#[test]
fn the_nodes_primary_address_is_never_taken_or_removed() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.1")]).unwrap();
    let err = s.agent.start(&cfg, &s.ctx).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrConfigured);
    assert!(err.reason().contains("primary address"), "{err}");
    assert_eq!(
        s.agent.validate(&cfg, &s.ctx).unwrap_err().rc(),
        OcfRc::ErrConfigured
    );
    s.agent.stop(&cfg, &s.ctx).unwrap();
    assert!(
        changes(&s.net).is_empty(),
        "stop must not delete the node's address"
    );
    let mut probe = s.ctx.clone();
    probe.action = Action::Monitor;
    assert_eq!(s.agent.monitor(&cfg, &probe).unwrap(), Status::Stopped);
    probe.interval_ms = Some(10_000);
    assert_eq!(
        s.agent.monitor(&cfg, &probe).unwrap_err().rc(),
        OcfRc::ErrConfigured
    );
}

#[test]
fn secondary_address_added_by_another_agent_counts_as_the_vip() {
    let net = host();
    net.addrs.borrow_mut().push(addr("198.18.0.10", 24, true));
    let s = setup(net);
    let cfg = config(&[("ip", "198.18.0.10")]).unwrap();
    assert_eq!(s.agent.monitor(&cfg, &s.ctx).unwrap(), Status::Running);
    s.agent.stop(&cfg, &s.ctx).unwrap();
    assert_eq!(changes(&s.net), vec![NetCall::Del(ETH0, cfg.ip, 24)]);
}

#[test]
fn monitor_fails_when_the_nic_is_down_or_without_carrier() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.10")]).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    s.net.links.borrow_mut()[1].lower_up = false;
    let err = s.agent.monitor(&cfg, &s.ctx).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
    assert!(err.reason().contains("carrier"), "{err}");
    s.net.links.borrow_mut()[1].up = false;
    assert!(
        s.agent
            .monitor(&cfg, &s.ctx)
            .unwrap_err()
            .reason()
            .contains("down")
    );
}

#[test]
fn depth_10_monitor_fails_on_a_duplicate_owner() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.10")]).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    let mut deep = s.ctx.clone();
    deep.check_level = 10;
    assert_eq!(s.agent.monitor(&cfg, &deep).unwrap(), Status::Running);
    s.wire.0.borrow_mut().duplicate_owner = Some([2, 9, 9, 9, 9, 9]);
    let err = s.agent.monitor(&cfg, &deep).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
    assert!(err.reason().contains("02:09:09:09:09:09"), "{err}");
    // Depth 0 does not probe.
    assert_eq!(s.agent.monitor(&cfg, &s.ctx).unwrap(), Status::Running);
}

#[test]
fn monitor_refreshes_announcements_when_asked() {
    let s = setup(host());
    let cfg = config(&[("ip", "198.18.0.10"), ("arp_count_refresh", "1")]).unwrap();
    s.agent.start(&cfg, &s.ctx).unwrap();
    let before = s.wire.0.borrow().announced.len();
    let mut recurring = s.ctx.clone();
    recurring.interval_ms = Some(10_000);
    s.agent.monitor(&cfg, &recurring).unwrap();
    assert_eq!(s.wire.0.borrow().announced.len(), before + 1);
}

#[test]
fn stop_of_a_primary_vip_keeps_the_subnets_other_addresses() {
    // eth0 without an address in 198.18.3.0/24: the VIP becomes primary there, a second VIP
    // secondary. Stopping the first must not take the second down.
    let s = setup(host());
    let a = config(&[
        ("ip", "198.18.3.1"),
        ("nic", "eth0"),
        ("cidr_netmask", "24"),
    ])
    .unwrap();
    let b = config(&[
        ("ip", "198.18.3.2"),
        ("nic", "eth0"),
        ("cidr_netmask", "24"),
    ])
    .unwrap();
    s.agent.start(&a, &s.ctx).unwrap();
    s.agent.start(&b, &s.ctx).unwrap();
    assert!(
        s.net
            .addrs
            .borrow()
            .iter()
            .any(|e| e.ip == b.ip && e.secondary)
    );
    s.agent.stop(&a, &s.ctx).unwrap();
    let calls = changes(&s.net);
    let promote = calls
        .iter()
        .position(|c| *c == NetCall::PromoteSecondaries("eth0".into()));
    let delete = calls
        .iter()
        .position(|c| *c == NetCall::Del(ETH0, a.ip, 24));
    assert!(promote.is_some() && promote < delete, "{calls:?}");
    assert!(!calls.contains(&NetCall::Del(ETH0, b.ip, 24)));
}

#[test]
fn bad_input_gets_err_configured_never_a_panic() {
    let cases: &[&[(&str, &str)]] = &[
        &[("ip", "198.18.0.300")],
        &[("ip", "not-an-ip")],
        &[("ip", "0.0.0.0")],
        &[("ip", "224.0.0.1")],
        &[("ip", "198.18.0.10"), ("cidr_netmask", "33")],
        &[("ip", "198.18.0.10"), ("cidr_netmask", "0")],
        &[("ip", "198.18.0.10"), ("cidr_netmask", "255.0.255.0")],
        &[("ip", "2001:db8::1"), ("cidr_netmask", "255.255.255.0")],
        &[("ip", "2001:db8::1"), ("cidr_netmask", "129")],
        &[("ip", "198.18.0.10"), ("nic", "a/b")],
        &[("ip", "198.18.0.10"), ("nic", "averyveryverylongname")],
        &[("ip", "198.18.0.10"), ("arp_count", "0")],
        &[("ip", "198.18.0.10"), ("arp_interval", "0")],
        &[("ip", "198.18.0.10"), ("arp_count", "99999999999")],
        &[("ip", "198.18.0.10"), ("broadcast", "x")],
        &[("ip", "2001:db8::1"), ("broadcast", "198.18.0.255")],
        &[("ip", "2001:db8::1"), ("iflabel", "x")],
        &[("ip", "198.18.0.10"), ("preferred_lft", "0")],
        &[("ip", "2001:db8::1"), ("preferred_lft", "soon")],
        &[("ip", "198.18.0.10"), ("arp_mode", "shout")],
        &[("ip", "198.18.0.10"), ("arp_bg", "perhaps")],
        &[],
    ];
    for pairs in cases {
        let err = config(pairs).unwrap_err();
        assert_eq!(err.rc(), OcfRc::ErrConfigured, "{pairs:?}: {err}");
        assert!(!err.reason().is_empty());
    }
}

#[test]
fn label_longer_than_ifnamsiz_is_err_configured_unless_the_nic_is_inferred() {
    let s = setup(host());
    let cfg = config(&[
        ("ip", "198.18.0.10"),
        ("iflabel", "averylonglabel"),
        ("nic", "eth0"),
    ])
    .unwrap();
    assert_eq!(
        s.agent.start(&cfg, &s.ctx).unwrap_err().rc(),
        OcfRc::ErrConfigured
    );
    // Inferred: the length depends on this node's interface name.
    let cfg = config(&[("ip", "198.18.0.10"), ("iflabel", "averylonglabel")]).unwrap();
    assert_eq!(
        s.agent.start(&cfg, &s.ctx).unwrap_err().rc(),
        OcfRc::ErrInstalled
    );
}

#[test]
fn announce_task_round_trips_through_argv() {
    let task = AnnounceTask {
        ifindex: 7,
        mac: MAC,
        ip: "198.18.0.10".parse().unwrap(),
        rounds: 4,
        interval: Duration::from_millis(150),
        mode: ArpMode::Request,
        unicast_to: Some([2, 0, 0, 0, 0, 0xfe]),
        inherits_socket: true,
    };
    let args = task.to_args();
    assert_eq!(args[0], ANNOUNCE_TASK);
    assert_eq!(AnnounceTask::from_args(&args[1..]), Some(task));
    assert_eq!(AnnounceTask::from_args(&["x".into()]), None);
}
