//! The simulated cluster: machines running hb-monitor's controller, their resources, the
//! network between them, the fence device, and the faults of one seed.
//!
//! Time is a `Duration` since the start of the run; a controller sees it as `base + t`.
//! Nothing here reads a clock or draws a number except through the seed's [`Rng`]s.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use ferroha::hb::config::AutoFailback;
use ferroha::hb::controller::{Action, GroupSpec, Input, Mutation, Node, Op, Request, Settings};
use ferroha::hb::group::Holding;
use ferroha::hb::proto::Message;
use ferroha::hb::state::next_generation_value;

use crate::rng::Rng;

/// The cluster one seed builds: its size, groups and timings.
#[derive(Debug, Clone)]
pub struct Profile {
    pub nodes: usize,
    pub groups: Vec<GroupSpec>,
    pub keepalive: Duration,
    pub deadtime: Duration,
    pub initdead: Duration,
    pub auto_failback: AutoFailback,
    pub fencing: bool,
    pub fence_timeout: Duration,
    pub monitor_interval: Duration,
    pub restart_limit: (u32, Duration),
    pub op_timeout: Duration,
    pub media: usize,
    /// Loss on every link, always.
    pub base_loss: f64,
    /// How long faults are injected; then everything heals.
    pub fault_phase: Duration,
    pub mutation: Option<Mutation>,
}

impl Profile {
    pub fn draw(rng: &mut Rng, mutation: Option<Mutation>) -> Profile {
        let nodes = *rng.pick(&[2, 2, 2, 3, 3, 4]);
        let n_groups = rng.between(1, nodes.min(3) as u64) as usize;
        let kinds = [
            "drbd::r0",
            "Filesystem::/dev/drbd0::/srv::ext4",
            "mysql",
            "IPaddr2::",
        ];
        let groups = (0..n_groups)
            .map(|g| {
                let n = rng.between(1, 3) as usize;
                let resources: Vec<String> = (0..n)
                    .map(|r| {
                        if r == n - 1 {
                            format!("IPaddr2::198.18.1.{}/24/eth0", 100 + g)
                        } else {
                            format!("{}{}", kinds[r], g)
                        }
                    })
                    .collect();
                GroupSpec {
                    name: resources[0].clone(),
                    preferred: format!("n{}", g % nodes + 1),
                    resources,
                }
            })
            .collect();
        let keepalive = Duration::from_millis(*rng.pick(&[20, 50, 100, 200]));
        let deadtime = keepalive * rng.between(4, 10) as u32;
        Profile {
            nodes,
            groups,
            keepalive,
            deadtime,
            initdead: deadtime * 2,
            auto_failback: *rng.pick(&[AutoFailback::On, AutoFailback::Off, AutoFailback::Legacy]),
            // The deliberately broken controllers are checked against the invariants that
            // hold only with fencing.
            fencing: mutation.is_some() || rng.chance(0.85),
            fence_timeout: rng.millis(1000, 2000),
            monitor_interval: *rng.pick(&[
                Duration::ZERO,
                Duration::from_millis(300),
                Duration::from_millis(1000),
            ]),
            restart_limit: (rng.between(0, 3) as u32, Duration::from_secs(10)),
            op_timeout: rng.millis(500, 2000),
            media: rng.between(1, 2) as usize,
            base_loss: *rng.pick(&[0.0, 0.001, 0.01, 0.05]),
            fault_phase: Duration::from_secs(rng.between(15, 30)),
            mutation,
        }
    }

    fn name(&self, m: usize) -> String {
        format!("n{}", m + 1)
    }

    fn settings(&self, m: usize, generation: u64) -> Settings {
        Settings {
            node: self.name(m),
            nodes: (0..self.nodes).map(|i| self.name(i)).collect(),
            keepalive: self.keepalive,
            deadtime: self.deadtime,
            warntime: self.deadtime / 2,
            initdead: self.initdead,
            auto_failback: self.auto_failback,
            fencing: self.fencing,
            fence_timeout: self.fence_timeout,
            monitor_interval: self.monitor_interval,
            restart_limit: self.restart_limit,
            op_timeout: self.op_timeout,
            generation,
            groups: self.groups.clone(),
            mutation: self.mutation,
        }
    }

    /// How long after the faults stop every group must run on exactly one eligible node:
    /// whatever was under way when they stopped ends (an operation or a fence hanging to its
    /// limit, a fence retry, a reboot), then a death is seen (deadtime, initdead after a
    /// start), the dead node is fenced and the group stopped and started in order.
    pub fn settle_bound(&self) -> Duration {
        let resources = self
            .groups
            .iter()
            .map(|g| g.resources.len())
            .max()
            .unwrap_or(0) as u32;
        let max_op = Duration::from_millis(300);
        self.op_timeout.max(self.fence_timeout)
            + Duration::from_secs(1) // fence retry
            + MAX_REBOOT
            + self.initdead
            + self.deadtime
            + MAX_FENCE
            + (max_op * 2 * resources) * self.groups.len() as u32
            + self.keepalive * 10
    }
}

