//! `respawn USER PROGRAM [ARG...]` (Heartbeat's): helpers the daemon starts with itself, runs
//! as `USER`, and starts again whenever they exit — unless with code 100, Heartbeat's "do
//! not restart me" — and stops when it exits (SIGTERM, SIGKILL after [`STOP_GRACE`]).
//!
//! One thread per helper, blocked in `wait` while it runs: no wake-ups, nothing in the loop.
//! The threads are started before the loop goes realtime, so that the helpers run at normal
//! priority. A helper that keeps failing as it starts is not restarted for ever: after
//! [`QUICK_EXITS`] exits in a row each within [`QUICK`] of its start (1 s apart), it is
//! given up and said so.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::sys::proc::{ProcessId, spawn_as};

/// The exit code with which a helper asks not to be restarted (Heartbeat's).
pub const NO_RESTART: i32 = 100;
/// A helper that exits this soon after its start has failed to start, rather than run.
pub const QUICK: Duration = Duration::from_secs(10);
/// Quick exits in a row after which a helper is given up.
pub const QUICK_EXITS: u32 = 10;
/// The pause before a helper that exited quickly is started again.
const QUICK_PAUSE: Duration = Duration::from_secs(1);
/// How long a helper has to exit on SIGTERM when the daemon stops.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// One `respawn` line, its user resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// `USER` as written, for messages.
    pub user: String,
    /// Its uid and primary gid.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// `PROGRAM`.
    pub program: PathBuf,
    /// `ARG...`.
    pub args: Vec<String>,
}

/// A running helper's thread and what stopping it needs.
struct Running {
    name: String,
    /// The helper's pid while it runs; held while starting one, so that a stop never misses
    /// a helper being started.
    pid: Arc<Mutex<Option<u32>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The helpers of `respawn`, each kept running by a thread of its own.
pub struct Respawner {
    running: Vec<Running>,
}

impl Respawner {
    /// Starts a thread per helper, which starts the helper.
    pub fn start(helpers: &[Helper]) -> std::io::Result<Respawner> {
        let mut running = vec![];
        for helper in helpers {
            let name = helper.program.display().to_string();
            let pid: Arc<Mutex<Option<u32>>> = Arc::default();
            let stop: Arc<AtomicBool> = Arc::default();
            let thread = {
                let (helper, pid, stop) = (helper.clone(), pid.clone(), stop.clone());
                std::thread::Builder::new()
                    .name("respawn".into())
                    .spawn(move || keep_running(&helper, &pid, &stop))?
            };
            running.push(Running {
                name,
                pid,
                stop,
                thread,
            });
        }
        Ok(Respawner { running })
    }
}

impl Drop for Respawner {
    /// Stops every helper and its thread: SIGTERM, then SIGKILL for one still running after
    /// [`STOP_GRACE`]. On every way out of the daemon's run, so that no helper outlives it.
    fn drop(&mut self) {
        let signal = |r: &Running, signal: i32| {
            if let Some(id) = r.pid.lock().unwrap().and_then(|p| ProcessId::of(p as i32)) {
                id.signal(signal);
            }
        };
        for r in &self.running {
            let pid = r.pid.lock().unwrap();
            r.stop.store(true, Ordering::SeqCst);
            drop(pid);
            signal(r, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && self.running.iter().any(|r| !r.thread.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in std::mem::take(&mut self.running) {
            if !r.thread.is_finished() {
                warn!(
                    "respawn {}: still running {} s after SIGTERM: SIGKILL",
                    r.name,
                    STOP_GRACE.as_secs()
                );
                signal(&r, libc::SIGKILL);
            }
            let _ = r.thread.join();
        }
    }
}

/// The helper's thread: start it, wait for it, and again, until told to stop, the helper
/// exits with [`NO_RESTART`], or it keeps exiting as it starts.
fn keep_running(helper: &Helper, pid: &Mutex<Option<u32>>, stop: &AtomicBool) {
    let name = helper.program.display();
    let mut quick_exits = 0;
    loop {
        let started = Instant::now();
        let child = {
            let mut slot = pid.lock().unwrap();
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match spawn_as(&helper.program, &helper.args, helper.uid, helper.gid) {
                Ok(child) => {
                    *slot = Some(child.id());
                    info!(
                        "respawn {name}: started as {} (pid {})",
                        helper.user,
                        child.id()
                    );
                    Some(child)
                }
                Err(e) => {
                    error!("respawn {name}: cannot start it as {}: {e}", helper.user);
                    None
                }
            }
        };
        let status = child.map(|mut c| c.wait());
        *pid.lock().unwrap() = None;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match status {
            Some(Ok(s)) if s.code() == Some(NO_RESTART) => {
                info!("respawn {name}: exited with {NO_RESTART}: not started again");
                return;
            }
            Some(Ok(s)) => warn!("respawn {name}: {s}: starting it again"),
            Some(Err(e)) => warn!("respawn {name}: waiting for it: {e}"),
            None => {}
        }
        if started.elapsed() >= QUICK {
            quick_exits = 0;
            continue;
        }
        quick_exits += 1;
        if quick_exits >= QUICK_EXITS {
            error!(
                "respawn {name}: ended {QUICK_EXITS} times in a row within {} s of its start: \
                 given up (restart hb-monitor once it is fixed)",
                QUICK.as_secs()
            );
            return;
        }
        let until = Instant::now() + QUICK_PAUSE;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
