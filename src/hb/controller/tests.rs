//! The controller driven as the daemon drives it, without sockets, clocks or agents: two (or
//! more) [`Node`]s on a simulated clock, joined by a simulated wire that adds the envelope
//! the shell adds ([`super::super::standin::Outgoing`]: `src`, `srcuuid`, `seq`, `hg`, `ts`,
//! `ttl`) and signs and verifies each message with the cluster's `authkeys`, as the shell
//! does before the peer's controller sees it. Agents and the fence command are answered by
//! the harness one tick after they are asked for, with the outcome each test chooses.
//!
//! Every test asserts the exact agent operations and fences each node asks for, in order.
//! Beside that, the harness checks one safety rule after every tick: no resource runs on two
//! machines at once (a resource counts as running from the moment its start is asked for
//! until its stop succeeds or its machine is powered off; a daemon killed with `kill -9`
//! leaves what it ran running).

use std::collections::{BTreeSet, VecDeque};
use std::os::unix::fs::PermissionsExt;

use crate::hb::config::{self, Config};
use crate::hb::proto;

use super::*;

/// The simulated clock's step: the harness's time resolution.
const TICK: Duration = Duration::from_millis(10);

const MEDIUM: &str = "eth1";

/// One group of three resources, preferred by n1.
const ONE_GROUP: &str = "n1 drbddisk::r0 Filesystem::/dev/drbd0::/srv/mysql::ext4 \
                         IPaddr2::198.18.1.100/24/eth0\n";

/// Two single-resource groups, one preferred by each node (active/active).
const TWO_GROUPS: &str = "n1 IPaddr2::198.18.1.100/24/eth0\nn2 IPaddr2::198.18.1.101/24/eth0\n";
const G0: &str = "IPaddr2::198.18.1.100/24/eth0";
const G1: &str = "IPaddr2::198.18.1.101/24/eth0";

const FENCING: &str = "fence_command /usr/local/sbin/fence-node\n";

/// Keepalive 100 ms, deadtime 1 s, no monitoring unless `extra` turns it on; `extra` is
/// appended to ha.cf (a later line overrides an earlier one).
fn config(extra: &str, haresources: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let ha_cf = format!(
        "keepalive 100ms\ndeadtime 1\nwarntime 500ms\ninitdead 1\nbcast {MEDIUM}\n\
         monitor_interval 0\nnode n1 n2\n{extra}"
    );
    std::fs::write(dir.path().join("ha.cf"), ha_cf).unwrap();
    std::fs::write(dir.path().join("haresources"), haresources).unwrap();
    let keys = dir.path().join("authkeys");
    std::fs::write(&keys, "auth 1\n1 sha256 controller unit tests\n").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    config::load(dir.path()).unwrap_or_else(|e| panic!("test configuration: {e:?}"))
}

/// What a node asked the shell to do, as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Did {
    /// (group, resource)
    Start(usize, usize),
    Stop(usize, usize),
    Monitor(usize, usize),
    Fence(&'static str),
}
use Did::{Fence, Monitor, Start, Stop};

impl Did {
    fn agent(group: usize, resource: usize, op: Op) -> Did {
        match op {
            Op::Start => Start(group, resource),
            Op::Stop => Stop(group, resource),
            Op::Monitor => Monitor(group, resource),
        }
    }
}

/// One entry of the cluster's record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// Asked for by the node.
    Asked(Did),
    /// Answered to the node (Ok or not).
    Done(Did, bool),
}

/// One machine with its daemon.
struct Member {
    name: &'static str,
    node: Node,
    generation: u64,
    /// The shell's sequence counter (heartbeats and sequenced messages share it).
    seq: u64,
    /// The daemon runs (is stepped).
    daemon: bool,
    /// Its heartbeat link works (both ways).
    linked: bool,
    /// When the loop wakes next on its own.
    wake: Instant,
    /// Resources running on this machine (group, resource), as its agents left them.
    running: BTreeSet<(usize, usize)>,
    /// Agent operations asked for, and when each is answered.
    agents: Vec<(usize, usize, Op, Instant)>,
    /// How long an agent operation takes (by default, until the next tick).
    latency: Vec<(Op, Duration)>,
    /// Operations to fail, each once, at the first time they run.
    failures: Vec<(usize, usize, Op)>,
    /// The fence under way.
    fence: Option<String>,
    /// The outcomes of the next fences, in order; none: the fence runs until one is given.
    fence_answers: VecDeque<Result<(), String>>,
    /// Every message sent, enveloped, whether or not the link carried it.
    sent: Vec<Message>,
    replies: Vec<String>,
    logs: Vec<String>,
    /// What notify_command would be run with, in order.
    notices: Vec<Notice>,
}

/// Nodes on a simulated clock and wire.
struct Cluster {
    cfg: Config,
    t0: Instant,
    now: Instant,
    members: Vec<Member>,
    /// Messages sent during the last tick, delivered at the next one: (sender, message).
    wire: Vec<(usize, Message)>,
    /// Everything asked and answered, in order: (time since t0, node index, event).
    record: Vec<(Duration, usize, Event)>,
    mutation: Option<Mutation>,
}

