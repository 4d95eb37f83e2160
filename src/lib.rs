//! ferroha: high availability for MySQL on DRBD.
//!
//! All logic lives in this library; the binaries in `src/bin` are a few lines each.
//! `ocf` is the OCF resource-agent framework every agent goes through, `sys` holds the
//! narrow facades over the kernel and external commands, `agent` the resource agents,
//! `report` the bench results, their charts and the generated part of docs/benchmarks.md.

pub mod agent;
pub mod hb;
pub mod ocf;
pub mod report;
pub mod sys;
pub mod xml;
