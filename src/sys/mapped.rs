//! A small file mapped shared into memory as an array of 64-bit words. A store to it lands in
//! the kernel's page cache with no system call, so what the daemon keeps there survives the
//! daemon being killed at any instant, at the cost of one memory store per update; the kernel
//! writes it back to disk on its own schedule (`vm.dirty_expire_centisecs`), and
//! [`MappedWords::sync`] forces that, for an orderly exit.
//!
//! The file must stay the size it was mapped with: truncating it under the mapping would
//! fault the process. It is meant for files in the daemon's own state directory, which only
//! root writes.

use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroUsize;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, MsFlags, ProtFlags, mmap, msync, munmap};

/// `words` 64-bit words of a file, mapped shared, read and written in native byte order.
#[derive(Debug)]
pub struct MappedWords {
    words: NonNull<u64>,
    len: usize,
    _file: File,
}

impl MappedWords {
    /// Opens `path` (created with mode 0600 if missing), sizes it to exactly `len` words and
    /// maps it. What the file held within that size is kept.
    pub fn open(path: &Path, len: usize) -> io::Result<MappedWords> {
        let bytes = len
            .checked_mul(8)
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no words to map"))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        file.set_len(bytes.get() as u64)?;
        // SAFETY: a fresh shared mapping of a regular file sized above; no other mapping of
        // it exists in this process, and the memory is accessed only through this value.
        let address = unsafe {
            mmap(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }
        .map_err(io::Error::from)?;
        Ok(MappedWords {
            words: address.cast(),
            len,
            _file: file,
        })
    }

    /// How many words are mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty mapping cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Word `index`.
    pub fn get(&self, index: usize) -> u64 {
        assert!(index < self.len, "word {index} of {}", self.len);
        // SAFETY: in bounds, page-aligned base; volatile because the file is shared memory.
        unsafe { self.words.add(index).read_volatile() }
    }

    /// Sets word `index`. Stores reach the file in program order: a process killed between
    /// two of them leaves the first done and the second not.
    pub fn set(&mut self, index: usize, value: u64) {
        assert!(index < self.len, "word {index} of {}", self.len);
        // SAFETY: as in `get`. The fence keeps this store ahead of any later one, for the
        // compiler and the processor alike.
        unsafe { self.words.add(index).write_volatile(value) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
    }

    /// Writes the words to disk now (and waits for it).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: the whole mapping made in `open`.
        unsafe { msync(self.words.cast(), self.len * 8, MsFlags::MS_SYNC) }.map_err(io::Error::from)
    }
}

impl Drop for MappedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, not used after this.
        let _ = unsafe { munmap(self.words.cast(), self.len * 8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_survive_a_remap_and_the_size_is_what_was_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words");
        {
            let mut m = MappedWords::open(&path, 3).unwrap();
            assert_eq!((m.get(0), m.get(2)), (0, 0));
            m.set(0, 7);
            m.set(2, u64::MAX);
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        let m = MappedWords::open(&path, 4).unwrap();
        assert_eq!(
            (m.get(0), m.get(1), m.get(2), m.get(3)),
            (7, 0, u64::MAX, 0)
        );
        m.sync().unwrap();
        assert!(MappedWords::open(&path, 0).is_err());
        assert!(MappedWords::open(dir.path(), 1).is_err());
    }
}
