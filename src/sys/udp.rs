//! UDP sockets for heartbeat media, IPv4 or IPv6: bound to one interface, stamped on arrival,
//! joined to a multicast group on that interface, with a kernel filter on what may queue and a
//! count of what the kernel dropped.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn os<T>(what: &str, result: libc::c_int, value: T) -> io::Result<T> {
    if result < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(value)
    }
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised T and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    os(what, rc, ())
}

/// The index of interface `iface`; `NotFound` when there is none of that name.
pub fn interface_index(iface: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {iface} does not exist"),
        ))
    } else {
        Ok(index)
    }
}

/// A non-blocking IPv4 UDP socket on `port` of `iface` only (SO_BINDTODEVICE), that may send
/// to broadcast addresses, shares the port with the sockets of other interfaces
/// (SO_REUSEADDR), and has each datagram stamped with its arrival time (SO_TIMESTAMPNS).
pub fn bind_to_interface(iface: &str, port: u16) -> io::Result<UdpSocket> {
    let fd = interface_socket(libc::AF_INET, iface)?;
    let one: libc::c_int = 1;
    setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_BROADCAST,
        &one,
        "SO_BROADCAST",
    )?;
    let low_delay: libc::c_int = libc::IPTOS_LOWDELAY as libc::c_int;
    // Heartbeat sets TOS low-delay too; a failure here costs nothing.
    let _ = setsockopt(&fd, libc::IPPROTO_IP, libc::IP_TOS, &low_delay, "IP_TOS");
    let addr = sockaddr(Ipv4Addr::UNSPECIFIED, port);
    // SAFETY: a complete sockaddr_in and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    os(&format!("binding udp/{port} on {iface}"), rc, ())?;
    Ok(UdpSocket::from(fd))
}

/// As [`bind_to_interface`], an IPv6 UDP socket (`ucast6`, `mcast6`) on `[::]:port` of
/// `iface` only. IPv6 only (IPV6_V6ONLY), so that it neither takes IPv4 heartbeats from
/// an IPv4 medium on the same port nor needs that medium's filter.
pub fn bind_to_interface_v6(iface: &str, port: u16) -> io::Result<UdpSocket> {
    let fd = interface_socket(libc::AF_INET6, iface)?;
    let one: libc::c_int = 1;
    setsockopt(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_V6ONLY,
        &one,
        "IPV6_V6ONLY",
    )?;
    // The traffic class of IPv4's low-delay TOS, as for IPv4; a failure costs nothing.
    let low_delay: libc::c_int = libc::IPTOS_LOWDELAY as libc::c_int;
    let _ = setsockopt(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_TCLASS,
        &low_delay,
        "IPV6_TCLASS",
    );
    // SAFETY: a sockaddr_in6 is plain data; all zeroes is [::]:0.
    let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    addr.sin6_port = port.to_be();
    // SAFETY: a complete sockaddr_in6 and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    os(&format!("binding udp6/{port} on {iface}"), rc, ())?;
    Ok(UdpSocket::from(fd))
}

