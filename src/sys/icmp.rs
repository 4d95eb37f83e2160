//! Raw ICMPv4 and ICMPv6 sockets for ping nodes.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking raw ICMP socket (root only).
#[derive(Debug)]
pub struct IcmpSocket(OwnedFd);

impl IcmpSocket {
    /// Opens the socket.
    pub fn open() -> io::Result<IcmpSocket> {
        // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        Ok(IcmpSocket(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Sends `packet` (an ICMP message, header included) to `to` without blocking.
    pub fn send_to(&self, packet: &[u8], to: Ipv4Addr) -> io::Result<()> {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sendto with a live buffer and a complete sockaddr_in.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_DONTWAIT,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Reads one packet (IP header first) without blocking: its length and source, or `None`
    /// when nothing is queued.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Ipv4Addr)>> {
        // SAFETY: a sockaddr_in is plain data; all zeroes is a valid value.
        let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: recvfrom into a local buffer and sockaddr_in.
        let n = unsafe {
            libc::recvfrom(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&raw mut from).cast(),
                &raw mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some((
            n as usize,
            Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
        )))
    }
}

impl AsRawFd for IcmpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Linux's `ICMP6_FILTER` socket option (linux/icmpv6.h; not in the libc crate).
const ICMP6_FILTER: libc::c_int = 1;

/// ICMPv6 echo reply.
pub const ICMP6_ECHO_REPLY: u8 = 129;

/// A non-blocking raw ICMPv6 socket (root) that receives echo replies only. The kernel fills
/// in an ICMPv6 message's checksum (it covers the IPv6 pseudo-header, which only the kernel
/// knows), and hands received messages over without their IPv6 header.
#[derive(Debug)]
pub struct Icmp6Socket(OwnedFd);

impl Icmp6Socket {
    /// Opens the socket.
    pub fn open() -> io::Result<Icmp6Socket> {
        // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMPV6,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        let socket = Icmp6Socket(unsafe { OwnedFd::from_raw_fd(raw) });
        // Every other ICMPv6 message on the host (neighbour discovery, router adverts) would
        // otherwise queue here: a bit set blocks that type.
        let mut filter = [u32::MAX; 8];
        filter[usize::from(ICMP6_ECHO_REPLY >> 5)] &= !(1 << (ICMP6_ECHO_REPLY & 31));
        // SAFETY: the filter's eight words and their size, as struct icmp6_filter.
        let rc = unsafe {
            libc::setsockopt(
                socket.0.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMP6_FILTER,
                filter.as_ptr().cast(),
                std::mem::size_of_val(&filter) as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    /// Sends `packet` (an ICMPv6 message, header included, checksum left to the kernel) to
    /// `to` without blocking.
    pub fn send_to(&self, packet: &[u8], to: Ipv6Addr) -> io::Result<()> {
        // SAFETY: a sockaddr_in6 is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        addr.sin6_addr = libc::in6_addr {
            s6_addr: to.octets(),
        };
        // SAFETY: sendto with a live buffer and a complete sockaddr_in6.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_DONTWAIT,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Reads one ICMPv6 message (no IPv6 header) without blocking: its length and source, or
    /// `None` when nothing is queued.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Ipv6Addr)>> {
        // SAFETY: a sockaddr_in6 is plain data; all zeroes is a valid value.
        let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: recvfrom into a local buffer and sockaddr_in6.
        let n = unsafe {
            libc::recvfrom(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&raw mut from).cast(),
                &raw mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some((n as usize, Ipv6Addr::from(from.sin6_addr.s6_addr))))
    }
}

impl AsRawFd for Icmp6Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
