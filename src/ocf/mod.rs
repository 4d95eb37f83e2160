//! The OCF resource-agent framework shared by every ferroha agent.
//!
//! An agent implements [`ResourceAgent`]; [`run`] (called by the binaries' [`main`]) owns
//! everything else: reading the action and the parameters (environment or `--name value`
//! flags), validation, the OCF call-order rules, the op-timeout deadline, logging, the exit
//! reason and the exit code.

mod context;
mod error;
pub mod log;
pub mod meta;
mod params;
mod rc;
mod run;

use std::fmt;
use std::str::FromStr;

pub use context::{Context, Deadline};
pub use error::{AgentError, AgentResult, io_error};
pub use params::{ParamSpec, ParamType, Params, parse_bool};
pub use rc::OcfRc;
pub use run::{main, run, run_with};

/// An OCF action (the first command-line argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Bring the resource up.
    Start,
    /// Take it down; must succeed when already down.
    Stop,
    /// Report its state (0, 7, 8, or an error).
    Monitor,
    /// LSB-era alias of monitor that also prints running/stopped.
    Status,
    /// Print the meta-data XML.
    MetaData,
    /// Check the configuration.
    ValidateAll,
    /// Promotable clones: become the promoted instance.
    Promote,
    /// Promotable clones: leave the promoted role.
    Demote,
    /// Clone notifications.
    Notify,
    /// Re-read the configuration without a restart.
    Reload,
    /// Print a usage line.
    Usage,
}

impl Action {
    /// Every action, for help texts.
    pub const ALL: [Action; 11] = [
        Action::Start,
        Action::Stop,
        Action::Monitor,
        Action::Status,
        Action::MetaData,
        Action::ValidateAll,
        Action::Promote,
        Action::Demote,
        Action::Notify,
        Action::Reload,
        Action::Usage,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::Status => "status",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::Notify => "notify",
            Action::Reload => "reload",
            Action::Usage => "usage",
        }
    }
}

impl FromStr for Action {
    type Err = ();
    fn from_str(s: &str) -> Result<Action, ()> {
        match s {
            // `help` is the shell agents' alias of usage; `meta_data` a common misspelling
            // Heartbeat-era tools used.
            "help" => Ok(Action::Usage),
            "meta_data" => Ok(Action::MetaData),
            _ => Action::ALL.into_iter().find(|a| a.name() == s).ok_or(()),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `monitor` found. Not running and promoted are results, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Running (0).
    Running,
    /// Cleanly stopped (7).
    Stopped,
    /// Running in the promoted role (8).
    Promoted,
}

impl Status {
    /// The exit code for this result.
    pub fn rc(self) -> OcfRc {
        match self {
            Status::Running => OcfRc::Success,
            Status::Stopped => OcfRc::NotRunning,
            Status::Promoted => OcfRc::RunningPromoted,
        }
    }
}

/// A resource agent. The dispatcher ([`run`]) calls these after reading the parameters; an
/// agent never sees `argv` and never decides call order.
pub trait ResourceAgent {
    /// The validated configuration built from the parameters.
    type Config;

    /// The OCF type name (`vip`): the meta-data's `name`, the installed file name.
    fn type_name(&self) -> &'static str;

    /// The meta-data XML (`include_str!("../../ocf-meta/<type>.xml")`).
    fn meta_data(&self) -> &'static str;

    /// The parameter table: one source for validation, defaults, the CLI and the meta-data.
    fn params(&self) -> &'static [ParamSpec];

    /// Turns type-checked parameters into a configuration, without touching the system:
    /// syntax and consistency only. Failing here makes `stop` and probes take the
    /// `*_unconfigured` paths below.
    fn configure(&self, params: &Params) -> AgentResult<Self::Config>;

    /// `validate-all`: the configuration plus the checks that need the system (interfaces,
    /// binaries, devices). Returns 0, or 2/4/5/6.
    fn validate(&self, config: &Self::Config, ctx: &Context) -> AgentResult<()>;

    /// Start; must be idempotent (start of a started resource returns 0).
    fn start(&self, config: &Self::Config, ctx: &Context) -> AgentResult<()>;

    /// Stop; must be idempotent and leave nothing running when it returns 0.
    fn stop(&self, config: &Self::Config, ctx: &Context) -> AgentResult<()>;

    /// Monitor at depth `ctx.check_level`.
    fn monitor(&self, config: &Self::Config, ctx: &Context) -> AgentResult<Status>;

    /// `stop` when [`configure`](Self::configure) failed: stop whatever can still be
    /// identified from the raw parameters (ra-dev-guide: stop must be attempted), and
    /// return 0 when nothing of this resource can be running.
    fn stop_unconfigured(
        &self,
        params: &Params,
        ctx: &Context,
        error: &AgentError,
    ) -> AgentResult<()>;

    /// A probe when [`configure`](Self::configure) failed: is anything of this resource
    /// visibly active? If not, the probe reports 7 (not running); if so, the error.
    fn active_unconfigured(&self, params: &Params, ctx: &Context) -> bool;

    /// Promote (promotable clones only).
    fn promote(&self, _config: &Self::Config, _ctx: &Context) -> AgentResult<()> {
        Err(AgentError::Unimplemented(
            "promote is not supported by this agent".into(),
        ))
    }

    /// Demote (promotable clones only).
    fn demote(&self, _config: &Self::Config, _ctx: &Context) -> AgentResult<()> {
        Err(AgentError::Unimplemented(
            "demote is not supported by this agent".into(),
        ))
    }

    /// Clone notification.
    fn notify(&self, _config: &Self::Config, _ctx: &Context) -> AgentResult<()> {
        Err(AgentError::Unimplemented(
            "notify is not supported by this agent".into(),
        ))
    }

    /// Reload the configuration in place.
    fn reload(&self, _config: &Self::Config, _ctx: &Context) -> AgentResult<()> {
        Err(AgentError::Unimplemented(
            "reload is not supported by this agent".into(),
        ))
    }

    /// An internal task the agent re-executes itself for (argv[1] starts with `__`), such
    /// as vip-agent's detached ARP announcer. `None`: no such task.
    fn internal_task(&self, _name: &str, _args: &[String]) -> Option<OcfRc> {
        None
    }
}
