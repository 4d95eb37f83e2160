//! Shared test support: namespaced hosts and LANs, loop devices, private MariaDB instances,
//! a clean Debian chroot, running agents as processes, and SVG pictures of the results.

pub mod agent;
pub mod cache;
pub mod chroot;
pub mod drbd_sim;
pub mod fence;
pub mod hb_cluster;
pub mod hb_mixed;
pub mod heartbeat_node;
pub mod host;
pub mod loopdev;
pub mod mariadb;
pub mod pacemaker;
pub mod stack;
pub mod svg;
#[cfg(feature = "vm-tests")]
pub mod vm;
