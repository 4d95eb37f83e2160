//! fs-agent: a mounted filesystem, the counterpart of resource-agents' Filesystem.
//!
//! The parts that touch the kernel (mount table, mount/umount, holder discovery, signals,
//! other mount namespaces) sit behind [`FsOps`], so that the stop escalation and the
//! idempotence rules are unit-tested against a fake; integration tests run the binary against
//! real loop devices in private mount namespaces.
//!
//! Why stop is careful: a stop that returns 0 while the device is still in use makes the next
//! step (DRBD demotion) fail, and a stop that fails gets the node fenced. So stop unmounts
//! everything at and below the mount point, kills exactly the processes that hold *this*
//! filesystem (never users of the parent, resource-agents#1944), removes copies of the mount
//! in other mount namespaces, and reports by pid what it could not free.

use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags};

use crate::ocf::{
    AgentError, AgentResult, Context, ParamSpec, ParamType, Params, ResourceAgent, Status, io_error,
};
use crate::sys::blkdev;
use crate::sys::cmd::{self, CmdError};
use crate::sys::holders::{self, Holder, HolderScan};
use crate::sys::mounts::{self, ForeignMounts, MountEntry};
use crate::sys::proc::ProcessId;

const META: &str = include_str!("../../ocf-meta/fs.xml");

/// The parameter table (Filesystem's names).
pub static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("device", "block device, -U uuid, -L label or remote share").required(),
    ParamSpec::new("directory", "mount point (absolute, not /)")
        .required()
        .unique(),
    ParamSpec::new(
        "fstype",
        "filesystem type (read from the superblock when empty)",
    ),
    ParamSpec::new("options", "mount options, comma-separated"),
    ParamSpec::new("statusfile_prefix", "depth-20 status file prefix")
        .default(".Filesystem_status/"),
    ParamSpec::new("run_fsck", "fsck before mounting")
        .kind(ParamType::Select(&["auto", "force", "no"]))
        .default("auto"),
    ParamSpec::new("fast_stop", "at most 6 s of signal rounds on stop")
        .kind(ParamType::Boolean)
        .default("no"),
    ParamSpec::new("force_clones", "allow clones of non-cluster filesystems")
        .kind(ParamType::Boolean)
        .default("false"),
    ParamSpec::new("force_unmount", "kill holders before unmounting")
        .kind(ParamType::Select(&[
            "true", "safe", "false", "yes", "no", "1", "0",
        ]))
        .default("true"),
    ParamSpec::new("signal_delay", "seconds between signal rounds")
        .kind(ParamType::Integer)
        .default("1"),
    ParamSpec::new("term_signals", "signals sent to holders before KILL").default("TERM"),
];

/// The actions the meta-data advertises.
pub const ACTIONS: &[&str] = &["start", "stop", "monitor", "validate-all", "meta-data"];

/// The end of the stop budget kept for KILL and the unmount after it: a term-signal round
/// whose pause would reach the budget's end (a `signal_delay` beyond `fast_stop`'s cap or the
/// stop timeout) is cut short by this much and followed by KILL, so that a holder ignoring
/// the term signals is still killed instead of the stop failing with it alive.
const KILL_RESERVE: Duration = Duration::from_secs(1);

/// Filesystems mounted through `mount -t` because they need a userspace helper.
const HELPER_FSTYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "glusterfs",
    "ceph",
    "sshfs",
    "fuse",
    "fuseblk",
];

/// Filesystems that may be mounted on several nodes at once.
const CLUSTER_FSTYPES: &[&str] = &[
    "gfs2",
    "ocfs2",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "glusterfs",
    "ceph",
    "lustre",
];

/// Filesystems with a journal (or no offline check): `run_fsck=auto` skips them, as
/// Filesystem does.
const NO_AUTO_FSCK: &[&str] = &[
    "ext3", "ext4", "xfs", "btrfs", "jfs", "reiserfs", "vfat", "fat", "ocfs2", "gfs2", "tmpfs",
];

/// Where the filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A device path.
    Path(PathBuf),
    /// `-U`/`UUID=`: the filesystem with this UUID.
    Uuid(String),
    /// `-L`/`LABEL=`: the filesystem with this label.
    Label(String),
    /// A share for a helper filesystem (`host:/export`, `//server/share`).
    Remote(String),
}

/// When to fsck before mounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFsck {
    /// For filesystems without a journal.
    Auto,
    /// Always.
    Force,
    /// Never.
    No,
}

/// How stop treats a busy filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceUnmount {
    /// Kill holders found by stat (exact).
    Stat,
    /// Kill holders found by link names and map device numbers only (never stats).
    Safe,
    /// Never signal.
    Never,
}

/// Mount options split into flags and filesystem data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Generic flags (MS_*).
    pub flags: MsFlags,
    /// What the filesystem gets (`data` of mount(2)).
    pub data: String,
    /// The option string as configured, for `mount -t` and messages.
    pub raw: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            data: String::new(),
            raw: String::new(),
        }
    }
}

