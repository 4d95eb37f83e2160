//! Shared test support: namespaced hosts and LANs, and running agents as processes.

pub mod agent;
pub mod host;
