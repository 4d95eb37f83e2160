//! The heartbeat media of `ha.cf`. UDP: one socket per (interface, port), bound to the
//! interface (SO_BINDTODEVICE) so that each medium's traffic, and its health, stays its own;
//! `ucast` sends to the peer, `bcast` to the interface's broadcast, `mcast` to the group on
//! the interface (IPv4 only so far). Serial: the device in raw mode at `baud`, the same
//! messages back to back on the byte stream, found again by their framing
//! ([`proto::framed_len`](super::proto::framed_len)).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::config::{HaCf, Medium};

/// One medium: a UDP socket (an interface and port, and where heartbeats go from it) or a
/// serial line.
#[derive(Debug)]
pub struct MediumSocket {
    /// `eth0:694` or `/dev/ttyS0`: how the medium is named in status and logs.
    pub name: String,
    /// The socket.
    pub transport: Transport,
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
            Transport::Udp { socket, .. } => recv_stamped(socket, buf),
            Transport::Serial { port, pending } => {
                use std::io::Read as _;
                let mut chunk = [0u8; 4096];
                loop {
                    match port.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => pending.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // EIO: the other end of the line is gone (a pty's peer closed).
                        Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                        Err(e) => return Err(e),
                    }
                }
                loop {
                    match super::proto::framed_len(pending) {
                        Ok(Some(len)) => {
                            let copied = len.min(buf.len());
                            buf[..copied].copy_from_slice(&pending[..copied]);
                            pending.drain(..len);
                            return Ok(Some(Received { len, arrived: None }));
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

/// Opens a serial device raw and non-blocking at `baud`.
fn open_serial(device: &std::path::Path, baud: u32) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let speed = match baud {
        9600 => libc::B9600,
        19200 => libc::B19200,
        38400 => libc::B38400,
        57600 => libc::B57600,
        115200 => libc::B115200,
        230400 => libc::B230400,
        other => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("baud {other}: one of 9600, 19200, 38400, 57600, 115200, 230400"),
            ));
        }
    };
    let port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(device)
        .map_err(|e| io::Error::new(e.kind(), format!("serial {}: {e}", device.display())))?;
    // SAFETY: termios calls on our open descriptor with a zero-initialised struct filled by
    // tcgetattr.
    unsafe {
        let mut tio: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(port.as_raw_fd(), &raw mut tio) != 0 {
            return Err(io::Error::other(format!(
                "serial {}: not a terminal: {}",
                device.display(),
                io::Error::last_os_error()
            )));
        }
        libc::cfmakeraw(&raw mut tio);
        libc::cfsetispeed(&raw mut tio, speed);
        libc::cfsetospeed(&raw mut tio, speed);
        tio.c_cflag |= libc::CLOCAL | libc::CREAD;
        if libc::tcsetattr(port.as_raw_fd(), libc::TCSANOW, &raw const tio) != 0 {
            return Err(io::Error::other(format!(
                "serial {}: {}",
                device.display(),
                io::Error::last_os_error()
            )));
        }
    }
    Ok(port)
}

/// Every medium of the node.
#[derive(Debug)]
pub struct MediaSet {
    /// Sockets in `ha.cf` order.
    pub sockets: Vec<MediumSocket>,
}

fn os<T>(what: &str, result: libc::c_int, value: T) -> io::Result<T> {
    if result < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(value)
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
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

fn ifindex(iface: &str) -> io::Result<u32> {
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

/// A UDP socket on `port` of `iface` only.
fn bound_socket(iface: &str, port: u16) -> io::Result<UdpSocket> {
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
    // Several sockets share the port, one per interface.
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
    // The kernel stamps each datagram's arrival: a loop that reads its sockets only when it
    // wakes anyway (short keepalives, see the daemon) still knows when a heartbeat came.
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
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
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

fn ipv4(addr: IpAddr, what: &str) -> io::Result<Ipv4Addr> {
    match addr {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{what}: IPv6 media are not supported yet"),
        )),
    }
}

impl MediaSet {
    /// Opens every medium of `cfg`; serial media are refused.
    pub fn open(cfg: &HaCf) -> io::Result<MediaSet> {
        let mut set = MediaSet { sockets: vec![] };
        for medium in &cfg.media {
            let (iface, port, target) = match medium {
                Medium::Ucast { iface, peer } => {
                    let peer = ipv4(*peer, "ucast")?;
                    (
                        iface,
                        cfg.udpport,
                        SocketAddr::V4(SocketAddrV4::new(peer, cfg.udpport)),
                    )
                }
                Medium::Bcast { iface } => (
                    iface,
                    cfg.udpport,
                    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, cfg.udpport)),
                ),
                Medium::Mcast {
                    iface, group, port, ..
                } => {
                    let group = ipv4(*group, "mcast")?;
                    (
                        iface,
                        *port,
                        SocketAddr::V4(SocketAddrV4::new(group, *port)),
                    )
                }
                Medium::Serial { device } => {
                    set.sockets.push(MediumSocket {
                        name: device.display().to_string(),
                        transport: Transport::Serial {
                            port: open_serial(device, cfg.baud)?,
                            pending: Vec::new(),
                        },
                    });
                    continue;
                }
            };
            let name = format!("{iface}:{port}");
            let index = match set.sockets.iter().position(|s| s.name == name) {
                Some(i) => i,
                None => {
                    ifindex(iface)?;
                    set.sockets.push(MediumSocket {
                        name: name.clone(),
                        transport: Transport::Udp {
                            socket: bound_socket(iface, port)?,
                            targets: vec![],
                        },
                    });
                    set.sockets.len() - 1
                }
            };
            let Transport::Udp { socket, targets } = &mut set.sockets[index].transport else {
                unreachable!("UDP media are looked up by their interface:port name");
            };
            if let Medium::Mcast {
                group, ttl, looped, ..
            } = medium
            {
                let group = ipv4(*group, "mcast")?;
                let request = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr {
                        s_addr: u32::from(group).to_be(),
                    },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: ifindex(iface)? as libc::c_int,
                };
                // SAFETY: the socket is ours; the borrowed fd lives as long as the call.
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
                let owned = fd.try_clone_to_owned()?;
                setsockopt(
                    &owned,
                    libc::IPPROTO_IP,
                    libc::IP_ADD_MEMBERSHIP,
                    &request,
                    "joining the group",
                )?;
                setsockopt(
                    &owned,
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    &request,
                    "IP_MULTICAST_IF",
                )?;
                socket.set_multicast_ttl_v4(u32::from(*ttl))?;
                socket.set_multicast_loop_v4(*looped)?;
            }
            targets.push(target);
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

/// One datagram from [`recv_stamped`]: its length and the kernel's arrival time (wall clock).
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// When the kernel received it (`SO_TIMESTAMPNS`), if it said.
    pub arrived: Option<std::time::SystemTime>,
}

/// Reads one datagram without blocking, with its arrival stamp. `Ok(None)`: nothing queued.
/// A datagram longer than `buf` comes back with `len == buf.len()` and is cut (MSG_TRUNC is
/// reported as a length above the buffer, so the caller can count it as too large).
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
                arrived = Some(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                );
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok(Some(Received {
        len: n as usize,
        arrived,
    }))
}