/// A validated fs configuration (syntax only; the device is looked up per action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    /// The device.
    pub device: DeviceSpec,
    /// The mount point, normalised.
    pub directory: PathBuf,
    /// The filesystem type, if configured.
    pub fstype: Option<String>,
    /// Mount options.
    pub options: MountOptions,
    /// Status file prefix.
    pub statusfile_prefix: String,
    /// fsck policy.
    pub run_fsck: RunFsck,
    /// Shorter stop.
    pub fast_stop: bool,
    /// Allow clones.
    pub force_clones: bool,
    /// Busy-stop policy.
    pub force_unmount: ForceUnmount,
    /// Wait after each signal round.
    pub signal_delay: Duration,
    /// Signals before KILL.
    pub term_signals: Vec<i32>,
}

/// A mount(2) call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// Source device.
    pub source: PathBuf,
    /// Mount point.
    pub target: PathBuf,
    /// Filesystem type.
    pub fstype: String,
    /// Flags.
    pub flags: MsFlags,
    /// Filesystem options.
    pub data: String,
}

/// The kernel as fs-agent needs it.
pub trait FsOps {
    /// Our mount namespace's mount table.
    fn mounts(&self) -> io::Result<Vec<MountEntry>>;
    /// mount(2).
    fn mount(&self, req: &MountRequest) -> io::Result<()>;
    /// umount2(2) without MNT_DETACH.
    fn umount(&self, target: &Path) -> io::Result<()>;
    /// Processes holding the filesystem mounted at `mount_point` (device `dev`).
    fn holders(&self, mount_point: &Path, dev: u64, scan: HolderScan) -> Vec<Holder>;
    /// Sends `signal` to `pid` if it is still the process found; false if gone.
    fn signal(&self, pid: u32, signal: i32) -> bool;
    /// Copies of the device's mounts in other mount namespaces.
    fn foreign_mounts(&self, dev: u64) -> io::Result<Vec<ForeignMounts>>;
    /// Unmounts a copy in the namespace of `pid`.
    fn umount_foreign(&self, pid: u32, mount_point: &Path, timeout: Duration) -> io::Result<()>;
}

/// The real kernel.
pub struct KernelFs;

impl FsOps for KernelFs {
    fn mounts(&self) -> io::Result<Vec<MountEntry>> {
        mounts::read_mountinfo(None)
    }
    fn mount(&self, req: &MountRequest) -> io::Result<()> {
        let data = (!req.data.is_empty()).then_some(req.data.as_str());
        nix::mount::mount(
            Some(req.source.as_path()),
            req.target.as_path(),
            Some(req.fstype.as_str()),
            req.flags,
            data,
        )
        .map_err(io::Error::from)
    }
    fn umount(&self, target: &Path) -> io::Result<()> {
        // Never MNT_DETACH: a lazy unmount returns at once and leaves the device busy.
        nix::mount::umount2(target, MntFlags::empty()).map_err(io::Error::from)
    }
    fn holders(&self, mount_point: &Path, dev: u64, scan: HolderScan) -> Vec<Holder> {
        holders::find_holders(mount_point, dev, scan)
    }
    fn signal(&self, pid: u32, signal: i32) -> bool {
        i32::try_from(pid)
            .ok()
            .and_then(ProcessId::of)
            .is_some_and(|p| p.signal(signal))
    }
    fn foreign_mounts(&self, dev: u64) -> io::Result<Vec<ForeignMounts>> {
        mounts::mounts_in_other_namespaces(dev)
    }
    fn umount_foreign(&self, pid: u32, mount_point: &Path, timeout: Duration) -> io::Result<()> {
        mounts::umount_in_namespace(pid, mount_point, timeout)
    }
}

/// The fs resource agent.
pub struct FsAgent {
    ops: Box<dyn FsOps>,
}

impl Default for FsAgent {
    fn default() -> Self {
        FsAgent {
            ops: Box::new(KernelFs),
        }
    }
}

/// The device as found on this node.
#[derive(Debug, Clone)]
struct Resolved {
    /// Path to pass to mount (the share text for remote filesystems).
    source: PathBuf,
    /// Block device number, for block devices.
    rdev: Option<u64>,
    /// Filesystem type to mount with.
    fstype: String,
}

impl FsAgent {
    /// An agent on the given kernel (unit tests).
    pub fn with(ops: Box<dyn FsOps>) -> FsAgent {
        FsAgent { ops }
    }

