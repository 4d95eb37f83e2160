//! UDP sockets for heartbeat media: bound to one interface, stamped on arrival, joined to a
//! multicast group on that interface.

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
}

/// Reads one datagram without blocking, with its arrival stamp. `Ok(None)`: nothing queued.
/// A datagram longer than `buf` is cut to the buffer and reported with its full length
/// (MSG_TRUNC), so the caller can count it as too large.
pub fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<Received>> {
    // Room for one timespec control message.
    let mut control = [0u64; 8];
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
    // SAFETY: walking the control buffer the kernel filled, with the libc CMSG macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                arrived = Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok(Some(Received {
        len: n as usize,
        arrived,
    }))
}
