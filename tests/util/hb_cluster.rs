//! A cluster of hb-monitor nodes in test hosts on one LAN (198.18.1.0/24, or IPv6 only on
//! fd00:198:18:1::/64), running the installed agents: start, kill -9, SIGTERM, control
//! requests, and where the VIP is.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::agent::{make_install, world_readable_tempdir};
use super::host::{Guarded, Host, Lan, wait_for};

/// The group's VIP in these clusters.
pub const VIP: &str = "198.18.1.100";

/// The group's VIP in an IPv6-only cluster ([`Cluster::ipv6`]).
pub const VIP6: &str = "fd00:198:18:1::100";

/// [`VIP6`] as haresources must write it: without `::`, which separates a resource's
/// arguments there.
pub const VIP6_IN_HARESOURCES: &str = "fd00:198:18:1:0:0:0:100";

pub struct Cluster {
    pub lan: Lan,
    pub hosts: Vec<Host>,
    pub daemons: Vec<Option<Guarded>>,
    pub dirs: Vec<tempfile::TempDir>,
    pub state: tempfile::TempDir,
    pub install: tempfile::TempDir,
    /// Each host's address on the LAN: 198.18.1.<octet>.
    octets: Vec<u8>,
    /// `--op-timeout` of the daemons [`Cluster::start`] starts, in seconds.
    pub op_timeout: u64,
    /// More arguments for `hb-monitor run`; `{dir}` in them is the node's configuration
    /// directory.
    pub run_args: Vec<String>,
}

impl Cluster {
    /// Two nodes n1 (198.18.1.1) and n2 (198.18.1.2); `extra` runs on each host after its
    /// network is up; `haresources` and `ha_cf_extra` go into both configurations.
    pub fn new(
        haresources: &str,
        ha_cf_extra: &str,
        deadtime: &str,
        extra: impl Fn(&Host),
    ) -> Cluster {
        Cluster::of(2, haresources, ha_cf_extra, deadtime, extra)
    }

    /// `count` nodes n1, n2, … (198.18.1.1, .2, …), each sending unicast heartbeats to every
    /// other one (one `ucast` line per peer, as Heartbeat has it).
    pub fn of(
        count: usize,
        haresources: &str,
        ha_cf_extra: &str,
        deadtime: &str,
        extra: impl Fn(&Host),
    ) -> Cluster {
        let mut c = Cluster::stopped(count, haresources, ha_cf_extra, deadtime, extra);
        for i in 0..count {
            c.start(i);
        }
        c
    }

    /// As [`Cluster::of`], with no daemon started yet (install test agents under
    /// [`Cluster::ocf_root`] first, then [`Cluster::start`] each node).
    pub fn stopped(
        count: usize,
        haresources: &str,
        ha_cf_extra: &str,
        deadtime: &str,
        extra: impl Fn(&Host),
    ) -> Cluster {
        Cluster::build(
            &numbered(count),
            None,
            false,
            haresources,
            ha_cf_extra,
            deadtime,
            extra,
        )
    }

    /// As [`Cluster::of`] with these nodes: (name, last octet of its address), in the order
    /// of ha.cf's `node` lines, which is also the order of [`Cluster::hosts`].
    pub fn of_nodes(
        nodes: &[(&str, u8)],
        haresources: &str,
        ha_cf_extra: &str,
        deadtime: &str,
    ) -> Cluster {
        let nodes: Vec<(String, u8)> = nodes.iter().map(|(n, o)| (n.to_string(), *o)).collect();
        let mut c = Cluster::build(
            &nodes,
            None,
            false,
            haresources,
            ha_cf_extra,
            deadtime,
            |_| {},
        );
        for i in 0..nodes.len() {
            c.start(i);
        }
        c
    }

