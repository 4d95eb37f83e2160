//! Which processes keep a filesystem busy: open files, working directories, roots,
//! executables and memory-mapped files, found through `/proc` alone (no `fuser`, no `lsof`).
//!
//! Exactness is the point. The fs agent may kill what this reports, so a process that merely
//! uses the parent filesystem must never appear: `fuser -m` reports every user of the
//! filesystem a path is on, and the Filesystem agent killed unrelated processes that way
//! (ClusterLabs/resource-agents#1944). Two scans trade exactness against safety:
//! [`HolderScan::Stat`] compares device numbers and is exact, but `stat` can hang on a dead
//! network filesystem; [`HolderScan::Links`] only reads link text and never touches the
//! filesystem, matching paths against the mount table of each process's own mount namespace.
//! Memory maps are exact in both: `/proc/<pid>/maps` names the mapped file's device.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::mounts::{self, MountEntry};

/// How to find holders (the fs agent's `force_unmount=true` vs `safe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderScan {
    /// `stat()` every `/proc/<pid>/{cwd,root,exe,fd/*}` link and match `st_dev == dev`:
    /// exact even for paths from other mount namespaces, but `stat` can hang on a dead network
    /// filesystem (any one a process has open, not only the one being unmounted). Files in a
    /// btrfs subvolume other than the mounted one have their own `st_dev` and are missed.
    Stat,
    /// Only `readlink()` the same links and match the path text against the mount points of
    /// `dev` in the process's mount namespace (equal, or below `<mount_point>/`, and not below
    /// a deeper mount of another device); never stats anything on the filesystem, so a hung
    /// NFS cannot hang the scan. Open files are confirmed by the mount id in
    /// `/proc/<pid>/fdinfo`. Limit: a working directory (or root, or executable) in the
    /// directory the mount now covers reads the same as one inside the mount and is reported.
    Links,
}

/// A process that holds the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its pid.
    pub pid: u32,
    /// Its name from `/proc/<pid>/comm`, trimmed.
    pub command: String,
    /// How it holds the filesystem: `cwd`, `root`, `exe`, `fd 3: /mnt/x/f`,
    /// `map /mnt/x/lib.so`.
    pub uses: Vec<String>,
}

/// Every process except the caller that holds the filesystem `dev` mounted at `mount_point`
/// (as the caller sees it): open files, working directory, root, executable, memory maps.
/// Processes that exit during the scan, deny access, or are kernel threads are skipped
/// quietly. Sorted by pid.
pub fn find_holders(mount_point: &Path, dev: u64, scan: HolderScan) -> Vec<Holder> {
    let pids = match mounts::process_ids() {
        Ok(pids) => pids,
        Err(err) => {
            log::warn!("cannot list processes in /proc: {err}");
            return Vec::new();
        }
    };
    let me = std::process::id();
    let mut tables = NamespaceTables::new(mount_point, dev);
    let mut holders: Vec<Holder> = pids
        .into_iter()
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let mut uses = match scan {
                HolderScan::Stat => uses_by_stat(pid, dev),
                HolderScan::Links => match tables.for_process(pid) {
                    Some(table) => uses_by_links(pid, dev, &table),
                    None => Vec::new(),
                },
            };
            uses.extend(
                mapped_files(pid, dev)
                    .into_iter()
                    .map(|p| format!("map {p}")),
            );
            (!uses.is_empty()).then(|| Holder {
                pid,
                command: command_of(pid),
                uses,
            })
        })
        .collect();
    holders.sort_by_key(|h| h.pid);
    holders
}

/// How many holders, and uses per holder, [`format_holders`] spells out.
const SHOWN_HOLDERS: usize = 5;
const SHOWN_USES: usize = 3;

