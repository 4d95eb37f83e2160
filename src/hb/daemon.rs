//! `hb-monitor run`: one loop over a monotonic clock, the signal fd, the control socket, the
//! media sockets and the group worker's wake-up pipe (poll), so that every state change
//! happens in one place and is logged there: heartbeats out every keepalive, authenticated
//! heartbeats in, peers and media up/dead, the resource group started or stopped as
//! [`group::decide`] says (agents run on a worker thread so heartbeats never wait for them),
//! status, standby and takeover over the control socket.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use std::sync::{Arc, mpsc};

use super::compat::{Compat, Effect};
use super::config::{Config, ResourceEntry};
use super::group::{self, Decision, Holding, Outcome, PeerView, Worker};
use super::media::MediaSet;
use super::membership::{Dropped, Event, Membership, PeerState};
use super::ping::PingNodes;
use super::proto::{self, Message, ProtoError};
use super::standin::{self, Outgoing};

/// Position of the first media socket in the poll set (signals, control, wake-up first).
const MEDIA_FDS: usize = 3;

/// Up to this keepalive the loop reads the media when it wakes anyway instead of waking for
/// each heartbeat (see `run`).
const LAZY_RECEIVE_MAX_KEEPALIVE: Duration = Duration::from_millis(50);

/// A wake-up later than planned by more than this, or a pass of the loop that takes longer,
/// is a pause of this node (the machine or its hypervisor did not run it): peers' silence
/// over it is excused ([`Membership::excuse`]). Smaller delays are the ordinary cost of
/// waking up and of a pass (tens of microseconds), and not worth a decision.
const PAUSE_EXCUSED_OVER: Duration = Duration::from_millis(2);

/// Where the daemon keeps what must survive restarts (the generation).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hb-monitor";
/// The control socket.
pub const DEFAULT_CONTROL: &str = "/run/hb-monitor.sock";

/// Why the daemon could not run; each knows its systemd-meaningful exit code.
#[derive(Debug)]
pub enum DaemonError {
    /// The configuration cannot be honoured (6, "not configured").
    Configured(String),
    /// Something of the system failed (1).
    Failed(String),
}

impl DaemonError {
    /// The exit code (LSB: 1 generic, 6 not configured).
    pub fn code(&self) -> u8 {
        match self {
            DaemonError::Configured(_) => 6,
            DaemonError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Configured(s) | DaemonError::Failed(s) => f.write_str(s),
        }
    }
}

/// Counters of what was refused on the wire.
#[derive(Debug, Default)]
struct WireCounters {
    bad_signature: u64,
    unknown_key: u64,
    malformed: u64,
    too_large: u64,
}

/// Where the daemon's log lines go besides stderr: `logfile` and `logfacility` of ha.cf.
struct LogSinks {
    file: Option<std::fs::File>,
    syslog: Option<(u8, std::os::unix::net::UnixDatagram)>,
}

static LOG_SINKS: std::sync::OnceLock<std::sync::Mutex<LogSinks>> = std::sync::OnceLock::new();