    /// As [`Cluster::of`], with `media` (the same lines on every node, e.g. `bcast eth0`)
    /// instead of the `ucast` lines to each peer.
    pub fn with_media(
        count: usize,
        media: &str,
        haresources: &str,
        ha_cf_extra: &str,
        deadtime: &str,
        extra: impl Fn(&Host),
    ) -> Cluster {
        let mut c = Cluster::build(
            &numbered(count),
            Some(media),
            false,
            haresources,
            ha_cf_extra,
            deadtime,
            extra,
        );
        for i in 0..count {
            c.start(i);
        }
        c
    }

    /// Two nodes n1 and n2 on an IPv6-only LAN: eth0 has fd00:198:18:1::1 (::2) and its
    /// link-local address, no IPv4, and duplicate address detection is off in each host so
    /// that every address is usable at once. `media` as [`Cluster::with_media`]; without it,
    /// each node sends `ucast6` to the other.
    pub fn ipv6(
        media: Option<&str>,
        haresources: &str,
        ha_cf_extra: &str,
        deadtime: &str,
        extra: impl Fn(&Host),
    ) -> Cluster {
        let mut c = Cluster::build(
            &numbered(2),
            media,
            true,
            haresources,
            ha_cf_extra,
            deadtime,
            extra,
        );
        for i in 0..2 {
            c.start(i);
        }
        c
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        nodes: &[(String, u8)],
        media: Option<&str>,
        ipv6: bool,
        haresources: &str,
        ha_cf_extra: &str,
        deadtime: &str,
        extra: impl Fn(&Host),
    ) -> Cluster {
        let install = world_readable_tempdir();
        make_install(install.path());
        let lan = Lan::new(1);
        let hosts: Vec<Host> = nodes.iter().map(|(name, _)| Host::new(name)).collect();
        let mut dirs = vec![];
        for (host, (_, octet)) in hosts.iter().zip(nodes) {
            if ipv6 {
                // Before eth0 exists, so that its link-local address is not tentative either.
                host.sh_ok(
                    "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
                );
                lan.attach(host, "eth0", Some(&format!("fd00:198:18:1::{octet:x}/64")));
            } else {
                lan.attach(host, "eth0", Some(&format!("198.18.1.{octet}/24")));
            }
            extra(host);
            let dir = tempfile::tempdir().unwrap();
            // `{node}` in the extra lines is this node's name (a serial device per node).
            let mut ha_cf = format!(
                "keepalive 50ms\ndeadtime {deadtime}\ninitdead 5\n{}",
                ha_cf_extra.replace("{node}", host.name())
            );
            match media {
                Some(media) => ha_cf += media,
                None => {
                    for (_, peer) in nodes.iter().filter(|(_, p)| p != octet) {
                        if ipv6 {
                            ha_cf += &format!("ucast6 eth0 fd00:198:18:1::{peer:x}\n");
                        } else {
                            ha_cf += &format!("ucast eth0 198.18.1.{peer}\n");
                        }
                    }
                }
            }
            for (node, _) in nodes {
                ha_cf += &format!("node {node}\n");
            }
            std::fs::write(dir.path().join("ha.cf"), ha_cf).unwrap();
            std::fs::write(dir.path().join("haresources"), haresources).unwrap();
            let keys = dir.path().join("authkeys");
            std::fs::write(&keys, "auth 1\n1 sha256 hb-group-test\n").unwrap();
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
            dirs.push(dir);
        }
        Cluster {
            lan,
            hosts,
            daemons: nodes.iter().map(|_| None).collect(),
            dirs,
            state: tempfile::tempdir().unwrap(),
            install,
            octets: nodes.iter().map(|(_, octet)| *octet).collect(),
            op_timeout: 20,
            run_args: vec![],
        }
    }

