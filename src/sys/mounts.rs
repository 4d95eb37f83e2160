//! The mount table as the kernel reports it in `/proc/<pid>/mountinfo`, for the caller's mount
//! namespace and for every other one on the machine.
//!
//! Why every namespace: a filesystem unmounted here can stay mounted in a copy of the mount
//! table that another namespace took while it was mounted (a container, a systemd service with
//! `PrivateTmp=`, an `unshare`). The block device then stays open and DRBD cannot demote, while
//! our own mount table looks clean. The fs agent finds such copies with
//! [`mounts_in_other_namespaces`] and removes them with [`umount_in_namespace`].
//!
//! mountinfo rather than `/proc/mounts`: it carries the device number (exact where a source
//! name such as `/dev/disk/by-uuid/…` or `/dev/mapper/…` is not) and the mount ids.

use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

/// One line of `/proc/<pid>/mountinfo` (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique id of the mount (reused after unmount).
    pub mount_id: u32,
    /// Id of the parent mount (its own id for the root of a namespace).
    pub parent_id: u32,
    /// Major number of the filesystem's device (`st_dev` of files on it).
    pub major: u32,
    /// Minor number of the filesystem's device.
    pub minor: u32,
    /// The directory of the filesystem that forms the root of this mount (`/` unless a bind
    /// mount of a subdirectory or a btrfs subvolume).
    pub root: String,
    /// Where it is mounted, relative to the root of the process whose table this is.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub mount_options: String,
    /// Filesystem type (`ext4`, `fuse.sshfs`).
    pub fstype: String,
    /// What was mounted (`/dev/drbd0`, `tmpfs`, `none`).
    pub source: String,
    /// Per-superblock options (`rw,errors=remount-ro`).
    pub super_options: String,
}

impl MountEntry {
    /// The filesystem's device number, comparable with `st_dev` and with the device column
    /// of `/proc/<pid>/maps`. For ext* and xfs it is the block device's `st_rdev`; btrfs
    /// reports an anonymous device (major 0) here instead.
    pub fn dev(&self) -> u64 {
        libc::makedev(self.major, self.minor)
    }

    /// True when mounted read-only, either this mount (`mount -o bind,ro`) or the whole
    /// superblock (e.g. ext4 remounted read-only after an I/O error).
    pub fn is_read_only(&self) -> bool {
        let has_ro = |options: &str| options.split(',').any(|o| o == "ro");
        has_ro(&self.mount_options) || has_ro(&self.super_options)
    }
}

/// Parses the text of a mountinfo file. Octal escapes the kernel writes for space, tab,
/// newline and backslash in paths (`\040`, `\011`, `\012`, `\134`) are decoded. Malformed
/// lines are skipped; no input makes it panic.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    parse_mountinfo_bytes(text.as_bytes())
}

/// As [`parse_mountinfo`], on raw bytes: mount points need not be UTF-8, and a [`PathBuf`]
/// keeps them exact.
fn parse_mountinfo_bytes(bytes: &[u8]) -> Vec<MountEntry> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_line(line: &[u8]) -> Option<MountEntry> {
    // Split on single spaces, not runs of whitespace: an empty source shows as an empty field.
    let mut fields = line.split(|&b| b == b' ');
    let mount_id = parse_decimal(fields.next()?)?;
    let parent_id = parse_decimal(fields.next()?)?;
    let (major, minor) = {
        let field = fields.next()?;
        let colon = field.iter().position(|&b| b == b':')?;
        (
            parse_decimal(&field[..colon])?,
            parse_decimal(&field[colon + 1..])?,
        )
    };
    let root = lossy(&unescape(fields.next()?));
    let mount_point = PathBuf::from(OsString::from_vec(unescape(fields.next()?)));
    let mount_options = lossy(fields.next()?);
    // Zero or more optional fields ("shared:1", "master:2", "unbindable") end at a lone "-".
    while fields.next()? != b"-" {}
    let fstype = lossy(&unescape(fields.next()?));
    let source = lossy(&unescape(fields.next()?));
    let super_options = lossy(&unescape(fields.next()?));
    if mount_point.as_os_str().is_empty() || fstype.is_empty() {
        return None;
    }
    Some(MountEntry {
        mount_id,
        parent_id,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        fstype,
        source,
        super_options,
    })
}

