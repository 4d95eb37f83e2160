//! Heartbeat resource scripts and LSB init scripts, run the way Heartbeat 3's ResourceManager
//! runs them, behind the OCF actions the controller asks for:
//!
//! * the arguments written in haresources (`NAME::a::b`) come first, the action last:
//!   `NAME a b start`;
//! * `start` is `status` first, and `start` unless that says running
//!   (ResourceManager's `we_own_resource || doscript start`);
//! * `stop` that fails is forgiven when `status` then says stopped (Heartbeat logs the script
//!   as not LSB-compliant and carries on);
//! * `monitor` is `status`: for a Heartbeat script, what it prints (ResourceManager's rule:
//!   `not running` is stopped, then `running` or `OK` is running, anything else stopped;
//!   the exit code is not looked at); for an LSB init script, its exit code (0 running; 1, 2
//!   and 3 not running, as LSB defines them; anything else a failure).
//!
//! Each call runs with the environment [`resolve_scripts`](super::config::resolve_scripts)
//! built (Heartbeat's, nothing of hb-monitor's own), in its own process group, killed with
//! that group at the action's time limit. Its output goes to (unnamed) files rather than
//! pipes, as Heartbeat sends it to its debug log: an init script's daemon that keeps the
//! script's stdout open must not hold up the action until it exits.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::agent_worker::AgentFailure;
use super::config::{ResourceClass, ResourceEntry, Script};
use crate::sys::cmd::{self, CmdError};

/// What a `status` call says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It runs.
    Running,
    /// It does not run (the reason, for messages).
    Stopped(String),
    /// The call itself failed: why.
    Failed(String),
}

/// Heartbeat's reading of a resource script's `status` output (ResourceManager's
/// `we_own_resource`): "not " followed anywhere later by "Running"/"running" means stopped,
/// otherwise "Running", "running" or "OK" anywhere means running, anything else stopped.
pub fn heartbeat_status(stdout: &str) -> bool {
    let lower = stdout.to_ascii_lowercase();
    let running_after = |from: usize| {
        let rest = &stdout[from..];
        rest.contains("running") || rest.contains("Running")
    };
    let not_running = lower
        .match_indices("not ")
        .any(|(at, _)| running_after(at + "not ".len()));
    !not_running && (running_after(0) || stdout.contains("OK"))
}

/// LSB's `status` exit codes.
pub fn lsb_status(code: i32) -> Status {
    match code {
        0 => Status::Running,
        1 => Status::Stopped("status exit 1: dead, its pid file left behind".into()),
        2 => Status::Stopped("status exit 2: dead, its lock file left behind".into()),
        3 => Status::Stopped("status exit 3: not running".into()),
        4 => Status::Failed("status exit 4: status unknown".into()),
        other => Status::Failed(format!("status exit {other}")),
    }
}

/// One call's outcome.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The reason a failed call gives: its last line on stderr, else on stdout.
    fn reason(&self) -> String {
        let last = |text: &str| {
            text.lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(str::to_string)
        };
        last(&self.stderr)
            .or_else(|| last(&self.stdout))
            .unwrap_or_default()
    }
}

/// A file for a call's output with no name left: created and removed at once, and given to
/// the script as `/proc/PID/fd/N`, so that nothing is left behind whatever becomes of
/// hb-monitor, and nothing but the script can write to it.
struct OutputFile {
    file: std::fs::File,
    /// The path the script's shell opens it by.
    path: PathBuf,
}

impl OutputFile {
    fn create(what: &str) -> Result<OutputFile, String> {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let named = std::env::temp_dir().join(format!(
            "hb-monitor-script-{}-{}.{what}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A new file only, ours alone: nothing planted there beforehand is written through.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&named)
            .map_err(|e| format!("cannot create {}: {e}", named.display()))?;
        let _ = std::fs::remove_file(&named);
        let path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            file.as_raw_fd()
        ));
        Ok(OutputFile { file, path })
    }

