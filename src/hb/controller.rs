//! The cluster logic of one hb-monitor node, as a deterministic state machine.
//!
//! [`Node::step`] takes the time and one [`Input`] (a heartbeat received, a timer, an agent's
//! or the fence command's result, a ping reply, an operator's request, a signal) and returns
//! the [`Action`]s that follow (send on the media, run an agent operation, fence a node, log,
//! reply, exit). It reads no clock, opens nothing, starts no thread and draws no random
//! number: the event loop ([`super::event_loop`]) owns the sockets, the clock and the agents'
//! processes and does what the actions say, and the simulator in the test suite runs several
//! nodes against a simulated clock and network with the very same code.
//!
//! Each `haresources` line is a group with its own preferred node, holder, ordered resources,
//! failback and local-restart accounting ([`group::decide`] says who runs it). A group's agents
//! run as a job, one operation at a time in order (start left to right, stop right to left);
//! the groups' jobs run side by side. Fencing is per node: a dead peer that did not hand its
//! groups over cleanly, or a live one whose stop failed, is fenced before any of the groups it
//! may still run is started here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use log::Level;

use super::compat::{Compat, Effect};
use super::config::{AutoFailback, Config};
use super::group::{self, Decision, Holding, PeerView};
use super::membership::{Dropped, Event, Membership, PeerState};
use super::ping::PingTable;
use super::proto::Message;

/// An OCF operation on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `monitor`.
    Monitor,
}

impl Op {
    /// The OCF action name.
    pub fn word(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor => "monitor",
        }
    }
}

/// One `haresources` line, as the controller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// How operators and the log name the group: its first resource as written.
    pub name: String,
    /// The preferred node.
    pub preferred: String,
    /// The resources as written, left to right (for the log).
    pub resources: Vec<String>,
}

/// A deliberately broken controller, for proving that the simulator finds what it must.
/// Never set outside tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Take a group over from a dead holder without running the fence command.
    TakeoverWithoutFencing,
    /// Keep listening to a fenced peer's old generation.
    AcceptFencedPackets,
    /// Count a peer that is still stopping a group as not running it.
    FailbackDuringStop,
}

/// What the controller is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node.
    pub node: String,
    /// Every node of ha.cf.
    pub nodes: Vec<String>,
    /// Heartbeat interval.
    pub keepalive: Duration,
    /// Silence after which a peer is dead.
    pub deadtime: Duration,
    /// Silence after which a heartbeat is late.
    pub warntime: Duration,
    /// Dead time at start-up.
    pub initdead: Duration,
    /// `auto_failback`.
    pub auto_failback: AutoFailback,
    /// A `fence_command` is configured.
    pub fencing: bool,
    /// Its time limit.
    pub fence_timeout: Duration,
    /// How often a running group is monitored (zero: never).
    pub monitor_interval: Duration,
    /// Local restarts allowed, and their window.
    pub restart_limit: (u32, Duration),
    /// Each agent operation's time limit.
    pub op_timeout: Duration,
    /// This run's generation (Heartbeat's `hg`).
    pub generation: u64,
    /// The groups, in `haresources` order.
    pub groups: Vec<GroupSpec>,
    /// A broken controller (tests only).
    #[doc(hidden)]
    pub mutation: Option<Mutation>,
}

impl Settings {
    /// The settings of node `node` under `cfg`.
    pub fn from_config(cfg: &Config, node: &str, op_timeout: Duration, generation: u64) -> Self {
        let ha = &cfg.ha_cf;
        Settings {
            node: node.to_string(),
            nodes: ha.nodes.clone(),
            keepalive: ha.keepalive,
            deadtime: ha.deadtime,
            warntime: ha.warntime,
            initdead: ha.initdead,
            auto_failback: ha.auto_failback,
            fencing: !ha.fence_command.is_empty(),
            fence_timeout: ha.fence_timeout,
            monitor_interval: ha.monitor_interval,
            restart_limit: ha.restart_limit,
            op_timeout,
            generation,
            groups: cfg
                .groups
                .iter()
                .filter(|g| !g.resources.is_empty())
                .map(|g| GroupSpec {
                    name: g.resources[0].written.clone(),
                    preferred: g.preferred.clone(),
                    resources: g.resources.iter().map(|r| r.written.clone()).collect(),
                })
                .collect(),
            mutation: None,
        }
    }
}

/// Which groups an operator's standby or takeover is about (Heartbeat's `hb_standby` and
/// `hb_takeover` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every group.
    All,
    /// The groups this node is preferred for.
    Local,
    /// The groups other nodes are preferred for.
    Foreign,
    /// One group (its index).
    Group(usize),
}

/// An operator's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Give the groups up and take none until a takeover.
    Standby(Scope),
    /// Take the groups (here, now).
    Takeover(Scope),
}

impl Request {
    /// Parses `standby|takeover [all|local|foreign|GROUP]` (GROUP: a group's name, its first
    /// resource as written, or its 1-based number in haresources).
    pub fn parse(text: &str, groups: &[GroupSpec]) -> Result<Request, String> {
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or("");
        let scope = match words.next() {
            None | Some("all") => Scope::All,
            Some("local") => Scope::Local,
            Some("foreign") => Scope::Foreign,
            Some(name) => {
                let by_number = name
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=groups.len()).contains(n))
                    .map(|n| n - 1);
                let by_name = groups.iter().position(|g| g.name == name);
                match by_name.or(by_number) {
                    Some(i) => Scope::Group(i),
                    None => {
                        return Err(format!(
                            "no group {name:?}: use all, local, foreign, a group's first resource as written in haresources ({}) or its number (1 to {})",
                            groups
                                .iter()
                                .map(|g| g.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            groups.len()
                        ));
                    }
                }
            }
        };
        if let Some(extra) = words.next() {
            return Err(format!("unexpected {extra:?} after the scope"));
        }
        match verb {
            "standby" => Ok(Request::Standby(scope)),
            "takeover" => Ok(Request::Takeover(scope)),
            other => Err(format!("unknown request {other:?}")),
        }
    }
}

