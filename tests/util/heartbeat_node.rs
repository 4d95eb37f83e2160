//! One test host's private Heartbeat 3 files, for every place that runs Debian's `heartbeat`
//! (the mixed clusters of `hb_mixed`, the benchmarks' Heartbeat rows and Heartbeat's stack):
//! copies of `/etc/ha.d` and `/var/lib/heartbeat` in a directory of the test's, with its own
//! `ha.cf`, `haresources` and `authkeys`, bind-mounted over the real ones inside the host's
//! mount namespace (HEARTBEAT.md's recipe), and a fresh `/run` for the daemon. Nodes are n1
//! and n2 on 198.18.1.0/24 (.1 and .2), sending unicast heartbeats to each other.
//!
//! `benches/hb.rs` includes this file on its own (`#[path]`): it uses std and `super::host`
//! only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::host::Host;

/// Heartbeat's daemon.
pub const HEARTBEAT: &str = "/usr/libexec/heartbeat/heartbeat";

/// A booted node's `/run` for Heartbeat (the host's `/run` is its own tmpfs): the pid file
/// and API sockets of a previous run gone, the directories it expects there.
pub const FRESH_RUN: &str = "rm -rf /run/heartbeat.pid /run/heartbeat /run/resource-agents && \
     mkdir -p /run/lock /run/resource-agents /run/heartbeat/rsctmp /run/heartbeat/ccm \
              /run/heartbeat/crm /run/heartbeat/dopd && \
     chown -R hacluster:haclient /run/heartbeat/ccm /run/heartbeat/crm /run/heartbeat/dopd";

/// The `ha.cf` settings that differ between the users.
pub struct Settings<'a> {
    pub keepalive_ms: u64,
    pub deadtime_ms: u64,
    pub warntime_ms: u64,
    pub initdead_ms: u64,
    pub auto_failback: &'a str,
    /// Heartbeat's debug log too (`debugfile dir/ha-debug`, `debug 1`).
    pub debug: bool,
}

impl Settings<'_> {
    /// These timings, with the benchmarks' rest: initdead twice deadtime (at least 1 s),
    /// `auto_failback off`, no debug log.
    pub fn timed(keepalive_ms: u64, deadtime_ms: u64, warntime_ms: u64) -> Settings<'static> {
        Settings {
            keepalive_ms,
            deadtime_ms,
            warntime_ms,
            initdead_ms: (2 * deadtime_ms).max(1000),
            auto_failback: "off",
            debug: false,
        }
    }
}

/// Writes node `n` (1 or 2)'s files into `dir`: `dir/ha.d`, `dir/varlib` (without the
/// identity a Heartbeat run on this machine left there: each node gets its own), its log
/// `dir/ha-log`; `key` is the sha1 secret of `authkeys` ([`write_authkeys`] changes it).
pub fn write_files(dir: &Path, n: usize, settings: &Settings, haresources: &str, key: &str) {
    let d = dir.display();
    let copy = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cp -a /etc/ha.d {d}/ha.d && cp -a /var/lib/heartbeat {d}/varlib && \
             rm -f {d}/varlib/hb_uuid {d}/varlib/hostcache {d}/varlib/hb_generation \
                   {d}/varlib/delhostcache"
        ))
        .status()
        .unwrap();
    assert!(copy.success(), "copying /etc/ha.d and /var/lib/heartbeat");
    let Settings {
        keepalive_ms,
        deadtime_ms,
        warntime_ms,
        initdead_ms,
        auto_failback,
        debug,
    } = settings;
    let debug = if *debug {
        format!("debugfile {d}/ha-debug\ndebug 1\n")
    } else {
        String::new()
    };
    let peer = 3 - n;
    let ha_cf = format!(
        "logfile {d}/ha-log\n{debug}logfacility none\nuse_logd no\n\
         keepalive {keepalive_ms}ms\ndeadtime {deadtime_ms}ms\nwarntime {warntime_ms}ms\n\
         initdead {initdead_ms}ms\nudpport 694\nucast eth0 198.18.1.{peer}\n\
         auto_failback {auto_failback}\ncrm off\nnode n1\nnode n2\n"
    );
    std::fs::write(dir.join("ha.d/ha.cf"), ha_cf).unwrap();
    std::fs::write(dir.join("ha.d/haresources"), haresources).unwrap();
    write_authkeys(dir, "sha1", key);
}

/// Writes `dir/ha.d/authkeys` with key 1 of this method (`sha1`, `md5`) and secret, mode 600
/// (both daemons refuse it otherwise).
pub fn write_authkeys(dir: &Path, method: &str, key: &str) {
    let keys = dir.join("ha.d/authkeys");
    std::fs::write(&keys, format!("auth 1\n1 {method} {key}\n")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Puts `dir`'s files in place of `/etc/ha.d` and `/var/lib/heartbeat` inside `host`, for the
/// host's life, and gives it a fresh `/run`.
pub fn bind_files(host: &Host, dir: &Path) {
    host.sh_ok(&format!(
        "mount --bind {d}/ha.d /etc/ha.d && mount --bind {d}/varlib /var/lib/heartbeat && {FRESH_RUN}",
        d = dir.display()
    ));
}
