//! Running OCF agents and the fence command for the daemon (off its loop, one thread per
//! operation) and for `hb-monitor check`, the way Pacemaker runs agents: a scrubbed
//! environment with the OCF variables, a time limit, and the agent's `ocf-exit-reason` as
//! the reason of a failure. Heartbeat and LSB scripts go through [`script`].

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::config::{ResourceClass, ResourceEntry, ResourceGroup};
use super::controller::Op;
use super::script;
use crate::sys::cmd::{self, CmdError};

/// How an agent run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFailure {
    /// Its exit code (None: killed, or it did not run).
    pub code: Option<i32>,
    /// Its last `ocf-exit-reason:` line (or the last line of stderr, or why it did not run).
    pub reason: String,
}

impl std::fmt::Display for AgentFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "exit {code}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// The OCF instance name of resource `index` of group `group`: `<agent>_<index>` in the
/// first group (as it always was: an agent keeps its state under this name), with the
/// group's number after it in the others, so that two groups' instances never share state.
pub fn instance_name(res: &ResourceEntry, group: usize, index: usize) -> String {
    if group == 0 {
        format!("{}_{index}", res.agent)
    } else {
        format!("{}_{index}_g{}", res.agent, group + 1)
    }
}

/// The agent's executable under `$OCF_ROOT/resource.d`.
pub fn agent_path(ocf_root: &Path, res: &ResourceEntry) -> PathBuf {
    ocf_root
        .join("resource.d")
        .join(&res.provider)
        .join(&res.agent)
}

/// Runs `action` of `res` (OCF instance `instance`) with time limit `timeout`: an OCF
/// agent's action, or what it means for a Heartbeat or LSB script ([`script::run`]).
pub fn run_agent(
    ocf_root: &Path,
    res: &ResourceEntry,
    instance: &str,
    action: &str,
    timeout: Duration,
) -> Result<(), AgentFailure> {
    if res.class != ResourceClass::Ocf {
        return script::run(res, action, timeout, ocf_root);
    }
    let mut command = Command::new(agent_path(ocf_root, res));
    command
        .arg(action)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", ocf_root)
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", instance)
        .env("OCF_RESOURCE_PROVIDER", &res.provider)
        .env("OCF_RESOURCE_TYPE", &res.agent)
        .env(
            "OCF_RESKEY_CRM_meta_timeout",
            timeout.as_millis().to_string(),
        );
    for (name, value) in &res.params {
        command.env(format!("OCF_RESKEY_{name}"), value);
    }
    // A little beyond the op timeout: the agent gives up itself, with a reason, before it.
    match cmd::run(&mut command, timeout.saturating_add(Duration::from_secs(1))) {
        Ok(_) => Ok(()),
        Err(CmdError::Failed { status, stderr, .. }) => Err(AgentFailure {
            code: status.code(),
            reason: match status.code() {
                Some(_) => stderr
                    .lines()
                    .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
                    .next_back()
                    .or(stderr.lines().last())
                    .unwrap_or("")
                    .to_string(),
                None => "killed by a signal".into(),
            },
        }),
        Err(e) => Err(AgentFailure {
            code: None,
            reason: e.to_string(),
        }),
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

/// What an operation reports back to the loop.
#[derive(Debug)]
pub enum Completion {
    /// An agent operation ended.
    Agent {
        /// Group index.
        group: usize,
        /// Resource index.
        resource: usize,
        /// The operation.
        op: Op,
        /// Its outcome.
        result: Result<(), String>,
    },
    /// The fence command ended.
    Fence {
        /// The node.
        node: String,
        /// Its outcome.
        result: Result<(), String>,
    },
}

/// Runs the daemon's operations on threads of their own, so that heartbeats never wait for
/// an agent: each sends its [`Completion`] to `done` and then writes a byte to the loop's
/// wake-up pipe.
pub struct AgentWorker {
    ocf_root: PathBuf,
    groups: Arc<Vec<Vec<ResourceEntry>>>,
    fence_command: Arc<Vec<String>>,
    done: mpsc::Sender<Completion>,
    wake: Arc<OwnedFd>,
}

impl AgentWorker {
    /// For the groups of `groups` (those with resources, in order, as the controller counts
    /// them), agents under `ocf_root`.
    pub fn new(
        ocf_root: &Path,
        groups: &[ResourceGroup],
        fence_command: &[String],
        done: mpsc::Sender<Completion>,
        wake: OwnedFd,
    ) -> AgentWorker {
        AgentWorker {
            ocf_root: ocf_root.to_path_buf(),
            groups: Arc::new(
                groups
                    .iter()
                    .filter(|g| !g.resources.is_empty())
                    .map(|g| g.resources.clone())
                    .collect(),
            ),
            fence_command: Arc::new(fence_command.to_vec()),
            done,
            wake: Arc::new(wake),
        }
    }

    fn spawn(&self, job: impl FnOnce() -> Completion + Send + 'static) {
        let (done, wake) = (self.done.clone(), self.wake.clone());
        let spawned = std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || {
                let completion = job();
                let _ = done.send(completion);
                crate::sys::poll::wake(&wake);
            });
        if let Err(e) = spawned {
            log::error!("cannot start a thread for an agent operation: {e}");
        }
    }

    /// Runs `op` on resource `resource` of group `group` within `timeout`.
    pub fn agent(&self, group: usize, resource: usize, op: Op, timeout: Duration) {
        let (ocf_root, groups) = (self.ocf_root.clone(), self.groups.clone());
        self.spawn(move || {
            let result = match groups.get(group).and_then(|g| g.get(resource)) {
                Some(res) => {
                    let started = Instant::now();
                    let instance = instance_name(res, group, resource);
                    let result = run_agent(&ocf_root, res, &instance, op.word(), timeout)
                        .map_err(|e| e.to_string());
                    // Each start and stop with its duration: where a failover's time goes.
                    // (Monitors pass quietly unless they fail; the controller logs that.)
                    if op != Op::Monitor {
                        let level = if result.is_ok() {
                            log::Level::Info
                        } else {
                            log::Level::Error
                        };
                        log::log!(
                            level,
                            "{} {}:{} ({}): {} in {} ms",
                            op.word(),
                            res.provider,
                            res.agent,
                            res.written.split("::").next().unwrap_or(""),
                            if result.is_ok() { "done" } else { "failed" },
                            started.elapsed().as_millis()
                        );
                    }
                    result
                }
                None => Err(format!("no resource {resource} in group {group}")),
            };
            Completion::Agent {
                group,
                resource,
                op,
                result,
            }
        });
    }

    /// Runs the fence command against `node` within `timeout`.
    pub fn fence(&self, node: String, timeout: Duration) {
        let command = self.fence_command.clone();
        self.spawn(move || {
            let result = fence(&command, &node, timeout);
            Completion::Fence { node, result }
        });
    }
}