impl Cluster {
    /// n1 and n2, started together.
    fn start(cfg: Config) -> Cluster {
        Cluster::start_with(cfg, None)
    }

    fn start_with(cfg: Config, mutation: Option<Mutation>) -> Cluster {
        let t0 = Instant::now();
        let mut cluster = Cluster {
            cfg,
            t0,
            now: t0,
            members: Vec::new(),
            wire: Vec::new(),
            record: Vec::new(),
            mutation,
        };
        for name in ["n1", "n2"] {
            let node = cluster.new_node(name, 1);
            cluster.members.push(Member {
                name,
                node,
                generation: 1,
                seq: 0,
                daemon: true,
                linked: true,
                wake: t0,
                running: BTreeSet::new(),
                agents: Vec::new(),
                latency: Vec::new(),
                failures: Vec::new(),
                fence: None,
                fence_answers: VecDeque::new(),
                sent: Vec::new(),
                replies: Vec::new(),
                logs: Vec::new(),
                notices: Vec::new(),
            });
        }
        for i in 0..cluster.members.len() {
            cluster.step(i, Input::Start);
        }
        cluster
    }

    fn new_node(&self, name: &str, generation: u64) -> Node {
        let mut s = Settings::from_config(&self.cfg, name, Duration::from_secs(20), generation);
        s.mutation = self.mutation;
        Node::new(s, None, self.now)
    }

