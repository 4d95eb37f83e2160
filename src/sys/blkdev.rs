//! What is on a block device: filesystem type, UUID and label read straight from the
//! superblock, and which device holds a filesystem given by UUID or label.
//!
//! Why not `blkid`: resolving `device=UUID=…` should need no external binary, and these
//! machines run no udev, so `/dev/disk/by-*` does not exist. The few signatures
//! the agents mount (ext2/3/4, xfs, btrfs) are a handful of fixed offsets; the rules follow
//! libblkid's so that both name a device the same way (the tests compare with `blkid -p`).
//!
//! DRBD matters here: with internal meta-data, the backing device starts with the very same
//! filesystem as `/dev/drbdN`. Like libblkid, [`probe`] reports a device that ends with DRBD
//! meta-data as no filesystem, so that a lookup by UUID never returns the backing device:
//! mounting that would bypass replication.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A filesystem found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `"ext2"`, `"ext3"`, `"ext4"`, `"xfs"` or `"btrfs"`.
    pub fstype: &'static str,
    /// Lowercase `8-4-4-4-12`; `None` when the superblock holds the nil UUID.
    pub uuid: Option<String>,
    /// The volume label, trailing whitespace removed; `None` when empty.
    pub label: Option<String>,
}

/// Reads the superblock of `path` (a block device or an image file). `Ok(None)` when it holds
/// no known filesystem, is too short for one, or is a DRBD backing device with internal
/// meta-data; an error when it cannot be read or carries signatures of more than one
/// filesystem (stale leftovers: which one is live cannot be told, so none is guessed, as
/// `blkid -p` does). Reads under 3 KiB in at most four places, never the whole device.
pub fn probe(path: &Path) -> io::Result<Option<Probe>> {
    // O_NONBLOCK as blkid: opening a removable drive without media must not wait. Reads on
    // a block device or a file ignore it.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let size = (&file).seek(SeekFrom::End(0))?;
    if has_drbd_metadata(&file, size)? {
        return Ok(None);
    }
    let start = read_at_most(&file, 0, START_LEN)?;
    let btrfs = read_at_most(&file, BTRFS_SB_OFFSET, BTRFS_SB_LEN)?;
    let found: Vec<Probe> = [
        probe_xfs(&start),
        start.get(EXT_SB_OFFSET..).and_then(probe_ext),
        probe_btrfs(&btrfs),
    ]
    .into_iter()
    .flatten()
    .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        several => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: signatures of several filesystems ({}); wipe the stale ones (wipefs)",
                path.display(),
                several
                    .iter()
                    .map(|p| p.fstype)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Finds the block device holding the filesystem with this UUID (any case):
/// `/dev/disk/by-uuid/<uuid>` when udev made it, else every device in `/proc/partitions`
/// (as `/dev/<name>`), probed. See [`find_by_label`] for how ties are broken.
pub fn find_by_uuid(uuid: &str) -> io::Result<Option<PathBuf>> {
    let wanted = uuid.to_ascii_lowercase();
    if let Some(dev) = udev_link("by-uuid", &wanted) {
        return Ok(Some(dev));
    }
    scan_devices(&format!("UUID {uuid}"), |probe| {
        probe.uuid.as_deref() == Some(wanted.as_str())
    })
}

/// Finds the block device holding the filesystem with this label (exact):
/// `/dev/disk/by-label/<label>` when udev made it, else every device in `/proc/partitions`,
/// probed. Devices that other block devices are stacked on (dm, md: they have
/// `/sys/class/block/<name>/holders`) are passed over for the device on top; among several
/// left, a `drbd*` device wins; more than one left after that is an error, not a guess.
/// Devices that cannot be opened (a DRBD Secondary answers `EMEDIUMTYPE`) are skipped.
pub fn find_by_label(label: &str) -> io::Result<Option<PathBuf>> {
    if let Some(dev) = udev_link("by-label", &udev_encode(label)) {
        return Ok(Some(dev));
    }
    scan_devices(&format!("label {label}"), |probe| {
        probe.label.as_deref() == Some(label)
    })
}

/// `st_rdev` of a block device path (symlinks followed); an `InvalidInput` error for anything
/// that is not a block device.
pub fn block_dev_number(path: &Path) -> io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a block device", path.display()),
        ));
    }
    Ok(meta.rdev())
}

