//! What this node sends, and the stand-in that sends its heartbeat when the loop cannot.
//!
//! Every message leaves through one [`Outgoing`] (sequence number, retransmission history,
//! the last heartbeat), shared by the daemon's loop and the stand-ins; each sender has its
//! own handles on the media's sockets.
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
//! The stand-ins never wait for the loop. A loop whose vCPU stalls while it holds a lock
//! the stand-ins need would silence them with it, so the loop holds the one lock they take,
//! the heartbeat's, only to swap the message and draw its sequence number (well under a
//! microsecond), and encodes, signs and sends outside it. (An earlier version sent under one
//! lock for everything, tens of microseconds of every keepalive; a soak failed once with
//! a false takeover that a stall inside that window explains.) The stand-ins take no lock
//! at all while the loop sends on time.
//!
//! [`Membership::excuse`]: super::membership::Membership::excuse

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::AuthKeys;
use super::media::MediaSet;
use super::proto::{self, Message};
use crate::sys::sched;

/// Sequenced messages kept for Heartbeat peers' retransmission requests.
pub const HISTORY: usize = 200;

/// How long after the loop's own last heartbeat the stand-in goes on sending for it.
pub const COVER: Duration = Duration::from_millis(500);

/// This node's sending side: the envelope it puts on every message, the sequence, the
/// history, and what the stand-ins need to know. Shared (`Arc`) by the loop and the
/// stand-ins; every method takes `&self`.
#[derive(Debug)]
pub struct Outgoing {
    node: String,
    uuid: [u8; 16],
    generation: u64,
    auth: AuthKeys,
    /// The last sequence number drawn.
    seq: AtomicU64,
    /// The last sequenced messages sent (seq, bytes), for retransmission requests.
    history: Mutex<VecDeque<(u64, Vec<u8>)>>,
    /// The loop's last heartbeat, without its envelope: what the stand-in repeats. `None`:
    /// nothing to stand in for (not sent yet, or the node has said it is leaving). Whoever
    /// sends a heartbeat draws its sequence number under this lock, so a stand-in's copy of
    /// an older heartbeat always has a lower number than the loop's newer one (a peer drops
    /// it if it comes second).
    heartbeat: Mutex<Option<Message>>,
    /// Times as nanoseconds after `epoch`: when the loop last sent a heartbeat, and when
    /// anyone did.
    epoch: Instant,
    loop_sent: AtomicU64,
    last_sent: AtomicU64,
    /// Heartbeats the stand-ins sent.
    stood_in: AtomicU64,
    /// The most a stand-in's heartbeat left after it was due, in microseconds: how late the
    /// stand-ins themselves ran (their CPU stalled too, or they found the heartbeat lock taken
    /// and looked again).
    stood_in_late_us: AtomicU64,
}

/// Who is sending: the loop records every sequenced message for retransmission; a stand-in
/// records its own only when that takes no waiting.
#[derive(Clone, Copy)]
enum Sender {
    Loop,
    StandIn,
}

impl Outgoing {
    /// The sending side of node `node`.
    pub fn new(
        node: &str,
        uuid: [u8; 16],
        generation: u64,
        auth: AuthKeys,
        now: Instant,
    ) -> Outgoing {
        Outgoing {
            node: node.to_string(),
            uuid,
            generation,
            auth,
            seq: AtomicU64::new(0),
            history: Mutex::new(VecDeque::new()),
            heartbeat: Mutex::new(None),
            epoch: now,
            loop_sent: AtomicU64::new(0),
            last_sent: AtomicU64::new(0),
            stood_in: AtomicU64::new(0),
            stood_in_late_us: AtomicU64::new(0),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// Heartbeats the stand-ins sent, and the most one of them left after it was due.
    pub fn stood_in(&self) -> (u64, Duration) {
        (
            self.stood_in.load(Ordering::Relaxed),
            Duration::from_micros(self.stood_in_late_us.load(Ordering::Relaxed)),
        )
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Sends `msg` on every medium of `media` with Heartbeat's envelope (sender, UUID,
    /// sequence number when `sequenced`, generation, time, hop count), in Heartbeat's field
    /// order. Returns the failures to log, by medium (or the encoding's).
    pub fn send(&self, media: &MediaSet, msg: Message, sequenced: bool) -> Vec<(String, String)> {
        let seq = sequenced.then(|| self.next_seq());
        self.send_numbered(media, msg, seq, Sender::Loop)
    }

    fn send_numbered(
        &self,
        media: &MediaSet,
        mut msg: Message,
        seq: Option<u64>,
        sender: Sender,
    ) -> Vec<(String, String)> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        msg.push("src", self.node.clone());
        msg.push_binary("srcuuid", &self.uuid);
        if let Some(seq) = seq {
            msg.push("seq", format!("{seq:x}"));
        }
        msg.push("hg", format!("{:x}", self.generation));
        msg.push("ts", format!("{ts:x}"));
        msg.push("ttl", "4");
        match proto::encode(&msg, &self.auth) {
            Ok(bytes) => {
                let errors = errors(media.send_all(&bytes));
                if let Some(seq) = seq {
                    let history = match sender {
                        Sender::Loop => Some(lock(&self.history)),
                        Sender::StandIn => self.history.try_lock().ok(),
                    };
                    if let Some(mut history) = history {
                        if history.len() == HISTORY {
                            history.pop_front();
                        }
                        history.push_back((seq, bytes));
                    }
                }
                errors
            }
            Err(e) => vec![("encoding".into(), e.to_string())],
        }
    }

    /// The loop's heartbeat: sent on `media`, and kept for the stand-ins (`leaving`: the
    /// last one, not to be repeated).
    pub fn heartbeat(
        &self,
        media: &MediaSet,
        msg: Message,
        leaving: bool,
        now: Instant,
    ) -> Vec<(String, String)> {
        let seq = {
            let mut heartbeat = lock(&self.heartbeat);
            *heartbeat = (!leaving).then(|| msg.clone());
            self.loop_sent.store(self.nanos(now), Ordering::Relaxed);
            self.last_sent.store(self.nanos(now), Ordering::Relaxed);
            self.next_seq()
        };
        self.send_numbered(media, msg, Some(seq), Sender::Loop)
    }

    /// Sends sequenced message `seq` again as it was (the failures); `None` when it is no
    /// longer kept.
    pub fn resend(&self, media: &MediaSet, seq: u64) -> Option<Vec<(String, String)>> {
        let bytes = lock(&self.history)
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, bytes)| bytes.clone())?;
        Some(errors(media.send_all(&bytes)))
    }

