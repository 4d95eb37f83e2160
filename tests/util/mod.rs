//! Shared test support: namespaced hosts and LANs, loop devices, and running agents as
//! processes.

pub mod agent;
pub mod host;
pub mod loopdev;
