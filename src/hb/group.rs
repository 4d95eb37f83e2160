//! The resource group: who should run it, and running its agents in order.
//!
//! The decision is a pure function of what this node and its peers say ([`decide`]), so
//! that Heartbeat's v1 rules are unit-tested on their own:
//! - a group runs on at most one live node; it goes to the preferred node when nobody holds
//!   it, and to another live node when the preferred node is dead, failed or in standby;
//! - at start-up nobody acquires until every peer is known (heard from, or dead after
//!   initdead), so that two nodes booting together do not both start the group;
//! - `auto_failback on`, and `legacy` (Heartbeat 3's default, also when the line is absent):
//!   a holder that is not the preferred node gives the group back when the preferred node is
//!   up and available; `off`: it keeps it;
//! - if two nodes hold it (a healed partition), the one that is not preferred releases.
//!
//! Agents run on a worker thread, one action at a time, so that heartbeats keep flowing
//! while MySQL starts or a filesystem unmounts; the loop learns the result through a
//! channel and a wake-up pipe.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use super::config::{AutoFailback, ResourceEntry};
use crate::sys::cmd::{self, CmdError};

/// This node's group state, as advertised in its heartbeats (`rsc=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Not running, available to take it.
    None,
    /// Starting it.
    Starting,
    /// Running it.
    Held,
    /// Stopping it.
    Stopping,
    /// A start or stop failed here: this node will not take it.
    Failed,
    /// Operator standby: will not take it.
    Standby,
    /// A stop failed here: the group may still run (in part) on this node. Peers must fence
    /// this node before they take the group over.
    Unclean,
    /// Start-up: stopping whatever a previous run of the daemon left running here (a kill -9
    /// leaves the VIP and mounts behind) before taking part. Advertised as `none`: the group
    /// is not served here and this node does not claim it, so no peer reacts to it.
    Cleaning,
}

impl Holding {
    /// The wire word.
    pub fn word(self) -> &'static str {
        match self {
            Holding::None | Holding::Cleaning => "none",
            Holding::Starting => "starting",
            Holding::Held => "held",
            Holding::Stopping => "stopping",
            Holding::Failed => "failed",
            Holding::Standby => "standby",
            Holding::Unclean => "unclean",
        }
    }

    /// From the wire word; unknown words count as holding (the safe assumption).
    pub fn from_word(word: &str) -> Holding {
        match word {
            "none" => Holding::None,
            "failed" => Holding::Failed,
            "standby" => Holding::Standby,
            "stopping" => Holding::Stopping,
            "starting" => Holding::Starting,
            "unclean" => Holding::Unclean,
            _ => Holding::Held,
        }
    }

    /// Running or about to: another node must not start the group.
    pub fn occupies(self) -> bool {
        matches!(
            self,
            Holding::Starting | Holding::Held | Holding::Stopping | Holding::Unclean
        )
    }
}

/// A peer as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView<'a> {
    /// Node name.
    pub name: &'a str,
    /// Heard from and not dead.
    pub alive: bool,
    /// Not heard from yet (within initdead).
    pub unknown: bool,
    /// What it advertises.
    pub holding: Holding,
    /// It asked for the group (`hb-monitor takeover`).
    pub wants: bool,
}

/// What this node should do about the group now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it.
    Acquire,
    /// Stop it.
    Release,
    /// Nothing.
    Wait,
}

