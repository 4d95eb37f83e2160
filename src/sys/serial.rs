//! Serial lines for heartbeat media: a tty in raw mode at a fixed speed.

use std::fs::File;
use std::io;
use std::path::Path;

// rustix rather than libc: the libc crate binds cfsetispeed to a versioned glibc symbol
// (cfsetispeed@GLIBC_2.2.5) that a static link cannot resolve.
use rustix::termios;

/// The speeds a serial medium may run at.
pub const BAUD_RATES: [u32; 6] = [9600, 19200, 38400, 57600, 115200, 230400];

/// Opens `device` read-write, non-blocking, not as our controlling terminal, in raw mode at
/// `baud`. A device that is not a terminal is refused before anything is written to it.
pub fn open_raw(device: &Path, baud: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if !BAUD_RATES.contains(&baud) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("baud {baud}: one of 9600, 19200, 38400, 57600, 115200, 230400"),
        ));
    }
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
    let not_a_tty = |e: rustix::io::Errno| {
        io::Error::other(format!(
            "serial {}: not a terminal: {}",
            device.display(),
            io::Error::from(e)
        ))
    };
    let failed = |e: rustix::io::Errno| {
        io::Error::other(format!(
            "serial {}: {}",
            device.display(),
            io::Error::from(e)
        ))
    };
    let mut tio = termios::tcgetattr(&port).map_err(not_a_tty)?;
    tio.make_raw();
    tio.set_speed(baud).map_err(failed)?;
    tio.control_modes |= termios::ControlModes::CLOCAL | termios::ControlModes::CREAD;
    termios::tcsetattr(&port, termios::OptionalActions::Now, &tio).map_err(failed)?;
    Ok(port)
}

/// Whether a read error means the other end of the line is gone (EIO: a pty whose peer
/// closed), which is silence rather than a failure.
pub fn is_hangup(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO)
}
