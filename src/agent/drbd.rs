//! drbd-agent: a DRBD resource, the counterpart of LINBIT's drbd agent and of Heartbeat's
//! drbddisk. DRBD is driven through `drbdadm` and read with one `drbdsetup events2 --now`
//! ([`crate::sys::drbd`]), behind the [`DrbdCtl`] trait so that every decision is unit-tested
//! against the output real DRBD printed; the VM tier runs the agent against real DRBD.
//!
//! Two modes, chosen by how the agent is run (see the meta-data): a promotable clone under
//! Pacemaker, or a plain primitive in an hb-monitor group where start means "Primary here".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ocf::{
    AgentError, AgentResult, Context, ParamSpec, ParamType, Params, ResourceAgent, Status,
};
use crate::sys::cmd::{self, CmdError};
use crate::sys::drbd::{self, DEFAULT_SCORES, Disk, ResourceState, Role};

const META: &str = include_str!("../../ocf-meta/drbd.xml");

/// The parameter table (LINBIT's names where they apply).
/// Also the fallback where the configuration could not be parsed (stop/probe of a bad config).
const DEFAULT_DRBDSETUP: &str = "/usr/sbin/drbdsetup";
/// How long a plain start waits for DRBD to notice that a Primary peer is gone (a fenced
/// node): DRBD's default `ping-int` 10 s + `ping-timeout` 0.5 s, with a margin.
const PEER_GONE_WAIT: Duration = Duration::from_secs(15);

/// How long a stop waits for `drbdadm disconnect` to take effect before outdating.
const STANDALONE_WAIT: Duration = Duration::from_secs(3);

pub static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("drbd_resource", "DRBD resource name")
        .required()
        .unique(),
    ParamSpec::new("drbdconf", "DRBD configuration file").default("/etc/drbd.conf"),
    ParamSpec::new("adjust_master_score", "four ascending promotion scores")
        .default("0 10 1000 10000"),
    ParamSpec::new(
        "stop_outdates_secondary",
        "outdate own data on stop while the peer is Primary",
    )
    .kind(ParamType::Boolean)
    .default("false"),
    ParamSpec::new("force_promote", "promote without the safety checks")
        .kind(ParamType::Boolean)
        .default("false"),
    ParamSpec::new("drbdadm", "drbdadm binary").default("/usr/sbin/drbdadm"),
    ParamSpec::new("drbdsetup", "drbdsetup binary").default(DEFAULT_DRBDSETUP),
];

/// The actions the meta-data advertises.
pub const ACTIONS: &[&str] = &[
    "start",
    "stop",
    "promote",
    "demote",
    "notify",
    "monitor",
    "validate-all",
    "meta-data",
];

/// A validated drbd configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdConfig {
    /// Resource name.
    pub resource: String,
    /// Configuration file.
    pub drbdconf: PathBuf,
    /// Promotion scores.
    pub scores: [u32; 4],
    /// Outdate on stop while the peer is Primary.
    pub stop_outdates_secondary: bool,
    /// Skip the promotion safety checks.
    pub force_promote: bool,
    /// drbdadm.
    pub drbdadm: PathBuf,
    /// drbdsetup.
    pub drbdsetup: PathBuf,
}

/// A failed DRBD command: its exit code and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdFailure {
    /// Exit code (None: could not run, or timed out).
    pub code: Option<i32>,
    /// The message.
    pub message: String,
    /// The program is not installed.
    pub not_found: bool,
}