/// A non-blocking UDP socket of `family` (not yet bound) on `iface` only, sharing its port
/// with other interfaces' sockets, with arrival stamps and drop counts.
fn interface_socket(family: libc::c_int, iface: &str) -> io::Result<OwnedFd> {
    interface_index(iface)?;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    os("socket", raw, ())?;
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        &one,
        "SO_REUSEADDR",
    )?;
    let name = iface.as_bytes();
    // SAFETY: the name's bytes and length.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    os(&format!("binding to {iface}"), rc, ())?;
    // A loop that reads its sockets only when it wakes anyway (short keepalives) still knows
    // when a heartbeat came.
    setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
        &one,
        "SO_TIMESTAMPNS",
    )?;
    // With each datagram, how many the socket has dropped so far (filtered out, or no room
    // in the receive buffer): heartbeats lost in the kernel show in status.
    setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_RXQ_OVFL,
        &one,
        "SO_RXQ_OVFL",
    )?;
    Ok(fd)
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Joins `group` on `iface` and sends multicast out of `iface`, with `ttl` and `looped`
/// (whether our own datagrams come back to us).
pub fn join_multicast(
    socket: &UdpSocket,
    group: Ipv4Addr,
    iface: &str,
    ttl: u8,
    looped: bool,
) -> io::Result<()> {
    let request = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(group).to_be(),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: interface_index(iface)? as libc::c_int,
    };
    setsockopt(
        socket,
        libc::IPPROTO_IP,
        libc::IP_ADD_MEMBERSHIP,
        &request,
        "joining the group",
    )?;
    setsockopt(
        socket,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &request,
        "IP_MULTICAST_IF",
    )?;
    socket.set_multicast_ttl_v4(u32::from(ttl))?;
    socket.set_multicast_loop_v4(looped)
}

/// Joins IPv6 `group` on `iface` and sends multicast out of `iface` with hop limit `hops` and
/// `looped` (whether our own datagrams come back to us).
pub fn join_multicast_v6(
    socket: &UdpSocket,
    group: Ipv6Addr,
    iface: &str,
    hops: u8,
    looped: bool,
) -> io::Result<()> {
    let index = interface_index(iface)?;
    let request = libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: group.octets(),
        },
        ipv6mr_interface: index,
    };
    setsockopt(
        socket,
        libc::IPPROTO_IPV6,
        libc::IPV6_ADD_MEMBERSHIP,
        &request,
        "joining the group",
    )?;
    let index = index as libc::c_int;
    setsockopt(
        socket,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        &index,
        "IPV6_MULTICAST_IF",
    )?;
    let hops = libc::c_int::from(hops);
    setsockopt(
        socket,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        &hops,
        "IPV6_MULTICAST_HOPS",
    )?;
    socket.set_multicast_loop_v6(looped)
}

/// One datagram from [`recv_stamped`]: its length and the kernel's arrival time (wall clock).
#[derive(Debug)]
pub struct Received {
    /// The datagram's length: above the buffer's when it was cut.
    pub len: usize,
    /// When the kernel received it (`SO_TIMESTAMPNS`), if it said.
    pub arrived: Option<SystemTime>,
    /// How many datagrams the socket had dropped when this one was queued (`SO_RXQ_OVFL`;
    /// the kernel sends it once there was a drop): refused by the filter or no room.
    pub kernel_dropped: Option<u32>,
}

/// Reads one datagram without blocking, with its arrival stamp. `Ok(None)`: nothing queued.
/// A datagram longer than `buf` is cut to the buffer and reported with its full length
/// (MSG_TRUNC), so the caller can count it as too large.
pub fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<Received>> {
    // Room for a timespec and a drop count control message.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the fields set point at live local buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg on our socket with the buffers described above.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut msg, libc::MSG_TRUNC) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let mut arrived = None;
    let mut kernel_dropped = None;
    // SAFETY: walking the control buffer the kernel filled, with the libc CMSG macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                arrived = Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            } else if (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SO_RXQ_OVFL
            {
                kernel_dropped = Some(std::ptr::read_unaligned(CMSG_DATA_U32(cmsg)));
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok(Some(Received {
        len: n as usize,
        arrived,
        kernel_dropped,
    }))
}

#[allow(non_snake_case)]
unsafe fn CMSG_DATA_U32(cmsg: *const libc::cmsghdr) -> *const u32 {
    // SAFETY: the caller's cmsg is one the kernel filled.
    unsafe { libc::CMSG_DATA(cmsg).cast() }
}

/// Sets the socket's receive buffer to `bytes`, past the system's `rmem_max` where the
/// process may (SO_RCVBUFFORCE, CAP_NET_ADMIN), else as far as it allows; the size granted.
pub fn set_receive_buffer(socket: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let size = bytes.min(i32::MAX as usize / 2) as libc::c_int;
    if setsockopt(
        socket,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &size,
        "SO_RCVBUFFORCE",
    )
    .is_err()
    {
        setsockopt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size,
            "SO_RCVBUF",
        )?;
    }
    let mut granted: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int and its length, as SO_RCVBUF reads.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut granted).cast(),
            &raw mut len,
        )
    };
    // The kernel reports twice what it grants for data (the rest is its bookkeeping).
    os("SO_RCVBUF", rc, granted.max(0) as usize / 2)
}

