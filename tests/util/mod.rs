//! Shared test support: namespaced hosts and LANs, loop devices, private MariaDB instances,
//! a clean Debian chroot, and running agents as processes.

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
#[cfg(feature = "vm-tests")]
pub mod vm;
