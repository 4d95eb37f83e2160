//! The dispatcher: the one place that encodes the OCF call order for every agent.
//!
//! Rules (resource-agents' ra-dev-guide, "Execution block", and `heartbeat/mysql`'s tail):
//! 1. `meta-data` and `usage`/`help` work before anything else, with an empty environment.
//! 2. Every other action validates first.
//! 3. `stop` is still attempted when validation fails.
//! 4. A probe of an unconfigured or uninstalled resource returns 7 unless something of it is
//!    visibly active.
//! 5. An unknown or unsupported action returns 3; bad flags return 2.
//! 6. Every action is bounded by `OCF_RESKEY_CRM_meta_timeout`: agents watch the deadline,
//!    and a watchdog fails the action with a clear reason just before the timeout if an agent
//!    did not, so that the caller never has to kill it mid-way.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, Command};

use super::{
    Action, AgentError, Context, OcfRc, Params, ResourceAgent, Status, log as agent_log, meta,
};

/// The agent binaries' entry point, called from the C `main` of a `#![no_main]` binary: std's
/// runtime set-up is skipped (what the agents keep of it is [`crate::sys::runtime::prepare`]),
/// and std's exit-time flush of stdout is done here. Returns the exit code.
///
/// Without std's stack-overflow handler, an overflow of the main thread's stack ends the
/// agent with SIGSEGV instead of std's message; the agents do not recurse.
pub fn main<A: ResourceAgent>(agent: &A) -> i32 {
    crate::sys::runtime::prepare();
    let rc = run(agent);
    let _ = std::io::stdout().lock().flush();
    i32::from(rc.code())
}

/// Runs the agent with the process's arguments and environment and returns its exit code.
pub fn run<A: ResourceAgent>(agent: &A) -> OcfRc {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // ra-dev-guide: meta-data works with an empty environment; the cluster manager asks for it
    // on every node and after every upgrade. Written straight from the embedded XML, before
    // the environment is read or the action hints are parsed out of the XML.
    if let [_, action] = args.as_slice()
        && action == Action::MetaData.name()
    {
        let _ = std::io::stdout()
            .lock()
            .write_all(agent.meta_data().as_bytes());
        return OcfRc::Success;
    }
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    dispatch(agent, &args, &vars, true)
}

/// Runs the agent with explicit arguments (`args[0]` is the program name) and environment,
/// in-process (tests): as [`run`], but without the timeout watchdog, which ends the process.
pub fn run_with<A: ResourceAgent>(
    agent: &A,
    args: &[String],
    vars: &BTreeMap<String, String>,
) -> OcfRc {
    dispatch(agent, args, vars, false)
}

