//! Link-layer announcements and duplicate-address probes for virtual IPs.
//!
//! After vip-agent adds a virtual IP it must tell the segment where the address now lives
//! (gratuitous ARP for IPv4, an unsolicited Neighbour Advertisement for IPv6), and before it
//! adds one it should check that nobody else already answers for it. IPaddr2 shells out to
//! `send_arp`/`arping`/`ndisc6` for this; those binaries differ between distributions (iputils,
//! busybox, heartbeat's own `send_arp`) in options, exit codes and packet contents, and may be
//! missing altogether in a minimal image. Building the few packets ourselves on an `AF_PACKET`
//! socket removes that dependency and pins down exactly what goes on the wire.
//!
//! Why packet sockets and not the kernel's own ARP/ND machinery: the kernel will not send a
//! gratuitous ARP on request, will not send an NA for an address that is still tentative
//! (DAD in progress), and an ARP probe must carry sender IP 0.0.0.0, which no IP socket can
//! produce. We use `SOCK_DGRAM` packet sockets (the kernel writes the Ethernet header from a
//! `sockaddr_ll`) rather than `SOCK_RAW` with hand-built Ethernet headers because:
//! the Ethernet source is then always the interface's real address, VLAN and other
//! link-layer details stay the kernel's business, and on receive the kernel hands us the
//! source MAC and packet type (`sll_pkttype`, e.g. our own outgoing copy) without us parsing
//! a header whose layout depends on the device.
//!
//! ARP request or reply? RFC 5227 announces with *requests* ("who-has IP tell IP"), which
//! every stack processes; some older stacks and switches only update on *replies*. Like
//! IPaddr2's `send_arp` we can send both ([`ArpMode::Both`]).
//!
//! Everything here is synchronous and bounded: receive loops poll with the remaining time,
//! never block past their window, and all sockets are close-on-exec and non-blocking.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// An Ethernet (EUI-48) hardware address.
pub type Mac = [u8; 6];

/// ARP announcement flavour (IPaddr2's senders differ; some switches accept only one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpMode {
    /// "who-has IP tell IP" (RFC 5227 ARP Announcement).
    Request,
    /// "IP is-at MAC" (unsolicited reply, `arping -A` style).
    Reply,
    /// A request followed immediately by a reply.
    Both,
}

/// An interface to send on: its index and hardware address (caller gets them from netlink).
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Kernel interface index (never 0).
    pub ifindex: u32,
    /// The interface's own hardware address; used as ARP/NDP sender address.
    pub mac: Mac,
}

const BROADCAST_MAC: Mac = [0xff; 6];
const ZERO_MAC: Mac = [0; 6];
/// Ethernet address of the IPv6 all-nodes group ff02::1 (RFC 2464 section 7).
const ALL_NODES_MAC: Mac = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Length of an ARP packet for Ethernet/IPv4 (RFC 826), without link-layer padding.
const ARP_LEN: usize = 28;
const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_OP_REQUEST: u16 = 1;
const ARP_OP_REPLY: u16 = 2;

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// NDP messages must be sent, and are only accepted, with hop limit 255 (RFC 4861 7.1),
/// which proves they were not forwarded by a router.
const NDP_HOP_LIMIT: u8 = 255;
const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// NA flag byte with only the Override bit set (Router = 0, Solicited = 0).
const NA_FLAG_OVERRIDE: u8 = 0x20;
const NDP_OPTION_TARGET_LLA: u8 = 2;
/// ICMPv6 header (type, code, checksum, flags/reserved) plus the 16-byte target address.
const NDP_BODY_LEN: usize = 24;
/// A link-layer address option for Ethernet: type, length (in 8-byte units), 6-byte MAC.
const NDP_LLA_OPTION_LEN: usize = 8;

/// Big enough for any frame on a standard or jumbo MTU; longer frames are truncated by the
/// kernel, which is harmless because we only look at the first hundred bytes.
const RECEIVE_BUFFER_LEN: usize = 9216;

// ---------------------------------------------------------------------------------------------
// Public operations
// ---------------------------------------------------------------------------------------------

/// Send ONE round of gratuitous ARP for `ip` on `link`, to the broadcast MAC.
///
/// * `Request`: op 1, sender = target = `ip`, sender hw = `link.mac`, target hw 00:00:00:00:00:00
///   (RFC 5227 ARP Announcement).
/// * `Reply`: op 2, sender = target = `ip`, sender hw = target hw = `link.mac`. The target
///   hardware address repeats our own MAC as `arping -A` and heartbeat's `send_arp` do; Linux
///   only treats a reply as gratuitous (overriding a recently confirmed neighbour entry, or
///   creating one with `arp_accept`) when target hw equals sender hw.
/// * `Both`: the request, then the reply.
///
/// `unicast_to` additionally sends the same packet(s) unicast to that MAC (used for the
/// default gateway, which may ignore broadcasts or rate-limit them).
pub fn announce_ipv4(
    link: Link,
    ip: Ipv4Addr,
    mode: ArpMode,
    unicast_to: Option<Mac>,
) -> io::Result<()> {
    // Bad input is reported before a socket is opened (which needs privileges).
    check_link(&link)?;
    check_ipv4_host(ip)?;
    if unicast_to == Some(ZERO_MAC) {
        return Err(invalid_input("unicast ARP destination 00:00:00:00:00:00"));
    }
    Announcer::open(link)?.announce_ipv4(ip, mode, unicast_to)
}

/// Send ONE unsolicited Neighbour Advertisement for `ip` on `link`.
///
/// ICMPv6 type 136 with only the Override flag, target = `ip`, Target Link-Layer Address
/// option = `link.mac`, from `ip` to ff02::1 (33:33:00:00:00:01), hop limit 255. The IPv6
/// header is built here rather than by the kernel, so this works while `ip` is still
/// tentative (the kernel refuses to source packets from a tentative address).
pub fn announce_ipv6(link: Link, ip: Ipv6Addr) -> io::Result<()> {
    check_link(&link)?;
    check_ipv6_host(ip)?;
    Announcer::open(link)?.announce_ipv6(ip)
}

/// An open sending socket for announcements on one link, for several rounds.
///
/// Closing the last reference to a packet socket waits for an RCU grace period in the kernel
/// (`packet_release` calls `synchronize_net`), measured at about 13 ms here: more than the
/// rest of a vip start. So a caller that announces repeatedly keeps one `Announcer`, and a
/// caller that hands the remaining rounds to a helper process lets the helper inherit the
/// socket ([`Announcer::into_fd`]); the caller's close is then not the last one and is cheap.
pub struct Announcer {
    link: Link,
    socket: PacketSocket,
}

impl Announcer {
    /// Opens the socket for `link`.
    pub fn open(link: Link) -> io::Result<Announcer> {
        check_link(&link)?;
        let socket = PacketSocket::open(&link)?;
        Ok(Announcer { link, socket })
    }

    /// Wraps a socket inherited from [`Announcer::into_fd`] in another process. The caller
    /// asserts that `fd` is an `AF_PACKET` socket it owns.
    pub fn from_fd(link: Link, fd: OwnedFd) -> io::Result<Announcer> {
        check_link(&link)?;
        let ifindex = libc::c_int::try_from(link.ifindex)
            .map_err(|_| invalid_input("interface index out of range"))?;
        Ok(Announcer {
            link,
            socket: PacketSocket { fd, ifindex },
        })
    }

    /// The socket, to be inherited by a helper process.
    pub fn into_fd(self) -> OwnedFd {
        self.socket.fd
    }

