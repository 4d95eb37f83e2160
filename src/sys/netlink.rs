//! Interfaces, addresses and routes over rtnetlink, behind the [`NetOps`] trait.
//!
//! vip-agent adds, lists and removes addresses here instead of running `ip`: a monitor is two
//! netlink round trips and no fork. The real implementation uses `netlink-packet-route`
//! (the message formats, kept up to date with the kernel by the rust-netlink project) over a
//! plain synchronous `netlink-sys` socket: an agent lives for milliseconds and needs no async
//! runtime. [`FakeNet`] records calls for unit tests of the agents' decisions.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A network interface as the agent needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, for Ethernet-like links.
    pub mac: Option<[u8; 6]>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP): a cable, or the other end of a veth, is up.
    pub lower_up: bool,
    /// The loopback interface (no ARP).
    pub loopback: bool,
}

/// An address configured on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrEntry {
    /// Interface index.
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IPv4 label (`eth0:vip`), if any.
    pub label: Option<String>,
    /// IPv4 secondary address (another address of the same subnet is primary).
    pub secondary: bool,
    /// IPv6 duplicate address detection still running.
    pub tentative: bool,
    /// IPv6 duplicate address detection found another owner.
    pub dadfailed: bool,
}

/// A route, as far as interface inference needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination network.
    pub dst: IpAddr,
    /// Destination prefix length (0 = default route).
    pub prefix_len: u8,
    /// Output interface.
    pub oif: Option<u32>,
    /// Gateway, for routes through a router.
    pub gateway: Option<IpAddr>,
    /// Scope link: a directly connected network (IPv4).
    pub scope_link: bool,
    /// Routing table.
    pub table: u32,
    /// A unicast route (not local/broadcast/unreachable...).
    pub unicast: bool,
    /// A local route: the kernel delivers the destination to this host (the local table's
    /// host addresses, and whole prefixes of addresses on a loopback device, such as
    /// `local 127.0.0.0/8 dev lo`).
    pub local: bool,
}

/// An address to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddr {
    /// Interface index.
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IPv4 broadcast address.
    pub broadcast: Option<Ipv4Addr>,
    /// IPv4 label.
    pub label: Option<String>,
    /// Do not create the prefix route (IFA_F_NOPREFIXROUTE).
    pub noprefixroute: bool,
    /// IPv6: skip duplicate address detection (IFA_F_NODAD).
    pub nodad: bool,
    /// IPv6 preferred lifetime in seconds (`None` = forever); 0 makes the address deprecated,
    /// never picked as a source address.
    pub preferred_lft: Option<u32>,
}

/// The network operations agents need, per network namespace of the caller.
pub trait NetOps {
    /// The interface called `name`.
    fn link_by_name(&self, name: &str) -> io::Result<Option<LinkState>>;
    /// Every interface.
    fn links(&self) -> io::Result<Vec<LinkState>>;
    /// Every address of one family (v6 = true for IPv6).
    fn addresses(&self, v6: bool) -> io::Result<Vec<AddrEntry>>;
    /// Adds an address; fails with EEXIST when it is already there.
    fn add_address(&self, addr: &NewAddr) -> io::Result<()>;
    /// Removes exactly this address from this interface.
    fn del_address(&self, index: u32, ip: IpAddr, prefix_len: u8) -> io::Result<()>;
    /// Sets the interface administratively up.
    fn set_link_up(&self, index: u32) -> io::Result<()>;
    /// The routes of the main table of one family.
    fn routes(&self, v6: bool) -> io::Result<Vec<RouteEntry>>;
    /// Makes the interface promote a secondary IPv4 address when its primary is deleted
    /// (`net.ipv4.conf.<if>.promote_secondaries=1`); without it the kernel deletes every
    /// secondary address of the subnet together with the primary.
    fn promote_secondaries(&self, ifname: &str) -> io::Result<()>;
}

/// The kernel, over an rtnetlink socket.
pub struct Netlink {
    socket: Socket,
    seq: Cell<u32>,
}

impl Netlink {
    /// Opens a routing socket in the caller's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Have the kernel filter dumps by the header fields we set (family, ifindex).
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Netlink {
            socket,
            seq: Cell::new(1),
        })
    }

    /// Sends one request and collects the answers until the dump ends or the ack arrives.
    fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        // Room for the largest dump part the kernel sends, left uninitialised: a zeroed
        // 64 KiB buffer is 16 page faults per request, most of a monitor's own work, where
        // the kernel writes the few hundred bytes of a reply into one or two pages.
        let mut rx: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            rx.clear();
            let size = self.socket.recv(&mut rx, 0)?.min(rx.len());
            let mut offset = 0;
            while offset < size {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[offset..size])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == seq {
                    match reply.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                        // An ack ends a non-dump request.
                        NetlinkPayload::Error(_) if !dump => return Ok(replies),
                        NetlinkPayload::InnerMessage(m) => {
                            replies.push(m);
                            if !dump && flags & NLM_F_ACK == 0 {
                                return Ok(replies);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    fn get_links(&self, name: Option<&str>) -> io::Result<Vec<LinkState>> {
        let mut msg = LinkMessage::default();
        // Counters are most of a link message; the agents never read them (monitor speed).
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let flags = match name {
            Some(n) => {
                msg.attributes.push(LinkAttribute::IfName(n.to_string()));
                0
            }
            None => NLM_F_DUMP,
        };
        let replies = match self.request(RouteNetlinkMessage::GetLink(msg), flags) {
            Err(e) if name.is_some() && e.raw_os_error() == Some(libc::ENODEV) => {
                return Ok(vec![]);
            }
            other => other?,
        };
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_state(&l)),
                _ => None,
            })
            .collect())
    }
}