    /// Finds the device and its filesystem type on this node (exit 5 when absent).
    fn resolve(&self, cfg: &FsConfig) -> AgentResult<Resolved> {
        let path = match &cfg.device {
            DeviceSpec::Remote(share) => {
                let fstype = cfg.fstype.clone().ok_or_else(|| {
                    AgentError::Configured(format!("set fstype for the share {share}"))
                })?;
                return Ok(Resolved {
                    source: PathBuf::from(share),
                    rdev: None,
                    fstype,
                });
            }
            DeviceSpec::Path(p) => p.clone(),
            DeviceSpec::Uuid(u) => blkdev::find_by_uuid(u)
                .map_err(io_error(format!("looking for UUID {u}")))?
                .ok_or_else(|| {
                    AgentError::Installed(format!(
                        "no block device holds a filesystem with UUID {u}"
                    ))
                })?,
            DeviceSpec::Label(l) => blkdev::find_by_label(l)
                .map_err(io_error(format!("looking for label {l}")))?
                .ok_or_else(|| {
                    AgentError::Installed(format!(
                        "no block device holds a filesystem labelled {l}"
                    ))
                })?,
        };
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(AgentError::Installed(format!(
                    "device {} does not exist",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(AgentError::from_io(
                    format!("device {}", path.display()),
                    &e,
                ));
            }
        };
        if meta.is_dir() {
            // A bind mount's source, on every node: fs-agent mounts block devices only.
            return Err(AgentError::Configured(format!(
                "{} is a directory: fs-agent does not do bind mounts",
                path.display()
            )));
        }
        if !meta.file_type().is_block_device() {
            // A regular file where the device node should be (`dd of=/dev/sdX` without the
            // disk): this node's problem, as Filesystem's "Couldn't find device" (5).
            return Err(AgentError::Installed(format!(
                "{} is not a block device on this node",
                path.display()
            )));
        }
        let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
        let fstype = match &cfg.fstype {
            Some(t) => t.clone(),
            None => blkdev::probe(&path)
                .map_err(io_error(format!(
                    "reading the superblock of {}",
                    path.display()
                )))?
                .map(|p| p.fstype.to_string())
                // This node's disk (a DRBD backing device, say) may hold nothing yet: a failed
                // start (1), as Filesystem's failing mount, not a cluster-wide stop.
                .ok_or_else(|| {
                    AgentError::Generic(format!(
                        "no known filesystem on {}; set fstype",
                        path.display()
                    ))
                })?,
        };
        Ok(Resolved {
            source: path,
            rdev: Some(rdev),
            fstype,
        })
    }

    /// The topmost mount on the directory, if any.
    fn mount_at(&self, dir: &Path) -> AgentResult<Option<MountEntry>> {
        let table = self
            .ops
            .mounts()
            .map_err(io_error("reading the mount table"))?;
        Ok(table.into_iter().rev().find(|m| m.mount_point == dir))
    }

    fn validate_on_node(&self, cfg: &FsConfig, ctx: &Context) -> AgentResult<Resolved> {
        let dev = self.resolve(cfg)?;
        check_fstype_known(&dev.fstype)?;
        let clone = ctx
            .var("OCF_RESKEY_CRM_meta_clone_max")
            .is_some_and(|v| v.parse::<u32>().is_ok_and(|n| n > 1));
        if clone && !cfg.force_clones && !CLUSTER_FSTYPES.contains(&dev.fstype.as_str()) {
            return Err(AgentError::Configured(format!(
                "{} is not a cluster filesystem: mounting it on several nodes at once destroys \
                 it (set force_clones to override)",
                dev.fstype
            )));
        }
        Ok(dev)
    }

    fn fsck(&self, cfg: &FsConfig, dev: &Resolved, ctx: &Context) -> AgentResult<()> {
        let wanted = match cfg.run_fsck {
            RunFsck::No => false,
            RunFsck::Force => dev.rdev.is_some(),
            RunFsck::Auto => dev.rdev.is_some() && !NO_AUTO_FSCK.contains(&dev.fstype.as_str()),
        };
        if !wanted {
            return Ok(());
        }
        let checker = format!("fsck.{}", dev.fstype);
        log::info!("checking {} with {checker} -p", dev.source.display());
        let mut command = std::process::Command::new(&checker);
        command.arg("-p").arg(&dev.source);
        match cmd::run(&mut command, ctx.deadline.remaining()) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(AgentError::Installed(format!(
                "{checker} is not installed (run_fsck={})",
                if cfg.run_fsck == RunFsck::Force {
                    "force"
                } else {
                    "auto"
                }
            ))),
            // fsck: 1 = errors corrected, 2 = corrected, reboot advised (irrelevant for a
            // filesystem that is not mounted); 4 and up = left uncorrected or failed.
            Err(ref e @ CmdError::Failed { .. }) if e.exit_code().is_some_and(|c| c < 4) => {
                log::warn!("{checker} repaired {}: {e}", dev.source.display());
                Ok(())
            }
            Err(e) => Err(AgentError::Generic(format!("filesystem check failed: {e}"))),
        }
    }

