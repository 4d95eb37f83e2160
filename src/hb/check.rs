//! `hb-monitor check`: the configuration, and every resource's agent asked to validate its
//! parameters (`validate-all`) on this node, with each problem named by file and line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::config::{self, Config};
use crate::sys::cmd::{self, CmdError};

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

/// Checks `dir` for node `node` with agents under `ocf_root`.
pub fn check(dir: &Path, ocf_root: &Path, node: &str) -> Report {
    let mut report = Report::default();
    let cfg = match config::load(dir) {
        Ok(cfg) => cfg,
        Err(errors) => {
            report.errors = errors.iter().map(ToString::to_string).collect();
            return report;
        }
    };
    report.notes = cfg.ha_cf.notes.clone();
    if !cfg.ha_cf.nodes.iter().any(|n| n == node) {
        report.errors.push(format!(
            "{}: this node ({node}, from uname -n) is not one of the nodes ({})",
            dir.join("ha.cf").display(),
            cfg.ha_cf.nodes.join(", ")
        ));
    }
    let ha = &cfg.ha_cf;
    let ha_cf = dir.join("ha.cf");
    if let Some(device) = &ha.watchdog
        && !device.exists()
    {
        report.errors.push(format!(
            "{}: watchdog {} does not exist (load a watchdog driver, e.g. `modprobe softdog`)",
            ha_cf.display(),
            device.display()
        ));
    }
    for device in ha.media.iter().filter_map(|m| match m {
        config::Medium::Serial { device } => Some(device),
        _ => None,
    }) {
        if !device.exists() {
            report.errors.push(format!(
                "{}: serial {} does not exist",
                ha_cf.display(),
                device.display()
            ));
        }
    }
    if let Some(program) = ha.fence_command.first()
        && !Path::new(program).is_file()
    {
        report.errors.push(format!(
            "{}: fence_command {program} does not exist",
            ha_cf.display()
        ));
    }
    if ha.fence_command.is_empty() && !cfg.groups.is_empty() {
        report.notes.push(
            "no fence_command: a node whose daemon dies or whose links all fail keeps what it runs while its peer takes over (split brain)".into(),
        );
    }
    let haresources = dir.join("haresources");
    for (index, res) in cfg.groups.iter().flat_map(|g| &g.resources).enumerate() {
        let agent = ocf_root
            .join("resource.d")
            .join(&res.provider)
            .join(&res.agent);
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
        let mut command = Command::new(&agent);
        command
            .arg("validate-all")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("OCF_ROOT", ocf_root)
            .env("OCF_RA_VERSION_MAJOR", "1")
            .env("OCF_RA_VERSION_MINOR", "1")
            .env("OCF_RESOURCE_INSTANCE", format!("{}_{index}", res.agent))
            .env("OCF_RESOURCE_PROVIDER", &res.provider)
            .env("OCF_RESOURCE_TYPE", &res.agent)
            .env(
                "OCF_RESKEY_CRM_meta_timeout",
                VALIDATE_TIMEOUT.as_millis().to_string(),
            );
        for (name, value) in &res.params {
            command.env(format!("OCF_RESKEY_{name}"), value);
        }
        match cmd::run(&mut command, VALIDATE_TIMEOUT) {
            Ok(_) => {}
            Err(CmdError::Failed { status, stderr, .. }) => {
                let reason = stderr
                    .lines()
                    .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
                    .next_back()
                    .unwrap_or(stderr.lines().last().unwrap_or(""))
                    .to_string();
                report.errors.push(format!(
                    "{here}: {} validate-all failed ({}): {reason}",
                    res.agent,
                    status
                        .code()
                        .map_or("killed".to_string(), |c| format!("exit {c}"))
                ));
            }
            Err(e) => report.errors.push(format!("{here}: {e}")),
        }
    }
    report.config = Some(cfg);
    report
}
