//! `hb-monitor check`: the configuration, every script found where Heartbeat would run it,
//! and every OCF agent asked to validate its parameters (`validate-all`) on this node, with
//! each problem named by file and line.

use std::path::Path;
use std::time::Duration;

use super::agent_worker;
use super::config::{self, Config, ResourceClass};
use super::preflight;

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems, each a full sentence with file and line.
    pub errors: Vec<String>,
    /// Accepted directives that change nothing, and other remarks.
    pub notes: Vec<String>,
    /// The configuration, when it could be read.
    pub config: Option<Config>,
}

/// How long one agent's `validate-all` may take.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(20);

/// Checks `dir` for node `node` with agents under `ocf_root`, init scripts in `init_dir`
/// and the state kept in `state_dir`: first everything `run` would refuse, through the same
/// code ([`preflight::load`], [`config::resolve_scripts`]), then the agents.
pub fn check(dir: &Path, ocf_root: &Path, init_dir: &Path, state_dir: &Path, node: &str) -> Report {
    let mut report = Report::default();
    let mut cfg = match preflight::load(dir, state_dir) {
        Ok(cfg) => cfg,
        Err(errors) => {
            report.errors = errors.iter().map(ToString::to_string).collect();
            return report;
        }
    };
    let errors = config::resolve_scripts(&mut cfg, &config::ScriptDirs::new(dir, init_dir), node);
    if !errors.is_empty() {
        report.errors = errors.iter().map(ToString::to_string).collect();
        return report;
    }
    report.notes = cfg.ha_cf.notes.clone();
    if !cfg.ha_cf.nodes.iter().any(|n| n == node) {
        report.errors.push(format!(
            "{}: this node ({node}, from uname -n) is not one of the nodes ({})",
            dir.join("ha.cf").display(),
            cfg.ha_cf.nodes.join(", ")
        ));
    }
    let ha = &cfg.ha_cf;
    if ha.fence_command.is_empty() && !cfg.groups.is_empty() {
        report.notes.push(
            "no fence_command: a node whose daemon dies or whose links all fail keeps what it runs while its peer takes over (split brain)".into(),
        );
    }
    let haresources = dir.join("haresources");
    let groups = cfg.groups.iter().filter(|g| !g.resources.is_empty());
    for (group, index, res) in groups.enumerate().flat_map(|(g, group)| {
        group
            .resources
            .iter()
            .enumerate()
            .map(move |(i, r)| (g, i, r))
    }) {
        if res.class != ResourceClass::Ocf {
            // Found where Heartbeat would run it (resolve_scripts); scripts validate nothing.
            continue;
        }
        let agent = agent_worker::agent_path(ocf_root, res);
        let here = format!("{}:{}: {}", haresources.display(), res.line, res.written);
        if !agent.is_file() {
            report.errors.push(format!(
                "{here}: agent ocf:{}:{} is not installed ({} missing)",
                res.provider,
                res.agent,
                agent.display()
            ));
            continue;
        }
        match agent_worker::run_agent(
            ocf_root,
            res,
            &agent_worker::instance_name(res, group, index),
            "validate-all",
            VALIDATE_TIMEOUT,
        ) {
            Ok(()) => {}
            Err(failure) => report.errors.push(match failure.code {
                Some(code) => format!(
                    "{here}: {} validate-all failed (exit {code}): {}",
                    res.agent, failure.reason
                ),
                None => format!(
                    "{here}: {} validate-all failed: {}",
                    res.agent, failure.reason
                ),
            }),
        }
    }
    report.config = Some(cfg);
    report
}
