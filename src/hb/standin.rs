//! What this node sends, and the stand-in that sends its heartbeat when the loop cannot.
//!
//! Every message leaves through one [`Outgoing`] (sequence number, retransmission history,
//! the media's sending ends), shared under a lock by the daemon's loop and the stand-ins.
//!
//! Why a stand-in: on a virtual machine the hypervisor deschedules one vCPU at a time, for up
//! to 100 ms on this project's 2-vCPU test VM under disk load (a SCHED_RR thread's wake-up
//! measured 100.2 ms late while the other vCPU ran on). The loop's timer is queued on the vCPU
//! the loop sleeps on, so a stall of that one vCPU silences the node although the node, its
//! other vCPU and the group it runs are fine, and a peer at a deadtime of tens of
//! milliseconds takes over: a false failover. A stand-in keeps to each CPU ([`start`]); when
//! the loop has not sent for two keepalives, the first to notice sends the loop's last
//! heartbeat again (with a new sequence number, so that it counts), for at most [`COVER`]
//! after the loop's own last one: a loop that is stuck for longer (a bug; the process lives
//! on) stops being covered and its node is seen dead `COVER` + deadtime after it stuck. A
//! stall of the whole machine stops the stand-ins too; that one the peers excuse
//! ([`Membership::excuse`]).
//!
//! [`Membership::excuse`]: super::membership::Membership::excuse

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::AuthKeys;
use super::media::MediaSet;
use super::proto::{self, Message};

/// Sequenced messages kept for Heartbeat peers' retransmission requests.
pub const HISTORY: usize = 200;

/// How long after the loop's own last heartbeat the stand-in goes on sending for it.
pub const COVER: Duration = Duration::from_millis(500);

/// This node's sending side: the envelope it puts on every message, the media's sending
/// ends, and what the stand-in needs to know.
#[derive(Debug)]
pub struct Outgoing {
    node: String,
    uuid: [u8; 16],
    generation: u64,
    auth: AuthKeys,
    media: MediaSet,
    seq: u64,
    /// The last sequenced messages sent (seq, bytes), for retransmission requests.
    history: VecDeque<(u64, Vec<u8>)>,
    /// The loop's last heartbeat, without its envelope: what the stand-in repeats. `None`:
    /// nothing to stand in for (not sent yet, or the node has said it is leaving).
    heartbeat: Option<Message>,
    /// When the loop last sent a heartbeat, and when anyone did.
    loop_sent: Instant,
    last_sent: Instant,
    /// Heartbeats the stand-in sent.
    pub stood_in: u64,
}

impl Outgoing {
    /// The sending side of node `node`, sending on `media` (its own handles on the sockets).
    pub fn new(
        node: &str,
        uuid: [u8; 16],
        generation: u64,
        auth: AuthKeys,
        media: MediaSet,
        now: Instant,
    ) -> Outgoing {
        Outgoing {
            node: node.to_string(),
            uuid,
            generation,
            auth,
            media,
            seq: 0,
            history: VecDeque::new(),
            heartbeat: None,
            loop_sent: now,
            last_sent: now,
            stood_in: 0,
        }
    }

    /// Sends `msg` on every medium with Heartbeat's envelope (sender, UUID, sequence number
    /// when `sequenced`, generation, time, hop count), in Heartbeat's field order. Returns
    /// the failures to log, by medium (or the encoding's).
    pub fn send(&mut self, mut msg: Message, sequenced: bool) -> Vec<(String, String)> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        msg.push("src", self.node.clone());
        msg.push_binary("srcuuid", &self.uuid);
        if sequenced {
            self.seq += 1;
            msg.push("seq", format!("{:x}", self.seq));
        }
        msg.push("hg", format!("{:x}", self.generation));
        msg.push("ts", format!("{ts:x}"));
        msg.push("ttl", "4");
        match proto::encode(&msg, &self.auth) {
            Ok(bytes) => {
                let errors = errors(self.media.send_all(&bytes));
                if sequenced {
                    if self.history.len() == HISTORY {
                        self.history.pop_front();
                    }
                    self.history.push_back((self.seq, bytes));
                }
                errors
            }
            Err(e) => vec![("encoding".into(), e.to_string())],
        }
    }

    /// The loop's heartbeat: sent, and kept for the stand-in (`leaving`: the last one, not
    /// to be repeated).
    pub fn heartbeat(
        &mut self,
        msg: Message,
        leaving: bool,
        now: Instant,
    ) -> Vec<(String, String)> {
        self.heartbeat = (!leaving).then(|| msg.clone());
        self.loop_sent = now;
        self.last_sent = now;
        self.send(msg, true)
    }

    /// Sends sequenced message `seq` again as it was (the failures); `None` when it is no
    /// longer kept.
    pub fn resend(&self, seq: u64) -> Option<Vec<(String, String)>> {
        let (_, bytes) = self.history.iter().find(|(s, _)| *s == seq)?;
        Some(errors(self.media.send_all(bytes)))
    }

    /// The stand-in's decision at `now`: when to look again, and whether it sent (the
    /// failures to log).
    fn stand_in(
        &mut self,
        keepalive: Duration,
        now: Instant,
    ) -> (Instant, Option<Vec<(String, String)>>) {
        let due = self.last_sent + 2 * keepalive;
        if now < due {
            return (due, None);
        }
        if now.saturating_duration_since(self.loop_sent) > COVER {
            // The loop is stuck, not stalled: let the node look as dead as it is.
            return (now + keepalive.max(Duration::from_millis(10)), None);
        }
        let Some(msg) = self.heartbeat.clone() else {
            return (now + keepalive, None);
        };
        self.stood_in += 1;
        self.last_sent = now;
        let errors = self.send(msg, true);
        (now + 2 * keepalive, Some(errors))
    }
}

