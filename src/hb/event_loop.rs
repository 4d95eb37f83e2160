//! `hb-monitor run`: the shell around the controller. One loop over a monotonic clock polls
//! the signal fd, the control socket's and the agents' wake-up pipes and the media; it turns
//! what it reads into [`Input`]s for [`Node::step`] and does what the [`Action`]s say (send,
//! run an agent, fence, log, reply, exit). Every decision is the controller's; this file
//! owns the sockets, the clock, the watchdog, the stand-in threads and the agents' threads.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::agent_worker::{AgentWorker, Completion};
use super::config::Config;
use super::control::{self, ControlRequest};
use super::controller::{Action, Input, Node, Request, Settings};
use super::logging;
use super::media::MediaSet;
use super::notify::Notifier;
use super::ping::{PingSocket, PingTable};
use super::proto::{self, ProtoError};
use super::respawn::Respawner;
use super::standin::{self, Outgoing};
use super::state::{self, ReplayFloors};
use super::wire::WireCounters;

/// At most this many datagrams are read from one medium per pass of the loop: enough to
/// empty the queue of a flood that passed the filter between two passes (20 000 a second
/// is 100 per 5 ms keepalive), few enough that the loop still sends its own heartbeats.
const RECEIVE_PER_PASS: usize = 2048;

/// Up to this keepalive the loop reads the media when it wakes anyway instead of waking for
/// each heartbeat (see `run`).
const LAZY_RECEIVE_MAX_KEEPALIVE: Duration = Duration::from_millis(50);

/// A wake-up later than planned by more than this, or a pass of the loop that takes longer,
/// is a pause of this node (the machine or its hypervisor did not run it): peers' silence
/// over it is excused ([`Input::Paused`]). Smaller delays are the ordinary cost of waking up
/// and of a pass (tens of microseconds), and not worth a decision.
const PAUSE_EXCUSED_OVER: Duration = Duration::from_millis(2);

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

fn failed(what: &str) -> impl FnOnce(io::Error) -> DaemonError + '_ {
    move |e| DaemonError::Failed(format!("{what}: {e}"))
}

/// `realtime on`: SCHED_RR at `rtprio` and memory locked as it is touched, so that a busy
/// machine delays neither heartbeats nor the detection of a dead peer. Children (the agents)
/// start with normal scheduling (SCHED_RESET_ON_FORK) and do not inherit the lock. Where
/// the system refuses (no CAP_SYS_NICE, an RLIMIT_MEMLOCK too low), the daemon runs on and
/// says plainly what that risks.
fn go_realtime(cfg: &super::config::HaCf) {
    if !cfg.realtime {
        info!(
            "realtime off: heartbeats run at normal priority; a busy machine can delay them into a false failover"
        );
        return;
    }
    if let Err(e) = crate::sys::sched::set_realtime_round_robin(i32::from(cfg.rtprio)) {
        warn!(
            "realtime: cannot run SCHED_RR at priority {} ({e}): heartbeats run at normal priority, and a busy machine can delay them into a false failover",
            cfg.rtprio
        );
    }
    // On fault: pages are locked as they are used rather than every mapping populated (the
    // worker threads' stacks would otherwise count in full).
    if let Err(e) = crate::sys::sched::lock_memory_on_fault() {
        warn!(
            "realtime: cannot lock memory ({e}): the daemon can be paged out under memory pressure"
        );
    }
}

/// The `watchdog` device: opened at start (the daemon refuses to run without it when it is
/// configured), fed with every heartbeat, and disarmed on an orderly exit with the magic
/// close (`V`), so that only a hung or dead daemon lets it reset the machine.
struct Watchdog {
    device: std::fs::File,
    path: std::path::PathBuf,
}

impl Watchdog {
    fn open(path: &Path, deadtime: Duration) -> Result<Watchdog, DaemonError> {
        // The reset comes a little after a peer would declare this node dead.
        let seconds = deadtime.as_secs().saturating_add(1).max(2);
        let device = crate::sys::watchdog::open(path, seconds).map_err(|e| {
            DaemonError::Configured(format!(
                "watchdog {}: {e} (load a watchdog driver, e.g. `modprobe softdog`, or remove the directive)",
                path.display()
            ))
        })?;
        Ok(Watchdog {
            device,
            path: path.to_path_buf(),
        })
    }

    fn feed(&mut self) {
        if let Err(e) = self.device.write_all(b"\0") {
            warn!("feeding the watchdog {}: {e}", self.path.display());
        }
    }

    /// The magic close: an orderly exit must not reset the machine.
    fn disarm(mut self) {
        let _ = self.device.write_all(b"V");
    }
}

