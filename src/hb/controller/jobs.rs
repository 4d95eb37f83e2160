//! A group's job: its agent operations, one at a time and in order, and what each result
//! means for the group (started, failed and undone, recovered in place, given up).

use std::collections::VecDeque;
use std::time::Instant;

use log::Level;

use super::*;

/// What a job of a group is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobKind {
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
pub(super) struct Job {
    pub(super) kind: JobKind,
    /// The operation running now.
    pub(super) running: (usize, Op),
    /// Those after it.
    pub(super) queue: VecDeque<(usize, Op)>,
    /// Why the start this job undoes failed.
    pub(super) failed: Option<String>,
    /// When the running operation was asked for.
    pub(super) op_started: Instant,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Started,
    StartFailed(String),
    Stopped,
    StopFailed(String),
    Monitored(Option<(usize, String)>),
}

/// The last operation on a resource, for status.
#[derive(Debug, Clone)]
pub(super) struct LastOp {
    pub(super) op: Op,
    pub(super) result: Result<(), String>,
    pub(super) at: Instant,
    /// From asking for it to its result.
    pub(super) took: std::time::Duration,
}

impl Node {
    /// Starts a job on group `g`: the operations of `kind` (`from`: the first resource a
    /// restart stops and starts again).
    pub(super) fn begin(&mut self, g: usize, kind: JobKind, from: usize) {
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
            op_started: self.now,
        });
        self.run(g, first);
        if kind != JobKind::Monitor {
            self.changed = true;
        }
    }

    pub(super) fn run(&mut self, g: usize, (resource, op): (usize, Op)) {
        self.out.push(Action::Agent {
            group: g,
            resource,
            op,
            timeout: self.s.op_timeout,
        });
    }

    pub(super) fn agent_done(
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
                took: now.saturating_duration_since(job.op_started),
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
                        job.op_started = now;
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

    pub(super) fn job_done(&mut self, g: usize, kind: JobKind, outcome: Outcome, now: Instant) {
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
        let mut notice = None;
        let name = group.spec.name.clone();
        match outcome {
            Outcome::Started => {
                self.compat.started();
                log = Some((Level::Info, format!("{subject} started")));
                if kind == JobKind::Start {
                    if group.taking_over_from.take().is_some() {
                        group.failovers += 1;
                    }
                    notice = Some(Notice::GroupAcquired { group: name });
                }
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
                group.taking_over_from = None;
                notice = Some(Notice::GroupFailed {
                    group: name,
                    reason: why.clone(),
                });
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
                notice = Some(if group.giving_up {
                    Notice::GroupFailed {
                        group: name,
                        reason: group.last_error.clone().unwrap_or_default(),
                    }
                } else {
                    Notice::GroupReleased { group: name }
                });
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
                notice = Some(Notice::GroupFailed {
                    group: name,
                    reason: why.clone(),
                });
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
        if let Some(notice) = notice {
            self.notify(notice);
        }
        self.changed = true;
    }

    /// A resource of group `g` failed its monitor: restart it (and what depends on it) in
    /// place while the restart limit allows, else give the group up so that a peer takes it.
    pub(super) fn recover(&mut self, g: usize, index: usize, why: String, now: Instant) {
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
            group.restarts_total += 1;
            let count = group.restarts.len();
            let name = group.spec.name.clone();
            self.log(
                Level::Error,
                format!(
                    "monitor failed: {why}; restarting it and what follows it here ({count} of {limit} within {} s)",
                    window.as_secs()
                ),
            );
            self.notify(Notice::LocalRestart {
                group: name,
                reason: why,
            });
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
}
