//! hb-monitor: the heartbeat daemon's command line (ferroha::hb).
use std::process::ExitCode;

fn main() -> ExitCode {
    ferroha::hb::cli::main()
}
