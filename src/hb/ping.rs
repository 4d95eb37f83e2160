//! Ping nodes (`ping`, `ping6`, `ping_group` of ha.cf): ICMP and ICMPv6 echo to routers or other always-on
//! addresses, so that each node knows its own connectivity and the cluster can give the group
//! to the node that sees more of them (Heartbeat's ipfail), and a node cut off from
//! everything stops its group.
//!
//! One raw ICMPv4 socket and, with `ping6` nodes, one raw ICMPv6 socket (root) send an echo
//! to every address each keepalive and read the replies without blocking whenever the daemon's
//! loop wakes. An entry (a `ping` address, or a
//! `ping_group` of which any member counts) is reachable while a reply came within `deadping`
//! (default deadtime); before its first reply it counts as reachable until `initdead` has passed, as
//! peers do, so that start-up does not look like isolation.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::config::HaCf;
use crate::sys::icmp::{ICMP6_ECHO_REPLY, Icmp6Socket, IcmpSocket};

/// One counted entry: a `ping` address or a `ping_group`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// How status shows it.
    pub name: String,
    /// Its addresses (one for `ping` and `ping6`).
    pub addresses: Vec<IpAddr>,
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

/// The raw ICMP sockets of the ping nodes: ICMPv4 for `ping` and `ping_group`, ICMPv6 for
/// `ping6`, each only when there are nodes of its family.
#[derive(Debug)]
pub struct PingSocket {
    socket: Option<IcmpSocket>,
    socket6: Option<Icmp6Socket>,
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

impl PingTable {
    /// The ping nodes of `cfg`; None when it has none.
    pub fn new(cfg: &HaCf, now: Instant) -> io::Result<Option<PingTable>> {
        let mut entries = vec![];
        for a in &cfg.ping {
            entries.push(Entry {
                name: a.to_string(),
                addresses: vec![*a],
                last_reply: None,
            });
        }
        for (name, members) in &cfg.ping_groups {
            entries.push(Entry {
                name: name.clone(),
                addresses: members.clone(),
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
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.entries
            .iter()
            .flat_map(|e| e.addresses.iter().copied())
    }

    /// An echo reply from `source` arrived at `now`.
    pub fn reply(&mut self, source: IpAddr, now: Instant) {
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
    /// The raw sockets `table`'s addresses need (root).
    pub fn open(table: &PingTable) -> io::Result<PingSocket> {
        let need = |v6: bool| table.addresses().any(|a| a.is_ipv6() == v6);
        let root = |e: io::Error, what: &str| {
            io::Error::new(
                e.kind(),
                format!("ping nodes need a raw {what} socket (root): {e}"),
            )
        };
        let socket = match need(false) {
            true => Some(IcmpSocket::open().map_err(|e| root(e, "ICMP"))?),
            false => None,
        };
        let socket6 = match need(true) {
            true => Some(Icmp6Socket::open().map_err(|e| root(e, "ICMPv6"))?),
            false => None,
        };
        Ok(PingSocket {
            socket,
            socket6,
            ident: (std::process::id() & 0xffff) as u16,
            seq: 0,
        })
    }

    /// Sends one echo request to every address (errors, e.g. no route, count as silence).
    pub fn send(&mut self, addresses: impl Iterator<Item = IpAddr>) {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = [0u8; 16];
        packet[0] = 8; // echo request
        packet[4..6].copy_from_slice(&self.ident.to_be_bytes());
        packet[6..8].copy_from_slice(&self.seq.to_be_bytes());
        packet[8..16].copy_from_slice(b"hb-mon\0\0");
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        // ICMPv6's echo request (type 128) has the same layout; its checksum is the kernel's.
        let mut packet6 = packet;
        packet6[0] = 128;
        packet6[2..4].fill(0);
        // No route, a full buffer: silence, which is what the reply count will say.
        for a in addresses {
            match (a, &self.socket, &self.socket6) {
                (IpAddr::V4(a), Some(socket), _) => {
                    let _ = socket.send_to(&packet, a);
                }
                (IpAddr::V6(a), _, Some(socket)) => {
                    let _ = socket.send_to(&packet6, a);
                }
                _ => {}
            }
        }
    }

    /// The sources of the echo replies to us that arrived (never blocks).
    pub fn receive(&mut self) -> Vec<IpAddr> {
        let mut buf = [0u8; 1500];
        let mut sources = vec![];
        if let Some(socket) = &self.socket {
            for _ in 0..256 {
                let Ok(Some((n, from))) = socket.recv_from(&mut buf) else {
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
                sources.push(IpAddr::V4(from));
            }
        }
        if let Some(socket) = &self.socket6 {
            for _ in 0..256 {
                let Ok(Some((n, from))) = socket.recv_from(&mut buf) else {
                    break;
                };
                // An ICMPv6 socket sees the message alone, no IPv6 header.
                let Some(icmp) = buf[..n].get(..8) else {
                    continue;
                };
                if icmp[0] != ICMP6_ECHO_REPLY || icmp[4..6] != self.ident.to_be_bytes() {
                    continue; // not an echo reply to us
                }
                sources.push(IpAddr::V6(from));
            }
        }
        sources
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
                addresses: vec![IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 254))],
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
