//! Two test hosts n1 (preferred) and n2 that run Debian's `heartbeat` 3.0.6 or hb-monitor
//! from the same `ha.cf`, `haresources` and `authkeys` (issue 10): each node has private copies
//! of `/etc/ha.d` and `/var/lib/heartbeat` bind-mounted in its mount namespace and a private
//! `/run` (Heartbeat's pid file and API sockets), so one set of files serves Heartbeat first and
//! hb-monitor after the switch (`hb-monitor run -c /etc/ha.d`). Used by `tests/hb_compat.rs`
//! (a VIP group) and `tests/hb_compat_stack.rs` (DRBD, filesystem, MySQL and the VIP), which
//! adds its own per-node view of the machine through [`Mixed::build`]'s `setup`.
//!
//! Heartbeat's processes are found by namespace membership and executable, never by name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::agent::{built_bin, make_install, world_readable_tempdir};
use super::hb_cluster::{has_local_address, log_file};
use super::heartbeat_node;
use super::host::{Guarded, Host, Lan, wait_for};
use super::stack::VIP;

pub use super::heartbeat_node::{FRESH_RUN, HEARTBEAT};

/// Two nodes n1 (preferred) and n2 that run Heartbeat or hb-monitor from the same files.
pub struct Mixed {
    /// The nodes (field order is drop order: the nodes before their files and the LAN).
    pub hosts: Vec<Host>,
    dirs: Vec<tempfile::TempDir>,
    /// hb-monitor on each node, when it runs there.
    pub hb_monitor: Vec<Option<Guarded>>,
    /// ferroha's agents (hb-monitor runs `IPaddr2::` lines with its vip agent).
    install: tempfile::TempDir,
    /// The LAN (198.18.1.0/24: n1 .1, n2 .2).
    pub lan: Lan,
}

impl Mixed {
    /// A VIP group (`IPaddr2::198.18.1.100/24/eth0`), `auto_failback off`, keepalive 100 ms,
    /// deadtime 600 ms.
    pub fn new() -> Mixed {
        Mixed::with("off", 100)
    }

    /// The VIP group with `auto_failback` on or off, and this keepalive (deadtime 600 ms).
    pub fn with(auto_failback: &str, keepalive_ms: u64) -> Mixed {
        Mixed::build(
            auto_failback,
            keepalive_ms,
            600,
            &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
            |_, _, _| {},
        )
    }

    /// Two nodes with these timings and this `haresources`; `setup(i, host, dir)` runs for
    /// each node once its `/etc/ha.d` (`dir/ha.d`) and `/var/lib/heartbeat` are in place and
    /// before any daemon runs (for the rest of the node's view of the machine).
    pub fn build(
        auto_failback: &str,
        keepalive_ms: u64,
        deadtime_ms: u64,
        haresources: &str,
        setup: impl Fn(usize, &Host, &Path),
    ) -> Mixed {
        let lan = Lan::new(1);
        let hosts: Vec<Host> = (1..=2).map(|i| Host::new(&format!("n{i}"))).collect();
        let mut dirs = vec![];
        for (i, host) in hosts.iter().enumerate() {
            lan.attach(host, "eth0", Some(&format!("198.18.1.{}/24", i + 1)));
            let dir = tempfile::tempdir().unwrap();
            let settings = heartbeat_node::Settings {
                initdead_ms: (2 * deadtime_ms).max(1500),
                auto_failback,
                debug: true,
                // warntime between keepalive and deadtime (400 ms at deadtime 600 ms).
                ..heartbeat_node::Settings::timed(keepalive_ms, deadtime_ms, deadtime_ms * 2 / 3)
            };
            heartbeat_node::write_files(
                dir.path(),
                i + 1,
                &settings,
                haresources,
                "rolling-migration",
            );
            // The node's own /etc/ha.d and /var/lib/heartbeat from now on, for both daemons.
            heartbeat_node::bind_files(host, dir.path());
            setup(i, host, dir.path());
            dirs.push(dir);
        }
        let install = world_readable_tempdir();
        make_install(install.path());
        Mixed {
            hosts,
            dirs,
            hb_monitor: vec![None, None],
            install,
            lan,
        }
    }

    pub fn dir(&self, i: usize) -> &Path {
        self.dirs[i].path()
    }

    /// Node i's `/var/lib/heartbeat` (`hb_uuid`, `hb_generation`), as the test sees it.
    pub fn heartbeat_state(&self, i: usize) -> PathBuf {
        self.dir(i).join("varlib")
    }

    /// Node i's `authkeys` from now on, for the daemons started after this: key 1 of
    /// `method` with `secret`.
    pub fn set_authkeys(&self, i: usize, method: &str, secret: &str) {
        heartbeat_node::write_authkeys(self.dir(i), method, secret);
    }

    /// Heartbeat's processes on node i: members of its namespaces running its executable.
    pub fn heartbeat_pids(&self, i: usize) -> Vec<u32> {
        self.hosts[i]
            .pids()
            .into_iter()
            .filter(|p| {
                std::fs::read_link(format!("/proc/{p}/exe"))
                    .is_ok_and(|exe| exe == Path::new(HEARTBEAT))
            })
            .collect()
    }

    pub fn start_heartbeat(&self, i: usize) {
        // It daemonises: the command returns, its processes are found by namespace.
        let out = self.hosts[i].sh(&format!("{HEARTBEAT} >/dev/null 2>&1"));
        assert!(
            out.status.success(),
            "heartbeat did not start on n{}",
            i + 1
        );
    }