/// What happened, as the controller is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// The daemon starts: clean up what a previous run left, then take part.
    Start,
    /// Time passed (the loop woke at or after [`Node::wake_at`]).
    Tick,
    /// An authenticated, decoded message from medium `medium`, which the kernel received at
    /// `arrived` (at or before now).
    Received {
        /// The medium's name.
        medium: String,
        /// The message.
        msg: Message,
        /// When it arrived.
        arrived: Instant,
    },
    /// An agent operation asked for by [`Action::Agent`] ended.
    AgentDone {
        /// Group index.
        group: usize,
        /// Resource index in the group.
        resource: usize,
        /// The operation.
        op: Op,
        /// Ok, or why not (exit code and reason, or the timeout).
        result: Result<(), String>,
    },
    /// The fence command asked for by [`Action::Fence`] ended: Ok once the node is off.
    FenceDone {
        /// The node.
        node: String,
        /// The outcome.
        result: Result<(), String>,
    },
    /// An echo reply from a ping node arrived (now).
    PingReply {
        /// Its source.
        from: Ipv4Addr,
    },
    /// This node did not run for `pause` (the loop woke that late, or one pass took that
    /// long, `while_running`): peers' silence over it is excused.
    Paused {
        /// How long.
        pause: Duration,
        /// Found by a long pass of the loop rather than a late wake-up.
        while_running: bool,
    },
    /// An operator's request (answered with [`Action::Reply`]).
    Request(Request),
    /// SIGTERM or SIGINT: give every group up, then exit.
    Terminate,
}

/// What the controller asks the shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this heartbeat (without the envelope) on every medium; `last`: the final one, not
    /// to be repeated by the stand-ins. Feeds the watchdog.
    Heartbeat {
        /// The message.
        msg: Message,
        /// The daemon is leaving.
        last: bool,
    },
    /// Send this message on every medium (`sequenced`: it takes a sequence number).
    Send {
        /// The message.
        msg: Message,
        /// Numbered.
        sequenced: bool,
    },
    /// A peer asked for these sequence numbers again: resend each kept one, and answer
    /// [`super::compat::nak_rexmit`] for the others.
    Retransmit {
        /// The peer.
        to: String,
        /// What it asked for.
        seqs: Vec<u64>,
    },
    /// Send an echo request to every ping node.
    SendPings,
    /// Run `op` on resource `resource` of group `group` within `timeout`; report with
    /// [`Input::AgentDone`].
    Agent {
        /// Group index.
        group: usize,
        /// Resource index.
        resource: usize,
        /// The operation.
        op: Op,
        /// Its time limit.
        timeout: Duration,
    },
    /// Run the fence command against `node` within `timeout`; report with
    /// [`Input::FenceDone`].
    Fence {
        /// The node.
        node: String,
        /// The limit.
        timeout: Duration,
    },
    /// A log line.
    Log(Level, String),
    /// The answer to a request (JSON).
    Reply(String),
    /// Everything is given up: exit.
    Exit,
}

/// What a job of a group is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    /// Start-up clean-up (a stop of everything).
    Clean,
    /// Start left to right.
    Start,
    /// A start failed: stopping everything again.
    Undo,
    /// Stop right to left.
    Stop,
    /// Local recovery: stop from a resource to the end, start them again.
    Restart,
    /// Monitor left to right.
    Monitor,
}

/// A group's operations under way, one at a time.
#[derive(Debug, Clone)]
struct Job {
    kind: JobKind,
    /// The operation running now.
    running: (usize, Op),
    /// Those after it.
    queue: VecDeque<(usize, Op)>,
    /// Why the start this job undoes failed.
    failed: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Started,
    StartFailed(String),
    Stopped,
    StopFailed(String),
    Monitored(Option<(usize, String)>),
}

/// The last operation on a resource, for status.
#[derive(Debug, Clone)]
struct LastOp {
    op: Op,
    result: Result<(), String>,
    at: Instant,
}

/// One group on this node.
#[derive(Debug, Clone)]
struct Group {
    spec: GroupSpec,
    holding: Holding,
    /// `takeover` was asked here and is not satisfied yet.
    want: bool,
    /// `standby`: stay out until takeover.
    standby: bool,
    job: Option<Job>,
    next_monitor: Option<Instant>,
    restarts: VecDeque<Instant>,
    /// Stopping because local recovery gave up: end as Failed.
    giving_up: bool,
    last_error: Option<String>,
    last_ops: Vec<Option<LastOp>>,
    /// Without fencing: the unclean peer keeping the group down (said once).
    waiting_unfenced: Option<String>,
    /// The last connectivity verdict logged.
    connectivity_note: Option<String>,
}

/// One hb-monitor node's cluster logic (see the module documentation).
#[derive(Debug)]
pub struct Node {
    s: Settings,
    members: Membership,
    compat: Compat,
    ping: Option<PingTable>,
    groups: Vec<Group>,
    /// Peers to fence before taking over, with the groups they may still run.
    fence_needed: BTreeMap<String, BTreeSet<usize>>,
    /// The fence command runs against this node.
    fencing: Option<String>,
    /// After a failed fence, when to try again.
    next_fence_attempt: Option<Instant>,
    next_heartbeat: Instant,
    exiting: bool,
    exited: bool,
    /// Something peers should hear of now rather than at the next keepalive.
    changed: bool,
    /// Reading a backlog (messages that arrived a while ago, queued while this node did not
    /// run): each says what its sender did then, not now, so no group is decided on until
    /// the next tick, when the backlog is read. Acting on the first of them would start a
    /// group that a later one says the peer has started since.
    catching_up: bool,
    /// Numbers this node's takeover requests (`wantid=`): a want is acted on only once every
    /// live hb-monitor peer has echoed it (`seen=`), so that a peer that started the group
    /// before it heard of the want is heard of first.
    want_id: u64,
    /// Fenced in this step (see [`Node::settle`]).
    just_fenced: Option<String>,
    started: Instant,
    pauses: u64,
    longest_pause: Duration,
    out: Vec<Action>,
}

impl Node {
    /// Node `settings.node` at `now`, with its ping nodes (none: `None`). Feed it
    /// [`Input::Start`] first.
    pub fn new(settings: Settings, ping: Option<PingTable>, now: Instant) -> Node {
        let s = settings;
        let members = Membership::new(&s.node, &s.nodes, s.deadtime, s.warntime, s.initdead, now);
        let preferred: Vec<String> = s.groups.iter().map(|g| g.preferred.clone()).collect();
        let compat = Compat::new(&s.node, &s.nodes, &preferred);
        let groups = s
            .groups
            .iter()
            .map(|spec| Group {
                spec: spec.clone(),
                holding: Holding::None,
                want: false,
                standby: false,
                job: None,
                next_monitor: None,
                restarts: VecDeque::new(),
                giving_up: false,
                last_error: None,
                last_ops: vec![None; spec.resources.len()],
                waiting_unfenced: None,
                connectivity_note: None,
            })
            .collect();
        Node {
            s,
            members,
            compat,
            ping,
            groups,
            fence_needed: BTreeMap::new(),
            fencing: None,
            next_fence_attempt: None,
            next_heartbeat: now,
            exiting: false,
            exited: false,
            changed: false,
            catching_up: false,
            want_id: 0,
            just_fenced: None,
            started: now,
            pauses: 0,
            longest_pause: Duration::ZERO,
            out: Vec::new(),
        }
    }