    fn is_ours(entry: &MountEntry, dev: &Resolved) -> bool {
        match dev.rdev {
            // btrfs shows an anonymous device number in mountinfo; its source names the device.
            Some(rdev) => {
                entry.dev() == rdev
                    || std::fs::canonicalize(&entry.source).ok().as_deref()
                        == Some(dev.source.as_path())
                    || Path::new(&entry.source) == dev.source
            }
            None => entry.source == dev.source.to_string_lossy(),
        }
    }

    fn status_file(&self, cfg: &FsConfig, ctx: &Context) -> PathBuf {
        let node = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        let clone = ctx
            .var("OCF_RESKEY_CRM_meta_clone")
            .map(|c| format!("_{c}"))
            .unwrap_or_default();
        // Instances of clones are "id:N"; the clone number is added separately.
        let instance = ctx.instance.split(':').next().unwrap_or("default");
        cfg.directory
            .join(format!("{}{instance}{clone}_{node}", cfg.statusfile_prefix))
    }

    /// Unmounts everything at and below the directory in our namespace, escalating signals
    /// against holders until `until`.
    fn unmount_here(&self, cfg: &FsConfig, until: Instant) -> AgentResult<Vec<u64>> {
        let mut devices = Vec::new();
        let mut round = 0usize;
        loop {
            let table = self
                .ops
                .mounts()
                .map_err(io_error("reading the mount table"))?;
            // Deepest first, most recent first: submounts go before the mount point.
            let mut mine: Vec<MountEntry> = table
                .into_iter()
                .filter(|m| m.mount_point.starts_with(&cfg.directory))
                .collect();
            if mine.is_empty() {
                return Ok(devices);
            }
            mine.reverse();
            mine.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
            let mut busy = None;
            for entry in &mine {
                if !devices.contains(&entry.dev()) {
                    devices.push(entry.dev());
                }
                match self.ops.umount(&entry.mount_point) {
                    Ok(()) => log::info!("unmounted {}", entry.mount_point.display()),
                    // Gone meanwhile (EINVAL: not a mount point any more).
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        busy = Some(entry.clone());
                        break;
                    }
                    Err(e) => {
                        return Err(AgentError::from_io(
                            format!("unmounting {}", entry.mount_point.display()),
                            &e,
                        ));
                    }
                }
            }
            let Some(entry) = busy else {
                continue;
            };
            let scan = match cfg.force_unmount {
                ForceUnmount::Safe => HolderScan::Links,
                _ => HolderScan::Stat,
            };
            let holders = self.ops.holders(&entry.mount_point, entry.dev(), scan);
            if cfg.force_unmount == ForceUnmount::Never || Instant::now() >= until {
                return Err(busy_error(&entry.mount_point, &holders, cfg.force_unmount));
            }
            let left = until.saturating_duration_since(Instant::now());
            let signal = if left <= KILL_RESERVE {
                None
            } else if cfg.fast_stop {
                cfg.term_signals.get(round).copied().filter(|_| round == 0)
            } else {
                cfg.term_signals.get(round).copied()
            }
            .unwrap_or(libc::SIGKILL);
            for h in &holders {
                if self.ops.signal(h.pid, signal) {
                    log::warn!(
                        "sent signal {signal} to {} ({}) holding {}",
                        h.pid,
                        h.command,
                        entry.mount_point.display()
                    );
                }
            }
            round += 1;
            // KILL takes effect at once (only process teardown remains): retry sooner.
            let pause = if signal == libc::SIGKILL {
                Duration::from_millis(50)
            } else {
                cfg.signal_delay.min(left.saturating_sub(KILL_RESERVE))
            };
            let pause = pause.min(until.saturating_duration_since(Instant::now()));
            std::thread::sleep(pause);
        }
    }

    /// Removes copies of the device's mounts in other mount namespaces.
    fn unmount_elsewhere(
        &self,
        cfg: &FsConfig,
        devices: &[u64],
        until: Instant,
    ) -> AgentResult<()> {
        let mut left: Vec<String> = Vec::new();
        for &dev in devices {
            let copies = self
                .ops
                .foreign_mounts(dev)
                .map_err(io_error("scanning mount namespaces"))?;
            for ns in copies {
                // Deepest first, as in our own namespace.
                let mut points = ns.mount_points.clone();
                points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
                for point in points {
                    let mut attempt = 0;
                    loop {
                        let timeout = until
                            .saturating_duration_since(Instant::now())
                            .min(Duration::from_secs(5));
                        match self.ops.umount_foreign(ns.pid, &point, timeout) {
                            Ok(()) => {
                                log::info!(
                                    "unmounted the copy at {} in the mount namespace of pid {}",
                                    point.display(),
                                    ns.pid
                                );
                                break;
                            }
                            Err(e)
                                if e.raw_os_error() == Some(libc::EINVAL)
                                    || e.raw_os_error() == Some(libc::ENOENT) =>
                            {
                                break;
                            }
                            Err(e)
                                if e.raw_os_error() == Some(libc::EBUSY)
                                    && cfg.force_unmount != ForceUnmount::Never
                                    && Instant::now() < until =>
                            {
                                // Holders inside that namespace: found by device (stat), as
                                // their paths are the namespace's own.
                                let holders = self.ops.holders(&point, dev, HolderScan::Stat);
                                let signal = if attempt == 0 {
                                    cfg.term_signals.first().copied().unwrap_or(libc::SIGKILL)
                                } else {
                                    libc::SIGKILL
                                };
                                for h in &holders {
                                    self.ops.signal(h.pid, signal);
                                }
                                attempt += 1;
                                std::thread::sleep(
                                    cfg.signal_delay
                                        .min(Duration::from_millis(500))
                                        .min(until.saturating_duration_since(Instant::now())),
                                );
                            }
                            Err(e) => {
                                let holders = self.ops.holders(&point, dev, HolderScan::Stat);
                                left.push(format!(
                                    "{} in the mount namespace of pid {} ({e}{})",
                                    point.display(),
                                    ns.pid,
                                    if holders.is_empty() {
                                        String::new()
                                    } else {
                                        format!("; held by {}", holders::format_holders(&holders))
                                    }
                                ));
                                break;
                            }
                        }
                    }
                }
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(AgentError::Generic(format!(
                "{} is unmounted here, but copies of the mount keep the device busy: {}",
                cfg.directory.display(),
                left.join(", ")
            )))
        }
    }

    /// Mounts the resolved device on the existing directory and checks the mount table.
    fn mount_directory(&self, cfg: &FsConfig, dev: &Resolved, ctx: &Context) -> AgentResult<()> {
        if is_helper_fstype(&dev.fstype) {
            let mut command = std::process::Command::new("mount");
            command.arg("-t").arg(&dev.fstype);
            if !cfg.options.raw.is_empty() {
                command.arg("-o").arg(&cfg.options.raw);
            }
            command.arg(&dev.source).arg(&cfg.directory);
            cmd::run(&mut command, ctx.deadline.remaining()).map_err(|e| {
                if e.is_not_found() {
                    AgentError::Installed("mount is not installed".into())
                } else {
                    AgentError::Generic(format!("mounting {}: {e}", dev.source.display()))
                }
            })?;
        } else {
            let req = MountRequest {
                source: dev.source.clone(),
                target: cfg.directory.clone(),
                fstype: dev.fstype.clone(),
                flags: cfg.options.flags,
                data: cfg.options.data.clone(),
            };
            self.ops
                .mount(&req)
                .map_err(|e| mount_error(&req, cfg, &e))?;
        }
        match self.mount_at(&cfg.directory)? {
            Some(m) if Self::is_ours(&m, dev) => {
                log::info!(
                    "mounted {} ({}) on {}",
                    dev.source.display(),
                    dev.fstype,
                    cfg.directory.display()
                );
                Ok(())
            }
            Some(m) => Err(AgentError::Generic(format!(
                "after mounting, {} shows {} instead of {}",
                cfg.directory.display(),
                m.source,
                dev.source.display()
            ))),
            None => Err(AgentError::Generic(format!(
                "mount of {} reported success but {} is not in the mount table",
                dev.source.display(),
                cfg.directory.display()
            ))),
        }
    }

    fn stop_directory(&self, cfg: &FsConfig, ctx: &Context) -> AgentResult<()> {
        let budget = if cfg.fast_stop {
            ctx.deadline.cap(Duration::from_secs(6))
        } else {
            ctx.deadline.remaining()
        };
        let until = Instant::now() + budget;
        let mut devices = self.unmount_here(cfg, until)?;
        // The device may be mounted only elsewhere (an earlier stop unmounted it here).
        if let Some(rdev) = self.resolve(cfg).ok().and_then(|d| d.rdev)
            && !devices.contains(&rdev)
        {
            devices.push(rdev);
        }
        self.unmount_elsewhere(cfg, &devices, until)
    }
}

