//! A test tool: floods a UDP port with datagrams as fast as one core can send them (or at a
//! given rate), optionally with a forged source address, to show that hb-monitor's media
//! hold under hostile traffic (tests/hb_flood.rs). Not part of the product.
//!
//! udp-flood TO_IP PORT SECS [--rate N] [--from SPOOFED_IP] [--payload random|magic|HEX]
//!
//! random: bytes that are no heartbeat at all; magic: Heartbeat's `###\n` start and garbage
//! after it; HEX: this exact datagram (a forged heartbeat, say). With --from, the datagrams
//! leave a raw socket with that source address and a varying source port. Prints
//! `sent N in S s` on stdout.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const BATCH: usize = 64;

struct Args {
    to: Ipv4Addr,
    port: u16,
    secs: f64,
    rate: Option<u64>,
    from: Option<Ipv4Addr>,
    payload: String,
}

fn parse() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let [to, port, secs, rest @ ..] = argv.as_slice() else {
        return Err("usage: udp-flood TO_IP PORT SECS [--rate N] [--from IP] [--payload P]".into());
    };
    let mut args = Args {
        to: to.parse().map_err(|e| format!("{to}: {e}"))?,
        port: port.parse().map_err(|e| format!("{port}: {e}"))?,
        secs: secs.parse().map_err(|e| format!("{secs}: {e}"))?,
        rate: None,
        from: None,
        payload: "random".into(),
    };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rate" => args.rate = Some(value.parse().map_err(|e| format!("{value}: {e}"))?),
            "--from" => args.from = Some(value.parse().map_err(|e| format!("{value}: {e}"))?),
            "--payload" => args.payload = value.clone(),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

/// xorshift64: varied bytes without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn payloads(kind: &str, noise: &mut Noise) -> Result<Vec<Vec<u8>>, String> {
    (0..BATCH)
        .map(|_| {
            let len = 64 + (noise.next() % 160) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
            match kind {
                "random" => {
                    bytes[0] = b'x';
                    Ok(bytes)
                }
                "magic" => {
                    bytes[..4].copy_from_slice(b"###\n");
                    Ok(bytes)
                }
                hex => (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            .ok_or_else(|| format!("bad payload {kind:.20}"))
                    })
                    .collect(),
            }
        })
        .collect()
}

/// An IPv4 + UDP header in front of `payload` (checksums left to the kernel and zero).
fn spoofed(from: Ipv4Addr, to: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len() as u16;
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total as usize);
    p.extend_from_slice(&[0x45, 0, 0, 0]);
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&from.octets());
    p.extend_from_slice(&to.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("udp-flood: {e}");
            std::process::exit(2);
        }
    };
    match flood(&args) {
        Ok((sent, took)) => println!("sent {sent} in {:.3} s", took.as_secs_f64()),
        Err(e) => {
            eprintln!("udp-flood: {e}");
            std::process::exit(1);
        }
    }
}

fn flood(args: &Args) -> io::Result<(u64, Duration)> {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let bodies = payloads(&args.payload, &mut noise).map_err(io::Error::other)?;
    let (domain, kind, proto) = match args.from {
        Some(_) => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW),
        None => (libc::AF_INET, libc::SOCK_DGRAM, 0),
    };
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let datagrams: Vec<Vec<u8>> = match args.from {
        Some(from) => bodies
            .iter()
            .enumerate()
            .map(|(i, b)| spoofed(from, args.to, 40000 + i as u16, args.port, b))
            .collect(),
        None => bodies,
    };
    let dest = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: args.port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(args.to).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut _,
            iov_len: d.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: a zeroed mmsghdr is valid; the pointers set are to live buffers.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&raw const dest) as *mut _;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        if let Some(rate) = args.rate {
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // SAFETY: sendmmsg over the vector of headers built above.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            // A full queue or a refused port: the flood goes on.
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED)
            ) {
                continue;
            }
            return Err(e);
        }
        sent += n as u64;
    }
    Ok((sent, start.elapsed()))
}