    /// Waits until Heartbeat on node i sends heartbeats (one seen arriving at the other
    /// node): it daemonises at once but sends its first one a second or more later, on a
    /// loaded machine after the initdead of an hb-monitor started meanwhile.
    pub fn wait_heartbeat_sending(&self, i: usize) {
        let from = self.lan.ip(i as u8 + 1);
        let out = self.hosts[1 - i].sh(&format!(
            "timeout 30 tcpdump -i eth0 -c 1 -nn -q 'udp and src {from} and dst port 694' \
             >/dev/null 2>&1"
        ));
        assert!(
            out.status.success(),
            "no heartbeat from n{} within 30 s",
            i + 1
        );
    }

    /// Orderly stop (`heartbeat -k`: gives up what it holds, says so, exits).
    pub fn stop_heartbeat(&self, i: usize) {
        self.hosts[i].sh(&format!("{HEARTBEAT} -k >/dev/null 2>&1"));
        wait_for(
            &format!("heartbeat on n{} to exit", i + 1),
            Duration::from_secs(60),
            Duration::from_millis(50),
            || self.heartbeat_pids(i).is_empty().then_some(()),
        );
    }

    /// The OCF root hb-monitor runs ferroha's agents from.
    pub fn ocf_root(&self) -> PathBuf {
        self.install.path().join("usr/lib/ocf")
    }

    pub fn start_hb_monitor(&mut self, i: usize) {
        let host = &self.hosts[i];
        let daemon = host.spawn(
            host.command(built_bin("hb-monitor"))
                .args(["run", "-c", "/etc/ha.d", "--ocf-root"])
                .arg(self.ocf_root())
                .arg("--state-dir")
                .arg(self.dir(i).join("state"))
                .stdout(std::process::Stdio::null())
                .stderr(log_file(&self.dir(i).join("hb-monitor.log"))),
        );
        self.hb_monitor[i] = Some(daemon);
    }

    /// The node dies as a machine does: every daemon killed, its addresses gone with it,
    /// its link down.
    pub fn power_off(&mut self, i: usize) {
        drop(self.hb_monitor[i].take());
        for pid in self.heartbeat_pids(i) {
            // SAFETY: a heartbeat process of this test host (namespace + executable).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        self.hosts[i].sh_ok(&format!(
            "ip addr del {VIP}/24 dev eth0 2>/dev/null; ip link set eth0 down"
        ));
    }

    /// Boots it again: `/run` is empty after a power cycle (the killed daemon's pid file
    /// would otherwise stop Heartbeat from starting), the link comes up.
    pub fn power_on(&self, i: usize) {
        self.hosts[i].sh_ok(FRESH_RUN);
        self.hosts[i].sh_ok("ip link set eth0 up");
    }

    pub fn status(&self, i: usize) -> serde_json::Value {
        wait_for(
            &format!("hb-monitor status on n{}", i + 1),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let out = self.hosts[i]
                    .command(built_bin("hb-monitor"))
                    .args(["status", "--json"])
                    .output()
                    .ok()?;
                serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
            },
        )
    }

    pub fn has_vip(&self, i: usize) -> bool {
        has_local_address(self.hosts[i].pid(), VIP)
    }

    pub fn wait_vip_only_on(&self, i: usize, within: Duration) {
        wait_for(
            &format!("{VIP} on n{} only", i + 1),
            within,
            Duration::from_millis(10),
            || (self.has_vip(i) && !self.has_vip(1 - i)).then_some(()),
        );
    }

    /// Heartbeat's log on node i. Lossy: Heartbeat logs a packet it refuses as it came,
    /// binary fields (`srcuuid`) included.
    pub fn heartbeat_log(&self, i: usize) -> String {
        std::fs::read(self.dir(i).join("ha-log"))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn hb_monitor_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir(i).join("hb-monitor.log")).unwrap_or_default()
    }

    /// Lines in Heartbeat's log that say it did not understand or trust its peer, from byte
    /// `since` of the log on (where its peer began to be hb-monitor).
    pub fn protocol_complaints(&self, i: usize, since: usize) -> Vec<String> {
        const SIGNS: &[&str] = &[
            "lost packet",
            "rexmit",
            "hist queue",
            "replay",
            "bad sequence",
            "bad generation",
            "missing",
            "Ignored standby",
            "Both machines own",
            "authentication",
            "bad node",
            "in flux",
        ];
        let log = self.heartbeat_log(i);
        log.get(since..)
            .unwrap_or("")
            .lines()
            .filter(|l| SIGNS.iter().any(|s| l.contains(s)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        for i in 0..2 {
            drop(self.hb_monitor[i].take());
            for pid in self.heartbeat_pids(i) {
                // SAFETY: a heartbeat process of this test host (namespace + executable).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        if std::thread::panicking() {
            for i in 0..2 {
                let debug =
                    std::fs::read_to_string(self.dir(i).join("ha-debug")).unwrap_or_default();
                let tail: Vec<&str> = debug.lines().rev().take(150).collect();
                eprintln!("---- n{} heartbeat debug (last lines) ----", i + 1);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
                eprintln!(
                    "---- n{} heartbeat log ----\n{}\n---- n{} hb-monitor log ----\n{}",
                    i + 1,
                    self.heartbeat_log(i),
                    i + 1,
                    self.hb_monitor_log(i)
                );
            }
        }
    }
}

/// A peer's entry in `hb-monitor status --json`.
pub fn peer<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["peers"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// Heartbeat's daemon, which must be installed.
pub fn heartbeat_installed() -> PathBuf {
    let bin = PathBuf::from(HEARTBEAT);
    assert!(
        bin.exists(),
        "{HEARTBEAT} missing: apt-get install heartbeat (scripts/install-deps does)"
    );
    bin
}
