//! vip-agent: OCF resource agent for a virtual IP address (ocf:ferroha:vip).
use std::process::ExitCode;

fn main() -> ExitCode {
    ferroha::ocf::run(&ferroha::agent::vip::VipAgent::default())
}