    /// The socket's descriptor, e.g. to `dup2` it into a helper process.
    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.fd.as_raw_fd()
    }

    /// The link this socket announces on.
    pub fn link(&self) -> Link {
        self.link
    }

    /// One round for `ip`, IPv4 (gratuitous ARP, see [`announce_ipv4`]) or IPv6 (unsolicited
    /// NA, see [`announce_ipv6`]; `mode` and `unicast_to` apply to IPv4 only).
    pub fn announce(&self, ip: IpAddr, mode: ArpMode, unicast_to: Option<Mac>) -> io::Result<()> {
        match ip {
            IpAddr::V4(v4) => self.announce_ipv4(v4, mode, unicast_to),
            IpAddr::V6(v6) => self.announce_ipv6(v6),
        }
    }

    fn announce_ipv4(
        &self,
        ip: Ipv4Addr,
        mode: ArpMode,
        unicast_to: Option<Mac>,
    ) -> io::Result<()> {
        check_ipv4_host(ip)?;
        if unicast_to == Some(ZERO_MAC) {
            return Err(invalid_input("unicast ARP destination 00:00:00:00:00:00"));
        }
        let frames = arp_announcements(self.link.mac, ip, mode);
        for destination in std::iter::once(BROADCAST_MAC).chain(unicast_to) {
            for frame in &frames {
                self.socket.send(ETHERTYPE_ARP, destination, frame)?;
            }
        }
        log::debug!(
            "sent gratuitous ARP ({mode:?}) for {ip} is-at {} on ifindex {}",
            format_mac(&self.link.mac),
            self.link.ifindex
        );
        Ok(())
    }

    fn announce_ipv6(&self, ip: Ipv6Addr) -> io::Result<()> {
        check_ipv6_host(ip)?;
        let packet = na_packet(self.link.mac, ip)?;
        self.socket.send(ETHERTYPE_IPV6, ALL_NODES_MAC, &packet)?;
        log::debug!(
            "sent unsolicited NA for {ip} is-at {} on ifindex {}",
            format_mac(&self.link.mac),
            self.link.ifindex
        );
        Ok(())
    }
}

/// Who else answers for `ip` on the wire? Returns the MAC of the first other owner found,
/// or `Ok(None)` if nobody answered within `window`.
///
/// The probe disturbs nobody's neighbour caches:
/// * IPv4: an RFC 5227 ARP probe (op 1, sender IP 0.0.0.0, sender hw `link.mac`, target `ip`)
///   to broadcast; any ARP packet whose sender IP is `ip` and whose sender MAC is not ours
///   is a conflict.
/// * IPv6: a DAD Neighbour Solicitation from :: to the solicited-node group of `ip`, with no
///   source link-layer option (RFC 4862 5.4.2); an owner replies with an NA to ff02::1. An NA
///   for `ip` is a conflict when its TLLA option or its Ethernet source is not our MAC.
///
/// Our own outgoing frames are ignored. Another host *probing* for the same address at the
/// same moment is not reported (it is not an owner yet). The probe is sent at the start and
/// again at `window / 2` to survive one lost packet; the call never blocks much past `window`.
pub fn probe_duplicate(link: Link, ip: IpAddr, window: Duration) -> io::Result<Option<Mac>> {
    check_link(&link)?;
    let found = match ip {
        IpAddr::V4(ip) => probe_ipv4(link, ip, window)?,
        IpAddr::V6(ip) => probe_ipv6(link, ip, window)?,
    };
    if let Some(owner) = found {
        log::debug!("{ip} is already answered for by {}", format_mac(&owner));
    }
    Ok(found)
}

/// Resolve the MAC of `target` (e.g. the default gateway) with an ARP request from
/// `sender_ip`, waiting up to `timeout` for the answer; `Ok(None)` on timeout.
///
/// The request is repeated once at `timeout / 2`. Any ARP packet whose sender IP is `target`
/// counts as the answer (a reply, or a request `target` happens to send meanwhile). The
/// owner replies unicast to `link.mac`, so that must be the interface's real address.
/// `sender_ip` may be 0.0.0.0 (a probe-style request, which leaves no cache entry behind on
/// the target). IPv6 is deliberately not offered: callers announce to the gateway by
/// multicast NA, which needs no resolution.
pub fn resolve_ipv4(
    link: Link,
    sender_ip: Ipv4Addr,
    target: Ipv4Addr,
    timeout: Duration,
) -> io::Result<Option<Mac>> {
    check_link(&link)?;
    check_ipv4_host(target)?;
    if sender_ip.is_broadcast() || sender_ip.is_multicast() {
        return Err(invalid_input(
            "ARP sender address must be unicast or 0.0.0.0",
        ));
    }
    let request = arp_frame(ARP_OP_REQUEST, link.mac, sender_ip, ZERO_MAC, target);
    let socket = PacketSocket::open_listener(&link, ETHERTYPE_ARP, None)?;
    send_and_listen(
        &socket,
        timeout,
        || socket.send(ETHERTYPE_ARP, BROADCAST_MAC, &request),
        |payload, _| {
            parse_arp(payload)
                .filter(|arp| arp.sender_ip == target && is_unicast_mac(&arp.sender_mac))
                .map(|arp| arp.sender_mac)
        },
    )
}

/// Formats "aa:bb:cc:dd:ee:ff".
pub fn format_mac(mac: &Mac) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Parses "aa:bb:cc:dd:ee:ff" (either case, exactly two hex digits per byte).
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = ZERO_MAC;
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|digit| digit.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

// ---------------------------------------------------------------------------------------------
// Probing
// ---------------------------------------------------------------------------------------------

fn probe_ipv4(link: Link, ip: Ipv4Addr, window: Duration) -> io::Result<Option<Mac>> {
    check_ipv4_host(ip)?;
    let probe = arp_frame(
        ARP_OP_REQUEST,
        link.mac,
        Ipv4Addr::UNSPECIFIED,
        ZERO_MAC,
        ip,
    );
    let socket = PacketSocket::open_listener(&link, ETHERTYPE_ARP, None)?;
    send_and_listen(
        &socket,
        window,
        || socket.send(ETHERTYPE_ARP, BROADCAST_MAC, &probe),
        |payload, _| parse_arp(payload).and_then(|arp| arp_claim(&arp, ip, link.mac)),
    )
}

fn probe_ipv6(link: Link, ip: Ipv6Addr, window: Duration) -> io::Result<Option<Mac>> {
    check_ipv6_host(ip)?;
    let solicitation = dad_ns_packet(ip)?;
    let group_mac = ipv6_multicast_mac(solicited_node_group(ip));
    let filter = neighbor_advert_filter();
    let socket = PacketSocket::open_listener(&link, ETHERTYPE_IPV6, Some(&filter))?;
    // The owner answers a DAD probe to ff02::1; make sure the NIC passes that group up even
    // if IPv6 is disabled on this interface. The membership ends with the socket.
    socket.join_multicast(ALL_NODES_MAC)?;
    send_and_listen(
        &socket,
        window,
        || socket.send(ETHERTYPE_IPV6, group_mac, &solicitation),
        |payload, ethernet_source| {
            parse_neighbor_advert(payload)
                .and_then(|na| na_claim(&na, ethernet_source, ip, link.mac))
        },
    )
}