fn busy_error(mount_point: &Path, holders: &[Holder], policy: ForceUnmount) -> AgentError {
    let why = if policy == ForceUnmount::Never {
        "force_unmount=false"
    } else {
        "the stop timeout is up"
    };
    let who = if holders.is_empty() {
        "no holder found in /proc (kernel users such as loop devices, swap or nfsd?)".to_string()
    } else {
        format!("held by {}", holders::format_holders(holders))
    };
    AgentError::Generic(format!(
        "cannot unmount {} ({why}): busy, {who}",
        mount_point.display()
    ))
}

/// The directories `create_dir_all(dir)` would create, outermost first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

fn check_fstype_known(fstype: &str) -> AgentResult<()> {
    let valid = !fstype.is_empty()
        && fstype.len() <= 64
        && fstype
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(AgentError::Configured(format!(
            "fstype '{fstype}' is not valid"
        )));
    }
    if is_helper_fstype(fstype) {
        return Ok(());
    }
    let known = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if known
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fstype))
    {
        return Ok(());
    }
    // Not loaded: a module on disk means "not loaded here", no module at all a type this
    // node's kernel does not have. Both are 5, as Filesystem says: another node's kernel
    // may have it, and 6 would stop the filesystem everywhere.
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let module_dir = Path::new("/lib/modules")
        .join(release)
        .join("kernel/fs")
        .join(fstype);
    if module_dir.exists() {
        Err(AgentError::Installed(format!(
            "the kernel has not loaded filesystem type {fstype} (module present; load it with modprobe)"
        )))
    } else {
        Err(AgentError::Installed(format!(
            "unknown filesystem type '{fstype}' (not in /proc/filesystems, no module)"
        )))
    }
}