const MAX_REBOOT: Duration = Duration::from_secs(5);
const MAX_FENCE: Duration = Duration::from_millis(100);

/// One fault of the schedule.
#[derive(Debug, Clone)]
pub enum Fault {
    /// kill -9 of the daemon: resources stay; systemd starts it again.
    KillDaemon(usize),
    /// An orderly restart of the daemon (SIGTERM, then start).
    RestartDaemon(usize),
    /// Power loss: everything stops; the machine boots again (state dir kept).
    PowerLoss(usize),
    /// The nodes marked true cannot reach the others, or back, until `until`.
    Partition { side: Vec<bool>, until: Duration },
    /// One direction of one link loses (or delays by `delay`) what is sent until `until`.
    LinkTrouble {
        from: usize,
        to: usize,
        loss: f64,
        delay: Duration,
        until: Duration,
    },
    /// A running resource dies on its own (the monitor's business).
    ResourceDies {
        node: usize,
        group: usize,
        resource: usize,
    },
    /// The node's agents fail and hang at random until `until`.
    AgentTrouble { node: usize, until: Duration },
    /// The fence device fails and hangs at random until `until`.
    FenceTrouble { until: Duration },
    /// An operator's `standby`/`takeover` request.
    Request { node: usize, text: String },
    /// The wall clock is stepped (by NTP or an operator): only the generation sees it.
    WallStep { node: usize, secs: i64 },
    /// The whole machine freezes (a VM descheduled) for a while.
    Freeze { node: usize, pause: Duration },
}

/// A fault and when it strikes.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub at: Duration,
    pub fault: Fault,
}

/// The faults of one seed.
pub fn draw_faults(rng: &mut Rng, p: &Profile) -> Vec<Scheduled> {
    let n = p.nodes as u64;
    let count = p.fault_phase.as_secs() * rng.between(3, 8) / 10;
    let start = p.initdead.as_millis() as u64;
    let end = p.fault_phase.as_millis() as u64;
    let mut faults: Vec<Scheduled> = (0..count)
        .map(|_| {
            let at = rng.millis(start, end);
            let node = rng.below(n) as usize;
            let other = (node + 1 + rng.below(n - 1) as usize) % p.nodes;
            let dead_ms = p.deadtime.as_millis() as u64;
            let fault = match rng.below(100) {
                0..12 => Fault::KillDaemon(node),
                12..18 => Fault::RestartDaemon(node),
                18..26 => Fault::PowerLoss(node),
                26..38 => {
                    let mut side: Vec<bool> = (0..p.nodes).map(|_| rng.chance(0.5)).collect();
                    side[node] = true;
                    side[other] = false;
                    Fault::Partition {
                        side,
                        until: at + rng.millis(dead_ms / 2, dead_ms * 8),
                    }
                }
                38..44 => Fault::LinkTrouble {
                    from: node,
                    to: other,
                    loss: *rng.pick(&[0.3, 0.7, 1.0]),
                    delay: Duration::ZERO,
                    until: at + rng.millis(dead_ms, dead_ms * 6),
                },
                // A link's buffer stalls: what is sent for a while arrives late, after what
                // is sent once it flows again. Long enough that the receiver declares the
                // sender dead and fences it while those heartbeats are still on the way.
                // (A link that keeps delivering everything more than deadtime late is out
                // of reach of any heartbeat protocol: what a node hears is taken as at most
                // deadtime old.)
                44..50 => {
                    let stall = rng.millis(dead_ms, dead_ms * 2);
                    Fault::LinkTrouble {
                        from: node,
                        to: other,
                        loss: 0.0,
                        delay: stall + rng.millis(200, dead_ms * 3),
                        until: at + stall,
                    }
                }
                // Without monitoring nothing notices a resource that dies (Heartbeat 1's
                // way): not a fault the controller can answer.
                50..60 if !p.monitor_interval.is_zero() => {
                    let group = rng.below(p.groups.len() as u64) as usize;
                    Fault::ResourceDies {
                        node,
                        group,
                        resource: rng.below(p.groups[group].resources.len() as u64) as usize,
                    }
                }
                50..68 => Fault::AgentTrouble {
                    node,
                    until: at + rng.millis(100, 3000),
                },
                68..74 => Fault::FenceTrouble {
                    until: at + rng.millis(500, 4000),
                },
                74..88 => {
                    let verb = *rng.pick(&["standby", "takeover"]);
                    let group = rng.below(p.groups.len() as u64) as usize;
                    let scope = match rng.below(5) {
                        0 => String::new(),
                        1 => " all".into(),
                        2 => " local".into(),
                        3 => " foreign".into(),
                        _ => format!(" {}", p.groups[group].name),
                    };
                    Fault::Request {
                        node,
                        text: format!("{verb}{scope}"),
                    }
                }
                88..92 => Fault::WallStep {
                    node,
                    secs: rng.between(0, 2_000_000) as i64 - 1_000_000,
                },
                _ => Fault::Freeze {
                    node,
                    pause: rng.millis(20, dead_ms * 3),
                },
            };
            Scheduled { at, fault }
        })
        .collect();
    faults.sort_by_key(|f| f.at);
    faults
}

