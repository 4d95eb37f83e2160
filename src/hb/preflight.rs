//! The configuration as `run` and `check` both build it: the files read and checked
//! ([`config::load`]), then everything they name probed for what `run` needs it to be, before
//! `run` opens anything: each medium's interface exists, a serial medium is a terminal, the
//! watchdog is a character device, the fence and notify commands and respawned helpers
//! executable files (and the helpers' users known),
//! `metrics_listen` an address of this machine, the log files something to append to, the
//! state directory writable. Probing has no side effects: the watchdog is not opened (that
//! would arm it), a terminal is opened read-only and closed, no file is created. `run` then checks what it opens again on the descriptor, for a path
//! changed in between.
//!
//! One function for both, so that `check` passing means `run` starts, and every refusal
//! reads the same in both (file, line and reason; exit 6).

use std::path::{Path, PathBuf};

use super::config::{self, Config, ConfigError, Medium};
use crate::sys::files::{self, Kind};

/// How long a user lookup may take (the name service may be remote).
pub const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `respawn`'s helpers with their users resolved, for `run` (after [`load`] found them).
pub fn respawn_helpers(ha: &config::HaCf) -> Result<Vec<super::respawn::Helper>, String> {
    ha.respawn
        .iter()
        .map(|r| {
            let (uid, gid) = crate::sys::users::user_ids(&r.user, LOOKUP_TIMEOUT)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("respawn: no user '{}' on this node", r.user))?;
            Ok(super::respawn::Helper {
                user: r.user.clone(),
                uid,
                gid,
                program: r.program.clone(),
                args: r.args.clone(),
            })
        })
        .collect()
}

/// Reads `dir` and probes what it names (see the module documentation); every problem.
pub fn load(dir: &Path, state_dir: &Path) -> Result<Config, Vec<ConfigError>> {
    let cfg = config::load(dir)?;
    let errors = probe(&cfg, state_dir);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors)
    }
}

/// What `run` would refuse of `cfg`'s paths and interfaces, and of `state_dir`.
pub fn probe(cfg: &Config, state_dir: &Path) -> Vec<ConfigError> {
    let ha_cf = cfg.dir.join("ha.cf");
    let ha = &cfg.ha_cf;
    let mut errors = vec![];
    let mut refuse = |line: usize, message: String| {
        errors.push(ConfigError {
            file: ha_cf.clone(),
            line,
            message,
        })
    };
    for (medium, line) in ha.media.iter().zip(&ha.media_lines) {
        if let Some(problem) = medium_problem(medium) {
            refuse(*line, problem);
        }
    }
    if let Some(device) = &ha.watchdog
        && let Some(problem) = watchdog_problem(device)
    {
        refuse(ha.line_of("watchdog"), problem);
    }
    for (directive, command) in [
        ("fence_command", &ha.fence_command),
        ("notify_command", &ha.notify_command),
    ] {
        if let Some(program) = command.first()
            && let Some(problem) = program_problem(directive, program)
        {
            refuse(ha.line_of(directive), problem);
        }
    }
    for r in &ha.respawn {
        let at = format!("respawn {} {}", r.user, r.program.display());
        if let Some(problem) = program_problem("respawn", &r.program.display().to_string()) {
            refuse(r.line, problem);
        }
        match crate::sys::users::user_ids(&r.user, LOOKUP_TIMEOUT) {
            Ok(Some(_)) => {}
            Ok(None) => refuse(r.line, format!("{at}: no user '{}' on this node", r.user)),
            Err(e) => refuse(r.line, format!("{at}: {e}")),
        }
    }
    if let Some(addr) = ha.metrics_listen
        && let Some(problem) = listen_problem(addr)
    {
        refuse(ha.line_of("metrics_listen"), problem);
    }
    for (directive, path) in [("logfile", &ha.logfile), ("debugfile", &ha.debugfile)] {
        if let Some(path) = path
            && let Some(problem) = appendable_problem(path)
        {
            refuse(
                ha.line_of(directive),
                format!("{directive} {}: {problem}", path.display()),
            );
        }
    }
    if let Some(problem) = state_dir_problem(state_dir) {
        errors.push(ConfigError {
            file: state_dir.to_path_buf(),
            line: 0,
            message: format!("state directory (--state-dir): {problem}"),
        });
    }
    errors
}

