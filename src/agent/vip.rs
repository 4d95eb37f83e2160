//! vip-agent: a virtual IP address, the counterpart of resource-agents' IPaddr2.
//!
//! The address is managed over netlink ([`NetOps`]) and announced from a packet socket
//! ([`Wire`]); both are traits so that the decisions below are unit-tested against fakes and
//! the integration tests exercise the real kernel in network namespaces.
//!
//! Ownership: an IPv4 address that is the interface's *primary* address and was not added by
//! this agent belongs to the node, not to the cluster; start refuses to take it over and stop
//! never removes it (a mistyped `ip` must not take a node off the network). Addresses this agent
//! adds are recorded under `$HA_RSCTMP/ferroha-vip/` (tmpfs, so records vanish with the
//! addresses at reboot). Secondary IPv4 addresses and IPv6 addresses without a record are
//! treated as VIPs, so that a resource switched over from IPaddr2 stops cleanly.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::ocf::{
    AgentError, AgentResult, Context, OcfRc, ParamSpec, ParamType, Params, ResourceAgent, Status,
    io_error,
};
use crate::sys::netlink::{
    AddrEntry, LinkState, NetOps, Netlink, NewAddr, RouteEntry, same_subnet,
};
use crate::sys::packet::{self, ArpMode, Mac};
use crate::sys::proc::{self, ProcessId};

const META: &str = include_str!("../../ocf-meta/vip.xml");

/// The parameter table (IPaddr2's names where they exist).
pub static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("ip", "virtual IPv4 or IPv6 address")
        .required()
        .unique(),
    ParamSpec::new(
        "nic",
        "interface (inferred from the routing table when empty)",
    ),
    ParamSpec::new(
        "cidr_netmask",
        "prefix length or dotted netmask (inferred when empty)",
    ),
    ParamSpec::new(
        "broadcast",
        "IPv4 broadcast: address, + (compute) or - (none)",
    ),
    ParamSpec::new("iflabel", "IPv4 label, shown as nic:iflabel"),
    ParamSpec::new("arp_count", "announcement rounds on start")
        .kind(ParamType::Integer)
        .default("5"),
    ParamSpec::new("arp_interval", "milliseconds between announcement rounds")
        .kind(ParamType::Integer)
        .default("200"),
    ParamSpec::new("arp_count_refresh", "announcement rounds on every monitor")
        .kind(ParamType::Integer)
        .default("0"),
    ParamSpec::new(
        "arp_bg",
        "announce rounds after the first in the background",
    )
    .kind(ParamType::Boolean)
    .default("true"),
    ParamSpec::new("arp_mode", "ARP announcement kind")
        .kind(ParamType::Select(&["request", "reply", "both"]))
        .default("both"),
    ParamSpec::new(
        "arp_unicast_gateway",
        "also announce unicast to the default gateway",
    )
    .kind(ParamType::Boolean)
    .default("false"),
    ParamSpec::new(
        "preferred_lft",
        "IPv6 preferred lifetime: seconds or forever",
    )
    .default("forever"),
    ParamSpec::new("noprefixroute", "do not create the prefix route")
        .kind(ParamType::Boolean)
        .default("false"),
    ParamSpec::new("nodad", "IPv6: skip duplicate address detection")
        .kind(ParamType::Boolean)
        .default("false"),
];

/// The actions the meta-data advertises.
pub const ACTIONS: &[&str] = &["start", "stop", "monitor", "validate-all", "meta-data"];

/// The IPv4 broadcast address setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broadcast {
    /// Computed from the prefix (up to /30); none for /31 and /32.
    Auto,
    /// No broadcast address.
    Off,
    /// This address.
    Addr(Ipv4Addr),
}

/// A validated vip configuration (syntax only; interfaces are looked up per action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipConfig {
    /// The address.
    pub ip: IpAddr,
    /// Prefix length, if configured.
    pub prefix_len: Option<u8>,
    /// Interface, if configured.
    pub nic: Option<String>,
    /// Label suffix (the part after `nic:`), IPv4 only.
    pub iflabel: Option<String>,
    /// IPv4 broadcast.
    pub broadcast: Broadcast,
    /// Announcement rounds on start.
    pub arp_count: u32,
    /// Time between rounds.
    pub arp_interval: Duration,
    /// Rounds on every monitor.
    pub arp_count_refresh: u32,
    /// Rounds after the first in a detached helper.
    pub arp_bg: bool,
    /// Request, reply or both.
    pub arp_mode: ArpMode,
    /// Also unicast to the default gateway.
    pub arp_unicast_gateway: bool,
    /// IPv6 preferred lifetime (None = forever).
    pub preferred_lft: Option<u32>,
    /// noprefixroute flag.
    pub noprefixroute: bool,
    /// IPv6 nodad flag.
    pub nodad: bool,
}

