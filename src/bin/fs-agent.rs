//! fs-agent: OCF resource agent for a mounted filesystem (ocf:ferroha:fs).
use std::process::ExitCode;

fn main() -> ExitCode {
    ferroha::ocf::run(&ferroha::agent::fs::FsAgent::default())
}