fn dispatch<A: ResourceAgent>(
    agent: &A,
    args: &[String],
    vars: &BTreeMap<String, String>,
    watchdog: bool,
) -> OcfRc {
    let env = |name: &str| vars.get(name).cloned();
    if let Some(task) = args.get(1).filter(|a| a.starts_with("__")) {
        return agent
            .internal_task(task, &args[2..])
            .unwrap_or(OcfRc::ErrUnimplemented);
    }
    let hints = meta::action_hints(agent.meta_data());
    // Pacemaker and hb-monitor call `<agent> <action>` with everything in the environment:
    // that case needs no command-line parser (it is most of a monitor's start-up cost).
    let cli_args = match args {
        [_, action] if !action.starts_with('-') => CliArgs {
            action: Some(action.clone()),
            ..CliArgs::default()
        },
        _ => match parse_cli(agent, &hints, args) {
            Ok(parsed) => parsed,
            Err(outcome) => return report_cli_error(outcome, &env),
        },
    };
    let Some(action_name) = cli_args.action.as_ref() else {
        let _ = writeln!(std::io::stderr().lock(), "{}", usage(agent, &hints));
        return OcfRc::ErrArgs;
    };
    let supported = |a: Action| {
        matches!(a, Action::MetaData | Action::Usage)
            || hints.iter().any(|h| h.name == a.name())
            || (a == Action::Status && hints.iter().any(|h| h.name == "monitor"))
    };
    let action = match action_name.parse::<Action>() {
        Ok(a) if supported(a) => a,
        _ => {
            agent_log::exit_reason(
                &format!(
                    "{}: action '{action_name}' is not implemented",
                    agent.type_name()
                ),
                &env,
            );
            return OcfRc::ErrUnimplemented;
        }
    };
    match action {
        Action::MetaData => {
            let _ = std::io::stdout()
                .lock()
                .write_all(agent.meta_data().as_bytes());
            return OcfRc::Success;
        }
        Action::Usage => {
            let _ = writeln!(std::io::stdout().lock(), "{}", usage(agent, &hints));
            return OcfRc::Success;
        }
        _ => {}
    }

    let ctx_env: BTreeMap<String, String> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("OCF_") || k.starts_with("HA_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let instance = env("OCF_RESOURCE_INSTANCE").unwrap_or_else(|| "default".into());
    agent_log::init(agent.type_name(), &instance, action.name(), &env);

    // The meta-data's hint is the timeout for an operator who gives none; a monitor's hint
    // covers status too. 20 s is Pacemaker's own default op timeout.
    let hint_name = if action == Action::Status {
        "monitor"
    } else {
        action.name()
    };
    let default_timeout = hints
        .iter()
        .find(|h| h.name == hint_name)
        .and_then(|h| h.timeout)
        .unwrap_or(Duration::from_secs(20));
    let ctx = match Context::from_env(
        action,
        &env,
        ctx_env,
        default_timeout,
        cli_args.check_level.as_deref(),
    ) {
        Ok(ctx) => ctx,
        Err(e) => return fail(&e, &env),
    };
    if watchdog {
        start_watchdog(agent.type_name(), action, ctx.deadline, vars);
    }

    let (params, checked) = Params::collect(agent.params(), &env, &cli_args.params);
    let config = checked.and_then(|()| agent.configure(&params));

    let result = match config {
        Err(err) => match action {
            Action::Stop => {
                log::warn!("configuration invalid ({err}); stopping what can be identified");
                agent
                    .stop_unconfigured(&params, &ctx, &err)
                    .map(|()| OcfRc::Success)
            }
            Action::Monitor | Action::Status
                if ctx.is_probe() && !agent.active_unconfigured(&params, &ctx) =>
            {
                log::info!("probe: configuration invalid ({err}) and nothing active");
                Ok(OcfRc::NotRunning)
            }
            _ => Err(err),
        },
        Ok(config) => match action {
            Action::Start => agent.start(&config, &ctx).map(|()| OcfRc::Success),
            Action::Stop => agent.stop(&config, &ctx).map(|()| OcfRc::Success),
            Action::Monitor => agent.monitor(&config, &ctx).map(Status::rc),
            Action::Status => agent.monitor(&config, &ctx).map(|s| {
                let word = if s == Status::Stopped {
                    "stopped"
                } else {
                    "running"
                };
                let _ = writeln!(std::io::stdout().lock(), "{word}");
                s.rc()
            }),
            Action::ValidateAll => agent.validate(&config, &ctx).map(|()| OcfRc::Success),
            Action::Promote => agent.promote(&config, &ctx).map(|()| OcfRc::Success),
            Action::Demote => agent.demote(&config, &ctx).map(|()| OcfRc::Success),
            Action::Notify => agent.notify(&config, &ctx).map(|()| OcfRc::Success),
            Action::Reload => agent.reload(&config, &ctx).map(|()| OcfRc::Success),
            Action::MetaData | Action::Usage => Ok(OcfRc::Success),
        },
    };
    match result {
        Ok(rc) => rc,
        Err(e) => fail(&e, &env),
    }
}

/// What the command line said, beyond the environment.
#[derive(Debug, Default)]
struct CliArgs {
    action: Option<String>,
    check_level: Option<String>,
    params: BTreeMap<String, String>,
}

/// Why the command line was not parsed: help or the version was printed (0), or the error
/// to report (2).
enum CliOutcome {
    HelpPrinted,
    Invalid(String),
}

fn parse_cli<A: ResourceAgent>(
    agent: &A,
    hints: &[meta::ActionHint],
    args: &[String],
) -> Result<CliArgs, CliOutcome> {
    let cli = command_line(agent, hints);
    let matches = match cli.clone().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = write!(std::io::stdout().lock(), "{}", cli.clone().render_help());
            return Err(CliOutcome::HelpPrinted);
        }
        // `NAME VERSION`, as hb-monitor (clap) and coreutils print it: what a bug report needs.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => {
            let _ = write!(std::io::stdout().lock(), "{}", cli.render_version());
            return Err(CliOutcome::HelpPrinted);
        }
        Err(e) => {
            let detail = e.to_string();
            let first = detail.lines().next().unwrap_or("invalid arguments");
            return Err(CliOutcome::Invalid(
                first.trim_start_matches("error: ").to_string(),
            ));
        }
    };
    Ok(CliArgs {
        action: matches.get_one::<String>("action").cloned(),
        check_level: matches.get_one::<String>("check-level").cloned(),
        params: agent
            .params()
            .iter()
            .filter_map(|s| {
                Some((
                    s.name.to_string(),
                    matches.get_one::<String>(s.name)?.clone(),
                ))
            })
            .collect(),
    })
}