    /// The ping nodes.
    pub fn ping(&self) -> Option<&PingTable> {
        self.ping.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Takes one input at `now` (never earlier than the previous step's) and returns what to
    /// do.
    pub fn step(&mut self, now: Instant, input: Input) -> Vec<Action> {
        if self.exited {
            return Vec::new();
        }
        match input {
            Input::Start => self.start(),
            Input::Tick => {
                self.catching_up = false;
                self.tick(now)
            }
            Input::Received {
                medium,
                msg,
                arrived,
            } => {
                if now.saturating_duration_since(arrived) > self.s.keepalive {
                    self.catching_up = true;
                }
                self.receive(&medium, &msg, arrived.min(now), now)
            }
            Input::AgentDone {
                group,
                resource,
                op,
                result,
            } => self.agent_done(group, resource, op, result, now),
            Input::FenceDone { node, result } => self.fence_done(node, result, now),
            Input::PingReply { from } => {
                if let Some(ping) = self.ping.as_mut() {
                    ping.reply(from, now);
                }
            }
            Input::Paused {
                pause,
                while_running,
            } => self.paused(pause, now, while_running),
            Input::Request(request) => self.request(request),
            Input::Terminate => self.terminate(),
        }
        self.settle(now);
        std::mem::take(&mut self.out)
    }

    /// When the controller next has something to do on its own (a heartbeat, a deadline, a
    /// monitor, a fence retry, a retransmission request): the loop wakes then at the latest.
    pub fn wake_at(&self, now: Instant) -> Instant {
        if self.catching_up {
            return now;
        }
        let mut wake = self.next_heartbeat.min(self.members.next_deadline(now));
        let monitors = self
            .groups
            .iter()
            .filter(|g| g.holding == Holding::Held && g.job.is_none())
            .filter_map(|g| g.next_monitor);
        // A retry only matters when no fence runs (a retry time left in the past while one
        // runs would wake the loop again and again: a spin at SCHED_RR).
        // Nor does one already past: the tick at it tried again if a takeover still waited.
        let retry = self
            .next_fence_attempt
            .filter(|t| self.fencing.is_none() && *t > now);
        for t in monitors.chain(retry).chain(self.compat.next_request()) {
            wake = wake.min(t.max(now));
        }
        wake
    }

    /// What this node does with each group (for the simulator's invariants and tests).
    pub fn holdings(&self) -> Vec<Holding> {
        self.groups.iter().map(|g| g.holding).collect()
    }

    /// Whether the peer `name` is up as this node sees it.
    pub fn peer_up(&self, name: &str) -> bool {
        self.members
            .peers
            .get(name)
            .is_some_and(|p| p.state == PeerState::Up)
    }

    /// Whether the controller has exited.
    pub fn exited(&self) -> bool {
        self.exited
    }

    fn log(&mut self, level: Level, message: impl Into<String>) {
        self.out.push(Action::Log(level, message.into()));
    }

    /// "the resource group" with one group, "group NAME" with several.
    fn the(&self, g: usize) -> String {
        if self.groups.len() == 1 {
            "the resource group".into()
        } else {
            format!("group {}", self.groups[g].spec.name)
        }
    }

    /// "resource group" with one group, "group NAME" with several.
    fn subject(&self, g: usize) -> String {
        if self.groups.len() == 1 {
            "resource group".into()
        } else {
            format!("group {}", self.groups[g].spec.name)
        }
    }

    fn start(&mut self) {
        if self.s.auto_failback == AutoFailback::Legacy && !self.groups.is_empty() {
            self.log(
                Level::Info,
                "auto_failback legacy (Heartbeat 3's default when ha.cf has no auto_failback line): a group goes back to its preferred node when that node returns, as with `on`",
            );
        }
        if !self.s.fencing && !self.groups.is_empty() {
            self.log(
                Level::Warn,
                "no fence_command: a node whose daemon dies or whose heartbeat links all fail keeps what it runs, so its peer's takeover runs the group twice (split brain: two VIPs, DRBD Primary on both); and a failed stop leaves the group down until an operator acts",
            );
        }
        if self.groups.is_empty() {
            return;
        }
        // Whatever a previous run left running here (kill -9 leaves the VIP, mounts and
        // MySQL behind) must not run beside the holder: stop each group once, right to left
        // (stop of a stopped resource is 0), before taking part.
        self.log(
            Level::Info,
            if self.groups.len() == 1 {
                "start-up clean-up: stopping the group here before taking part".to_string()
            } else {
                format!(
                    "start-up clean-up: stopping the {} groups here before taking part",
                    self.groups.len()
                )
            },
        );
        for g in 0..self.groups.len() {
            self.groups[g].holding = Holding::Cleaning;
            self.begin(g, JobKind::Clean, 0);
        }
    }

    fn tick(&mut self, now: Instant) {
        if now >= self.next_heartbeat {
            if self.ping.is_some() {
                self.out.push(Action::SendPings);
            }
            self.changed = true;
            self.next_heartbeat += self.s.keepalive;
            if self.next_heartbeat <= now {
                // Fell behind (the machine stalled): resume the rhythm from now.
                self.next_heartbeat = now + self.s.keepalive;
            }
        }
        self.compat.ask_again(now);
    }

    /// After every input: the passing of time, the groups' decisions, the heartbeat that
    /// tells the peers of a change, and the exit once everything is given up.
    fn settle(&mut self, now: Instant) {
        let events = self.members.tick(now);
        self.report(events);
        if !self.catching_up {
            self.evaluate(now);
        }
        // A fence clears the way for the takeovers it was run for, now. A peer still not
        // heard from afterwards may have booted and taken a group unheard (a link that
        // fails one way): a later takeover fences it again.
        if let Some(node) = self.just_fenced.take()
            && !self.peer_up(&node)
            && self.s.mutation != Some(Mutation::TakeoverWithoutFencing)
        {
            self.fence_needed
                .insert(node, (0..self.groups.len()).collect());
        }
        if self.changed {
            self.changed = false;
            self.heartbeat(now);
        }
        self.flush_compat();
        // A node whose stop failed (unclean) can do no more for a group: it exits too.
        if self.exiting
            && self.groups.iter().all(|g| {
                g.job.is_none() && (!g.holding.occupies() || g.holding == Holding::Unclean)
            })
        {
            // The groups are down here: say so (st=dead) so that the peers take over now.
            self.compat.shut_down();
            self.flush_compat();
            let msg = self.status_message("dead", now);
            self.out.push(Action::Heartbeat { msg, last: true });
            self.log(Level::Info, "stopped");
            self.out.push(Action::Exit);
            self.exited = true;
        }
    }

    fn status_message(&self, st: &str, now: Instant) -> Message {
        let mut msg = Message::default();
        msg.push("t", "status");
        msg.push("st", st);
        msg.push("rsc", self.rsc_word());
        if let Some(ping) = &self.ping {
            msg.push("ping", ping.count(now).to_string());
        }
        if self.groups.iter().any(|g| g.want) {
            let wants: Vec<&str> = self
                .groups
                .iter()
                .map(|g| if g.want { "yes" } else { "no" })
                .collect();
            msg.push("want", wants.join(","));
            msg.push("wantid", format!("{:x}", self.want_id));
        }
        msg.push("seen", self.wants_seen());
        msg.push("dt", format!("{:x}", self.s.deadtime.as_millis()));
        msg.push("protocol", "1");
        msg
    }

    /// `seen=`: the latest takeover request heard from each peer, `node:id` comma-separated.
    fn wants_seen(&self) -> String {
        let seen: Vec<String> = self
            .members
            .peers
            .iter()
            .filter_map(|(name, p)| Some(format!("{name}:{}", p.last_fields.get("wantid")?)))
            .collect();
        seen.join(",")
    }

    /// Whether every live hb-monitor peer has echoed this node's latest takeover request.
    /// Heartbeat peers and hb-monitor versions that do not echo are not waited for.
    fn want_acknowledged(&self) -> bool {
        self.members.peers.iter().all(|(name, p)| {
            if p.state != PeerState::Up || self.compat.is_heartbeat(name) {
                return true;
            }
            let Some(seen) = p.last_fields.get("seen") else {
                return true;
            };
            seen.split(',')
                .filter_map(|entry| entry.split_once(':'))
                .any(|(node, id)| {
                    node == self.s.node
                        && u64::from_str_radix(id, 16).is_ok_and(|id| id >= self.want_id)
                })
        })
    }

    /// `rsc=`: each group's word, comma-separated, in haresources order.
    fn rsc_word(&self) -> String {
        if self.groups.is_empty() {
            return Holding::None.word().to_string();
        }
        let words: Vec<&str> = self.groups.iter().map(|g| g.holding.word()).collect();
        words.join(",")
    }

    fn heartbeat(&mut self, now: Instant) {
        // Leaving, with nothing left here (a start-up clean-up still stopping what a killed
        // predecessor left is something): peers may take over at once.
        let gone = self
            .groups
            .iter()
            .all(|g| g.job.is_none() && !g.holding.occupies() && g.holding != Holding::Cleaning);
        let st = if self.exiting && gone {
            "dead"
        } else {
            "active"
        };
        // Heartbeat peers learn of a change in holding from a message of its own, sent
        // before the heartbeat that carries it for hb-monitor peers.
        let mine = self.holdings();
        self.compat.advertise(&mine);
        self.flush_compat();
        let msg = self.status_message(st, now);
        self.out.push(Action::Heartbeat { msg, last: false });
    }

    /// Queues what the Heartbeat side has to send.
    fn flush_compat(&mut self) {
        for (msg, sequenced) in std::mem::take(&mut self.compat.outbox) {
            if let (Some(t), Some(info)) = (msg.get("t"), msg.get("info").or(msg.get("rsc_hold")))
                && t != "NS_ackmsg"
            {
                self.out.push(Action::Log(
                    Level::Debug,
                    format!("to Heartbeat peers: t={t} {info}"),
                ));
            }
            self.out.push(Action::Send { msg, sequenced });
        }
    }

    /// Whether this node could take groups now (for a Heartbeat peer's hand-over).
    fn able_to_take(&self) -> bool {
        !self.exiting
            && self
                .groups
                .iter()
                .all(|g| g.holding == Holding::None && g.job.is_none() && !g.standby)
    }

    fn receive(&mut self, medium: &str, msg: &Message, arrived: Instant, now: Instant) {
        let src = msg.get("src").unwrap_or("").to_string();
        // Heartbeat's unsequenced control messages (acks, retransmission requests).
        if msg.get("t").is_some_and(|t| t.starts_with("NS_")) {
            if src != self.s.node
                && let Effect::Retransmit(seqs) = self.compat.control(&src, msg)
            {
                self.out.push(Action::Retransmit { to: src, seqs });
            }
            return;
        }
        let before = self.members.peers.get(&src).map(|p| (p.generation, p.seq));
        // A Heartbeat peer's message we asked for again (it was lost): older than the last
        // one, so membership would take it for a replay; it is of the current generation,
        // authenticated and awaited, and counts for the resource protocol.
        let hex = |f: &str| msg.get(f).and_then(|v| u64::from_str_radix(v, 16).ok());
        if let (Some((Some(g), _)), Some(hg), Some(seq)) = (before, hex("hg"), hex("seq"))
            && g == hg
            && self.compat.resent(&src, seq)
        {
            let able = self.able_to_take();
            let mine = self.holdings();
            self.compat.observe(&src, msg, seq, false, &mine, able);
            return;
        }
        match self.members.receive(msg, medium, arrived) {
            Ok(events) => {
                let after = self.members.peers.get(&src).map(|p| (p.generation, p.seq));
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
                    let mine = self.holdings();
                    self.compat.observe(&src, msg, seq, restarted, &mine, able);
                }
                self.report(events);
            }
            Err(Dropped::Own) => {}
            Err(why) => self.log(
                Level::Debug,
                format!("dropped a message on {medium}: {why:?}"),
            ),
        }
    }

    /// What peer `name` does with group `g`: from its heartbeats (hb-monitor) or its resource
    /// messages (Heartbeat 3).
    fn peer_holding(&self, name: &str, g: usize) -> Holding {
        let i_hold = matches!(self.groups[g].holding, Holding::Held | Holding::Stopping);
        if let Some(h) = self.compat.holding_of(name, g, i_hold) {
            return h;
        }
        let Some(peer) = self.members.peers.get(name) else {
            return Holding::None;
        };
        match peer.last_fields.get("rsc") {
            // A peer configured with fewer groups says nothing of this one: it may run it.
            Some(words) => words
                .split(',')
                .nth(g)
                .map_or(Holding::Starting, Holding::from_word),
            // Heard from, but not a heartbeat yet (a Heartbeat peer's first message may be
            // an acknowledgement or a resource message): it may hold the group.
            None if peer.state == PeerState::Up => Holding::Starting,
            None => Holding::None,
        }
    }

    fn peer_wants(&self, name: &str, g: usize) -> bool {
        self.members
            .peers
            .get(name)
            .and_then(|p| p.last_fields.get("want"))
            .is_some_and(|w| w.split(',').nth(g) == Some("yes"))
    }

    fn peer_views(&self, g: usize) -> Vec<PeerView<'_>> {
        self.members
            .peers
            .iter()
            .map(|(name, p)| {
                let mut holding = self.peer_holding(name, g);
                if self.s.mutation == Some(Mutation::FailbackDuringStop)
                    && holding == Holding::Stopping
                {
                    holding = Holding::None;
                }
                PeerView {
                    name,
                    // A live peer whose stop failed counts as gone for the decision:
                    // whoever would take the group fences it first.
                    alive: p.state == PeerState::Up && holding != Holding::Unclean,
                    unknown: p.state == PeerState::Unknown,
                    holding,
                    wants: self.peer_wants(name, g),
                }
            })
            .collect()
    }