/// An IPv4 network: an address and how many leading bits of it count (32: one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The address (bits past the prefix are ignored).
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl Ipv4Net {
    fn mask(self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The IPv4 networks of `iface`'s addresses (`198.18.1.0/24` for `198.18.1.1/24`).
pub fn interface_networks(iface: &str) -> io::Result<Vec<Ipv4Net>> {
    let mut nets = vec![];
    for ifaddr in nix::ifaddrs::getifaddrs()? {
        if ifaddr.interface_name != iface {
            continue;
        }
        let (Some(addr), Some(mask)) = (
            ifaddr.address.as_ref().and_then(|a| a.as_sockaddr_in()),
            ifaddr.netmask.as_ref().and_then(|a| a.as_sockaddr_in()),
        ) else {
            continue;
        };
        let mask = u32::from(mask.ip());
        let net = Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr.ip()) & mask),
            prefix: mask.leading_ones() as u8,
        };
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// The classic BPF program of [`admit_only`]: the first payload bytes must be `start`, and
/// the source address in one of `sources` (any source when empty). `None` when there are
/// too many sources for one program's jumps (at most [`MAX_FILTER_SOURCES`]).
fn filter_program(start: [u8; 4], sources: &[Ipv4Net]) -> Option<Vec<libc::sock_filter>> {
    if sources.len() > MAX_FILTER_SOURCES {
        return None;
    }
    let op = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let load_word = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jump_equal = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let and = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    const DROP: u32 = 0;
    const KEEP: u32 = u32::MAX;
    // A UDP socket's filter sees the datagram from its UDP header: the payload is at 8, the
    // IPv4 header at SKF_NET_OFF (the source address 12 bytes into it). A load past the end
    // (a datagram shorter than the start marker) drops it.
    let mut program = vec![
        op(load_word, 8, 0, 0),
        op(jump_equal, u32::from_be_bytes(start), 1, 0),
        op(ret, DROP, 0, 0),
    ];
    if sources.is_empty() {
        program.push(op(ret, KEEP, 0, 0));
        return Some(program);
    }
    let source = (libc::SKF_NET_OFF + 12) as u32;
    // Each source: load, mask, compare; a match jumps to the KEEP at the end.
    let rules = sources.len();
    for (i, net) in sources.iter().enumerate() {
        let after = (rules - 1 - i) * 3;
        program.push(op(load_word, source, 0, 0));
        program.push(op(and, net.mask(), 0, 0));
        program.push(op(
            jump_equal,
            u32::from(net.addr) & net.mask(),
            (after + 1) as u8,
            0,
        ));
    }
    program.push(op(ret, DROP, 0, 0));
    program.push(op(ret, KEEP, 0, 0));
    Some(program)
}

/// How many sources one filter can name (its jumps are 8 bits wide).
pub const MAX_FILTER_SOURCES: usize = 80;

/// Has the kernel drop every datagram on `socket` that does not start with `start` or does
/// not come from one of `sources` (any source when empty), before it takes room in the
/// receive buffer. `InvalidInput` when there are more than [`MAX_FILTER_SOURCES`].
pub fn admit_only(socket: &UdpSocket, start: [u8; 4], sources: &[Ipv4Net]) -> io::Result<()> {
    let program = filter_program(start, sources).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} sources are more than a socket filter takes ({MAX_FILTER_SOURCES})",
                sources.len()
            ),
        )
    })?;
    attach_filter(socket, &program)
}