fn is_helper_fstype(fstype: &str) -> bool {
    HELPER_FSTYPES.contains(&fstype) || fstype.starts_with("fuse.")
}

fn parse_signal(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = name.trim_start_matches("SIG").to_ascii_uppercase();
    let sig = match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "ABRT" => libc::SIGABRT,
        _ => return None,
    };
    Some(sig)
}

/// Splits `mount -o` style options into flags and filesystem data.
pub fn parse_options(raw: &str) -> AgentResult<MountOptions> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (set, clear) = match opt {
            "defaults" | "rw" | "async" | "auto" | "noauto" | "nofail" | "_netdev" | "user"
            | "nouser" | "users" | "owner" | "group" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" | "rbind" | "move" | "remount" | "loop" => {
                return Err(AgentError::Configured(format!(
                    "mount option '{opt}' is not supported by fs-agent"
                )));
            }
            o if o.starts_with("x-") || o.starts_with("comment=") => {
                (MsFlags::empty(), MsFlags::empty())
            }
            o => {
                data.push(o.to_string());
                continue;
            }
        };
        flags = (flags | set) - clear;
    }
    Ok(MountOptions {
        flags,
        data: data.join(","),
        raw: raw.to_string(),
    })
}

/// The directory, checked and normalised: absolute, not `/`, no `..`, trailing `/` removed.
fn parse_directory(raw: &str) -> AgentResult<PathBuf> {
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(AgentError::Configured(format!(
            "directory '{raw}' must be an absolute path"
        )));
    }
    let mut normal = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => normal.push(part),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(AgentError::Configured(format!(
                    "directory '{raw}' must not contain '..'"
                )));
            }
        }
    }
    if normal == Path::new("/") {
        return Err(AgentError::Configured(
            "directory must not be / (the root filesystem)".into(),
        ));
    }
    Ok(normal)
}

fn parse_device(raw: &str) -> AgentResult<DeviceSpec> {
    let raw = raw.trim();
    let value = |prefix: &str| raw.strip_prefix(prefix).map(|v| v.trim().to_string());
    let spec = if let Some(u) = value("-U")
        .or_else(|| value("--uuid="))
        .or_else(|| value("UUID="))
    {
        DeviceSpec::Uuid(u.to_ascii_lowercase())
    } else if let Some(l) = value("-L")
        .or_else(|| value("--label="))
        .or_else(|| value("LABEL="))
    {
        DeviceSpec::Label(l)
    } else if raw.starts_with("//") || (raw.contains(":/") && !raw.starts_with('/')) {
        DeviceSpec::Remote(raw.to_string())
    } else if raw.starts_with('/') {
        DeviceSpec::Path(PathBuf::from(raw))
    } else {
        return Err(AgentError::Configured(format!(
            "device '{raw}' is neither a path, -U uuid, -L label nor a remote share"
        )));
    };
    match &spec {
        DeviceSpec::Uuid(v) | DeviceSpec::Label(v) if v.is_empty() => Err(AgentError::Configured(
            format!("device '{raw}' names no UUID or label"),
        )),
        _ => Ok(spec),
    }
}