    /// Waits until node i's daemon answers on its control socket.
    pub fn wait_ready(&self, i: usize) {
        wait_for(
            &format!("{}'s control socket", self.hosts[i].name()),
            Duration::from_secs(10),
            Duration::from_millis(5),
            || {
                self.hosts[i]
                    .command(super::agent::built_bin("hb-monitor"))
                    .arg("status")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|_| ())
            },
        );
    }

    pub fn ocf_root(&self) -> PathBuf {
        self.install.path().join("usr/lib/ocf")
    }

    pub fn start(&mut self, i: usize) {
        let host = &self.hosts[i];
        let daemon = host.spawn(
            host.command(super::agent::built_bin("hb-monitor"))
                .arg("run")
                .arg("-c")
                .arg(self.dirs[i].path())
                .arg("--state-dir")
                .arg(self.state.path().join(host.name()))
                .arg("--ocf-root")
                .arg(self.ocf_root())
                .arg("--op-timeout")
                .arg(self.op_timeout.to_string())
                .args(
                    self.run_args
                        .iter()
                        .map(|a| a.replace("{dir}", &self.dirs[i].path().display().to_string())),
                )
                .stdout(std::process::Stdio::null())
                .stderr(log_file(&self.dirs[i].path().join("daemon.log"))),
        );
        self.daemons[i] = Some(daemon);
    }

    /// kill -9 of node i's daemon (its resources stay as they are).
    pub fn kill(&mut self, i: usize) {
        drop(self.daemons[i].take());
    }

    /// SIGTERM to node i's daemon; waits for its exit and returns when it happened.
    pub fn terminate(&mut self, i: usize) -> Instant {
        let mut d = self.daemons[i].take().unwrap();
        // SAFETY: our own child.
        unsafe { libc::kill(d.pid() as i32, libc::SIGTERM) };
        let status = wait_for(
            "the daemon to exit",
            Duration::from_secs(30),
            Duration::from_millis(5),
            || d.child.try_wait().ok().flatten(),
        );
        assert!(status.success(), "{status}");
        Instant::now()
    }

    /// Node i's daemon crashes as a machine does: the daemon is killed (-9) and the link goes
    /// down with every address on it (its VIPs too), so that nothing of it answers.
    pub fn crash(&mut self, i: usize) {
        self.kill(i);
        self.hosts[i].sh_ok("ip link set eth0 down && ip addr flush dev eth0");
    }

    /// Node i comes back after [`Cluster::crash`]: its link and own address, then its daemon.
    pub fn boot(&mut self, i: usize) {
        self.hosts[i].sh_ok(&format!(
            "ip link set eth0 up && ip addr add 198.18.1.{}/24 dev eth0",
            self.octets[i]
        ));
        self.start(i);
    }

    /// `hb-monitor REQUEST…` on node i (the words of `request` as arguments), as it ended.
    pub fn control_output(&self, i: usize, request: &str) -> std::process::Output {
        self.hosts[i]
            .command(super::agent::built_bin("hb-monitor"))
            .args(request.split_whitespace())
            .output()
            .unwrap()
    }

    /// `hb-monitor REQUEST…` on node i, which must succeed (`"standby local"`: the words as
    /// arguments).
    pub fn control(&self, i: usize, request: &str) {
        let out = self.control_output(i, request);
        assert!(
            out.status.success(),
            "{request}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn has(&self, i: usize, ip: &str) -> bool {
        self.hosts[i]
            .sh_ok("ip -o addr show dev eth0")
            .contains(&format!(" {ip}/"))
            || self.hosts[i]
                .sh_ok("ip -o addr")
                .contains(&format!(" {ip}/"))
    }

    /// Node i's `hb-monitor status --json` (Null when it does not answer).
    pub fn status(&self, i: usize) -> serde_json::Value {
        let out = self.hosts[i]
            .command(super::agent::built_bin("hb-monitor"))
            .args(["status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    pub fn holding(&self, i: usize) -> String {
        self.holding_of(i, 0)
    }

    /// What node i says it does with group `g` (0-based, haresources order).
    pub fn holding_of(&self, i: usize, g: usize) -> String {
        // Asked again a few times: the daemon may still be opening its socket, or be
        // between two runs.
        for _ in 0..5 {
            if let Some(holding) = self.status(i)["groups"][g]["holding"].as_str() {
                return holding.to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        String::new()
    }

    /// Waits until the VIP is on node `on` only (and, if `held`, its daemon says so).
    pub fn wait_vip_on(&self, on: usize, within: Duration) -> Duration {
        self.wait_addr_on(on, VIP, 0, within)
    }

    /// Waits until node `on` has `ip` and its daemon says it holds group `g`, the group `ip`
    /// belongs to.
    pub fn wait_addr_on(&self, on: usize, ip: &str, g: usize, within: Duration) -> Duration {
        let started = Instant::now();
        wait_for(
            &format!("{ip} (group {}) on {}", g + 1, self.hosts[on].name()),
            within,
            Duration::from_millis(5),
            || (self.has(on, ip) && self.holding_of(on, g) == "held").then_some(()),
        );
        started.elapsed()
    }
}

/// For [`Cluster::new`]'s `extra`: each node nN also on `lan` (`Lan::new(2)`), as eth1 with
/// 198.18.2.N/24 (a second heartbeat medium, or an uplink to ping nodes).
pub fn on_second_lan(lan: &Lan) -> impl Fn(&Host) + '_ {
    move |host| {
        let n = &host.name()[1..];
        lan.attach(host, "eth1", Some(&format!("198.18.2.{n}/24")));
    }
}

pub fn log_file(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (host, dir) in self.hosts.iter().zip(&self.dirs) {
                let log =
                    std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
                eprintln!("---- {} daemon log ----\n{log}", host.name());
            }
        }
    }
}

/// Nodes n1, n2, … at 198.18.1.1, .2, …
fn numbered(count: usize) -> Vec<(String, u8)> {
    (1..=count)
        .map(|i| {
            (
                format!("n{i}"),
                u8::try_from(i).expect("a node number below 256"),
            )
        })
        .collect()
}

/// Whether the network namespace of `pid` has `ip` as a local address, read from
/// `/proc/<pid>/net/fib_trie` (IPv4) or `/proc/<pid>/net/if_inet6` (IPv6; no process
/// started, no namespace entered): cheap enough to sample every few milliseconds from
/// outside the nodes.
pub fn has_local_address(pid: u32, ip: &str) -> bool {
    if let Ok(v6) = ip.parse::<std::net::Ipv6Addr>() {
        let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
        return std::fs::read_to_string(format!("/proc/{pid}/net/if_inet6"))
            .is_ok_and(|table| table.lines().any(|l| l.starts_with(&hex)));
    }
    let Ok(trie) = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")) else {
        return false;
    };
    let needle = format!("-- {ip}");
    let mut lines = trie.lines();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with(&needle)
            && lines.next().is_some_and(|l| l.contains("/32 host LOCAL"))
        {
            return true;
        }
    }
    false
}