    /// A live Heartbeat peer that could take group `g`: a voluntary hand-over to it goes
    /// through its three-message protocol, or it would never start the group.
    fn heartbeat_taker_alive(&self, g: usize) -> bool {
        self.members.peers.iter().any(|(name, p)| {
            p.state == PeerState::Up
                && self.compat.is_heartbeat(name)
                && matches!(self.peer_holding(name, g), Holding::None | Holding::Standby)
        })
    }

    /// The first node to fence before this one may take group `g`: a dead peer that did not
    /// hand it over cleanly, or a live one whose stop of it failed.
    fn node_to_fence(&self, g: usize) -> Option<String> {
        self.fence_needed
            .iter()
            .find(|(_, groups)| groups.contains(&g))
            .map(|(n, _)| n.clone())
            .or_else(|| {
                self.members
                    .peers
                    .iter()
                    .find(|(name, p)| {
                        p.state == PeerState::Up && self.peer_holding(name, g) == Holding::Unclean
                    })
                    .map(|(n, _)| n.clone())
            })
    }

    /// Acts on each group's decision; called after every input. A group with a job under
    /// way decides nothing until it ends.
    fn evaluate(&mut self, now: Instant) {
        for g in 0..self.groups.len() {
            if self.groups[g].job.is_none() {
                self.evaluate_group(g, now);
            }
        }
    }