    /// What the script wrote (its first 64 KiB).
    fn read(&self) -> String {
        use std::io::{Seek as _, SeekFrom};
        let mut buf = vec![];
        let mut file = &self.file;
        if file.seek(SeekFrom::Start(0)).is_ok() {
            let _ = file.take(64 * 1024).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// The shell between hb-monitor and the script: it puts the script's stdout and stderr in
/// the two files and then becomes the script, so the script is the process group's leader
/// and nothing it leaves running holds a pipe of ours.
const REDIRECT: &str = r#"o=$1 e=$2; shift 2; exec "$@" >"$o" 2>"$e""#;

/// How a script is called: where, with what, until when.
struct Call<'a> {
    script: &'a Script,
    args: Vec<String>,
    ocf_root: &'a Path,
    deadline: Instant,
}

/// Runs `script ARGS... verb` with what is left of the deadline.
fn call(c: &Call, verb: &str) -> Result<Ran, AgentFailure> {
    let (script, args, deadline) = (c.script, &c.args, c.deadline);
    let failure = |reason: String| AgentFailure { code: None, reason };
    let (out, err) = (
        OutputFile::create("out").map_err(failure)?,
        OutputFile::create("err").map_err(failure)?,
    );
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(REDIRECT)
        .arg("sh")
        .arg(&out.path)
        .arg(&err.path)
        .arg(&script.path)
        .args(args)
        .arg(verb)
        .env_clear()
        .envs(script.env.iter().map(|(n, v)| (n, v)))
        // Heartbeat's own scripts (its IPaddr2, Filesystem, ...) are wrappers around the
        // OCF agents of the same name: they find them here.
        .env("OCF_ROOT", c.ocf_root)
        .env("OCF_AGENTS", c.ocf_root.join("resource.d/heartbeat/"))
        // Heartbeat runs them in its core directory; hb-monitor somewhere as fixed.
        .current_dir("/");
    let left = deadline.saturating_duration_since(Instant::now());
    let shown = format!("{} {verb}", script.path.display());
    let code = match cmd::run(&mut command, left) {
        Ok(_) => 0,
        Err(CmdError::Failed { status, .. }) => match status.code() {
            Some(code) => code,
            None => return Err(failure(format!("{shown}: killed by a signal"))),
        },
        Err(CmdError::Timeout { .. }) => {
            return Err(failure(format!(
                "{shown}: no answer within the {} ms left of the action's time limit; killed with its process group",
                left.as_millis()
            )));
        }
        Err(e) => return Err(failure(format!("{shown}: {e}"))),
    };
    Ok(Ran {
        code,
        stdout: out.read(),
        stderr: err.read(),
    })
}

/// `status` of `res`, read as its class says.
fn status(res: &ResourceEntry, c: &Call) -> Result<Status, AgentFailure> {
    let ran = call(c, "status")?;
    Ok(match res.class {
        ResourceClass::Lsb => lsb_status(ran.code),
        _ if heartbeat_status(&ran.stdout) => Status::Running,
        _ => Status::Stopped(format!(
            "status printed {:?}, not \"running\" or \"OK\"",
            ran.stdout.trim()
        )),
    })
}

/// Runs OCF action `action` of script resource `res` within `timeout`, with OCF agents under
/// `ocf_root` (for Heartbeat's scripts that wrap them).
pub fn run(
    res: &ResourceEntry,
    action: &str,
    timeout: Duration,
    ocf_root: &Path,
) -> Result<(), AgentFailure> {
    let Some(script) = &res.script else {
        return Err(AgentFailure {
            code: None,
            reason: format!("{}: the script was not looked for", res.written),
        });
    };
    let c = Call {
        script,
        args: res.params.iter().map(|(_, v)| v.clone()).collect(),
        ocf_root,
        deadline: Instant::now() + timeout,
    };
    let failed = |ran: &Ran| AgentFailure {
        code: Some(ran.code),
        reason: ran.reason(),
    };
    match action {
        "start" => {
            if status(res, &c)? == Status::Running {
                return Ok(());
            }
            let ran = call(&c, "start")?;
            if ran.code == 0 {
                Ok(())
            } else {
                Err(failed(&ran))
            }
        }
        "stop" => {
            let ran = call(&c, "stop")?;
            if ran.code == 0 {
                return Ok(());
            }
            match status(res, &c)? {
                Status::Stopped(_) => {
                    log::warn!(
                        "{}: stop failed (exit {}) but status says stopped: taken as stopped; \
                         a script must succeed on a stop when already stopped",
                        res.written,
                        ran.code
                    );
                    Ok(())
                }
                _ => Err(failed(&ran)),
            }
        }
        "monitor" => match status(res, &c)? {
            Status::Running => Ok(()),
            Status::Stopped(why) => Err(AgentFailure {
                code: Some(7),
                reason: format!("not running ({why})"),
            }),
            Status::Failed(why) => Err(AgentFailure {
                code: Some(1),
                reason: why,
            }),
        },
        // Scripts have nothing to validate: being found is all `check` can ask of them.
        "validate-all" => Ok(()),
        other => Err(AgentFailure {
            code: Some(3),
            reason: format!("{other} is not an action of a {} script", res.provider),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_status_is_read_as_resource_manager_reads_it() {
        for running in [
            "running",
            "IPaddr2 is Running",
            "OK",
            "status: OK\n",
            // No space after "not": ResourceManager's "not running" pattern does not match.
            "notrunning",
        ] {
            assert!(heartbeat_status(running), "{running:?}");
        }
        for stopped in [
            "",
            "stopped",
            "is stopped",
            "Not running",
            "NOT running",
            "not  running",
            "daemon is not currently running",
            "ok",      // "OK" is case-sensitive
            "RUNNING", // only "Running" and "running"
            "not OK but running? not running",
            // "not " followed anywhere later by "running", as the shell pattern has it.
            "Not a problem; daemon running",
        ] {
            assert!(!heartbeat_status(stopped), "{stopped:?}");
        }
    }

    #[test]
    fn lsb_status_codes() {
        assert_eq!(lsb_status(0), Status::Running);
        for code in [1, 2, 3] {
            assert!(matches!(lsb_status(code), Status::Stopped(_)), "{code}");
        }
        for code in [4, 5, 150, 255] {
            assert!(matches!(lsb_status(code), Status::Failed(_)), "{code}");
        }
    }

    /// A script in a fresh directory that logs each call (arguments and action) to `calls`
    /// and does what `body` says (a shell `case "$ACTION"` body).
    fn resource(class: ResourceClass, body: &str) -> (tempfile::TempDir, ResourceEntry) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}/calls\nfor a; do ACTION=$a; done\ncase \"$ACTION\" in\n{body}\nesac\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let res = ResourceEntry {
            class,
            provider: "heartbeat".into(),
            agent: "svc".into(),
            params: vec![("1".into(), "a".into()), ("2".into(), "b".into())],
            searched: false,
            script: Some(Script {
                path,
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            }),
            written: "svc::a::b".into(),
            line: 1,
        };
        (dir, res)
    }

    fn calls(dir: &tempfile::TempDir) -> Vec<String> {
        std::fs::read_to_string(dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    const SECOND: Duration = Duration::from_secs(5);
    const OCF_ROOT: &str = "/usr/lib/ocf";

    #[test]
    fn start_asks_status_first_and_starts_only_what_is_stopped() {
        let (dir, res) = resource(
            ResourceClass::Heartbeat,
            "status) echo stopped;; start) exit 0;;",
        );
        run(&res, "start", SECOND, Path::new(OCF_ROOT)).unwrap();
        assert_eq!(calls(&dir), ["a b status", "a b start"]);
        let (dir, res) = resource(
            ResourceClass::Heartbeat,
            "status) echo OK;; start) exit 1;;",
        );
        run(&res, "start", SECOND, Path::new(OCF_ROOT)).unwrap();
        assert_eq!(calls(&dir), ["a b status"]);
        let (dir, res) = resource(ResourceClass::Lsb, "status) exit 0;; start) exit 1;;");
        run(&res, "start", SECOND, Path::new(OCF_ROOT)).unwrap();
        assert_eq!(calls(&dir), ["a b status"]);
    }

    #[test]
    fn a_failed_start_says_why() {
        let (_dir, res) = resource(
            ResourceClass::Lsb,
            "status) exit 3;; start) echo 'no config' >&2; exit 6;;",
        );
        let failure = run(&res, "start", SECOND, Path::new(OCF_ROOT)).unwrap_err();
        assert_eq!(
            (failure.code, failure.reason.as_str()),
            (Some(6), "no config")
        );
    }

    #[test]
    fn monitor_reads_status_by_class() {
        for (class, body, expect) in [
            (
                ResourceClass::Heartbeat,
                "status) echo running; exit 3;;",
                None,
            ),
            (
                ResourceClass::Heartbeat,
                "status) echo is not running; exit 0;;",
                Some(7),
            ),
            (
                ResourceClass::Lsb,
                "status) echo running; exit 3;;",
                Some(7),
            ),
            (ResourceClass::Lsb, "status) exit 0;;", None),
            (ResourceClass::Lsb, "status) exit 4;;", Some(1)),
        ] {
            let (_dir, res) = resource(class, body);
            assert_eq!(
                run(&res, "monitor", SECOND, Path::new(OCF_ROOT))
                    .err()
                    .and_then(|f| f.code),
                expect,
                "{class:?} {body}"
            );
        }
    }

    #[test]
    fn a_failed_stop_of_a_stopped_resource_is_forgiven() {
        let (dir, res) = resource(
            ResourceClass::Heartbeat,
            "status) echo stopped;; stop) exit 1;;",
        );
        run(&res, "stop", SECOND, Path::new(OCF_ROOT)).unwrap();
        assert_eq!(calls(&dir), ["a b stop", "a b status"]);
        let (_dir, res) = resource(ResourceClass::Lsb, "status) exit 0;; stop) exit 1;;");
        assert_eq!(
            run(&res, "stop", SECOND, Path::new(OCF_ROOT))
                .unwrap_err()
                .code,
            Some(1)
        );
    }

    #[test]
    fn a_hanging_script_and_its_children_are_killed_at_the_limit() {
        let (dir, res) = resource(
            ResourceClass::Lsb,
            &format!(
                "status) exit 3;; start) sleep 60 & echo $! > {}/child; sleep 60;;",
                "$HOME"
            ),
        );
        let res = ResourceEntry {
            script: Some(Script {
                env: vec![
                    ("PATH".into(), "/usr/bin:/bin".into()),
                    ("HOME".into(), dir.path().display().to_string()),
                ],
                ..res.script.clone().unwrap()
            }),
            ..res
        };
        let started = Instant::now();
        let failure = run(
            &res,
            "start",
            Duration::from_millis(500),
            Path::new(OCF_ROOT),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{failure}");
        assert!(
            failure.reason.contains("killed with its process group"),
            "{failure}"
        );
        let child: i32 = std::fs::read_to_string(dir.path().join("child"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed, and reaped by whoever inherited it: gone within a moment.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !Path::new(&format!("/proc/{child}")).exists()
                || std::fs::read_to_string(format!("/proc/{child}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "the script's child {child} outlived the time limit");
    }

    #[test]
    fn the_environment_is_the_scripts_only() {
        let (dir, res) = resource(
            ResourceClass::Heartbeat,
            &format!("status) env > {}/env; echo OK;;", "$PWD_OUT"),
        );
        let res = ResourceEntry {
            script: Some(Script {
                env: vec![
                    ("PATH".into(), "/usr/bin:/bin".into()),
                    ("PWD_OUT".into(), dir.path().display().to_string()),
                ],
                ..res.script.clone().unwrap()
            }),
            ..res
        };
        run(&res, "monitor", SECOND, Path::new(OCF_ROOT)).unwrap();
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let mut names: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('=').map(|(n, _)| n))
            // What the shell itself sets.
            .filter(|n| !matches!(*n, "PWD" | "SHLVL" | "_" | "OLDPWD"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["OCF_AGENTS", "OCF_ROOT", "PATH", "PWD_OUT"],
            "{env}"
        );
        assert!(env.contains("PWD=/\n"), "{env}");
    }
}
