//! The one integration-test target: every module runs the built binaries as processes.
//! Tests marked `#[ignore = "needs root"]` build namespaces; `make test` runs them too.

mod bench_report;
mod deb;
mod drbd_agent;
mod drbd_sim;
#[cfg(feature = "vm-tests")]
mod drbd_vm;
mod fs_agent;
mod harness;
mod hb_admin;
mod hb_check;
mod hb_claims;
mod hb_compat;
mod hb_compat_stack;
mod hb_corpus;
mod hb_flood;
mod hb_group;
mod hb_groups;
mod hb_interop;
mod hb_ipv6;
mod hb_media;
mod hb_membership;
mod hb_observe;
mod hb_respawn;
mod hb_safety;
mod hb_scripts;
#[cfg(feature = "soak")]
mod hb_soak;
mod hb_stalls;
mod man_pages;
mod mysql_agent;
mod ocf_peers;
mod pacemaker;
mod readme;
mod stack_durability;
#[cfg(feature = "vm-tests")]
mod stack_vm;
mod util;
mod version;
mod vip_agent;