/// Link-layer announcements and probes: the real one uses packet sockets
/// ([`crate::sys::packet`]); tests substitute a recorder.
pub trait Wire {
    /// One announcement round for `ip` on `link`.
    fn announce(
        &self,
        link: &LinkState,
        ip: IpAddr,
        mode: ArpMode,
        unicast_to: Option<Mac>,
    ) -> io::Result<()>;
    /// Another host's MAC if one answers for `ip` within `window`.
    fn probe_duplicate(
        &self,
        link: &LinkState,
        ip: IpAddr,
        window: Duration,
    ) -> io::Result<Option<Mac>>;
    /// The MAC of `target`, asked from `sender`.
    fn resolve(
        &self,
        link: &LinkState,
        sender: IpAddr,
        target: IpAddr,
        timeout: Duration,
    ) -> io::Result<Option<Mac>>;
    /// Starts the detached helper that sends the remaining rounds of `task`.
    fn announce_later(&self, task: &AnnounceTask) -> io::Result<ProcessId>;
}

/// What the detached announcer sends: the rounds after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceTask {
    /// Interface index.
    pub ifindex: u32,
    /// Interface MAC.
    pub mac: Mac,
    /// The address announced.
    pub ip: IpAddr,
    /// Rounds still to send.
    pub rounds: u32,
    /// Time before each round.
    pub interval: Duration,
    /// Request/reply/both.
    pub mode: ArpMode,
    /// Unicast copy destination.
    pub unicast_to: Option<Mac>,
    /// The helper inherits the caller's open packet socket as descriptor
    /// [`proc::INHERITED_FD`] (see [`packet::Announcer`] for why).
    pub inherits_socket: bool,
}

impl AnnounceTask {
    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            ANNOUNCE_TASK.to_string(),
            self.ifindex.to_string(),
            packet::format_mac(&self.mac),
            self.ip.to_string(),
            self.rounds.to_string(),
            self.interval.as_millis().to_string(),
            mode_name(self.mode).to_string(),
            if self.inherits_socket { "fd" } else { "-" }.to_string(),
        ];
        if let Some(gw) = self.unicast_to {
            args.push(packet::format_mac(&gw));
        }
        args
    }

    fn from_args(args: &[String]) -> Option<AnnounceTask> {
        Some(AnnounceTask {
            ifindex: args.first()?.parse().ok()?,
            mac: packet::parse_mac(args.get(1)?)?,
            ip: args.get(2)?.parse().ok()?,
            rounds: args.get(3)?.parse().ok()?,
            interval: Duration::from_millis(args.get(4)?.parse().ok()?),
            mode: parse_mode(args.get(5)?)?,
            inherits_socket: match args.get(6)?.as_str() {
                "fd" => true,
                "-" => false,
                _ => return None,
            },
            unicast_to: match args.get(7) {
                Some(m) => Some(packet::parse_mac(m)?),
                None => None,
            },
        })
    }
}

const ANNOUNCE_TASK: &str = "__announce";

fn mode_name(mode: ArpMode) -> &'static str {
    match mode {
        ArpMode::Request => "request",
        ArpMode::Reply => "reply",
        ArpMode::Both => "both",
    }
}

fn parse_mode(s: &str) -> Option<ArpMode> {
    match s {
        "request" => Some(ArpMode::Request),
        "reply" => Some(ArpMode::Reply),
        "both" => Some(ArpMode::Both),
        _ => None,
    }
}

/// The real wire: packet sockets in the caller's network namespace. The sending socket is
/// kept open across rounds and handed to the background announcer, because closing a packet
/// socket costs a kernel RCU grace period (see [`packet::Announcer`]).
#[derive(Default)]
pub struct KernelWire {
    announcer: RefCell<Option<packet::Announcer>>,
}

fn packet_link(link: &LinkState) -> io::Result<packet::Link> {
    Ok(packet::Link {
        ifindex: link.index,
        mac: link
            .mac
            .ok_or_else(|| io::Error::other(format!("{} has no MAC address", link.name)))?,
    })
}

impl KernelWire {
    /// A wire that announces on an inherited socket (the background announcer).
    fn inherited(link: packet::Link, fd: std::os::fd::OwnedFd) -> io::Result<KernelWire> {
        Ok(KernelWire {
            announcer: RefCell::new(Some(packet::Announcer::from_fd(link, fd)?)),
        })
    }
}

impl Wire for KernelWire {
    fn announce(
        &self,
        link: &LinkState,
        ip: IpAddr,
        mode: ArpMode,
        unicast_to: Option<Mac>,
    ) -> io::Result<()> {
        let l = packet_link(link)?;
        let mut cached = self.announcer.borrow_mut();
        if cached
            .as_ref()
            .is_none_or(|a| a.link().ifindex != l.ifindex || a.link().mac != l.mac)
        {
            *cached = Some(packet::Announcer::open(l)?);
        }
        match cached.as_ref() {
            Some(announcer) => announcer.announce(ip, mode, unicast_to),
            None => Err(io::Error::other("no announcer")),
        }
    }
    fn probe_duplicate(
        &self,
        link: &LinkState,
        ip: IpAddr,
        window: Duration,
    ) -> io::Result<Option<Mac>> {
        packet::probe_duplicate(packet_link(link)?, ip, window)
    }
    fn resolve(
        &self,
        link: &LinkState,
        sender: IpAddr,
        target: IpAddr,
        timeout: Duration,
    ) -> io::Result<Option<Mac>> {
        match (sender, target) {
            (IpAddr::V4(s), IpAddr::V4(t)) => {
                packet::resolve_ipv4(packet_link(link)?, s, t, timeout)
            }
            _ => Ok(None),
        }
    }
    fn announce_later(&self, task: &AnnounceTask) -> io::Result<ProcessId> {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let socket = self
            .announcer
            .borrow()
            .as_ref()
            .filter(|a| a.link().ifindex == task.ifindex)
            .map(|a| a.as_raw_fd());
        let task = AnnounceTask {
            inherits_socket: socket.is_some(),
            ..task.clone()
        };
        proc::spawn_detached(&exe, &task.to_args(), socket)
    }
}