fn medium_problem(medium: &Medium) -> Option<String> {
    match medium {
        Medium::Bcast { iface } | Medium::Ucast { iface, .. } | Medium::Mcast { iface, .. } => {
            crate::sys::udp::interface_index(iface).err().map(|e| {
                let directive = match medium {
                    Medium::Bcast { .. } => "bcast",
                    Medium::Ucast { peer, .. } if peer.is_ipv6() => "ucast6",
                    Medium::Ucast { .. } => "ucast",
                    Medium::Mcast { group, .. } if group.is_ipv6() => "mcast6",
                    _ => "mcast",
                };
                format!("{directive}: {e}")
            })
        }
        Medium::Serial { device } => {
            let at = format!("serial {}", device.display());
            match files::kind(device) {
                Err(e) => Some(format!("{at}: {e}")),
                Ok(Kind::Missing) => Some(format!("{at} does not exist")),
                Ok(Kind::CharDevice) => match files::is_tty(device) {
                    Ok(true) => None,
                    Ok(false) => Some(format!("{at}: a character device, not a terminal")),
                    Err(e) => Some(format!("{at}: {e}")),
                },
                Ok(other) => Some(format!("{at}: {}, not a terminal", other.described())),
            }
        }
    }
}

fn watchdog_problem(device: &Path) -> Option<String> {
    let at = format!("watchdog {}", device.display());
    match files::kind(device) {
        Err(e) => Some(format!("{at}: {e}")),
        Ok(Kind::Missing) => Some(format!(
            "{at} does not exist (load a watchdog driver, e.g. `modprobe softdog`, or remove the directive)"
        )),
        Ok(Kind::CharDevice) => None,
        Ok(other) => Some(format!(
            "{at}: {}, not a watchdog device (a character device such as /dev/watchdog)",
            other.described()
        )),
    }
}

/// `metrics_listen`: an address of this machine. Bound and let go at once (nothing is
/// served); a port in use is not refused, since `check` runs beside the daemon.
fn listen_problem(addr: std::net::SocketAddr) -> Option<String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Some(format!(
            "metrics_listen {addr}: {} is not an address of this machine (use one it has, or \
             a bare PORT for localhost)",
            addr.ip()
        )),
        Err(e) => Some(format!("metrics_listen {addr}: {e}")),
    }
}

/// The fence or notify command's program: a path, or a name looked up in `PATH` as it will
/// be run.
fn program_problem(directive: &str, program: &str) -> Option<String> {
    let at = format!("{directive} {program}");
    let path = if program.contains('/') {
        PathBuf::from(program)
    } else {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| files::executable(p))
        });
        match found {
            Some(p) => p,
            None => return Some(format!("{at}: not found in PATH")),
        }
    };
    match files::kind(&path) {
        Err(e) => Some(format!("{at}: {e}")),
        Ok(Kind::Missing) => Some(format!("{at} does not exist")),
        Ok(Kind::Regular) if files::executable(&path) => None,
        Ok(Kind::Regular) => Some(format!("{at}: not executable (chmod +x)")),
        Ok(other) => Some(format!(
            "{at}: {}, not an executable file",
            other.described()
        )),
    }
}

/// A log file may be appended to: a regular file, or nothing yet in a writable directory.
fn appendable_problem(path: &Path) -> Option<String> {
    match files::kind(path) {
        Err(e) => Some(e.to_string()),
        Ok(Kind::Regular) if files::writable(path) => None,
        Ok(Kind::Regular) => Some("not writable".into()),
        Ok(Kind::Missing) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            match files::kind(parent) {
                Ok(Kind::Directory) if files::writable(parent) => None,
                Ok(Kind::Directory) => {
                    Some(format!("directory {} is not writable", parent.display()))
                }
                Ok(Kind::Missing) => Some(format!("directory {} does not exist", parent.display())),
                Ok(other) => Some(format!(
                    "{} is {}, not a directory",
                    parent.display(),
                    other.described()
                )),
                Err(e) => Some(format!("{}: {e}", parent.display())),
            }
        }
        Ok(other) => Some(format!("{}, not a file to append to", other.described())),
    }
}

/// The state directory: a writable directory, or creatable (its nearest existing ancestor
/// is a writable directory).
fn state_dir_problem(dir: &Path) -> Option<String> {
    let mut at = dir;
    loop {
        match files::kind(at) {
            Ok(Kind::Directory) if files::writable(at) => return None,
            Ok(Kind::Directory) => return Some(format!("{} is not writable", at.display())),
            Ok(Kind::Missing) => match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => return None,
            },
            Ok(other) => {
                return Some(format!(
                    "{} is {}, not a directory",
                    at.display(),
                    other.described()
                ));
            }
            Err(e) => return Some(format!("{}: {e}", at.display())),
        }
    }
}