    fn index(&self, name: &str) -> usize {
        self.members.iter().position(|m| m.name == name).unwrap()
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Steps node `i` and does what it asks, as the shell does.
    fn step(&mut self, i: usize, input: Input) {
        let now = self.now;
        let actions = self.members[i].node.step(now, input);
        for action in actions {
            match action {
                Action::Heartbeat { msg, .. } => self.send(i, msg, true),
                Action::Send { msg, sequenced } => self.send(i, msg, sequenced),
                Action::Agent {
                    group,
                    resource,
                    op,
                    ..
                } => {
                    self.note(i, Event::Asked(Did::agent(group, resource, op)));
                    let m = &mut self.members[i];
                    if op == Op::Start {
                        // Running (in part) from the moment it is asked for.
                        m.running.insert((group, resource));
                    }
                    let takes = m
                        .latency
                        .iter()
                        .find(|(o, _)| *o == op)
                        .map_or(TICK, |(_, d)| *d);
                    m.agents.push((group, resource, op, now + takes));
                }
                Action::Fence { node, .. } => {
                    let name = self.members[self.index(&node)].name;
                    self.note(i, Event::Asked(Fence(name)));
                    let m = &mut self.members[i];
                    assert!(
                        m.fence.is_none(),
                        "{}: a second fence while one runs",
                        m.name
                    );
                    m.fence = Some(node);
                }
                Action::Log(_, line) => self.members[i].logs.push(line),
                Action::Notify(notice) => self.members[i].notices.push(notice),
                Action::Reply(reply) => self.members[i].replies.push(reply),
                Action::Exit => self.members[i].daemon = false,
                Action::Retransmit { .. } | Action::SendPings => {}
            }
        }
        let m = &mut self.members[i];
        if m.daemon {
            m.wake = m.node.wake_at(now);
        }
    }

    /// The shell's envelope (`Outgoing::send_numbered`), then signing and verifying with
    /// the cluster's key, as sender and receiver do.
    fn send(&mut self, i: usize, mut msg: Message, sequenced: bool) {
        let m = &mut self.members[i];
        msg.push("src", m.name);
        msg.push_binary("srcuuid", &[i as u8 + 1; 16]);
        if sequenced {
            m.seq += 1;
            msg.push("seq", format!("{:x}", m.seq));
        }
        msg.push("hg", format!("{:x}", m.generation));
        msg.push("ts", "0");
        msg.push("ttl", "4");
        let bytes = proto::encode(&msg, &self.cfg.auth).expect("encoding");
        let msg = proto::decode(&bytes, &self.cfg.auth).expect("verifying");
        m.sent.push(msg.clone());
        if m.linked {
            self.wire.push((i, msg));
        }
    }

    fn note(&mut self, i: usize, event: Event) {
        self.record.push((self.elapsed(), i, event));
    }

    /// One tick: deliver last tick's messages, answer the agents and fences asked for, tick
    /// each daemon that is due (or got an input), then check that nothing runs twice.
    fn tick(&mut self) {
        self.now += TICK;
        let wire = std::mem::take(&mut self.wire);
        for i in 0..self.members.len() {
            if !self.members[i].daemon {
                continue;
            }
            let mut got_input = false;
            if self.members[i].linked {
                for (from, msg) in &wire {
                    if *from != i {
                        self.deliver(i, msg.clone());
                        got_input = true;
                    }
                }
            }
            let (due, later) = std::mem::take(&mut self.members[i].agents)
                .into_iter()
                .partition::<Vec<_>, _>(|a| a.3 <= self.now);
            self.members[i].agents = later;
            for (group, resource, op, _) in due {
                let m = &mut self.members[i];
                let result = match m.failures.iter().position(|f| *f == (group, resource, op)) {
                    Some(at) => {
                        m.failures.remove(at);
                        Err("exit 1 (test)".to_string())
                    }
                    None => Ok(()),
                };
                if op == Op::Stop && result.is_ok() {
                    m.running.remove(&(group, resource));
                }
                let ok = result.is_ok();
                self.note(i, Event::Done(Did::agent(group, resource, op), ok));
                self.step(
                    i,
                    Input::AgentDone {
                        group,
                        resource,
                        op,
                        result,
                    },
                );
                got_input = true;
            }
            if self.members[i].fence.is_some() && !self.members[i].fence_answers.is_empty() {
                let target = self.members[i].fence.take().unwrap();
                let result = self.members[i].fence_answers.pop_front().unwrap();
                let t = self.index(&target);
                if result.is_ok() {
                    self.power_off(self.members[t].name);
                }
                let name = self.members[t].name;
                self.note(i, Event::Done(Fence(name), result.is_ok()));
                self.step(
                    i,
                    Input::FenceDone {
                        node: target,
                        result,
                    },
                );
                got_input = true;
            }
            if self.members[i].daemon && (got_input || self.now >= self.members[i].wake) {
                self.step(i, Input::Tick);
            }
        }
        self.check_nothing_runs_twice();
    }

    fn deliver(&mut self, i: usize, msg: Message) {
        let arrived = self.now;
        self.step(
            i,
            Input::Received {
                medium: MEDIUM.into(),
                msg,
                arrived,
            },
        );
    }

    fn check_nothing_runs_twice(&self) {
        let mut seen: BTreeSet<(usize, usize)> = BTreeSet::new();
        for m in &self.members {
            for r in &m.running {
                assert!(
                    seen.insert(*r),
                    "at {:?}: group {} resource {} runs on two machines\n{}",
                    self.elapsed(),
                    r.0,
                    r.1,
                    self.story()
                );
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.tick();
        }
    }

    /// Runs until `done` holds, for at most `limit`; panics (with the record) otherwise.
    fn run_until(&mut self, limit: Duration, what: &str, done: impl Fn(&Cluster) -> bool) {
        let until = self.now + limit;
        while !done(self) {
            assert!(
                self.now < until,
                "not within {limit:?}: {what}\n{}",
                self.story()
            );
            self.tick();
        }
    }

    fn holdings(&self, name: &str) -> Vec<Holding> {
        self.members[self.index(name)].node.holdings()
    }

    /// Runs until both nodes' holdings are these, and nothing runs on either.
    fn settle_to(&mut self, n1: &[Holding], n2: &[Holding]) {
        let what = format!("n1 {n1:?}, n2 {n2:?}");
        self.run_until(Duration::from_secs(10), &what, |c| {
            c.holdings("n1") == n1
                && c.holdings("n2") == n2
                && c.members.iter().all(|m| m.agents.is_empty())
        });
    }

    /// A mark in the record, for [`Cluster::asked`].
    fn mark(&self) -> usize {
        self.record.len()
    }

    /// What node `name` asked for since `mark`, in order.
    fn asked(&self, name: &str, mark: usize) -> Vec<Did> {
        let i = self.index(name);
        self.record[mark..]
            .iter()
            .filter(|(_, n, _)| *n == i)
            .filter_map(|(_, _, e)| match e {
                Event::Asked(d) => Some(d.clone()),
                Event::Done(..) => None,
            })
            .collect()
    }

    /// When `event` of node `name` happened (the first since `mark`).
    fn when(&self, name: &str, mark: usize, event: &Event) -> Duration {
        let i = self.index(name);
        self.record[mark..]
            .iter()
            .find(|(_, n, e)| *n == i && e == event)
            .unwrap_or_else(|| panic!("{name} never had {event:?}\n{}", self.story()))
            .0
    }

    /// The record, a line per event, for failure messages.
    fn story(&self) -> String {
        self.record
            .iter()
            .map(|(at, i, e)| format!("{at:>8.2?} {} {e:?}\n", self.members[*i].name))
            .collect()
    }

    /// Agent operation `op` takes `d` on `name`.
    fn slow(&mut self, name: &str, op: Op, d: Duration) {
        let i = self.index(name);
        self.members[i].latency.push((op, d));
    }

    fn logged(&self, name: &str, text: &str) -> bool {
        self.members[self.index(name)]
            .logs
            .iter()
            .any(|l| l.contains(text))
    }

    /// Operation `op` of resource `resource` of group `group` fails on `name`, once.
    fn fail_once(&mut self, name: &str, group: usize, resource: usize, op: Op) {
        let i = self.index(name);
        self.members[i].failures.push((group, resource, op));
    }

    /// The outcome of the next fence `name` runs.
    fn answer_fence(&mut self, name: &str, result: Result<(), String>) {
        let i = self.index(name);
        self.members[i].fence_answers.push_back(result);
    }

    /// The daemon dies (`kill -9`): what it ran keeps running.
    fn kill(&mut self, name: &str) {
        let i = self.index(name);
        let m = &mut self.members[i];
        m.daemon = false;
        m.agents.clear();
        m.fence = None;
    }

    /// The machine goes off: the daemon and everything it ran stop.
    fn power_off(&mut self, name: &str) {
        self.kill(name);
        let i = self.index(name);
        self.members[i].running.clear();
    }

    /// The machine's heartbeat link fails; the daemon runs on, alone.
    fn cut(&mut self, name: &str) {
        let i = self.index(name);
        self.members[i].linked = false;
    }

    /// The daemon starts again (a new generation), with its link working.
    fn restart(&mut self, name: &str) {
        let i = self.index(name);
        let generation = self.members[i].generation + 1;
        let node = self.new_node(name, generation);
        let m = &mut self.members[i];
        assert!(!m.daemon, "{name} still runs");
        m.node = node;
        m.generation = generation;
        m.daemon = true;
        m.linked = true;
        m.wake = self.now;
        self.step(i, Input::Start);
    }

    /// An operator's request on `name`, parsed as the control socket does; the reply.
    fn request(&mut self, name: &str, text: &str) -> serde_json::Value {
        let i = self.index(name);
        let request = Request::parse(text, &self.members[i].node.settings().groups)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        self.step(i, Input::Request(request));
        let reply = self.members[i].replies.pop().expect("a reply");
        serde_json::from_str(&reply).unwrap()
    }

    fn terminate(&mut self, name: &str) {
        let i = self.index(name);
        self.step(i, Input::Terminate);
    }

    fn peer_up(&self, on: &str, peer: &str) -> bool {
        self.members[self.index(on)].node.peer_up(peer)
    }
}

use Holding::{Failed, Held, Standby, Unclean};
const NONE: Holding = Holding::None;

/// n1 and n2 up, n1 running `ONE_GROUP`.
fn one_group(extra: &str) -> Cluster {
    one_group_with(extra, None)
}

fn one_group_with(extra: &str, mutation: Option<Mutation>) -> Cluster {
    let mut c = Cluster::start_with(config(extra, ONE_GROUP), mutation);
    c.settle_to(&[Held], &[NONE]);
    c
}

#[test]
fn the_preferred_node_starts_in_haresources_order_and_stops_in_reverse() {
    let mut c = Cluster::start(config("", ONE_GROUP));
    c.settle_to(&[Held], &[NONE]);
    // Both clean up first (right to left); only the preferred node then starts.
    assert_eq!(
        c.asked("n1", 0),
        [
            Stop(0, 2),
            Stop(0, 1),
            Stop(0, 0),
            Start(0, 0),
            Start(0, 1),
            Start(0, 2)
        ]
    );
    assert_eq!(c.asked("n2", 0), [Stop(0, 2), Stop(0, 1), Stop(0, 0)]);
    let status = c.members[0].node.status(c.now);
    assert_eq!(status["groups"][0]["holder"], "n1");
    assert_eq!(status["groups"][0]["preferred"], "n1");
    assert_eq!(c.members[1].node.status(c.now)["groups"][0]["holder"], "n1");

    // An orderly stop: right to left, then the peer takes over at once (st=dead), and
    // without a fence: the group was handed over cleanly.
    let mark = c.mark();
    c.terminate("n1");
    c.run_until(Duration::from_secs(5), "n1 exits", |c| !c.members[0].daemon);
    assert_eq!(c.asked("n1", mark), [Stop(0, 2), Stop(0, 1), Stop(0, 0)]);
    c.run_until(Duration::from_millis(500), "n2 holds", |c| {
        c.holdings("n2") == [Held]
    });
    assert_eq!(c.asked("n2", mark), [Start(0, 0), Start(0, 1), Start(0, 2)]);
    assert!(c.members[0].running.is_empty());
}

/// n1's heartbeats stop (its daemon is killed: the group still runs there); n2 fences it
/// and only then takes the group over.
fn takeover_after_fence(mutation: Option<Mutation>) {
    let mut c = one_group_with(FENCING, mutation);
    let mark = c.mark();
    let killed = c.elapsed();
    c.kill("n1");
    c.run_until(Duration::from_secs(3), "n2 acts", |c| {
        !c.asked("n2", mark).is_empty()
    });
    assert_eq!(
        c.asked("n2", mark),
        [Fence("n1")],
        "n2 started something before fencing"
    );
    let fenced = c.when("n2", mark, &Event::Asked(Fence("n1")));
    // After deadtime (1 s) of silence since n1's last heartbeat (at most a keepalive before
    // the kill), not before.
    assert!(
        fenced > killed + Duration::from_millis(900)
            && fenced <= killed + Duration::from_millis(1100),
        "fenced {:?} after the kill",
        fenced - killed
    );
    // The fence runs for a while: nothing starts meanwhile.
    c.run_for(Duration::from_secs(3));
    assert_eq!(
        c.asked("n2", mark),
        [Fence("n1")],
        "n2 did not wait for the fence"
    );
    assert_eq!(c.holdings("n2"), [NONE]);
    let status = c.members[1].node.status(c.now);
    assert_eq!(status["to_fence"], serde_json::json!(["n1"]));
    assert_eq!(status["fence_running"], "n1");

    c.answer_fence("n2", Ok(()));
    c.run_until(Duration::from_secs(1), "n2 holds", |c| {
        c.holdings("n2") == [Held]
    });
    assert_eq!(
        c.asked("n2", mark),
        [Fence("n1"), Start(0, 0), Start(0, 1), Start(0, 2)]
    );
    let done = c.when("n2", mark, &Event::Done(Fence("n1"), true));
    assert!(c.when("n2", mark, &Event::Asked(Start(0, 0))) >= done);
    assert!(c.logged("n2", "fencing n1 before taking the group over"));
    let group = c.members[1].node.settings().groups[0].name.clone();
    let peer = "n1".to_string();
    let notices: Vec<_> = c.members[1]
        .notices
        .iter()
        .filter(|n| !matches!(n, Notice::MediumDown { .. }))
        .cloned()
        .collect();
    assert_eq!(
        notices[notices.len() - 4..],
        [
            Notice::PeerDead { peer: peer.clone() },
            Notice::FenceStarted { peer: peer.clone() },
            Notice::FenceSucceeded { peer },
            Notice::GroupAcquired { group },
        ]
    );
    let status = c.members[1].node.status(c.now);
    assert_eq!(status["groups"][0]["failovers"], 1);
    assert_eq!(
        status["fences"]["n1"],
        serde_json::json!({"succeeded": 1, "failed": 0})
    );
    assert_eq!(status["groups"][0]["resources"][0]["last_op"], "start");
    assert_eq!(status["groups"][0]["resources"][0]["last_op_ok"], true);
    assert!(status["groups"][0]["resources"][0]["last_op_duration_ms"].is_u64());
    // Still unheard, n1 may boot and take a group unheard: a later takeover fences it again.
    assert_eq!(status["to_fence"], serde_json::json!(["n1"]));
    assert_eq!(status["fence_running"], serde_json::Value::Null);
}

#[test]
fn a_dead_holder_is_fenced_before_the_takeover() {
    takeover_after_fence(None);
}

#[test]
#[should_panic(expected = "runs on two machines")]
fn the_fence_test_catches_a_takeover_without_fencing() {
    takeover_after_fence(Some(Mutation::TakeoverWithoutFencing));
}

#[test]
fn a_failed_fence_means_no_takeover_and_a_retry_a_second_later() {
    let mut c = one_group(FENCING);
    // Away from the start-up's heartbeats: n1's last one is one of its keepalive's, and the
    // retry falls between two of n2's (a retry left to the next heartbeat comes late).
    c.run_for(Duration::from_millis(200));
    let mark = c.mark();
    c.answer_fence("n2", Err("exit 1: the PDU did not answer".into()));
    c.kill("n1");
    c.run_until(Duration::from_secs(3), "n2 fences n1 twice", |c| {
        c.asked("n2", mark).len() >= 2
    });
    assert_eq!(c.asked("n2", mark), [Fence("n1"), Fence("n1")]);
    let failed = c.when("n2", mark, &Event::Done(Fence("n1"), false));
    let retried = c.record[mark..]
        .iter()
        .filter(|(_, n, e)| *n == 1 && *e == Event::Asked(Fence("n1")))
        .nth(1)
        .unwrap()
        .0;
    let after = retried - failed;
    assert!(
        after >= Duration::from_secs(1) && after <= Duration::from_secs(1) + TICK,
        "retried {after:?} after the failure\n{}",
        c.story()
    );
    assert!(c.logged("n2", "fencing n1 failed (exit 1: the PDU did not answer)"));
    assert!(c.members[1].notices.contains(&Notice::FenceFailed {
        peer: "n1".into(),
        reason: "exit 1: the PDU did not answer".into()
    }));
    assert_eq!(c.holdings("n2"), [NONE]);

    // The retry succeeds: the takeover follows.
    c.answer_fence("n2", Ok(()));
    c.settle_to(&[Held], &[Held]); // n1's copy is what its (dead) daemon last said
    assert_eq!(
        c.asked("n2", mark),
        [
            Fence("n1"),
            Fence("n1"),
            Start(0, 0),
            Start(0, 1),
            Start(0, 2)
        ]
    );
}

#[test]
fn a_failing_monitor_restarts_in_place_up_to_the_limit_then_hands_over() {
    let mut c = one_group(&format!(
        "{FENCING}monitor_interval 1\nrestart_limit 2 600\n"
    ));
    // Healthy: each resource monitored, left to right, every second.
    let mark = c.mark();
    c.run_for(Duration::from_millis(2500));
    assert_eq!(
        c.asked("n1", mark),
        [
            Monitor(0, 0),
            Monitor(0, 1),
            Monitor(0, 2),
            Monitor(0, 0),
            Monitor(0, 1),
            Monitor(0, 2)
        ]
    );
    // The filesystem fails its monitor three times in a row.
    let mark = c.mark();
    for _ in 0..3 {
        c.fail_once("n1", 0, 1, Op::Monitor);
    }
    c.settle_to(&[Failed], &[Held]);
    // Each restart stops what follows the failed resource and it (right to left) and starts
    // them again; the third failure is over the limit (2): the group is stopped whole.
    let restart = [Stop(0, 2), Stop(0, 1), Start(0, 1), Start(0, 2)];
    let mut expected = vec![];
    for _ in 0..2 {
        expected.extend([Monitor(0, 0), Monitor(0, 1)]);
        expected.extend(restart.clone());
    }
    expected.extend([
        Monitor(0, 0),
        Monitor(0, 1),
        Stop(0, 2),
        Stop(0, 1),
        Stop(0, 0),
    ]);
    assert_eq!(c.asked("n1", mark), expected);
    // A clean hand-over: no fence.
    assert_eq!(c.asked("n2", mark), [Start(0, 0), Start(0, 1), Start(0, 2)]);
    assert!(c.logged("n1", "2 restarts within 600 s already: giving the group up"));
    let status = c.members[0].node.status(c.now);
    assert_eq!(status["groups"][0]["holding"], "failed");
    assert_eq!(status["groups"][0]["restarts_in_window"], 2);
    assert_eq!(status["groups"][0]["restarts"], 2);
    let words: Vec<_> = c.members[0].notices.iter().map(Notice::word).collect();
    assert_eq!(
        words[words.len() - 3..],
        ["local-restart", "local-restart", "group-failed"]
    );
    // A clean hand-over is no failover.
    let n2 = c.members[1].node.status(c.now);
    assert_eq!(n2["groups"][0]["failovers"], 0);
    assert!(
        status["groups"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("Filesystem::/dev/drbd0::/srv/mysql::ext4 monitor: exit 1 (test)")
    );
    // Failed stays out: n1 does not take the group back.
    let mark = c.mark();
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.holdings("n1"), [Failed]);
    assert!(!c.asked("n1", mark).contains(&Start(0, 0)));
}

/// n1 leaves (orderly), n2 takes over, n1 comes back (its daemon just started again).
/// Returns the cluster and the mark taken when n1 came back.
fn failback(line: &str, mutation: Option<Mutation>) -> (Cluster, usize) {
    let mut c = one_group_with(line, mutation);
    c.terminate("n1");
    c.run_until(Duration::from_secs(5), "n1 exits", |c| !c.members[0].daemon);
    c.settle_to(&[NONE], &[Held]);
    // Stopping takes longer than the returning node's clean-up (stopping what is stopped).
    c.slow("n2", Op::Stop, Duration::from_millis(300));
    let mark = c.mark();
    c.restart("n1");
    (c, mark)
}

#[test]
fn auto_failback_legacy_unset_and_on_give_the_group_back() {
    for line in ["auto_failback legacy\n", "", "auto_failback on\n"] {
        let (mut c, mark) = failback(line, None);
        c.settle_to(&[Held], &[NONE]);
        assert_eq!(
            c.asked("n1", mark),
            [
                Stop(0, 2),
                Stop(0, 1),
                Stop(0, 0),
                Start(0, 0),
                Start(0, 1),
                Start(0, 2)
            ],
            "{line:?}"
        );
        assert_eq!(
            c.asked("n2", mark),
            [Stop(0, 2), Stop(0, 1), Stop(0, 0)],
            "{line:?}"
        );
        // n1 starts only once n2 has stopped all of it.
        let stopped = c.when("n2", mark, &Event::Done(Stop(0, 0), true));
        assert!(c.when("n1", mark, &Event::Asked(Start(0, 0))) > stopped);
    }
}

#[test]
fn auto_failback_off_keeps_the_group_where_it_runs() {
    let (mut c, mark) = failback("auto_failback off\n", None);
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.holdings("n1"), [NONE]);
    assert_eq!(c.holdings("n2"), [Held]);
    assert_eq!(c.asked("n1", mark), [Stop(0, 2), Stop(0, 1), Stop(0, 0)]);
    assert_eq!(c.asked("n2", mark), []);
}

#[test]
#[should_panic(expected = "runs on two machines")]
fn the_failback_test_catches_a_start_beside_a_stop() {
    let (mut c, _) = failback("", Some(Mutation::FailbackDuringStop));
    c.settle_to(&[Held], &[NONE]);
}

#[test]
fn active_active_each_runs_its_own_and_the_survivor_fences_then_runs_both() {
    let mut c = Cluster::start(config(FENCING, TWO_GROUPS));
    c.settle_to(&[Held, NONE], &[NONE, Held]);
    assert_eq!(c.asked("n1", 0), [Stop(0, 0), Stop(1, 0), Start(0, 0)]);
    assert_eq!(c.asked("n2", 0), [Stop(0, 0), Stop(1, 0), Start(1, 0)]);
    let status = c.members[0].node.status(c.now);
    assert_eq!(status["groups"][0]["name"], G0);
    assert_eq!(status["groups"][1]["name"], G1);
    assert_eq!(status["groups"][1]["holder"], "n2");

    let mark = c.mark();
    c.kill("n1");
    c.answer_fence("n2", Ok(()));
    c.run_until(Duration::from_secs(3), "n2 holds both", |c| {
        c.holdings("n2") == [Held, Held]
    });
    // One fence for n1, then n1's group: group 1 never stopped or restarted on n2.
    assert_eq!(c.asked("n2", mark), [Fence("n1"), Start(0, 0)]);
    assert!(c.logged("n2", &format!("groups as {G0} held")));
}

#[test]
fn requests_move_the_groups_they_name() {
    let mut c = Cluster::start(config("auto_failback off\n", TWO_GROUPS));
    c.settle_to(&[Held, NONE], &[NONE, Held]);

    // standby (all): n1 gives up its group; n2 runs both.
    let mark = c.mark();
    let reply = c.request("n1", "standby");
    assert_eq!(
        reply,
        serde_json::json!({ "ok": "standby", "groups": [G0, G1] })
    );
    c.settle_to(&[Standby, Standby], &[Held, Held]);
    assert_eq!(c.asked("n1", mark), [Stop(0, 0)]);
    assert_eq!(c.asked("n2", mark), [Start(0, 0)]);

    // takeover (all): both come to n1.
    let mark = c.mark();
    let reply = c.request("n1", "takeover all");
    assert_eq!(
        reply,
        serde_json::json!({ "ok": "takeover", "groups": [G0, G1] })
    );
    c.settle_to(&[Held, Held], &[NONE, NONE]);
    assert_eq!(c.asked("n2", mark), [Stop(0, 0), Stop(1, 0)]);
    assert_eq!(c.asked("n1", mark), [Start(0, 0), Start(1, 0)]);

    // standby foreign: only n2's group leaves n1.
    let mark = c.mark();
    let reply = c.request("n1", "standby foreign");
    assert_eq!(
        reply,
        serde_json::json!({ "ok": "standby", "groups": [G1] })
    );
    c.settle_to(&[Held, Standby], &[NONE, Held]);
    assert_eq!(c.asked("n1", mark), [Stop(1, 0)]);
    assert_eq!(c.asked("n2", mark), [Start(1, 0)]);

    // standby local: n1's own group leaves too.
    let mark = c.mark();
    let reply = c.request("n1", "standby local");
    assert_eq!(
        reply,
        serde_json::json!({ "ok": "standby", "groups": [G0] })
    );
    c.settle_to(&[Standby, Standby], &[Held, Held]);
    assert_eq!(c.asked("n1", mark), [Stop(0, 0)]);
    assert_eq!(c.asked("n2", mark), [Start(0, 0)]);

    // takeover GROUP (by its first resource as written): only that one comes back.
    let mark = c.mark();
    let reply = c.request("n1", &format!("takeover {G1}"));
    assert_eq!(
        reply,
        serde_json::json!({ "ok": "takeover", "groups": [G1] })
    );
    c.settle_to(&[Standby, Held], &[Held, NONE]);
    assert_eq!(c.asked("n2", mark), [Stop(1, 0)]);
    assert_eq!(c.asked("n1", mark), [Start(1, 0)]);

    // Parsing: by number, and what is refused.
    let groups = &c.members[0].node.settings().groups;
    assert_eq!(
        Request::parse("takeover 1", groups),
        Ok(Request::Takeover(Scope::Group(0)))
    );
    assert_eq!(
        Request::parse(&format!("standby {G1}"), groups),
        Ok(Request::Standby(Scope::Group(1)))
    );
    assert_eq!(
        Request::parse("standby", groups),
        Ok(Request::Standby(Scope::All))
    );
    let err = Request::parse("takeover mysql", groups).unwrap_err();
    assert!(err.contains("no group \"mysql\""), "{err}");
    assert!(err.contains(&format!("({G0}, {G1})")), "{err}");
    assert!(err.contains("1 to 2"), "{err}");
    assert!(Request::parse("takeover 3", groups).is_err());
    assert!(Request::parse("takeover 0", groups).is_err());
    assert!(Request::parse("standby local now", groups).is_err());
    assert!(Request::parse("reboot", groups).is_err());
}

/// n1's link fails (it still runs and sends); n2 fences it and takes over; then packets of
/// n1 reach n2 late: its last heartbeats before the fence ended (newer than any n2 saw),
/// and one of an older generation.
fn stale_heartbeats(mutation: Option<Mutation>) {
    let mut c = one_group_with(FENCING, mutation);
    c.cut("n1");
    c.answer_fence("n2", Ok(()));
    c.settle_to(&[Held], &[Held]); // n1 (off) as its daemon last saw it
    assert!(!c.members[0].daemon && c.members[0].running.is_empty());
    assert!(!c.peer_up("n2", "n1"));
    let mark = c.mark();
    // Heartbeats n1 sent while cut off, in order: each newer than the last n2 accepted.
    let late: Vec<Message> = c.members[0]
        .sent
        .iter()
        .rev()
        .take(3)
        .rev()
        .cloned()
        .collect();
    let mut old_generation = late[2].clone();
    for (name, value) in &mut old_generation.fields {
        if name == "hg" {
            *value = proto::Value::Text("0".into());
        }
    }
    assert_eq!(late[2].get("rsc"), Some("held"));
    for msg in late.into_iter().chain([old_generation]) {
        c.deliver(1, msg);
        c.tick();
        assert!(!c.peer_up("n2", "n1"), "a fenced peer's packet made it up");
    }
    c.run_for(Duration::from_secs(3));
    assert!(!c.peer_up("n2", "n1"), "a fenced peer's packet made it up");
    assert_eq!(c.holdings("n2"), [Held]);
    assert_eq!(c.asked("n2", mark), []);
    // A new generation (n1 restarted after the fence) is heard again.
    c.restart("n1");
    c.run_until(Duration::from_millis(500), "n2 hears n1", |c| {
        c.peer_up("n2", "n1")
    });
}

#[test]
fn stale_heartbeats_from_a_fenced_peer_do_not_revive_it() {
    stale_heartbeats(None);
}

#[test]
#[should_panic(expected = "a fenced peer's packet made it up")]
fn the_stale_heartbeat_test_catches_listening_to_a_fenced_generation() {
    stale_heartbeats(Some(Mutation::AcceptFencedPackets));
}

#[test]
fn a_failed_stop_is_fenced_before_the_takeover() {
    let mut c = one_group(FENCING);
    let mark = c.mark();
    c.fail_once("n1", 0, 1, Op::Stop);
    let reply = c.request("n1", "standby");
    assert_eq!(reply["ok"], "standby");
    c.run_until(Duration::from_secs(2), "n2 fences n1", |c| {
        c.members[1].fence.is_some()
    });
    // The stop of the filesystem failed: n1 stops there, unclean (the disk below it is
    // still in use).
    assert_eq!(c.asked("n1", mark), [Stop(0, 2), Stop(0, 1)]);
    assert_eq!(c.holdings("n1"), [Unclean]);
    assert_eq!(c.asked("n2", mark), [Fence("n1")]);
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.asked("n2", mark), [Fence("n1")]);
    c.answer_fence("n2", Ok(()));
    c.run_until(Duration::from_secs(1), "n2 holds", |c| {
        c.holdings("n2") == [Held]
    });
    assert_eq!(
        c.asked("n2", mark),
        [Fence("n1"), Start(0, 0), Start(0, 1), Start(0, 2)]
    );
    assert!(c.logged(
        "n2",
        "fencing n1 before taking the group over (its stop failed)"
    ));
}