    /// A stand-in's decision at `now`, sending on `media`: when to look again, and whether
    /// it sent (the failures to log).
    fn stand_in(
        &self,
        media: &MediaSet,
        keepalive: Duration,
        now: Instant,
    ) -> (Instant, Option<Vec<(String, String)>>) {
        let due = || self.instant(self.last_sent.load(Ordering::Relaxed)) + 2 * keepalive;
        let first_look = due();
        if now < first_look {
            return (first_look, None);
        }
        let loop_sent = self.instant(self.loop_sent.load(Ordering::Relaxed));
        if now.saturating_duration_since(loop_sent) > COVER {
            // The loop is stuck, not stalled: let the node look as dead as it is.
            return (now + keepalive.max(Duration::from_millis(10)), None);
        }
        let (msg, seq) = {
            let heartbeat = match self.heartbeat.try_lock() {
                Ok(h) => h,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                // The loop is swapping its heartbeat (or another stand-in is sending): look
                // again in a millisecond.
                Err(TryLockError::WouldBlock) => return (now + Duration::from_millis(1), None),
            };
            // Another stand-in may have sent since the look above.
            let due = due();
            if now < due {
                return (due, None);
            }
            let Some(msg) = heartbeat.clone() else {
                return (now + keepalive, None);
            };
            self.last_sent.store(self.nanos(now), Ordering::Relaxed);
            self.stood_in.fetch_add(1, Ordering::Relaxed);
            let late = now.saturating_duration_since(due).as_micros() as u64;
            self.stood_in_late_us.fetch_max(late, Ordering::Relaxed);
            (msg, self.next_seq())
        };
        let errors = self.send_numbered(media, msg, Some(seq), Sender::StandIn);
        (now + 2 * keepalive, Some(errors))
    }
}

fn errors(list: Vec<(String, io::Error)>) -> Vec<(String, String)> {
    list.into_iter().map(|(m, e)| (m, e.to_string())).collect()
}

/// Locks `m`, whatever a panicking holder left (the state stays consistent: every field
/// is written whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
/// realtime), each with its own handles on `media`; `log` reports their send failures.
/// Returns their CPUs.
pub fn start(
    out: Arc<Outgoing>,
    media: &MediaSet,
    keepalive: Duration,
    log: fn(&str, &str),
) -> io::Result<Vec<usize>> {
    let cpus = sched::allowed_cpus();
    if cpus.len() < 2 || 2 * keepalive >= COVER {
        return Ok(vec![]);
    }
    // The loop's scheduling (SCHED_RR when realtime), set again in each thread: with
    // SCHED_RESET_ON_FORK a new thread starts at normal priority.
    let scheduling = sched::Scheduling::current().filter(sched::Scheduling::is_realtime);
    let cpus: Vec<usize> = cpus.into_iter().take(MAX_STAND_INS).collect();
    for &cpu in &cpus {
        let out = out.clone();
        let media = media.try_clone()?;
        std::thread::Builder::new()
            .name(format!("hb-stand-in-{cpu}"))
            .spawn(move || {
                if let Some(scheduling) = scheduling {
                    // Without it the stand-in runs at normal priority: still a stand-in.
                    let _ = scheduling.apply();
                }
                if let Err(e) = sched::run_on(&[cpu]) {
                    log(
                        "WARN",
                        &format!("stand-in heartbeat: keeping to CPU {cpu}: {e}"),
                    );
                }
                stand_in_loop(&out, &media, keepalive, log);
            })?;
    }
    Ok(cpus)
}

fn stand_in_loop(out: &Outgoing, media: &MediaSet, keepalive: Duration, log: fn(&str, &str)) -> ! {
    loop {
        let (next, sent) = out.stand_in(media, keepalive, Instant::now());
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