fn parse_decimal(field: &[u8]) -> Option<u32> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes the kernel's `\ooo` octal escapes; a backslash not followed by three octal digits
/// (that fit a byte) is kept as it is.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    let octal = |d: u8| (b'0'..=b'7').contains(&d);
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(&[a, b, c]) = field.get(i + 1..i + 4)
            && (b'0'..=b'3').contains(&a)
            && octal(b)
            && octal(c)
        {
            out.push(((a - b'0') << 6) | ((b - b'0') << 3) | (c - b'0'));
            i += 4;
            continue;
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// Reads the mount table of `pid` (`None`: the caller's own, `/proc/self`).
pub fn read_mountinfo(pid: Option<u32>) -> io::Result<Vec<MountEntry>> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/mountinfo"),
        None => "/proc/self/mountinfo".to_string(),
    };
    Ok(parse_mountinfo_bytes(&std::fs::read(path)?))
}

/// The pids of all processes visible in `/proc` (thread-group leaders only).
pub(crate) fn process_ids() -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The mount namespace of `pid` (`None`: the caller), as the kernel names it:
/// `mnt:[4026531841]`.
pub(crate) fn mount_namespace(pid: Option<u32>) -> io::Result<String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/ns/mnt"),
        None => "/proc/self/ns/mnt".to_string(),
    };
    Ok(std::fs::read_link(path)?.to_string_lossy().into_owned())
}

/// Where a device is mounted in one mount namespace other than the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignMounts {
    /// The namespace, as the kernel names it: `mnt:[4026531841]`.
    pub ns: String,
    /// One process that lived in it during the scan: the way in for [`umount_in_namespace`].
    pub pid: u32,
    /// The mount points of the device there, as that process sees them, in mount order
    /// (so the last one may cover an earlier one at the same place).
    pub mount_points: Vec<PathBuf>,
}

/// Mount points of device `dev` (compare [`MountEntry::dev`]) in mount namespaces other than
/// the caller's, one item per namespace that has any, among the processes that share the
/// caller's network namespace: the copies this node's own services made (systemd's
/// PrivateTmp/ProtectSystem, `unshare -m`). A mount namespace whose processes have a network
/// of their own is another machine as far as a cluster is concerned (a container, or another
/// node of a test cluster on one host): its mounts are not this node's to remove. Processes
/// that exit during the scan or whose namespace we may not read are skipped; a namespace no
/// process lives in any more (kept only by a bind-mounted nsfs file) cannot be seen this way.
pub fn mounts_in_other_namespaces(dev: u64) -> io::Result<Vec<ForeignMounts>> {
    let own = mount_namespace(None)?;
    let net = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).ok();
    let own_net = net("self");
    let me = std::process::id();
    let mut seen = HashSet::from([own]);
    let mut found = Vec::new();
    for pid in process_ids()? {
        if pid == me || net(&pid.to_string()) != own_net {
            continue;
        }
        // One readlink per process; the mountinfo only once per namespace.
        let Ok(ns) = mount_namespace(Some(pid)) else {
            continue;
        };
        if seen.contains(&ns) {
            continue;
        }
        let Ok(entries) = read_mountinfo(Some(pid)) else {
            // Gone or not ours to read: another process in the namespace may do.
            continue;
        };
        let mount_points: Vec<PathBuf> = entries
            .into_iter()
            .filter(|entry| entry.dev() == dev)
            .map(|entry| entry.mount_point)
            .collect();
        if !mount_points.is_empty() {
            found.push(ForeignMounts {
                ns: ns.clone(),
                pid,
                mount_points,
            });
        }
        seen.insert(ns);
    }
    Ok(found)
}

/// Which step of [`umount_in_namespace`]'s child failed, as reported through its pipe.
const STEP_SETNS: i32 = 1;
const STEP_UMOUNT: i32 = 2;

