//! vip-agent: OCF resource agent for a virtual IP address (ocf:ferroha:vip).
//!
//! A C `main` without std's runtime set-up: it costs a short-lived agent about 0.1 ms per
//! exec (`ferroha::ocf::main` says what is kept of it). Under `cargo test` the test harness
//! brings its own `main`, which this one would replace.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main() -> std::ffi::c_int {
    ferroha::ocf::main(&ferroha::agent::vip::VipAgent::default())
}