// ---- superblock layouts ----------------------------------------------------------------

/// Bytes read from the start: the XFS superblock (sector 0) and the ext superblock (1 KiB in).
const START_LEN: u64 = 2048;

/// ext2/3/4 (`struct ext2_super_block`, 1024 bytes into the device).
const EXT_SB_OFFSET: usize = 1024;
const EXT_MAGIC: u16 = 0xEF53;
const EXT_COMPAT_HAS_JOURNAL: u32 = 0x0004;
const EXT_INCOMPAT_FILETYPE: u32 = 0x0002;
const EXT_INCOMPAT_RECOVER: u32 = 0x0004;
const EXT_INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
const EXT_INCOMPAT_META_BG: u32 = 0x0010;
const EXT_RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
const EXT_RO_COMPAT_LARGE_FILE: u32 = 0x0002;
const EXT_RO_COMPAT_BTREE_DIR: u32 = 0x0004;
/// What ext2 and ext3 drivers understand; anything beyond makes it ext4 (libblkid's rule).
const EXT2_INCOMPAT_SUPPORTED: u32 = EXT_INCOMPAT_FILETYPE | EXT_INCOMPAT_META_BG;
const EXT3_INCOMPAT_SUPPORTED: u32 = EXT2_INCOMPAT_SUPPORTED | EXT_INCOMPAT_RECOVER;
const EXT23_RO_COMPAT_SUPPORTED: u32 =
    EXT_RO_COMPAT_SPARSE_SUPER | EXT_RO_COMPAT_LARGE_FILE | EXT_RO_COMPAT_BTREE_DIR;

/// btrfs (`struct btrfs_super_block`, primary copy at 64 KiB).
const BTRFS_SB_OFFSET: u64 = 65536;
const BTRFS_SB_LEN: u64 = 299 + 256;
const BTRFS_MAGIC: &[u8] = b"_BHRfS_M";

/// DRBD meta-data (libblkid `superblocks/drbd.c`): 4 KiB before the end, magic at +60.
const DRBD_MD_FROM_END: u64 = 4096;
const DRBD_MD_MAGIC_OFFSET: u64 = 60;
const DRBD_MD_MAGICS: [u32; 3] = [0x8374_026b, 0x8374_026c, 0x8374_026d];

/// ext2/3/4 from the superblock (starting at its first byte).
fn probe_ext(sb: &[u8]) -> Option<Probe> {
    if le16(sb, 56)? != EXT_MAGIC {
        return None;
    }
    let compat = le32(sb, 92)?;
    let incompat = le32(sb, 96)?;
    let ro_compat = le32(sb, 100)?;
    let uuid = format_uuid(sb.get(104..120)?);
    let label = text_field(sb.get(120..136)?);
    if incompat & EXT_INCOMPAT_JOURNAL_DEV != 0 {
        // An external journal: an ext superblock, but nothing to mount.
        return None;
    }
    let beyond = |supported_incompat: u32| {
        incompat & !supported_incompat != 0 || ro_compat & !EXT23_RO_COMPAT_SUPPORTED != 0
    };
    let fstype = if compat & EXT_COMPAT_HAS_JOURNAL != 0 {
        if beyond(EXT3_INCOMPAT_SUPPORTED) {
            "ext4"
        } else {
            "ext3"
        }
    } else if !beyond(EXT2_INCOMPAT_SUPPORTED) {
        "ext2"
    } else if beyond(EXT3_INCOMPAT_SUPPORTED) {
        "ext4"
    } else {
        // "needs recovery" without a journal: libblkid names it nothing either.
        return None;
    };
    Some(Probe {
        fstype,
        uuid,
        label,
    })
}

/// XFS from the first sector (`struct xfs_dsb`, big-endian).
fn probe_xfs(sb: &[u8]) -> Option<Probe> {
    if sb.get(0..4)? != b"XFSB" {
        return None;
    }
    // Two cheap sanity checks, so that four stray bytes are not taken for a filesystem.
    let block_size = be32(sb, 4)?;
    let ag_count = be32(sb, 88)?;
    if !block_size.is_power_of_two() || !(512..=65536).contains(&block_size) || ag_count == 0 {
        return None;
    }
    Some(Probe {
        fstype: "xfs",
        uuid: format_uuid(sb.get(32..48)?),
        label: text_field(sb.get(108..120)?),
    })
}

