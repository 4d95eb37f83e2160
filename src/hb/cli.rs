//! hb-monitor's command line. Exit codes follow LSB/systemd meanings so that a unit can stop
//! restart loops on a bad configuration (`RestartPreventExitStatus=6`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::check;

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
    },
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Check { dir, ocf_root } => {
            let node = nix::sys::utsname::uname()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_default();
            let report = check::check(&dir, &ocf_root, &node);
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