/// Everything the loop owns besides the controller.
struct Shell {
    node: Node,
    /// What was last accepted from each peer, kept for the next run.
    floors: ReplayFloors,
    cfg: Config,
    /// Where every message leaves (shared with the stand-ins, [`standin`]).
    out: Arc<Outgoing>,
    /// The loop's own handles on the media's sockets, for sending.
    sending: MediaSet,
    media: MediaSet,
    ping: Option<PingSocket>,
    worker: AgentWorker,
    notifier: Option<Notifier>,
    watchdog: Option<Watchdog>,
    wire: WireCounters,
    stand_in_cpus: Vec<usize>,
    /// Heartbeat peers' retransmission requests answered: messages resent from the history,
    /// and sequence numbers no longer in it (answered `NS_nak_rexmit`).
    resent: u64,
    not_found: u64,
    /// Answers to the request just stepped.
    replies: Vec<String>,
    exit: bool,
}

impl Shell {
    fn step(&mut self, now: Instant, input: Input) {
        let received = matches!(input, Input::Received { .. });
        let actions = self.node.step(now, input);
        if received {
            for (index, last) in self.node.last_accepted().enumerate() {
                if let Some((generation, seq)) = last {
                    self.floors.record(index, generation, seq);
                }
            }
        }
        self.execute(actions, now);
    }

    fn execute(&mut self, actions: Vec<Action>, now: Instant) {
        for action in actions {
            match action {
                Action::Heartbeat { msg, last } => {
                    let errors = self.out.heartbeat(&self.sending, msg, last, now);
                    log_send_errors(errors);
                    if let Some(w) = self.watchdog.as_mut() {
                        w.feed();
                    }
                }
                Action::Send { msg, sequenced } => {
                    log_send_errors(self.out.send(&self.sending, msg, sequenced));
                }
                Action::Retransmit { to, seqs } => {
                    for seq in seqs {
                        match self.out.resend(&self.sending, seq) {
                            Some(errors) => {
                                self.resent += 1;
                                log_send_errors(errors)
                            }
                            None => {
                                self.not_found += 1;
                                log_send_errors(self.out.send(
                                    &self.sending,
                                    super::compat::nak_rexmit(&to, seq),
                                    false,
                                ))
                            }
                        }
                    }
                }
                Action::SendPings => {
                    if let (Some(socket), Some(table)) = (self.ping.as_mut(), self.node.ping()) {
                        socket.send(table.addresses());
                    }
                }
                Action::Agent {
                    group,
                    resource,
                    op,
                    timeout,
                } => self.worker.agent(group, resource, op, timeout),
                Action::Fence { node, timeout } => self.worker.fence(node, timeout),
                Action::Log(level, line) => log::log!(level, "{line}"),
                Action::Notify(notice) => {
                    if let Some(n) = &self.notifier {
                        n.notify(notice);
                    }
                }
                Action::Reply(reply) => self.replies.push(reply),
                Action::Exit => self.exit = true,
            }
        }
    }

