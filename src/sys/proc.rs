//! Processes an agent owns: identified by pid *and* start time, so that a recycled pid is
//! never mistaken for ours; helpers detached from the caller's session and pipes, and helpers
//! run as another user (hb-monitor's `respawn`).
//!
//! Agents stop processes by pid, never by name: other work shares the machine.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    /// The pid.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`: start time in clock ticks since boot.
    pub start_time: u64,
}

/// The start time of `pid`, if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); start time is field 22, i.e. index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl ProcessId {
    /// The identity of a running process.
    pub fn of(pid: i32) -> Option<ProcessId> {
        Some(ProcessId {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// True while this very process exists (not a later one with the same pid).
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Sends `signal` if the process is still this one. Returns false when it is gone.
    pub fn signal(&self, signal: i32) -> bool {
        if !self.is_alive() {
            return false;
        }
        // SAFETY: kill(2) with a pid we just verified; a race with exit+reuse within
        // microseconds is the remaining window every pid-based tool has.
        unsafe { libc::kill(self.pid, signal) == 0 }
    }
}

/// Writes `pid start_time` to `path` (creating its directory).
pub fn write_pidfile(path: &Path, id: ProcessId) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{} {}\n", id.pid, id.start_time))?;
    std::fs::rename(&tmp, path)
}

/// Reads a pid file written by [`write_pidfile`]; `None` when absent or malformed.
pub fn read_pidfile(path: &Path) -> Option<ProcessId> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    Some(ProcessId {
        pid: fields.next()?.parse().ok()?,
        start_time: fields.next()?.parse().ok()?,
    })
}

/// Starts `exe args…` as user `uid` and group `gid` (std drops root's supplementary groups
/// with them), in `/`, with stdin/stdout/stderr on /dev/null and only a standard `PATH` in
/// its environment; the caller waits for it ([`std::process::Child::wait`]).
pub fn spawn_as(exe: &Path, args: &[String], uid: u32, gid: u32) -> io::Result<Child> {
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .spawn()
}

/// The descriptor number a detached helper finds an inherited descriptor at.
pub const INHERITED_FD: RawFd = 3;

/// Starts `exe args…` in a new session with stdin/stdout/stderr on /dev/null and does not
/// wait for it: the caller (Pacemaker's executor, hb-monitor, a shell) must not wait on a
/// helper that outlives the action, and the helper must not die with the caller's group.
/// `inherit` is passed to the helper as descriptor [`INHERITED_FD`].
pub fn spawn_detached(
    exe: &Path,
    args: &[String],
    inherit: Option<RawFd>,
) -> io::Result<ProcessId> {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    // SAFETY: setsid, dup2 and fcntl are async-signal-safe and touch only the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = inherit {
                if fd == INHERITED_FD {
                    // dup2 onto itself keeps close-on-exec: clear it explicitly.
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, INHERITED_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // Dropping `child` does not kill or wait; the helper is reparented when we exit.
    drop(child);
    Ok(ProcessId::of(pid).unwrap_or(ProcessId { pid, start_time: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_a_start_time() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let impostor = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
        assert!(!impostor.signal(0));
    }

    #[test]
    fn pidfile_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.pid");
        let id = ProcessId {
            pid: 42,
            start_time: 4242,
        };
        write_pidfile(&path, id).unwrap();
        assert_eq!(read_pidfile(&path), Some(id));
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(read_pidfile(&path), None);
    }

    #[test]
    fn detached_child_is_in_its_own_session() {
        let id = spawn_detached(Path::new("/bin/sleep"), &["5".to_string()], None).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let session: i32 = rest.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert_eq!(session, id.pid);
        assert!(id.signal(libc::SIGKILL));
    }
}