/// A 4 KiB buffer aligned for O_DIRECT.
struct AlignedBlock {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBlock {
    fn new() -> Option<AlignedBlock> {
        let layout = std::alloc::Layout::from_size_align(4096, 4096).ok()?;
        // SAFETY: non-zero size layout; the pointer is checked and freed in Drop.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(AlignedBlock { ptr, layout })
    }
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ptr points at layout.size() initialised (zeroed) bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Depth 10: one direct read of the device's first block.
fn read_device(path: &Path) -> io::Result<()> {
    use std::io::Read;
    let mut block = AlignedBlock::new().ok_or_else(|| io::Error::other("out of memory"))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    file.read_exact(block.bytes())
}

/// Depth 20: write the instance name to the status file with direct, synchronous I/O and read
/// it back. O_DIRECT bypasses the page cache, so a filesystem remounted read-only or a hung
/// device shows here rather than behind a cached success.
fn write_status_file(path: &Path, content: &str) -> io::Result<()> {
    use std::io::{Read, Seek, Write};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut block = AlignedBlock::new().ok_or_else(|| io::Error::other("out of memory"))?;
    let text = content.as_bytes();
    let n = text.len().min(4095);
    block.bytes()[..n].copy_from_slice(&text[..n]);
    let open = |direct: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_SYNC | if direct { libc::O_DIRECT } else { 0 })
            .open(path)
    };
    // Some filesystems (tmpfs, some FUSE) refuse O_DIRECT: synchronous I/O is the next best.
    let mut file = match open(true) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(false)?,
        other => other?,
    };
    let expected = block.bytes().to_vec();
    // O_SYNC: the write returns once it is on the device; no separate fsync needed.
    file.write_all(block.bytes())?;
    file.rewind()?;
    block.bytes().fill(0);
    file.read_exact(block.bytes())?;
    if block.bytes() != expected.as_slice() {
        return Err(io::Error::other(
            "status file read back differs from what was written",
        ));
    }
    Ok(())
}

impl ResourceAgent for FsAgent {
    type Config = FsConfig;

