//! The resource agents. Each implements [`crate::ocf::ResourceAgent`] and is run by
//! [`crate::ocf::main`] from a few-line binary in `src/bin`.

pub mod drbd;
pub mod fs;
pub mod mysql;
pub mod vip;
