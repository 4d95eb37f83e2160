//! Serial lines for heartbeat media: a tty in raw mode at a fixed speed.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The speeds a serial medium may run at.
pub const BAUD_RATES: [u32; 6] = [9600, 19200, 38400, 57600, 115200, 230400];

/// Opens `device` read-write, non-blocking, not as our controlling terminal, in raw mode at
/// `baud`. A device that is not a terminal is refused before anything is written to it.
pub fn open_raw(device: &Path, baud: u32) -> io::Result<File> {
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
    let kind = super::files::kind_of(&port)?;
    if kind != super::files::Kind::CharDevice {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "serial {}: {}, not a terminal",
                device.display(),
                kind.described()
            ),
        ));
    }
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

/// Whether a read error means the other end of the line is gone (EIO: a pty whose peer
/// closed), which is silence rather than a failure.
pub fn is_hangup(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO)
}