/// Sends with `send` now and again at `window / 2`, and feeds each incoming frame (payload,
/// Ethernet source) to `recognise` until it returns something or `window` has elapsed.
fn send_and_listen<T>(
    socket: &PacketSocket,
    window: Duration,
    mut send: impl FnMut() -> io::Result<()>,
    mut recognise: impl FnMut(&[u8], Option<Mac>) -> Option<T>,
) -> io::Result<Option<T>> {
    let started = Instant::now();
    let deadline = started
        .checked_add(window)
        .ok_or_else(|| invalid_input("listening window too long"))?;
    let resend_at = started.checked_add(window / 2).unwrap_or(deadline);
    send()?;
    let mut resend_pending = true;
    let mut buffer = vec![0u8; RECEIVE_BUFFER_LEN];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if resend_pending && now >= resend_at {
            send()?;
            resend_pending = false;
        }
        let wake_at = if resend_pending { resend_at } else { deadline };
        if !socket.wait_readable(wake_at.saturating_duration_since(now))? {
            continue;
        }
        // One frame per wake-up, so a flood cannot keep us past the deadline.
        let Some(frame) = socket.receive(&mut buffer)? else {
            continue;
        };
        if frame.packet_type == libc::PACKET_OUTGOING {
            continue;
        }
        let Some(payload) = buffer.get(..frame.len) else {
            continue;
        };
        if let Some(found) = recognise(payload, frame.source_mac) {
            return Ok(Some(found));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input checks
// ---------------------------------------------------------------------------------------------

fn invalid_input(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

fn check_link(link: &Link) -> io::Result<()> {
    if link.ifindex == 0 || i32::try_from(link.ifindex).is_err() {
        return Err(invalid_input("interface index out of range"));
    }
    if !is_unicast_mac(&link.mac) {
        return Err(invalid_input("interface MAC must be a unicast address"));
    }
    Ok(())
}

fn check_ipv4_host(ip: Ipv4Addr) -> io::Result<()> {
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(invalid_input("IPv4 address must be a unicast host address"));
    }
    Ok(())
}

fn check_ipv6_host(ip: Ipv6Addr) -> io::Result<()> {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(invalid_input("IPv6 address must be a unicast host address"));
    }
    Ok(())
}

/// Neither the zero address nor a group (multicast/broadcast) address.
fn is_unicast_mac(mac: &Mac) -> bool {
    *mac != ZERO_MAC && mac[0] & 0x01 == 0
}

// ---------------------------------------------------------------------------------------------
// ARP frames
// ---------------------------------------------------------------------------------------------

/// An Ethernet/IPv4 ARP packet (RFC 826), as it follows the Ethernet header.
fn arp_frame(
    op: u16,
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
) -> [u8; ARP_LEN] {
    let mut frame = [0u8; ARP_LEN];
    frame[0..2].copy_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    frame[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    frame[4] = 6; // hardware address length
    frame[5] = 4; // protocol address length
    frame[6..8].copy_from_slice(&op.to_be_bytes());
    frame[8..14].copy_from_slice(&sender_mac);
    frame[14..18].copy_from_slice(&sender_ip.octets());
    frame[18..24].copy_from_slice(&target_mac);
    frame[24..28].copy_from_slice(&target_ip.octets());
    frame
}

/// The gratuitous ARP packets for one announcement round, in sending order.
fn arp_announcements(mac: Mac, ip: Ipv4Addr, mode: ArpMode) -> Vec<[u8; ARP_LEN]> {
    let request = arp_frame(ARP_OP_REQUEST, mac, ip, ZERO_MAC, ip);
    let reply = arp_frame(ARP_OP_REPLY, mac, ip, mac, ip);
    match mode {
        ArpMode::Request => vec![request],
        ArpMode::Reply => vec![reply],
        ArpMode::Both => vec![request, reply],
    }
}

/// The fields of a received Ethernet/IPv4 ARP packet that we look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ArpPacket {
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
}

/// Parses an ARP request or reply for Ethernet/IPv4; anything else is `None`.
/// Trailing bytes (Ethernet padding to 60 bytes) are ignored.
fn parse_arp(payload: &[u8]) -> Option<ArpPacket> {
    let header: &[u8; ARP_LEN] = payload.get(..ARP_LEN)?.try_into().ok()?;
    let htype = u16::from_be_bytes([header[0], header[1]]);
    let ptype = u16::from_be_bytes([header[2], header[3]]);
    let op = u16::from_be_bytes([header[6], header[7]]);
    let well_formed = htype == ARP_HTYPE_ETHERNET
        && ptype == ETHERTYPE_IPV4
        && header[4] == 6
        && header[5] == 4
        && (op == ARP_OP_REQUEST || op == ARP_OP_REPLY);
    if !well_formed {
        return None;
    }
    Some(ArpPacket {
        sender_mac: header[8..14].try_into().ok()?,
        sender_ip: Ipv4Addr::new(header[14], header[15], header[16], header[17]),
    })
}

/// Does this ARP packet show another host using `ip`? Returns that host's MAC.
fn arp_claim(arp: &ArpPacket, ip: Ipv4Addr, own_mac: Mac) -> Option<Mac> {
    let other_owner =
        arp.sender_ip == ip && arp.sender_mac != own_mac && is_unicast_mac(&arp.sender_mac);
    other_owner.then_some(arp.sender_mac)
}

// ---------------------------------------------------------------------------------------------
// IPv6 neighbour discovery packets
// ---------------------------------------------------------------------------------------------

/// ff02::1:ffXX:XXXX, the group a host holding `ip` listens on for solicitations
/// (RFC 4291 2.7.1).
fn solicited_node_group(ip: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = ip.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a, b, c])
}

/// 33:33 followed by the low 32 bits of the group (RFC 2464 section 7).
fn ipv6_multicast_mac(group: Ipv6Addr) -> Mac {
    let [.., a, b, c, d] = group.octets();
    [0x33, 0x33, a, b, c, d]
}

/// The ones'-complement Internet checksum (RFC 1071) over the concatenation of `parts`.
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut high_byte = true;
    for &byte in parts.iter().flat_map(|part| part.iter()) {
        sum += if high_byte {
            u64::from(byte) << 8
        } else {
            u64::from(byte)
        };
        high_byte = !high_byte;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits, so the conversion cannot fail.
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// ICMPv6 checksum: over the IPv6 pseudo-header (RFC 8200 8.1) and the message, whose own
/// checksum field must be zero.
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> io::Result<u16> {
    let length = u32::try_from(message.len())
        .map_err(|_| invalid_input("ICMPv6 message too long"))?
        .to_be_bytes();
    let next_header = [0, 0, 0, NEXT_HEADER_ICMPV6];
    Ok(internet_checksum(&[
        &source.octets(),
        &destination.octets(),
        &length,
        &next_header,
        message,
    ]))
}

/// Wraps an ICMPv6 message (checksum field zero) in an IPv6 header with hop limit 255,
/// filling in the checksum.
fn icmpv6_packet(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    mut message: Vec<u8>,
) -> io::Result<Vec<u8>> {
    let payload_length =
        u16::try_from(message.len()).map_err(|_| invalid_input("ICMPv6 message too long"))?;
    let checksum = icmpv6_checksum(source, destination, &message)?;
    if let Some(field) = message.get_mut(2..4) {
        field.copy_from_slice(&checksum.to_be_bytes());
    }
    let mut packet = Vec::with_capacity(IPV6_HEADER_LEN + message.len());
    packet.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    packet.extend_from_slice(&payload_length.to_be_bytes());
    packet.push(NEXT_HEADER_ICMPV6);
    packet.push(NDP_HOP_LIMIT);
    packet.extend_from_slice(&source.octets());
    packet.extend_from_slice(&destination.octets());
    packet.extend_from_slice(&message);
    Ok(packet)
}

/// The ICMPv6 body shared by NS and NA: type, code 0, zero checksum, flags + reserved, target.
fn ndp_body(icmp_type: u8, flags: u8, target: Ipv6Addr) -> Vec<u8> {
    let mut body = Vec::with_capacity(NDP_BODY_LEN + NDP_LLA_OPTION_LEN);
    body.extend_from_slice(&[icmp_type, 0, 0, 0, flags, 0, 0, 0]);
    body.extend_from_slice(&target.octets());
    body
}

/// Unsolicited Neighbour Advertisement for `ip` at `mac`, from `ip` to ff02::1
/// (RFC 4861 7.2.6), as a complete IPv6 packet.
fn na_packet(mac: Mac, ip: Ipv6Addr) -> io::Result<Vec<u8>> {
    let mut message = ndp_body(ICMPV6_NEIGHBOR_ADVERTISEMENT, NA_FLAG_OVERRIDE, ip);
    message.extend_from_slice(&[NDP_OPTION_TARGET_LLA, 1]);
    message.extend_from_slice(&mac);
    icmpv6_packet(ip, ALL_NODES, message)
}

/// Duplicate Address Detection Neighbour Solicitation for `ip`: from ::, to the
/// solicited-node group, without a source link-layer option (RFC 4862 5.4.2).
fn dad_ns_packet(ip: Ipv6Addr) -> io::Result<Vec<u8>> {
    let message = ndp_body(ICMPV6_NEIGHBOR_SOLICITATION, 0, ip);
    icmpv6_packet(Ipv6Addr::UNSPECIFIED, solicited_node_group(ip), message)
}

/// The fields of a received Neighbour Advertisement that we look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NeighborAdvert {
    target: Ipv6Addr,
    target_mac: Option<Mac>,
}

