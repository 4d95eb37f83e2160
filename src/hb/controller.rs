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
//!
//! The code is split by concern: `interface` holds the types that cross the boundary
//! (inputs, actions, settings), `jobs` runs a group's agent operations, `peers` turns
//! heartbeats and membership changes into decisions, `fencing` decides who is fenced and when,
//! `operator` answers standby/takeover requests, and `status` renders the published status.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use log::Level;

use super::compat::{Compat, Effect};
use super::config::AutoFailback;
use super::group::{self, Decision, Holding, PeerView};
use super::membership::{Dropped, Event, Membership, PeerState};
use super::ping::PingTable;
use super::proto::Message;

mod fencing;
mod interface;
mod jobs;
mod operator;
mod peers;
mod status;

pub use interface::{Action, GroupSpec, Input, Mutation, Notice, Op, Request, Scope, Settings};
use jobs::{Job, JobKind, LastOp};

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
    /// The peer that died with the group, or failed to stop it: the next start here is a
    /// failover.
    taking_over_from: Option<String>,
    /// Failovers to this node (status and metrics).
    failovers: u64,
    /// Local restarts since the daemon started (the window's count is `restarts`).
    restarts_total: u64,
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
    /// The time of the input being stepped (an operation's start, for its duration).
    now: Instant,
    /// Fence commands run, by node: (succeeded, failed).
    fences: BTreeMap<String, (u64, u64)>,
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
                taking_over_from: None,
                failovers: 0,
                restarts_total: 0,
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
            now,
            fences: BTreeMap::new(),
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
        self.now = now;
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

    /// The peers, in the order [`Node::last_accepted`] reports them.
    pub fn peer_names(&self) -> impl Iterator<Item = &str> {
        self.members.peers.keys().map(String::as_str)
    }

    /// Per peer (in [`Node::peer_names`] order), the generation and sequence of the last
    /// message accepted from it in this run, for the shell to keep across a restart.
    pub fn last_accepted(&self) -> impl Iterator<Item = Option<(u64, u64)>> + '_ {
        self.members.peers.values().map(|p| p.generation.zip(p.seq))
    }

    /// What an earlier run of this daemon last accepted from `peer`: nothing at or below it
    /// is taken as new. Set before [`Input::Start`].
    pub fn set_replay_floor(&mut self, peer: &str, generation: u64, seq: u64) {
        self.members.set_replay_floor(peer, generation, seq);
    }

    /// Whether the controller has exited.
    pub fn exited(&self) -> bool {
        self.exited
    }

    fn log(&mut self, level: Level, message: impl Into<String>) {
        self.out.push(Action::Log(level, message.into()));
    }

    fn notify(&mut self, notice: Notice) {
        self.out.push(Action::Notify(notice));
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
        // No death while a backlog is read: a heartbeat queued before a pause of this node
        // is stamped with its arrival, and the pause is excused only once the backlog is
        // in (the loop reads the media, then excuses, then ticks). Judged after each old
        // message, a peer whose newer heartbeats are still queued behind it would die
        // falsely. The loop's tick ends the catching up in the same pass.
        if !self.catching_up {
            let events = self.members.tick(now);
            self.report(events);
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
        if let Some(node) = self.node_to_fence(g) {
            if self.peer_up(&node) {
                // Alive but unclean (its stop failed): taking the group from it is a failover.
                self.groups[g].taking_over_from = Some(node.clone());
            }
            if !self.fence_first(node, g, now) {
                return;
            }
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
}

#[cfg(test)]
mod tests;