/// The hosts (indices into `pids`) whose network namespace has `ip`.
fn holders_of(pids: &[u32], ip: &str) -> Vec<usize> {
    pids.iter()
        .enumerate()
        .filter(|(_, p)| has_local_address(**p, ip))
        .map(|(i, _)| i)
        .collect()
}

/// What a [`Sampler`] saw.
#[derive(Debug)]
pub struct Samples {
    /// The address sampled.
    pub ip: &'static str,
    /// How many samples were taken.
    pub samples: u64,
    /// How many of them found exactly one host with the address.
    pub held: u64,
    /// When (since the start) two or more hosts had the address, with which.
    pub doubles: Vec<(Duration, Vec<usize>)>,
}

impl Samples {
    /// Panics unless at least `min` samples were taken, some host had the address in one of
    /// them (else a sampler that looked in the wrong place would pass), and no two hosts
    /// ever had it at once.
    pub fn assert_never_two(&self, min: u64) {
        assert!(
            self.samples >= min,
            "{}: only {} samples",
            self.ip,
            self.samples
        );
        assert!(
            self.held > 0,
            "no host was ever seen holding {} (of {} samples)",
            self.ip,
            self.samples
        );
        assert!(
            self.doubles.is_empty(),
            "two hosts held {} at once: {:?} (of {} samples)",
            self.ip,
            self.doubles,
            self.samples
        );
    }
}