/// A compact one-line list for an exit reason: `1234 (sleep: cwd), 1240 (python3: fd 3:
/// /mnt/x/f, map /mnt/x/lib.so)`, at most five processes and three uses each, then how many
/// more. Control characters (a newline in a file name) are shown as `?` so that the line stays
/// one line. Empty for no holders.
pub fn format_holders(holders: &[Holder]) -> String {
    let printable = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let mut parts: Vec<String> = holders
        .iter()
        .take(SHOWN_HOLDERS)
        .map(|holder| {
            let mut uses: Vec<String> = holder
                .uses
                .iter()
                .take(SHOWN_USES)
                .map(|u| printable(u))
                .collect();
            if holder.uses.len() > SHOWN_USES {
                uses.push(format!("{} more", holder.uses.len() - SHOWN_USES));
            }
            format!(
                "{} ({}: {})",
                holder.pid,
                printable(&holder.command),
                uses.join(", ")
            )
        })
        .collect();
    if holders.len() > SHOWN_HOLDERS {
        parts.push(format!("{} more processes", holders.len() - SHOWN_HOLDERS));
    }
    parts.join(", ")
}

/// The per-process links every scan looks at, besides the open files.
const PROCESS_LINKS: [&str; 3] = ["cwd", "root", "exe"];

/// [`HolderScan::Stat`]: the links whose target is on `dev`.
fn uses_by_stat(pid: u32, dev: u64) -> Vec<String> {
    let on_dev = |path: &str| std::fs::metadata(path).is_ok_and(|m| m.dev() == dev);
    let mut uses: Vec<String> = PROCESS_LINKS
        .iter()
        .filter(|link| on_dev(&format!("/proc/{pid}/{link}")))
        .map(|link| link.to_string())
        .collect();
    for fd in open_fds(pid) {
        let link = format!("/proc/{pid}/fd/{fd}");
        if on_dev(&link) {
            let target = std::fs::read_link(&link).unwrap_or_default();
            uses.push(format!("fd {fd}: {}", target.display()));
        }
    }
    uses
}

/// [`HolderScan::Links`]: the links whose text lies on `dev` in the process's mount table.
fn uses_by_links(pid: u32, dev: u64, table: &MountTable) -> Vec<String> {
    let mut uses: Vec<String> = PROCESS_LINKS
        .iter()
        .filter(|link| {
            std::fs::read_link(format!("/proc/{pid}/{link}"))
                .is_ok_and(|target| table.dev_of_path(&target) == Some(dev))
        })
        .map(|link| link.to_string())
        .collect();
    for fd in open_fds(pid) {
        let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
            continue;
        };
        if table.dev_of_path(&target) != Some(dev) {
            continue;
        }
        // The text can mislead (a file in the directory under the mount point, opened before
        // the mount); the mount id it was opened through cannot. Unknown ids keep the text's
        // verdict: the file came from another namespace's mount.
        let confirmed = fd_mount_id(pid, fd)
            .and_then(|id| table.dev_of_mount_id(id))
            .is_none_or(|mount_dev| mount_dev == dev);
        if confirmed {
            uses.push(format!("fd {fd}: {}", target.display()));
        }
    }
    uses
}

/// The descriptor numbers in `/proc/<pid>/fd` (none for a vanished process or kernel thread).
fn open_fds(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The `mnt_id:` line of `/proc/<pid>/fdinfo/<fd>`.
fn fd_mount_id(pid: u32, fd: u32) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("mnt_id:"))?
        .trim()
        .parse()
        .ok()
}

fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// Paths of the files `pid` has mapped from device `dev`, each once, in address order.
fn mapped_files(pid: u32, dev: u64) -> Vec<String> {
    let Ok(maps) = std::fs::read(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    maps.split(|&b| b == b'\n')
        .filter_map(parse_maps_line)
        .filter(|m| m.dev == dev && m.inode != 0)
        .map(|m| String::from_utf8_lossy(m.path).into_owned())
        .filter(|path| seen.insert(path.clone()))
        .collect()
}

/// The parts of a `/proc/<pid>/maps` line that matter here.
#[derive(Debug, PartialEq, Eq)]
struct MappedFile<'a> {
    /// From the 4th column, `MAJ:MIN` in hex.
    dev: u64,
    /// 5th column; 0 for anonymous memory.
    inode: u64,
    /// The rest of the line: the path (possibly with spaces and ` (deleted)`), or empty.
    path: &'a [u8],
}

