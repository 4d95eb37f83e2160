//! hb-monitor: the heartbeat daemon that runs the resource group on one node of a cluster,
//! configured with Linux-HA Heartbeat's own files (`ha.cf`, `haresources`, `authkeys`).
//!
//! The cluster logic is one pure state machine ([`controller`]) over membership, the
//! groups' decisions ([`group`]) and the Heartbeat 3 protocol ([`compat`]); the daemon
//! ([`event_loop`]) is a thin shell that owns the sockets, the clock and the agents'
//! processes ([`agent_worker`]), with the control socket ([`control`]), the persisted
//! generation and UUID ([`state`]), what the wire refused ([`wire`]), the log
//! ([`logging`]), the metrics ([`metrics`], [`metrics_http`]) and the operator's hook
//! ([`notify`]) beside it.

pub mod agent_worker;
pub mod check;
pub mod cib;
pub mod cl_status;
pub mod cli;
pub mod compat;
pub mod config;
pub mod control;
pub mod controller;
pub mod event_loop;
pub mod fuzz;
pub mod group;
pub mod logging;
pub mod media;
pub mod membership;
pub mod metrics;
pub mod metrics_http;
pub mod notify;
pub mod ping;
pub mod preflight;
pub mod proto;
pub mod respawn;
pub mod script;
pub mod standin;
pub mod state;
pub mod wire;