/// btrfs from the primary superblock.
fn probe_btrfs(sb: &[u8]) -> Option<Probe> {
    if sb.get(64..72)? != BTRFS_MAGIC {
        return None;
    }
    Some(Probe {
        fstype: "btrfs",
        uuid: format_uuid(sb.get(32..48)?),
        label: text_field(sb.get(299..555)?),
    })
}

/// True when the device ends with DRBD meta-data, i.e. it is (or was) a DRBD backing device
/// with internal meta-data. Checked where libblkid looks (4 KiB before the end) and at the
/// 4 KiB-aligned end drbdmeta uses when the size is not a multiple of 4 KiB.
fn has_drbd_metadata(file: &File, size: u64) -> io::Result<bool> {
    if size < 0x10000 {
        return Ok(false);
    }
    let mut places = vec![size - DRBD_MD_FROM_END];
    let aligned = (size & !(DRBD_MD_FROM_END - 1)) - DRBD_MD_FROM_END;
    if aligned != places[0] {
        places.push(aligned);
    }
    for place in places {
        let magic = read_at_most(file, place + DRBD_MD_MAGIC_OFFSET, 4)?;
        if be32(&magic, 0).is_some_and(|m| DRBD_MD_MAGICS.contains(&m)) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// 16 bytes as `8-4-4-4-12` lowercase hex; `None` for the nil UUID (libblkid sets no UUID
/// then either).
fn format_uuid(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 || bytes.iter().all(|&b| b == 0) {
        return None;
    }
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    Some(out)
}

/// A NUL-padded label field: up to the first NUL, trailing whitespace removed (as libblkid).
fn text_field(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let text = text.trim_end();
    (!text.is_empty()).then(|| text.to_string())
}

/// Reads up to `len` bytes at `offset`; fewer at the end of the device or file.
fn read_at_most(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

// ---- finding a device --------------------------------------------------------------------

/// The device a `/dev/disk/<kind>/<name>` link points to, if udev made one.
fn udev_link(kind: &str, name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    std::fs::canonicalize(Path::new("/dev/disk").join(kind).join(name)).ok()
}

/// A label as udev names its by-label link (libblkid's `blkid_encode_string`): bytes other
/// than ASCII alphanumerics, `#+-.:=@_` and valid UTF-8 beyond ASCII become `\xNN`.
fn udev_encode(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || !c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

/// The block devices the kernel lists in `/proc/partitions`, as (`/dev` path, sysfs name).
fn listed_devices() -> io::Result<Vec<(PathBuf, String)>> {
    let text = std::fs::read_to_string("/proc/partitions")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            // "major minor  #blocks  name"; the header and blank line do not parse.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [major, _, _, name] = fields.as_slice() else {
                return None;
            };
            major.parse::<u32>().ok()?;
            // The kernel writes '/' in device names (cciss/c0d0) as '!'.
            Some((
                PathBuf::from(format!("/dev/{}", name.replace('!', "/"))),
                name.to_string(),
            ))
        })
        .collect())
}

