//! drbd-agent: OCF resource agent for a DRBD resource (ocf:ferroha:drbd).
use std::process::ExitCode;

fn main() -> ExitCode {
    ferroha::ocf::run(&ferroha::agent::drbd::DrbdAgent::default())
}