/// How long a killed helper gets to disappear before we stop waiting for it.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// Unmounts `mount_point` (a path as `pid` sees it, e.g. from [`ForeignMounts`]) inside the
/// mount namespace of `pid`, leaving the caller's namespace untouched.
///
/// A forked child enters the namespace (`setns` needs a single-threaded caller, which a fresh
/// child always is), calls `umount2` and reports the result. Never `MNT_DETACH`: a lazy unmount
/// reports success while the filesystem stays in use, and DRBD then still cannot demote.
/// `UMOUNT_NOFOLLOW` keeps a symlink planted in that namespace from redirecting us.
///
/// Requirement: call it while the process is single-threaded (the agents are). After `fork`
/// the child runs only async-signal-safe system calls on memory prepared before the fork, so
/// even a multi-threaded caller (a test harness) is sound, but it should not make a habit of it.
///
/// Errors: the `umount2` errno as is (`EBUSY`: still in use there; `EINVAL`: not a mount
/// point there); failing to enter the namespace is reported with that context. If the child
/// has not finished within `timeout` (an unmount that blocks on a dead NFS server), it is sent
/// SIGKILL and `TimedOut` is returned; a child stuck in the kernel is then left to be reaped
/// by init once the caller exits, instead of blocking the caller.
pub fn umount_in_namespace(pid: u32, mount_point: &Path, timeout: Duration) -> io::Result<()> {
    // Everything the child needs is prepared here: after fork it may not allocate.
    let ns = File::open(format!("/proc/{pid}/ns/mnt"))?;
    let path = CString::new(mount_point.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "mount point contains a NUL byte",
        )
    })?;
    // The child writes (step, errno) here; the parent sees end-of-file once the child exits,
    // which lets it wait with poll() and a deadline instead of polling waitpid().
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC)?;
    let ns_fd = ns.as_raw_fd();
    let write_fd = report_write.as_raw_fd();
    // SAFETY: in the child only async-signal-safe calls follow (setns, umount2, write, _exit)
    // on file descriptors and a C string that were set up before the fork; the child never
    // returns into Rust code that could allocate, lock or unwind.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let mut report = [0i32; 2];
            // SAFETY: raw system calls on valid descriptors and a NUL-terminated string.
            unsafe {
                if libc::setns(ns_fd, libc::CLONE_NEWNS) != 0 {
                    report = [STEP_SETNS, Errno::last_raw()];
                } else if libc::umount2(path.as_ptr(), libc::UMOUNT_NOFOLLOW) != 0 {
                    report = [STEP_UMOUNT, Errno::last_raw()];
                }
                libc::write(
                    write_fd,
                    report.as_ptr().cast(),
                    std::mem::size_of_val(&report),
                );
                libc::_exit(report[1] & 0xff);
            }
        }
        ForkResult::Parent { child } => {
            drop(report_write);
            drop(ns);
            wait_for_umount_child(child, report_read, pid, mount_point, timeout)
        }
    }
}

/// The parent's half of [`umount_in_namespace`].
fn wait_for_umount_child(
    child: Pid,
    report: std::os::fd::OwnedFd,
    pid: u32,
    mount_point: &Path,
    timeout: Duration,
) -> io::Result<()> {
    let mut buf = [0u8; 8];
    if wait_readable(&report, timeout) {
        let got = read_full(&report, &mut buf);
        // The report is in or the pipe is at EOF: the child is exiting, so this wait is short.
        let status = waitpid(child, None);
        return decode_umount_report(&buf[..got], pid).unwrap_or_else(|| {
            Err(io::Error::other(format!(
                "umount {} in the namespace of pid {pid}: helper ended without an answer \
                 ({status:?})",
                mount_point.display()
            )))
        });
    }
    log::warn!(
        "umount {} in the namespace of pid {pid}: no answer within {} ms; killing helper {child}",
        mount_point.display(),
        timeout.as_millis()
    );
    let _ = kill(child, Signal::SIGKILL);
    if wait_readable(&report, KILL_GRACE) {
        // It may have finished just before the signal: then its answer is the truth.
        let got = read_full(&report, &mut buf);
        let _ = waitpid(child, None);
        if let Some(result) = decode_umount_report(&buf[..got], pid) {
            return result;
        }
    } else {
        // Stuck in uninterruptible sleep: reap it if it is already gone, never block.
        let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "umount {} in the namespace of pid {pid}: no answer within {} ms",
            mount_point.display(),
            timeout.as_millis()
        ),
    ))
}

