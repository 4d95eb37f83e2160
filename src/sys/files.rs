//! What a path of the configuration names (a regular file, a directory, a character device,
//! a terminal), found without side effects, and files opened so that what they are is
//! checked on the open descriptor (`fstat`), not on the path, which could change between
//! the check and the open.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::unistd::AccessFlags;

/// What a path names (symbolic links followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing.
    Missing,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl Kind {
    fn of(file_type: std::fs::FileType) -> Kind {
        if file_type.is_file() {
            Kind::Regular
        } else if file_type.is_dir() {
            Kind::Directory
        } else if file_type.is_char_device() {
            Kind::CharDevice
        } else if file_type.is_block_device() {
            Kind::BlockDevice
        } else if file_type.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        }
    }

    /// "a regular file", "a directory"...: for messages.
    pub fn described(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Regular => "a regular file",
            Kind::Directory => "a directory",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Fifo => "a named pipe",
            Kind::Socket => "a socket",
        }
    }
}

/// What `path` names; [`Kind::Missing`] when nothing (a dangling link, or a path through a
/// file that is not a directory, included).
pub fn kind(path: &Path) -> io::Result<Kind> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Kind::of(meta.file_type())),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Kind::Missing)
        }
        Err(e) => Err(e),
    }
}

/// What the open `file` is.
pub fn kind_of(file: &File) -> io::Result<Kind> {
    Ok(Kind::of(file.metadata()?.file_type()))
}

/// Whether `path` is a terminal: opened read-only, non-blocking, never as our controlling
/// terminal, and closed again at once (nothing is written, no line setting changed).
pub fn is_tty(path: &Path) -> io::Result<bool> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    Ok(nix::unistd::isatty(file.as_fd()).unwrap_or(false))
}

/// Whether this process may write to `path` (a read-only file system says no, even to root).
pub fn writable(path: &Path) -> bool {
    nix::unistd::access(path, AccessFlags::W_OK).is_ok()
}

/// Whether `path` is a regular file this process may execute (for root: one with an
/// execute bit).
pub fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        && nix::unistd::access(path, AccessFlags::X_OK).is_ok()
}

/// The owner (uid) of what `path` names.
pub fn owner(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata(path)?.uid())
}

/// Opens `path` to append to it, created if missing, refused unless it is a regular
/// file: a named pipe is not waited on (non-blocking open), a terminal does not become ours,
/// and what the descriptor is, not what the path was, decides.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    match kind_of(&file)? {
        Kind::Regular => Ok(file),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}, not a file to append to", other.described()),
        )),
    }
}