#[test]
fn a_failed_stop_without_fencing_leaves_the_group_down() {
    let mut c = one_group("");
    let mark = c.mark();
    c.fail_once("n1", 0, 1, Op::Stop);
    c.request("n1", "standby");
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.asked("n1", mark), [Stop(0, 2), Stop(0, 1)]);
    assert_eq!(c.asked("n2", mark), []);
    assert_eq!(c.holdings("n1"), [Unclean]);
    assert_eq!(c.holdings("n2"), [NONE]);
    assert!(c.logged(
        "n2",
        "n1 failed to stop the group and no fence_command is configured"
    ));
    // Said once, not at every heartbeat.
    let said = c.members[1]
        .logs
        .iter()
        .filter(|l| l.contains("no fence_command is configured"))
        .count();
    assert_eq!(said, 1);
    // Nor once n1's daemon leaves (st=dead): it said the group is unclean there.
    c.terminate("n1");
    c.run_until(Duration::from_secs(2), "n1 exits", |c| !c.members[0].daemon);
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.asked("n2", mark), []);
    assert_eq!(c.holdings("n2"), [NONE]);
}

#[test]
fn a_failed_stop_on_the_way_out_is_fenced_too() {
    let mut c = one_group(FENCING);
    let mark = c.mark();
    c.fail_once("n1", 0, 1, Op::Stop);
    c.terminate("n1");
    // n1 can do no more: it leaves (st=dead) while it says the group is unclean there.
    c.run_until(Duration::from_secs(2), "n1 exits", |c| !c.members[0].daemon);
    assert_eq!(c.asked("n1", mark), [Stop(0, 2), Stop(0, 1)]);
    assert_eq!(c.holdings("n1"), [Unclean]);
    c.run_until(Duration::from_secs(1), "n2 acts", |c| {
        !c.asked("n2", mark).is_empty()
    });
    assert_eq!(c.asked("n2", mark), [Fence("n1")]);
    assert!(c.logged(
        "n2",
        "node n1 is dead while it advertised the group as unclean"
    ));
    c.answer_fence("n2", Ok(()));
    c.settle_to(&[Unclean], &[Held]);
    assert_eq!(
        c.asked("n2", mark),
        [Fence("n1"), Start(0, 0), Start(0, 1), Start(0, 2)]
    );
}

#[test]
fn without_fencing_only_the_groups_a_dead_peer_left_unclean_stay_down() {
    let two_on_n1 = "n1 IPaddr2::198.18.1.100/24/eth0\nn1 IPaddr2::198.18.1.101/24/eth0\n";
    let mut c = Cluster::start(config("", two_on_n1));
    c.settle_to(&[Held, Held], &[NONE, NONE]);
    let mark = c.mark();
    c.fail_once("n1", 1, 0, Op::Stop);
    c.request("n1", "standby 2");
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.holdings("n1"), [Held, Unclean]);
    assert_eq!(c.asked("n2", mark), []);
    // n1 dies holding one group and unclean with the other: n2 takes the first over (as
    // Heartbeat does without STONITH, with a warning), not the second.
    c.power_off("n1");
    c.settle_to(&[Held, Unclean], &[Held, NONE]);
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.asked("n2", mark), [Start(0, 0)]);
    assert_eq!(c.holdings("n2"), [Held, NONE]);
    assert!(c.logged(
        "n2",
        &format!("taking group {G0} over from n1 without fencing")
    ));
}