    /// Reads what is queued on medium `index`. Each message counts as heard when the kernel
    /// received it, not when the loop got to it: a loop that reads only when it wakes anyway
    /// must not see heartbeats as late. `since`: the previous read of this medium (nothing
    /// queued now arrived before it, whatever the wall clock did meanwhile).
    fn receive(&mut self, index: usize, now: Instant, since: Instant) {
        let mut buf = [0u8; proto::MAX_MESSAGE + 1];
        let wall_now = SystemTime::now();
        // Drain what is queued, bounded so one flooded medium cannot starve the loop.
        for _ in 0..RECEIVE_PER_PASS {
            let received = match self.media.sockets[index].recv(&mut buf) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    warn!("receiving on {}: {e}", self.media.sockets[index].name);
                    return;
                }
            };
            self.wire.kernel[index].count(received.kernel_dropped);
            if received.len > proto::MAX_MESSAGE {
                self.wire.refused[index].too_large += 1;
                continue;
            }
            let arrived = received
                .arrived
                .and_then(|t| wall_now.duration_since(t).ok())
                .and_then(|age| now.checked_sub(age))
                .map_or(now, |t| t.clamp(since.min(now), now));
            let msg = match proto::decode(&buf[..received.len], &self.cfg.auth) {
                Ok(m) => m,
                Err(e) => {
                    let refused = &mut self.wire.refused[index];
                    match e {
                        ProtoError::BadSignature => refused.bad_signature += 1,
                        ProtoError::UnknownKey(_) => refused.unknown_key += 1,
                        ProtoError::TooLarge(_) => refused.too_large += 1,
                        _ => refused.malformed += 1,
                    }
                    continue;
                }
            };
            let medium = self.media.sockets[index].name.clone();
            if let (Some(src), Some(generation), Some(seq)) =
                (msg.get("src"), msg.get_hex("hg"), msg.get_hex("seq"))
                && let Some(warning) =
                    self.wire.kernel[index].message(&medium, src, generation, seq, now)
            {
                warn!("{warning}");
            }
            self.step(
                now,
                Input::Received {
                    medium,
                    msg,
                    arrived,
                },
            );
        }
    }

    /// One control request: status is answered here (the controller's view and the
    /// shell's counters); standby and takeover go to the controller.
    fn control(&mut self, text: &str, now: Instant) -> String {
        if text == "status" {
            return self.status(now).to_string();
        }
        match Request::parse(text, &self.node.settings().groups) {
            Ok(request) => {
                self.step(now, Input::Request(request));
                self.replies
                    .drain(..)
                    .next_back()
                    .unwrap_or_else(|| r#"{"error":"no answer"}"#.into())
            }
            Err(e) => serde_json::json!({ "error": e }).to_string(),
        }
    }

    fn status(&self, now: Instant) -> serde_json::Value {
        let mut status = self.node.status(now);
        let (stood_in, stood_in_late) = self.out.stood_in();
        status["media"] = self
            .media
            .sockets
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
            .into();
        let dropped = &mut status["dropped"];
        for (kind, n) in self.wire.refused_total().by_kind() {
            dropped[kind] = n.into();
        }
        dropped["kernel"] = self.wire.kernel_total().into();
        dropped["kernel_by_medium"] = self
            .media
            .sockets
            .iter()
            .zip(&self.wire.kernel)
            .map(|(m, k)| (m.name.clone(), serde_json::Value::from(k.total)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        // The same by medium, for the metrics' medium label.
        status["dropped_by_medium"] = self
            .media
            .sockets
            .iter()
            .zip(self.wire.refused.iter().zip(&self.wire.kernel))
            .map(|(m, (refused, kernel))| {
                let mut kinds: serde_json::Map<_, _> = refused
                    .by_kind()
                    .into_iter()
                    .map(|(kind, n)| (kind.to_string(), n.into()))
                    .collect();
                kinds.insert("kernel".into(), kernel.total.into());
                (m.name.clone(), serde_json::Value::from(kinds))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        status["retransmission"]["resent"] = self.resent.into();
        status["retransmission"]["not_found"] = self.not_found.into();
        status["stand_in"] = serde_json::json!({
            "cpus": self.stand_in_cpus,
            "heartbeats": stood_in,
            "longest_late_ms": stood_in_late.as_millis() as u64,
        });
        status
    }

    fn completion(&mut self, completion: Completion, now: Instant) {
        let input = match completion {
            Completion::Agent {
                group,
                resource,
                op,
                result,
            } => Input::AgentDone {
                group,
                resource,
                op,
                result,
            },
            Completion::Fence { node, result } => Input::FenceDone { node, result },
        };
        self.step(now, input);
    }
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
    logging::install();
    let result = run_loop(cfg, node, state_dir, control, ocf_root, op_timeout);
    logging::flush();
    result
}

fn run_loop(
    cfg: Config,
    node: &str,
    state_dir: &Path,
    control_path: &Path,
    ocf_root: &Path,
    op_timeout: Duration,
) -> Result<(), DaemonError> {
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
    let ping_table = PingTable::new(&cfg.ha_cf, Instant::now()).map_err(|e| match e.kind() {
        io::ErrorKind::Unsupported => DaemonError::Configured(e.to_string()),
        _ => DaemonError::Failed(e.to_string()),
    })?;
    let ping = match &ping_table {
        Some(table) => {
            Some(PingSocket::open(table).map_err(|e| DaemonError::Failed(e.to_string()))?)
        }
        None => None,
    };
    logging::open_sinks(&cfg.ha_cf).map_err(|e| DaemonError::Failed(e.to_string()))?;
    let watchdog = match &cfg.ha_cf.watchdog {
        Some(path) => Some(Watchdog::open(path, cfg.ha_cf.deadtime)?),
        None => None,
    };
    let state_error =
        |e: io::Error| DaemonError::Failed(format!("state directory {}: {e}", state_dir.display()));
    let generation = state::next_generation(state_dir).map_err(state_error)?;
    let uuid = state::node_uuid(state_dir).map_err(state_error)?;
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| DaemonError::Failed(format!("blocking signals: {e}")))?;
    // Only now: every thread must be started with these signals blocked, or the kernel may
    // hand SIGTERM to one that does not block it, which then dies of it with the process.
    logging::start_thread().map_err(failed("logging thread"))?;
    let signal_fd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| DaemonError::Failed(format!("signalfd: {e}")))?;
    let (control_read, control_write) = crate::sys::poll::pipe().map_err(failed("pipe"))?;
    let (control_sender, control_requests) = mpsc::channel::<ControlRequest>();
    if let Some(addr) = cfg.ha_cf.metrics_listen {
        let wake = control_write.try_clone().map_err(failed("pipe"))?;
        super::metrics_http::serve(addr, control_sender.clone(), wake)
            .map_err(|e| DaemonError::Failed(e.to_string()))?;
        info!("metrics_listen: Prometheus metrics on http://{addr}/metrics");
    }
    control::serve(control_path, control_sender, control_write)
        .map_err(|e| DaemonError::Failed(e.to_string()))?;
    let notifier = Notifier::start(&cfg.ha_cf.notify_command, cfg.ha_cf.notify_timeout, node)
        .map_err(failed("notify thread"))?;
    // Before the loop goes realtime: the helpers run at normal priority.
    let helpers = super::preflight::respawn_helpers(&cfg.ha_cf).map_err(DaemonError::Failed)?;
    let _respawner = Respawner::start(&helpers).map_err(failed("respawn thread"))?;
    let now = Instant::now();
    let ha = &cfg.ha_cf;
    for note in &ha.notes {
        info!("ha.cf {note}");
    }
    go_realtime(ha);
    info!(
        "node {node} generation {generation}: keepalive {} ms, deadtime {} ms, media {}",
        ha.keepalive.as_millis(),
        ha.deadtime.as_millis(),
        media
            .sockets
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for medium in &media.sockets {
        info!("{}: admits {}", medium.name, medium.admits);
    }
    let sending = media
        .try_clone()
        .map_err(failed("opening the media for sending"))?;
    let out = Arc::new(Outgoing::new(node, uuid, generation, cfg.auth.clone(), now));
    // After go_realtime: the stand-ins run at the loop's priority.
    let stand_in_cpus = match standin::start(out.clone(), &sending, ha.keepalive, standin_log) {
        Ok(cpus) => {
            if !cpus.is_empty() {
                info!(
                    "stand-in heartbeats on CPUs {cpus:?}: when the loop has not sent for two keepalives (its CPU stalled), one of them sends for it, for at most {} ms",
                    standin::COVER.as_millis()
                );
            }
            cpus
        }
        Err(e) => {
            warn!("no stand-in heartbeat: {e}");
            vec![]
        }
    };
    let (wake_read, wake_write) = crate::sys::poll::pipe().map_err(failed("pipe"))?;
    let (done_sender, completions) = mpsc::channel();
    let worker = AgentWorker::new(
        ocf_root,
        &cfg.groups,
        &ha.fence_command,
        done_sender,
        wake_write,
    );
    let keepalive = ha.keepalive;
    let media_count = media.sockets.len();
    let settings = Settings::from_config(&cfg, node, op_timeout, generation);
    let mut controller = Node::new(settings, ping_table, now);
    let peers: Vec<String> = controller.peer_names().map(str::to_string).collect();
    let peer_refs: Vec<&str> = peers.iter().map(String::as_str).collect();
    let (floors, loaded) = ReplayFloors::open(state_dir, &peer_refs).map_err(state_error)?;
    for (peer, floor) in peers.iter().zip(loaded) {
        if let Some((generation, seq)) = floor {
            info!(
                "{peer}: accepting only messages above generation {generation} seq {seq}, the last accepted before this start"
            );
            controller.set_replay_floor(peer, generation, seq);
        }
    }
    let mut shell = Shell {
        node: controller,
        floors,
        out,
        sending,
        media,
        ping,
        worker,
        notifier,
        watchdog,
        wire: WireCounters::new(media_count),
        stand_in_cpus,
        resent: 0,
        not_found: 0,
        replies: Vec::new(),
        exit: false,
        cfg,
    };
    shell.step(now, Input::Start);
    // With short keepalives, waking for every peer heartbeat costs more CPU than it buys:
    // the loop wakes every keepalive anyway to send its own, and reads the media then (and
    // at every deadline), each message stamped with its kernel arrival time, so that
    // detection stays exact; a peer's change of state is seen within one keepalive.
    let lazy_receive = keepalive <= LAZY_RECEIVE_MAX_KEEPALIVE;
    let mut last_read = now;
    // When the loop meant to run again at the latest: running later than that is a pause of
    // this node.
    let mut planned_wake = now;
    // When poll returned.
    let mut woke = now;
    loop {
        let now = Instant::now();
        // The media before the pause below: a heartbeat that arrived before this node
        // stalled is stamped with its arrival, and its silence over the stall must be
        // excused like any other's. Read after the excuse, it would set the clock back to
        // before the stall, and a run of stalls with short runs between them (a host that
        // throttles its VM) would add up to a false death.
        if lazy_receive {
            for i in 0..media_count {
                shell.receive(i, now, last_read);
            }
            last_read = now;
        }
        // Late past the planned wake-up, or held up since an early one (a signal, a request,
        // a job's end woke the loop).
        let pause = now.saturating_duration_since(planned_wake.min(woke));
        if pause > PAUSE_EXCUSED_OVER {
            shell.step(
                now,
                Input::Paused {
                    pause,
                    while_running: false,
                },
            );
        }
        let replies = shell
            .ping
            .as_mut()
            .map(PingSocket::receive)
            .unwrap_or_default();
        for from in replies {
            shell.step(now, Input::PingReply { from });
        }
        shell.step(now, Input::Tick);
        if shell.exit {
            if let Some(w) = shell.watchdog.take() {
                w.disarm();
            }
            if let Err(e) = shell.floors.sync() {
                warn!("writing the replay floors to {}: {e}", state_dir.display());
            }
            let _ = std::fs::remove_file(control_path);
            return Ok(());
        }
        // A stall while the loop ran this pass (after its tick above, which used the time it
        // woke) is a pause too: excused before the next tick, or that tick would hold the
        // whole stall against the peers.
        let passed = Instant::now();
        let ran = passed.saturating_duration_since(now);
        if ran > PAUSE_EXCUSED_OVER {
            shell.step(
                passed,
                Input::Paused {
                    pause: ran,
                    while_running: true,
                },
            );
        }
        let wake = shell.node.wake_at(passed);
        let timeout = wake.saturating_duration_since(Instant::now());
        // Round up so that a sub-millisecond wait does not spin.
        let timeout_ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds: Vec<PollFd<'_>> = [signal_fd.as_fd(), control_read.as_fd(), wake_read.as_fd()]
            .into_iter()
            .chain(
                shell
                    .media
                    .sockets
                    .iter()
                    .filter(|_| !lazy_receive)
                    .map(|s| s.as_fd()),
            )
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        planned_wake = Instant::now() + Duration::from_millis(timeout_ms as u64);
        let ready = nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX),
        );
        woke = Instant::now();
        let readable =
            |fd: &PollFd<'_>| fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
        let ready: Vec<bool> = match ready {
            Ok(_) => fds.iter().map(readable).collect(),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(DaemonError::Failed(format!("poll: {e}"))),
        };
        drop(fds);
        let now = woke;
        // The media first: under a flood, heartbeats must not wait behind anything else.
        if !lazy_receive {
            for i in 0..media_count {
                if ready[3 + i] {
                    shell.receive(i, now, last_read);
                }
            }
            last_read = now;
        }
        if ready[0]
            && let Ok(Some(info)) = signal_fd.read_signal()
        {
            let signal = info.ssi_signo as i32;
            if signal == Signal::SIGHUP as i32 {
                info!("SIGHUP: configuration reload is not supported yet; ignored");
            } else {
                info!("signal {signal}: giving up the group, then stopping");
                shell.step(now, Input::Terminate);
            }
        }
        if ready[1] {
            crate::sys::poll::drain(&control_read);
            while let Ok(request) = control_requests.try_recv() {
                let reply = shell.control(&request.text, now);
                let _ = request.reply.send(reply);
            }
        }
        if ready[2] {
            crate::sys::poll::drain(&wake_read);
        }
        while let Ok(completion) = completions.try_recv() {
            shell.completion(completion, now);
        }
    }
}

/// How the stand-in threads log (they run beside the loop, with the same logger).
fn standin_log(level: &str, message: &str) {
    let level = match level {
        "ERROR" => log::Level::Error,
        "WARN" => log::Level::Warn,
        "INFO" => log::Level::Info,
        _ => log::Level::Debug,
    };
    log::log!(level, "{message}");
}

/// Logs what could not be sent, by medium.
fn log_send_errors(errors: Vec<(String, String)>) {
    for (medium, e) in errors {
        warn!("sending on {medium}: {e}");
    }
}

/// The paths `run` uses unless told otherwise: the state directory, the control socket.
pub fn default_paths() -> (std::path::PathBuf, std::path::PathBuf) {
    (
        state::DEFAULT_STATE_DIR.into(),
        control::DEFAULT_CONTROL.into(),
    )
}
