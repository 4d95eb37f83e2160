//! Ping nodes (`ping`, `ping_group` of ha.cf): ICMP echo to routers or other always-on
//! addresses, so that each node knows its own connectivity and the cluster can give the group
//! to the node that sees more of them (Heartbeat's ipfail), and a node cut off from
//! everything stops its group.
//!
//! One raw ICMPv4 socket (root) sends an echo to every address each keepalive and reads the
//! replies without blocking whenever the daemon's loop wakes. An entry (a `ping` address, or a
//! `ping_group` of which any member counts) is reachable while a reply came within `deadping`
//! (default deadtime); before its first reply it counts as reachable until `initdead` has passed, as
//! peers do, so that start-up does not look like isolation.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::config::HaCf;
use crate::sys::icmp::IcmpSocket;

/// One counted entry: a `ping` address or a `ping_group`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// How status shows it.
    pub name: String,
    /// Its addresses (one for `ping`).
    pub addresses: Vec<Ipv4Addr>,
    /// The last reply from any of them.
    pub last_reply: Option<Instant>,
}

/// What this node knows of its ping nodes: pure state, fed with the replies the socket
/// ([`PingSocket`]) reads, so that the controller decides on it without I/O.
#[derive(Debug, Clone)]
pub struct PingTable {
    /// Entries in ha.cf order.
    pub entries: Vec<Entry>,
    started: Instant,
    deadping: Duration,
    initdead: Duration,
}

/// The raw ICMP socket of the ping nodes.
#[derive(Debug)]
pub struct PingSocket {
    socket: IcmpSocket,
    ident: u16,
    seq: u16,
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v4(addr: &IpAddr) -> io::Result<Ipv4Addr> {
    match addr {
        IpAddr::V4(a) => Ok(*a),
        IpAddr::V6(a) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("ping node {a}: IPv6 ping nodes are not supported yet"),
        )),
    }
}

impl PingTable {
    /// The ping nodes of `cfg`; None when it has none.
    pub fn new(cfg: &HaCf, now: Instant) -> io::Result<Option<PingTable>> {
        let mut entries = vec![];
        for a in &cfg.ping {
            entries.push(Entry {
                name: a.to_string(),
                addresses: vec![v4(a)?],
                last_reply: None,
            });
        }
        for (name, members) in &cfg.ping_groups {
            entries.push(Entry {
                name: name.clone(),
                addresses: members.iter().map(v4).collect::<io::Result<_>>()?,
                last_reply: None,
            });
        }
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(PingTable {
            entries,
            started: now,
            deadping: cfg.deadping,
            initdead: cfg.initdead,
        }))
    }

    /// Every address to ping.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.entries
            .iter()
            .flat_map(|e| e.addresses.iter().copied())
    }

    /// An echo reply from `source` arrived at `now`.
    pub fn reply(&mut self, source: Ipv4Addr, now: Instant) {
        for entry in &mut self.entries {
            if entry.addresses.contains(&source) {
                entry.last_reply = Some(now);
            }
        }
    }

    /// This node did not run for `pause`: replies could not be read, and the pings due in it
    /// were not sent; as for heartbeats ([`Membership::excuse`](super::membership::Membership::excuse)),
    /// that time does not count against the ping nodes.
    pub fn excuse(&mut self, pause: Duration, now: Instant) {
        let forward = |t: &mut Instant| *t = (*t + pause).min(now);
        forward(&mut self.started);
        for entry in &mut self.entries {
            if let Some(t) = entry.last_reply.as_mut() {
                forward(t);
            }
        }
    }

    /// Whether an entry counts as reachable now.
    pub fn reachable(&self, entry: &Entry, now: Instant) -> bool {
        match entry.last_reply {
            Some(t) => now.saturating_duration_since(t) <= self.deadping,
            None => now.saturating_duration_since(self.started) <= self.initdead,
        }
    }

    /// How many entries are reachable.
    pub fn count(&self, now: Instant) -> u32 {
        self.entries
            .iter()
            .filter(|e| self.reachable(e, now))
            .count() as u32
    }
}

impl PingSocket {
    /// The raw ICMP socket (root).
    pub fn open() -> io::Result<PingSocket> {
        let socket = IcmpSocket::open().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("ping nodes need a raw ICMP socket (root): {e}"),
            )
        })?;
        Ok(PingSocket {
            socket,
            ident: (std::process::id() & 0xffff) as u16,
            seq: 0,
        })
    }

    /// Sends one echo request to every address (errors, e.g. no route, count as silence).
    pub fn send(&mut self, addresses: impl Iterator<Item = Ipv4Addr>) {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = [0u8; 16];
        packet[0] = 8; // echo request
        packet[4..6].copy_from_slice(&self.ident.to_be_bytes());
        packet[6..8].copy_from_slice(&self.seq.to_be_bytes());
        packet[8..16].copy_from_slice(b"hb-mon\0\0");
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        for a in addresses {
            // No route, a full buffer: silence, which is what the reply count will say.
            let _ = self.socket.send_to(&packet, a);
        }
    }

    /// The sources of the echo replies to us that arrived (never blocks).
    pub fn receive(&mut self) -> Vec<Ipv4Addr> {
        let mut buf = [0u8; 1500];
        let mut sources = vec![];
        for _ in 0..256 {
            let Ok(Some((n, from))) = self.socket.recv_from(&mut buf) else {
                break;
            };
            let packet = &buf[..n];
            // A raw socket sees the IP header first.
            let header = usize::from(packet[0] & 0x0f) * 4;
            let Some(icmp) = packet.get(header..header + 8) else {
                continue;
            };
            if icmp[0] != 0 || icmp[4..6] != self.ident.to_be_bytes() {
                continue; // not an echo reply to us
            }
            sources.push(from);
        }
        sources
    }

    /// The descriptor, for poll.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum_of_a_known_echo_request() {
        // type 8, code 0, id 1, seq 1, no payload: checksum 0xf7fd.
        let packet = [8u8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(checksum(&packet), 0xf7fd);
    }

    #[test]
    fn a_pause_of_this_node_does_not_make_ping_nodes_unreachable() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut nodes = PingTable {
            entries: vec![Entry {
                name: "198.18.0.254".into(),
                addresses: vec![Ipv4Addr::new(198, 18, 0, 254)],
                last_reply: Some(t0),
            }],
            started: t0,
            deadping: ms(300),
            initdead: ms(1000),
        };
        // Not run for 200 ms until t0 + 350: 150 ms without a reply, not 350.
        nodes.excuse(ms(200), t0 + ms(350));
        assert_eq!(nodes.count(t0 + ms(350)), 1);
        assert_eq!(nodes.count(t0 + ms(500)), 1);
        assert_eq!(nodes.count(t0 + ms(501)), 0);
    }
}
