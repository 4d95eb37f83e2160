//! Waking a poll loop from other threads: a non-blocking, close-on-exec pipe whose read end
//! the loop polls, and one byte written to it per event.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;

/// A non-blocking, close-on-exec pipe (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Writes one byte to the write end `fd`: a full pipe means the loop is waking already, so
/// the error is of no interest.
pub fn wake(fd: &impl AsFd) {
    let _ = nix::unistd::write(fd, b"w");
}

/// Empties the read end `fd`.
pub fn drain(fd: &impl AsFd) {
    let mut buf = [0u8; 64];
    while nix::unistd::read(fd.as_fd(), &mut buf).is_ok_and(|n| n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_is_seen_once_and_drained() {
        let (read, write) = pipe().unwrap();
        wake(&write);
        wake(&write);
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(read.as_fd(), &mut buf).unwrap(), 2);
        wake(&write);
        drain(&read);
        assert!(nix::unistd::read(read.as_fd(), &mut buf).is_err()); // EAGAIN: empty
    }
}