/// Parses an IPv6 packet carrying a valid-looking Neighbour Advertisement; anything else is
/// `None`. Extension headers are not followed (NDP does not use them), and the checksum is
/// not verified: with checksum offload a packet socket may see a not-yet-finalised checksum,
/// and a corrupt frame would only make us cautious, never assign an address twice.
fn parse_neighbor_advert(packet: &[u8]) -> Option<NeighborAdvert> {
    let header = packet.get(..IPV6_HEADER_LEN)?;
    if header[0] >> 4 != 6 || header[6] != NEXT_HEADER_ICMPV6 || header[7] != NDP_HOP_LIMIT {
        return None;
    }
    let payload_length = usize::from(u16::from_be_bytes([header[4], header[5]]));
    // Bound by the declared length: anything after it is Ethernet padding.
    let message = packet.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN.checked_add(payload_length)?)?;
    let body = message.get(..NDP_BODY_LEN)?;
    if body[0] != ICMPV6_NEIGHBOR_ADVERTISEMENT || body[1] != 0 {
        return None;
    }
    let target: [u8; 16] = body.get(8..24)?.try_into().ok()?;
    let target_mac = find_target_lla(message.get(NDP_BODY_LEN..)?)?;
    Some(NeighborAdvert {
        target: Ipv6Addr::from(target),
        target_mac,
    })
}

/// Walks NDP options; `None` if they are malformed (a zero-length option must make the
/// whole message be discarded, RFC 4861 4.6), `Some(None)` if there is no Ethernet TLLA.
fn find_target_lla(mut options: &[u8]) -> Option<Option<Mac>> {
    let mut found = None;
    while !options.is_empty() {
        let kind = *options.first()?;
        let length = usize::from(*options.get(1)?) * 8;
        if length == 0 {
            return None;
        }
        let option = options.get(..length)?;
        if kind == NDP_OPTION_TARGET_LLA && found.is_none() {
            found = option.get(2..8).and_then(|mac| mac.try_into().ok());
        }
        options = options.get(length..)?;
    }
    Some(found)
}

/// Does this advertisement show another host using `ip`? Returns that host's MAC: the
/// advertised TLLA if it is not ours, else the Ethernet source if that is not ours.
fn na_claim(
    na: &NeighborAdvert,
    ethernet_source: Option<Mac>,
    ip: Ipv6Addr,
    own_mac: Mac,
) -> Option<Mac> {
    if na.target != ip {
        return None;
    }
    [na.target_mac, ethernet_source]
        .into_iter()
        .flatten()
        .find(|mac| *mac != own_mac && is_unicast_mac(mac))
}

/// Classic BPF program letting only ICMPv6 Neighbour Advertisements through (offsets are
/// from the IPv6 header, since a SOCK_DGRAM packet socket strips the link-layer header).
/// Without it a socket bound to ETH_P_IPV6 would queue every IPv6 packet on a busy
/// interface, e.g. database replication traffic, and might drop the one answer we need.
fn neighbor_advert_filter() -> [libc::sock_filter; 6] {
    const LOAD_BYTE: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JUMP_IF_EQUAL: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        op(LOAD_BYTE, 0, 0, 6), // next header
        op(JUMP_IF_EQUAL, 0, 3, u32::from(NEXT_HEADER_ICMPV6)),
        op(LOAD_BYTE, 0, 0, IPV6_HEADER_LEN as u32), // ICMPv6 type
        op(
            JUMP_IF_EQUAL,
            0,
            1,
            u32::from(ICMPV6_NEIGHBOR_ADVERTISEMENT),
        ),
        op(RETURN, 0, 0, u32::MAX), // accept the whole packet
        op(RETURN, 0, 0, 0),        // drop
    ]
}

// ---------------------------------------------------------------------------------------------
// The packet socket
// ---------------------------------------------------------------------------------------------

/// What `recvfrom` told us about one received frame.
#[derive(Debug, Clone, Copy)]
struct ReceivedFrame {
    /// Bytes of network-layer payload placed in the buffer.
    len: usize,
    /// Ethernet source, if the link has 6-byte addresses.
    source_mac: Option<Mac>,
    /// `PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_MULTICAST`, `PACKET_OUTGOING`, ...
    packet_type: u8,
}

/// A non-blocking, close-on-exec `AF_PACKET`/`SOCK_DGRAM` socket for one interface.
struct PacketSocket {
    fd: OwnedFd,
    ifindex: libc::c_int,
}

impl PacketSocket {
    /// A socket that sends only: protocol 0 means the kernel queues nothing to it.
    fn open(link: &Link) -> io::Result<Self> {
        let ifindex = libc::c_int::try_from(link.ifindex)
            .map_err(|_| invalid_input("interface index out of range"))?;
        // SAFETY: socket(2) takes only integer arguments and returns a new descriptor or -1.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns or closes.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { fd, ifindex })
    }

