//! UDP sockets for heartbeat media: bound to one interface, stamped on arrival, joined to a
//! multicast group on that interface, with a kernel filter on what may queue and a count of
//! what the kernel dropped.

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
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
    interface_index(iface)?;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
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
    setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_BROADCAST,
        &one,
        "SO_BROADCAST",
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