fn report_cli_error(outcome: CliOutcome, env: &dyn Fn(&str) -> Option<String>) -> OcfRc {
    match outcome {
        CliOutcome::HelpPrinted => OcfRc::Success,
        CliOutcome::Invalid(reason) => {
            agent_log::exit_reason(&reason, env);
            OcfRc::ErrArgs
        }
    }
}

fn fail(err: &AgentError, env: &dyn Fn(&str) -> Option<String>) -> OcfRc {
    log::error!("{err}");
    agent_log::exit_reason(err.reason(), env);
    err.rc()
}

/// The command line: one positional action, one `--<param> <value>` per table entry.
fn command_line<A: ResourceAgent>(agent: &A, hints: &[meta::ActionHint]) -> Command {
    let actions: Vec<&str> = hints.iter().map(|h| h.name.as_str()).collect();
    let mut cmd = Command::new(format!("{}-agent", agent.type_name()))
        .about(format!(
            "OCF resource agent '{}' (ocf:ferroha:{}). Parameters come from OCF_RESKEY_<name> \
             or from the flags below; a flag wins. Documentation: `meta-data`.",
            agent.type_name(),
            agent.type_name()
        ))
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            Arg::new("action")
                .value_name("ACTION")
                .help(format!("one of: {}, usage", actions.join(", "))),
        )
        .arg(
            Arg::new("check-level")
                .long("check-level")
                .value_name("N")
                .help("monitor depth (OCF_CHECK_LEVEL): 0, 10 or 20"),
        );
    for spec in agent.params() {
        let mut help = spec.help.to_string();
        if let Some(d) = spec.default {
            help.push_str(&format!(" [default: {d}]"));
        }
        if spec.required {
            help.push_str(" [required]");
        }
        cmd = cmd.arg(
            Arg::new(spec.name)
                .long(spec.name)
                .value_name(spec.kind.meta_type().to_ascii_uppercase())
                .action(ArgAction::Set)
                .help(help),
        );
    }
    cmd
}

fn usage<A: ResourceAgent>(agent: &A, hints: &[meta::ActionHint]) -> String {
    let mut actions: Vec<&str> = hints.iter().map(|h| h.name.as_str()).collect();
    actions.push("usage");
    format!(
        "usage: {}-agent {{{}}} [--<parameter> <value> ...]",
        agent.type_name(),
        actions.join("|")
    )
}

/// The reason line the watchdog prints, prepared before it is armed: a signal handler may
/// only make async-signal-safe calls (write, _exit), never format or allocate.
static WATCHDOG_REASON: OnceLock<Vec<u8>> = OnceLock::new();

extern "C" fn watchdog_fired(_signal: libc::c_int) {
    if let Some(reason) = WATCHDOG_REASON.get() {
        // SAFETY: write(2) and _exit(2) are async-signal-safe; `reason` lives forever.
        unsafe { libc::write(libc::STDERR_FILENO, reason.as_ptr().cast(), reason.len()) };
    }
    // SAFETY: ends the process at once, touching nothing the interrupted code was using.
    unsafe { libc::_exit(i32::from(OcfRc::ErrGeneric.code())) }
}