/// The vip resource agent.
pub struct VipAgent {
    net: NetSource,
    wire: Box<dyn Wire>,
}

enum NetSource {
    /// Opened on first use, so that meta-data and usage open nothing.
    Kernel(OnceLock<Result<Netlink, String>>),
    Given(Box<dyn NetOps>),
}

impl Default for VipAgent {
    fn default() -> Self {
        VipAgent {
            net: NetSource::Kernel(OnceLock::new()),
            wire: Box::new(KernelWire::default()),
        }
    }
}

/// Where an address goes: the interface and the derived address settings.
#[derive(Debug, Clone)]
struct Placement {
    link: LinkState,
    prefix_len: u8,
    broadcast: Option<Ipv4Addr>,
    label: Option<String>,
}

impl VipAgent {
    /// An agent on the given network and wire (unit tests).
    pub fn with(net: Box<dyn NetOps>, wire: Box<dyn Wire>) -> VipAgent {
        VipAgent {
            net: NetSource::Given(net),
            wire,
        }
    }

    fn net(&self) -> AgentResult<&dyn NetOps> {
        match &self.net {
            NetSource::Given(n) => Ok(n.as_ref()),
            NetSource::Kernel(cell) => cell
                .get_or_init(|| Netlink::open().map_err(|e| e.to_string()))
                .as_ref()
                .map(|n| n as &dyn NetOps)
                .map_err(|e| AgentError::Generic(format!("cannot open a netlink socket: {e}"))),
        }
    }

    /// Finds the interface, prefix, broadcast and label for the address (IPaddr2's findif).
    fn place(&self, cfg: &VipConfig) -> AgentResult<Placement> {
        let net = self.net()?;
        let named = match &cfg.nic {
            Some(nic) => Some(
                net.link_by_name(nic)
                    .map_err(io_error(format!("looking up interface {nic}")))?
                    .ok_or_else(|| missing_nic(nic))?,
            ),
            None => None,
        };
        let (link, prefix_len) = match (named, cfg.prefix_len) {
            (Some(link), Some(p)) => (link, p),
            (named, configured) => {
                let route = self.matching_route(cfg, named.as_ref().map(|l| l.index))?;
                let link = match named {
                    Some(l) => l,
                    None => {
                        let index = route.0;
                        net.links()
                            .map_err(io_error("listing interfaces"))?
                            .into_iter()
                            .find(|l| l.index == index)
                            .ok_or_else(|| {
                                AgentError::Generic(format!("interface #{index} vanished"))
                            })?
                    }
                };
                (link, configured.unwrap_or(route.1))
            }
        };
        let broadcast = match (cfg.ip, cfg.broadcast) {
            (IpAddr::V4(_), Broadcast::Addr(b)) => Some(b),
            (IpAddr::V4(v4), Broadcast::Auto) if prefix_len <= 30 => {
                let host_bits = u32::MAX >> prefix_len;
                Some(Ipv4Addr::from(u32::from(v4) | host_bits))
            }
            _ => None,
        };
        let label = match &cfg.iflabel {
            Some(l) => {
                let full = format!("{}:{l}", link.name);
                if full.len() > 15 {
                    let why = format!("label '{full}' is longer than 15 characters");
                    // With an inferred nic the length depends on this node's interface name.
                    return Err(match cfg.nic {
                        Some(_) => AgentError::Configured(format!("{why}; shorten iflabel")),
                        None => AgentError::Installed(format!(
                            "{why} with {}, the interface inferred on this node; shorten \
                             iflabel or set nic",
                            link.name
                        )),
                    });
                }
                Some(full)
            }
            None => None,
        };
        Ok(Placement {
            link,
            prefix_len,
            broadcast,
            label,
        })
    }