    fn evaluate_group(&mut self, g: usize, now: Instant) {
        let group = &self.groups[g];
        let decision = if self.exiting {
            if group.holding == Holding::Held {
                Decision::Release
            } else {
                Decision::Wait
            }
        } else if group.standby && group.holding == Holding::Held {
            Decision::Release
        } else if group.want && group.holding == Holding::None && !self.want_acknowledged() {
            // A peer may have started the group before it heard of the want: hear from it
            // first (its echo comes with what it holds).
            Decision::Wait
        } else {
            let mut views = self.peer_views(g);
            let (verdict, note) = self.connectivity(g, &mut views, now);
            let decision = verdict.unwrap_or_else(|| {
                group::decide(
                    &self.s.node,
                    &group.spec.preferred,
                    group.holding,
                    group.want,
                    &views,
                    self.s.auto_failback,
                )
            });
            if note != self.groups[g].connectivity_note {
                if let Some(n) = &note {
                    self.log(Level::Warn, n.clone());
                }
                self.groups[g].connectivity_note = note;
            }
            decision
        };
        match decision {
            Decision::Acquire => self.acquire(g, now),
            Decision::Release => self.release(g, now),
            Decision::Wait => {
                let group = &self.groups[g];
                if group.holding == Holding::Held
                    && !self.exiting
                    && group.next_monitor.is_some_and(|t| now >= t)
                {
                    self.groups[g].next_monitor = None;
                    self.begin(g, JobKind::Monitor, 0);
                }
            }
        }
    }

    fn acquire(&mut self, g: usize, now: Instant) {
        if self.fencing.is_some() {
            return; // a fence runs: its outcome decides
        }
        if let Some(node) = self.node_to_fence(g)
            && !self.fence_first(node, g, now)
        {
            return;
        }
        self.groups[g].waiting_unfenced = None;
        let n = self.groups[g].spec.resources.len();
        let what = self.the(g);
        self.log(Level::Info, format!("taking {what} ({n} resources)"));
        self.groups[g].holding = Holding::Starting;
        self.begin(g, JobKind::Start, 0);
    }

    fn release(&mut self, g: usize, now: Instant) {
        if !self.exiting && self.heartbeat_taker_alive(g) {
            let expired = self.compat.giving_expired(now);
            let go = self.compat.may_release(now, true);
            if expired {
                self.log(
                    Level::Warn,
                    "no Heartbeat peer answered the hand-over within 10 s: the group stays here",
                );
                if self.groups[g].standby {
                    self.log(Level::Warn, "standby cancelled (as Heartbeat does)");
                    self.groups[g].standby = false;
                }
            }
            if !go {
                return;
            }
        }
        let what = self.the(g);
        self.log(Level::Info, format!("giving up {what}"));
        self.groups[g].holding = Holding::Stopping;
        self.begin(g, JobKind::Stop, 0);
    }

