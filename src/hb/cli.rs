//! hb-monitor's command line. Exit codes follow LSB/systemd meanings so that a unit can stop
//! restart loops on a bad configuration (`RestartPreventExitStatus=6`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::{check, config, control, event_loop, preflight, state};

/// The longest `--op-timeout`, in seconds (a day, as every time in ha.cf): longer is a typo,
/// and sums of instants and timeouts stay far from overflow.
const MAX_OP_TIMEOUT: u64 = 86_400;

/// LSB "program is not configured".
const EXIT_NOT_CONFIGURED: u8 = 6;

/// hb-monitor: Heartbeat-compatible cluster membership and resource groups.
#[derive(Debug, Parser)]
#[command(name = "hb-monitor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check ha.cf, haresources and authkeys, and have every resource's agent validate its
    /// parameters on this node.
    Check {
        /// Configuration directory.
        #[arg(short = 'c', long = "config-dir", default_value = "/etc/ha.d")]
        dir: PathBuf,
        /// Where OCF agents are installed.
        #[arg(long, env = "OCF_ROOT", default_value = "/usr/lib/ocf")]
        ocf_root: PathBuf,
        /// Where LSB init scripts are (haresources names not found in the configuration
        /// directory's resource.d).
        #[arg(long, default_value = "/etc/init.d")]
        init_dir: PathBuf,
        /// The state directory `run` would use (checked to be writable).
        #[arg(long, default_value = state::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Run the daemon in the foreground (logs on stderr) until SIGTERM.
    Run {
        /// Configuration directory.
        #[arg(short = 'c', long = "config-dir", default_value = "/etc/ha.d")]
        dir: PathBuf,
        /// Where the generation number is kept across restarts.
        #[arg(long, default_value = state::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// The control socket (status, standby, takeover).
        #[arg(long, default_value = control::DEFAULT_CONTROL)]
        control: PathBuf,
        /// Where OCF agents are installed.
        #[arg(long, env = "OCF_ROOT", default_value = "/usr/lib/ocf")]
        ocf_root: PathBuf,
        /// Where LSB init scripts are (haresources names not found in the configuration
        /// directory's resource.d).
        #[arg(long, default_value = "/etc/init.d")]
        init_dir: PathBuf,
        /// Timeout of each agent action, in seconds (1 to 86400: a day).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=MAX_OP_TIMEOUT))]
        op_timeout: u64,
    },
    /// Give resource groups to the peers and stay out of them until `takeover` (hb_standby).
    Standby {
        /// Which groups: `all`, `local` (those this node is preferred for), `foreign` (the
        /// others) or one group by the name of its first resource.
        #[arg(default_value = "all")]
        scope: String,
        /// The control socket.
        #[arg(long, default_value = control::DEFAULT_CONTROL)]
        control: PathBuf,
    },
    /// Take resource groups to this node (hb_takeover).
    Takeover {
        /// Which groups: `all`, `local`, `foreign` or one group by name.
        #[arg(default_value = "all")]
        scope: String,
        /// The control socket.
        #[arg(long, default_value = control::DEFAULT_CONTROL)]
        control: PathBuf,
    },
    /// Print the running daemon's state as Prometheus metrics (text format, for
    /// node_exporter's textfile collector); `ha_cluster_hb_up 0` and exit 3 when it does not
    /// answer.
    Metrics {
        /// The control socket.
        #[arg(long, default_value = control::DEFAULT_CONTROL)]
        control: PathBuf,
    },
    /// Print a Pacemaker CIB that runs ha.cf's and haresources' groups with the same agents
    /// (for `cibadmin --replace --xml-file` on a new cluster); notes on stderr say what
    /// was not converted.
    Cib {
        /// Configuration directory.
        #[arg(short = 'c', long = "config-dir", default_value = "/etc/ha.d")]
        dir: PathBuf,
        /// Where LSB init scripts are found, as for `run`.
        #[arg(long, default_value = "/etc/init.d")]
        init_dir: PathBuf,
    },
    /// Heartbeat's `cl_status` (hbstatus, listnodes, nodestatus, nodetype, listhblinks,
    /// hblinkstatus, rscstatus, clientstatus) with its output and exit codes, answered from
    /// the running daemon; also run as `cl_status`.
    #[command(name = "cl-status")]
    ClStatus {
        /// The control socket.
        #[arg(long, default_value = control::DEFAULT_CONTROL)]
        control: PathBuf,
        /// The sub-command and its options, as Heartbeat's `cl_status` takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show the running daemon's view: nodes, media, last heartbeats, dropped packets.
    Status {
        /// Print the daemon's JSON as it is.
        #[arg(long)]
        json: bool,
        /// The control socket.
        #[arg(long, default_value = control::DEFAULT_CONTROL)]
        control: PathBuf,
    },
}

/// The command line as clap defines it: the one source of `--help`, the man page and the shell
/// completions (`examples/gen-docs`, `make man`).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn node_name() -> String {
    // Heartbeat identifies nodes by `uname -n`.
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where Debian's `heartbeat` package installs its own `cl_status`.
const HEARTBEAT_CL_STATUS: &str = "/usr/bin/cl_status";

/// The command line with Heartbeat's command names (`cl_status`, `hb_standby`,
/// `hb_takeover`, links to hb-monitor) turned into hb-monitor's sub-commands, so that admins'
/// scripts run unchanged. `failback` is Heartbeat's word for the groups that go back to
/// their preferred node: the foreign ones for `hb_standby`, the local ones for `hb_takeover`.
fn multi_call(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let called = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let (command, failback) = match called.as_str() {
        "cl_status" => ("cl-status", None),
        "hb_standby" => ("standby", Some("foreign")),
        "hb_takeover" => ("takeover", Some("local")),
        _ => return args,
    };
    if let Some(failback) = failback {
        for arg in args.iter_mut().skip(1) {
            if arg == "failback" {
                *arg = failback.into();
            }
        }
    }
    args[0] = "hb-monitor".into();
    args.insert(1, command.into());
    args
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let args = multi_call(std::env::args_os().collect());
    let called_as_cl_status = std::env::args_os()
        .next()
        .is_some_and(|a| std::path::Path::new(&a).file_name() == Some("cl_status".as_ref()));
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Standby {
            ref scope,
            ref control,
        }
        | Command::Takeover {
            ref scope,
            ref control,
        } => {
            let verb = if matches!(cli.command, Command::Standby { .. }) {
                "standby"
            } else {
                "takeover"
            };
            let request = format!("{verb} {scope}");
            let request = request.as_str();
            match control::query(control, request) {
                Ok(reply) => match refusal(&reply) {
                    Some(code) => code,
                    None => {
                        print!("{reply}");
                        ExitCode::SUCCESS
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => not_root(request),
                Err(e) => {
                    eprintln!(
                        "hb-monitor {request}: {}: {e} (is hb-monitor running?)",
                        control.display()
                    );
                    // LSB: 3 = not running.
                    ExitCode::from(3)
                }
            }
        }
        Command::Run {
            dir,
            state_dir,
            control,
            ocf_root,
            init_dir,
            op_timeout,
        } => {
            // The same refusals as `check`, before anything is opened.
            let node = node_name();
            let cfg = match preflight::load(&dir, &state_dir).and_then(|mut cfg| {
                let dirs = config::ScriptDirs::new(&dir, &init_dir);
                let errors = config::resolve_scripts(&mut cfg, &dirs, &node);
                if errors.is_empty() {
                    Ok(cfg)
                } else {
                    Err(errors)
                }
            }) {
                Ok(cfg) => cfg,
                Err(errors) => {
                    for e in errors {
                        eprintln!("error: {e}");
                    }
                    return ExitCode::from(EXIT_NOT_CONFIGURED);
                }
            };
            let op_timeout = std::time::Duration::from_secs(op_timeout);
            match event_loop::run(cfg, &node, &state_dir, &control, &ocf_root, op_timeout) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hb-monitor: {e}");
                    ExitCode::from(e.code())
                }
            }
        }
        Command::Metrics { control } => match control::query(&control, "status") {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => not_root("metrics"),
            Ok(reply) => match refusal(&reply) {
                Some(code) => code,
                None => match serde_json::from_str(&reply) {
                    Ok(status) => {
                        print!("{}", super::metrics::render(&status));
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("hb-monitor metrics: the daemon's answer is not JSON: {e}");
                        ExitCode::FAILURE
                    }
                },
            },
            Err(e) => {
                print!("{}", super::metrics::render_down());
                eprintln!(
                    "hb-monitor metrics: {}: {e} (is hb-monitor running?)",
                    control.display()
                );
                ExitCode::from(3)
            }
        },
        Command::Cib { dir, init_dir } => match super::config::load(&dir).and_then(|mut cfg| {
            // A bare name is an init script or a Heartbeat script by where it is found.
            let dirs = config::ScriptDirs::new(&dir, &init_dir);
            let errors = config::resolve_scripts(&mut cfg, &dirs, &node_name());
            if errors.is_empty() {
                Ok(cfg)
            } else {
                Err(errors)
            }
        }) {
            Ok(cfg) => {
                let converted = super::cib::convert(&cfg);
                print!("{}", converted.xml);
                for note in &converted.notes {
                    eprintln!("note: {note}");
                }
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("error: {e}");
                }
                ExitCode::from(EXIT_NOT_CONFIGURED)
            }
        },
        Command::ClStatus { control, args } => {
            let status = match control::query(&control, "status") {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return not_root("cl-status");
                }
                Err(_) if called_as_cl_status => {
                    // No hb-monitor here: on a node that still runs Heartbeat, its own
                    // cl_status answers (the migration leaves both installed).
                    if let Some(code) = heartbeat_cl_status(&args) {
                        return code;
                    }
                    None
                }
                Err(_) => None,
                Ok(reply) => match serde_json::from_str::<serde_json::Value>(&reply) {
                    Ok(status) if status.get("error").is_none() => Some(status),
                    _ => match refusal(&reply) {
                        Some(code) => return code,
                        None => None,
                    },
                },
            };
            let outcome = super::cl_status::run(&args, status.as_ref());
            print!("{}", outcome.stdout);
            eprint!("{}", outcome.stderr);
            ExitCode::from(outcome.code)
        }
        Command::Status { json, control } => match control::query(&control, "status") {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => not_root("status"),
            Ok(reply) => match refusal(&reply) {
                Some(code) => code,
                None if json => {
                    print!("{reply}");
                    ExitCode::SUCCESS
                }
                None => print_status(&reply),
            },
            Err(e) => {
                eprintln!(
                    "hb-monitor status: {}: {e} (is hb-monitor running?)",
                    control.display()
                );
                // LSB status: 3 = not running.
                ExitCode::from(3)
            }
        },
        Command::Check {
            dir,
            ocf_root,
            init_dir,
            state_dir,
        } => {
            let node = node_name();
            let report = check::check(&dir, &ocf_root, &init_dir, &state_dir, &node);
            for note in &report.notes {
                println!("note: {note}");
            }
            for error in &report.errors {
                eprintln!("error: {error}");
            }
            if report.errors.is_empty() {
                let resources: usize = report
                    .config
                    .as_ref()
                    .map_or(0, |c| c.groups.iter().map(|g| g.resources.len()).sum());
                println!(
                    "{}: configuration OK for node {node} ({resources} resources validated)",
                    dir.display()
                );
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_NOT_CONFIGURED)
            }
        }
    }
}