/// Something that happens at a time.
#[derive(Debug, Clone)]
enum Ev {
    Fault(usize),
    /// Power on if off, and start the daemon if it is not running.
    Boot(usize),
    /// A frozen machine runs again.
    Thaw(usize),
    Wake {
        m: usize,
        inc: u64,
    },
    Deliver {
        to: usize,
        from: usize,
        /// The sender's daemon incarnation.
        origin: u64,
        /// When it left, and the receiver's daemon incarnation then.
        sent: (Duration, u64),
        medium: usize,
        msg: Message,
    },
    AgentDone {
        m: usize,
        inc: u64,
        g: usize,
        r: usize,
        op: Op,
        outcome: Outcome,
    },
    FenceDone {
        m: usize,
        inc: u64,
        target: usize,
        outcome: Outcome,
    },
    /// The fault phase ends: links heal, troubles end, every machine boots.
    Heal,
    /// Every group must be settled now; from here on nothing may move.
    Check,
    End,
}

/// A resource as its daemon's operations left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Running,
    Stopped,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Fail,
    Hang,
}

struct Queued {
    at: Duration,
    order: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the earliest first.
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

struct Daemon {
    node: Node,
    inc: u64,
    wake: Option<Duration>,
    /// Groups with an operation under way.
    busy: Vec<bool>,
    /// What the daemon's operations told it of each resource, by group (the order rules are
    /// about what it knew: a resource that died unseen is the monitor's business).
    known: Vec<Vec<Known>>,
    seq: u64,
}

struct Machine {
    name: String,
    powered: bool,
    daemon: Option<Daemon>,
    incarnations: u64,
    /// What really runs: per group, per resource. A start counts from the moment it is
    /// asked for (it may have done part of its work when it fails), a stop until it is done.
    running: Vec<Vec<bool>>,
    stored_generation: u64,
    wall_offset: i64,
    agent_trouble_until: Duration,
    frozen_until: Duration,
    frozen_since: Duration,
    /// What arrived for the daemon while the machine was frozen.
    deferred: Vec<(Duration, Ev)>,
    steps_at_now: (Duration, u32),
}

/// A broken rule, with when it was seen.
#[derive(Debug, Clone)]
pub struct Violation {
    pub at: Duration,
    pub rule: &'static str,
    pub detail: String,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub steps: u64,
    pub violation: Option<Violation>,
    pub trace: Vec<String>,
}

/// A fence one node completed, for the stale-packet rule.
struct FenceRecord {
    fencer: usize,
    target: usize,
    /// The target's newest incarnation the fencer had heard from when the fence completed.
    heard: u64,
}

pub struct World {
    p: Profile,
    faults: Vec<Scheduled>,
    base: Instant,
    now: Duration,
    queue: BinaryHeap<Queued>,
    order: u64,
    net: Rng,
    chance: Rng,
    machines: Vec<Machine>,
    partitions: Vec<(Vec<bool>, Duration)>,
    link_trouble: Vec<(usize, usize, f64, Duration, Duration)>,
    fence_trouble_until: Duration,
    healed: bool,
    checking: bool,
    takeover_requested: bool,
    /// Newest sender incarnation delivered to the receiver's current daemon, by receiver and
    /// sender.
    heard: Vec<Vec<u64>>,
    fences: Vec<FenceRecord>,
    tracing: bool,
    report: Report,
}

impl World {
    pub fn new(seed: u64, p: Profile, faults: Vec<Scheduled>, tracing: bool) -> World {
        let mut root = Rng::new(seed);
        // Streams of their own: dropping a fault (when minimizing) changes nothing else.
        let _schedule = root.fork();
        let net = root.fork();
        let chance = root.fork();
        let groups = &p.groups;
        let machines = (0..p.nodes)
            .map(|m| Machine {
                name: p.name(m),
                powered: true,
                daemon: None,
                incarnations: 0,
                running: groups
                    .iter()
                    .map(|g| vec![false; g.resources.len()])
                    .collect(),
                stored_generation: 0,
                wall_offset: 0,
                agent_trouble_until: Duration::ZERO,
                frozen_until: Duration::ZERO,
                frozen_since: Duration::ZERO,
                deferred: Vec::new(),
                steps_at_now: (Duration::ZERO, 0),
            })
            .collect();
        let nodes = p.nodes;
        World {
            p,
            faults,
            base: Instant::now(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            order: 0,
            net,
            chance,
            machines,
            partitions: Vec::new(),
            link_trouble: Vec::new(),
            fence_trouble_until: Duration::ZERO,
            healed: false,
            checking: false,
            takeover_requested: false,
            heard: vec![vec![0; nodes]; nodes],
            fences: Vec::new(),
            tracing,
            report: Report::default(),
        }
    }

    fn at(&mut self, at: Duration, ev: Ev) {
        self.order += 1;
        self.queue.push(Queued {
            at: at.max(self.now),
            order: self.order,
            ev,
        });
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let t = self.now.as_secs_f64();
            self.report.trace.push(format!("{t:9.4} {}", line()));
        }
    }

