//! A watchdog device (`/dev/watchdog`: softdog or a hardware driver).

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// `WDIOC_SETTIMEOUT` of linux/watchdog.h.
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xc004_5706;

/// Opens the device at `path` for writing (non-blocking, close-on-exec, never created nor
/// truncated, never our controlling terminal) and asks it to reset the machine after
/// `seconds` without a write. A device without the ioctl keeps its own timeout. What was
/// opened must be a character device (checked on the descriptor, so a path swapped after
/// `hb-monitor check` is caught too): anything else is closed untouched and refused, so that
/// a mistyped path never has the watchdog's bytes written into a file.
pub fn open(path: &Path, seconds: u64) -> io::Result<std::fs::File> {
    let device = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = super::files::kind_of(&device)?;
    if kind != super::files::Kind::CharDevice {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}, not a watchdog device", kind.described()),
        ));
    }
    let mut seconds = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
    // SAFETY: WDIOC_SETTIMEOUT takes a pointer to an int, valid for the call.
    let _ = unsafe { libc::ioctl(device.as_raw_fd(), WDIOC_SETTIMEOUT, &raw mut seconds) };
    Ok(device)
}
