//! The heartbeat media of `ha.cf`. UDP: one socket per (interface, port), bound to the
//! interface (SO_BINDTODEVICE) so that each medium's traffic, and its health, stays its own;
//! `ucast` and `ucast6` send to the peer, `bcast` to the interface's broadcast, `mcast` and
//! `mcast6` to the group on the interface. IPv6 media have sockets of their own (IPv6 only),
//! named `IFACE:PORT` as IPv4 ones are, or `IFACE:PORT/ipv6` beside an IPv4 medium of that
//! name. Serial: the device in raw mode at `baud`, the same messages back to back on the byte
//! stream, found again by their framing ([`proto::framed_len`](super::proto::framed_len)).
//!
//! Against a flood, each UDP socket has a kernel filter that admits only datagrams that
//! start as a heartbeat does (`###\n`) from where heartbeats can come: the `ucast` peers'
//! addresses; the interface's networks that hold the `ucast6` peers (an IPv6 node sends from
//! any of its addresses there, its VIP included); for `bcast` and link-local `mcast` and
//! `mcast6` (ttl or hops 1) the interface's own networks, for IPv6 its link-local one too.
//! Routed multicast (above 1) is filtered on the start marker alone. Source ports are not
//! filtered: Heartbeat sends from an ephemeral port. The receive buffer holds several
//! deadtimes of heartbeats, and the kernel's drop count comes with each datagram.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use super::config::{HaCf, Medium};
pub use crate::sys::udp::Received;
use crate::sys::udp::{Ipv4Net, Ipv6Net};
use crate::sys::{serial, udp};

/// A UDP medium's receive buffer: at 5 ms keepalives a loop that reads once per keepalive
/// needs room for what arrives meanwhile, and a burst of admitted junk must not push the
/// real heartbeats out (the kernel counts against it about 1 KiB per small datagram).
const RECEIVE_BUFFER: usize = 4 << 20;

/// Where heartbeats on one UDP socket may come from.
#[derive(Debug)]
enum Sources {
    /// These IPv4 networks only.
    Only(Vec<Ipv4Net>),
    /// These IPv6 networks only.
    Only6(Vec<Ipv6Net>),
    /// Anywhere (routed multicast).
    Any,
}

impl Sources {
    fn add(&mut self, more: impl IntoIterator<Item = Ipv4Net>) {
        if let Sources::Only(nets) = self {
            for net in more {
                if !nets.contains(&net) {
                    nets.push(net);
                }
            }
        }
    }

    fn add6(&mut self, more: impl IntoIterator<Item = Ipv6Net>) {
        if let Sources::Only6(nets) = self {
            for net in more {
                if !nets.contains(&net) {
                    nets.push(net);
                }
            }
        }
    }
}

/// One medium: a UDP socket (an interface and port, and where heartbeats go from it) or a
/// serial line.
#[derive(Debug)]
pub struct MediumSocket {
    /// `eth0:694` or `/dev/ttyS0`: how the medium is named in status and logs.
    pub name: String,
    /// The socket.
    pub transport: Transport,
    /// What the socket's filter admits, for the log (`198.18.1.2/32`, `any source`).
    pub admits: String,
}

/// How a medium carries messages.
#[derive(Debug)]
pub enum Transport {
    /// UDP datagrams, one message each.
    Udp {
        /// The socket.
        socket: UdpSocket,
        /// Destinations of every heartbeat sent on this medium.
        targets: Vec<SocketAddr>,
    },
    /// A serial line: messages back to back.
    Serial {
        /// The open device (raw, non-blocking).
        port: std::fs::File,
        /// Bytes read and not yet framed into a message.
        pending: Vec<u8>,
    },
}