/// DRBD as the agent uses it.
pub trait DrbdCtl {
    /// `drbdsetup events2 --now <res>` output. Takes the tool and the resource rather than a
    /// whole configuration: a stop or probe with unusable parameters still asks DRBD.
    fn events2(
        &self,
        drbdsetup: &Path,
        resource: &str,
        timeout: Duration,
    ) -> Result<String, DrbdFailure>;
    /// `drbdsetup down <res>` (needs no configuration file).
    fn setup_down(
        &self,
        drbdsetup: &Path,
        resource: &str,
        timeout: Duration,
    ) -> Result<(), DrbdFailure>;
    /// `drbdsetup outdate <minor>`.
    fn setup_outdate(
        &self,
        drbdsetup: &Path,
        minor: u32,
        timeout: Duration,
    ) -> Result<(), DrbdFailure>;
    /// `drbdadm -c <conf> <args…> <res>`.
    fn drbdadm(
        &self,
        cfg: &DrbdConfig,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, DrbdFailure>;
    /// `drbdadm --version`: the module's and the tools' versions as shell assignments.
    fn drbdadm_version(&self, drbdadm: &Path, timeout: Duration) -> Result<String, DrbdFailure>;
    /// Publishes (Some) or removes (None) the promotion score.
    fn set_score(&self, instance: &str, score: Option<u32>);
}

/// The real DRBD, through its command-line tools.
pub struct KernelDrbd;

fn failure(e: CmdError) -> DrbdFailure {
    DrbdFailure {
        code: e.exit_code(),
        not_found: e.is_not_found(),
        message: match &e {
            CmdError::Failed { stderr, stdout, .. } => {
                let text = if stderr.is_empty() {
                    stdout.trim()
                } else {
                    stderr.as_str()
                };
                // drbdadm adds "Command 'drbdsetup-84 …' terminated with exit code N".
                text.lines()
                    .filter(|l| !l.starts_with("Command '"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            _ => e.to_string(),
        },
    }
}

impl DrbdCtl for KernelDrbd {
    fn events2(
        &self,
        drbdsetup: &Path,
        resource: &str,
        timeout: Duration,
    ) -> Result<String, DrbdFailure> {
        let mut c = Command::new(drbdsetup);
        c.args(["events2", "--now", resource]);
        cmd::run(&mut c, timeout).map(|o| o.stdout).map_err(failure)
    }
    fn setup_down(
        &self,
        drbdsetup: &Path,
        resource: &str,
        timeout: Duration,
    ) -> Result<(), DrbdFailure> {
        let mut c = Command::new(drbdsetup);
        c.args(["down", resource]);
        cmd::run(&mut c, timeout).map(|_| ()).map_err(failure)
    }
    fn setup_outdate(
        &self,
        drbdsetup: &Path,
        minor: u32,
        timeout: Duration,
    ) -> Result<(), DrbdFailure> {
        let mut c = Command::new(drbdsetup);
        c.args(["outdate", &minor.to_string()]);
        cmd::run(&mut c, timeout).map(|_| ()).map_err(failure)
    }
    fn drbdadm(
        &self,
        cfg: &DrbdConfig,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, DrbdFailure> {
        let mut c = Command::new(&cfg.drbdadm);
        c.arg("-c").arg(&cfg.drbdconf).args(args).arg(&cfg.resource);
        cmd::run(&mut c, timeout).map(|o| o.stdout).map_err(failure)
    }
    fn drbdadm_version(&self, drbdadm: &Path, timeout: Duration) -> Result<String, DrbdFailure> {
        let mut c = Command::new(drbdadm);
        c.arg("--version");
        cmd::run(&mut c, timeout).map(|o| o.stdout).map_err(failure)
    }
    fn set_score(&self, instance: &str, score: Option<u32>) {
        let mut c = Command::new("crm_attribute");
        c.env("OCF_RESOURCE_INSTANCE", instance)
            .args(["--promotion", "--lifetime", "reboot"]);
        match score {
            Some(s) => c.args(["--update", &s.to_string()]),
            None => c.arg("--delete"),
        };
        if let Err(e) = cmd::run(&mut c, Duration::from_secs(10)) {
            log::warn!("cannot publish the promotion score ({score:?}): {e}");
        }
    }
}

/// The drbd resource agent.
pub struct DrbdAgent {
    ctl: Box<dyn DrbdCtl>,
}

impl Default for DrbdAgent {
    fn default() -> Self {
        DrbdAgent {
            ctl: Box::new(KernelDrbd),
        }
    }
}

/// Is the DRBD kernel module loaded? Without it nothing of any resource can be up.
fn module_loaded() -> bool {
    std::path::Path::new("/proc/drbd").exists() || std::path::Path::new("/sys/module/drbd").exists()
}

/// Run as a promotable clone (Pacemaker) rather than a plain primitive (hb-monitor)?
fn promotable(ctx: &Context) -> bool {
    let set = |name: &str| ctx.var(name).is_some_and(|v| !v.is_empty());
    ctx.var("OCF_RESKEY_CRM_meta_promotable")
        .is_some_and(|v| crate::ocf::parse_bool(v) == Some(true))
        || set("OCF_RESKEY_CRM_meta_master_max")
        || set("OCF_RESKEY_CRM_meta_promoted_max")
        || set("OCF_RESKEY_CRM_meta_clone_max")
}

/// The clone options a DRBD resource can honour, LINBIT's checks: one instance per node, at
/// most two Primaries (not even DRBD 9 handles more without risking corruption), and no more
/// instances than nodes that can run one: two on 8.4, the resource's nodes on DRBD 9.
/// Wrong everywhere, so 6.
fn check_clone_limits(ctx: &Context, v: drbd::Versions, nodes: usize) -> AgentResult<()> {
    /// The first of `names` Pacemaker set (newer and older spellings), and its number.
    fn meta<'a>(ctx: &Context, names: &[&'a str]) -> Option<(&'a str, Option<u64>)> {
        names.iter().find_map(|n| {
            ctx.var(&format!("OCF_RESKEY_CRM_meta_{n}"))
                .filter(|v| !v.is_empty())
                .map(|v| (*n, v.parse::<u64>().ok()))
        })
    }
    let limit = |names: &[&str], max: u64, why: &str| -> AgentResult<()> {
        match meta(ctx, names) {
            Some((_, Some(n))) if n <= max => Ok(()),
            Some((name, value)) => Err(AgentError::Configured(format!(
                "{name}={} but {why}",
                value.map_or_else(|| "(not a number)".to_string(), |n| n.to_string())
            ))),
            None => Ok(()),
        }
    };
    limit(
        &["clone_node_max"],
        1,
        "DRBD runs one instance of a resource per node",
    )?;
    limit(
        &["promoted_node_max", "master_node_max"],
        1,
        "DRBD runs one instance of a resource per node",
    )?;
    limit(
        &["promoted_max", "master_max"],
        2,
        "DRBD cannot safely have more than two Primaries",
    )?;
    let two_primaries =
        meta(ctx, &["promoted_max", "master_max"]).is_some_and(|(_, n)| n == Some(2));
    if v.is_v9() && !two_primaries {
        limit(
            &["clone_max"],
            nodes as u64,
            &format!("the resource's configuration names {nodes} nodes"),
        )
    } else {
        limit(
            &["clone_max"],
            2,
            if v.is_v9() {
                "two Primaries need exactly two nodes"
            } else {
                "DRBD 8.4 replicates between two nodes"
            },
        )
    }
}

fn step_timeout(ctx: &Context) -> Duration {
    ctx.deadline
        .cap(Duration::from_secs(60))
        .max(Duration::from_millis(100))
}

impl DrbdAgent {
    /// An agent on the given DRBD (unit tests).
    pub fn with(ctl: Box<dyn DrbdCtl>) -> DrbdAgent {
        DrbdAgent { ctl }
    }

    fn installed_error(&self, f: &DrbdFailure, what: &str) -> AgentError {
        if f.not_found {
            AgentError::Installed(format!("{what} is not installed"))
        } else if !module_loaded() {
            // drbd-utils without the kernel module (drbdsetup's modprobe failed): what this
            // node lacks, 5 as in LINBIT's agent; callers turn it into 7 for a probe and 0
            // for a stop, since nothing of DRBD can be up.
            AgentError::Installed(format!(
                "{what}: the DRBD kernel module is not loaded on this node: {}",
                f.message
            ))
        } else {
            AgentError::Generic(format!("{what}: {}", f.message))
        }
    }

    /// The resource's state; None when it is down.
    fn state(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<Option<ResourceState>> {
        let out = self
            .ctl
            .events2(&cfg.drbdsetup, &cfg.resource, step_timeout(ctx))
            .map_err(|f| self.installed_error(&f, "drbdsetup events2"))?;
        drbd::parse_events2(&out, &cfg.resource).map_err(|e| AgentError::Generic(e.to_string()))
    }

    fn adm(&self, cfg: &DrbdConfig, ctx: &Context, args: &[&str]) -> Result<String, DrbdFailure> {
        log::info!("drbdadm {} {}", args.join(" "), cfg.resource);
        self.ctl.drbdadm(cfg, args, step_timeout(ctx))
    }

    fn rescore(&self, cfg: &DrbdConfig, ctx: &Context, state: Option<&ResourceState>) {
        if promotable(ctx) {
            self.ctl.set_score(
                &ctx.instance,
                state.and_then(|s| s.promotion_score(cfg.scores)),
            );
        }
    }

    /// Brings the resource up (attached, connecting) when it is down. One that is up already
    /// is adjusted to its configuration when part of it is missing (a volume detached or
    /// never attached, a peer never configured), as LINBIT's agent re-attaches, and on a
    /// clone's start, where a changed configuration is applied (LINBIT's agent adjusts there
    /// too). A primitive's start is hb-monitor's takeover, so a complete resource is not
    /// adjusted there: a changed configuration is for the operator's `drbdadm adjust`.
    fn up(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<ResourceState> {
        if let Some(s) = self.state(cfg, ctx)? {
            let half = s.half_configured();
            if half.is_none() && !promotable(ctx) {
                return Ok(s);
            }
            if let Some(what) = &half {
                log::warn!("{} is up but {what}: adjusting it", cfg.resource);
            }
            // A failed adjust leaves the resource as it was; what is still missing shows in
            // the state read next (a promotion refuses a detached volume, monitor reports it).
            if let Err(f) = self.adm(cfg, ctx, &["adjust"]) {
                log::warn!("drbdadm adjust {}: {}", cfg.resource, f.message);
            }
            return self.state(cfg, ctx)?.ok_or_else(|| {
                AgentError::Generic(format!("{} went down during drbdadm adjust", cfg.resource))
            });
        }
        self.adm(cfg, ctx, &["up"]).map_err(|f| {
            AgentError::Generic(format!("drbdadm up {}: {}", cfg.resource, f.message))
        })?;
        self.state(cfg, ctx)?.ok_or_else(|| {
            AgentError::Generic(format!("{} is still down after drbdadm up", cfg.resource))
        })
    }

    fn become_primary(
        &self,
        cfg: &DrbdConfig,
        ctx: &Context,
        state: &ResourceState,
    ) -> AgentResult<()> {
        if state.role == Role::Primary {
            return Ok(());
        }
        let waited;
        let state = if !promotable(ctx) && state.peer_primary() {
            waited = self.wait_for_peer_primary_to_go(cfg, ctx, state)?;
            &waited
        } else {
            state
        };
        let settled;
        let state = if state.promotion_refusal().is_some() && state.disk_in_transition() {
            settled = self.wait_for_disk_to_settle(cfg, ctx, state)?;
            &settled
        } else {
            state
        };
        let forced = match state.promotion_refusal() {
            Some(why) if !cfg.force_promote => {
                return Err(AgentError::Generic(format!("refusing to promote: {why}")));
            }
            Some(why) => {
                log::warn!("force_promote: promoting although {why}");
                true
            }
            None => false,
        };
        let args: &[&str] = if forced {
            &["primary", "--force"]
        } else {
            &["primary"]
        };
        self.adm(cfg, ctx, args).map_err(|f| {
            AgentError::Generic(format!("drbdadm primary {}: {}", cfg.resource, f.message))
        })?;
        match self.state(cfg, ctx)? {
            Some(s) if s.role == Role::Primary => Ok(()),
            _ => Err(AgentError::Generic(format!(
                "{} is not Primary after drbdadm primary",
                cfg.resource
            ))),
        }
    }

    /// A plain start (Heartbeat's drbddisk role) right after the peer was fenced: DRBD
    /// notices a vanished peer only when its ping times out (up to `ping-int` + `ping-timeout`,
    /// about 10.5 s with DRBD's defaults); until then it still shows the peer connected and
    /// Primary, and `drbdadm primary` is refused. Wait for that, as drbddisk retries, for at
    /// most [`PEER_GONE_WAIT`] and within the op's time; a peer that stays Primary (it is
    /// alive) is then refused as before.
    fn wait_for_peer_primary_to_go(
        &self,
        cfg: &DrbdConfig,
        ctx: &Context,
        state: &ResourceState,
    ) -> AgentResult<ResourceState> {
        let until = std::time::Instant::now()
            + ctx
                .deadline
                .remaining()
                .saturating_sub(Duration::from_secs(2))
                .min(PEER_GONE_WAIT);
        if std::time::Instant::now() < until {
            log::info!(
                "the peer of {} is still Primary: waiting up to {} s for DRBD to see it gone",
                cfg.resource,
                until
                    .saturating_duration_since(std::time::Instant::now())
                    .as_secs()
            );
        }
        self.poll_while(
            cfg,
            ctx,
            state.clone(),
            until,
            Duration::from_millis(200),
            |s| s.peer_primary(),
        )
    }

    /// Re-reads the state every `every` while `pending` holds of it, until `until` or the
    /// resource goes down; returns the last state read.
    fn poll_while(
        &self,
        cfg: &DrbdConfig,
        ctx: &Context,
        mut state: ResourceState,
        until: std::time::Instant,
        every: Duration,
        pending: impl Fn(&ResourceState) -> bool,
    ) -> AgentResult<ResourceState> {
        while pending(&state) && std::time::Instant::now() < until {
            std::thread::sleep(every);
            match self.state(cfg, ctx)? {
                Some(s) => state = s,
                None => break,
            }
        }
        Ok(state)
    }

    /// A disk that is `Consistent` (DRBD 9's survivor of a lost Primary, for about a
    /// second), `Attaching` or `Negotiating` settles by itself: wait for that within the op's
    /// time, as LINBIT's agent retries, instead of refusing at once. Returns the last state;
    /// the caller decides on it.
    fn wait_for_disk_to_settle(
        &self,
        cfg: &DrbdConfig,
        ctx: &Context,
        state: &ResourceState,
    ) -> AgentResult<ResourceState> {
        let until = std::time::Instant::now()
            + ctx
                .deadline
                .remaining()
                .saturating_sub(Duration::from_secs(2));
        log::info!(
            "{}'s disk is {:?}: waiting for it to settle before promoting",
            cfg.resource,
            state.devices.iter().map(|d| d.disk).collect::<Vec<_>>()
        );
        self.poll_while(
            cfg,
            ctx,
            state.clone(),
            until,
            Duration::from_millis(100),
            |s| s.promotion_refusal().is_some() && s.disk_in_transition(),
        )
    }

    /// Outdates every volume after a `disconnect`. DRBD 9 tears connections down
    /// asynchronously and refuses to outdate until they are StandAlone: waits for that, at
    /// most [`STANDALONE_WAIT`]. By minor through drbdsetup: drbd-utils 9.22's `drbdadm
    /// outdate` passes DRBD 9 a resource name where drbdsetup wants a minor, then falls back to
    /// drbdmeta, which refuses a configured device (seen on 9.2.18 in the VM tier).
    fn outdate(&self, cfg: &DrbdConfig, ctx: &Context, state: &ResourceState) -> AgentResult<()> {
        if let Some(now) = self.state(cfg, ctx)? {
            self.poll_while(
                cfg,
                ctx,
                now,
                std::time::Instant::now() + STANDALONE_WAIT,
                Duration::from_millis(50),
                |s| s.connections.iter().any(|c| c.state != "StandAlone"),
            )?;
        }
        for d in &state.devices {
            log::info!(
                "drbdsetup outdate {} ({} volume {})",
                d.minor,
                cfg.resource,
                d.volume
            );
            if let Err(f) = self
                .ctl
                .setup_outdate(&cfg.drbdsetup, d.minor, step_timeout(ctx))
            {
                log::warn!("drbdsetup outdate {}: {}", d.minor, f.message);
            }
        }
        Ok(())
    }

    fn become_secondary(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<()> {
        match self.state(cfg, ctx)? {
            Some(s) if s.role == Role::Primary => {}
            _ => return Ok(()),
        }
        self.adm(cfg, ctx, &["secondary"]).map_err(|f| {
            // 11 is drbdsetup's "state change failed", whatever the cause; DRBD names the
            // cause in its message, and only "held open" means a mount or a process.
            let why = if f.code == Some(11) && f.message.contains("held open") {
                " (the device is still open: a mount or a process holds it)"
            } else {
                ""
            };
            AgentError::Generic(format!(
                "drbdadm secondary {}: {}{why}",
                cfg.resource, f.message
            ))
        })?;
        Ok(())
    }
}

fn parse_scores(text: &str) -> AgentResult<[u32; 4]> {
    let values: Vec<u32> = text
        .split_whitespace()
        .map(|v| v.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            AgentError::Configured(format!("adjust_master_score '{text}' is not four numbers"))
        })?;
    match values.as_slice() {
        [a, b, c, d] if a <= b && b <= c && c <= d => Ok([*a, *b, *c, *d]),
        _ => Err(AgentError::Configured(format!(
            "adjust_master_score '{text}' must be four ascending numbers"
        ))),
    }
}

impl ResourceAgent for DrbdAgent {
    type Config = DrbdConfig;

    fn type_name(&self) -> &'static str {
        "drbd"
    }

    fn meta_data(&self) -> &'static str {
        META
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn configure(&self, p: &Params) -> AgentResult<DrbdConfig> {
        let resource = p.required_str("drbd_resource")?;
        // LINBIT's rule: names of these characters only.
        let valid = !resource.is_empty()
            && resource
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-%+./:=@_".contains(c));
        if !valid {
            return Err(AgentError::Configured(format!(
                "drbd_resource '{resource}' has characters DRBD does not allow"
            )));
        }
        let path = |name: &str| -> AgentResult<PathBuf> {
            let v = p.required_str(name)?;
            if v.starts_with('/') {
                Ok(PathBuf::from(v))
            } else {
                Err(AgentError::Configured(format!(
                    "{name} '{v}' must be an absolute path"
                )))
            }
        };
        Ok(DrbdConfig {
            resource: resource.to_string(),
            drbdconf: path("drbdconf")?,
            scores: match p.get("adjust_master_score") {
                Some(s) => parse_scores(s)?,
                None => DEFAULT_SCORES,
            },
            stop_outdates_secondary: p.bool("stop_outdates_secondary")?,
            force_promote: p.bool("force_promote")?,
            drbdadm: path("drbdadm")?,
            drbdsetup: path("drbdsetup")?,
        })
    }

    fn validate(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<()> {
        for bin in [&cfg.drbdadm, &cfg.drbdsetup] {
            if !bin.exists() {
                return Err(AgentError::Installed(format!(
                    "{} is not installed",
                    bin.display()
                )));
            }
        }
        if std::fs::File::open(&cfg.drbdconf).is_err() {
            return Err(AgentError::Installed(format!(
                "{} cannot be read",
                cfg.drbdconf.display()
            )));
        }
        // drbdadm's own check of the configuration; its message goes to the operator as is.
        // The file is this node's own copy: one that lacks the resource or does not parse is
        // 5, which bans this node, as LINBIT's agent says ("the local config may be broken,
        // but some other node may have a valid config"), never 6, which stops DRBD on all.
        let dump = self
            .ctl
            .drbdadm(cfg, &["dump"], step_timeout(ctx))
            .map_err(|f| {
                if f.not_found {
                    AgentError::Installed(format!("{} is not installed", cfg.drbdadm.display()))
                } else {
                    AgentError::Installed(format!(
                        "drbdadm rejects {} for {}: {}",
                        cfg.drbdconf.display(),
                        cfg.resource,
                        f.message
                    ))
                }
            })?;
        let versions = match self.ctl.drbdadm_version(&cfg.drbdadm, step_timeout(ctx)) {
            Ok(text) => drbd::Versions::parse(&text),
            Err(f) => {
                log::info!("drbdadm --version: {}", f.message);
                None
            }
        };
        match versions {
            // A node being prepared may get its module later (a DKMS package, a kernel
            // update); its start says what is missing then (5), as a probe says 7. Its
            // configuration is still worth checking now (`hb-monitor check`).
            Some(v) if v.module_missing() => log::warn!(
                "this node has no DRBD kernel module (drbdadm --version finds none): {} cannot start here until one is installed",
                cfg.resource
            ),
            Some(v) => {
                if let Some(why) = v.problem() {
                    return Err(AgentError::Installed(why));
                }
                check_clone_limits(ctx, v, drbd::dump_nodes(&dump))?;
                if v.is_v9() && drbd::dump_auto_promote(&dump) != Some(false) {
                    // Any process that opens the device for writing on a Secondary (a
                    // mount, mkfs, dd by hand) promotes it while no peer is Primary: behind
                    // the cluster manager's back, e.g. during a failover.
                    log::warn!(
                        "{} has auto-promote on (DRBD 9's default): a process opening {} for writing makes this node Primary outside the cluster manager's control; set `options {{ auto-promote no; }}` in its configuration",
                        cfg.resource,
                        cfg.resource
                    );
                }
            }
            // Tools that do not report versions (older drbd-utils, a test double): what the
            // module cannot do shows when it is asked to.
            None => log::info!("drbdadm --version gives no module and tools versions"),
        }
        Ok(())
    }

    fn start(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<()> {
        self.validate(cfg, ctx)?;
        let state = self.up(cfg, ctx)?;
        if promotable(ctx) {
            // A clone instance starts as Secondary; promotion is Pacemaker's decision.
            if state.role == Role::Primary {
                self.become_secondary(cfg, ctx)?;
            }
            let now = self.state(cfg, ctx)?;
            self.rescore(cfg, ctx, now.as_ref());
            Ok(())
        } else {
            self.become_primary(cfg, ctx, &state)
        }
    }

    fn stop(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<()> {
        let state = match self.state(cfg, ctx) {
            // No tools and no module: nothing can be up, so it is stopped (a failed stop
            // would get the node fenced for nothing).
            Err(e) if e.rc() == crate::ocf::OcfRc::ErrInstalled && !module_loaded() => {
                return Ok(());
            }
            other => other?,
        };
        let Some(state) = state else {
            self.rescore(cfg, ctx, None);
            return Ok(());
        };
        self.become_secondary(cfg, ctx)?;
        if promotable(ctx) {
            if cfg.stop_outdates_secondary && state.peer_primary() {
                // DRBD refuses to outdate a connected disk (the Primary keeps it current):
                // disconnect first, as LINBIT's agent does; the resource goes down next anyway.
                match self.adm(cfg, ctx, &["disconnect"]) {
                    Ok(_) => self.outdate(cfg, ctx, &state)?,
                    Err(f) => log::warn!("drbdadm disconnect {}: {}", cfg.resource, f.message),
                }
            }
            self.adm(cfg, ctx, &["down"]).map_err(|f| {
                AgentError::Generic(format!("drbdadm down {}: {}", cfg.resource, f.message))
            })?;
            self.rescore(cfg, ctx, None);
        }
        // A primitive stays up and replicating as Secondary (Heartbeat's drbddisk).
        Ok(())
    }

    fn monitor(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<Status> {
        let state = match self.state(cfg, ctx) {
            // A probe on a node without DRBD: nothing is active (OCF: 7, not 5).
            Err(e)
                if e.rc() == crate::ocf::OcfRc::ErrInstalled
                    && ctx.is_probe()
                    && !module_loaded() =>
            {
                return Ok(Status::Stopped);
            }
            other => other?,
        };
        if !ctx.is_probe() {
            self.rescore(cfg, ctx, state.as_ref());
        }
        let Some(s) = state else {
            return Ok(Status::Stopped);
        };
        if s.connections.iter().any(|c| c.state == "StandAlone") {
            // DRBD goes StandAlone after `disconnect` or on a split brain it was told not to
            // resolve. Which side's changes to throw away is the operator's decision, never
            // ours: say so on every monitor until replication runs again.
            log::warn!(
                "{} is StandAlone: not replicating. After a split brain (see the kernel log), run `drbdadm connect --discard-my-data {}` on the node whose changes are to be dropped and `drbdadm connect {}` on the other",
                cfg.resource,
                cfg.resource,
                cfg.resource
            );
        }
        // A diskless client (DRBD 9) has no disk by design; any other Diskless disk failed.
        let failed = s
            .devices
            .iter()
            .any(|d| d.disk == Disk::Failed || (d.disk == Disk::Diskless && !d.client));
        if s.role == Role::Primary && s.quorum_lost() {
            // DRBD 9 with `quorum` set: this Primary's writes now fail or hang
            // (`on-no-quorum io-error|suspend-io`), and the majority may promote another.
            let why = format!(
                "{} is Primary without quorum: its I/O fails or is suspended, and the \
                 nodes with quorum may promote another",
                cfg.resource
            );
            return Err(if promotable(ctx) {
                AgentError::FailedPromoted(why)
            } else {
                AgentError::Generic(why)
            });
        }
        match (promotable(ctx), s.role) {
            (true, Role::Primary) if failed => Err(AgentError::FailedPromoted(format!(
                "{} is Primary without a usable local disk",
                cfg.resource
            ))),
            (true, Role::Primary) => Ok(Status::Promoted),
            (true, _) => Ok(Status::Running),
            (false, Role::Primary) if failed => Err(AgentError::Generic(format!(
                "{} is Primary without a usable local disk",
                cfg.resource
            ))),
            (false, Role::Primary) => Ok(Status::Running),
            (false, _) => Ok(Status::Stopped),
        }
    }

    fn promote(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<()> {
        let state = self
            .state(cfg, ctx)?
            .ok_or_else(|| AgentError::Generic(format!("{} is not started", cfg.resource)))?;
        let result = self.become_primary(cfg, ctx, &state);
        let now = self.state(cfg, ctx)?;
        self.rescore(cfg, ctx, now.as_ref());
        result
    }

    fn demote(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<()> {
        if self.state(cfg, ctx)?.is_none() {
            return Err(AgentError::Generic(format!(
                "{} is not started",
                cfg.resource
            )));
        }
        self.become_secondary(cfg, ctx)?;
        let now = self.state(cfg, ctx)?;
        self.rescore(cfg, ctx, now.as_ref());
        Ok(())
    }

    fn notify(&self, cfg: &DrbdConfig, ctx: &Context) -> AgentResult<()> {
        let kind = ctx.var("OCF_RESKEY_CRM_meta_notify_type").unwrap_or("");
        let op = ctx
            .var("OCF_RESKEY_CRM_meta_notify_operation")
            .unwrap_or("");
        let state = self.state(cfg, ctx)?;
        if kind == "pre" && op == "start" && state.is_some() {
            // A peer is about to start: make sure we try to connect to it.
            if let Err(f) = self.adm(cfg, ctx, &["adjust"]) {
                log::warn!("drbdadm adjust {}: {}", cfg.resource, f.message);
            }
        }
        if kind == "post" {
            let now = self.state(cfg, ctx)?;
            self.rescore(cfg, ctx, now.as_ref());
        }
        Ok(())
    }

    fn stop_unconfigured(
        &self,
        params: &Params,
        ctx: &Context,
        _err: &AgentError,
    ) -> AgentResult<()> {
        // With a usable resource name, take it down as LINBIT's agent does ("drbdsetup down");
        // without one nothing of it can be up.
        let Some(resource) = params.get("drbd_resource") else {
            return Ok(());
        };
        let drbdsetup = Path::new(params.get("drbdsetup").unwrap_or(DEFAULT_DRBDSETUP));
        match self.ctl.setup_down(drbdsetup, resource, step_timeout(ctx)) {
            Ok(()) => Ok(()),
            Err(f) if f.not_found => Ok(()),
            Err(f) => Err(AgentError::Generic(format!(
                "drbdsetup down {resource}: {}",
                f.message
            ))),
        }
    }

    fn active_unconfigured(&self, params: &Params, ctx: &Context) -> bool {
        let Some(resource) = params.get("drbd_resource") else {
            return false;
        };
        let drbdsetup = Path::new(params.get("drbdsetup").unwrap_or(DEFAULT_DRBDSETUP));
        self.ctl
            .events2(drbdsetup, resource, step_timeout(ctx))
            .ok()
            .and_then(|out| drbd::parse_events2(&out, resource).ok().flatten())
            .is_some()
    }
}

#[cfg(test)]
mod tests;