    /// A socket that also receives `ethertype` frames of this interface only. The optional
    /// filter is attached before binding, so no unfiltered frame is ever queued.
    fn open_listener(
        link: &Link,
        ethertype: u16,
        filter: Option<&[libc::sock_filter]>,
    ) -> io::Result<Self> {
        let socket = Self::open(link)?;
        if let Some(program) = filter {
            socket.attach_filter(program)?;
        }
        let address = socket.link_address(ethertype, ZERO_MAC);
        // SAFETY: `address` is a valid sockaddr_ll and the length passed is its exact size.
        let result = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&raw const address).cast(),
                socklen_of::<libc::sockaddr_ll>(),
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    fn link_address(&self, ethertype: u16, destination: Mac) -> libc::sockaddr_ll {
        let mut sll_addr = [0u8; 8];
        sll_addr[..6].copy_from_slice(&destination);
        libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as libc::c_ushort,
            sll_protocol: ethertype.to_be(),
            sll_ifindex: self.ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr,
        }
    }

    fn attach_filter(&self, program: &[libc::sock_filter]) -> io::Result<()> {
        let len =
            u16::try_from(program.len()).map_err(|_| invalid_input("BPF program too long"))?;
        let fprog = libc::sock_fprog {
            len,
            // The kernel only reads (copies) the program during setsockopt.
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points to `len` valid instructions that outlive the call; the
        // option length is the exact size of `fprog`.
        let result = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const fprog).cast(),
                socklen_of::<libc::sock_fprog>(),
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receive frames sent to the link-layer group `mac` while this socket lives.
    fn join_multicast(&self, mac: Mac) -> io::Result<()> {
        let mut mr_address = [0u8; 8];
        mr_address[..6].copy_from_slice(&mac);
        let request = libc::packet_mreq {
            mr_ifindex: self.ifindex,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address,
        };
        // SAFETY: `request` is a valid packet_mreq and the length passed is its exact size.
        let result = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&raw const request).cast(),
                socklen_of::<libc::packet_mreq>(),
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `payload` as one `ethertype` frame to `destination`; the kernel adds the
    /// Ethernet header with the interface's own address as source.
    fn send(&self, ethertype: u16, destination: Mac, payload: &[u8]) -> io::Result<()> {
        let address = self.link_address(ethertype, destination);
        // SAFETY: `payload` is valid for `payload.len()` bytes; `address` is a valid
        // sockaddr_ll and the length passed is its exact size.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&raw const address).cast(),
                socklen_of::<libc::sockaddr_ll>(),
            )
        };
        match usize::try_from(sent) {
            Ok(count) if count == payload.len() => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short packet write",
            )),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }

    /// Waits up to `timeout` (rounded up to whole milliseconds) for something to read.
    /// `Ok(false)` on timeout or when a signal interrupted the wait.
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let millis = timeout.as_micros().div_ceil(1000);
        let timeout_ms = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
        let mut poll_fd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and we pass a count of 1.
        let ready = unsafe { libc::poll(&raw mut poll_fd, 1, timeout_ms) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(error),
            };
        }
        // POLLERR (e.g. the interface went down) also counts: the next read reports it.
        Ok(ready > 0)
    }

    /// Reads one frame into `buffer` without blocking; `Ok(None)` if none is queued.
    fn receive(&self, buffer: &mut [u8]) -> io::Result<Option<ReceivedFrame>> {
        let mut from = self.link_address(0, ZERO_MAC);
        let mut from_len = socklen_of::<libc::sockaddr_ll>();
        // SAFETY: `buffer` is valid for writes of `buffer.len()` bytes; `from`/`from_len`
        // describe a sockaddr_ll-sized buffer the kernel may fill (it never writes more
        // than `from_len` bytes).
        let received = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
                (&raw mut from).cast(),
                &raw mut from_len,
            )
        };
        let Ok(len) = usize::try_from(received) else {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(error),
            };
        };
        let address_complete =
            usize::try_from(from_len).is_ok_and(|filled| filled >= size_of::<libc::sockaddr_ll>());
        let source_mac = (address_complete && from.sll_halen == 6)
            .then(|| from.sll_addr[..6].try_into().ok())
            .flatten();
        Ok(Some(ReceivedFrame {
            len: len.min(buffer.len()),
            source_mac,
            packet_type: from.sll_pkttype,
        }))
    }
}