fn link_state(l: &LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: l.header.index,
        name: String::new(),
        mac: None,
        up: l.header.flags.contains(LinkFlags::Up),
        lower_up: l.header.flags.contains(LinkFlags::LowerUp),
        loopback: l.header.flags.contains(LinkFlags::Loopback),
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(n) => state.name = n.clone(),
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(a);
                state.mac = Some(mac);
            }
            _ => {}
        }
    }
    state
}

fn family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

impl NetOps for Netlink {
    fn link_by_name(&self, name: &str) -> io::Result<Option<LinkState>> {
        if name.is_empty() || name.len() > 15 {
            return Ok(None);
        }
        Ok(self.get_links(Some(name))?.into_iter().next())
    }

    fn links(&self) -> io::Result<Vec<LinkState>> {
        self.get_links(None)
    }

    fn addresses(&self, v6: bool) -> io::Result<Vec<AddrEntry>> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(v6);
        let replies = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewAddress(a) = reply else {
                continue;
            };
            if a.header.family != family(v6) {
                continue;
            }
            let mut flags = AddressFlags::from_bits_retain(u32::from(a.header.flags.bits()));
            let mut entry = AddrEntry {
                index: a.header.index,
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                prefix_len: a.header.prefix_len,
                label: None,
                secondary: false,
                tentative: false,
                dadfailed: false,
            };
            let mut address = None;
            let mut local = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Label(l) => entry.label = Some(l.clone()),
                    AddressAttribute::Flags(f) => flags = *f,
                    _ => {}
                }
            }
            // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
            // point-to-point links); IPv6 sends only IFA_ADDRESS.
            let Some(ip) = local.or(address) else {
                continue;
            };
            entry.ip = ip;
            entry.secondary = flags.contains(AddressFlags::Secondary);
            entry.tentative = flags.contains(AddressFlags::Tentative);
            entry.dadfailed = flags.contains(AddressFlags::Dadfailed);
            out.push(entry);
        }
        Ok(out)
    }

    fn add_address(&self, addr: &NewAddr) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(addr.ip.is_ipv6());
        msg.header.prefix_len = addr.prefix_len;
        msg.header.index = addr.index;
        msg.header.scope = AddressScope::Universe;
        let mut flags = AddressFlags::empty();
        if addr.noprefixroute {
            flags |= AddressFlags::Noprefixroute;
        }
        if addr.nodad {
            flags |= AddressFlags::Nodad;
        }
        msg.header.flags = AddressHeaderFlags::from_bits_truncate(flags.bits() as u8);
        if addr.ip.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(addr.ip));
        }
        msg.attributes.push(AddressAttribute::Address(addr.ip));
        if let Some(brd) = addr.broadcast {
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
        if let Some(label) = &addr.label {
            msg.attributes.push(AddressAttribute::Label(label.clone()));
        }
        if !flags.is_empty() {
            msg.attributes.push(AddressAttribute::Flags(flags));
        }
        if let Some(preferred) = addr.preferred_lft {
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = preferred;
            lifetimes.ifa_valid = u32::MAX;
            msg.attributes.push(AddressAttribute::CacheInfo(lifetimes));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    fn del_address(&self, index: u32, ip: IpAddr, prefix_len: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(ip.is_ipv6());
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        if ip.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(ip));
        }
        msg.attributes.push(AddressAttribute::Address(ip));
        self.request(RouteNetlinkMessage::DelAddress(msg), NLM_F_ACK)
            .map(|_| ())
    }

    fn promote_secondaries(&self, ifname: &str) -> io::Result<()> {
        write_promote_secondaries(ifname)
    }

    fn set_link_up(&self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(|_| ())
    }

    fn routes(&self, v6: bool) -> io::Result<Vec<RouteEntry>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(v6);
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewRoute(r) = reply else {
                continue;
            };
            let unspecified = if v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            let mut entry = RouteEntry {
                dst: unspecified,
                prefix_len: r.header.destination_prefix_length,
                oif: None,
                gateway: None,
                scope_link: r.header.scope == RouteScope::Link,
                table: u32::from(r.header.table),
                unicast: r.header.kind == netlink_packet_route::route::RouteType::Unicast,
                local: r.header.kind == netlink_packet_route::route::RouteType::Local,
            };
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Destination(a) => {
                        if let Some(ip) = route_ip(a) {
                            entry.dst = ip;
                        }
                    }
                    RouteAttribute::Gateway(a) => entry.gateway = route_ip(a),
                    RouteAttribute::Oif(i) => entry.oif = Some(*i),
                    RouteAttribute::Table(t) => entry.table = *t,
                    _ => {}
                }
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// Sets `promote_secondaries` through /proc/sys, which shows the caller's network namespace.
fn write_promote_secondaries(ifname: &str) -> io::Result<()> {
    if ifname.is_empty() || ifname.contains('/') || ifname == "." || ifname == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(&path, "1")
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A recorded call on [`FakeNet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCall {
    /// `add_address`.
    Add(NewAddr),
    /// `del_address`.
    Del(u32, IpAddr, u8),
    /// `set_link_up`.
    LinkUp(u32),
    /// `promote_secondaries`.
    PromoteSecondaries(String),
}

/// An in-memory network for unit tests: links, addresses and routes the test sets up, and the
/// list of changing calls the agent made.
#[derive(Debug, Default)]
pub struct FakeNet {
    /// Interfaces.
    pub links: RefCell<Vec<LinkState>>,
    /// Addresses.
    pub addrs: RefCell<Vec<AddrEntry>>,
    /// Routes.
    pub routes: RefCell<Vec<RouteEntry>>,
    /// Changing calls, in order.
    pub calls: RefCell<Vec<NetCall>>,
}

impl NetOps for FakeNet {
    fn link_by_name(&self, name: &str) -> io::Result<Option<LinkState>> {
        Ok(self.links.borrow().iter().find(|l| l.name == name).cloned())
    }
    fn links(&self) -> io::Result<Vec<LinkState>> {
        Ok(self.links.borrow().clone())
    }
    fn addresses(&self, v6: bool) -> io::Result<Vec<AddrEntry>> {
        Ok(self
            .addrs
            .borrow()
            .iter()
            .filter(|a| a.ip.is_ipv6() == v6)
            .cloned()
            .collect())
    }
    fn add_address(&self, addr: &NewAddr) -> io::Result<()> {
        self.calls.borrow_mut().push(NetCall::Add(addr.clone()));
        let mut addrs = self.addrs.borrow_mut();
        if addrs
            .iter()
            .any(|a| a.index == addr.index && a.ip == addr.ip)
        {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let secondary = addr.ip.is_ipv4()
            && addrs.iter().any(|a| {
                a.index == addr.index
                    && a.prefix_len == addr.prefix_len
                    && same_subnet(a.ip, addr.ip, addr.prefix_len)
            });
        addrs.push(AddrEntry {
            index: addr.index,
            ip: addr.ip,
            prefix_len: addr.prefix_len,
            label: addr.label.clone(),
            secondary,
            tentative: false,
            dadfailed: false,
        });
        Ok(())
    }
    fn del_address(&self, index: u32, ip: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(NetCall::Del(index, ip, prefix_len));
        let mut addrs = self.addrs.borrow_mut();
        let before = addrs.len();
        addrs.retain(|a| !(a.index == index && a.ip == ip && a.prefix_len == prefix_len));
        if addrs.len() == before {
            return Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        }
        Ok(())
    }
    fn set_link_up(&self, index: u32) -> io::Result<()> {
        self.calls.borrow_mut().push(NetCall::LinkUp(index));
        for l in self
            .links
            .borrow_mut()
            .iter_mut()
            .filter(|l| l.index == index)
        {
            l.up = true;
            l.lower_up = true;
        }
        Ok(())
    }
    fn promote_secondaries(&self, ifname: &str) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(NetCall::PromoteSecondaries(ifname.to_string()));
        Ok(())
    }
    fn routes(&self, v6: bool) -> io::Result<Vec<RouteEntry>> {
        Ok(self
            .routes
            .borrow()
            .iter()
            .filter(|r| r.dst.is_ipv6() == v6)
            .cloned()
            .collect())
    }
}

/// True when `a` and `b` share the first `prefix_len` bits (same family only).
pub fn same_subnet(a: IpAddr, b: IpAddr, prefix_len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_subnet(ip("198.18.0.1"), ip("198.18.0.200"), 24));
        assert!(!same_subnet(ip("198.18.0.1"), ip("198.18.1.1"), 24));
        assert!(same_subnet(ip("198.18.0.1"), ip("10.0.0.1"), 0));
        assert!(same_subnet(ip("2001:db8::1"), ip("2001:db8::ff"), 64));
        assert!(!same_subnet(ip("2001:db8::1"), ip("2001:db9::1"), 32));
        assert!(!same_subnet(ip("2001:db8::1"), ip("198.18.0.1"), 0));
    }

    /// Reads the loopback interface of whatever namespace the test runs in: needs no root.
    #[test]
    fn lists_loopback() {
        let nl = Netlink::open().unwrap();
        let lo = nl.link_by_name("lo").unwrap().expect("lo exists");
        assert!(lo.loopback);
        assert!(nl.link_by_name("ferroha-none0").unwrap().is_none());
        assert!(nl.links().unwrap().iter().any(|l| l.name == "lo"));
        let _ = nl.addresses(false).unwrap();
        let _ = nl.routes(false).unwrap();
    }
}
