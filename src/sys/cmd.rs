//! The one way agents run external commands (fsck, drbdadm, …): with a timeout taken from
//! the action's deadline, stdin closed, and the child's stderr kept for the error message.
//!
//! Modelled on ripgrep's `crates/cli/src/process.rs`: the error displays what the child said.
//! The child runs in its own process group so that a timeout kills everything it started.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// It could not be started (missing binary, permissions).
    #[error("{program}: cannot run: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran past its time limit and was killed.
    #[error("{program}: no answer within {} ms; killed", timeout.as_millis())]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
    /// It exited unsuccessfully.
    #[error("{program}: {}{}", describe(*status), stderr_suffix(stderr))]
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard output.
        stdout: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

impl CmdError {
    /// True when the program does not exist (the agent should say "not installed", rc 5).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CmdError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// The exit code, when the command ran to completion.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            CmdError::Failed { status, .. } => status.code(),
            _ => None,
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "failed".to_string(),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// What a successful command printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error (warnings a successful command still printed).
    pub stderr: String,
}

/// Runs `cmd` to completion within `timeout`; success only on exit code 0.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<CmdOutput, CmdError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    log::debug!("running {cmd:?} (timeout {} ms)", timeout.as_millis());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| CmdError::Spawn {
            program: program.clone(),
            source,
        })?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| Drain::start(pipe);
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    // Woken by the child's exit itself (a pidfd polls readable then): a command that takes
    // 0.7 ms costs 0.7 ms, not the next step of a sleep. Sleeps that grow are the fallback
    // on a kernel without pidfds.
    let exited = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(&child),
        rustix::process::PidfdFlags::empty(),
    )
    .ok();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                // Kill the whole group: the command's own children hold our pipes open.
                // SAFETY: kill(2) on our child's process group, which we created above.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break Err(CmdError::Timeout {
                    program: program.clone(),
                    timeout,
                });
            }
            Ok(None) => {
                let left = timeout.saturating_sub(started.elapsed());
                match &exited {
                    Some(pidfd) => {
                        let mut fds = [nix::poll::PollFd::new(
                            std::os::fd::AsFd::as_fd(pidfd),
                            nix::poll::PollFlags::POLLIN,
                        )];
                        // Round up: a sub-millisecond wait must not spin.
                        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                        let _ = nix::poll::poll(
                            &mut fds,
                            nix::poll::PollTimeout::try_from(ms)
                                .unwrap_or(nix::poll::PollTimeout::MAX),
                        );
                    }
                    None => {
                        std::thread::sleep(pause.min(left));
                        pause = (pause * 2).min(Duration::from_millis(20));
                    }
                }
            }
            Err(source) => {
                break Err(CmdError::Spawn {
                    program: program.clone(),
                    source,
                });
            }
        }
    };
    let stdout = out.finish();
    let stderr = err.finish().trim().to_string();
    let status = status?;
    if status.success() {
        Ok(CmdOutput { stdout, stderr })
    } else {
        Err(CmdError::Failed {
            program,
            status,
            stdout,
            stderr,
        })
    }
}

/// How long the pipes are still read once the command has ended: what it wrote before it
/// exited is read by then. A process it left behind (a daemon that kept our stdout) may hold
/// them open for good; its output is not the command's result, and waiting for it would
/// hold up the caller forever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(50);

/// One pipe read to its end on a thread of its own.
struct Drain {
    read: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    ended: std::sync::mpsc::Receiver<()>,
}

impl Drain {
    fn start(pipe: Option<Box<dyn Read + Send>>) -> Drain {
        let read = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (done, ended) = std::sync::mpsc::channel();
        let sink = read.clone();
        std::thread::spawn(move || {
            if let Some(mut p) = pipe {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = p.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
            }
            let _ = done.send(());
        });
        Drain { read, ended }
    }

    /// What was read: all of it when the pipe ends within [`DRAIN_AFTER_EXIT`], else what
    /// came by then (the thread reads on, unheard, until the pipe's last holder exits).
    fn finish(self) -> String {
        let _ = self.ended.recv_timeout(DRAIN_AFTER_EXIT);
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&read).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn success_returns_stdout() {
        let out = run(&mut sh("echo hello; echo note >&2"), Duration::from_secs(5)).unwrap();
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr.trim(), "note");
    }

    #[test]
    fn failure_keeps_stderr_and_code() {
        let err = run(
            &mut sh("echo 'bad superblock' >&2; exit 4"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), Some(4));
        assert_eq!(err.to_string(), "/bin/sh: exit code 4: bad superblock");
    }

    #[test]
    fn a_process_left_holding_the_pipes_does_not_hold_up_the_result() {
        let started = Instant::now();
        // The background `sleep` keeps stdout and stderr open after the shell exits, as a
        // daemon an agent started without closing them would.
        let out = run(
            &mut sh("sleep 3 & echo started; echo warned >&2"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "waited {:?} for a pipe the command's child held",
            started.elapsed()
        );
        assert_eq!(out.stdout, "started\n");
        assert_eq!(out.stderr.trim(), "warned");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let started = Instant::now();
        // The grandchild `sleep` keeps stdout open; only killing the group ends the read.
        let err = run(&mut sh("sleep 30 & sleep 30"), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, CmdError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = run(
            &mut Command::new("/nonexistent/ferroha-x"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.is_not_found());
    }
}
