//! What goes into the controller and what comes out of it: its settings, the inputs
//! [`Node::step`](super::Node::step) takes and the actions it returns.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::Level;

use super::super::config::{AutoFailback, Config};
use super::super::proto::Message;

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
        from: IpAddr,
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
    /// A transition an operator wants to hear of (`notify_command`).
    Notify(Notice),
    /// The answer to a request (JSON).
    Reply(String),
    /// Everything is given up: exit.
    Exit,
}

/// A transition an operator wants to hear of: what `notify_command` is run with. Each has a
/// word (its first argument, `HB_EVENT`) and subjects (the arguments after it, and `HB_*`
/// variables by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A peer is dead.
    PeerDead {
        /// The peer.
        peer: String,
    },
    /// A peer is up (its first heartbeat, or heartbeats again after it was dead).
    PeerUp {
        /// The peer.
        peer: String,
    },
    /// A medium of a peer went silent.
    MediumDown {
        /// The peer.
        peer: String,
        /// The medium.
        medium: String,
    },
    /// A medium of a peer works again.
    MediumUp {
        /// The peer.
        peer: String,
        /// The medium.
        medium: String,
    },
    /// A group started here.
    GroupAcquired {
        /// The group's name.
        group: String,
    },
    /// A group stopped here (handed over, standby, shutdown).
    GroupReleased {
        /// The group's name.
        group: String,
    },
    /// A group failed here: a start that failed, a stop that failed, or local recovery that
    /// gave up.
    GroupFailed {
        /// The group's name.
        group: String,
        /// Why.
        reason: String,
    },
    /// The fence command runs against a peer.
    FenceStarted {
        /// The peer.
        peer: String,
    },
    /// A peer is fenced.
    FenceSucceeded {
        /// The peer.
        peer: String,
    },
    /// The fence command failed.
    FenceFailed {
        /// The peer.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A resource failed its monitor and is restarted here (with what follows it).
    LocalRestart {
        /// The group's name.
        group: String,
        /// Why.
        reason: String,
    },
}

impl Notice {
    /// The event's name: notify_command's first argument and `HB_EVENT`.
    pub fn word(&self) -> &'static str {
        match self {
            Notice::PeerDead { .. } => "peer-dead",
            Notice::PeerUp { .. } => "peer-up",
            Notice::MediumDown { .. } => "medium-down",
            Notice::MediumUp { .. } => "medium-up",
            Notice::GroupAcquired { .. } => "group-acquired",
            Notice::GroupReleased { .. } => "group-released",
            Notice::GroupFailed { .. } => "group-failed",
            Notice::FenceStarted { .. } => "fence-started",
            Notice::FenceSucceeded { .. } => "fence-succeeded",
            Notice::FenceFailed { .. } => "fence-failed",
            Notice::LocalRestart { .. } => "local-restart",
        }
    }

    /// What it is about, in argument order, each with its `HB_*` variable's name.
    pub fn subjects(&self) -> Vec<(&'static str, &str)> {
        match self {
            Notice::PeerDead { peer }
            | Notice::PeerUp { peer }
            | Notice::FenceStarted { peer }
            | Notice::FenceSucceeded { peer } => vec![("HB_PEER", peer)],
            Notice::MediumDown { peer, medium } | Notice::MediumUp { peer, medium } => {
                vec![("HB_PEER", peer), ("HB_MEDIUM", medium)]
            }
            Notice::GroupAcquired { group } | Notice::GroupReleased { group } => {
                vec![("HB_GROUP", group)]
            }
            Notice::GroupFailed { group, reason } | Notice::LocalRestart { group, reason } => {
                vec![("HB_GROUP", group), ("HB_REASON", reason)]
            }
            Notice::FenceFailed { peer, reason } => {
                vec![("HB_PEER", peer), ("HB_REASON", reason)]
            }
        }
    }
}