/// `7f2c1a000000-7f2c1a021000 r--p 00000000 fe:01 1311 /usr/lib/libc.so.6`
fn parse_maps_line(line: &[u8]) -> Option<MappedFile<'_>> {
    let (_range, rest) = next_field(line)?;
    let (_perms, rest) = next_field(rest)?;
    let (_offset, rest) = next_field(rest)?;
    let (dev, rest) = next_field(rest)?;
    let (inode, rest) = next_field(rest)?;
    let colon = dev.iter().position(|&b| b == b':')?;
    let hex = |digits: &[u8]| {
        let text = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(text, 16).ok()
    };
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    Some(MappedFile {
        dev: libc::makedev(hex(&dev[..colon])?, hex(&dev[colon + 1..])?),
        inode: std::str::from_utf8(inode).ok()?.parse().ok()?,
        path: &rest[start..],
    })
}

/// Splits off the next space-separated field: (field, rest after it).
fn next_field(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = text.iter().position(|&b| b != b' ')?;
    let text = &text[start..];
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    Some((&text[..end], &text[end..]))
}

/// One namespace's mount table, reduced to what path matching needs.
#[derive(Debug)]
struct MountTable {
    /// (mount point, device, mount id), in the order of mountinfo: mount order, so of two
    /// mounts at the same place the later one is on top.
    mounts: Vec<(PathBuf, u64, u32)>,
}

impl MountTable {
    fn new(entries: Vec<MountEntry>) -> MountTable {
        MountTable {
            mounts: entries
                .into_iter()
                .map(|e| (e.dev(), e.mount_id, e.mount_point))
                .map(|(dev, id, point)| (point, dev, id))
                .collect(),
        }
    }

    /// The device that link text `path` lies on: that of the deepest mount point containing
    /// it, the topmost of several at the same place. `None` for text that is not an absolute
    /// path (`socket:[123]`, `anon_inode:[eventfd]`). Component-wise, so `/mnt/xy` is not
    /// under `/mnt/x`; a ` (deleted)` suffix only changes the last component.
    fn dev_of_path(&self, path: &Path) -> Option<u64> {
        if !path.is_absolute() {
            return None;
        }
        let mut best: Option<(usize, u64)> = None;
        for (point, dev, _) in &self.mounts {
            if path.starts_with(point) {
                let depth = point.components().count();
                if best.is_none_or(|(best_depth, _)| depth >= best_depth) {
                    best = Some((depth, *dev));
                }
            }
        }
        best.map(|(_, dev)| dev)
    }

    fn dev_of_mount_id(&self, id: u32) -> Option<u64> {
        self.mounts
            .iter()
            .find(|(_, _, mount_id)| *mount_id == id)
            .map(|(_, dev, _)| *dev)
    }
}

/// The mount tables of the namespaces met during one scan, read once per namespace.
struct NamespaceTables<'a> {
    /// The caller's mount point and device: added to the caller's table when missing, so that
    /// the caller's word on where the filesystem is counts.
    mount_point: &'a Path,
    dev: u64,
    tables: HashMap<String, Rc<MountTable>>,
    own_ns: Option<String>,
}