/// Samples, every `every`, which hosts have `ip`, on a thread, until stopped; keeps the
/// moments when more than one had it.
pub struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Samples>>,
}

impl Sampler {
    /// Starts sampling the hosts with these anchor pids.
    pub fn start(pids: Vec<u32>, ip: &'static str, every: Duration) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut seen = Samples {
                ip,
                samples: 0,
                held: 0,
                doubles: vec![],
            };
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let holders = holders_of(&pids, ip);
                seen.samples += 1;
                match holders.len() {
                    0 => {}
                    1 => seen.held += 1,
                    _ => seen.doubles.push((t0.elapsed(), holders)),
                }
                std::thread::sleep(every);
            }
            seen
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; what was seen.
    pub fn finish(mut self) -> Samples {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Which hosts had an address, each time that changed: (time since the start, holders).
#[derive(Debug)]
pub struct Timeline {
    /// The address watched.
    pub ip: &'static str,
    /// How many samples were taken.
    pub samples: u64,
    /// The first sample's holders, then each change.
    pub changes: Vec<(Duration, Vec<usize>)>,
}

impl Timeline {
    /// The holders in turn, moments without any (a handover) left out: `[[0], [1]]` for an
    /// address that went from the first host to the second. An address removed and added
    /// again on the same host (a restart in place) shows that host twice: `[[0], [0]]`.
    pub fn holders(&self) -> Vec<Vec<usize>> {
        self.changes
            .iter()
            .filter(|(_, holders)| !holders.is_empty())
            .map(|(_, holders)| holders.clone())
            .collect()
    }

    /// Whether host `i` had the address at every sample, and no other host ever did.
    pub fn stayed_on(&self, i: usize) -> bool {
        matches!(self.changes.as_slice(), [(_, holders)] if holders == &[i])
    }

    /// Panics unless at least `min` samples were taken, some host had the address at some
    /// point (else a watch that looked in the wrong place would pass), and no two hosts ever
    /// had it at once.
    pub fn assert_never_two(&self, min: u64) {
        if self.changes.iter().any(|(_, h)| h.len() > 1) {
            eprintln!("{}: every change of holders: {:?}", self.ip, self.changes);
        }
        Samples {
            ip: self.ip,
            samples: self.samples,
            // Changes, not samples: each stretch with one holder is at least one sample.
            held: self.changes.iter().filter(|(_, h)| h.len() == 1).count() as u64,
            doubles: self
                .changes
                .iter()
                .filter(|(_, h)| h.len() > 1)
                .cloned()
                .collect(),
        }
        .assert_never_two(min);
    }
}

/// Samples, every `every`, which hosts have an address (as [`Sampler`]), keeping each change:
/// where a [`Sampler`] proves "never two", this also shows every move and every moment the
/// address was nowhere.
pub struct Watch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Timeline>>,
}

impl Watch {
    /// Starts watching `ip` on the hosts with these anchor pids.
    pub fn start(pids: Vec<u32>, ip: &'static str, every: Duration) -> Watch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut timeline = Timeline {
                ip,
                samples: 0,
                changes: vec![],
            };
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let holders = holders_of(&pids, ip);
                timeline.samples += 1;
                if timeline.changes.last().map(|(_, h)| h) != Some(&holders) {
                    timeline.changes.push((t0.elapsed(), holders));
                }
                std::thread::sleep(every);
            }
            timeline
        });
        Watch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; what was seen.
    pub fn finish(mut self) -> Timeline {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `Cpus_allowed_list` line of a `/proc/PID/status` text.
pub fn cpus_allowed(status: &str) -> Option<String> {
    status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list"))
        .map(str::to_string)
}

/// `chrt -p PID`'s answer: the process's scheduling policy and priority.
pub fn scheduling_of(pid: u32) -> String {
    let out = std::process::Command::new("chrt")
        .args(["-p", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