/// An IPv6 network: an address and how many leading bits of it count (128: one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Net {
    /// The address (bits past the prefix are ignored).
    pub addr: Ipv6Addr,
    /// The prefix length, 0 to 128.
    pub prefix: u8,
}

impl Ipv6Net {
    /// The mask of each of the address's four 32-bit words.
    fn word_masks(self) -> [u32; 4] {
        let prefix = u32::from(self.prefix.min(128));
        std::array::from_fn(|w| {
            let bits = prefix.saturating_sub(32 * w as u32).min(32);
            match bits {
                0 => 0,
                b => u32::MAX << (32 - b),
            }
        })
    }
}

impl Ipv6Net {
    /// Whether `addr` is in this network.
    pub fn contains(self, addr: Ipv6Addr) -> bool {
        let bits = u32::from(self.prefix.min(128));
        let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
        u128::from(addr) & mask == u128::from(self.addr) & mask
    }
}

impl std::fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The IPv6 networks of `iface`'s addresses, link-local included (`fe80::/64`,
/// `fd00:198:18:1::/64`).
pub fn interface_networks_v6(iface: &str) -> io::Result<Vec<Ipv6Net>> {
    let mut nets = vec![];
    for ifaddr in nix::ifaddrs::getifaddrs()? {
        if ifaddr.interface_name != iface {
            continue;
        }
        let (Some(addr), Some(mask)) = (
            ifaddr.address.as_ref().and_then(|a| a.as_sockaddr_in6()),
            ifaddr.netmask.as_ref().and_then(|a| a.as_sockaddr_in6()),
        ) else {
            continue;
        };
        let mask = u128::from(mask.ip());
        let net = Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr.ip()) & mask),
            prefix: mask.leading_ones() as u8,
        };
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// How many sources one IPv6 filter can name: each takes up to 9 instructions (three whole
/// words and a masked one), and a match must still reach the program's end with an 8-bit
/// jump.
pub const MAX_FILTER_SOURCES_V6: usize = 20;

/// The classic BPF program of [`admit_only_v6`]: as [`filter_program`], with the IPv6 source
/// address (8 bytes into the IPv6 header, four words) matched against each network. `None`
/// when there are more than [`MAX_FILTER_SOURCES_V6`] sources.
fn filter_program_v6(start: [u8; 4], sources: &[Ipv6Net]) -> Option<Vec<libc::sock_filter>> {
    if sources.len() > MAX_FILTER_SOURCES_V6 {
        return None;
    }
    let op = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let load_word = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jump_equal = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let jump = libc::BPF_JMP | libc::BPF_JA;
    let and = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    const DROP: u32 = 0;
    const KEEP: u32 = u32::MAX;
    // As for IPv4, the filter sees the datagram from its UDP header: the start marker at 8.
    let mut program = vec![
        op(load_word, 8, 0, 0),
        op(jump_equal, u32::from_be_bytes(start), 1, 0),
        op(ret, DROP, 0, 0),
    ];
    if sources.is_empty() {
        program.push(op(ret, KEEP, 0, 0));
        return Some(program);
    }
    let source = (libc::SKF_NET_OFF + 8) as u32;
    // Each network is a block: per word the prefix covers, load, mask (when partial),
    // compare. A mismatch skips to the next block; the last word's match jumps to KEEP past
    // the final DROP. A /0 network is a jump to KEEP.
    let words = |net: &Ipv6Net| -> Vec<(usize, u32)> {
        net.word_masks()
            .into_iter()
            .enumerate()
            .filter(|(_, mask)| *mask != 0)
            .collect()
    };
    let block_len = |net: &Ipv6Net| -> usize {
        let w = words(net);
        if w.is_empty() {
            1
        } else {
            w.iter()
                .map(|(_, m)| if *m == u32::MAX { 2 } else { 3 })
                .sum()
        }
    };
    let lengths: Vec<usize> = sources.iter().map(block_len).collect();
    for (i, net) in sources.iter().enumerate() {
        // Instructions after this block up to KEEP: the later blocks and the DROP.
        let to_keep = lengths[i + 1..].iter().sum::<usize>() + 1;
        let words = words(net);
        if words.is_empty() {
            program.push(op(jump, to_keep as u32, 0, 0));
            continue;
        }
        let value = net.addr.octets();
        let mut left = lengths[i];
        for (n, (w, mask)) in words.iter().enumerate() {
            let expected = u32::from_be_bytes(value[w * 4..w * 4 + 4].try_into().unwrap()) & mask;
            program.push(op(load_word, source + 4 * *w as u32, 0, 0));
            left -= 1;
            if *mask != u32::MAX {
                program.push(op(and, *mask, 0, 0));
                left -= 1;
            }
            left -= 1;
            if n + 1 == words.len() {
                program.push(op(jump_equal, expected, (to_keep + left) as u8, 0));
            } else {
                program.push(op(jump_equal, expected, 0, left as u8));
            }
        }
    }
    program.push(op(ret, DROP, 0, 0));
    program.push(op(ret, KEEP, 0, 0));
    Some(program)
}