/// Runs Heartbeat's own `cl_status` in place of this process, if it is installed and is
/// not this program; returns only when it could not be run.
fn heartbeat_cl_status(args: &[String]) -> Option<ExitCode> {
    let theirs = std::fs::canonicalize(HEARTBEAT_CL_STATUS).ok()?;
    let ours = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .ok()?;
    if theirs == ours {
        return None;
    }
    let error = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(HEARTBEAT_CL_STATUS).args(args),
    );
    eprintln!("cl_status: running {HEARTBEAT_CL_STATUS}: {error}");
    Some(ExitCode::from(super::cl_status::UNKNOWN_ERROR))
}

/// LSB exit code 4: insufficient privilege.
const EXIT_NOT_ROOT: u8 = 4;

/// The daemon's control socket is root-only.
fn not_root(request: &str) -> ExitCode {
    eprintln!("hb-monitor {request}: the control socket answers root only; run it as root");
    ExitCode::from(EXIT_NOT_ROOT)
}

/// An `{"error": …}` answer, printed, as an exit code.
fn refusal(reply: &str) -> Option<ExitCode> {
    let value: serde_json::Value = serde_json::from_str(reply).ok()?;
    let error = value.get("error")?.as_str()?;
    eprintln!("hb-monitor: {error}");
    Some(if error.contains("root only") {
        ExitCode::from(EXIT_NOT_ROOT)
    } else {
        ExitCode::FAILURE
    })
}

/// `hb-monitor status` for people: the node, its peers, what was dropped.
fn print_status(reply: &str) -> ExitCode {
    match serde_json::from_str::<serde_json::Value>(reply) {
        Ok(status) => {
            println!(
                "node {} (generation {})",
                status["node"], status["generation"]
            );
            for peer in status["peers"].as_array().into_iter().flatten() {
                println!(
                    "  {}: {} (last heartbeat {} ms ago)",
                    peer["name"], peer["state"], peer["last_heartbeat_ms_ago"]
                );
            }
            for group in status["groups"].as_array().into_iter().flatten() {
                println!(
                    "  group {} (preferred {}): held by {}, here {}{}",
                    group["name"],
                    group["preferred"],
                    group["holder"],
                    group["holding"],
                    if group["standby"] == true {
                        ", in standby"
                    } else {
                        ""
                    }
                );
                for resource in group["resources"].as_array().into_iter().flatten() {
                    println!(
                        "    {}: last {} {}",
                        resource["name"], resource["last_op"], resource["last_result"]
                    );
                }
            }
            println!("  dropped: {}", status["dropped"]);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hb-monitor status: unreadable answer: {e}");
            ExitCode::from(1)
        }
    }
}