    fn violate(&mut self, rule: &'static str, detail: String) {
        if self.report.violation.is_none() {
            self.trace(|| format!("VIOLATION {rule}: {detail}"));
            self.report.violation = Some(Violation {
                at: self.now,
                rule,
                detail,
            });
        }
    }

    /// Runs the seed to its end or its first violation.
    pub fn run(mut self) -> Report {
        for m in 0..self.p.nodes {
            let boot = self.chance.millis(0, 50);
            self.at(boot, Ev::Boot(m));
        }
        for i in 0..self.faults.len() {
            let at = self.faults[i].at;
            self.at(at, Ev::Fault(i));
        }
        let heal = self.p.fault_phase;
        let check = heal + self.p.settle_bound();
        self.at(heal, Ev::Heal);
        self.at(check, Ev::Check);
        self.at(
            check + self.p.deadtime * 10 + Duration::from_secs(3),
            Ev::End,
        );
        while let Some(Queued { at, ev, .. }) = self.queue.pop() {
            self.now = at;
            if matches!(ev, Ev::End) {
                self.final_check();
                break;
            }
            self.handle(ev);
            if self.report.violation.is_none() {
                self.check_safety();
            }
            if self.report.violation.is_some() {
                break;
            }
        }
        self.report
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Fault(i) => {
                let fault = self.faults[i].fault.clone();
                self.trace(|| format!("FAULT {fault:?}"));
                self.fault(fault);
            }
            Ev::Boot(m) => self.boot(m),
            Ev::Thaw(m) => self.thaw(m),
            Ev::Wake { m, inc } => {
                if self.frozen(m) {
                    return; // the thaw ticks it
                }
                let now = self.now;
                let due = self.machines[m]
                    .daemon
                    .as_ref()
                    .is_some_and(|d| d.inc == inc && d.wake == Some(now));
                if due {
                    // Asked again for now, it is scheduled again (and a spin is seen).
                    if let Some(d) = self.machines[m].daemon.as_mut() {
                        d.wake = None;
                    }
                    self.step(m, Input::Tick);
                }
            }
            ev @ (Ev::Deliver { .. } | Ev::AgentDone { .. } | Ev::FenceDone { .. }) => {
                self.for_daemon(ev)
            }
            Ev::Heal => self.heal(),
            Ev::Check => self.settle_check(),
            Ev::End => {}
        }
    }

    fn frozen(&self, m: usize) -> bool {
        self.now < self.machines[m].frozen_until
    }

    /// An event for a machine's daemon: deferred while it is frozen.
    fn for_daemon(&mut self, ev: Ev) {
        let m = match &ev {
            Ev::Deliver { to, .. } => *to,
            Ev::AgentDone { m, .. } | Ev::FenceDone { m, .. } => *m,
            _ => unreachable!(),
        };
        // What an operation did happens whether or not the daemon looks.
        if let Ev::AgentDone {
            m,
            inc,
            g,
            r,
            op,
            outcome,
        } = &ev
        {
            self.agent_effect(*m, *inc, *g, *r, *op, *outcome);
        }
        if let Ev::FenceDone {
            m,
            inc,
            target,
            outcome,
        } = &ev
            && !self.fence_effect(*m, *inc, *target, *outcome)
        {
            return;
        }
        if self.frozen(m) {
            let now = self.now;
            self.machines[m].deferred.push((now, ev));
            return;
        }
        self.deliver(self.now, ev);
    }