    /// The (interface index, prefix length) of the most specific connected route containing
    /// the address, optionally on one interface: IPaddr2's findif, `ip route list match
    /// <ip>[/<cidr_netmask>] scope link`, so a configured prefix must fit inside the route's.
    /// Failing that, for IPv4, a local prefix on a loopback interface (findif's `table local
    /// scope host` lookup for 127.x: `local 127.0.0.0/8 dev lo`).
    ///
    /// Nothing found is 1, never 6: this node has no address in the VIP's subnet, which the
    /// other nodes may well have (IPaddr2 returns 1 too), and 6 would stop the VIP everywhere.
    fn matching_route(&self, cfg: &VipConfig, on_link: Option<u32>) -> AgentResult<(u32, u8)> {
        const MAIN: u32 = 254;
        const LOCAL: u32 = 255;
        let v6 = cfg.ip.is_ipv6();
        let net = self.net()?;
        let routes = net
            .routes(v6)
            .map_err(io_error("reading the routing table"))?;
        let containing = |r: &&RouteEntry| {
            r.prefix_len > 0
                && r.gateway.is_none()
                && same_subnet(r.dst, cfg.ip, r.prefix_len)
                && on_link.is_none_or(|l| r.oif == Some(l))
        };
        let fits = |p: u8| cfg.prefix_len.is_none_or(|m| p <= m);
        let connected: Vec<(u32, u8)> = routes
            .iter()
            .filter(|r| r.table == MAIN && r.unicast && (v6 || r.scope_link))
            .filter(containing)
            .filter_map(|r| Some((r.oif?, r.prefix_len)))
            .collect();
        if let Some(best) = connected
            .iter()
            .copied()
            .filter(|(_, p)| fits(*p))
            .max_by_key(|(_, p)| *p)
        {
            return Ok(best);
        }
        let name_of = |index: u32| -> AgentResult<String> {
            Ok(self
                .link_of(index)?
                .map(|l| l.name)
                .unwrap_or_else(|| format!("#{index}")))
        };
        if let (Some(mask), Some((oif, p))) = (
            cfg.prefix_len,
            connected.iter().copied().max_by_key(|(_, p)| *p),
        ) {
            let nic = name_of(oif)?;
            return Err(AgentError::Generic(format!(
                "cidr_netmask {mask} is wider than the connected subnet (/{p}) of {ip} on \
                 {nic}: {ip}/{mask} would route all of its /{mask} on-link instead of through \
                 the gateway; set cidr_netmask to {p} or narrower (or set nic to force /{mask})",
                ip = cfg.ip
            )));
        }
        if !v6 {
            let local: Vec<(u32, u8)> = routes
                .iter()
                .filter(|r| r.table == LOCAL && r.local && r.prefix_len < 32)
                .filter(containing)
                .filter_map(|r| Some((r.oif?, r.prefix_len)))
                .filter(|(_, p)| fits(*p))
                .collect();
            if !local.is_empty() {
                let links = net.links().map_err(io_error("listing interfaces"))?;
                if let Some(best) = local
                    .into_iter()
                    .filter(|(oif, _)| links.iter().any(|l| l.index == *oif && l.loopback))
                    .max_by_key(|(_, p)| *p)
                {
                    return Ok(best);
                }
            }
        }
        Err(AgentError::Generic(format!(
            "cannot infer the interface for {}: no connected route {}contains it (this node \
             has no address in its subnet); set nic and cidr_netmask",
            cfg.ip,
            match &cfg.nic {
                Some(n) => format!("on {n} "),
                None => String::new(),
            }
        )))
    }

    /// Every configured copy of the address (on any interface).
    fn present(&self, ip: IpAddr) -> AgentResult<Vec<AddrEntry>> {
        Ok(self
            .net()?
            .addresses(ip.is_ipv6())
            .map_err(io_error("listing addresses"))?
            .into_iter()
            .filter(|a| a.ip == ip)
            .collect())
    }

    /// An IPv4 primary address nobody recorded as ours: the node's own address.
    fn is_foreign_primary(entry: &AddrEntry, ctx: &Context) -> bool {
        entry.ip.is_ipv4() && !entry.secondary && !ownership_path(ctx, entry.ip).exists()
    }

    fn link_of(&self, index: u32) -> AgentResult<Option<LinkState>> {
        Ok(self
            .net()?
            .links()
            .map_err(io_error("listing interfaces"))?
            .into_iter()
            .find(|l| l.index == index))
    }