/// Opens `logfile` (append) and connects to syslog for `logfacility`, as ha.cf asks.
fn open_log_sinks(cfg: &super::config::HaCf) -> Result<(), DaemonError> {
    let file = match &cfg.logfile {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| DaemonError::Failed(format!("logfile {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let syslog = cfg.logfacility.as_deref().and_then(|name| {
        let facility = crate::ocf::log::facility_code(name)?;
        let socket = std::os::unix::net::UnixDatagram::unbound().ok()?;
        socket.connect("/dev/log").ok()?;
        Some((facility, socket))
    });
    let _ = LOG_SINKS.set(std::sync::Mutex::new(LogSinks { file, syslog }));
    Ok(())
}

/// Lines waiting for the logging thread (see [`start_log_thread`]).
static LOG_QUEUE: std::sync::OnceLock<mpsc::SyncSender<LogMsg>> = std::sync::OnceLock::new();

/// What the logging thread is sent.
enum LogMsg {
    /// Level, line, when.
    Line(String, String, SystemTime),
    /// Everything before this is written: say so.
    Flush(mpsc::Sender<()>),
}
/// Lines dropped because the queue was full (the disk, or whoever reads stderr, stalled).
static LOG_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// From here on, log lines are written by a thread of their own: a write to stderr or to
/// `logfile` can block for long under I/O pressure (writeback, a full pipe), and the
/// heartbeat loop must never wait for the disk. Measured: with a disk writer beside it, the
/// loop writing its own log saw 63 ms gaps and false failovers at deadtime 40 ms; with the
/// thread, none. When the queue is full, lines are dropped and counted, and the count is
/// logged once the writer catches up.
fn start_log_thread() {
    let (tx, rx) = mpsc::sync_channel::<LogMsg>(1024);
    if LOG_QUEUE.set(tx).is_err() {
        return;
    }
    std::thread::spawn(move || {
        for msg in rx {
            let (level, line, at) = match msg {
                LogMsg::Line(level, line, at) => (level, line, at),
                LogMsg::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            write_log(&level, &line, at);
            let dropped = LOG_DROPPED.swap(0, std::sync::atomic::Ordering::Relaxed);
            if dropped > 0 {
                let note = format!(
                    "hb-monitor[{}]: WARN: {dropped} log lines dropped (the log's writer stalled)",
                    std::process::id()
                );
                write_log("WARN", &note, SystemTime::now());
            }
        }
    });
}

/// One log line: stderr, and `logfile`/syslog as configured (through the logging thread once
/// the daemon runs).
pub(crate) fn log(level: &str, message: &str) {
    let line = format!("hb-monitor[{}]: {level}: {message}", std::process::id());
    let now = SystemTime::now();
    match LOG_QUEUE.get() {
        Some(queue) => {
            if queue
                .try_send(LogMsg::Line(level.to_string(), line, now))
                .is_err()
            {
                LOG_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        None => write_log(level, &line, now),
    }
}

/// Waits (briefly) until the logging thread has written every line logged so far: before
/// the daemon exits.
fn flush_log() {
    if let Some(queue) = LOG_QUEUE.get() {
        let (tx, rx) = mpsc::channel();
        if queue.send(LogMsg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
    }
}

fn write_log(level: &str, line: &str, at: SystemTime) {
    let _ = writeln!(io::stderr().lock(), "{line}");
    let Some(Ok(mut sinks)) = LOG_SINKS.get().map(|m| m.lock()) else {
        return;
    };
    if let Some(file) = sinks.file.as_mut() {
        let stamp = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let _ = writeln!(
            file,
            "{}.{:03} {line}",
            stamp.as_secs(),
            stamp.subsec_millis()
        );
    }
    if let Some((facility, socket)) = &sinks.syslog {
        let severity = match level {
            "ERROR" => 3,
            "WARN" => 4,
            "INFO" => 6,
            _ => 7,
        };
        let _ = socket.send(format!("<{}>{line}", (facility << 3) | severity).as_bytes());
    }
}

/// `realtime on`: SCHED_RR at `rtprio` and memory locked as it is touched, so that a busy
/// machine delays neither heartbeats nor the detection of a dead peer. Children (the agents)
/// start with normal scheduling (SCHED_RESET_ON_FORK) and do not inherit the lock. Where
/// the system refuses (no CAP_SYS_NICE, an RLIMIT_MEMLOCK too low), the daemon runs on and
/// says plainly what that risks.
fn go_realtime(cfg: &super::config::HaCf) {
    if !cfg.realtime {
        log(
            "INFO",
            "realtime off: heartbeats run at normal priority; a busy machine can delay them into a false failover",
        );
        return;
    }
    let param = libc::sched_param {
        sched_priority: i32::from(cfg.rtprio),
    };
    // SAFETY: sched_setscheduler on this process with a valid sched_param.
    let rc = unsafe {
        libc::sched_setscheduler(
            0,
            libc::SCHED_RR | libc::SCHED_RESET_ON_FORK,
            &raw const param,
        )
    };
    if rc != 0 {
        log(
            "WARN",
            &format!(
                "realtime: cannot run SCHED_RR at priority {} ({}): heartbeats run at normal priority, and a busy machine can delay them into a false failover",
                cfg.rtprio,
                io::Error::last_os_error()
            ),
        );
    }
    // MCL_ONFAULT: lock pages as they are used rather than populating every mapping (the
    // worker threads' stacks would otherwise count in full).
    // SAFETY: mlockall with constant flags.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) };
    if rc != 0 {
        log(
            "WARN",
            &format!(
                "realtime: cannot lock memory ({}): the daemon can be paged out under memory pressure",
                io::Error::last_os_error()
            ),
        );
    }
}

/// The `watchdog` device: opened at start (the daemon refuses to run without it when it is
/// configured), fed with every heartbeat, and disarmed on an orderly exit with the magic
/// close (`V`), so that only a hung or dead daemon lets it reset the machine.
struct Watchdog {
    device: std::fs::File,
    path: PathBuf,
}

impl Watchdog {
    fn open(path: &Path, deadtime: Duration) -> Result<Watchdog, DaemonError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let device = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| {
                DaemonError::Configured(format!(
                    "watchdog {}: {e} (load a watchdog driver, e.g. `modprobe softdog`, or remove the directive)",
                    path.display()
                ))
            })?;
        // The reset comes a little after a peer would declare this node dead. A device
        // without the ioctl (or a test's FIFO) keeps its own timeout.
        let mut seconds = (deadtime.as_secs() + 1).max(2) as libc::c_int;
        // SAFETY: WDIOC_SETTIMEOUT takes a pointer to an int, valid for the call.
        const WDIOC_SETTIMEOUT: libc::c_ulong = 0xc004_5706;
        let _ = unsafe { libc::ioctl(device.as_raw_fd(), WDIOC_SETTIMEOUT, &raw mut seconds) };
        Ok(Watchdog {
            device,
            path: path.to_path_buf(),
        })
    }

    fn feed(&mut self) {
        if let Err(e) = self.device.write_all(b"\0") {
            log(
                "WARN",
                &format!("feeding the watchdog {}: {e}", self.path.display()),
            );
        }
    }

    /// The magic close: an orderly exit must not reset the machine.
    fn disarm(mut self) {
        let _ = self.device.write_all(b"V");
    }
}

/// Bumps and returns the generation kept in `state_dir` (Heartbeat's `hg`): peers tell a
/// restarted node from a replayed old one by it.
pub fn next_generation(state_dir: &Path) -> io::Result<u64> {
    std::fs::create_dir_all(state_dir)?;
    let path = state_dir.join("generation");
    let current = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // Never below the wall clock: a lost state directory must not restart the count at 1,
    // which peers would take for a replay.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // A node moving from Heartbeat keeps counting from Heartbeat's generation: its peers
    // drop anything older as a replay.
    let heartbeats = std::fs::read_to_string(Path::new(HEARTBEAT_STATE).join("hb_generation"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let next = (current.max(heartbeats) + 1).max(now);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{next}\n"))?;
    std::fs::rename(&tmp, &path)?;
    Ok(next)
}

/// Heartbeat 3's state directory (`hb_uuid`, `hb_generation`): read, so that a node that
/// ran Heartbeat keeps its identity and its generation keeps rising.
const HEARTBEAT_STATE: &str = "/var/lib/heartbeat";

/// This node's UUID (Heartbeat's `srcuuid`), kept in `state_dir`: Heartbeat's own when the
/// node ran Heartbeat before, else a new random one.
pub fn node_uuid(state_dir: &Path) -> io::Result<[u8; 16]> {
    let path = state_dir.join("uuid");
    let read16 = |p: &Path| -> Option<[u8; 16]> { std::fs::read(p).ok()?.try_into().ok() };
    if let Some(uuid) = read16(&path) {
        return Ok(uuid);
    }
    let uuid = match read16(&Path::new(HEARTBEAT_STATE).join("hb_uuid")) {
        Some(uuid) => uuid,
        None => {
            let mut uuid = [0u8; 16];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut uuid)?;
            // RFC 4122 version 4, as libuuid makes them.
            uuid[6] = (uuid[6] & 0x0f) | 0x40;
            uuid[8] = (uuid[8] & 0x3f) | 0x80;
            uuid
        }
    };
    std::fs::create_dir_all(state_dir)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, uuid)?;
    std::fs::rename(&tmp, &path)?;
    Ok(uuid)
}

struct Daemon {
    cfg: Config,
    node: String,
    generation: u64,
    /// Where every message leaves (shared with the stand-ins, [`standin`]).
    out: Arc<Outgoing>,
    /// The loop's own handles on the media's sockets, for sending.
    sending: MediaSet,
    /// The stand-ins' CPUs (none: no stand-in).
    stand_in_cpus: Vec<usize>,
    media: MediaSet,
    members: Membership,
    wire: WireCounters,
    started: Instant,
    /// Pauses of this node that were excused ([`Daemon::paused`]), and the longest.
    pauses: u64,
    longest_pause: Duration,
    /// The group's preferred node and resources.
    preferred: String,
    resources: Vec<ResourceEntry>,
    /// Runs agents and the fence command off the loop, one job at a time.
    worker: Worker,
    /// A worker job runs; its outcome is awaited.
    busy: bool,
    /// Dead peers that did not hand the group over cleanly: fenced before any takeover.
    fence_needed: std::collections::BTreeSet<String>,
    /// After a failed fence, when to try again.
    next_fence_attempt: Option<Instant>,
    /// Without a fence command: the peer whose failed stop keeps the group down (said once).
    waiting_unfenced: Option<String>,
    /// When the running group is next monitored.
    next_monitor: Option<Instant>,
    /// Local restarts within `restart_limit`'s window.
    restarts: std::collections::VecDeque<Instant>,
    /// The group is being stopped because local recovery gave up: end as Failed.
    giving_up: bool,
    /// Ping nodes, when ha.cf has any.
    ping: Option<PingNodes>,
    /// The last connectivity decision logged (logged when it changes).
    connectivity_note: Option<String>,
    /// What this node does with the group.
    holding: Holding,
    /// `hb-monitor takeover` was asked here and not yet satisfied.
    want: bool,
    /// `hb-monitor standby`: stay out until takeover.
    standby: bool,
    /// SIGTERM: give the group up, say so, exit.
    exiting: bool,
    /// The last failure of the group here, for status.
    last_error: Option<String>,
    outcomes: mpsc::Receiver<Outcome>,
    /// Heartbeat 3 peers: their resource messages, acks, hand-overs.
    compat: Compat,
}

impl Daemon {
    fn heartbeat(&mut self) {
        let st = if self.exiting && !self.holding.occupies() {
            "dead"
        } else {
            "active"
        };
        // Heartbeat peers learn of a change in holding from a message of its own, sent
        // before the heartbeat that carries it for hb-monitor peers.
        self.compat.advertise(&[self.holding]);
        self.flush_compat();
        self.send_status(st);
    }

    fn send_status(&mut self, st: &str) {
        let mut msg = Message::default();
        msg.push("t", "status");
        msg.push("st", st);
        msg.push("rsc", self.holding.word());
        if let Some(ping) = &self.ping {
            msg.push("ping", ping.count(Instant::now()).to_string());
        }
        if self.want {
            msg.push("want", "yes");
        }
        msg.push("dt", format!("{:x}", self.cfg.ha_cf.deadtime.as_millis()));
        msg.push("protocol", "1");
        let errors = self
            .out
            .heartbeat(&self.sending, msg, st == "dead", Instant::now());
        log_send_errors(errors);
    }

    /// Sends `msg` on every medium (with the envelope, [`Outgoing::send`]).
    fn send(&self, msg: Message, sequenced: bool) {
        let errors = self.out.send(&self.sending, msg, sequenced);
        log_send_errors(errors);
    }

    /// Sends what the Heartbeat side queued.
    fn flush_compat(&mut self) {
        for (msg, sequenced) in std::mem::take(&mut self.compat.outbox) {
            if let (Some(t), Some(info)) = (msg.get("t"), msg.get("info").or(msg.get("rsc_hold")))
                && t != "NS_ackmsg"
            {
                log("DEBUG", &format!("to Heartbeat peers: t={t} {info}"));
            }
            self.send(msg, sequenced);
        }
    }

    /// A Heartbeat peer asked for messages again: resend them as they were, or say they are
    /// gone (`NS_nak_rexmit`).
    fn retransmit(&mut self, to: &str, seqs: Vec<u64>) {
        for seq in seqs {
            let resent = self.out.resend(&self.sending, seq);
            match resent {
                Some(errors) => log_send_errors(errors),
                None => self.send(super::compat::nak_rexmit(to, seq), false),
            }
        }
        self.flush_compat();
    }

    /// Whether this node could take the group now (for a Heartbeat peer's hand-over).
    fn able_to_take(&self) -> bool {
        self.holding == Holding::None && !self.busy && !self.standby && !self.exiting
    }

    /// Reads what is queued on medium `index`. Each message counts as heard when the kernel
    /// received it, not when the loop got to it: a loop that reads only when it wakes anyway
    /// must not see heartbeats as late. `since`: the previous read of this medium (nothing
    /// queued now arrived before it, whatever the wall clock did meanwhile).
    fn receive(&mut self, index: usize, now: Instant, since: Instant) {
        let mut buf = [0u8; proto::MAX_MESSAGE + 1];
        let wall_now = SystemTime::now();
        // Drain what is queued, bounded so one flooded medium cannot starve the loop.
        for _ in 0..64 {
            let received = match self.media.sockets[index].recv(&mut buf) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    log(
                        "WARN",
                        &format!("receiving on {}: {e}", self.media.sockets[index].name),
                    );
                    return;
                }
            };
            if received.len > proto::MAX_MESSAGE {
                self.wire.too_large += 1;
                continue;
            }
            let arrived = received
                .arrived
                .and_then(|t| wall_now.duration_since(t).ok())
                .and_then(|age| now.checked_sub(age))
                .map_or(now, |t| t.clamp(since.min(now), now));
            let n = received.len;
            let msg = match proto::decode(&buf[..n], &self.cfg.auth) {
                Ok(m) => m,
                Err(e) => {
                    match e {
                        ProtoError::BadSignature => self.wire.bad_signature += 1,
                        ProtoError::UnknownKey(_) => self.wire.unknown_key += 1,
                        ProtoError::TooLarge(_) => self.wire.too_large += 1,
                        _ => self.wire.malformed += 1,
                    }
                    continue;
                }
            };
            let medium = self.media.sockets[index].name.clone();
            let src = msg.get("src").unwrap_or("").to_string();
            // Heartbeat's unsequenced control messages (acks, retransmission requests).
            if msg.get("t").is_some_and(|t| t.starts_with("NS_")) {
                if src != self.node
                    && let Effect::Retransmit(seqs) = self.compat.control(&src, &msg)
                {
                    self.retransmit(&src, seqs);
                }
                continue;
            }
            let before = self.members.peers.get(&src).map(|p| (p.generation, p.seq));
            // A Heartbeat peer's message we asked for again (it was lost): older than the
            // last one, so membership would take it for a replay; it is of the current
            // generation, authenticated and awaited, and counts for the resource protocol.
            let hex = |f: &str| msg.get(f).and_then(|v| u64::from_str_radix(v, 16).ok());
            if let (Some((Some(g), _)), Some(hg), Some(seq)) = (before, hex("hg"), hex("seq"))
                && g == hg
                && self.compat.resent(&src, seq)
            {
                let able = self.able_to_take();
                self.compat
                    .observe(&src, &msg, seq, false, &[self.holding], able);
                self.flush_compat();
                continue;
            }
            match self.members.receive(&msg, &medium, arrived) {
                Ok(events) => {
                    let peer = self.members.peers.get(&src);
                    let after = peer.map(|p| (p.generation, p.seq));
                    // A copy from another medium changes nothing: only fresh messages count.
                    if after != before
                        && let Some((_, Some(seq))) = after
                    {
                        let restarted = events
                            .iter()
                            .any(|e| matches!(e, Event::PeerRestarted(p) if *p == src));
                        if let (Some((Some(g0), Some(s0))), Some((Some(g1), _))) = (before, after)
                            && g0 == g1
                        {
                            self.compat.gap(&src, s0, seq, now);
                        }
                        self.compat.acknowledge(&src, seq);
                        let able = self.able_to_take();
                        self.compat
                            .observe(&src, &msg, seq, restarted, &[self.holding], able);
                        self.flush_compat();
                    }
                    self.report(events);
                }
                Err(Dropped::Own) => {}
                Err(why) => log("DEBUG", &format!("dropped a message on {medium}: {why:?}")),
            }
        }
    }

    fn peer_views(&self) -> Vec<PeerView<'_>> {
        self.members
            .peers
            .iter()
            .map(|(name, p)| PeerView {
                name,
                alive: p.state == PeerState::Up,
                unknown: p.state == PeerState::Unknown,
                holding: self.peer_holding(name),
                wants: p.last_fields.get("want").is_some_and(|w| w == "yes"),
            })
            .collect()
    }

    /// What a peer does with the group: from its heartbeats (hb-monitor) or its resource
    /// messages (Heartbeat 3).
    fn peer_holding(&self, name: &str) -> Holding {
        let i_hold = matches!(self.holding, Holding::Held | Holding::Stopping);
        if let Some(h) = self.compat.holding_of(name, 0, i_hold) {
            return h;
        }
        let Some(peer) = self.members.peers.get(name) else {
            return Holding::None;
        };
        match peer.last_fields.get("rsc") {
            Some(word) => Holding::from_word(word),
            // Heard from, but not a heartbeat yet (a Heartbeat peer's first message may be
            // an acknowledgement or a resource message): it may hold the group.
            None if peer.state == PeerState::Up => Holding::Starting,
            None => Holding::None,
        }
    }

    /// A live Heartbeat peer that could take the group: a voluntary hand-over to it goes
    /// through its three-message protocol, or it would never start the group.
    fn heartbeat_taker_alive(&self) -> bool {
        self.members.peers.iter().any(|(name, p)| {
            p.state == PeerState::Up
                && self.compat.is_heartbeat(name)
                && matches!(self.peer_holding(name), Holding::None | Holding::Standby)
        })
    }

    /// The first node to fence before this one may take the group: a dead peer that did not
    /// hand it over cleanly, or a live one whose stop failed.
    fn node_to_fence(&self) -> Option<String> {
        self.fence_needed.iter().next().cloned().or_else(|| {
            self.members
                .peers
                .iter()
                .find(|(_, p)| {
                    p.state == PeerState::Up
                        && p.last_fields.get("rsc").map(String::as_str) == Some("unclean")
                })
                .map(|(n, _)| n.clone())
        })
    }

    /// Acts on the group decision; called after anything that may change it. One worker job
    /// at a time: while one runs, nothing else is decided.
    fn evaluate(&mut self, now: Instant) {
        if self.resources.is_empty() || self.busy {
            return;
        }
        let mut connectivity_note = None;
        let decision = if self.exiting {
            if self.holding == Holding::Held {
                Decision::Release
            } else {
                Decision::Wait
            }
        } else if self.standby && self.holding == Holding::Held {
            Decision::Release
        } else {
            // A live peer whose stop failed counts as gone for the decision: whoever would
            // take the group fences it first (below).
            let mut views: Vec<PeerView<'_>> = self
                .peer_views()
                .into_iter()
                .map(|mut v| {
                    if v.holding == Holding::Unclean {
                        v.alive = false;
                    }
                    v
                })
                .collect();
            let (verdict, note) = self.connectivity(&mut views, now);
            connectivity_note = Some(note);
            if let Some(decision) = verdict {
                decision
            } else {
                group::decide(
                    &self.node,
                    &self.preferred,
                    self.holding,
                    self.want,
                    &views,
                    self.cfg.ha_cf.auto_failback,
                )
            }
        };
        if let Some(note) = connectivity_note
            && note != self.connectivity_note
        {
            if let Some(n) = &note {
                log("WARN", n);
            }
            self.connectivity_note = note;
        }
        match decision {
            Decision::Acquire => {
                if let Some(node) = self.node_to_fence()
                    && !self.fence_first(node, now)
                {
                    return;
                }
                self.waiting_unfenced = None;
                log(
                    "INFO",
                    &format!(
                        "taking the resource group ({} resources)",
                        self.resources.len()
                    ),
                );
                self.holding = Holding::Starting;
                self.busy = true;
                self.heartbeat_now();
                self.worker.start();
            }
            Decision::Release => {
                if !self.exiting && self.heartbeat_taker_alive() {
                    let expired = self.compat.giving_expired(now);
                    let go = self.compat.may_release(now, true);
                    self.flush_compat();
                    if expired {
                        log(
                            "WARN",
                            "no Heartbeat peer answered the hand-over within 10 s: the group stays here",
                        );
                        if self.standby {
                            log("WARN", "standby cancelled (as Heartbeat does)");
                            self.standby = false;
                        }
                    }
                    if !go {
                        return;
                    }
                }
                log("INFO", "giving up the resource group");
                self.holding = Holding::Stopping;
                self.busy = true;
                self.heartbeat_now();
                self.worker.stop();
            }
            Decision::Wait => {
                if self.holding == Holding::Held
                    && !self.exiting
                    && self.next_monitor.is_some_and(|t| now >= t)
                {
                    self.next_monitor = None;
                    self.busy = true;
                    self.worker.monitor();
                }
            }
        }
    }

    /// Ping nodes (Heartbeat's ipfail): a node cut off from every peer and every ping node
    /// stops its group and takes none; a holder that sees fewer ping nodes than an available
    /// peer hands the group over; a node does not take the group while an available peer sees
    /// more; available peers that see fewer than the best are left out of the choice. Returns
    /// a decision that overrides the usual rules, if any, and what to log.
    fn connectivity(
        &self,
        views: &mut [PeerView<'_>],
        now: Instant,
    ) -> (Option<Decision>, Option<String>) {
        let Some(ping) = &self.ping else {
            return (None, None);
        };
        let mine = ping.count(now);
        let ping_of = |name: &str| -> u32 {
            self.members
                .peers
                .get(name)
                .and_then(|p| p.last_fields.get("ping"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if mine == 0 && !views.iter().any(|v| v.alive) {
            let decision = if self.holding == Holding::Held {
                Decision::Release
            } else {
                Decision::Wait
            };
            return (
                Some(decision),
                Some(
                    "isolated: no peer and no ping node answers; this node stops the group and takes none"
                        .into(),
                ),
            );
        }
        let available = |v: &PeerView<'_>| v.alive && v.holding == Holding::None;
        let best_peer = views
            .iter()
            .filter(|v| available(v))
            .map(|v| (ping_of(v.name), v.name))
            .max();
        if let Some((theirs, name)) = best_peer
            && theirs > mine
        {
            let note = format!(
                "{name} sees {theirs} ping nodes, this node {mine}: the group belongs there"
            );
            let decision = if self.holding == Holding::Held {
                Decision::Release
            } else {
                Decision::Wait
            };
            return (Some(decision), Some(note));
        }
        for v in views.iter_mut() {
            if available(v) && ping_of(v.name) < mine {
                v.holding = Holding::Standby;
            }
        }
        (None, None)
    }

    /// Before taking the group from `node`: runs the fence command (and returns false: the
    /// takeover waits for its outcome), or without one, proceeds (a dead peer: Heartbeat's
    /// behaviour without STONITH, with a warning) or waits (a live peer whose stop failed:
    /// nobody may start the group beside what may still run there).
    fn fence_first(&mut self, node: String, now: Instant) -> bool {
        let ha = &self.cfg.ha_cf;
        let dead = self.fence_needed.contains(&node);
        if ha.fence_command.is_empty() {
            if dead {
                log(
                    "WARN",
                    &format!(
                        "taking the group over from {node} without fencing: if {node} still runs (its daemon killed, its link cut) both nodes now run the group"
                    ),
                );
                self.fence_needed.remove(&node);
                return true;
            }
            if self.waiting_unfenced.as_deref() != Some(node.as_str()) {
                log(
                    "ERROR",
                    &format!(
                        "{node} failed to stop the group and no fence_command is configured: the group stays down until an operator cleans {node} up"
                    ),
                );
                self.waiting_unfenced = Some(node);
            }
            return false;
        }
        if self.next_fence_attempt.is_some_and(|t| now < t) {
            return false;
        }
        log(
            "WARN",
            &format!(
                "fencing {node} before taking the group over ({})",
                if dead {
                    "it died without handing the group over"
                } else {
                    "its stop failed"
                }
            ),
        );
        // The retry time is spent: left in the past it would wake the loop at once, again
        // and again, while the fence runs (a spin at SCHED_RR).
        self.next_fence_attempt = None;
        self.busy = true;
        self.worker
            .fence(ha.fence_command.clone(), node, ha.fence_timeout);
        false
    }

    /// Tells the peers about a change at once rather than at the next keepalive.
    fn heartbeat_now(&mut self) {
        self.heartbeat();
    }

    fn take_outcomes(&mut self, now: Instant) {
        while let Ok(outcome) = self.outcomes.try_recv() {
            self.busy = false;
            let after_stop = if self.giving_up {
                Holding::Failed
            } else if self.standby {
                Holding::Standby
            } else {
                Holding::None
            };
            let interval = self.cfg.ha_cf.monitor_interval;
            let monitor_from_now = (!interval.is_zero()).then(|| now + interval);
            self.holding = match outcome {
                Outcome::Started => {
                    self.compat.started();
                    log("INFO", "resource group started");
                    self.want = false;
                    self.last_error = None;
                    self.next_monitor = monitor_from_now;
                    Holding::Held
                }
                Outcome::StartFailed(why) => {
                    self.compat.started();
                    log(
                        "ERROR",
                        &format!(
                            "resource group failed to start ({why}); stopped it again, leaving it to the peers"
                        ),
                    );
                    self.last_error = Some(why);
                    self.want = false;
                    Holding::Failed
                }
                Outcome::Stopped if self.holding == Holding::Cleaning => {
                    log(
                        "INFO",
                        "start-up clean-up done: nothing of the group runs here",
                    );
                    after_stop
                }
                Outcome::Stopped => {
                    self.compat.stopped();
                    log("INFO", "resource group stopped");
                    self.giving_up = false;
                    after_stop
                }
                Outcome::StopFailed(why) => {
                    let what = if self.cfg.ha_cf.fence_command.is_empty() {
                        "no fence_command: the group stays down until an operator cleans this node up"
                    } else {
                        "the peers fence this node before taking the group"
                    };
                    log(
                        "ERROR",
                        &format!(
                            "resource group failed to stop ({why}): its state on this node is unknown; {what}"
                        ),
                    );
                    self.last_error = Some(why);
                    self.giving_up = false;
                    Holding::Unclean
                }
                Outcome::Monitored(None) => {
                    self.next_monitor = monitor_from_now;
                    self.holding
                }
                Outcome::Monitored(Some((index, why))) => self.recover(index, why, now),
                Outcome::Fenced(node, Ok(())) => {
                    log("INFO", &format!("{node} is fenced"));
                    self.fence_needed.remove(&node);
                    self.next_fence_attempt = None;
                    self.members.mark_fenced(&node);
                    self.compat.peer_gone(&node);
                    self.holding
                }
                Outcome::Fenced(node, Err(why)) => {
                    log(
                        "ERROR",
                        &format!("fencing {node} failed ({why}): no takeover; trying again in 1 s"),
                    );
                    self.next_fence_attempt = Some(now + Duration::from_secs(1));
                    self.holding
                }
            };
            self.heartbeat_now();
        }
    }

    /// A resource failed its monitor: restart it (and what depends on it) in place while the
    /// restart limit allows, else give the group up so that a peer takes it.
    fn recover(&mut self, index: usize, why: String, now: Instant) -> Holding {
        let (limit, window) = self.cfg.ha_cf.restart_limit;
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            self.restarts.pop_front();
        }
        self.last_error = Some(why.clone());
        self.busy = true;
        if (self.restarts.len() as u32) < limit {
            self.restarts.push_back(now);
            log(
                "ERROR",
                &format!(
                    "monitor failed: {why}; restarting it and what follows it here ({} of {limit} within {} s)",
                    self.restarts.len(),
                    window.as_secs()
                ),
            );
            self.worker.restart(index);
            Holding::Held
        } else {
            log(
                "ERROR",
                &format!(
                    "monitor failed: {why}; {limit} restarts within {} s already: giving the group up to the peers",
                    window.as_secs()
                ),
            );
            self.giving_up = true;
            self.worker.stop();
            Holding::Stopping
        }
    }

    fn report(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::PeerUp(p) => {
                    log("INFO", &format!("node {p} is up"));
                    self.fence_needed.remove(&p);
                }
                Event::PeerRestarted(p) => {
                    // A restarted daemon cleans up before it takes part (start-up clean-up).
                    log("INFO", &format!("node {p} restarted (new generation)"));
                    self.fence_needed.remove(&p);
                }
                Event::PeerDead(p) => {
                    let peer = self.members.peers.get(&p);
                    let holding = self.peer_holding(&p);
                    let orderly = peer.is_some_and(|peer| peer.status == "dead");
                    if holding.occupies() && !(orderly && holding != Holding::Unclean) {
                        log(
                            "WARN",
                            &format!(
                                "node {p} is dead while it advertised the group as {}: {}",
                                holding.word(),
                                if self.cfg.ha_cf.fence_command.is_empty() {
                                    "without a fence_command it may still run it"
                                } else {
                                    "it is fenced before any takeover"
                                }
                            ),
                        );
                        self.fence_needed.insert(p);
                    } else {
                        log("WARN", &format!("node {p} is dead"));
                    }
                }
                Event::Late(p, gap) => log(
                    "WARN",
                    &format!("late heartbeat from {p}: {} ms", gap.as_millis()),
                ),
                Event::MediumDown(p, m) => log("WARN", &format!("no heartbeats from {p} on {m}")),
                Event::MediumUp(p, m) => log("INFO", &format!("heartbeats from {p} on {m} again")),
            }
        }
    }

    fn status_json(&self, now: Instant) -> serde_json::Value {
        let ms =
            |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_millis() as u64);
        let peers: Vec<serde_json::Value> = self
            .members
            .peers
            .iter()
            .map(|(name, p)| {
                serde_json::json!({
                    "name": name,
                    "state": match p.state {
                        PeerState::Unknown => "unknown",
                        PeerState::Up => "up",
                        PeerState::Dead => "dead",
                    },
                    "status": p.status,
                    "kind": if self.compat.is_heartbeat(name) { "heartbeat" } else if p.state == PeerState::Unknown { "unknown" } else { "hb-monitor" },
                    "holding": self.peer_holding(name).word(),
                    "generation": p.generation,
                    "last_heartbeat_ms_ago": ms(p.last_heard),
                    "media": p.media.iter().map(|(m, t)| serde_json::json!({
                        "medium": m,
                        "last_heartbeat_ms_ago": ms(Some(*t)),
                        "up": !p.media_down.contains(m),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let c = &self.members.counters;
        let (stood_in, stood_in_late) = self.out.stood_in();
        serde_json::json!({
            "node": self.node,
            "generation": self.generation,
            "uptime_ms": now.saturating_duration_since(self.started).as_millis() as u64,
            "keepalive_ms": self.cfg.ha_cf.keepalive.as_millis() as u64,
            "deadtime_ms": self.cfg.ha_cf.deadtime.as_millis() as u64,
            "media": self.media.sockets.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "peers": peers,
            "dropped": {
                "bad_signature": self.wire.bad_signature,
                "unknown_key": self.wire.unknown_key,
                "malformed": self.wire.malformed,
                "too_large": self.wire.too_large,
                "replayed": c.replayed,
                "unknown_node": c.unknown_node,
                "incomplete": c.incomplete,
            },
            "accepted": c.accepted,
            "pauses": {
                "count": self.pauses,
                "longest_ms": self.longest_pause.as_millis() as u64,
            },
            "stand_in": {
                "cpus": self.stand_in_cpus,
                "heartbeats": stood_in,
                "longest_late_ms": stood_in_late.as_millis() as u64,
            },
            "ping_nodes": self.ping.as_ref().map(|p| {
                p.entries
                    .iter()
                    .map(|e| serde_json::json!({
                        "name": e.name,
                        "reachable": p.reachable(e, now),
                        "last_reply_ms_ago": e.last_reply.map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    }))
                    .collect::<Vec<_>>()
            }),
            "group": {
                "preferred": self.preferred,
                "holding": self.holding.word(),
                "want": self.want,
                "standby": self.standby,
                "resources": self.resources.iter().map(|r| r.written.clone()).collect::<Vec<_>>(),
                "last_error": self.last_error,
                "restarts_in_window": self.restarts.len(),
                "to_fence": self.fence_needed.iter().collect::<Vec<_>>(),
                "fencing": !self.cfg.ha_cf.fence_command.is_empty(),
            },
        })
    }

    /// This node was not running for `pause` (found by the loop waking up that much later
    /// than it planned, or by a pass of the loop taking that long, `while_running`): nothing
    /// could be sent or read in it, and a stall of the whole machine (a VM's vCPUs
    /// descheduled by the host for up to 100 ms under disk load, seen on this project's test
    /// VM) stops the peers' heartbeats too. Without this, the first tick after the stall
    /// declares dead every peer that has not yet sent again: a false failover. A pass that
    /// took long because the loop waited (a log write held up by the disk) is excused too: it
    /// could not read the peers either.
    fn paused(&mut self, pause: Duration, now: Instant, while_running: bool) {
        self.members.excuse(pause, now);
        if let Some(ping) = self.ping.as_mut() {
            ping.excuse(pause, now);
        }
        self.pauses += 1;
        self.longest_pause = self.longest_pause.max(pause);
        // Pauses of a few keepalives are common on a loaded machine; the log says those a
        // peer would call late.
        if pause >= self.cfg.ha_cf.warntime {
            let ms = pause.as_millis();
            let what = if while_running {
                format!("a pass of the loop took {ms} ms (the machine stalled, or the loop waited)")
            } else {
                format!("this node did not run for {ms} ms (the machine stalled)")
            };
            log(
                "WARN",
                &format!("{what}: the peers' silence over that time is not held against them"),
            );
        }
    }

    /// Answers one control request (read by the control thread).
    fn handle_control(&mut self, request: &str, now: Instant) -> String {
        match request.trim() {
            "status" => self.status_json(now).to_string(),
            "standby" => {
                log("INFO", "standby requested");
                self.standby = true;
                self.want = false;
                if self.holding == Holding::None || self.holding == Holding::Failed {
                    self.holding = Holding::Standby;
                }
                serde_json::json!({ "ok": "standby" }).to_string()
            }
            "takeover" => {
                log("INFO", "takeover requested");
                self.standby = false;
                // On a node whose stop failed (unclean), the operator's takeover says
                // it has been cleaned up.
                if matches!(
                    self.holding,
                    Holding::Standby | Holding::Failed | Holding::Unclean
                ) {
                    self.holding = Holding::None;
                }
                self.want = self.holding != Holding::Held;
                serde_json::json!({ "ok": "takeover" }).to_string()
            }
            other => {
                serde_json::json!({ "error": format!("unknown request {other:?}") }).to_string()
            }
        }
    }
}

/// A control request, read by the control thread and answered by the loop.
struct ControlRequest {
    text: String,
    reply: mpsc::Sender<String>,
}

/// Serves the control socket on a thread of its own: reading a request must never hold up
/// the loop (a client that connects and stalls, or a loaded machine that delays a client's
/// write), so the thread reads it, hands it to the loop (`requests`, then a byte on `wake`)
/// and writes the answer back. Root only.
fn spawn_control_thread(
    listener: UnixListener,
    requests: mpsc::Sender<ControlRequest>,
    wake: std::os::fd::OwnedFd,
) -> io::Result<()> {
    let wake = std::sync::Arc::new(wake);
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                // The socket file is 0600 already; the peer's credentials say it again, so
                // that a socket reached some other way (a copied descriptor) still answers
                // root only.
                let uid = nix::sys::socket::getsockopt(
                    &stream,
                    nix::sys::socket::sockopt::PeerCredentials,
                )
                .map(|c| c.uid());
                if uid != Ok(0) {
                    let _ = stream.write_all(
                        b"{\"error\":\"the hb-monitor control socket answers root only\"}\n",
                    );
                    continue;
                }
                // Each client on a short-lived thread of its own, so that one that stalls
                // does not keep the others waiting; a few at a time.
                if open.load(std::sync::atomic::Ordering::Relaxed) >= MAX_CONTROL_CLIENTS {
                    let _ = stream.write_all(b"{\"error\":\"busy: too many control clients\"}\n");
                    continue;
                }
                open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (requests, wake, open) = (requests.clone(), wake.clone(), open.clone());
                let served = std::thread::Builder::new()
                    .name("control-client".into())
                    .spawn(move || {
                        serve_control_client(stream, &requests, &wake);
                        open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    });
                if served.is_err() {
                    log("WARN", "control: cannot start a thread for a client");
                }
            }
        })
        .map(|_| ())
}

/// At most this many control clients are served at once.
const MAX_CONTROL_CLIENTS: usize = 8;

/// Reads one request, has the loop answer it, writes the answer.
fn serve_control_client(
    mut stream: UnixStream,
    requests: &mpsc::Sender<ControlRequest>,
    wake: &std::os::fd::OwnedFd,
) {
    let mut request = [0u8; 64];
    let n = stream.read(&mut request).unwrap_or(0);
    let (reply, answer) = mpsc::channel();
    let text = String::from_utf8_lossy(&request[..n]).trim().to_string();
    if requests.send(ControlRequest { text, reply }).is_err() {
        return; // the loop has ended
    }
    // SAFETY: one byte to our own non-blocking pipe; a full pipe means the loop is waking
    // already.
    unsafe { libc::write(wake.as_raw_fd(), b"c".as_ptr().cast(), 1) };
    let reply = answer
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| r#"{"error":"the daemon did not answer"}"#.to_string());
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.write_all(b"\n");
}

/// A non-blocking, close-on-exec pipe (read end, write end).
fn wake_pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), DaemonError> {
    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
        return Err(DaemonError::Failed(format!(
            "pipe: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: both descriptors were just created and are owned by the caller from now on.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(pipe[0]),
            std::os::fd::OwnedFd::from_raw_fd(pipe[1]),
        )
    })
}

/// Empties a wake-up pipe.
fn drain(fd: &std::os::fd::OwnedFd) {
    let mut buf = [0u8; 64];
    // SAFETY: reading into a local buffer from our non-blocking pipe.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(
    cfg: Config,
    node: &str,
    state_dir: &Path,
    control: &Path,
    ocf_root: &Path,
    op_timeout: Duration,
) -> Result<(), DaemonError> {
    let result = run_loop(cfg, node, state_dir, control, ocf_root, op_timeout);
    flush_log();
    result
}

fn run_loop(
    cfg: Config,
    node: &str,
    state_dir: &Path,
    control: &Path,
    ocf_root: &Path,
    op_timeout: Duration,
) -> Result<(), DaemonError> {
    if cfg.groups.len() > 1 {
        return Err(DaemonError::Configured(
            "haresources has several groups; hb-monitor runs one group so far".into(),
        ));
    }
    if !cfg.ha_cf.nodes.iter().any(|n| n == node) {
        return Err(DaemonError::Configured(format!(
            "this node ({node}) is not one of the nodes in ha.cf ({})",
            cfg.ha_cf.nodes.join(", ")
        )));
    }
    let media = MediaSet::open(&cfg.ha_cf).map_err(|e| match e.kind() {
        io::ErrorKind::Unsupported | io::ErrorKind::NotFound => {
            DaemonError::Configured(e.to_string())
        }
        _ => DaemonError::Failed(format!("opening the media: {e}")),
    })?;
    let ping = PingNodes::open(&cfg.ha_cf, Instant::now()).map_err(|e| match e.kind() {
        io::ErrorKind::Unsupported => DaemonError::Configured(e.to_string()),
        _ => DaemonError::Failed(e.to_string()),
    })?;
    open_log_sinks(&cfg.ha_cf)?;
    let mut watchdog = match &cfg.ha_cf.watchdog {
        Some(path) => Some(Watchdog::open(path, cfg.ha_cf.deadtime)?),
        None => None,
    };
    let generation = next_generation(state_dir).map_err(|e| {
        DaemonError::Failed(format!("state directory {}: {e}", state_dir.display()))
    })?;
    let uuid = node_uuid(state_dir).map_err(|e| {
        DaemonError::Failed(format!("state directory {}: {e}", state_dir.display()))
    })?;
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| DaemonError::Failed(format!("blocking signals: {e}")))?;
    // Only now: every thread must be started with these signals blocked, or the kernel may
    // hand SIGTERM to one that does not block it, which then dies of it with the process.
    start_log_thread();
    let signal_fd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| DaemonError::Failed(format!("signalfd: {e}")))?;
    let _ = std::fs::remove_file(control);
    if let Some(dir) = control.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = UnixListener::bind(control)
        .map_err(|e| DaemonError::Failed(format!("control socket {}: {e}", control.display())))?;
    // Root only: standby and takeover will come through here.
    let _ = std::fs::set_permissions(control, std::fs::Permissions::from_mode(0o600));
    let (control_read, control_write) = wake_pipe()?;
    let (control_sender, control_requests) = mpsc::channel();
    spawn_control_thread(listener, control_sender, control_write)
        .map_err(|e| DaemonError::Failed(format!("control thread: {e}")))?;
    let now = Instant::now();
    let resources_empty = cfg.groups.iter().all(|g| g.resources.is_empty());
    let ha = &cfg.ha_cf;
    let members = Membership::new(node, &ha.nodes, ha.deadtime, ha.warntime, ha.initdead, now);
    for note in &ha.notes {
        log("INFO", &format!("ha.cf {note}"));
    }
    go_realtime(ha);
    if ha.auto_failback == super::config::AutoFailback::Legacy && !resources_empty {
        log(
            "INFO",
            "auto_failback legacy (Heartbeat 3's default when ha.cf has no auto_failback line): a group goes back to its preferred node when that node returns, as with `on`",
        );
    }
    log(
        "INFO",
        &format!(
            "node {node} generation {generation}: keepalive {} ms, deadtime {} ms, media {}",
            ha.keepalive.as_millis(),
            ha.deadtime.as_millis(),
            media
                .sockets
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let sending = media
        .try_clone()
        .map_err(|e| DaemonError::Failed(format!("opening the media for sending: {e}")))?;
    let out = Arc::new(Outgoing::new(node, uuid, generation, cfg.auth.clone(), now));
    // After go_realtime: the stand-ins run at the loop's priority.
    let stand_in_cpus = match standin::start(out.clone(), &sending, ha.keepalive, log) {
        Ok(cpus) => {
            if !cpus.is_empty() {
                log(
                    "INFO",
                    &format!(
                        "stand-in heartbeats on CPUs {cpus:?}: when the loop has not sent for two keepalives (its CPU stalled), one of them sends for it, for at most {} ms",
                        standin::COVER.as_millis()
                    ),
                );
            }
            cpus
        }
        Err(e) => {
            log("WARN", &format!("no stand-in heartbeat: {e}"));
            vec![]
        }
    };
    let (wake_read, wake_write) = wake_pipe()?;
    let (outcome_sender, outcomes) = mpsc::channel();
    let (preferred, resources) = cfg
        .groups
        .first()
        .map(|g| (g.preferred.clone(), g.resources.clone()))
        .unwrap_or_default();
    let worker = Worker {
        ocf_root: ocf_root.to_path_buf(),
        resources: resources.clone(),
        timeout: op_timeout,
        done: outcome_sender,
        wake: wake_write.as_raw_fd(),
    };
    if cfg.ha_cf.fence_command.is_empty() && !resources.is_empty() {
        log(
            "WARN",
            "no fence_command: a node whose daemon dies or whose heartbeat links all fail keeps what it runs, so its peer's takeover runs the group twice (split brain: two VIPs, DRBD Primary on both); and a failed stop leaves the group down until an operator acts",
        );
    }
    let mut daemon = Daemon {
        preferred: preferred.clone(),
        resources,
        worker,
        busy: false,
        fence_needed: Default::default(),
        next_fence_attempt: None,
        waiting_unfenced: None,
        next_monitor: None,
        restarts: Default::default(),
        giving_up: false,
        ping,
        connectivity_note: None,
        holding: Holding::None,
        want: false,
        standby: false,
        exiting: false,
        last_error: None,
        outcomes,
        compat: Compat::new(node, &cfg.ha_cf.nodes, std::slice::from_ref(&preferred)),
        out,
        sending,
        stand_in_cpus,
        cfg,
        node: node.to_string(),
        generation,
        media,
        members,
        wire: WireCounters::default(),
        started: now,
        pauses: 0,
        longest_pause: Duration::ZERO,
    };
    if !daemon.resources.is_empty() {
        // Whatever a previous run left running here (kill -9 leaves the VIP, mounts and
        // MySQL behind) must not run beside the holder: stop the group once, right to left
        // (stop of a stopped resource is 0), before taking part.
        log(
            "INFO",
            "start-up clean-up: stopping the group here before taking part",
        );
        daemon.holding = Holding::Cleaning;
        daemon.busy = true;
        daemon.worker.stop();
    }
    let keepalive = daemon.cfg.ha_cf.keepalive;
    // With short keepalives, waking for every peer heartbeat costs more CPU than it buys:
    // the loop wakes every keepalive anyway to send its own, and reads the media then (and
    // at every deadline), each message stamped with its kernel arrival time, so that
    // detection stays exact; a peer's change of state is seen within one keepalive.
    let lazy_receive = keepalive <= LAZY_RECEIVE_MAX_KEEPALIVE;
    let media_count = daemon.media.sockets.len();
    let mut fds: Vec<libc::pollfd> = [
        signal_fd.as_raw_fd(),
        control_read.as_raw_fd(),
        wake_read.as_raw_fd(),
    ]
    .into_iter()
    .chain(daemon.media.sockets.iter().map(|s| s.fd()))
    .map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    })
    .collect();
    let polled = if lazy_receive {
        MEDIA_FDS
    } else {
        MEDIA_FDS + media_count
    };
    let mut last_read = now;
    let mut next_heartbeat = now;
    // When the loop meant to run again at the latest: running later than that is a pause of
    // this node.
    let mut planned_wake = now;
    // When poll returned.
    let mut woke = now;
    loop {
        let now = Instant::now();
        // Late past the planned wake-up, or held up since an early one (a signal, a request,
        // a job's end woke the loop).
        let pause = now.saturating_duration_since(planned_wake.min(woke));
        if pause > PAUSE_EXCUSED_OVER {
            daemon.paused(pause, now, false);
        }
        if lazy_receive {
            for i in 0..media_count {
                daemon.receive(i, now, last_read);
            }
            last_read = now;
        }
        if let Some(ping) = daemon.ping.as_mut() {
            ping.receive(now);
        }
        if now >= next_heartbeat {
            if let Some(ping) = daemon.ping.as_mut() {
                ping.send();
            }
            daemon.heartbeat();
            if let Some(w) = watchdog.as_mut() {
                w.feed();
            }
            next_heartbeat += keepalive;
            if next_heartbeat <= now {
                // Fell behind (the machine stalled): resume the rhythm from now.
                next_heartbeat = now + keepalive;
            }
        }
        daemon.compat.ask_again(now);
        daemon.flush_compat();
        let events = daemon.members.tick(now);
        daemon.report(events);
        daemon.evaluate(now);
        // A node whose stop failed (unclean) can do no more for the group: it exits too.
        if daemon.exiting
            && !daemon.busy
            && (!daemon.holding.occupies() || daemon.holding == Holding::Unclean)
        {
            // The group is down here: say so (st=dead) so that the peers take over now.
            daemon.compat.shut_down();
            daemon.flush_compat();
            daemon.send_status("dead");
            if let Some(w) = watchdog.take() {
                w.disarm();
            }
            let _ = std::fs::remove_file(control);
            log("INFO", "stopped");
            flush_log();
            return Ok(());
        }
        // A stall while the loop ran this pass (after its tick above, which used the time it
        // woke) is a pause too: excused before the next tick, or that tick would hold the
        // whole stall against the peers.
        let passed = Instant::now();
        let ran = passed.saturating_duration_since(now);
        if ran > PAUSE_EXCUSED_OVER {
            daemon.paused(ran, passed, true);
        }
        let mut wake = next_heartbeat.min(daemon.members.next_deadline(now));
        // A monitor only runs while the group is held and no job is under way: a due one
        // must not wake the loop otherwise (after a standby it stayed due, and the loop spun
        // at SCHED_RR, starving a one-CPU machine; the worker's pipe wakes the loop when its
        // job ends).
        let monitor = daemon
            .next_monitor
            .filter(|_| daemon.holding == Holding::Held && !daemon.busy);
        for t in [
            monitor,
            daemon.next_fence_attempt,
            daemon.compat.next_request(),
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(t.max(now));
        }
        let timeout = wake.saturating_duration_since(Instant::now());
        for fd in &mut fds {
            fd.revents = 0;
        }
        // Round up so that a sub-millisecond wait does not spin.
        let timeout_ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        planned_wake = Instant::now() + Duration::from_millis(timeout_ms as u64);
        // SAFETY: `fds` is a live array of initialised pollfd of the given length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), polled as libc::nfds_t, timeout_ms) };
        woke = Instant::now();
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(DaemonError::Failed(format!("poll: {e}")));
        }
        let now = woke;
        if fds[0].revents & libc::POLLIN != 0
            && let Ok(Some(info)) = signal_fd.read_signal()
        {
            let signal = info.ssi_signo as i32;
            if signal == libc::SIGHUP {
                log(
                    "INFO",
                    "SIGHUP: configuration reload is not supported yet; ignored",
                );
            } else {
                log(
                    "INFO",
                    &format!("signal {signal}: giving up the group, then stopping"),
                );
                daemon.exiting = true;
                daemon.want = false;
                daemon.compat.shutting_down();
                daemon.flush_compat();
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            drain(&control_read);
            while let Ok(request) = control_requests.try_recv() {
                let reply = daemon.handle_control(&request.text, now);
                let _ = request.reply.send(reply);
            }
        }
        if fds[2].revents & libc::POLLIN != 0 {
            drain(&wake_read);
        }
        daemon.take_outcomes(now);
        if !lazy_receive {
            for i in 0..media_count {
                if fds[MEDIA_FDS + i].revents & libc::POLLIN != 0 {
                    daemon.receive(i, now, last_read);
                }
            }
            last_read = now;
        }
    }
}

/// Asks a running daemon for its status (the JSON it answers).
pub fn query(control: &Path, request: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(control)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Logs what could not be sent, by medium.
fn log_send_errors(errors: Vec<(String, String)>) {
    for (medium, e) in errors {
        log("WARN", &format!("sending on {medium}: {e}"));
    }
}

/// Default paths, overridable on the command line.
pub fn default_paths() -> (PathBuf, PathBuf) {
    (
        PathBuf::from(DEFAULT_STATE_DIR),
        PathBuf::from(DEFAULT_CONTROL),
    )
}