    fn type_name(&self) -> &'static str {
        "fs"
    }

    fn meta_data(&self) -> &'static str {
        META
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn configure(&self, p: &Params) -> AgentResult<FsConfig> {
        let device = parse_device(p.required_str("device")?)?;
        let directory = parse_directory(p.required_str("directory")?)?;
        let fstype = p.get("fstype").map(str::to_string).filter(|t| t != "auto");
        if let Some(t) = &fstype {
            let valid = t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid || t.len() > 64 {
                return Err(AgentError::Configured(format!("fstype '{t}' is not valid")));
            }
        }
        let options = parse_options(p.get("options").unwrap_or(""))?;
        let force_unmount = match p.get("force_unmount").unwrap_or("true") {
            "safe" => ForceUnmount::Safe,
            "false" | "no" | "0" => ForceUnmount::Never,
            _ => ForceUnmount::Stat,
        };
        let term_signals = p
            .get("term_signals")
            .unwrap_or("TERM")
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(|s| {
                parse_signal(s).ok_or_else(|| {
                    AgentError::Configured(format!("term_signals: '{s}' is not a signal"))
                })
            })
            .collect::<AgentResult<Vec<i32>>>()?;
        let prefix = p.get("statusfile_prefix").unwrap_or(".Filesystem_status/");
        if prefix.starts_with('/') || prefix.split('/').any(|c| c == "..") {
            return Err(AgentError::Configured(format!(
                "statusfile_prefix '{prefix}' must stay inside the mount point"
            )));
        }
        Ok(FsConfig {
            device,
            directory,
            fstype,
            options,
            statusfile_prefix: prefix.to_string(),
            run_fsck: match p.get("run_fsck").unwrap_or("auto") {
                "force" => RunFsck::Force,
                "no" => RunFsck::No,
                _ => RunFsck::Auto,
            },
            fast_stop: p.bool("fast_stop")?,
            force_clones: p.bool("force_clones")?,
            force_unmount,
            signal_delay: Duration::from_secs(p.u64("signal_delay")?.min(3600)),
            term_signals,
        })
    }

    fn validate(&self, cfg: &FsConfig, ctx: &Context) -> AgentResult<()> {
        self.validate_on_node(cfg, ctx).map(|_| ())
    }

    fn start(&self, cfg: &FsConfig, ctx: &Context) -> AgentResult<()> {
        let dev = self.validate_on_node(cfg, ctx)?;
        let table = self
            .ops
            .mounts()
            .map_err(io_error("reading the mount table"))?;
        if let Some(top) = table.iter().rev().find(|m| m.mount_point == cfg.directory) {
            if Self::is_ours(top, &dev) {
                log::info!(
                    "{} is already mounted on {}",
                    dev.source.display(),
                    cfg.directory.display()
                );
                return Ok(());
            }
            // What is in the way on this node only: 5 bans this node, 6 would stop the
            // filesystem everywhere.
            return Err(AgentError::Installed(format!(
                "{} already holds another mount ({} from {}); refusing to mount over it",
                cfg.directory.display(),
                top.fstype,
                top.source
            )));
        }
        if let Some(below) = table
            .iter()
            .find(|m| m.mount_point.starts_with(&cfg.directory) && m.mount_point != cfg.directory)
        {
            return Err(AgentError::Installed(format!(
                "{} is mounted below {}; refusing to hide it",
                below.mount_point.display(),
                cfg.directory.display()
            )));
        }
        // Mounting a device that is mounted read-write elsewhere hides a configuration error
        // (two resources on one device) behind a shared superblock.
        if let Some(elsewhere) = table
            .iter()
            .find(|m| dev.rdev.is_some() && Self::is_ours(m, &dev) && !m.is_read_only())
        {
            return Err(AgentError::Installed(format!(
                "{} is already mounted read-write on {}",
                dev.source.display(),
                elsewhere.mount_point.display()
            )));
        }
        self.fsck(cfg, &dev, ctx)?;
        let created = missing_dirs(&cfg.directory);
        std::fs::create_dir_all(&cfg.directory)
            .map_err(io_error(format!("creating {}", cfg.directory.display())))?;
        // A failed start leaves nothing behind, not even the directories it created.
        let mounted = self.mount_directory(cfg, &dev, ctx);
        if mounted.is_err() {
            for dir in created.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        mounted
    }

    fn stop(&self, cfg: &FsConfig, ctx: &Context) -> AgentResult<()> {
        if ctx.check_level >= 20 {
            // Like Filesystem: only a stop that asks for depth 20 removes the status file,
            // since touching a hung filesystem could stall the stop.
            let _ = std::fs::remove_file(self.status_file(cfg, ctx));
        }
        self.stop_directory(cfg, ctx)
    }

    fn monitor(&self, cfg: &FsConfig, ctx: &Context) -> AgentResult<Status> {
        let Some(entry) = self.mount_at(&cfg.directory)? else {
            return Ok(Status::Stopped);
        };
        let dev = match self.resolve(cfg) {
            Ok(d) => d,
            Err(e) => {
                return Err(AgentError::Generic(format!(
                    "{} is mounted ({}) but the configured device is unusable: {}",
                    cfg.directory.display(),
                    entry.source,
                    e.reason()
                )));
            }
        };
        if !Self::is_ours(&entry, &dev) {
            return Err(AgentError::Generic(format!(
                "{} is mounted from {}, not from {}",
                cfg.directory.display(),
                entry.source,
                dev.source.display()
            )));
        }
        if ctx.check_level >= 10 && dev.rdev.is_some() {
            read_device(&dev.source).map_err(|e| {
                AgentError::Generic(format!("reading {} failed: {e}", dev.source.display()))
            })?;
        }
        if ctx.check_level >= 20 {
            let file = self.status_file(cfg, ctx);
            write_status_file(&file, &ctx.instance).map_err(|e| {
                AgentError::Generic(format!(
                    "status file {} could not be written and read back: {e}",
                    file.display()
                ))
            })?;
        }
        Ok(Status::Running)
    }

    fn stop_unconfigured(
        &self,
        params: &Params,
        ctx: &Context,
        _err: &AgentError,
    ) -> AgentResult<()> {
        // The directory identifies what to unmount; without a valid one nothing of this
        // resource can be mounted.
        let Some(Ok(directory)) = params.get("directory").map(parse_directory) else {
            return Ok(());
        };
        let cfg = FsConfig {
            device: DeviceSpec::Path(PathBuf::from("/nonexistent")),
            directory,
            fstype: None,
            options: MountOptions::default(),
            statusfile_prefix: String::new(),
            run_fsck: RunFsck::No,
            fast_stop: false,
            force_clones: false,
            force_unmount: match params.get("force_unmount") {
                Some("safe") => ForceUnmount::Safe,
                Some("false" | "no" | "0") => ForceUnmount::Never,
                _ => ForceUnmount::Stat,
            },
            signal_delay: Duration::from_secs(1),
            term_signals: vec![libc::SIGTERM],
        };
        let until = Instant::now() + ctx.deadline.remaining();
        let devices = self.unmount_here(&cfg, until)?;
        self.unmount_elsewhere(&cfg, &devices, until)
    }

    fn active_unconfigured(&self, params: &Params, _ctx: &Context) -> bool {
        let Some(Ok(directory)) = params.get("directory").map(parse_directory) else {
            return false;
        };
        self.mount_at(&directory).ok().flatten().is_some()
    }
}

fn mount_error(req: &MountRequest, cfg: &FsConfig, e: &io::Error) -> AgentError {
    let what = format!(
        "mounting {} ({}) on {}",
        req.source.display(),
        req.fstype,
        req.target.display()
    );
    match e.raw_os_error() {
        Some(libc::ENODEV) => AgentError::Installed(format!(
            "{what}: the kernel does not support filesystem type {}",
            req.fstype
        )),
        // Another node's kernel may accept them (a rolling upgrade): 1, as Filesystem's
        // failing mount, not 6.
        Some(libc::EINVAL) if !cfg.options.raw.is_empty() => AgentError::Generic(format!(
            "{what}: the kernel rejected it; check the options '{}' and fstype",
            cfg.options.raw
        )),
        Some(libc::EINVAL) => AgentError::Generic(format!(
            "{what}: the kernel rejected it (wrong fstype or damaged superblock?)"
        )),
        _ => AgentError::from_io(what, e),
    }
}

#[cfg(test)]
mod tests;