impl<'a> NamespaceTables<'a> {
    fn new(mount_point: &'a Path, dev: u64) -> NamespaceTables<'a> {
        NamespaceTables {
            mount_point,
            dev,
            tables: HashMap::new(),
            own_ns: mounts::mount_namespace(None).ok(),
        }
    }

    /// The table of the namespace `pid` is in; `None` when that cannot be read (the process
    /// exited, or we may not look).
    fn for_process(&mut self, pid: u32) -> Option<Rc<MountTable>> {
        let ns = mounts::mount_namespace(Some(pid)).ok()?;
        if let Some(table) = self.tables.get(&ns) {
            return Some(Rc::clone(table));
        }
        let own = self.own_ns.as_ref() == Some(&ns);
        let table = Rc::new(self.read_table(pid, own).ok()?);
        self.tables.insert(ns, Rc::clone(&table));
        Some(table)
    }

    fn read_table(&self, pid: u32, own: bool) -> io::Result<MountTable> {
        if !own {
            // Paths of another namespace read as they are there (the kernel prints them from
            // that namespace's root), so that namespace's table resolves them.
            return Ok(MountTable::new(mounts::read_mountinfo(Some(pid))?));
        }
        let mut table = MountTable::new(mounts::read_mountinfo(None)?);
        if !table.mounts.iter().any(|(p, _, _)| p == self.mount_point) {
            table
                .mounts
                .push((self.mount_point.to_path_buf(), self.dev, 0));
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let line = b"7f2c1a000000-7f2c1a021000 r--p 00000000 fe:01 1311                       /usr/lib/x86_64-linux-gnu/libc.so.6";
        assert_eq!(
            parse_maps_line(line),
            Some(MappedFile {
                dev: libc::makedev(0xfe, 0x01),
                inode: 1311,
                path: b"/usr/lib/x86_64-linux-gnu/libc.so.6",
            })
        );
        let wide = b"00400000-00452000 r-xp 00000000 103:1a 98765 /mnt/my data/bin (deleted)";
        let parsed = parse_maps_line(wide).unwrap();
        assert_eq!(parsed.dev, libc::makedev(0x103, 0x1a));
        assert_eq!(parsed.path, b"/mnt/my data/bin (deleted)");
        let anon = parse_maps_line(b"7ffd1000-7ffd2000 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!((anon.dev, anon.inode, anon.path), (0, 0, &b""[..]));
        let heap = parse_maps_line(b"55e0-55f0 rw-p 00000000 00:00 0          [heap]").unwrap();
        assert_eq!(heap.path, b"[heap]");
        for bad in [
            &b""[..],
            b"garbage",
            b"a b c d",
            b"a b c fe01 1 /x",
            b"a b c fe:zz 1 /x",
            b"a b c fe:01 -1 /x",
            b"a b c :01 1 /x",
            b"\xff\xfe \xff \xff \xff:\xff",
        ] {
            assert_eq!(
                parse_maps_line(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn table(mounts: &[(&str, u64)]) -> MountTable {
        MountTable {
            mounts: mounts
                .iter()
                .enumerate()
                .map(|(i, (p, d))| (PathBuf::from(p), *d, i as u32 + 1))
                .collect(),
        }
    }

    #[test]
    fn link_paths_resolve_to_the_deepest_mount() {
        let t = table(&[("/", 1), ("/mnt/x", 2), ("/mnt/x/sub", 3), ("/srv", 4)]);
        let dev = |p: &str| t.dev_of_path(Path::new(p));
        assert_eq!(dev("/mnt/x"), Some(2));
        assert_eq!(dev("/mnt/x/"), Some(2));
        assert_eq!(dev("/mnt/x/db/ibdata1"), Some(2));
        assert_eq!(dev("/mnt/x/f (deleted)"), Some(2));
        // The prefix trap: text that starts like the mount point but is a sibling.
        assert_eq!(dev("/mnt/xy"), Some(1));
        assert_eq!(dev("/mnt/xy/f"), Some(1));
        assert_eq!(dev("/mnt/x-old"), Some(1));
        assert_eq!(
            dev("/mnt"),
            Some(1),
            "the parent directory is not on the mount"
        );
        // A deeper mount of another device is not ours.
        assert_eq!(dev("/mnt/x/sub/f"), Some(3));
        assert_eq!(dev("/mnt/x/subway"), Some(2));
        // Not paths at all.
        assert_eq!(dev("socket:[12345]"), None);
        assert_eq!(dev("anon_inode:[eventfd]"), None);
        assert_eq!(dev("pipe:[42]"), None);
        assert_eq!(dev(""), None);
        assert_eq!(t.dev_of_mount_id(2), Some(2));
        assert_eq!(t.dev_of_mount_id(99), None);
    }

    #[test]
    fn the_topmost_of_stacked_mounts_wins() {
        let t = table(&[("/", 1), ("/mnt/x", 2), ("/mnt/x", 5)]);
        assert_eq!(t.dev_of_path(Path::new("/mnt/x/f")), Some(5));
        let only_root = table(&[("/", 7)]);
        assert_eq!(only_root.dev_of_path(Path::new("/anything")), Some(7));
    }

    fn holder(pid: u32, command: &str, uses: &[&str]) -> Holder {
        Holder {
            pid,
            command: command.into(),
            uses: uses.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn formats_a_compact_capped_list() {
        assert_eq!(format_holders(&[]), "");
        let two = [
            holder(1234, "sleep", &["cwd"]),
            holder(1240, "python3", &["fd 3: /mnt/x/f", "map /mnt/x/lib.so"]),
        ];
        assert_eq!(
            format_holders(&two),
            "1234 (sleep: cwd), 1240 (python3: fd 3: /mnt/x/f, map /mnt/x/lib.so)"
        );
        let busy = holder(
            7,
            "mysqld",
            &["cwd", "fd 3: /a", "fd 4: /b", "fd 5: /c", "fd 6: /d"],
        );
        assert_eq!(
            format_holders(&[busy]),
            "7 (mysqld: cwd, fd 3: /a, fd 4: /b, 2 more)"
        );
        let many: Vec<Holder> = (1..=8).map(|pid| holder(pid, "sh", &["cwd"])).collect();
        let text = format_holders(&many);
        assert!(text.ends_with("5 (sh: cwd), 3 more processes"), "{text}");
        let odd = holder(9, "a\nb", &["fd 1: /mnt/x/new\nline"]);
        assert_eq!(format_holders(&[odd]), "9 (a?b: fd 1: /mnt/x/new?line)");
    }

    #[test]
    fn finds_a_child_with_its_cwd_in_a_directory_without_root() {
        use super::super::mounts::test_support::Guarded;
        use std::process::Command;
        use std::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("inside");
        let beside = dir.path().join("inside-not");
        std::fs::create_dir(&inside).unwrap();
        std::fs::create_dir(&beside).unwrap();
        let held = Guarded::spawn(Command::new("sleep").arg("30").current_dir(&inside));
        let not_held = Guarded::spawn(Command::new("sleep").arg("30").current_dir(&beside));
        // Links mode takes the caller's word for where the filesystem is: pretend `inside` is
        // a mount of a device no real file is on, so that only the cwd can match.
        let fake_dev = libc::makedev(0xfff, 0xffff);
        let started = Instant::now();
        let links = find_holders(&inside, fake_dev, HolderScan::Links);
        let links_took = started.elapsed();
        assert_eq!(
            links,
            vec![Holder {
                pid: held.pid(),
                command: "sleep".into(),
                uses: vec!["cwd".into()],
            }]
        );
        assert!(links.iter().all(|h| h.pid != not_held.pid()));
        // Stat on the real device: everything on that filesystem holds it, the caller excepted.
        let real_dev = std::fs::metadata(&inside).unwrap().dev();
        let started = Instant::now();
        let stat = find_holders(&inside, real_dev, HolderScan::Stat);
        let stat_took = started.elapsed();
        let h = stat
            .iter()
            .find(|h| h.pid == held.pid())
            .expect("found by stat");
        assert!(h.uses.iter().any(|u| u == "cwd"));
        assert!(stat.iter().all(|h| h.pid != std::process::id()));
        assert!(find_holders(&inside, fake_dev, HolderScan::Stat).is_empty());
        eprintln!(
            "find_holders over {} processes: Links {links_took:?}, Stat {stat_took:?} ({} holders)",
            mounts::process_ids().unwrap().len(),
            stat.len()
        );
    }

    /// Maps a file, closes it, says "ready" and sleeps: a holder by memory map alone.
    /// (Python's own mmap module keeps a duplicate descriptor open, hence ctypes.)
    const MAP_A_FILE: &str = "import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
fd = os.open(sys.argv[1], os.O_RDONLY)
addr = libc.mmap(None, 4096, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
assert addr not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
os.close(fd)
print('ready', flush=True)
time.sleep(60)
";

    #[test]
    #[ignore = "needs root"]
    fn holders_of_a_mounted_filesystem() {
        use super::super::mounts::test_support::*;
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        use std::time::Instant;
        let name = test_name(module_path!(), "holders_of_a_mounted_filesystem");
        if !in_private_mount_namespace(&name) {
            return;
        }
        let mut fs = Ext4OnLoop::new("fhholders");
        let mnt = fs.mount_point.clone();
        let on_mnt = |rel: &str| mnt.join(rel).display().to_string();
        let open_and_sleep = |files: &[PathBuf]| {
            // sh opens the files as fds 3, 4, … and becomes sleep, keeping them open.
            let redirects: String = (0..files.len())
                .map(|i| format!(" {}<\"${}\"", i + 3, i + 1))
                .collect();
            Guarded::spawn(
                Command::new("sh")
                    .args(["-c", &format!("exec sleep 60{redirects}"), "sh"])
                    .args(files)
                    .current_dir("/"),
            )
        };
        let wait_for_sleep = |child: &Guarded| {
            wait_until("the child to exec sleep", || {
                std::fs::read_to_string(format!("/proc/{}/comm", child.pid()))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
        };

        // A file in the directory the mount will cover: same path text, other filesystem.
        std::fs::write(mnt.join("covered"), b"parent filesystem").unwrap();
        let covered = open_and_sleep(&[mnt.join("covered")]);
        wait_for_sleep(&covered);
        fs.mount();

        std::fs::create_dir(mnt.join("sub")).unwrap();
        std::fs::write(mnt.join("data"), vec![7u8; 65536]).unwrap();
        std::fs::write(mnt.join("gone"), b"deleted while open").unwrap();
        std::fs::copy("/bin/sleep", mnt.join("sleep")).unwrap();
        let sibling = fs.dir.path().join("mntx");
        std::fs::create_dir(&sibling).unwrap();

        let sleep_in =
            |cwd: &Path| Guarded::spawn(Command::new("sleep").arg("60").current_dir(cwd));
        let cwd_holder = sleep_in(&mnt.join("sub"));
        let parent_cwd = sleep_in(fs.dir.path());
        let sibling_cwd = sleep_in(&sibling);
        let fd_holder = open_and_sleep(&[mnt.join("data"), mnt.join("gone")]);
        let exe_holder = Guarded::spawn(Command::new(mnt.join("sleep")).arg("60").current_dir("/"));
        let mut map_holder = Guarded::spawn(
            Command::new("python3")
                .args(["-c", MAP_A_FILE])
                .arg(mnt.join("data"))
                .current_dir("/")
                .stdout(Stdio::piped()),
        );
        let mut ready = String::new();
        std::io::BufReader::new(map_holder.0.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        // In a mount namespace of its own, with its working directory in its copy.
        let foreign_holder = Guarded::spawn(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sleep", "60"])
                .current_dir(mnt.join("sub")),
        );
        // One whose namespace has the filesystem elsewhere: its path text means nothing in our
        // table (a plain directory here), only in its own.
        let moved = fs.dir.path().join("moved");
        std::fs::create_dir(&moved).unwrap();
        let script = "mount --move \"$0\" \"$1\" && cd \"$1/sub\" && exec sleep 60";
        let moved_holder = Guarded::spawn(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", script])
                .arg(&mnt)
                .arg(&moved)
                .current_dir("/"),
        );
        wait_for_sleep(&fd_holder);
        wait_for_sleep(&foreign_holder);
        wait_for_sleep(&moved_holder);
        std::fs::remove_file(mnt.join("gone")).unwrap();

        let expected: Vec<(u32, Vec<String>)> = vec![
            (cwd_holder.pid(), vec!["cwd".into()]),
            (
                fd_holder.pid(),
                vec![
                    format!("fd 3: {}", on_mnt("data")),
                    format!("fd 4: {} (deleted)", on_mnt("gone")),
                ],
            ),
            (
                exe_holder.pid(),
                vec!["exe".into(), format!("map {}", on_mnt("sleep"))],
            ),
            (map_holder.pid(), vec![format!("map {}", on_mnt("data"))]),
            (foreign_holder.pid(), vec!["cwd".into()]),
            (moved_holder.pid(), vec!["cwd".into()]),
        ];
        for scan in [HolderScan::Stat, HolderScan::Links] {
            let started = Instant::now();
            let holders = find_holders(&mnt, fs.dev, scan);
            let took = started.elapsed();
            eprintln!("{scan:?} scan: {took:?}: {}", format_holders(&holders));
            let mut got: Vec<(u32, Vec<String>)> =
                holders.iter().map(|h| (h.pid, h.uses.clone())).collect();
            got.sort();
            let mut want = expected.clone();
            want.sort();
            // Exactly these: not the parent directory's user, not the sibling "mntx", not the
            // file under the mount point, not ourselves.
            assert_eq!(got, want, "{scan:?}");
            for bystander in [&parent_cwd, &sibling_cwd, &covered] {
                assert!(holders.iter().all(|h| h.pid != bystander.pid()));
            }
            let sleep = holders.iter().find(|h| h.pid == cwd_holder.pid()).unwrap();
            assert_eq!(sleep.command, "sleep");
        }
    }
}