/// `size_of::<T>()` as a socklen_t, for the small fixed-size structs passed to the kernel.
fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUR_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    const OTHER_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
    const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    // ---- pure frame builders -----------------------------------------------------------

    #[test]
    fn arp_request_announcement_bytes() {
        let frames = arp_announcements(OUR_MAC, VIP4, ArpMode::Request);
        let expected: [u8; ARP_LEN] = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet/IPv4, request
            0x02, 0, 0, 0, 0, 0x01, 198, 18, 5, 1, // sender
            0, 0, 0, 0, 0, 0, 198, 18, 5, 1, // target
        ];
        assert_eq!(frames, vec![expected]);
    }

    #[test]
    fn arp_reply_announcement_bytes() {
        let frames = arp_announcements(OUR_MAC, VIP4, ArpMode::Reply);
        let expected: [u8; ARP_LEN] = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, // Ethernet/IPv4, reply
            0x02, 0, 0, 0, 0, 0x01, 198, 18, 5, 1, // sender
            0x02, 0, 0, 0, 0, 0x01, 198, 18, 5, 1, // target hw repeats our MAC
        ];
        assert_eq!(frames, vec![expected]);
    }

    #[test]
    fn arp_both_is_request_then_reply() {
        let both = arp_announcements(OUR_MAC, VIP4, ArpMode::Both);
        let mut expected = arp_announcements(OUR_MAC, VIP4, ArpMode::Request);
        expected.extend(arp_announcements(OUR_MAC, VIP4, ArpMode::Reply));
        assert_eq!(both, expected);
    }

    #[test]
    fn arp_probe_bytes() {
        let probe = arp_frame(
            ARP_OP_REQUEST,
            OUR_MAC,
            Ipv4Addr::UNSPECIFIED,
            ZERO_MAC,
            Ipv4Addr::new(198, 18, 5, 2),
        );
        let expected: [u8; ARP_LEN] = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, //
            0x02, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, // sender IP 0.0.0.0
            0, 0, 0, 0, 0, 0, 198, 18, 5, 2,
        ];
        assert_eq!(probe, expected);
    }

    #[test]
    fn multicast_addresses_for_ipv6() {
        let ip: Ipv6Addr = "2001:db8::1:2:3".parse().unwrap();
        let group = solicited_node_group(ip);
        assert_eq!(group, "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            ipv6_multicast_mac(group),
            [0x33, 0x33, 0xff, 0x02, 0x00, 0x03]
        );
        assert_eq!(ipv6_multicast_mac(ALL_NODES), ALL_NODES_MAC);
    }

    /// An independent, deliberately naive checksum: pad, sum 16-bit words with end-around
    /// carry after every addition.
    fn naive_icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
        let mut data = Vec::new();
        data.extend_from_slice(&source.octets());
        data.extend_from_slice(&destination.octets());
        data.extend_from_slice(&(message.len() as u32).to_be_bytes());
        data.extend_from_slice(&[0, 0, 0, 58]);
        data.extend_from_slice(message);
        if data.len() % 2 == 1 {
            data.push(0);
        }
        let mut sum: u32 = 0;
        for word in data.chunks(2) {
            sum += u32::from(word[0]) << 8 | u32::from(word[1]);
            if sum > 0xffff {
                sum -= 0xffff;
            }
        }
        !(sum as u16)
    }

    /// Zero the checksum field of the ICMPv6 message inside an IPv6 packet.
    fn message_without_checksum(packet: &[u8]) -> Vec<u8> {
        let mut message = packet[IPV6_HEADER_LEN..].to_vec();
        message[2] = 0;
        message[3] = 0;
        message
    }

    #[test]
    fn unsolicited_na_bytes() {
        let packet = na_packet(OUR_MAC, VIP6).unwrap();
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // IPv6: version 6, payload 32, next header 58, hop limit 255
            0x60, 0, 0, 0, 0x00, 32, 58, 255,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // from the VIP
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // to ff02::1
            // ICMPv6 NA, checksum 0xf92a (computed independently with Python), flags O
            136, 0, 0xf9, 0x2a, 0x20, 0, 0, 0,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // target
            2, 1, 0x02, 0, 0, 0, 0, 0x01, // TLLA option
        ];
        assert_eq!(packet, expected);
        let message = message_without_checksum(&packet);
        assert_eq!(naive_icmpv6_checksum(VIP6, ALL_NODES, &message), 0xf92a);
    }

    #[test]
    fn dad_solicitation_bytes() {
        let ip: Ipv6Addr = "2001:db8::1:2:3".parse().unwrap();
        let packet = dad_ns_packet(ip).unwrap();
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x60, 0, 0, 0, 0x00, 24, 58, 255,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // from ::
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x02, 0x00, 0x03, // solicited-node
            // ICMPv6 NS, checksum 0x4ce4 (computed independently with Python), reserved
            135, 0, 0x4c, 0xe4, 0, 0, 0, 0,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0x02, 0, 0x03, // target, no options
        ];
        assert_eq!(packet, expected);
    }

    #[test]
    fn checksum_matches_naive_implementation_and_verifies() {
        for seed in 0u8..40 {
            let ip = Ipv6Addr::from([seed.wrapping_mul(37); 16]);
            let mac = [0x02, seed, seed ^ 0x5a, 0xff, seed.wrapping_add(1), 0x00];
            for packet in [na_packet(mac, ip).unwrap(), dad_ns_packet(ip).unwrap()] {
                let source: [u8; 16] = packet[8..24].try_into().unwrap();
                let destination: [u8; 16] = packet[24..40].try_into().unwrap();
                let (source, destination) = (source.into(), destination.into());
                let stored = u16::from_be_bytes([packet[42], packet[43]]);
                let message = message_without_checksum(&packet);
                assert_eq!(stored, naive_icmpv6_checksum(source, destination, &message));
                // Summing over the message including its checksum must give zero.
                let verify = icmpv6_checksum(source, destination, &packet[40..]).unwrap();
                assert_eq!(verify, 0, "seed {seed}");
            }
        }
        // Odd-length data is padded with a zero byte (RFC 1071).
        assert_eq!(internet_checksum(&[&[0x01]]), !0x0100);
        assert_eq!(internet_checksum(&[&[0x01], &[0x02]]), !0x0102);
    }

    // ---- ARP parsing -------------------------------------------------------------------

    #[test]
    fn arp_reply_from_another_host_is_a_conflict() {
        let reply = arp_frame(
            ARP_OP_REPLY,
            OTHER_MAC,
            VIP4,
            OUR_MAC,
            Ipv4Addr::UNSPECIFIED,
        );
        let arp = parse_arp(&reply).unwrap();
        assert_eq!(arp.sender_ip, VIP4);
        assert_eq!(arp_claim(&arp, VIP4, OUR_MAC), Some(OTHER_MAC));
    }

    #[test]
    fn arp_announcement_from_another_host_is_a_conflict() {
        for frame in arp_announcements(OTHER_MAC, VIP4, ArpMode::Both) {
            let arp = parse_arp(&frame).unwrap();
            assert_eq!(arp_claim(&arp, VIP4, OUR_MAC), Some(OTHER_MAC));
        }
    }

    #[test]
    fn arp_ignores_own_mac_other_ips_and_probes() {
        let own = arp_frame(ARP_OP_REPLY, OUR_MAC, VIP4, OUR_MAC, VIP4);
        assert_eq!(arp_claim(&parse_arp(&own).unwrap(), VIP4, OUR_MAC), None);
        let wrong_ip = arp_frame(
            ARP_OP_REPLY,
            OTHER_MAC,
            Ipv4Addr::new(198, 18, 5, 3),
            OUR_MAC,
            VIP4,
        );
        assert_eq!(
            arp_claim(&parse_arp(&wrong_ip).unwrap(), VIP4, OUR_MAC),
            None
        );
        // Someone else probing for the same address is not (yet) an owner.
        let probe = arp_frame(
            ARP_OP_REQUEST,
            OTHER_MAC,
            Ipv4Addr::UNSPECIFIED,
            ZERO_MAC,
            VIP4,
        );
        assert_eq!(arp_claim(&parse_arp(&probe).unwrap(), VIP4, OUR_MAC), None);
        // A nonsensical group sender address is not an owner either.
        let bogus = arp_frame(ARP_OP_REPLY, BROADCAST_MAC, VIP4, OUR_MAC, VIP4);
        assert_eq!(arp_claim(&parse_arp(&bogus).unwrap(), VIP4, OUR_MAC), None);
    }

    #[test]
    fn arp_parser_rejects_malformed_and_accepts_padding() {
        let good = arp_frame(ARP_OP_REPLY, OTHER_MAC, VIP4, OUR_MAC, VIP4);
        for len in 0..ARP_LEN {
            assert_eq!(parse_arp(&good[..len]), None, "truncated to {len}");
        }
        let mut padded = good.to_vec();
        padded.resize(46, 0);
        assert!(parse_arp(&padded).is_some());
        for (index, value) in [(1, 6), (3, 0xdd), (4, 8), (5, 16), (7, 3)] {
            let mut bad = good;
            bad[index] = value;
            assert_eq!(parse_arp(&bad), None, "byte {index} = {value}");
        }
    }

    // ---- NA parsing --------------------------------------------------------------------

    fn na_without_option(target: Ipv6Addr) -> Vec<u8> {
        let message = ndp_body(ICMPV6_NEIGHBOR_ADVERTISEMENT, NA_FLAG_OVERRIDE, target);
        icmpv6_packet(target, ALL_NODES, message).unwrap()
    }

    #[test]
    fn na_from_another_host_is_a_conflict() {
        let na = parse_neighbor_advert(&na_packet(OTHER_MAC, VIP6).unwrap()).unwrap();
        assert_eq!(na.target, VIP6);
        assert_eq!(na.target_mac, Some(OTHER_MAC));
        assert_eq!(
            na_claim(&na, Some(OTHER_MAC), VIP6, OUR_MAC),
            Some(OTHER_MAC)
        );
        // The option speaks for the owner even if the frame came through something else.
        assert_eq!(na_claim(&na, None, VIP6, OUR_MAC), Some(OTHER_MAC));
    }

    #[test]
    fn na_without_option_uses_ethernet_source() {
        let na = parse_neighbor_advert(&na_without_option(VIP6)).unwrap();
        assert_eq!(na.target_mac, None);
        assert_eq!(
            na_claim(&na, Some(OTHER_MAC), VIP6, OUR_MAC),
            Some(OTHER_MAC)
        );
        assert_eq!(na_claim(&na, Some(OUR_MAC), VIP6, OUR_MAC), None);
        assert_eq!(na_claim(&na, None, VIP6, OUR_MAC), None);
    }

    #[test]
    fn na_ignores_own_mac_and_other_targets() {
        let own = parse_neighbor_advert(&na_packet(OUR_MAC, VIP6).unwrap()).unwrap();
        assert_eq!(na_claim(&own, Some(OUR_MAC), VIP6, OUR_MAC), None);
        // Our option but someone else's frame: still someone else answering.
        assert_eq!(
            na_claim(&own, Some(OTHER_MAC), VIP6, OUR_MAC),
            Some(OTHER_MAC)
        );
        let other_target: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let na = parse_neighbor_advert(&na_packet(OTHER_MAC, other_target).unwrap()).unwrap();
        assert_eq!(na_claim(&na, Some(OTHER_MAC), VIP6, OUR_MAC), None);
    }

    #[test]
    fn na_parser_rejects_malformed_and_accepts_padding() {
        let good = na_packet(OTHER_MAC, VIP6).unwrap();
        for len in 0..good.len() {
            assert_eq!(
                parse_neighbor_advert(&good[..len]),
                None,
                "truncated to {len}"
            );
        }
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 14]);
        assert!(parse_neighbor_advert(&padded).is_some());
        let corruptions = [
            (0, 0x40), // IPv4 version
            (6, 17),   // UDP
            (7, 254),  // forwarded by a router
            (40, 135), // a solicitation, not an advertisement
            (41, 1),   // nonzero code
            (65, 0),   // zero-length option
        ];
        for (index, value) in corruptions {
            let mut bad = good.clone();
            bad[index] = value;
            assert_eq!(parse_neighbor_advert(&bad), None, "byte {index} = {value}");
        }
        // An NS is never mistaken for an answer.
        assert_eq!(parse_neighbor_advert(&dad_ns_packet(VIP6).unwrap()), None);
    }

    #[test]
    fn parsers_survive_arbitrary_bytes() {
        // A small deterministic generator; the point is "no panic", not coverage proofs.
        let mut state: u32 = 0x1234_5678;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let template = na_packet(OTHER_MAC, VIP6).unwrap();
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut data: Vec<u8> = template.iter().copied().cycle().take(len).collect();
            for _ in 0..(next() % 4) {
                if !data.is_empty() {
                    let index = next() as usize % data.len();
                    data[index] = next() as u8;
                }
            }
            let _ = parse_arp(&data);
            let _ = parse_neighbor_advert(&data);
            let _ = find_target_lla(&data);
        }
    }

    #[test]
    fn mac_formatting_and_parsing() {
        let mac = [0xaa, 0xbb, 0x0c, 0x0d, 0xee, 0x0f];
        assert_eq!(format_mac(&mac), "aa:bb:0c:0d:ee:0f");
        assert_eq!(parse_mac("aa:bb:0c:0d:ee:0f"), Some(mac));
        assert_eq!(parse_mac("AA:BB:0C:0D:EE:0F"), Some(mac));
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "a:bb:cc:dd:ee:ff",
            "gg:bb:cc:dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }

    // ---- input validation (runs before any socket is opened, so no root needed) --------

    #[test]
    fn invalid_inputs_are_errors_not_panics() {
        let good = Link {
            ifindex: 1,
            mac: OUR_MAC,
        };
        let bad_links = [
            Link {
                ifindex: 0,
                mac: OUR_MAC,
            },
            Link {
                ifindex: u32::MAX,
                mac: OUR_MAC,
            },
            Link {
                ifindex: 1,
                mac: ZERO_MAC,
            },
            Link {
                ifindex: 1,
                mac: BROADCAST_MAC,
            },
            Link {
                ifindex: 1,
                mac: ALL_NODES_MAC,
            },
        ];
        let second = Duration::from_secs(1);
        let invalid = |result: io::Result<()>| {
            assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        };
        for link in bad_links {
            invalid(announce_ipv4(link, VIP4, ArpMode::Both, None));
            invalid(announce_ipv6(link, VIP6));
            invalid(probe_duplicate(link, VIP4.into(), second).map(drop));
            invalid(resolve_ipv4(link, VIP4, VIP4, second).map(drop));
        }
        for ip in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
        ] {
            invalid(announce_ipv4(good, ip, ArpMode::Request, None));
            invalid(probe_duplicate(good, ip.into(), second).map(drop));
            invalid(resolve_ipv4(good, VIP4, ip, second).map(drop));
        }
        invalid(resolve_ipv4(good, Ipv4Addr::BROADCAST, VIP4, second).map(drop));
        invalid(announce_ipv4(good, VIP4, ArpMode::Reply, Some(ZERO_MAC)));
        for ip in [Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST, ALL_NODES] {
            invalid(announce_ipv6(good, ip));
            invalid(probe_duplicate(good, ip.into(), second).map(drop));
        }
    }

    // ---- root only: a real exchange between two ends of a veth pair ---------------------

    /// Set in the child process that runs inside its own network namespace.
    const INSIDE_NETNS: &str = "FERROHA_PACKET_TEST_IN_NETNS";

    /// The harness name of `test_fn` in this module, e.g. "sys::packet::tests::veth".
    fn this_test_name(test_fn: &str) -> String {
        let module = module_path!();
        let without_crate = module.split_once("::").map_or(module, |(_, rest)| rest);
        format!("{without_crate}::{test_fn}")
    }

    #[test]
    #[ignore = "needs root"]
    fn veth_pair_in_private_netns() {
        if std::env::var_os(INSIDE_NETNS).is_none() {
            // Re-run just this test in a fresh network namespace, which the kernel tears down
            // (veth pair included) when the child exits.
            let status = std::process::Command::new("unshare")
                .args(["--net", "--"])
                .arg(std::env::current_exe().unwrap())
                .args(["--exact", &this_test_name("veth_pair_in_private_netns")])
                .args(["--include-ignored", "--nocapture", "--test-threads=1"])
                .env(INSIDE_NETNS, "1")
                .status()
                .expect("run unshare");
            assert!(
                status.success(),
                "test inside the network namespace failed: {status}"
            );
            return;
        }
        netns::run_all();
    }

    mod netns {
        use super::super::*;
        use std::process::Command;
        use std::thread::sleep;

        const PROBER: &str = "a0";
        const OWNER: &str = "a1";
        const OWNER_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);
        const FREE_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 2);
        const ANNOUNCED_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 9);
        const OWNER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 1);
        const FREE_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 2);
        const ANNOUNCED_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 9);
        const STALE_MAC: &str = "02:00:00:00:00:99";

        fn run(program: &str, args: &[&str]) -> String {
            let output = Command::new(program).args(args).output().unwrap();
            assert!(
                output.status.success(),
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        }

        fn sysctl(path: &str, value: &str) {
            std::fs::write(format!("/proc/sys/net/{path}"), value).unwrap();
        }

        /// Index and MAC from `ip -o link show dev NAME`.
        fn link_of(name: &str) -> Link {
            let line = run("ip", &["-o", "link", "show", "dev", name]);
            let ifindex = line.split(':').next().unwrap().trim().parse().unwrap();
            let mac = line.split("link/ether ").nth(1).unwrap();
            let mac = parse_mac(mac.split_whitespace().next().unwrap()).unwrap();
            Link { ifindex, mac }
        }

        fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
            let give_up = Instant::now() + Duration::from_secs(5);
            while !condition() {
                assert!(Instant::now() < give_up, "timed out waiting for {what}");
                sleep(Duration::from_millis(20));
            }
        }

        fn neighbour_mac(ip: IpAddr) -> Option<Mac> {
            let out = run("ip", &["neigh", "show", &ip.to_string(), "dev", OWNER]);
            let mac = out.split("lladdr ").nth(1)?.split_whitespace().next()?;
            parse_mac(mac)
        }

        fn setup() -> (Link, Link) {
            // New interfaces inherit "default": no DAD, no router solicitations, so the
            // only ND traffic is what the test sends and what the kernel answers.
            sysctl("ipv6/conf/default/accept_dad", "0");
            sysctl("ipv6/conf/default/router_solicitations", "0");
            // Both ends share one namespace; by default Linux would answer ARP for a1's
            // address on a0 as well (weak host model). Make them behave like two hosts.
            sysctl("ipv4/conf/all/arp_ignore", "1");
            run("ip", &["link", "set", "lo", "up"]);
            run(
                "ip",
                &["link", "add", PROBER, "type", "veth", "peer", "name", OWNER],
            );
            // 10 s lock time: a neighbour entry younger than this is only replaced by a
            // packet the kernel recognises as gratuitous, which is what we want to prove.
            sysctl(&format!("ipv4/neigh/{OWNER}/locktime"), "1000");
            run("ip", &["addr", "add", "198.18.5.1/24", "dev", OWNER]);
            run(
                "ip",
                &[
                    "-6",
                    "addr",
                    "add",
                    "2001:db8:5::1/64",
                    "dev",
                    OWNER,
                    "nodad",
                ],
            );
            run("ip", &["link", "set", PROBER, "up"]);
            run("ip", &["link", "set", OWNER, "up"]);
            for name in [PROBER, OWNER] {
                wait_until("carrier", || {
                    run("ip", &["-o", "link", "show", "dev", name]).contains("LOWER_UP")
                });
            }
            (link_of(PROBER), link_of(OWNER))
        }

        /// Collects payloads (with packet type) that `keep` accepts until `count` arrived
        /// or `within` elapsed.
        fn capture(
            socket: &PacketSocket,
            count: usize,
            within: Duration,
            keep: impl Fn(&[u8]) -> bool,
        ) -> Vec<(Vec<u8>, u8, Option<Mac>)> {
            let deadline = Instant::now() + within;
            let mut frames = Vec::new();
            let mut buffer = vec![0u8; RECEIVE_BUFFER_LEN];
            while frames.len() < count {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if !socket.wait_readable(deadline - now).unwrap() {
                    continue;
                }
                if let Some(frame) = socket.receive(&mut buffer).unwrap() {
                    let payload = &buffer[..frame.len];
                    if frame.packet_type != libc::PACKET_OUTGOING && keep(payload) {
                        frames.push((payload.to_vec(), frame.packet_type, frame.source_mac));
                    }
                }
            }
            frames
        }

        pub(super) fn run_all() {
            let (prober, owner) = setup();
            eprintln!(
                "prober {}, owner {}",
                format_mac(&prober.mac),
                format_mac(&owner.mac)
            );
            probes_ipv4(prober, owner);
            probes_ipv6(prober, owner);
            resolves_ipv4(prober, owner);
            announces_ipv4_frames(prober, owner);
            announces_ipv4_accepted_by_kernel(prober);
            announces_ipv6(prober, owner);
            reports_socket_errors(prober);
        }

        fn probes_ipv4(prober: Link, owner: Link) {
            let window = Duration::from_millis(1500);
            let started = Instant::now();
            let found = probe_duplicate(prober, OWNER_IP4.into(), window).unwrap();
            assert_eq!(found, Some(owner.mac));
            assert!(
                started.elapsed() < window,
                "answer should end the probe early"
            );

            let window = Duration::from_millis(300);
            let started = Instant::now();
            assert_eq!(
                probe_duplicate(prober, FREE_IP4.into(), window).unwrap(),
                None
            );
            let elapsed = started.elapsed();
            assert!(elapsed >= window, "returned early: {elapsed:?}");
            assert!(
                elapsed < window + Duration::from_millis(100),
                "overran: {elapsed:?}"
            );

            // Zero window: one probe, no waiting.
            let started = Instant::now();
            assert_eq!(
                probe_duplicate(prober, FREE_IP4.into(), Duration::ZERO).unwrap(),
                None
            );
            assert!(started.elapsed() < Duration::from_millis(50));
            // A window that overflows the clock is an error, not a panic.
            assert!(probe_duplicate(prober, FREE_IP4.into(), Duration::MAX).is_err());

            // The owner itself, probing with its own MAC, hears only itself.
            assert_eq!(
                probe_duplicate(owner, OWNER_IP4.into(), Duration::from_millis(200)).unwrap(),
                None
            );
        }

        fn probes_ipv6(prober: Link, owner: Link) {
            let window = Duration::from_millis(1500);
            let started = Instant::now();
            let found = probe_duplicate(prober, OWNER_IP6.into(), window).unwrap();
            assert_eq!(found, Some(owner.mac));
            assert!(
                started.elapsed() < window,
                "answer should end the probe early"
            );

            let window = Duration::from_millis(300);
            let started = Instant::now();
            assert_eq!(
                probe_duplicate(prober, FREE_IP6.into(), window).unwrap(),
                None
            );
            let elapsed = started.elapsed();
            assert!(elapsed >= window && elapsed < window + Duration::from_millis(100));
        }

        fn resolves_ipv4(prober: Link, owner: Link) {
            let sender = Ipv4Addr::new(198, 18, 5, 200);
            let timeout = Duration::from_secs(1);
            let found = resolve_ipv4(prober, sender, OWNER_IP4, timeout).unwrap();
            assert_eq!(found, Some(owner.mac));
            let found = resolve_ipv4(prober, Ipv4Addr::UNSPECIFIED, OWNER_IP4, timeout).unwrap();
            assert_eq!(found, Some(owner.mac));
            let short = Duration::from_millis(200);
            assert_eq!(resolve_ipv4(prober, sender, FREE_IP4, short).unwrap(), None);
        }

        /// What goes on the wire, seen from the other end.
        fn announces_ipv4_frames(prober: Link, owner: Link) {
            let listener = PacketSocket::open_listener(&owner, ETHERTYPE_ARP, None).unwrap();
            announce_ipv4(prober, ANNOUNCED_IP4, ArpMode::Both, Some(owner.mac)).unwrap();
            let frames = capture(&listener, 4, Duration::from_secs(1), |payload| {
                parse_arp(payload).is_some_and(|arp| arp.sender_ip == ANNOUNCED_IP4)
            });
            let expected = arp_announcements(prober.mac, ANNOUNCED_IP4, ArpMode::Both);
            let payloads: Vec<&[u8]> = frames.iter().map(|(p, _, _)| &p[..ARP_LEN]).collect();
            let wanted: Vec<&[u8]> = expected.iter().chain(&expected).map(|f| &f[..]).collect();
            assert_eq!(payloads, wanted);
            let types: Vec<u8> = frames.iter().map(|(_, t, _)| *t).collect();
            let (broadcast, host) = (libc::PACKET_BROADCAST, libc::PACKET_HOST);
            assert_eq!(types, [broadcast, broadcast, host, host]);
            assert!(
                frames
                    .iter()
                    .all(|(_, _, source)| *source == Some(prober.mac))
            );
        }

        /// The owner's kernel overrides a fresh (locked) neighbour entry only for packets
        /// it considers gratuitous, so this checks each mode is understood as one.
        fn announces_ipv4_accepted_by_kernel(prober: Link) {
            let ip = IpAddr::V4(ANNOUNCED_IP4);
            for mode in [ArpMode::Request, ArpMode::Reply, ArpMode::Both] {
                let target = ip.to_string();
                let args = [
                    "neigh", "replace", &target, "lladdr", STALE_MAC, "dev", OWNER,
                ];
                run("ip", &[&args[..], &["nud", "stale"]].concat());
                assert_eq!(neighbour_mac(ip), parse_mac(STALE_MAC));
                announce_ipv4(prober, ANNOUNCED_IP4, mode, None).unwrap();
                wait_until(&format!("{mode:?} to update the neighbour entry"), || {
                    neighbour_mac(ip) == Some(prober.mac)
                });
            }
        }

        fn announces_ipv6(prober: Link, owner: Link) {
            // Seen on the wire: exactly our NA, multicast, from the prober's MAC.
            let filter = neighbor_advert_filter();
            let listener =
                PacketSocket::open_listener(&owner, ETHERTYPE_IPV6, Some(&filter)).unwrap();
            listener.join_multicast(ALL_NODES_MAC).unwrap();
            announce_ipv6(prober, ANNOUNCED_IP6).unwrap();
            let frames = capture(&listener, 1, Duration::from_secs(1), |payload| {
                parse_neighbor_advert(payload).is_some_and(|na| na.target == ANNOUNCED_IP6)
            });
            assert_eq!(frames.len(), 1, "NA not seen on the owner side");
            let (payload, packet_type, source) = &frames[0];
            assert_eq!(*payload, na_packet(prober.mac, ANNOUNCED_IP6).unwrap());
            assert_eq!(*packet_type, libc::PACKET_MULTICAST);
            assert_eq!(*source, Some(prober.mac));

            // Accepted by the owner's kernel (checksum, hop limit, Override flag): it replaces
            // the link-layer address of an existing entry.
            let ip = IpAddr::V6(ANNOUNCED_IP6);
            let target = ip.to_string();
            let args = [
                "-6", "neigh", "replace", &target, "lladdr", STALE_MAC, "dev", OWNER,
            ];
            run("ip", &[&args[..], &["nud", "stale"]].concat());
            assert_eq!(neighbour_mac(ip), parse_mac(STALE_MAC));
            announce_ipv6(prober, ANNOUNCED_IP6).unwrap();
            wait_until("NA to update the neighbour entry", || {
                neighbour_mac(ip) == Some(prober.mac)
            });
        }

        fn reports_socket_errors(prober: Link) {
            let missing = Link {
                ifindex: 999_999,
                mac: prober.mac,
            };
            assert!(announce_ipv4(missing, ANNOUNCED_IP4, ArpMode::Both, None).is_err());
            assert!(announce_ipv6(missing, ANNOUNCED_IP6).is_err());
            assert!(probe_duplicate(missing, FREE_IP4.into(), Duration::ZERO).is_err());
            run("ip", &["link", "set", PROBER, "down"]);
            assert!(announce_ipv4(prober, ANNOUNCED_IP4, ArpMode::Both, None).is_err());
            assert!(probe_duplicate(prober, FREE_IP6.into(), Duration::ZERO).is_err());
        }
    }
}