fn errors(list: Vec<(String, io::Error)>) -> Vec<(String, String)> {
    list.into_iter().map(|(m, e)| (m, e.to_string())).collect()
}

/// Locks `out`, whatever a panicking holder left (the state stays consistent: every field
/// is written whole).
pub fn lock(out: &Mutex<Outgoing>) -> MutexGuard<'_, Outgoing> {
    out.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The CPUs this thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return vec![];
    }
    // SAFETY: CPU_ISSET reads the initialised set.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Lets the calling thread run on `cpus` only.
fn run_on(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: c < CPU_SETSIZE (it came from allowed_cpus' range).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a live cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// At most this many stand-ins, one per CPU: enough that one runs whichever CPU stalls.
const MAX_STAND_INS: usize = 4;

/// Starts the stand-ins for a loop (the calling thread) sending every `keepalive`, when they
/// can help: with two CPUs or more, and a keepalive whose two beats stay under [`COVER`]. One
/// stand-in keeps to each CPU (the first [`MAX_STAND_INS`] the daemon may use), the loop goes
/// where the scheduler puts it: a thread's timers fire on the CPU it went to sleep on, so
/// whichever CPU stalls, the stand-ins of the others still wake. (Two earlier placements lost
/// a soak each: one stand-in that kept off the loop's last CPU, re-checked when it woke, and
/// so at times slept on the loop's CPU; and the loop pinned to one CPU, which then stalled it
/// far more often, 12-39 ms dozens of times in 5 minutes.) The first stand-in to find the loop
/// silent sends; the others find it done. They run at the loop's scheduling (SCHED_RR when
/// realtime); `log` reports their send failures. Returns their CPUs.
pub fn start(
    out: Arc<Mutex<Outgoing>>,
    keepalive: Duration,
    log: fn(&str, &str),
) -> io::Result<Vec<usize>> {
    let cpus = allowed_cpus();
    if cpus.len() < 2 || 2 * keepalive >= COVER {
        return Ok(vec![]);
    }
    // The loop's scheduling (SCHED_RR when realtime), set again in each thread: with
    // SCHED_RESET_ON_FORK a new thread starts at normal priority.
    // SAFETY: sched_getscheduler/sched_getparam on this thread, into a local sched_param.
    let policy = unsafe { libc::sched_getscheduler(0) };
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let have_param = unsafe { libc::sched_getparam(0, &mut param) } == 0;
    let cpus: Vec<usize> = cpus.into_iter().take(MAX_STAND_INS).collect();
    for &cpu in &cpus {
        let out = out.clone();
        std::thread::Builder::new()
            .name(format!("hb-stand-in-{cpu}"))
            .spawn(move || {
                if policy > 0 && have_param {
                    // SAFETY: the calling thread, with a sched_param read from the loop's.
                    unsafe { libc::sched_setscheduler(0, policy, &param) };
                }
                if let Err(e) = run_on(&[cpu]) {
                    log(
                        "WARN",
                        &format!("stand-in heartbeat: keeping to CPU {cpu}: {e}"),
                    );
                }
                stand_in_loop(&out, keepalive, log);
            })?;
    }
    Ok(cpus)
}

fn stand_in_loop(out: &Mutex<Outgoing>, keepalive: Duration, log: fn(&str, &str)) -> ! {
    loop {
        // Never wait on the loop: if it holds the lock and its CPU stalls, waiting would
        // stall the stand-in with it. Look again in a millisecond.
        let (next, sent) = match out.try_lock() {
            Ok(mut o) => o.stand_in(keepalive, Instant::now()),
            Err(TryLockError::Poisoned(p)) => p.into_inner().stand_in(keepalive, Instant::now()),
            Err(TryLockError::WouldBlock) => (Instant::now() + Duration::from_millis(1), None),
        };
        if let Some(errors) = sent {
            for (medium, e) in errors {
                log("WARN", &format!("stand-in heartbeat on {medium}: {e}"));
            }
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests;