/// Fails the action with a reason shortly before the op timeout if it is still running, so
/// that the caller sees a clear failure instead of killing the agent mid-way. A one-shot
/// SIGALRM timer rather than a thread: no thread to create on every monitor, and forked
/// children do not inherit it.
fn start_watchdog(
    type_name: &'static str,
    action: Action,
    deadline: super::Deadline,
    vars: &BTreeMap<String, String>,
) {
    let fire_at = deadline.at() + (deadline.hard_at() - deadline.at()) / 2;
    let prefix = vars
        .get("OCF_EXIT_REASON_PREFIX")
        .map(String::as_str)
        .unwrap_or("ocf-exit-reason:");
    let reason = format!(
        "{prefix}{type_name} {action}: did not finish within the operation timeout ({} ms); \
         giving up before being killed\n",
        deadline.timeout().as_millis()
    );
    if WATCHDOG_REASON.set(reason.into_bytes()).is_err() {
        return; // armed already (one action per process)
    }
    let wait = fire_at
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let timer = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_usec: wait.subsec_micros() as libc::suseconds_t,
        },
    };
    // SAFETY: installs a handler that only calls async-signal-safe functions, then arms a
    // one-shot real-time timer; both calls take fully initialised structures.
    let armed = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = watchdog_fired as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut()) == 0
            && libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) == 0
    };
    if !armed {
        log::warn!(
            "could not arm the timeout watchdog: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    //! The call-order rules, against a dummy agent that records what it was asked.

    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::ocf::{AgentResult, ParamSpec, ParamType};

    static PARAMS: &[ParamSpec] = &[
        ParamSpec::new("name", "what to run").required(),
        ParamSpec::new("size", "how big")
            .kind(ParamType::Integer)
            .default("1"),
    ];
    const META: &str = r#"<?xml version="1.0"?>
<resource-agent name="dummy"><actions>
<action name="start" timeout="20s"/><action name="stop" timeout="20s"/>
<action name="monitor" timeout="20s" interval="10s"/><action name="validate-all" timeout="5s"/>
<action name="meta-data" timeout="5s"/></actions></resource-agent>"#;

    #[derive(Default)]
    struct Dummy {
        running: Cell<bool>,
        visibly_active: Cell<bool>,
        calls: RefCell<Vec<String>>,
    }

    impl ResourceAgent for Dummy {
        type Config = String;
        fn type_name(&self) -> &'static str {
            "dummy"
        }
        fn meta_data(&self) -> &'static str {
            META
        }
        fn params(&self) -> &'static [ParamSpec] {
            PARAMS
        }
        fn configure(&self, p: &Params) -> AgentResult<String> {
            let name = p.required_str("name")?;
            if name == "missing" {
                return Err(AgentError::Installed("binary missing".into()));
            }
            Ok(format!("{name}:{}", p.u64("size")?))
        }
        fn validate(&self, _: &String, _: &Context) -> AgentResult<()> {
            Ok(())
        }
        fn start(&self, c: &String, _: &Context) -> AgentResult<()> {
            self.calls.borrow_mut().push(format!("start {c}"));
            self.running.set(true);
            Ok(())
        }
        fn stop(&self, c: &String, _: &Context) -> AgentResult<()> {
            self.calls.borrow_mut().push(format!("stop {c}"));
            self.running.set(false);
            Ok(())
        }
        fn monitor(&self, _: &String, ctx: &Context) -> AgentResult<Status> {
            self.calls
                .borrow_mut()
                .push(format!("monitor depth {}", ctx.check_level));
            Ok(if self.running.get() {
                Status::Running
            } else {
                Status::Stopped
            })
        }
        fn stop_unconfigured(&self, _: &Params, _: &Context, e: &AgentError) -> AgentResult<()> {
            self.calls
                .borrow_mut()
                .push(format!("stop_unconfigured ({e})"));
            Ok(())
        }
        fn active_unconfigured(&self, _: &Params, _: &Context) -> bool {
            self.visibly_active.get()
        }
    }

    fn call(agent: &Dummy, args: &[&str], env: &[(&str, &str)]) -> OcfRc {
        let mut argv = vec!["dummy-agent".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let vars = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        run_with(agent, &argv, &vars)
    }

    #[test]
    fn meta_data_and_usage_need_no_environment() {
        let d = Dummy::default();
        assert_eq!(call(&d, &["meta-data"], &[]), OcfRc::Success);
        assert_eq!(call(&d, &["usage"], &[]), OcfRc::Success);
        assert_eq!(call(&d, &["help"], &[]), OcfRc::Success);
        assert_eq!(call(&d, &["--help"], &[]), OcfRc::Success);
        assert_eq!(call(&d, &["--version"], &[]), OcfRc::Success);
        assert!(d.calls.borrow().is_empty());
    }

    #[test]
    fn unknown_or_unadvertised_action_is_unimplemented() {
        let d = Dummy::default();
        assert_eq!(
            call(&d, &["frobnicate"], &[("OCF_RESKEY_name", "x")]),
            OcfRc::ErrUnimplemented
        );
        assert_eq!(
            call(&d, &["promote"], &[("OCF_RESKEY_name", "x")]),
            OcfRc::ErrUnimplemented
        );
        assert!(d.calls.borrow().is_empty());
    }

    #[test]
    fn missing_action_and_bad_flags_are_err_args() {
        let d = Dummy::default();
        assert_eq!(call(&d, &[], &[]), OcfRc::ErrArgs);
        assert_eq!(call(&d, &["start", "--nosuch", "1"], &[]), OcfRc::ErrArgs);
        assert_eq!(call(&d, &["start", "extra", "args"], &[]), OcfRc::ErrArgs);
        assert!(d.calls.borrow().is_empty());
    }

    #[test]
    fn flags_and_environment_feed_the_configuration() {
        let d = Dummy::default();
        let env = [("OCF_RESKEY_name", "env"), ("OCF_RESKEY_size", "2")];
        assert_eq!(call(&d, &["start", "--name", "flag"], &env), OcfRc::Success);
        assert_eq!(call(&d, &["start", "--size=3"], &env), OcfRc::Success);
        assert_eq!(*d.calls.borrow(), vec!["start flag:2", "start env:3"]);
    }

    #[test]
    fn invalid_configuration_fails_start_but_stop_is_still_attempted() {
        let d = Dummy::default();
        assert_eq!(call(&d, &["start"], &[]), OcfRc::ErrConfigured);
        assert_eq!(
            call(
                &d,
                &["validate-all"],
                &[("OCF_RESKEY_name", "x"), ("OCF_RESKEY_size", "big")]
            ),
            OcfRc::ErrConfigured
        );
        assert_eq!(call(&d, &["stop"], &[]), OcfRc::Success);
        assert_eq!(d.calls.borrow().len(), 1);
        assert!(d.calls.borrow()[0].starts_with("stop_unconfigured"));
    }

    #[test]
    fn probe_of_unconfigured_or_uninstalled_resource_is_not_running_unless_active() {
        let d = Dummy::default();
        let probe = [("OCF_RESKEY_CRM_meta_interval", "0")];
        assert_eq!(call(&d, &["monitor"], &probe), OcfRc::NotRunning);
        let missing = [
            ("OCF_RESKEY_CRM_meta_interval", "0"),
            ("OCF_RESKEY_name", "missing"),
        ];
        assert_eq!(call(&d, &["monitor"], &missing), OcfRc::NotRunning);
        // A recurring monitor reports the error itself.
        let recurring = [
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_name", "missing"),
        ];
        assert_eq!(call(&d, &["monitor"], &recurring), OcfRc::ErrInstalled);
        // Visibly active despite the broken configuration: the probe reports the error.
        d.visibly_active.set(true);
        assert_eq!(call(&d, &["monitor"], &missing), OcfRc::ErrInstalled);
    }

    #[test]
    fn check_level_reaches_monitor_from_env_and_flag() {
        let d = Dummy::default();
        let env = [("OCF_RESKEY_name", "x"), ("OCF_CHECK_LEVEL", "10")];
        assert_eq!(call(&d, &["monitor"], &env), OcfRc::NotRunning);
        assert_eq!(
            call(&d, &["monitor", "--check-level", "20"], &env),
            OcfRc::NotRunning
        );
        assert_eq!(
            *d.calls.borrow(),
            vec!["monitor depth 10", "monitor depth 20"]
        );
        assert_eq!(
            call(&d, &["monitor", "--check-level", "deep"], &env),
            OcfRc::ErrArgs
        );
    }

    #[test]
    fn status_is_monitor() {
        let d = Dummy::default();
        let env = [("OCF_RESKEY_name", "x")];
        assert_eq!(call(&d, &["status"], &env), OcfRc::NotRunning);
        assert_eq!(call(&d, &["start"], &env), OcfRc::Success);
        assert_eq!(call(&d, &["status"], &env), OcfRc::Success);
    }

    #[test]
    fn internal_tasks_are_not_actions() {
        let d = Dummy::default();
        assert_eq!(call(&d, &["__nothing"], &[]), OcfRc::ErrUnimplemented);
    }
}