    /// Ping nodes (Heartbeat's ipfail): a node cut off from every peer and every ping node
    /// stops its groups and takes none; a holder that sees fewer ping nodes than an available
    /// peer hands the group over; a node does not take the group while an available peer
    /// sees more; available peers that see fewer than the best are left out of the choice.
    /// Returns a decision that overrides the usual rules, if any, and what to log.
    fn connectivity(
        &self,
        g: usize,
        views: &mut [PeerView<'_>],
        now: Instant,
    ) -> (Option<Decision>, Option<String>) {
        let Some(ping) = &self.ping else {
            return (None, None);
        };
        let holding = self.groups[g].holding;
        let mine = ping.count(now);
        let ping_of = |name: &str| -> u32 {
            self.members
                .peers
                .get(name)
                .and_then(|p| p.last_fields.get("ping"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let release_or_wait = if holding == Holding::Held {
            Decision::Release
        } else {
            Decision::Wait
        };
        if mine == 0 && !views.iter().any(|v| v.alive) {
            return (
                Some(release_or_wait),
                Some(format!(
                    "isolated: no peer and no ping node answers; this node stops {} and takes none",
                    if self.groups.len() == 1 {
                        "the group".to_string()
                    } else {
                        self.the(g)
                    }
                )),
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
                "{name} sees {theirs} ping nodes, this node {mine}: {} belongs there",
                if self.groups.len() == 1 {
                    "the group".to_string()
                } else {
                    self.the(g)
                }
            );
            return (Some(release_or_wait), Some(note));
        }
        for v in views.iter_mut() {
            if available(v) && ping_of(v.name) < mine {
                v.holding = Holding::Standby;
            }
        }
        (None, None)
    }

    /// Before taking group `g` from `node`: asks for the fence command (and returns false:
    /// the takeover waits for its outcome), or without one, proceeds (a dead peer that
    /// last said it held or was starting or stopping the group: Heartbeat's behaviour
    /// without STONITH, with a warning) or waits (a peer, live or dead, whose stop failed:
    /// nobody may start the group beside what may still run there).
    fn fence_first(&mut self, node: String, g: usize, now: Instant) -> bool {
        let dead = self.fence_needed.contains_key(&node);
        if dead && self.s.mutation == Some(Mutation::TakeoverWithoutFencing) {
            self.fence_needed.remove(&node);
            return true;
        }
        if !self.s.fencing {
            // A peer whose stop failed and whose daemon then left (st=dead after a failed
            // stop) or died is as unclean as a live one: it said so.
            if dead && self.peer_holding(&node, g) != Holding::Unclean {
                self.log(
                    Level::Warn,
                    format!(
                        "taking {} over from {node} without fencing: if {node} still runs (its daemon killed, its link cut) both nodes now run it",
                        self.the(g)
                    ),
                );
                // Only this group: another it left unclean stays down.
                if let Some(groups) = self.fence_needed.get_mut(&node) {
                    groups.remove(&g);
                    if groups.is_empty() {
                        self.fence_needed.remove(&node);
                    }
                }
                return true;
            }
            if self.groups[g].waiting_unfenced.as_deref() != Some(node.as_str()) {
                self.log(
                    Level::Error,
                    format!(
                        "{node} failed to stop the group and no fence_command is configured: the group stays down until an operator cleans {node} up"
                    ),
                );
                self.groups[g].waiting_unfenced = Some(node);
            }
            return false;
        }
        if self.next_fence_attempt.is_some_and(|t| now < t) {
            return false;
        }
        self.log(
            Level::Warn,
            format!(
                "fencing {node} before taking the group over ({})",
                if dead {
                    "it died without handing the group over"
                } else {
                    "its stop failed"
                }
            ),
        );
        self.next_fence_attempt = None;
        self.fencing = Some(node.clone());
        self.out.push(Action::Fence {
            node,
            timeout: self.s.fence_timeout,
        });
        false
    }

    fn fence_done(&mut self, node: String, result: Result<(), String>, now: Instant) {
        if self.fencing.as_deref() != Some(node.as_str()) {
            return;
        }
        self.fencing = None;
        match result {
            Ok(()) => {
                self.log(Level::Info, format!("{node} is fenced"));
                self.fence_needed.remove(&node);
                self.just_fenced = Some(node.clone());
                self.next_fence_attempt = None;
                if self.s.mutation != Some(Mutation::AcceptFencedPackets) {
                    self.members.mark_fenced(&node);
                }
                self.compat.peer_gone(&node);
            }
            Err(why) => {
                self.log(
                    Level::Error,
                    format!("fencing {node} failed ({why}): no takeover; trying again in 1 s"),
                );
                self.next_fence_attempt = Some(now + Duration::from_secs(1));
            }
        }
        self.changed = true;
    }

    /// Starts a job on group `g`: the operations of `kind` (`from`: the first resource a
    /// restart stops and starts again).
    fn begin(&mut self, g: usize, kind: JobKind, from: usize) {
        let n = self.groups[g].spec.resources.len();
        let stops = (from..n).rev().map(|i| (i, Op::Stop));
        let mut queue: VecDeque<(usize, Op)> = match kind {
            JobKind::Clean | JobKind::Stop | JobKind::Undo => stops.collect(),
            JobKind::Start => (0..n).map(|i| (i, Op::Start)).collect(),
            JobKind::Restart => stops.chain((from..n).map(|i| (i, Op::Start))).collect(),
            JobKind::Monitor => (0..n).map(|i| (i, Op::Monitor)).collect(),
        };
        let Some(first) = queue.pop_front() else {
            return;
        };
        self.groups[g].job = Some(Job {
            kind,
            running: first,
            queue,
            failed: None,
        });
        self.run(g, first);
        if kind != JobKind::Monitor {
            self.changed = true;
        }
    }

    fn run(&mut self, g: usize, (resource, op): (usize, Op)) {
        self.out.push(Action::Agent {
            group: g,
            resource,
            op,
            timeout: self.s.op_timeout,
        });
    }

    fn agent_done(
        &mut self,
        g: usize,
        resource: usize,
        op: Op,
        result: Result<(), String>,
        now: Instant,
    ) {
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        let Some(job) = group.job.as_mut() else {
            return;
        };
        if job.running != (resource, op) {
            return; // not what runs: a stale report
        }
        if let Some(last) = group.last_ops.get_mut(resource) {
            *last = Some(LastOp {
                op,
                result: result.clone(),
                at: now,
            });
        }
        let failure = result
            .err()
            .map(|why| format!("{} {}: {why}", group.spec.resources[resource], op.word()));
        let outcome = match (job.kind, failure) {
            (JobKind::Monitor, Some(why)) => Some(Outcome::Monitored(Some((resource, why)))),
            (JobKind::Undo, Some(why)) => {
                let failed = job.failed.take().unwrap_or_default();
                Some(Outcome::StopFailed(format!("{failed}; then {why}")))
            }
            (_, Some(why)) if op == Op::Start => {
                // Undo everything, right to left, including the failed one (stop of a
                // stopped resource is 0): the peers get a clean group.
                let n = group.spec.resources.len();
                job.kind = JobKind::Undo;
                job.failed = Some(why);
                job.queue = (0..n).rev().map(|i| (i, Op::Stop)).collect();
                None
            }
            (_, Some(why)) => Some(Outcome::StopFailed(why)),
            (kind, None) => {
                if job.queue.is_empty() {
                    Some(match kind {
                        JobKind::Start | JobKind::Restart => Outcome::Started,
                        JobKind::Undo => {
                            Outcome::StartFailed(job.failed.take().unwrap_or_default())
                        }
                        JobKind::Clean | JobKind::Stop => Outcome::Stopped,
                        JobKind::Monitor => Outcome::Monitored(None),
                    })
                } else {
                    None
                }
            }
        };
        match outcome {
            None => {
                let next = job.queue.pop_front();
                match next {
                    Some(next) => {
                        job.running = next;
                        self.run(g, next);
                    }
                    None => {
                        // An undo with nothing to stop (cannot happen: it stops everything).
                        group.job = None;
                    }
                }
            }
            Some(outcome) => {
                let kind = job.kind;
                group.job = None;
                self.job_done(g, kind, outcome, now);
            }
        }
    }

    fn job_done(&mut self, g: usize, kind: JobKind, outcome: Outcome, now: Instant) {
        let interval = self.s.monitor_interval;
        let monitor_from_now = (!interval.is_zero()).then(|| now + interval);
        let subject = self.subject(g);
        let several = self.groups.len() > 1;
        let group = &mut self.groups[g];
        let after_stop = if group.giving_up {
            Holding::Failed
        } else if group.standby {
            Holding::Standby
        } else {
            Holding::None
        };
        let mut log = None;
        match outcome {
            Outcome::Started => {
                self.compat.started();
                log = Some((Level::Info, format!("{subject} started")));
                group.want = false;
                group.last_error = None;
                group.next_monitor = monitor_from_now;
                group.holding = Holding::Held;
            }
            Outcome::StartFailed(why) => {
                self.compat.started();
                log = Some((
                    Level::Error,
                    format!(
                        "{subject} failed to start ({why}); stopped it again, leaving it to the peers"
                    ),
                ));
                group.last_error = Some(why);
                group.want = false;
                group.holding = Holding::Failed;
            }
            Outcome::Stopped if kind == JobKind::Clean => {
                let what = if !several {
                    "the group".to_string()
                } else {
                    format!("group {}", group.spec.name)
                };
                log = Some((
                    Level::Info,
                    format!("start-up clean-up done: nothing of {what} runs here"),
                ));
                group.holding = after_stop;
            }
            Outcome::Stopped => {
                self.compat.stopped();
                log = Some((Level::Info, format!("{subject} stopped")));
                group.giving_up = false;
                group.holding = after_stop;
            }
            Outcome::StopFailed(why) => {
                let what = if self.s.fencing {
                    "the peers fence this node before taking the group"
                } else {
                    "no fence_command: the group stays down until an operator cleans this node up"
                };
                log = Some((
                    Level::Error,
                    format!(
                        "{subject} failed to stop ({why}): its state on this node is unknown; {what}"
                    ),
                ));
                group.last_error = Some(why);
                group.giving_up = false;
                group.holding = Holding::Unclean;
            }
            Outcome::Monitored(None) => group.next_monitor = monitor_from_now,
            Outcome::Monitored(Some((index, why))) => self.recover(g, index, why, now),
        }
        if let Some((level, line)) = log {
            self.log(level, line);
        }
        self.changed = true;
    }

    /// A resource of group `g` failed its monitor: restart it (and what depends on it) in
    /// place while the restart limit allows, else give the group up so that a peer takes it.
    fn recover(&mut self, g: usize, index: usize, why: String, now: Instant) {
        let (limit, window) = self.s.restart_limit;
        let group = &mut self.groups[g];
        while group
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            group.restarts.pop_front();
        }
        group.last_error = Some(why.clone());
        if (group.restarts.len() as u32) < limit {
            group.restarts.push_back(now);
            let count = group.restarts.len();
            self.log(
                Level::Error,
                format!(
                    "monitor failed: {why}; restarting it and what follows it here ({count} of {limit} within {} s)",
                    window.as_secs()
                ),
            );
            self.begin(g, JobKind::Restart, index);
        } else {
            self.log(
                Level::Error,
                format!(
                    "monitor failed: {why}; {limit} restarts within {} s already: giving {} up to the peers",
                    window.as_secs(),
                    if self.groups.len() == 1 { "the group".to_string() } else { self.the(g) }
                ),
            );
            let group = &mut self.groups[g];
            group.giving_up = true;
            group.holding = Holding::Stopping;
            self.begin(g, JobKind::Stop, 0);
        }
    }

    fn report(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::PeerUp(p) => {
                    self.log(Level::Info, format!("node {p} is up"));
                    self.fence_needed.remove(&p);
                }
                Event::PeerRestarted(p) => {
                    // A restarted daemon cleans up before it takes part (start-up clean-up).
                    self.log(Level::Info, format!("node {p} restarted (new generation)"));
                    self.fence_needed.remove(&p);
                }
                Event::PeerDead(p) => {
                    let orderly = self
                        .members
                        .peers
                        .get(&p)
                        .is_some_and(|peer| peer.status == "dead");
                    let never_heard = self
                        .members
                        .peers
                        .get(&p)
                        .is_some_and(|peer| peer.last_heard.is_none());
                    if never_heard && !self.groups.is_empty() {
                        // Silent since this daemon started: it may run any group (its daemon
                        // killed, this one restarted meanwhile), and nobody here knows.
                        // Pacemaker's startup-fencing: fence it before taking any.
                        self.log(
                            Level::Warn,
                            format!(
                                "node {p} was not heard from within initdead: it may run any group; {}",
                                if self.s.fencing {
                                    "it is fenced before any takeover"
                                } else {
                                    "without a fence_command it may still run one"
                                }
                            ),
                        );
                        self.fence_needed
                            .insert(p, (0..self.groups.len()).collect());
                        continue;
                    }
                    let mut unclean_groups = BTreeSet::new();
                    let mut words = vec![];
                    for g in 0..self.groups.len() {
                        let holding = self.peer_holding(&p, g);
                        let may_run = holding.occupies() || holding == Holding::Cleaning;
                        if may_run && !(orderly && holding != Holding::Unclean) {
                            unclean_groups.insert(g);
                            words.push(if self.groups.len() == 1 {
                                holding.word().to_string()
                            } else {
                                format!("{} {}", self.groups[g].spec.name, holding.word())
                            });
                        }
                    }
                    if self.s.fencing && !orderly {
                        // Cut off rather than gone, it may have taken any group since it was
                        // last heard (it sees this node dead too): Pacemaker fences every
                        // lost node, and so does the node that takes a group next.
                        let what = if words.is_empty() {
                            String::new()
                        } else if self.groups.len() == 1 {
                            format!(" while it advertised the group as {}", words.join(", "))
                        } else {
                            format!(" while it advertised groups as {}", words.join(", "))
                        };
                        self.log(
                            Level::Warn,
                            format!("node {p} is dead{what}: it is fenced before any takeover"),
                        );
                        self.fence_needed
                            .insert(p, (0..self.groups.len()).collect());
                    } else if unclean_groups.is_empty() {
                        self.log(Level::Warn, format!("node {p} is dead"));
                    } else {
                        let what = if self.groups.len() == 1 {
                            format!("the group as {}", words.join(", "))
                        } else {
                            format!("groups as {}", words.join(", "))
                        };
                        self.log(
                            Level::Warn,
                            format!(
                                "node {p} is dead while it advertised {what}: {}",
                                if self.s.fencing {
                                    "it is fenced before any takeover"
                                } else {
                                    "without a fence_command it may still run it"
                                }
                            ),
                        );
                        self.fence_needed.insert(p, unclean_groups);
                    }
                }
                Event::Late(p, gap) => self.log(
                    Level::Warn,
                    format!("late heartbeat from {p}: {} ms", gap.as_millis()),
                ),
                Event::MediumDown(p, m) => {
                    self.log(Level::Warn, format!("no heartbeats from {p} on {m}"))
                }
                Event::MediumUp(p, m) => {
                    self.log(Level::Info, format!("heartbeats from {p} on {m} again"))
                }
            }
        }
    }

    /// See [`Input::Paused`]: without the excuse, the first tick after a stall of the whole
    /// machine (a VM's vCPUs descheduled by the host for up to 100 ms under disk load) would
    /// declare dead every peer that has not sent again yet: a false failover.
    fn paused(&mut self, pause: Duration, now: Instant, while_running: bool) {
        self.members.excuse(pause, now);
        if let Some(ping) = self.ping.as_mut() {
            ping.excuse(pause, now);
        }
        self.pauses += 1;
        self.longest_pause = self.longest_pause.max(pause);
        // Pauses of a few keepalives are common on a loaded machine; the log says those a
        // peer would call late.
        if pause >= self.s.warntime {
            let ms = pause.as_millis();
            let what = if while_running {
                format!("a pass of the loop took {ms} ms (the machine stalled, or the loop waited)")
            } else {
                format!("this node did not run for {ms} ms (the machine stalled)")
            };
            self.log(
                Level::Warn,
                format!("{what}: the peers' silence over that time is not held against them"),
            );
        }
    }

    fn in_scope(&self, g: usize, scope: Scope) -> bool {
        let mine = self.groups[g].spec.preferred == self.s.node;
        match scope {
            Scope::All => true,
            Scope::Local => mine,
            Scope::Foreign => !mine,
            Scope::Group(i) => i == g,
        }
    }

    fn request(&mut self, request: Request) {
        let (word, scope) = match request {
            Request::Standby(scope) => ("standby", scope),
            Request::Takeover(scope) => ("takeover", scope),
        };
        let chosen: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.in_scope(g, scope))
            .collect();
        let names: Vec<String> = chosen
            .iter()
            .map(|&g| self.groups[g].spec.name.clone())
            .collect();
        self.log(
            Level::Info,
            if self.groups.len() == 1 && scope == Scope::All {
                format!("{word} requested")
            } else {
                format!(
                    "{word} requested for {}",
                    if names.is_empty() {
                        "no group".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            },
        );
        for g in chosen {
            let group = &mut self.groups[g];
            match request {
                Request::Standby(_) => {
                    group.standby = true;
                    group.want = false;
                    if matches!(group.holding, Holding::None | Holding::Failed) {
                        group.holding = Holding::Standby;
                    }
                }
                Request::Takeover(_) => {
                    group.standby = false;
                    // On a node whose stop failed (unclean), the operator's takeover says
                    // it has been cleaned up.
                    if matches!(
                        group.holding,
                        Holding::Standby | Holding::Failed | Holding::Unclean
                    ) {
                        group.holding = Holding::None;
                    }
                    group.want = group.holding != Holding::Held;
                }
            }
        }
        if matches!(request, Request::Takeover(_)) {
            self.want_id += 1;
        }
        self.changed = true;
        self.out.push(Action::Reply(
            serde_json::json!({ "ok": word, "groups": names }).to_string(),
        ));
    }

    fn terminate(&mut self) {
        if self.exiting {
            return;
        }
        self.exiting = true;
        for g in &mut self.groups {
            g.want = false;
        }
        self.compat.shutting_down();
    }

    /// Status as JSON: the peers, the groups, the counters of what membership refused.
    pub fn status(&self, now: Instant) -> serde_json::Value {
        let ms =
            |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_millis() as u64);
        let peers: Vec<serde_json::Value> = self
            .members
            .peers
            .iter()
            .map(|(name, p)| {
                let holdings: Vec<&str> = (0..self.groups.len())
                    .map(|g| self.peer_holding(name, g).word())
                    .collect();
                serde_json::json!({
                    "name": name,
                    "state": match p.state {
                        PeerState::Unknown => "unknown",
                        PeerState::Up => "up",
                        PeerState::Dead => "dead",
                    },
                    "status": p.status,
                    "kind": if self.compat.is_heartbeat(name) { "heartbeat" } else if p.state == PeerState::Unknown { "unknown" } else { "hb-monitor" },
                    "holding": holdings.join(","),
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
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let holder = if group.holding.occupies() {
                    Some(self.s.node.clone())
                } else {
                    self.members
                        .peers
                        .keys()
                        .find(|name| self.peer_holding(name, g).occupies() && self.peer_up(name))
                        .cloned()
                };
                serde_json::json!({
                    "name": group.spec.name,
                    "preferred": group.spec.preferred,
                    "holder": holder,
                    "holding": group.holding.word(),
                    "job": group.job.as_ref().map(|j| format!("{:?}", j.kind).to_lowercase()),
                    "want": group.want,
                    "standby": group.standby,
                    "resources": group.spec.resources.iter().zip(&group.last_ops).map(|(r, last)| serde_json::json!({
                        "name": r,
                        "last_op": last.as_ref().map(|l| l.op.word()),
                        "last_result": last.as_ref().map(|l| match &l.result { Ok(()) => "ok".to_string(), Err(e) => e.clone() }),
                        "last_op_ms_ago": last.as_ref().map(|l| now.saturating_duration_since(l.at).as_millis() as u64),
                    })).collect::<Vec<_>>(),
                    "last_error": group.last_error,
                    "restarts_in_window": group.restarts.len(),
                })
            })
            .collect();
        serde_json::json!({
            "node": self.s.node,
            "generation": self.s.generation,
            "uptime_ms": now.saturating_duration_since(self.started).as_millis() as u64,
            "keepalive_ms": self.s.keepalive.as_millis() as u64,
            "deadtime_ms": self.s.deadtime.as_millis() as u64,
            "peers": peers,
            "dropped": {
                "replayed": c.replayed,
                "unknown_node": c.unknown_node,
                "incomplete": c.incomplete,
            },
            "accepted": c.accepted,
            "pauses": {
                "count": self.pauses,
                "longest_ms": self.longest_pause.as_millis() as u64,
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
            "groups": groups,
            "to_fence": self.fence_needed.keys().collect::<Vec<_>>(),
            "fencing": self.s.fencing,
            "fence_running": self.fencing,
        })
    }
}

#[cfg(test)]
mod tests;