    /// Waits for the interface's carrier, bounded by the deadline (a link just set up needs a
    /// moment before its carrier shows).
    fn wait_for_carrier(&self, link: &LinkState, ctx: &Context) -> AgentResult<LinkState> {
        let until = Instant::now() + ctx.deadline.cap(Duration::from_secs(5));
        loop {
            let now = self
                .net()?
                .link_by_name(&link.name)
                .map_err(io_error(format!("looking up {}", link.name)))?
                .ok_or_else(|| AgentError::Generic(format!("interface {} vanished", link.name)))?;
            if now.up && (now.lower_up || now.loopback) {
                return Ok(now);
            }
            if Instant::now() >= until {
                return Err(AgentError::Generic(format!(
                    "interface {} has no carrier (link down)",
                    link.name
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until IPv6 duplicate address detection has finished; fails on a duplicate.
    fn wait_for_dad(&self, cfg: &VipConfig, place: &Placement, ctx: &Context) -> AgentResult<()> {
        loop {
            let entry = self
                .present(cfg.ip)?
                .into_iter()
                .find(|a| a.index == place.link.index);
            match entry {
                None => {
                    return Err(AgentError::Generic(format!(
                        "{} vanished from {} during duplicate address detection",
                        cfg.ip, place.link.name
                    )));
                }
                Some(a) if a.dadfailed => {
                    let _ = self.remove(&a, ctx);
                    return Err(AgentError::Generic(format!(
                        "duplicate address detection failed: another host on {} owns {}",
                        place.link.name, cfg.ip
                    )));
                }
                Some(a) if !a.tentative => return Ok(()),
                Some(_) if ctx.deadline.expired() => {
                    return Err(AgentError::Generic(format!(
                        "duplicate address detection for {} did not finish before the timeout",
                        cfg.ip
                    )));
                }
                Some(_) => std::thread::sleep(ctx.deadline.cap(Duration::from_millis(20))),
            }
        }
    }

    /// Sends the first announcement round now and the rest later (or now, when not arp_bg).
    fn announce(
        &self,
        cfg: &VipConfig,
        link: &LinkState,
        rounds: u32,
        ctx: &Context,
    ) -> AgentResult<()> {
        if rounds == 0 || link.loopback || link.mac.is_none() {
            return Ok(());
        }
        let gateway = if cfg.arp_unicast_gateway {
            self.gateway_mac(cfg, link, ctx)
        } else {
            None
        };
        self.wire
            .announce(link, cfg.ip, cfg.arp_mode, gateway)
            .map_err(io_error(format!("announcing {} on {}", cfg.ip, link.name)))?;
        let rest = rounds - 1;
        if rest == 0 {
            return Ok(());
        }
        if cfg.arp_bg {
            let task = AnnounceTask {
                ifindex: link.index,
                mac: link.mac.unwrap_or_default(),
                ip: cfg.ip,
                rounds: rest,
                interval: cfg.arp_interval,
                mode: cfg.arp_mode,
                unicast_to: gateway,
                inherits_socket: false,
            };
            stop_announcer(ctx, cfg.ip);
            match self.wire.announce_later(&task) {
                Ok(id) => {
                    if let Err(e) = proc::write_pidfile(&announcer_path(ctx, cfg.ip), id) {
                        log::warn!("cannot record the announcer's pid: {e}");
                    }
                }
                // The address is up and announced once: not worth failing the start for.
                Err(e) => log::warn!("cannot start the background announcer: {e}"),
            }
        } else {
            for _ in 0..rest {
                if ctx.deadline.remaining() < cfg.arp_interval {
                    log::warn!("stopping announcements early: the op timeout is near");
                    break;
                }
                std::thread::sleep(cfg.arp_interval);
                self.wire
                    .announce(link, cfg.ip, cfg.arp_mode, gateway)
                    .map_err(io_error(format!("announcing {} on {}", cfg.ip, link.name)))?;
            }
        }
        Ok(())
    }

    /// The MAC of the interface's default gateway, asked from the VIP (IPv4 only).
    fn gateway_mac(&self, cfg: &VipConfig, link: &LinkState, ctx: &Context) -> Option<Mac> {
        let routes = self.net().ok()?.routes(cfg.ip.is_ipv6()).ok()?;
        let gw = routes
            .iter()
            .find(|r| r.prefix_len == 0 && r.oif == Some(link.index) && r.gateway.is_some())?
            .gateway?;
        match self.wire.resolve(
            link,
            cfg.ip,
            gw,
            ctx.deadline.cap(Duration::from_millis(300)),
        ) {
            Ok(Some(mac)) => Some(mac),
            Ok(None) => {
                log::warn!("gateway {gw} did not answer ARP; announcing by broadcast only");
                None
            }
            Err(e) => {
                log::warn!("cannot resolve gateway {gw}: {e}");
                None
            }
        }
    }

    fn set_up(&self, link: &LinkState) -> AgentResult<()> {
        log::info!("setting {} up", link.name);
        self.net()?
            .set_link_up(link.index)
            .map_err(io_error(format!("setting {} up", link.name)))
    }

    /// Removes one copy of the address, keeping other addresses of its subnet.
    fn remove(&self, entry: &AddrEntry, ctx: &Context) -> AgentResult<()> {
        let net = self.net()?;
        if entry.ip.is_ipv4() && !entry.secondary {
            // Deleting a primary IPv4 address deletes its subnet's secondaries too unless the
            // interface promotes them: never take other addresses down with the VIP.
            let others = net
                .addresses(false)
                .map_err(io_error("listing addresses"))?
                .into_iter()
                .any(|a| {
                    a.index == entry.index
                        && a.secondary
                        && a.prefix_len == entry.prefix_len
                        && same_subnet(a.ip, entry.ip, entry.prefix_len)
                });
            if others && let Some(link) = self.link_of(entry.index)? {
                log::info!(
                    "setting promote_secondaries on {} so that other addresses survive",
                    link.name
                );
                net.promote_secondaries(&link.name)
                    .map_err(io_error(format!(
                        "setting promote_secondaries on {}",
                        link.name
                    )))?;
            }
        }
        match net.del_address(entry.index, entry.ip, entry.prefix_len) {
            Ok(()) => {}
            // Gone meanwhile: that is what stop wants.
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
            Err(e) => return Err(AgentError::from_io(format!("removing {}", entry.ip), &e)),
        }
        let _ = std::fs::remove_file(ownership_path(ctx, entry.ip));
        Ok(())
    }

    /// Stops the VIP wherever it is configured (on `nic` only, when given).
    fn stop_address(&self, ip: IpAddr, nic: Option<&str>, ctx: &Context) -> AgentResult<()> {
        stop_announcer(ctx, ip);
        let on_nic = match nic {
            Some(n) => match self
                .net()?
                .link_by_name(n)
                .map_err(io_error(format!("looking up {n}")))?
            {
                Some(l) => Some(l.index),
                // The interface is gone, and the address with it.
                None => return Ok(()),
            },
            None => None,
        };
        for entry in self.present(ip)? {
            if on_nic.is_some_and(|i| i != entry.index) {
                continue;
            }
            if Self::is_foreign_primary(&entry, ctx) {
                log::warn!(
                    "not removing {ip}: it is the interface's primary address and was not added \
                     by vip-agent"
                );
                continue;
            }
            self.remove(&entry, ctx)?;
            log::info!(
                "removed {ip}/{} (interface #{})",
                entry.prefix_len,
                entry.index
            );
        }
        let _ = std::fs::remove_file(ownership_path(ctx, ip));
        Ok(())
    }

    /// The detached announcer's body: the remaining rounds, `interval` apart.
    fn run_announcer(&self, task: &AnnounceTask) -> OcfRc {
        let link = LinkState {
            index: task.ifindex,
            name: format!("#{}", task.ifindex),
            mac: Some(task.mac),
            up: true,
            lower_up: true,
            loopback: false,
        };
        let inherited;
        let wire: &dyn Wire = if task.inherits_socket {
            // SAFETY: the starting agent put its packet socket at this descriptor
            // (proc::spawn_detached) and nothing else in this process uses it.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(proc::INHERITED_FD) };
            let Ok(link) = packet_link(&link) else {
                return OcfRc::ErrArgs;
            };
            match KernelWire::inherited(link, fd) {
                Ok(w) => {
                    inherited = w;
                    &inherited
                }
                Err(_) => return OcfRc::ErrGeneric,
            }
        } else {
            self.wire.as_ref()
        };
        for _ in 0..task.rounds {
            std::thread::sleep(task.interval);
            if wire
                .announce(&link, task.ip, task.mode, task.unicast_to)
                .is_err()
            {
                return OcfRc::ErrGeneric;
            }
        }
        OcfRc::Success
    }
}

/// Where the ownership record of `ip` lives.
fn ownership_path(ctx: &Context, ip: IpAddr) -> PathBuf {
    state_dir(ctx).join(ip.to_string())
}

fn announcer_path(ctx: &Context, ip: IpAddr) -> PathBuf {
    state_dir(ctx).join(format!("{ip}.announce.pid"))
}

fn state_dir(ctx: &Context) -> PathBuf {
    PathBuf::from(ctx.var("HA_RSCTMP").unwrap_or("/run/resource-agents")).join("ferroha-vip")
}

/// Stops a still-running announcer of `ip` (verified by pid and start time).
fn stop_announcer(ctx: &Context, ip: IpAddr) {
    let path = announcer_path(ctx, ip);
    if let Some(id) = proc::read_pidfile(&path)
        && id.signal(libc::SIGTERM)
    {
        log::debug!("stopped announcer {}", id.pid);
    }
    let _ = std::fs::remove_file(path);
}

fn parse_prefix(ip: IpAddr, text: &str) -> AgentResult<u8> {
    let bad = |why: &str| AgentError::Configured(format!("cidr_netmask '{text}' {why}"));
    if let Ok(p) = text.parse::<u8>() {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return if (1..=max).contains(&p) {
            Ok(p)
        } else {
            Err(bad(&format!("is out of range 1-{max}")))
        };
    }
    let mask: Ipv4Addr = text
        .parse()
        .map_err(|_| bad("is neither a prefix length nor a netmask"))?;
    if ip.is_ipv6() {
        return Err(bad("is an IPv4 netmask, but ip is an IPv6 address"));
    }
    let bits = u32::from(mask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 || bits == 0 {
        return Err(bad("is not a contiguous netmask"));
    }
    Ok(bits.leading_ones() as u8)
}

fn parse_ip(text: &str) -> AgentResult<IpAddr> {
    let ip: IpAddr = text.trim().parse().map_err(|_| {
        AgentError::Configured(format!("ip '{text}' is not an IPv4 or IPv6 address"))
    })?;
    let unusable = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if unusable {
        return Err(AgentError::Configured(format!(
            "ip '{text}' cannot be an interface address"
        )));
    }
    Ok(ip)
}

fn check_ifname(name: &str, what: &str) -> AgentResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(AgentError::Configured(format!(
            "{what} '{name}' is not a valid interface name"
        )))
    }
}

impl ResourceAgent for VipAgent {
    type Config = VipConfig;

    fn type_name(&self) -> &'static str {
        "vip"
    }

    fn meta_data(&self) -> &'static str {
        META
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn configure(&self, p: &Params) -> AgentResult<VipConfig> {
        let ip = parse_ip(p.required_str("ip")?)?;
        let (nic, nic_label) = match p.get("nic") {
            Some(n) => match n.split_once(':') {
                Some((nic, label)) => (Some(nic.to_string()), Some(label.to_string())),
                None => (Some(n.to_string()), None),
            },
            None => (None, None),
        };
        if let Some(n) = &nic {
            check_ifname(n, "nic")?;
        }
        let iflabel = p.get("iflabel").map(str::to_string).or(nic_label);
        if let Some(l) = &iflabel {
            if ip.is_ipv6() {
                return Err(AgentError::Configured(
                    "iflabel is for IPv4 addresses only".into(),
                ));
            }
            if l.is_empty() || l.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(AgentError::Configured(format!(
                    "iflabel '{l}' is not valid"
                )));
            }
        }
        let prefix_len = p
            .get("cidr_netmask")
            .map(|m| parse_prefix(ip, m))
            .transpose()?;
        let broadcast = match p.get("broadcast") {
            None | Some("+") => Broadcast::Auto,
            Some("-") => Broadcast::Off,
            Some(b) => {
                if ip.is_ipv6() {
                    return Err(AgentError::Configured(
                        "broadcast is for IPv4 addresses only".into(),
                    ));
                }
                Broadcast::Addr(b.parse().map_err(|_| {
                    AgentError::Configured(format!("broadcast '{b}' is not an IPv4 address"))
                })?)
            }
        };
        let positive = |name: &str| -> AgentResult<u32> {
            let v = p.u64(name)?;
            u32::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| {
                AgentError::Configured(format!(
                    "{name} must be between 1 and {}, not {v}",
                    u32::MAX
                ))
            })
        };
        let arp_count = positive("arp_count")?;
        let arp_interval = Duration::from_millis(u64::from(positive("arp_interval")?));
        let arp_count_refresh = u32::try_from(p.u64("arp_count_refresh")?)
            .map_err(|_| AgentError::Configured("arp_count_refresh is too large".into()))?;
        let preferred_lft = match p.get("preferred_lft") {
            None | Some("forever") => None,
            Some(v) => {
                let secs = v
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s != u32::MAX)
                    .ok_or_else(|| {
                        AgentError::Configured(format!(
                            "preferred_lft must be seconds or 'forever', not '{v}'"
                        ))
                    })?;
                if ip.is_ipv4() {
                    return Err(AgentError::Configured(
                        "preferred_lft is for IPv6 addresses only".into(),
                    ));
                }
                Some(secs)
            }
        };
        Ok(VipConfig {
            ip,
            prefix_len,
            nic,
            iflabel,
            broadcast,
            arp_count,
            arp_interval,
            arp_count_refresh,
            arp_bg: p.bool("arp_bg")?,
            arp_mode: parse_mode(p.get("arp_mode").unwrap_or("both"))
                .ok_or_else(|| AgentError::Configured("arp_mode is not valid".into()))?,
            arp_unicast_gateway: p.bool("arp_unicast_gateway")?,
            preferred_lft,
            noprefixroute: p.bool("noprefixroute")?,
            nodad: p.bool("nodad")?,
        })
    }

    fn validate(&self, cfg: &VipConfig, ctx: &Context) -> AgentResult<()> {
        let place = self.place(cfg)?;
        for entry in self.present(cfg.ip)? {
            if entry.index != place.link.index {
                // This node's state (someone put the address elsewhere), not the CIB's.
                return Err(AgentError::Installed(format!(
                    "{} is already configured on another interface (#{})",
                    cfg.ip, entry.index
                )));
            }
            if Self::is_foreign_primary(&entry, ctx) {
                return Err(foreign_primary_error(cfg.ip, &place.link.name));
            }
        }
        Ok(())
    }

    fn start(&self, cfg: &VipConfig, ctx: &Context) -> AgentResult<()> {
        // IPaddr2 brings the interface up too: a VIP on a downed NIC serves nobody. Do it
        // first when the NIC is named, because a downed link has lost its connected routes,
        // which the prefix inference reads.
        let named = match &cfg.nic {
            Some(nic) => self
                .net()?
                .link_by_name(nic)
                .map_err(io_error(format!("looking up {nic}")))?,
            None => None,
        };
        if let Some(link) = named.filter(|l| !l.up) {
            self.set_up(&link)?;
        }
        self.validate(cfg, ctx)?;
        let place = self.place(cfg)?;
        if !place.link.up {
            self.set_up(&place.link)?;
        }
        let already = self
            .present(cfg.ip)?
            .into_iter()
            .any(|a| a.index == place.link.index);
        if already {
            log::info!("{} is already on {}", cfg.ip, place.link.name);
            self.wait_for_carrier(&place.link, ctx)?;
            return Ok(());
        }
        let owner = ownership_path(ctx, cfg.ip);
        // Record ownership before adding, so that a crash in between leaves a record (harmless)
        // rather than an unrecorded primary address that stop would refuse to remove.
        if let Some(dir) = owner.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| AgentError::from_io(format!("creating {}", dir.display()), &e))?;
        }
        std::fs::write(&owner, format!("{}\n", place.link.name))
            .map_err(|e| AgentError::from_io(format!("writing {}", owner.display()), &e))?;
        let add = NewAddr {
            index: place.link.index,
            ip: cfg.ip,
            prefix_len: place.prefix_len,
            broadcast: place.broadcast,
            label: place.label.clone(),
            noprefixroute: cfg.noprefixroute,
            nodad: cfg.nodad,
            preferred_lft: cfg.preferred_lft,
        };
        match self.net()?.add_address(&add) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                let _ = std::fs::remove_file(&owner);
                return Err(AgentError::from_io(
                    format!(
                        "adding {}/{} to {}",
                        cfg.ip, place.prefix_len, place.link.name
                    ),
                    &e,
                ));
            }
        }
        log::info!(
            "added {}/{} to {}",
            cfg.ip,
            place.prefix_len,
            place.link.name
        );
        if cfg.ip.is_ipv6() && !cfg.nodad {
            self.wait_for_dad(cfg, &place, ctx)?;
        }
        let link = self.wait_for_carrier(&place.link, ctx)?;
        self.announce(cfg, &link, cfg.arp_count, ctx)
    }

    fn stop(&self, cfg: &VipConfig, ctx: &Context) -> AgentResult<()> {
        self.stop_address(cfg.ip, cfg.nic.as_deref(), ctx)
    }

    fn monitor(&self, cfg: &VipConfig, ctx: &Context) -> AgentResult<Status> {
        let net = self.net()?;
        let link = match &cfg.nic {
            Some(nic) => match net
                .link_by_name(nic)
                .map_err(io_error(format!("looking up {nic}")))?
            {
                Some(l) => Some(l),
                // Nothing can be configured on it: a probe says stopped. A recurring monitor
                // says failed, as IPaddr2 does, so that Pacemaker recovers the VIP instead of
                // believing it stopped cleanly.
                None if ctx.is_probe() => {
                    log::info!("interface {nic} does not exist: {} is not here", cfg.ip);
                    return Ok(Status::Stopped);
                }
                None => {
                    return Err(AgentError::Generic(format!(
                        "interface {nic} has vanished: {} cannot be configured on it",
                        cfg.ip
                    )));
                }
            },
            None => None,
        };
        let entry = self
            .present(cfg.ip)?
            .into_iter()
            .find(|a| link.as_ref().is_none_or(|l| l.index == a.index));
        let Some(entry) = entry else {
            return Ok(Status::Stopped);
        };
        let link = match link {
            Some(l) => l,
            None => self
                .link_of(entry.index)?
                .ok_or_else(|| AgentError::Generic("interface vanished".into()))?,
        };
        if Self::is_foreign_primary(&entry, ctx) {
            if ctx.is_probe() {
                log::warn!("{}", foreign_primary_error(cfg.ip, &link.name));
                return Ok(Status::Stopped);
            }
            return Err(foreign_primary_error(cfg.ip, &link.name));
        }
        if entry.dadfailed {
            return Err(AgentError::Generic(format!(
                "{} on {} failed duplicate address detection: another host owns it",
                cfg.ip, link.name
            )));
        }
        if !link.up {
            return Err(AgentError::Generic(format!(
                "{} is configured but interface {} is down",
                cfg.ip, link.name
            )));
        }
        if !link.lower_up && !link.loopback {
            return Err(AgentError::Generic(format!(
                "{} is configured but interface {} has no carrier",
                cfg.ip, link.name
            )));
        }
        if cfg.arp_count_refresh > 0 && !ctx.is_probe() {
            self.announce(cfg, &link, cfg.arp_count_refresh, ctx)?;
        }
        if ctx.check_level >= 10 && !link.loopback && link.mac.is_some() {
            let window = ctx.deadline.cap(Duration::from_millis(300));
            if let Some(mac) = self
                .wire
                .probe_duplicate(&link, cfg.ip, window)
                .map_err(io_error(format!("probing for duplicates of {}", cfg.ip)))?
            {
                return Err(AgentError::Generic(format!(
                    "duplicate address: host {} also answers for {} on {}",
                    packet::format_mac(&mac),
                    cfg.ip,
                    link.name
                )));
            }
        }
        Ok(Status::Running)
    }

    fn stop_unconfigured(
        &self,
        params: &Params,
        ctx: &Context,
        _err: &AgentError,
    ) -> AgentResult<()> {
        // Only the address identifies the resource; without a valid one nothing of it can be
        // configured, so there is nothing to stop.
        match params.get("ip").map(parse_ip) {
            Some(Ok(ip)) => {
                let nic = params
                    .get("nic")
                    .map(|n| n.split(':').next().unwrap_or(n))
                    .filter(|n| check_ifname(n, "nic").is_ok());
                self.stop_address(ip, nic, ctx)
            }
            _ => Ok(()),
        }
    }

    fn active_unconfigured(&self, params: &Params, ctx: &Context) -> bool {
        let Some(Ok(ip)) = params.get("ip").map(parse_ip) else {
            return false;
        };
        self.present(ip)
            .map(|found| found.iter().any(|e| !Self::is_foreign_primary(e, ctx)))
            .unwrap_or(false)
    }

    fn internal_task(&self, name: &str, args: &[String]) -> Option<OcfRc> {
        if name != ANNOUNCE_TASK {
            return None;
        }
        Some(match AnnounceTask::from_args(args) {
            Some(task) => self.run_announcer(&task),
            None => OcfRc::ErrArgs,
        })
    }
}

/// A configured nic this node does not have: 5, because the other nodes may have it (IPaddr2
/// says 6, which would stop the VIP cluster-wide for one node's renamed or missing NIC).
fn missing_nic(nic: &str) -> AgentError {
    AgentError::Installed(format!("interface '{nic}' does not exist on this node"))
}

fn foreign_primary_error(ip: IpAddr, nic: &str) -> AgentError {
    AgentError::Configured(format!(
        "{ip} is the primary address of {nic} and was not added by vip-agent; a VIP must be an \
         additional address (check the ip parameter)"
    ))
}

#[cfg(test)]
mod tests;