impl MediumSocket {
    /// The descriptor to poll.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        match &self.transport {
            Transport::Udp { socket, .. } => socket.as_fd(),
            Transport::Serial { port, .. } => port.as_fd(),
        }
    }

    /// The raw descriptor.
    pub fn fd(&self) -> std::os::fd::RawFd {
        match &self.transport {
            Transport::Udp { socket, .. } => socket.as_raw_fd(),
            Transport::Serial { port, .. } => port.as_raw_fd(),
        }
    }

    /// Sends one message to every destination.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        match &self.transport {
            Transport::Udp { socket, targets } => {
                for target in targets {
                    socket.send_to(bytes, target)?;
                }
                Ok(())
            }
            Transport::Serial { port, .. } => {
                use std::io::Write as _;
                // A full line buffer (nobody reads at the other end) drops the heartbeat:
                // that is what a dead peer looks like, not an error to log every keepalive.
                match (&*port).write(bytes) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Reads one message without blocking (`Ok(None)`: none complete yet).
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        match &mut self.transport {
            Transport::Udp { socket, .. } => udp::recv_stamped(socket, buf),
            Transport::Serial { port, pending } => {
                use std::io::Read as _;
                let mut chunk = [0u8; 4096];
                loop {
                    match port.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => pending.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // EIO: the other end of the line is gone (a pty's peer closed).
                        Err(e) if serial::is_hangup(&e) => break,
                        Err(e) => return Err(e),
                    }
                }
                loop {
                    match super::proto::framed_len(pending) {
                        Ok(Some(len)) => {
                            let copied = len.min(buf.len());
                            buf[..copied].copy_from_slice(&pending[..copied]);
                            pending.drain(..len);
                            return Ok(Some(Received {
                                len,
                                arrived: None,
                                kernel_dropped: None,
                            }));
                        }
                        Ok(None) => return Ok(None),
                        // Not a message here (line noise, a message cut by a full buffer):
                        // resynchronise at the next start marker.
                        Err(_) => {
                            let next = pending
                                .windows(4)
                                .skip(1)
                                .position(|w| w == b"###\n")
                                .map_or(pending.len().saturating_sub(3), |p| p + 1);
                            pending.drain(..next);
                            if pending.is_empty() {
                                return Ok(None);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every medium of the node.
#[derive(Debug)]
pub struct MediaSet {
    /// Sockets in `ha.cf` order.
    pub sockets: Vec<MediumSocket>,
}

/// Where an IPv6 medium sends: `addr` on `index` (the interface), which a link-local
/// address or a link-local group needs to say.
fn target_v6(addr: Ipv6Addr, port: u16, index: u32) -> SocketAddrV6 {
    let link_scoped = addr.segments()[0] & 0xffc0 == 0xfe80
        || (addr.is_multicast() && addr.octets()[1] & 0x0f <= 2);
    SocketAddrV6::new(addr, port, 0, if link_scoped { index } else { 0 })
}

impl MediaSet {
    /// Opens every medium of `cfg`; serial media are refused.
    pub fn open(cfg: &HaCf) -> io::Result<MediaSet> {
        let mut set = MediaSet { sockets: vec![] };
        // Where each socket's heartbeats may come from, and whether it is IPv6, by socket.
        let mut sources: Vec<Sources> = vec![];
        let mut ipv6: Vec<bool> = vec![];
        for medium in &cfg.media {
            let (iface, port, target): (&String, u16, SocketAddr) = match medium {
                Medium::Ucast { iface, peer } => (
                    iface,
                    cfg.udpport,
                    match peer {
                        IpAddr::V4(peer) => SocketAddr::V4(SocketAddrV4::new(*peer, cfg.udpport)),
                        IpAddr::V6(peer) => SocketAddr::V6(target_v6(
                            *peer,
                            cfg.udpport,
                            udp::interface_index(iface)?,
                        )),
                    },
                ),
                Medium::Bcast { iface } => (
                    iface,
                    cfg.udpport,
                    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, cfg.udpport)),
                ),
                Medium::Mcast {
                    iface, group, port, ..
                } => (
                    iface,
                    *port,
                    match group {
                        IpAddr::V4(group) => SocketAddr::V4(SocketAddrV4::new(*group, *port)),
                        IpAddr::V6(group) => {
                            SocketAddr::V6(target_v6(*group, *port, udp::interface_index(iface)?))
                        }
                    },
                ),
                Medium::Serial { device } => {
                    set.sockets.push(MediumSocket {
                        admits: "the serial line".into(),
                        name: device.display().to_string(),
                        transport: Transport::Serial {
                            port: serial::open_raw(device, cfg.baud)?,
                            pending: Vec::new(),
                        },
                    });
                    sources.push(Sources::Any);
                    ipv6.push(false);
                    continue;
                }
            };
            let v6 = target.is_ipv6();
            let name = format!("{iface}:{port}");
            let existing = set
                .sockets
                .iter()
                .zip(&ipv6)
                .position(|(s, six)| s.name == name && *six == v6);
            let index = match existing {
                Some(i) => i,
                None => {
                    let socket = if v6 {
                        udp::bind_to_interface_v6(iface, port)?
                    } else {
                        udp::bind_to_interface(iface, port)?
                    };
                    set.sockets.push(MediumSocket {
                        name: name.clone(),
                        transport: Transport::Udp {
                            socket,
                            targets: vec![],
                        },
                        admits: String::new(),
                    });
                    sources.push(if v6 {
                        Sources::Only6(vec![])
                    } else {
                        Sources::Only(vec![])
                    });
                    ipv6.push(v6);
                    set.sockets.len() - 1
                }
            };
            let from = &mut sources[index];
            match (medium, target) {
                (Medium::Ucast { .. }, SocketAddr::V4(t)) => from.add([Ipv4Net {
                    addr: *t.ip(),
                    prefix: 32,
                }]),
                // An IPv6 peer on this link sends from whichever of its addresses there the
                // kernel prefers, and among equals that is the newest: a VIP added in the
                // subnet becomes the source of its heartbeats. So the link's network that
                // holds the peer is admitted; a peer on no network of the interface (routed)
                // by its address alone.
                (Medium::Ucast { .. }, SocketAddr::V6(t)) => {
                    let link: Vec<Ipv6Net> = udp::interface_networks_v6(iface)?
                        .into_iter()
                        .filter(|net| net.prefix > 0 && net.contains(*t.ip()))
                        .collect();
                    if link.is_empty() {
                        from.add6([Ipv6Net {
                            addr: *t.ip(),
                            prefix: 128,
                        }])
                    } else {
                        from.add6(link)
                    }
                }
                (Medium::Mcast { ttl, .. }, _) if *ttl > 1 => *from = Sources::Any,
                (_, SocketAddr::V6(_)) => from.add6(udp::interface_networks_v6(iface)?),
                _ => from.add(udp::interface_networks(iface)?),
            }
            let Transport::Udp { socket, targets } = &mut set.sockets[index].transport else {
                unreachable!("UDP media are looked up by their interface:port name");
            };
            if let Medium::Mcast {
                group, ttl, looped, ..
            } = medium
            {
                match group {
                    IpAddr::V4(group) => udp::join_multicast(socket, *group, iface, *ttl, *looped)?,
                    IpAddr::V6(group) => {
                        udp::join_multicast_v6(socket, *group, iface, *ttl, *looped)?
                    }
                }
            }
            targets.push(target);
        }
        // An IPv6 socket beside an IPv4 one of the same interface and port: told apart in
        // status and logs.
        let v4_names: Vec<String> = set
            .sockets
            .iter()
            .zip(&ipv6)
            .filter(|(_, six)| !**six)
            .map(|(s, _)| s.name.clone())
            .collect();
        for (medium, six) in set.sockets.iter_mut().zip(&ipv6) {
            if *six && v4_names.contains(&medium.name) {
                medium.name.push_str("/ipv6");
            }
        }
        for ((medium, from), six) in set.sockets.iter_mut().zip(&sources).zip(&ipv6) {
            let Transport::Udp { socket, .. } = &medium.transport else {
                continue;
            };
            let admits = &mut medium.admits;
            // No address on a broadcast interface yet, a routed group, or more peers than one
            // filter names: heartbeats are still told by their start.
            let nets: Vec<String> = match from {
                Sources::Only(nets) if nets.len() <= udp::MAX_FILTER_SOURCES => {
                    udp::admit_only(socket, *b"###\n", nets)?;
                    nets.iter().map(Ipv4Net::to_string).collect()
                }
                Sources::Only6(nets) if nets.len() <= udp::MAX_FILTER_SOURCES_V6 => {
                    udp::admit_only_v6(socket, *b"###\n", nets)?;
                    nets.iter().map(Ipv6Net::to_string).collect()
                }
                _ if *six => {
                    udp::admit_only_v6(socket, *b"###\n", &[])?;
                    vec![]
                }
                _ => {
                    udp::admit_only(socket, *b"###\n", &[])?;
                    vec![]
                }
            };
            *admits = if nets.is_empty() {
                "heartbeats from any source".into()
            } else {
                format!("heartbeats from {}", nets.join(", "))
            };
            // Without CAP_NET_ADMIN the buffer stays at what rmem_max allows: still a buffer.
            let _ = udp::set_receive_buffer(socket, RECEIVE_BUFFER);
        }
        Ok(set)
    }

    /// Another handle on every medium, for sending from another thread (the stand-in sends
    /// while the loop reads).
    pub fn try_clone(&self) -> io::Result<MediaSet> {
        let sockets = self
            .sockets
            .iter()
            .map(|m| {
                let transport = match &m.transport {
                    Transport::Udp { socket, targets } => Transport::Udp {
                        socket: socket.try_clone()?,
                        targets: targets.clone(),
                    },
                    Transport::Serial { port, .. } => Transport::Serial {
                        port: port.try_clone()?,
                        pending: vec![],
                    },
                };
                Ok(MediumSocket {
                    admits: m.admits.clone(),
                    name: m.name.clone(),
                    transport,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(MediaSet { sockets })
    }

    /// Sends `bytes` to every target of every medium; the errors, by medium.
    pub fn send_all(&self, bytes: &[u8]) -> Vec<(String, io::Error)> {
        let mut errors = vec![];
        for medium in &self.sockets {
            if let Err(e) = medium.send(bytes) {
                errors.push((medium.name.clone(), e));
            }
        }
        errors
    }
}