/// The result a complete (step, errno) report from the child stands for; `None` when the
/// report is incomplete (the child died first).
fn decode_umount_report(report: &[u8], pid: u32) -> Option<io::Result<()>> {
    let report: [u8; 8] = report.try_into().ok()?;
    let step = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    Some(match step {
        0 => Ok(()),
        STEP_SETNS => {
            let cause = io::Error::from_raw_os_error(errno);
            Err(io::Error::new(
                cause.kind(),
                format!("entering the mount namespace of pid {pid}: {cause}"),
            ))
        }
        _ => Err(io::Error::from_raw_os_error(errno)),
    })
}

/// Waits until `fd` is readable or hung up, at most `timeout`. False on timeout.
fn wait_readable(fd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so that a sub-millisecond remainder does not become a busy loop.
        let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) if left.is_zero() => return false,
            Ok(0) => continue,
            Ok(_) => return true,
            Err(Errno::EINTR) => continue,
            // Only ENOMEM is left: give up as on a timeout, which stays bounded (a blocking
            // read would not).
            Err(_) => return false,
        }
    }
}

/// Reads until `buf` is full or end-of-file; the number of bytes read.
fn read_full(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:5 / /dev rw,nosuid shared:2 master:7 - devtmpfs udev rw,size=4018000k,mode=755
40 22 7:3 /data /srv/my\\040db\\011x rw,noatime - xfs /dev/loop3 ro,attr2,inode64
41 22 147:0 / /mnt/back\\134slash ro,relatime - ext4 /dev/drbd0 rw
42 22 0:60 / /mnt/empty-source rw - tmpfs  rw
";

    #[test]
    fn parses_fields_and_optional_tags() {
        let entries = parse_mountinfo(SAMPLE);
        assert_eq!(entries.len(), 6);
        let root = &entries[0];
        assert_eq!(
            root,
            &MountEntry {
                mount_id: 22,
                parent_id: 1,
                major: 254,
                minor: 1,
                root: "/".into(),
                mount_point: "/".into(),
                mount_options: "rw,relatime".into(),
                fstype: "ext4".into(),
                source: "/dev/vda1".into(),
                super_options: "rw,errors=remount-ro".into(),
            }
        );
        // Two optional fields before the separator.
        assert_eq!(entries[2].fstype, "devtmpfs");
        assert_eq!(entries[2].source, "udev");
        assert_eq!(entries[5].source, "");
        assert_eq!(entries[5].super_options, "rw");
    }

    #[test]
    fn decodes_octal_escapes_in_paths() {
        let entries = parse_mountinfo(SAMPLE);
        assert_eq!(entries[3].mount_point, Path::new("/srv/my db\tx"));
        assert_eq!(entries[3].root, "/data");
        assert_eq!(entries[4].mount_point, Path::new("/mnt/back\\slash"));
        let newline = parse_mountinfo("1 1 0:1 / /a\\012b rw - tmpfs x\\040y rw\n");
        assert_eq!(newline[0].mount_point, Path::new("/a\nb"));
        assert_eq!(newline[0].source, "x y");
        // Not an escape: kept literally.
        assert_eq!(unescape(b"a\\9zz\\"), b"a\\9zz\\");
        assert_eq!(unescape(b"\\777"), b"\\777");
    }

    #[test]
    fn read_only_and_dev() {
        let entries = parse_mountinfo(SAMPLE);
        assert!(!entries[0].is_read_only());
        assert!(entries[3].is_read_only(), "superblock ro");
        assert!(entries[4].is_read_only(), "mount ro");
        assert_eq!(entries[4].dev(), libc::makedev(147, 0));
        let rofs = parse_mountinfo("1 1 0:1 / /a rw - tmpfs x rw,errors=ro\n");
        assert!(!rofs[0].is_read_only(), "only a whole option counts");
    }

    #[test]
    fn skips_malformed_lines_without_panicking() {
        let garbage = [
            "",
            "\n\n",
            "x 1 0:1 / /a rw - tmpfs t rw",
            "1 1 01 / /a rw - tmpfs t rw",
            "1 1 0: / /a rw - tmpfs t rw",
            "1 1 0:1 / /a rw shared:1 tmpfs t rw",
            "1 1 0:1 / /a rw -",
            "1 1 0:1 / /a rw - tmpfs",
            "1 1 0:1 / /a rw - tmpfs t",
            "99999999999 1 0:1 / /a rw - tmpfs t rw",
            "1 1 0:1 / \\",
            "\u{0}\u{ff} \\\\\\ - - -",
        ];
        for line in garbage {
            assert_eq!(parse_mountinfo(line), vec![], "{line:?}");
        }
        let mixed = format!("junk\n{SAMPLE}more junk");
        assert_eq!(parse_mountinfo(&mixed).len(), 6);
        // Every prefix of a valid table parses without panicking.
        for cut in 0..SAMPLE.len() {
            if SAMPLE.is_char_boundary(cut) {
                let _ = parse_mountinfo(&SAMPLE[..cut]);
            }
        }
    }

    #[test]
    fn non_utf8_mount_points_stay_exact() {
        let line = b"1 1 0:1 / /mnt/\xff\xfe rw - tmpfs t rw\n";
        let entries = parse_mountinfo_bytes(line);
        assert_eq!(
            entries[0].mount_point.as_os_str().as_bytes(),
            b"/mnt/\xff\xfe"
        );
    }

    #[test]
    fn own_table_has_a_root_and_proc() {
        let entries = read_mountinfo(None).unwrap();
        assert!(entries.iter().any(|e| e.mount_point == Path::new("/")));
        let by_pid = read_mountinfo(Some(std::process::id())).unwrap();
        assert_eq!(entries.len(), by_pid.len());
        assert!(read_mountinfo(Some(u32::MAX)).is_err());
    }

    #[test]
    fn umount_in_a_missing_process_fails_cleanly() {
        let err = umount_in_namespace(u32::MAX, Path::new("/nowhere"), Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn foreign_scan_is_fast_and_excludes_own_namespace() {
        let own = mount_namespace(None).unwrap();
        let root_dev = read_mountinfo(None)
            .unwrap()
            .into_iter()
            .rfind(|e| e.mount_point == Path::new("/"))
            .unwrap()
            .dev();
        let started = Instant::now();
        let found = mounts_in_other_namespaces(root_dev).unwrap();
        let took = started.elapsed();
        eprintln!(
            "mounts_in_other_namespaces: {} namespaces with the root device, {} processes, {took:?}",
            found.len(),
            process_ids().unwrap().len()
        );
        assert!(found.iter().all(|f| f.ns != own));
        let unique: HashSet<&String> = found.iter().map(|f| &f.ns).collect();
        assert_eq!(unique.len(), found.len());
    }

    #[test]
    fn a_helper_past_its_deadline_is_killed_and_reaped() {
        // With no time at all the helper has almost never answered yet: this takes the
        // SIGKILL path. Should it win the race, its answer (not mounted; not permitted when
        // not root) is fine too. Either way the call returns promptly.
        let started = Instant::now();
        let err = umount_in_namespace(
            std::process::id(),
            Path::new("/nonexistent/ferroha"),
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ),
            "{err}"
        );
        assert!(started.elapsed() < KILL_GRACE + Duration::from_secs(1));
    }

    #[test]
    fn helper_reports_decode_to_errors() {
        let report = |step: i32, errno: i32| {
            let mut bytes = step.to_ne_bytes().to_vec();
            bytes.extend_from_slice(&errno.to_ne_bytes());
            decode_umount_report(&bytes, 42)
        };
        assert!(matches!(report(0, 0), Some(Ok(()))));
        let busy = report(STEP_UMOUNT, libc::EBUSY).unwrap().unwrap_err();
        assert_eq!(busy.raw_os_error(), Some(libc::EBUSY));
        let denied = report(STEP_SETNS, libc::EPERM).unwrap().unwrap_err();
        assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            denied
                .to_string()
                .starts_with("entering the mount namespace of pid 42")
        );
        assert!(
            decode_umount_report(&[0, 0, 0], 42).is_none(),
            "child died mid-report"
        );
        assert!(decode_umount_report(&[], 42).is_none());
    }

    #[test]
    fn waiting_on_a_silent_pipe_times_out() {
        let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).unwrap();
        let started = Instant::now();
        assert!(!wait_readable(&read_end, Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(write_end);
        assert!(
            wait_readable(&read_end, Duration::from_secs(5)),
            "hang-up is readable"
        );
        assert_eq!(read_full(&read_end, &mut [0u8; 8]), 0);
    }

    #[test]
    #[ignore = "needs root"]
    fn foreign_copies_are_found_and_unmounted() {
        use super::test_support::*;
        use std::process::Command;
        let name = test_name(module_path!(), "foreign_copies_are_found_and_unmounted");
        if !in_private_mount_namespace(&name) {
            return;
        }
        let mut fs = Ext4OnLoop::new("fhmounts");
        fs.mount();
        let mnt = fs.mount_point.clone();
        let own = mount_namespace(None).unwrap();
        // Each takes its own copy of our mount table, with the filesystem in it.
        let unshared = |cwd: &Path| {
            Guarded::spawn(
                Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "sleep", "60"])
                    .current_dir(cwd),
            )
        };
        let idle = unshared(Path::new("/"));
        let busy = unshared(&mnt);
        for child in [&idle, &busy] {
            wait_until("unshare to run sleep in a new namespace", || {
                comm(child.pid()) == "sleep"
                    && mount_namespace(Some(child.pid())).is_ok_and(|ns| ns != own)
            });
        }

        let started = Instant::now();
        let mut found = mounts_in_other_namespaces(fs.dev).unwrap();
        let took = started.elapsed();
        eprintln!(
            "mounts_in_other_namespaces over {} processes: {took:?}",
            process_ids().unwrap().len()
        );
        found.sort_by_key(|f| f.pid);
        let expect = |pid: u32| ForeignMounts {
            ns: mount_namespace(Some(pid)).unwrap(),
            pid,
            mount_points: vec![mnt.clone()],
        };
        let mut expected = vec![expect(idle.pid()), expect(busy.pid())];
        expected.sort_by_key(|f| f.pid);
        assert_eq!(found, expected);

        // Busy there: refused, never detached.
        let err = umount_in_namespace(busy.pid(), &mnt, Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
        let started = Instant::now();
        umount_in_namespace(idle.pid(), &mnt, Duration::from_secs(5)).unwrap();
        eprintln!("umount_in_namespace: {:?}", started.elapsed());
        let left = mounts_in_other_namespaces(fs.dev).unwrap();
        assert_eq!(left, vec![expect(busy.pid())]);
        assert!(
            read_mountinfo(None)
                .unwrap()
                .iter()
                .any(|e| e.dev() == fs.dev && e.mount_point == mnt),
            "the caller's own mount is untouched"
        );
        let err = umount_in_namespace(idle.pid(), &mnt, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EINVAL),
            "no longer a mount point"
        );
        let err = umount_in_namespace(
            idle.pid(),
            Path::new("/no/such/dir"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    fn comm(pid: u32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

/// Fixtures for the root-only tests of `sys::mounts`, `sys::holders` and `sys::blkdev`: a
/// private mount namespace per test, loop devices, and processes that are always cleaned up.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// Set in the copy of the test binary that runs inside the private mount namespace.
    const INSIDE_MOUNT_NS: &str = "FERROHA_SYS_TEST_IN_MOUNT_NS";

    /// Runs the test `test_path` (e.g. `sys::holders::tests::finds_holders`) again in a new
    /// private mount namespace and returns true there; in the outer process, waits for that
    /// run, asserts that it passed and returns false. Mounts made inside die with the
    /// namespace, whatever happens to the test.
    pub(crate) fn in_private_mount_namespace(test_path: &str) -> bool {
        if std::env::var_os(INSIDE_MOUNT_NS).is_some() {
            return true;
        }
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().expect("test binary path"))
            .args(["--exact", test_path])
            .args(["--include-ignored", "--nocapture", "--test-threads=1"])
            .env(INSIDE_MOUNT_NS, "1")
            .status()
            .expect("run unshare");
        assert!(
            status.success(),
            "{test_path} inside a private mount namespace failed: {status}"
        );
        false
    }

    /// Runs a command to success and returns its trimmed stdout.
    pub(crate) fn run(program: &str, args: &[&str]) -> String {
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A sparse file of `size` bytes with a fresh filesystem: `mkfs.<fstype>`, then `extra`.
    pub(crate) fn make_image(dir: &Path, fstype: &str, size: u64, extra: &[&str]) -> PathBuf {
        let image = dir.join(format!("{fstype}.img"));
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(size).unwrap();
        drop(file);
        let force = if fstype.starts_with("ext") {
            "-F"
        } else {
            "-f"
        };
        let mut args = vec![force, "-q"];
        args.extend_from_slice(extra);
        args.push(image.to_str().unwrap());
        run(&format!("mkfs.{fstype}"), &args);
        image
    }

    /// A loop device over an image file, detached on drop (only if it still serves our image,
    /// so that a device number reused by someone else is never detached).
    pub(crate) struct LoopDevice {
        /// `/dev/loopN`.
        pub(crate) path: PathBuf,
        image: PathBuf,
    }

    impl LoopDevice {
        pub(crate) fn attach(image: &Path) -> LoopDevice {
            let path = run("losetup", &["--find", "--show", image.to_str().unwrap()]);
            LoopDevice {
                path: PathBuf::from(path),
                image: image.canonicalize().unwrap(),
            }
        }

        fn backing_file(&self) -> Option<PathBuf> {
            let name = self.path.file_name()?.to_str()?;
            let text =
                std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
            Some(PathBuf::from(text.trim_end()))
        }

        /// Asks the kernel to detach the device as soon as nothing uses it any more. Called
        /// while it is mounted, this makes the detach survive even a killed test: the mount
        /// dies with the test's namespace, and with it the last user.
        pub(crate) fn detach_when_unused(&self) {
            if self.backing_file().as_deref() == Some(self.image.as_path()) {
                let _ = Command::new("losetup")
                    .arg("-d")
                    .arg(&self.path)
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    impl Drop for LoopDevice {
        fn drop(&mut self) {
            self.detach_when_unused();
        }
    }

    /// Unmounts on drop (normal unmount; the processes using it are killed before).
    pub(crate) struct Mounted(pub(crate) PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::empty());
        }
    }

    /// A child process killed and reaped on drop. It also dies with the thread that started it
    /// (PR_SET_PDEATHSIG), should the test itself be killed.
    pub(crate) struct Guarded(pub(crate) Child);

    impl Guarded {
        pub(crate) fn spawn(cmd: &mut Command) -> Guarded {
            // SAFETY: prctl is async-signal-safe and affects only the child.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            Guarded(cmd.stdin(Stdio::null()).spawn().expect("spawn"))
        }

        pub(crate) fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Guarded {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Polls `condition` every 10 ms for up to 10 s; panics naming `what` on the deadline.
    pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < give_up, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// An ext4 image on a loop device with a mount point directory next to it; mounted by
    /// [`Ext4OnLoop::mount`], which must run inside a private mount namespace. Fields drop in
    /// order: unmount, detach, remove the directory.
    pub(crate) struct Ext4OnLoop {
        mounted: Option<Mounted>,
        pub(crate) loop_dev: LoopDevice,
        /// The temporary directory holding the image and the mount point.
        pub(crate) dir: tempfile::TempDir,
        /// `<dir>/mnt`.
        pub(crate) mount_point: PathBuf,
        /// The loop device's number, which is also the mount's `dev()`.
        pub(crate) dev: u64,
    }

    impl Ext4OnLoop {
        pub(crate) fn new(label: &str) -> Ext4OnLoop {
            let dir = tempfile::tempdir().unwrap();
            let image = make_image(dir.path(), "ext4", 32 << 20, &["-L", label]);
            let loop_dev = LoopDevice::attach(&image);
            let mount_point = dir.path().join("mnt");
            std::fs::create_dir(&mount_point).unwrap();
            let dev = crate::sys::blkdev::block_dev_number(&loop_dev.path).unwrap();
            Ext4OnLoop {
                mounted: None,
                loop_dev,
                dir,
                mount_point,
                dev,
            }
        }

        pub(crate) fn mount(&mut self) {
            // Never into the machine's own table: this must be a namespace of our own.
            let own = super::mount_namespace(None).unwrap();
            assert_ne!(
                Some(own),
                super::mount_namespace(Some(1)).ok(),
                "refusing to mount outside a private mount namespace"
            );
            nix::mount::mount(
                Some(&self.loop_dev.path),
                &self.mount_point,
                Some("ext4"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .expect("mount ext4");
            self.mounted = Some(Mounted(self.mount_point.clone()));
            self.loop_dev.detach_when_unused();
        }
    }

    /// The harness name of a test function in module `module` (from `module_path!()`).
    pub(crate) fn test_name(module: &str, test_fn: &str) -> String {
        let without_crate = module.split_once("::").map_or(module, |(_, rest)| rest);
        format!("{without_crate}::{test_fn}")
    }
}