    /// Hands one event to its daemon (`arrived`: when it reached the machine).
    fn deliver(&mut self, arrived: Duration, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                from,
                origin,
                sent,
                medium,
                msg,
            } => {
                let Some(inc) = self.machines[to].daemon.as_ref().map(|d| d.inc) else {
                    return;
                };
                // A packet held longer than deadtime is taken by any heartbeat protocol for
                // at most deadtime old; a daemon started since it left has no newer word of
                // the sender to set against it. Networks do not hold packets for seconds
                // (switches buffer for milliseconds): such a packet is not delivered.
                if self.now.saturating_sub(sent.0) > self.p.deadtime && inc != sent.1 {
                    return;
                }
                let heard = &mut self.heard[to][from];
                *heard = (*heard).max(origin);
                let arrived = self.base + arrived;
                self.step(
                    to,
                    Input::Received {
                        medium: format!("eth{medium}"),
                        msg,
                        arrived,
                    },
                );
                self.check_fenced_stay_dead(to, from, origin);
            }
            Ev::AgentDone {
                m,
                inc,
                g,
                r,
                op,
                outcome,
            } => {
                let Some(d) = self.machines[m].daemon.as_mut() else {
                    return;
                };
                if d.inc != inc {
                    return;
                }
                d.busy[g] = false;
                let running = self.machines[m].running[g][r];
                let result = match (op, outcome) {
                    (_, Outcome::Hang) => Err(format!(
                        "timed out after {} ms",
                        self.p.op_timeout.as_millis()
                    )),
                    (Op::Monitor, _) if !running => Err("exit 7: not running".to_string()),
                    (_, Outcome::Fail) => Err("exit 1: failed".to_string()),
                    (_, Outcome::Ok) => Ok(()),
                };
                let d = self.machines[m].daemon.as_mut().expect("checked above");
                d.known[g][r] = match (op, &result) {
                    (Op::Stop, Ok(())) => Known::Stopped,
                    (_, Ok(())) => Known::Running,
                    (Op::Monitor, Err(e)) if e.starts_with("exit 7") => Known::Stopped,
                    (_, Err(_)) => Known::Unknown,
                };
                self.trace(|| format!("n{} {op:?} g{g} r{r}: {result:?}", m + 1));
                self.step(
                    m,
                    Input::AgentDone {
                        group: g,
                        resource: r,
                        op,
                        result,
                    },
                );
            }
            Ev::FenceDone {
                m,
                inc,
                target,
                outcome,
            } => {
                if self.machines[m].daemon.as_ref().map(|d| d.inc) != Some(inc) {
                    return;
                }
                let result = match outcome {
                    Outcome::Ok => Ok(()),
                    Outcome::Fail => Err("exit 1".to_string()),
                    Outcome::Hang => Err("timed out".to_string()),
                };
                if outcome == Outcome::Ok {
                    // From when the fencer knows.
                    self.fences.push(FenceRecord {
                        fencer: m,
                        target,
                        heard: self.heard[m][target],
                    });
                }
                let node = self.machines[target].name.clone();
                self.step(m, Input::FenceDone { node, result });
            }
            _ => unreachable!(),
        }
    }

    fn step(&mut self, m: usize, input: Input) {
        let now = self.now;
        let instant = self.base + now;
        let counter = &mut self.machines[m].steps_at_now;
        if counter.0 == now {
            counter.1 += 1;
            if counter.1 > 10_000 {
                self.violate(
                    "no spinning",
                    format!("n{} stepped 10000 times at one instant", m + 1),
                );
                return;
            }
        } else {
            *counter = (now, 1);
        }
        let Some(d) = self.machines[m].daemon.as_mut() else {
            return;
        };
        let actions = d.node.step(instant, input);
        self.report.steps += 1;
        for action in actions {
            self.execute(m, action);
        }
        let Some(d) = self.machines[m].daemon.as_mut() else {
            return;
        };
        // A wake-up already due is due now.
        let wake = d
            .node
            .wake_at(instant)
            .saturating_duration_since(self.base)
            .max(now);
        if d.wake != Some(wake) {
            d.wake = Some(wake);
            let inc = d.inc;
            self.at(wake, Ev::Wake { m, inc });
        }
    }

    fn execute(&mut self, m: usize, action: Action) {
        match action {
            Action::Heartbeat { msg, .. } => self.send(m, msg, true),
            Action::Send { msg, sequenced } => self.send(m, msg, sequenced),
            // Only Heartbeat peers ask for retransmission; ping nodes are not simulated.
            Action::Retransmit { .. }
            | Action::SendPings
            | Action::Reply(_)
            | Action::Notify(_) => {}
            Action::Agent {
                group,
                resource,
                op,
                timeout,
            } => self.agent(m, group, resource, op, timeout),
            Action::Fence { node, timeout } => self.fence(m, &node, timeout),
            Action::Log(level, line) => {
                if level <= log::Level::Info {
                    self.trace(|| format!("n{} {level}: {line}", m + 1));
                }
            }
            Action::Exit => {
                self.trace(|| format!("n{} daemon exits", m + 1));
                self.machines[m].daemon = None;
                let later = self.now + self.chance.millis(100, 2000);
                self.at(later, Ev::Boot(m));
            }
        }
    }

    /// The envelope the shell adds (sender, sequence, generation), then the network.
    fn send(&mut self, from: usize, mut msg: Message, sequenced: bool) {
        let name = self.machines[from].name.clone();
        let Some(d) = self.machines[from].daemon.as_mut() else {
            return;
        };
        msg.push("src", name);
        if sequenced {
            d.seq += 1;
            msg.push("seq", format!("{:x}", d.seq));
        }
        msg.push("hg", format!("{:x}", d.node.settings().generation));
        let origin = d.inc;
        for to in 0..self.p.nodes {
            if to == from || self.cut(from, to) {
                continue;
            }
            let (loss, extra) = self.link(from, to);
            for medium in 0..self.p.media {
                if self.net.chance(loss) {
                    continue;
                }
                let copies = if self.net.chance(0.005) { 2 } else { 1 };
                for _ in 0..copies {
                    let delay = self.net.millis(0, 2) + extra;
                    let receiver = self.machines[to].daemon.as_ref().map_or(0, |d| d.inc);
                    let ev = Ev::Deliver {
                        to,
                        from,
                        origin,
                        sent: (self.now, receiver),
                        medium,
                        msg: msg.clone(),
                    };
                    self.at(self.now + delay, ev);
                }
            }
        }
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        self.partitions
            .iter()
            .any(|(side, until)| self.now < *until && side[a] != side[b])
    }

    fn link(&self, from: usize, to: usize) -> (f64, Duration) {
        let mut loss = self.p.base_loss;
        let mut delay = Duration::ZERO;
        for &(f, t, l, d, until) in &self.link_trouble {
            if f == from && t == to && self.now < until {
                loss = loss.max(l);
                delay = delay.max(d);
            }
        }
        (loss, delay)
    }

    fn agent(&mut self, m: usize, g: usize, r: usize, op: Op, timeout: Duration) {
        let now = self.now;
        let d = self.machines[m].daemon.as_mut().expect("a daemon asked");
        let inc = d.inc;
        if d.busy[g] {
            let detail = format!("n{} asked for {op:?} of g{g} r{r} while another ran", m + 1);
            self.violate("one operation at a time in a group", detail);
            return;
        }
        d.busy[g] = true;
        let known = &d.known[g];
        match op {
            Op::Start if !known[..r].iter().all(|k| *k == Known::Running) => {
                let detail = format!("n{} starts g{g} r{r} knowing {known:?}", m + 1);
                self.violate("start in order", detail);
            }
            Op::Stop if !known[r + 1..].iter().all(|k| *k == Known::Stopped) => {
                let detail = format!("n{} stops g{g} r{r} knowing {known:?}", m + 1);
                self.violate("stop in reverse order", detail);
            }
            _ => {}
        }
        if self.checking && op != Op::Monitor {
            let detail = format!("n{} {op:?} g{g} r{r} with nothing failing", m + 1);
            self.violate("no flapping", detail);
        }
        let mach = &mut self.machines[m];
        if op == Op::Start {
            mach.running[g][r] = true;
        }
        let trouble = now < mach.agent_trouble_until;
        let (outcome, took) = if trouble && self.chance.chance(0.2) {
            (Outcome::Hang, timeout)
        } else if trouble && self.chance.chance(0.4) {
            (Outcome::Fail, self.chance.millis(1, 20))
        } else if self.chance.chance(0.05) {
            (Outcome::Ok, self.chance.millis(50, 300))
        } else {
            (Outcome::Ok, self.chance.millis(1, 20))
        };
        self.trace(|| format!("n{} runs {op:?} g{g} r{r}", m + 1));
        self.at(
            now + took.min(timeout),
            Ev::AgentDone {
                m,
                inc,
                g,
                r,
                op,
                outcome,
            },
        );
    }

    /// What an operation did to the machine. The daemon's death kills its operations with it
    /// (systemd's KillMode=control-group): a start it asked for may have done part of its
    /// work, so that resource counts as running until a stop says otherwise.
    fn agent_effect(&mut self, m: usize, inc: u64, g: usize, r: usize, op: Op, outcome: Outcome) {
        if self.machines[m].daemon.as_ref().map(|d| d.inc) != Some(inc) {
            return;
        }
        let partial = self.chance.chance(0.4);
        let running = &mut self.machines[m].running[g][r];
        match (op, outcome) {
            (Op::Start, Outcome::Ok) => *running = true,
            (Op::Start, _) => *running = partial,
            (Op::Stop, Outcome::Ok) => *running = false,
            _ => {}
        }
    }

    fn fence(&mut self, m: usize, node: &str, timeout: Duration) {
        let Some(target) = self.machines.iter().position(|x| x.name == node) else {
            self.violate("fence a node of the cluster", format!("fence of {node}"));
            return;
        };
        let inc = self.machines[m].daemon.as_ref().map_or(0, |d| d.inc);
        let trouble = self.now < self.fence_trouble_until;
        let (outcome, took) = if trouble && self.chance.chance(0.2) {
            (Outcome::Hang, timeout)
        } else if trouble && self.chance.chance(0.6) {
            (Outcome::Fail, self.chance.millis(5, 50))
        } else {
            (
                Outcome::Ok,
                self.chance.millis(5, MAX_FENCE.as_millis() as u64),
            )
        };
        self.trace(|| format!("n{} fences {node}", m + 1));
        let at = self.now + took;
        self.at(
            at,
            Ev::FenceDone {
                m,
                inc,
                target,
                outcome,
            },
        );
    }

    /// The fence device acts (unless the fencer's daemon, whose child the fence command is,
    /// died meanwhile). Returns whether the fencer hears of it.
    fn fence_effect(&mut self, m: usize, inc: u64, target: usize, outcome: Outcome) -> bool {
        if self.machines[m].daemon.as_ref().map(|d| d.inc) != Some(inc) {
            return false;
        }
        self.trace(|| format!("fence of n{} by n{}: {outcome:?}", target + 1, m + 1));
        if outcome == Outcome::Ok && self.machines[target].powered {
            self.power_off(target);
            let later = self.now + self.chance.millis(500, MAX_REBOOT.as_millis() as u64);
            self.at(later, Ev::Boot(target));
        }
        true
    }

    fn power_off(&mut self, m: usize) {
        let mach = &mut self.machines[m];
        mach.powered = false;
        mach.daemon = None;
        mach.frozen_until = Duration::ZERO;
        mach.deferred.clear();
        for group in &mut mach.running {
            group.fill(false);
        }
    }

    fn boot(&mut self, m: usize) {
        let mach = &mut self.machines[m];
        if !mach.powered {
            mach.powered = true;
        }
        if mach.daemon.is_some() {
            return;
        }
        if self.now < mach.frozen_until {
            // Frozen machines run nothing: start when thawed.
            let at = mach.frozen_until;
            self.at(at, Ev::Boot(m));
            return;
        }
        mach.incarnations += 1;
        let wall = (1_800_000_000i64 + self.now.as_secs() as i64 + mach.wall_offset).max(0) as u64;
        let generation = next_generation_value(mach.stored_generation, 0, wall);
        mach.stored_generation = generation;
        let settings = self.p.settings(m, generation);
        let groups = self.p.groups.len();
        mach.daemon = Some(Daemon {
            node: Node::new(settings, None, self.base + self.now),
            inc: mach.incarnations,
            wake: None,
            busy: vec![false; groups],
            known: self
                .p
                .groups
                .iter()
                .map(|g| vec![Known::Unknown; g.resources.len()])
                .collect(),
            seq: 0,
        });
        // What a daemon has heard is its own: a new one starts knowing nothing.
        self.heard[m].fill(0);
        self.trace(|| format!("n{} daemon starts, generation {generation}", m + 1));

        self.step(m, Input::Start);
    }

    fn thaw(&mut self, m: usize) {
        if self.machines[m].daemon.is_none() || self.frozen(m) {
            return;
        }
        let deferred = std::mem::take(&mut self.machines[m].deferred);
        // The shell sees the freeze as a wake-up that late.
        let pause = self.now.saturating_sub(self.machines[m].frozen_since);
        self.trace(|| format!("n{} thaws", m + 1));
        self.step(
            m,
            Input::Paused {
                pause,
                while_running: false,
            },
        );
        for (arrived, ev) in deferred {
            self.deliver(arrived, ev);
        }
        self.step(m, Input::Tick);
    }

    fn fault(&mut self, fault: Fault) {
        let now = self.now;
        match fault {
            Fault::KillDaemon(m) => {
                if self.machines[m].daemon.take().is_some() {
                    let later = now + self.chance.millis(100, 3000);
                    self.at(later, Ev::Boot(m));
                }
            }
            Fault::RestartDaemon(m) => {
                if !self.frozen(m) {
                    self.step(m, Input::Terminate);
                }
            }
            Fault::PowerLoss(m) => {
                if self.machines[m].powered {
                    self.power_off(m);
                    let later = now + self.chance.millis(500, MAX_REBOOT.as_millis() as u64);
                    self.at(later, Ev::Boot(m));
                }
            }
            Fault::Partition { side, until } => self.partitions.push((side, until)),
            Fault::LinkTrouble {
                from,
                to,
                loss,
                delay,
                until,
            } => self.link_trouble.push((from, to, loss, delay, until)),
            Fault::ResourceDies {
                node,
                group,
                resource,
            } => self.machines[node].running[group][resource] = false,
            Fault::AgentTrouble { node, until } => self.machines[node].agent_trouble_until = until,
            Fault::FenceTrouble { until } => self.fence_trouble_until = until,
            Fault::Request { node, text } => {
                if self.frozen(node) || self.machines[node].daemon.is_none() {
                    return;
                }
                let request = Request::parse(&text, &self.p.groups).expect("a valid request");
                if matches!(request, Request::Takeover(_)) {
                    self.takeover_requested = true;
                }
                self.step(node, Input::Request(request));
            }
            Fault::WallStep { node, secs } => self.machines[node].wall_offset += secs,
            Fault::Freeze { node, pause } => {
                if self.machines[node].powered && !self.frozen(node) {
                    self.machines[node].frozen_until = now + pause;
                    self.machines[node].frozen_since = now;
                    self.at(now + pause, Ev::Thaw(node));
                }
            }
        }
    }

    fn heal(&mut self) {
        self.healed = true;
        self.partitions.clear();
        self.link_trouble.clear();
        self.fence_trouble_until = Duration::ZERO;
        for m in 0..self.p.nodes {
            self.machines[m].agent_trouble_until = Duration::ZERO;
            let later = self.now + self.chance.millis(0, 500);
            self.at(later, Ev::Boot(m));
        }
        self.trace(|| "HEAL: the faults end".into());
    }

    /// With a fence command that works, no group ever runs on two machines.
    fn check_safety(&mut self) {
        if !self.p.fencing {
            return;
        }
        for g in 0..self.p.groups.len() {
            let on: Vec<usize> = (0..self.p.nodes)
                .filter(|&m| self.machines[m].running[g].iter().any(|x| *x))
                .collect();
            if on.len() > 1 {
                let detail = format!(
                    "group {} runs on {:?}",
                    self.p.groups[g].name,
                    on.iter().map(|m| m + 1).collect::<Vec<_>>()
                );
                self.violate("never two nodes run a group", detail);
                return;
            }
        }
    }

    /// A node that fenced a peer never takes it for up again on what the peer sent before
    /// the fence. (A generation the fencer had not heard of before the fence looks like a
    /// restart on the wire and is not covered.)
    fn check_fenced_stay_dead(&mut self, to: usize, from: usize, origin: u64) {
        let Some(record) = self
            .fences
            .iter()
            .rev()
            .find(|f| f.fencer == to && f.target == from)
        else {
            return;
        };
        if origin > record.heard || self.heard[to][from] > record.heard {
            return;
        }
        let name = self.machines[from].name.clone();
        let up = self.machines[to]
            .daemon
            .as_ref()
            .is_some_and(|d| d.node.peer_up(&name));
        if up {
            let detail = format!(
                "n{} takes fenced {name} for up on a packet it sent before the fence",
                to + 1
            );
            self.violate("a fenced node stays dead", detail);
        }
    }

    /// The faults stopped long enough ago: every group runs on exactly one eligible node
    /// (its preferred one under auto_failback on or legacy), and from now on nothing moves.
    fn settle_check(&mut self) {
        self.checking = true;
        let now = self.base + self.now;
        for g in 0..self.p.groups.len() {
            let mut eligible = Vec::new();
            let mut holders = Vec::new();
            let mut unclean = false;
            for m in 0..self.p.nodes {
                let Some(d) = self.machines[m].daemon.as_ref() else {
                    continue;
                };
                let holding = d.node.holdings()[g];
                let standby = d.node.status(now)["groups"][g]["standby"] == true;
                if holding == Holding::Unclean {
                    unclean = true;
                }
                if matches!(holding, Holding::None | Holding::Held) && !standby {
                    eligible.push(m);
                }
                if holding == Holding::Held {
                    holders.push(m);
                }
            }
            if eligible.is_empty() || (unclean && !self.p.fencing) {
                continue;
            }
            let name = &self.p.groups[g].name;
            let on: Vec<usize> = (0..self.p.nodes)
                .filter(|&m| self.machines[m].running[g].iter().any(|x| *x))
                .collect();
            let ok = holders.len() == 1
                && eligible.contains(&holders[0])
                && on == holders
                && self.machines[holders[0]].running[g].iter().all(|x| *x);
            if !ok {
                let detail = format!(
                    "{} after the faults stopped, group {name}: holders {:?}, eligible {:?}, running on {:?}",
                    humantime(self.p.settle_bound()),
                    names(&holders),
                    names(&eligible),
                    names(&on),
                );
                self.violate("every group runs again (liveness)", detail);
                return;
            }
            let preferred = self.p.groups[g].preferred.clone();
            let preferred = self.machines.iter().position(|x| x.name == preferred);
            if self.p.auto_failback != AutoFailback::Off
                && !self.takeover_requested
                && let Some(pm) = preferred
                && eligible.contains(&pm)
                && holders[0] != pm
            {
                let detail = format!(
                    "auto_failback {:?}: group {name} on n{} while its preferred n{} is available",
                    self.p.auto_failback,
                    holders[0] + 1,
                    pm + 1
                );
                self.violate("auto_failback", detail);
                return;
            }
        }
        self.trace(|| "CHECK: every group settled".into());
    }

    fn final_check(&mut self) {
        if self.report.violation.is_none() {
            self.settle_check();
        }
    }
}

fn names(ms: &[usize]) -> Vec<String> {
    ms.iter().map(|m| format!("n{}", m + 1)).collect()
}

fn humantime(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