/// Heartbeat's v1 rules (see the module documentation).
pub fn decide(
    me: &str,
    preferred: &str,
    mine: Holding,
    i_want: bool,
    peers: &[PeerView],
    failback: AutoFailback,
) -> Decision {
    let live: Vec<&PeerView> = peers.iter().filter(|p| p.alive).collect();
    let preferred_is_me = me == preferred;
    match mine {
        Holding::Held => {
            // An operator's takeover on another node: hand it over.
            if !i_want && live.iter().any(|p| p.wants && p.holding == Holding::None) {
                return Decision::Release;
            }
            // Two holders after a partition heals: the non-preferred one yields.
            if live.iter().any(|p| p.holding.occupies()) && !preferred_is_me {
                return Decision::Release;
            }
            let preferred_ready = live
                .iter()
                .any(|p| p.name == preferred && p.holding == Holding::None);
            if failback != AutoFailback::Off && !preferred_is_me && preferred_ready {
                return Decision::Release;
            }
            Decision::Wait
        }
        Holding::None => {
            if peers.iter().any(|p| p.unknown) {
                return Decision::Wait; // start-up: not everyone is known yet
            }
            if live.iter().any(|p| p.holding.occupies()) {
                return Decision::Wait;
            }
            // An operator's takeover elsewhere: the group goes there, not back here (else the
            // preferred node, having just released it, would race the requester for it).
            if !i_want && live.iter().any(|p| p.wants && p.holding == Holding::None) {
                return Decision::Wait;
            }
            if preferred_is_me || i_want {
                return Decision::Acquire;
            }
            // The preferred node cannot take it: dead, failed, standby or absent.
            let preferred_available = live
                .iter()
                .any(|p| p.name == preferred && p.holding == Holding::None);
            if preferred_available {
                return Decision::Wait;
            }
            // Among the other available nodes, the first by name takes it, so that three
            // nodes do not all start.
            let first = live
                .iter()
                .filter(|p| p.holding == Holding::None && p.name != preferred)
                .map(|p| p.name)
                .chain(std::iter::once(me))
                .min()
                .unwrap_or(me);
            if first == me {
                Decision::Acquire
            } else {
                Decision::Wait
            }
        }
        Holding::Starting
        | Holding::Stopping
        | Holding::Failed
        | Holding::Standby
        | Holding::Unclean
        | Holding::Cleaning => Decision::Wait,
    }
}

/// An OCF action on one resource.
#[derive(Debug, Clone)]
pub struct AgentCall {
    /// The agent executable.
    pub agent: PathBuf,
    /// `start` or `stop`.
    pub action: &'static str,
    /// Parameters.
    pub params: Vec<(String, String)>,
    /// Resource instance name.
    pub instance: String,
    /// Op timeout.
    pub timeout: Duration,
}