/// Probes every listed device and picks the one `matches`, as [`find_by_label`] describes.
fn scan_devices(what: &str, matches: impl Fn(&Probe) -> bool) -> io::Result<Option<PathBuf>> {
    let mut candidates = Vec::new();
    let mut probed = 0;
    let mut denied = None;
    for (path, name) in listed_devices()? {
        match probe(&path) {
            Ok(found) => {
                probed += 1;
                if found.as_ref().is_some_and(&matches) {
                    candidates.push((path, name));
                }
            }
            Err(err) => {
                log::debug!("probing {}: {err}", path.display());
                if err.kind() == io::ErrorKind::PermissionDenied {
                    denied = Some(err);
                }
            }
        }
    }
    if candidates.is_empty() {
        // Finding nothing because we may look at nothing (not root) is not "not there". A
        // device cgroup that hides some devices from root is normal and not an error.
        return match denied {
            Some(err) if probed == 0 => Err(err),
            _ => Ok(None),
        };
    }
    // Lower layers of a stack (dm, md) show the same filesystem as the device on top.
    if candidates.len() > 1 {
        candidates.retain(|(_, name)| !has_holders(name));
    }
    // DRBD registers no holders on its backing device; prefer the DRBD device itself.
    if candidates.len() > 1 && candidates.iter().any(|(_, name)| name.starts_with("drbd")) {
        candidates.retain(|(_, name)| name.starts_with("drbd"));
    }
    match candidates.as_slice() {
        [] => Ok(None),
        [(path, _)] => Ok(Some(path.clone())),
        several => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{what} is on several devices: {}",
                several
                    .iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// True when other block devices are stacked on `name` (`/sys/class/block/<name>/holders`).
fn has_holders(name: &str) -> bool {
    std::fs::read_dir(format!("/sys/class/block/{name}/holders"))
        .is_ok_and(|mut entries| entries.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::super::mounts::test_support::make_image;
    use super::*;
    use std::process::Command;

    /// blkid's view of a file: (TYPE, UUID, LABEL), or `None` when blkid is not installed.
    /// `blkid -p` of `path`: the reference every probe is compared with, so that a missing
    /// blkid fails the test rather than passing it unchecked.
    fn blkid(path: &Path) -> (String, Option<String>, Option<String>) {
        let output = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("blkid (util-linux) must run for the comparison: {e}"));
        let text = String::from_utf8_lossy(&output.stdout);
        // Values are shell-escaped: "my\\ data".
        let unescape = |v: &str| {
            let mut out = String::new();
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            out
        };
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(unescape)
        };
        (
            value("TYPE").unwrap_or_default(),
            value("UUID"),
            value("LABEL"),
        )
    }

    /// Fails the test when `tool` is missing: scripts/install-deps installs every mkfs these
    /// tests use, so a missing one is a broken set-up, not a reason to pass.
    fn require(tool: &str) {
        assert!(
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .any(|dir| Path::new(dir).join(tool).exists()),
            "{tool} is not installed (scripts/install-deps installs it)"
        );
    }

    /// Probes an image and checks the result against `blkid -p`.
    fn probe_and_compare(image: &Path) -> Probe {
        let found = probe(image).unwrap().expect("a filesystem");
        let (fstype, uuid, label) = blkid(image);
        assert_eq!(found.fstype, fstype, "{}", image.display());
        assert_eq!(found.uuid, uuid, "{}", image.display());
        assert_eq!(found.label, label, "{}", image.display());
        found
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn ext_family_matches_blkid() {
        let dir = tempfile::tempdir().unwrap();
        for (fstype, label) in [("ext2", "two"), ("ext3", "three"), ("ext4", "my data")] {
            let image = make_image(dir.path(), fstype, 16 * MIB, &["-L", label]);
            let found = probe_and_compare(&image);
            assert_eq!(found.fstype, fstype);
            assert_eq!(found.label.as_deref(), Some(label));
            let uuid = found.uuid.unwrap();
            assert_eq!(uuid.len(), 36);
            assert_eq!(uuid, uuid.to_ascii_lowercase());
        }
    }

    #[test]
    fn ext_feature_rules_follow_libblkid() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[&str], &str); 4] = [
            // No extents/64bit/flex_bg, but huge_file, metadata_csum: still ext4 for blkid.
            ("a", &["-O", "^extents,^64bit,^flex_bg"], "ext4"),
            ("b", &["-O", "^has_journal"], "ext4"),
            // A full-length label leaves no NUL in the field.
            ("c", &["-t", "ext3", "-L", "abcdefghijklmnop"], "ext3"),
            ("d", &["-t", "ext2", "-O", "^dir_index"], "ext2"),
        ];
        for (name, args, expected) in cases {
            let sub = dir.path().join(name);
            std::fs::create_dir(&sub).unwrap();
            let found = probe_and_compare(&make_image(&sub, "ext4", 16 * MIB, args));
            assert_eq!(found.fstype, expected, "{args:?}");
        }
        let c = probe(&dir.path().join("c/ext4.img")).unwrap().unwrap();
        assert_eq!(c.label.as_deref(), Some("abcdefghijklmnop"));
        let unlabelled = probe(&dir.path().join("a/ext4.img")).unwrap().unwrap();
        assert_eq!(unlabelled.label, None);
    }

    #[test]
    fn xfs_matches_blkid() {
        require("mkfs.xfs");
        let dir = tempfile::tempdir().unwrap();
        let image = make_image(dir.path(), "xfs", 300 * MIB, &["-L", "xfs lbl"]);
        let found = probe_and_compare(&image);
        assert_eq!(found.fstype, "xfs");
        assert_eq!(found.label.as_deref(), Some("xfs lbl"));
    }

    #[test]
    fn btrfs_matches_blkid() {
        require("mkfs.btrfs");
        let dir = tempfile::tempdir().unwrap();
        let image = make_image(dir.path(), "btrfs", 300 * MIB, &["-L", "a btrfs label"]);
        let found = probe_and_compare(&image);
        assert_eq!(found.fstype, "btrfs");
        assert_eq!(found.label.as_deref(), Some("a btrfs label"));
    }

    #[test]
    fn short_empty_and_garbage_files_are_no_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // A small deterministic pseudo-random pattern (xorshift), no magic by construction.
        let mut x: u32 = 0x9e37_79b9;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for len in [
            0, 1, 100, 1024, 1080, 1082, 2047, 2048, 4096, 65536, 65600, 70000, 200_000,
        ] {
            std::fs::write(&path, &noise[..len]).unwrap();
            assert_eq!(probe(&path).unwrap(), None, "noise of {len} bytes");
            std::fs::write(&path, vec![0u8; len]).unwrap();
            assert_eq!(probe(&path).unwrap(), None, "zeros of {len} bytes");
        }
        assert!(probe(&dir.path().join("missing")).is_err());
        // Neither a FIFO (O_NONBLOCK: the open does not wait for a writer) nor a directory.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(probe(&fifo).is_err());
        assert!(probe(dir.path()).is_err());
    }

    #[test]
    fn truncated_superblocks_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let image = make_image(dir.path(), "ext4", 16 * MIB, &["-L", "cut"]);
        let bytes = std::fs::read(&image).unwrap();
        let sb = &bytes[EXT_SB_OFFSET..EXT_SB_OFFSET + 1024];
        for cut in 0..sb.len() {
            let found = probe_ext(&sb[..cut]);
            assert_eq!(found.is_some(), cut >= 136, "cut at {cut}");
        }
        let mut xfs = vec![0u8; 512];
        xfs[..4].copy_from_slice(b"XFSB");
        assert_eq!(probe_xfs(&xfs), None, "block size 0 is not XFS");
        xfs[4..8].copy_from_slice(&4096u32.to_be_bytes());
        xfs[88..92].copy_from_slice(&4u32.to_be_bytes());
        for cut in 0..xfs.len() {
            assert_eq!(probe_xfs(&xfs[..cut]).is_some(), cut >= 120, "cut at {cut}");
        }
        let mut btrfs = vec![0u8; 555];
        btrfs[64..72].copy_from_slice(BTRFS_MAGIC);
        for cut in 0..btrfs.len() {
            assert_eq!(
                probe_btrfs(&btrfs[..cut]).is_some(),
                cut >= 555,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn nil_uuid_and_external_journal_are_reported_as_blkid_does() {
        let dir = tempfile::tempdir().unwrap();
        let image = make_image(dir.path(), "ext2", 16 * MIB, &[]);
        let mut bytes = std::fs::read(&image).unwrap();
        bytes[EXT_SB_OFFSET + 104..EXT_SB_OFFSET + 120].fill(0);
        let sb = &bytes[EXT_SB_OFFSET..EXT_SB_OFFSET + 1024];
        assert_eq!(probe_ext(sb).unwrap().uuid, None);
        let journal = make_image(dir.path(), "ext4", 16 * MIB, &["-O", "journal_dev"]);
        assert_eq!(probe(&journal).unwrap(), None);
        assert_eq!(blkid(&journal).0, "jbd");
    }

    #[test]
    fn drbd_backing_device_is_not_a_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let image = make_image(dir.path(), "ext4", 16 * MIB, &["-L", "backing"]);
        assert!(probe(&image).unwrap().is_some());
        // DRBD 9 internal meta-data: the magic 4 KiB before the end, at +60, big-endian.
        let file = OpenOptions::new().write(true).open(&image).unwrap();
        file.write_at(&0x8374_026du32.to_be_bytes(), 16 * MIB - 4096 + 60)
            .unwrap();
        drop(file);
        assert_eq!(probe(&image).unwrap(), None);
        assert_eq!(blkid(&image).0, "drbd", "blkid agrees it is DRBD meta-data");
    }

    #[test]
    fn stale_second_signature_is_an_error() {
        require("mkfs.btrfs");
        let dir = tempfile::tempdir().unwrap();
        let btrfs = std::fs::read(make_image(dir.path(), "btrfs", 300 * MIB, &[])).unwrap();
        let ext4 = make_image(dir.path(), "ext4", 300 * MIB, &[]);
        // What an old mkfs that wiped nothing would leave: ext4 with btrfs's superblock at 64 KiB.
        let file = OpenOptions::new().write(true).open(&ext4).unwrap();
        let at = BTRFS_SB_OFFSET as usize;
        file.write_at(&btrfs[at..at + 4096], BTRFS_SB_OFFSET)
            .unwrap();
        drop(file);
        let err = probe(&ext4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("ext4, btrfs"), "{err}");
        // blkid -p refuses too ("ambivalent result"), exit code 8.
        require("blkid");
        let status = Command::new("blkid").arg("-p").arg(&ext4).output().unwrap();
        assert!(!status.status.success());
    }

    #[test]
    fn uuid_and_label_helpers() {
        let bytes: Vec<u8> = (0u8..16).map(|i| i * 17).collect();
        assert_eq!(
            format_uuid(&bytes).unwrap(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(format_uuid(&[0; 16]), None);
        assert_eq!(format_uuid(&[1; 15]), None);
        assert_eq!(text_field(b"data\0\0\0\0"), Some("data".into()));
        assert_eq!(text_field(b"with space  \0"), Some("with space".into()));
        assert_eq!(text_field(b"\0abc"), None);
        assert_eq!(text_field(b"   "), None);
        assert_eq!(text_field(b"full"), Some("full".into()));
        assert_eq!(udev_encode("my label/x"), "my\\x20label\\x2fx");
        assert_eq!(udev_encode("db-01_a.b"), "db-01_a.b");
        assert_eq!(udev_encode("données"), "données");
    }

    #[test]
    fn block_dev_number_rejects_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let err = block_dev_number(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = block_dev_number(Path::new("/dev/null")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(block_dev_number(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn proc_partitions_is_listed() {
        let listed = listed_devices().unwrap();
        assert!(listed.iter().all(|(p, _)| p.starts_with("/dev")));
    }

    #[test]
    #[ignore = "needs root"]
    fn finds_a_loop_device_by_uuid_and_label() {
        use super::super::mounts::test_support::LoopDevice;
        let dir = tempfile::tempdir().unwrap();
        // Unique per run: other tests and other people's loop devices share the machine.
        let label = format!("fh{:x}", std::process::id());
        let image = make_image(dir.path(), "ext4", 32 * MIB, &["-L", &label]);
        let uuid = probe(&image).unwrap().unwrap().uuid.unwrap();
        let loop_dev = LoopDevice::attach(&image);
        let found = probe_and_compare(&loop_dev.path);
        assert_eq!(found.uuid.as_deref(), Some(uuid.as_str()));

        let started = std::time::Instant::now();
        let by_uuid = find_by_uuid(&uuid).unwrap();
        let took = started.elapsed();
        assert_eq!(by_uuid.as_deref(), Some(loop_dev.path.as_path()));
        eprintln!(
            "find_by_uuid over {} devices: {took:?}",
            listed_devices().unwrap().len()
        );
        assert_eq!(
            find_by_uuid(&uuid.to_ascii_uppercase()).unwrap().as_deref(),
            Some(loop_dev.path.as_path())
        );
        assert_eq!(
            find_by_label(&label).unwrap().as_deref(),
            Some(loop_dev.path.as_path())
        );
        assert_eq!(find_by_label(&format!("{label}x")).unwrap(), None);
        assert_eq!(
            find_by_uuid("00000000-0000-4000-8000-000000000000").unwrap(),
            None
        );

        let rdev = block_dev_number(&loop_dev.path).unwrap();
        let minor: u32 = loop_dev.path.to_str().unwrap()["/dev/loop".len()..]
            .parse()
            .unwrap();
        assert_eq!(rdev, libc::makedev(7, minor));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&loop_dev.path, &link).unwrap();
        assert_eq!(block_dev_number(&link).unwrap(), rdev);
    }
}