/// As [`admit_only`], for an IPv6 socket: datagrams that do not start with `start` or do not
/// come from one of `sources` (any source when empty) are dropped in the kernel.
/// `InvalidInput` when there are more than [`MAX_FILTER_SOURCES_V6`].
pub fn admit_only_v6(socket: &UdpSocket, start: [u8; 4], sources: &[Ipv6Net]) -> io::Result<()> {
    let program = filter_program_v6(start, sources).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} sources are more than an IPv6 socket filter takes ({MAX_FILTER_SOURCES_V6})",
                sources.len()
            ),
        )
    })?;
    attach_filter(socket, &program)
}

fn attach_filter(socket: &UdpSocket, program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    setsockopt(
        socket,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &fprog,
        "SO_ATTACH_FILTER",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program of this module as the kernel would on a UDP socket: `udp`
    /// is the datagram from its UDP header, `net` the IP header (at SKF_NET_OFF). Only the
    /// instructions the programs use.
    fn run(program: &[libc::sock_filter], net: &[u8], udp: &[u8]) -> bool {
        let net_off = libc::SKF_NET_OFF as u32;
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = program[pc];
            let code = u32::from(i.code);
            pc += 1;
            if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS {
                let (data, at) = if i.k >= net_off {
                    (net, (i.k - net_off) as usize)
                } else {
                    (udp, i.k as usize)
                };
                let Some(word) = data.get(at..at + 4) else {
                    return false;
                };
                a = u32::from_be_bytes(word.try_into().unwrap());
            } else if code == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K {
                a &= i.k;
            } else if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                pc += usize::from(if a == i.k { i.jt } else { i.jf });
            } else if code == libc::BPF_JMP | libc::BPF_JA {
                pc += i.k as usize;
            } else if code == libc::BPF_RET | libc::BPF_K {
                return i.k != 0;
            } else {
                panic!("instruction {code:#x} not modelled");
            }
        }
    }

    fn ipv6_header(source: &str) -> Vec<u8> {
        let mut header = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        header.extend(source.parse::<Ipv6Addr>().unwrap().octets());
        header.extend([0u8; 16]);
        header
    }

    fn ipv4_header(source: &str) -> Vec<u8> {
        let mut header = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        header.extend(source.parse::<Ipv4Addr>().unwrap().octets());
        header.extend([0u8; 4]);
        header
    }

    const HEARTBEAT: &[u8] = b"\0\0\0\0\0\0\0\0###\nt=status\n";

    #[test]
    fn an_ipv6_filter_admits_heartbeats_from_its_networks_only() {
        let net = |text: &str| {
            let (addr, prefix) = text.split_once('/').unwrap();
            Ipv6Net {
                addr: addr.parse().unwrap(),
                prefix: prefix.parse().unwrap(),
            }
        };
        let sources = [
            net("fd00:198:18:1::2/128"),
            net("fe80::/64"),
            net("fd00:198:18:4000::/50"),
        ];
        let program = filter_program_v6(*b"###\n", &sources).unwrap();
        for (source, admitted) in [
            ("fd00:198:18:1::2", true),
            ("fd00:198:18:1::3", false),
            ("fe80::1234:5678", true),
            ("fe80:0:0:1::1", false),
            ("fd00:198:18:7fff::1", true),
            ("fd00:198:18:8000::1", false),
            ("2001:db8::2", false),
        ] {
            assert_eq!(
                run(&program, &ipv6_header(source), HEARTBEAT),
                admitted,
                "{source}"
            );
        }
        // Not a heartbeat's start, or too short to hold one: dropped from the peer too.
        let peer = ipv6_header("fd00:198:18:1::2");
        assert!(!run(&program, &peer, b"\0\0\0\0\0\0\0\0junk and more"));
        assert!(!run(&program, &peer, b"\0\0\0\0\0\0\0\0##"));
        // No sources: the start marker alone.
        let any = filter_program_v6(*b"###\n", &[]).unwrap();
        assert!(run(&any, &ipv6_header("2001:db8::2"), HEARTBEAT));
        assert!(net("fe80::/64").contains("fe80::1:2".parse().unwrap()));
        assert!(!net("fe80::/64").contains("fe80:0:0:1::2".parse().unwrap()));
        assert!(net("::/0").contains("2001:db8::2".parse().unwrap()));
        // A /0 network admits everyone, later networks notwithstanding.
        let all = filter_program_v6(*b"###\n", &[net("::/0"), net("fe80::/64")]).unwrap();
        assert!(run(&all, &ipv6_header("2001:db8::2"), HEARTBEAT));
    }

    #[test]
    fn the_largest_ipv6_filter_still_reaches_its_end() {
        // Every source a partial prefix (9 instructions each, the most): the first one's
        // match must still jump to KEEP.
        let sources: Vec<Ipv6Net> = (0..MAX_FILTER_SOURCES_V6)
            .map(|i| Ipv6Net {
                addr: Ipv6Addr::new(0xfd00, i as u16, 0, 0, 0, 0, 0, 0x100),
                prefix: 127,
            })
            .collect();
        let program = filter_program_v6(*b"###\n", &sources).unwrap();
        for (i, _) in sources.iter().enumerate() {
            let source = format!("fd00:{i:x}::101");
            assert!(run(&program, &ipv6_header(&source), HEARTBEAT), "{source}");
        }
        assert!(!run(&program, &ipv6_header("fd00:ff::101"), HEARTBEAT));
        let too_many = vec![sources[0]; MAX_FILTER_SOURCES_V6 + 1];
        assert!(filter_program_v6(*b"###\n", &too_many).is_none());
    }

    #[test]
    fn the_ipv4_filter_admits_heartbeats_from_its_networks_only() {
        let sources = [
            Ipv4Net {
                addr: Ipv4Addr::new(198, 18, 1, 2),
                prefix: 32,
            },
            Ipv4Net {
                addr: Ipv4Addr::new(198, 18, 2, 0),
                prefix: 24,
            },
        ];
        let program = filter_program(*b"###\n", &sources).unwrap();
        for (source, admitted) in [
            ("198.18.1.2", true),
            ("198.18.1.3", false),
            ("198.18.2.77", true),
            ("198.18.3.1", false),
        ] {
            assert_eq!(
                run(&program, &ipv4_header(source), HEARTBEAT),
                admitted,
                "{source}"
            );
        }
        assert!(!run(
            &program,
            &ipv4_header("198.18.1.2"),
            b"\0\0\0\0\0\0\0\0junk"
        ));
    }
}