/// Runs one OCF action as Pacemaker would (scrubbed environment, OCF variables, timeout).
/// Returns the reason on failure.
pub fn run_agent(ocf_root: &Path, call: &AgentCall) -> Result<(), String> {
    let mut command = Command::new(&call.agent);
    command
        .arg(call.action)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", ocf_root)
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", &call.instance)
        .env(
            "OCF_RESKEY_CRM_meta_timeout",
            call.timeout.as_millis().to_string(),
        );
    for (name, value) in &call.params {
        command.env(format!("OCF_RESKEY_{name}"), value);
    }
    // A little beyond the op timeout: the agent gives up itself, with a reason, before it.
    match cmd::run(&mut command, call.timeout + Duration::from_secs(1)) {
        Ok(_) => Ok(()),
        Err(CmdError::Failed { status, stderr, .. }) => {
            let reason = stderr
                .lines()
                .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
                .next_back()
                .unwrap_or("")
                .to_string();
            Err(format!("exit {}: {reason}", status.code().unwrap_or(-1)))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Resolves each resource's agent under `$OCF_ROOT/resource.d`.
pub fn agent_path(ocf_root: &Path, res: &ResourceEntry) -> PathBuf {
    ocf_root
        .join("resource.d")
        .join(&res.provider)
        .join(&res.agent)
}

/// What the worker reports back to the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole group started.
    Started,
    /// A start failed; everything of the group was stopped again.
    StartFailed(String),
    /// The whole group stopped.
    Stopped,
    /// A stop failed: the group is in an unknown state here.
    StopFailed(String),
    /// A monitor round: every resource runs (None), or the first that does not, with why.
    Monitored(Option<(usize, String)>),
    /// The fence command ran against a node: Ok once that node is off.
    Fenced(String, Result<(), String>),
}

/// Runs the group's agents (and the fence command) on worker threads, one job at a time
/// (the daemon never starts a job while one runs): each job sends its [`Outcome`] to `done`
/// and then writes to the loop's wake-up pipe.
#[derive(Clone)]
pub struct Worker {
    /// `$OCF_ROOT`.
    pub ocf_root: PathBuf,
    /// The group, left to right.
    pub resources: Vec<ResourceEntry>,
    /// Each agent action's timeout.
    pub timeout: Duration,
    /// Where outcomes go.
    pub done: mpsc::Sender<Outcome>,
    /// The loop's wake-up pipe.
    pub wake: std::os::fd::RawFd,
}

impl Worker {
    fn call(&self, i: usize, action: &'static str) -> AgentCall {
        let res = &self.resources[i];
        AgentCall {
            agent: agent_path(&self.ocf_root, res),
            action,
            params: res.params.clone(),
            instance: format!("{}_{i}", res.agent),
            timeout: self.timeout,
        }
    }

    fn run(&self, i: usize, action: &'static str) -> Result<(), String> {
        let started = std::time::Instant::now();
        let result = run_agent(&self.ocf_root, &self.call(i, action))
            .map_err(|why| format!("{} {action}: {why}", self.resources[i].written));
        // Each start and stop with its duration: where a failover's time goes. (Monitors
        // pass quietly unless they fail; the daemon logs that.)
        if action != "monitor" {
            let res = &self.resources[i];
            super::daemon::log(
                if result.is_ok() { "INFO" } else { "ERROR" },
                &format!(
                    "{action} {}:{} ({}): {} in {} ms",
                    res.provider,
                    res.agent,
                    res.written.split("::").next().unwrap_or(""),
                    if result.is_ok() { "done" } else { "failed" },
                    started.elapsed().as_millis()
                ),
            );
        }
        result
    }

    /// Stops resources `to..` right to left; the first failure.
    fn stop_down_to(&self, to: usize) -> Result<(), String> {
        (to..self.resources.len())
            .rev()
            .try_for_each(|i| self.run(i, "stop"))
    }

    /// Starts resources `from..` left to right; on a failure stops the whole group again.
    fn start_from(&self, from: usize) -> Outcome {
        for i in from..self.resources.len() {
            if let Err(failed) = self.run(i, "start") {
                // Undo everything, right to left, including the failed one (stop of a
                // stopped resource is 0): the peers get a clean group.
                return match self.stop_down_to(0) {
                    Ok(()) => Outcome::StartFailed(failed),
                    Err(stop) => Outcome::StopFailed(format!("{failed}; then {stop}")),
                };
            }
        }
        Outcome::Started
    }

    fn spawn(&self, job: impl FnOnce(&Worker) -> Outcome + Send + 'static) {
        let worker = self.clone();
        std::thread::spawn(move || {
            let outcome = job(&worker);
            let _ = worker.done.send(outcome);
            wake_loop(worker.wake);
        });
    }

    /// Starts the group left to right; a failed start stops it all again.
    pub fn start(&self) {
        self.spawn(|w| w.start_from(0));
    }

    /// Stops the group right to left.
    pub fn stop(&self) {
        self.spawn(|w| match w.stop_down_to(0) {
            Ok(()) => Outcome::Stopped,
            Err(why) => Outcome::StopFailed(why),
        });
    }

    /// Local recovery: stops resource `from` and everything after it (right to left), then
    /// starts them again (what comes after depends on it: the mount on DRBD, MySQL on the
    /// mount, the VIP on MySQL).
    pub fn restart(&self, from: usize) {
        self.spawn(move |w| match w.stop_down_to(from) {
            Ok(()) => w.start_from(from),
            Err(why) => Outcome::StopFailed(why),
        });
    }

    /// Monitors every resource left to right, stopping at the first that fails.
    pub fn monitor(&self) {
        self.spawn(|w| {
            Outcome::Monitored(
                (0..w.resources.len()).find_map(|i| w.run(i, "monitor").err().map(|e| (i, e))),
            )
        });
    }

    /// Runs `command node` (timeout `limit`) to power `node` off.
    pub fn fence(&self, command: Vec<String>, node: String, limit: Duration) {
        self.spawn(move |_| {
            let result = fence(&command, &node, limit);
            Outcome::Fenced(node, result)
        });
    }
}

/// Runs the fence command for `node`: the node's name is appended to the command and also
/// given as `HB_FENCE_NODE`; exit 0 means the node is off.
pub fn fence(command: &[String], node: &str, limit: Duration) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else {
        return Err("no fence_command".into());
    };
    let mut c = Command::new(program);
    c.args(args)
        .arg(node)
        .env("HB_FENCE_NODE", node)
        .stdin(std::process::Stdio::null());
    match cmd::run(&mut c, limit) {
        Ok(_) => Ok(()),
        Err(CmdError::Failed { status, stderr, .. }) => Err(format!(
            "{program} {node}: exit {}: {}",
            status.code().unwrap_or(-1),
            stderr.trim()
        )),
        Err(e) => Err(format!("{program} {node}: {e}")),
    }
}

fn wake_loop(fd: std::os::fd::RawFd) {
    // SAFETY: writing one byte to the loop's wake-up pipe, which lives as long as the daemon.
    unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, alive: bool, holding: Holding) -> PeerView<'_> {
        PeerView {
            name,
            alive,
            unknown: false,
            holding,
            wants: false,
        }
    }

    #[test]
    fn after_releasing_to_a_takeover_the_preferred_node_does_not_race_the_requester() {
        let mut wanting = peer("n2", true, Holding::None);
        wanting.wants = true;
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::None,
                false,
                &[wanting],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn the_preferred_node_acquires_when_nobody_holds() {
        let peers = [peer("n2", true, Holding::None)];
        assert_eq!(
            decide("n1", "n1", Holding::None, false, &peers, AutoFailback::Off),
            Decision::Acquire
        );
        let peers = [peer("n1", true, Holding::None)];
        assert_eq!(
            decide("n2", "n1", Holding::None, false, &peers, AutoFailback::Off),
            Decision::Wait
        );
    }

    #[test]
    fn nobody_acquires_while_a_peer_is_unknown() {
        let mut p = peer("n2", false, Holding::None);
        p.unknown = true;
        assert_eq!(
            decide("n1", "n1", Holding::None, false, &[p], AutoFailback::Off),
            Decision::Wait
        );
    }

    #[test]
    fn takeover_when_the_holder_dies_or_cannot_run_it() {
        for holder in [
            peer("n1", false, Holding::Held),
            peer("n1", true, Holding::Failed),
            peer("n1", true, Holding::Standby),
        ] {
            assert_eq!(
                decide(
                    "n2",
                    "n1",
                    Holding::None,
                    false,
                    std::slice::from_ref(&holder),
                    AutoFailback::Off
                ),
                Decision::Acquire,
                "{holder:?}"
            );
        }
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                false,
                &[peer("n1", true, Holding::Held)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                false,
                &[peer("n1", true, Holding::Stopping)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn auto_failback_gives_the_group_back_when_on_or_legacy() {
        let back = [peer("n1", true, Holding::None)];
        assert_eq!(
            decide("n2", "n1", Holding::Held, false, &back, AutoFailback::On),
            Decision::Release
        );
        assert_eq!(
            decide("n2", "n1", Holding::Held, false, &back, AutoFailback::Off),
            Decision::Wait
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::Held,
                false,
                &back,
                AutoFailback::Legacy
            ),
            Decision::Release
        );
        // The preferred node holding it keeps it.
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::Held,
                false,
                &[peer("n2", true, Holding::None)],
                AutoFailback::On
            ),
            Decision::Wait
        );
    }

    #[test]
    fn two_holders_after_a_partition_the_non_preferred_releases() {
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::Held,
                false,
                &[peer("n1", true, Holding::Held)],
                AutoFailback::Off
            ),
            Decision::Release
        );
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::Held,
                false,
                &[peer("n2", true, Holding::Held)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn three_nodes_only_one_takes_over() {
        let peers_of_n2 = [
            peer("n1", false, Holding::Held),
            peer("n3", true, Holding::None),
        ];
        let peers_of_n3 = [
            peer("n1", false, Holding::Held),
            peer("n2", true, Holding::None),
        ];
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                false,
                &peers_of_n2,
                AutoFailback::Off
            ),
            Decision::Acquire
        );
        assert_eq!(
            decide(
                "n3",
                "n1",
                Holding::None,
                false,
                &peers_of_n3,
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn takeover_moves_the_group_to_the_node_that_asks() {
        let mut asking = peer("n2", true, Holding::None);
        asking.wants = true;
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::Held,
                false,
                &[asking],
                AutoFailback::Off
            ),
            Decision::Release
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                true,
                &[peer("n1", true, Holding::None)],
                AutoFailback::Off
            ),
            Decision::Acquire
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                true,
                &[peer("n1", true, Holding::Stopping)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn holding_words_round_trip_and_unknown_words_are_safe() {
        for h in [
            Holding::None,
            Holding::Starting,
            Holding::Held,
            Holding::Stopping,
            Holding::Failed,
            Holding::Standby,
        ] {
            assert_eq!(Holding::from_word(h.word()), h);
        }
        assert!(Holding::from_word("garbage").occupies());
    }
}
