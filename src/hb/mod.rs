//! hb-monitor: the heartbeat daemon that runs the resource group on one node of a cluster,
//! configured with Linux-HA Heartbeat's own files (`ha.cf`, `haresources`, `authkeys`).
//!
//! So far: reading and checking the configuration (`hb-monitor check`), the wire format, and
//! the daemon's membership (`hb-monitor run`, `hb-monitor status`). Running the resource
//! group on takeover is issue 6's remaining work.

pub mod check;
pub mod cli;
pub mod compat;
pub mod config;
pub mod daemon;
pub mod fuzz;
pub mod group;
pub mod media;
pub mod membership;
pub mod ping;
pub mod proto;
pub mod standin;
