//! Kernel and external-command access, behind narrow interfaces so that agents' decisions can
//! be unit-tested against fakes and the real implementations stay small.

pub mod blkdev;
pub mod cmd;
pub mod drbd;
pub mod files;
pub mod holders;
pub mod icmp;
pub mod mapped;
pub mod mounts;
pub mod netlink;
pub mod packet;
pub mod poll;
pub mod proc;
pub mod runtime;
pub mod sched;
pub mod serial;
pub mod udp;
pub mod users;
pub mod watchdog;
