//! The whole stack on two test hosts: hb-monitor on each node running drbd → fs → mysql → vip
//! (ferroha's agents), a simulated DRBD resource, ext4 on a loop device, MariaDB on it, a VIP;
//! a client host on the LAN writing through the VIP; a fence command that powers a node off
//! as far as the test world goes; and a sampler that watches, from outside the nodes, that no
//! two nodes are ever DRBD Primary, mounted, running MySQL or holding the VIP at once.
//!
//! The "replicated disk" of this tier is one loop device both nodes can mount: a perfect
//! synchronous replica (DRBD protocol C with no lag), with DRBD's roles, refusals and
//! resyncs played by the simulator. It proves ordering, exclusivity and timing; what a real
//! crash does to unflushed data is the VM tier's business (real DRBD, real kernels).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::drbd_sim::DrbdSim;
use super::hb_cluster::{Cluster, has_local_address};
use super::host::{Host, wait_for};
use super::loopdev::LoopDevice;
use super::mariadb::{self, MariaDb};

/// The service address.
pub const VIP: &str = "198.18.1.100";
/// The client host's address.
pub const CLIENT_IP: &str = "198.18.1.200";
const MARIADBD: &str = "/usr/sbin/mariadbd";

/// What [`node_state`] reports, in its order.
pub const STATE_NAMES: [&str; 4] = ["DRBD Primary", "mounted", "MySQL running", "VIP"];

/// What the sampler found.
#[derive(Debug, Default, Clone)]
pub struct Watch {
    /// Samples taken.
    pub samples: u64,
    /// (ms since start, what, nodes) whenever two nodes had the same thing.
    pub doubles: Vec<(u128, &'static str, Vec<usize>)>,
    /// Samples in which exactly one node was DRBD Primary, mounted, running MySQL, holding
    /// the VIP ([`STATE_NAMES`] order).
    pub single: [u64; 4],
}

impl Watch {
    /// Counts one sample: `states` is every node's [`node_state`], taken `ms` after the start.
    pub fn record(&mut self, ms: u128, states: &[[bool; 4]]) {
        self.samples += 1;
        for (k, name) in STATE_NAMES.iter().enumerate() {
            let nodes: Vec<usize> = (0..states.len()).filter(|&i| states[i][k]).collect();
            match nodes.len() {
                0 => {}
                1 => self.single[k] += 1,
                _ => self.doubles.push((ms, name, nodes)),
            }
        }
    }

    /// Panics unless at least `min` samples were taken, each of DRBD Primary, the mount,
    /// MySQL and the VIP was seen on one node (a sampler that never saw the stack running,
    /// say because it read the wrong place, proves nothing by never seeing it twice), and
    /// no two nodes ever had the same one.
    pub fn assert_saw_each_and_never_two(&self, min: u64) {
        assert!(self.samples >= min, "only {} samples", self.samples);
        let unseen: Vec<&str> = (0..4)
            .filter(|&k| self.single[k] == 0)
            .map(|k| STATE_NAMES[k])
            .collect();
        assert!(
            unseen.is_empty(),
            "the sampler never saw {unseen:?} on a node ({} samples; seen on one node: {:?})",
            self.samples,
            self.single
        );
        assert!(
            self.doubles.is_empty(),
            "two nodes active at once: {:?}",
            &self.doubles[..self.doubles.len().min(10)]
        );
    }
}

/// One node's view from outside: (DRBD Primary, mounted, mysqld running, VIP), for the node
/// whose anchor is `anchor`, mount point `mnt`, simulated DRBD node `letter` in `sim_state`
/// (the simulator's state file).
pub fn node_state(anchor: u32, mnt: &str, sim_state: &str, letter: &str) -> [bool; 4] {
    let primary = sim_state.contains(&format!("{letter}.role=Primary"));
    let mounted = std::fs::read_to_string(format!("/proc/{anchor}/mounts"))
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(mnt)));
    // The node's pid file, seen through its anchor's root (its private /run): cheap enough
    // for every sample, and mariadbd writes it before it opens a single table.
    let mysqld = std::fs::read_to_string(format!("/proc/{anchor}/root/run/mysqld/mysqld.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|x| x == Path::new(MARIADBD))
        });
    [primary, mounted, mysqld, has_local_address(anchor, VIP)]
}

/// The client's record: every acknowledged insert, and when.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// Acknowledged ids, in order, with the time of the acknowledgement.
    pub acked: Vec<(u64, Instant)>,
    /// Failed attempts.
    pub errors: u64,
    /// The last error text.
    pub last_error: String,
}

impl ClientLog {
    /// The client-visible downtime around `from`: the longest gap between two consecutive
    /// acknowledgements from the last one before `from` on.
    pub fn longest_gap_since(&self, from: Instant) -> Duration {
        self.longest_gap_span_since(from)
            .map(|(last, first)| first.duration_since(last))
            .unwrap_or_default()
    }

    /// That gap's ends: the acknowledgements before and after it.
    pub fn longest_gap_span_since(&self, from: Instant) -> Option<(Instant, Instant)> {
        let start = self
            .acked
            .iter()
            .rposition(|(_, t)| *t <= from)
            .unwrap_or(0);
        self.acked[start..]
            .windows(2)
            .max_by_key(|w| w[1].1.duration_since(w[0].1))
            .map(|w| (w[0].1, w[1].1))
    }

    /// The acknowledged ids so far: take them *before* reading the table, or commits
    /// acknowledged meanwhile would count as lost.
    pub fn acked_ids(&self) -> Vec<u64> {
        self.acked.iter().map(|(id, _)| *id).collect()
    }
}

/// `acked` (taken before the table was read) against the ids `present` in the table:
/// (acknowledged, rows, acknowledged but lost).
pub fn audit_ids(acked: &[u64], present: &BTreeSet<u64>) -> (usize, usize, Vec<u64>) {
    let lost = acked
        .iter()
        .filter(|id| !present.contains(id))
        .copied()
        .collect();
    (acked.len(), present.len(), lost)
}

/// The whole stack (see the module docs). Field order is drop order: daemons and hosts go
/// before the disk they mounted.
pub struct Stack {
    /// The two nodes running hb-monitor.
    pub cluster: Cluster,
    /// The client host.
    pub client: Host,
    /// The DRBD simulator (`a` = n1, `b` = n2).
    pub sim: DrbdSim,
    /// The shared disk (held until the hosts that mounted it are gone).
    _disk: LoopDevice,
    /// Mount point, my.cnf, the fence script and its log.
    pub dir: tempfile::TempDir,
    client_stop: Arc<AtomicBool>,
    client_thread: Option<std::thread::JoinHandle<()>>,
    /// The client's record.
    pub client_log: Arc<Mutex<ClientLog>>,
    watch_stop: Arc<AtomicBool>,
    watch_thread: Option<std::thread::JoinHandle<Watch>>,
    /// A timeline of what the test did and saw, printed when it fails.
    pub timeline: Arc<Mutex<Vec<(Instant, String)>>>,
    t0: Instant,
}

impl Stack {
    /// Builds and starts the stack; returns once MySQL answers through the VIP on n1.
    /// Heartbeats every 50 ms, deadtime 300 ms.
    pub fn new() -> Stack {
        Stack::with_timing("50ms", "300ms", "5")
    }

    /// As [`Stack::new`] with these `keepalive`, `deadtime` and `initdead` (ha.cf syntax).
    pub fn with_timing(keepalive: &str, deadtime: &str, initdead: &str) -> Stack {
        let dir = crate::util::agent::world_readable_tempdir();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let sim = replicated_pair();
        let disk = disk_with_datadir(&mnt);
        let config = dir.path().join("my.cnf");
        std::fs::write(
            &config,
            mariadb::CONFIG.replace("bind-address=127.0.0.1", "bind-address=0.0.0.0"),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fence = dir.path().join("fence");
        write_fence_script(&fence, dir.path(), &mnt, &sim);
        let m = mnt.display();
        let haresources = format!(
            "n1 drbd::drbd_resource=r0::drbdadm={adm}::drbdsetup={setup}::drbdconf={conf} \\\n\
             fs::device={dev}::directory={m}::fstype=ext4 \\\n\
             mysql::binary={MARIADBD}::config={cfg}::datadir={m}/data::user=mysql::group=mysql::log={m}/error.log::pid=/run/mysqld/mysqld.pid::socket=/run/mysqld/mysqld.sock \\\n\
             vip::ip={VIP}::cidr_netmask=24::nic=eth0\n",
            adm = sim.bin("drbdadm").display(),
            setup = sim.bin("drbdsetup").display(),
            conf = sim.conf().display(),
            dev = disk.name(),
            cfg = config.display(),
        );
        let mut cluster = Cluster::stopped(
            2,
            &haresources,
            &format!(
                // Later lines win: these replace the cluster's default keepalive and initdead.
                "keepalive {keepalive}\ninitdead {initdead}\n\
                 auto_failback off\nfence_command {}\nfence_timeout 20\nmonitor_interval 1\nrestart_limit 5 600\nlogfile {}/{{node}}.log\n",
                fence.display(),
                dir.path().display()
            ),
            deadtime,
            |_| {},
        );
        let map: String = cluster
            .hosts
            .iter()
            .map(|h| format!("{} {}\n", h.name(), h.pid()))
            .collect();
        std::fs::write(dir.path().join("map"), map).unwrap();
        let client = Host::new("client");
        cluster
            .lan
            .attach(&client, "eth0", Some(&format!("{CLIENT_IP}/24")));
        cluster.start(0);
        cluster.start(1);
        let stack = Stack {
            cluster,
            client,
            sim,
            _disk: disk,
            dir,
            client_stop: Arc::new(AtomicBool::new(false)),
            client_thread: None,
            client_log: Arc::default(),
            watch_stop: Arc::new(AtomicBool::new(false)),
            watch_thread: None,
            timeline: Arc::default(),
            t0: Instant::now(),
        };
        stack.wait_group_on(0, Duration::from_secs(60));
        stack.cluster.hosts[0].sh_ok(
            "mariadb --socket=/run/mysqld/mysqld.sock -e \"\
             CREATE DATABASE ha; CREATE TABLE ha.t (id BIGINT PRIMARY KEY) ENGINE=InnoDB; \
             CREATE USER 'app'@'%' IDENTIFIED BY 'app'; GRANT ALL ON ha.* TO 'app'@'%';\"",
        );
        stack.note("stack up on n1");
        stack
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Adds a line to the timeline.
    pub fn note(&self, what: &str) {
        self.timeline
            .lock()
            .unwrap()
            .push((Instant::now(), what.to_string()));
    }

    /// The timeline, one line per event, ms since the start.
    pub fn timeline_text(&self) -> String {
        self.timeline
            .lock()
            .unwrap()
            .iter()
            .map(|(t, w)| format!("{:>8} ms  {w}\n", t.duration_since(self.t0).as_millis()))
            .collect()
    }

    /// Which node (0, 1) holds the group according to its daemon.
    pub fn holder(&self) -> Option<usize> {
        (0..2).find(|&i| self.cluster.holding(i) == "held")
    }

    /// Waits until node `i` holds the whole group (VIP present, daemon says held).
    pub fn wait_group_on(&self, i: usize, within: Duration) {
        self.cluster.wait_vip_on(i, within);
    }

    /// Starts the client ([`spawn_client`]).
    pub fn start_client(&mut self) {
        self.client_thread = Some(spawn_client(
            &self.client,
            self.client_stop.clone(),
            self.client_log.clone(),
        ));
    }

    /// Starts the sampler (every 10 ms).
    pub fn start_watch(&mut self) {
        let anchors: Vec<u32> = self.cluster.hosts.iter().map(|h| h.pid()).collect();
        let mnt = self.mnt().display().to_string();
        let state_file = self.sim.path().join("state");
        let stop = self.watch_stop.clone();
        let t0 = self.t0;
        self.watch_thread = Some(std::thread::spawn(move || {
            let mut watch = Watch::default();
            while !stop.load(Ordering::Relaxed) {
                let sim_state = std::fs::read_to_string(&state_file).unwrap_or_default();
                let states: Vec<[bool; 4]> = anchors
                    .iter()
                    .zip(["a", "b"])
                    .map(|(p, l)| node_state(*p, &mnt, &sim_state, l))
                    .collect();
                watch.record(t0.elapsed().as_millis(), &states);
                std::thread::sleep(Duration::from_millis(10));
            }
            watch
        }));
    }

    /// Stops the sampler; what it saw.
    pub fn finish_watch(&mut self) -> Watch {
        self.watch_stop.store(true, Ordering::Relaxed);
        self.watch_thread
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }

    /// Stops the client.
    pub fn stop_client(&mut self) {
        self.client_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.client_thread.take() {
            let _ = t.join();
        }
    }

    /// The number of acknowledged inserts so far.
    pub fn acked(&self) -> usize {
        self.client_log.lock().unwrap().acked.len()
    }

    /// Waits until the client has an acknowledgement after `since`; the client-visible
    /// downtime around it: the longest gap between two consecutive acknowledgements from
    /// `from` to that one.
    pub fn wait_service(&self, from: Instant, since: Instant, within: Duration) -> Duration {
        let log = self.client_log.clone();
        wait_for(
            "a write through the VIP to succeed again",
            within,
            Duration::from_millis(5),
            || {
                log.lock()
                    .unwrap()
                    .acked
                    .last()
                    .filter(|(_, t)| *t > since)
                    .map(|_| ())
            },
        );
        log.lock().unwrap().longest_gap_since(from)
    }

    /// The client's failed attempts so far.
    pub fn client_errors(&self) -> u64 {
        self.client_log.lock().unwrap().errors
    }

    /// Powers node `i` off as far as the test world goes (the fence command's own script).
    pub fn power_off(&self, i: usize) {
        let out = std::process::Command::new(self.dir.path().join("fence"))
            .arg(format!("n{}", i + 1))
            .env("HB_FENCE_NODE", format!("n{}", i + 1))
            .output()
            .unwrap();
        assert!(out.status.success(), "power off: {out:?}");
    }

    /// Powers node `i` on: its link and address back, DRBD up (the boot script's part; it
    /// resyncs from the peer), hb-monitor started; returns once it has heard its peer (it
    /// is standby then: a failure of the peer before that would be met with `initdead`, not
    /// `deadtime`, as Heartbeat does, and test something else than a standby's takeover).
    pub fn power_on(&mut self, i: usize) {
        self.cluster.daemons[i] = None;
        self.cluster.hosts[i].sh_ok(&format!(
            "ip link set eth0 up; ip addr add 198.18.1.{}/24 dev eth0 2>/dev/null; true",
            i + 1
        ));
        let letter = ["a", "b"][i];
        let up = self.sim.drbdadm(letter, &["up", "r0"]);
        assert!(
            up.rc == 0 || up.stderr.contains("exists already"),
            "drbdadm up: {}",
            up.stderr
        );
        self.cluster.start(i);
        self.cluster.wait_ready(i);
        let peer = format!("n{}", 2 - i);
        wait_for(
            &format!("n{} to hear {peer}", i + 1),
            Duration::from_secs(30),
            Duration::from_millis(10),
            || {
                let status = self.cluster.status(i);
                (super::hb_mixed::peer(&status, &peer)["state"] == "up").then_some(())
            },
        );
    }

    /// Every id in the table.
    pub fn ids_in_table(&self) -> BTreeSet<u64> {
        let holder = self.holder().expect("a node holds the group");
        let out = self.cluster.hosts[holder]
            .sh_ok("mariadb --socket=/run/mysqld/mysqld.sock -N -B -e 'SELECT id FROM ha.t'");
        out.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Node `i`'s log file: (wall-clock time, line) per line.
    pub fn node_log(&self, i: usize) -> Vec<(std::time::SystemTime, String)> {
        let text = std::fs::read_to_string(self.dir.path().join(format!("n{}.log", i + 1)))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (stamp, rest) = l.split_once(' ')?;
                let (s, ms) = stamp.split_once('.')?;
                let t = std::time::UNIX_EPOCH
                    + Duration::from_secs(s.parse().ok()?)
                    + Duration::from_millis(ms.parse().ok()?);
                Some((t, rest.to_string()))
            })
            .collect()
    }

    /// The client's verdict: (acknowledged commits, rows in the table, acknowledged ids not
    /// in the table).
    pub fn audit(&self) -> (usize, usize, Vec<u64>) {
        let acked = self.client_log.lock().unwrap().acked_ids();
        audit_ids(&acked, &self.ids_in_table())
    }

    /// The fence log: one line per fence.
    pub fn fences(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("fence.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_client();
        let _ = self.finish_watch();
        if std::thread::panicking() {
            eprintln!(
                "---- timeline ----\n{}---- fences ----\n{:?}",
                self.timeline_text(),
                self.fences()
            );
        }
    }
}

/// DRBD resource `r0` on nodes n1 (`a`) and n2 (`b`): both up, n1's data the newer, n2
/// resynced from it, both Secondary.
pub fn replicated_pair() -> DrbdSim {
    let sim = DrbdSim::new();
    sim.map_host("n1", "a");
    sim.map_host("n2", "b");
    for n in ["a", "b"] {
        assert_eq!(sim.drbdadm(n, &["up", "r0"]).rc, 0);
    }
    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("a", &["secondary", "r0"]).rc, 0);
    sim
}

/// A loop device with ext4 holding a fresh MariaDB datadir in `data/` (owned by mysql),
/// prepared through the empty directory `mnt` and left unmounted.
pub fn disk_with_datadir(mnt: &Path) -> LoopDevice {
    let disk = LoopDevice::new(512);
    disk.mkfs("ext4", None);
    let db = MariaDb::new();
    let setup = Host::new("setup");
    setup.sh_ok(&format!(
        "mount {dev} {m} && cp -a {data} {m}/data && chown mysql:mysql {m} && umount {m}",
        dev = disk.name(),
        m = mnt.display(),
        data = db.datadir().display()
    ));
    disk
}

/// How long the client waits: to connect, for a statement, and before it tries again
/// after a failed connection.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub connect: Duration,
    pub io: Duration,
    pub retry: Duration,
}

impl Patience {
    /// For nodes in test hosts on this machine.
    pub const LOCAL: Patience = Patience {
        connect: Duration::from_millis(200),
        io: Duration::from_secs(2),
        retry: Duration::from_millis(20),
    };
}

/// The client: inserts 1, 2, 3, … into `ha.t` through the VIP from the client host (as
/// `app`), one connection at a time, reconnecting after any error, until `stop`; every
/// acknowledgement (and failure) goes to `log`.
pub fn spawn_client(
    client: &Host,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ClientLog>>,
) -> std::thread::JoinHandle<()> {
    spawn_client_in(client.pid(), VIP, Patience::LOCAL, stop, log)
}

/// [`spawn_client`] from the network namespace of process `netns_of`, to `vip`.
pub fn spawn_client_in(
    netns_of: u32,
    vip: &'static str,
    patience: Patience,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ClientLog>>,
) -> std::thread::JoinHandle<()> {
    let netns = std::fs::File::open(format!("/proc/{netns_of}/ns/net")).unwrap();
    std::thread::spawn(move || {
        // This thread (only) joins the client's network namespace.
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let opts: mysql::Opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(vip))
            .tcp_port(3306)
            .user(Some("app"))
            .pass(Some("app"))
            .db_name(Some("ha"))
            .tcp_connect_timeout(Some(patience.connect))
            .read_timeout(Some(patience.io))
            .write_timeout(Some(patience.io))
            .prefer_socket(false)
            .stmt_cache_size(0)
            .into();
        let mut next = 1u64;
        let mut conn: Option<mysql::Conn> = None;
        while !stop.load(Ordering::Relaxed) {
            if conn.is_none() {
                match mysql::Conn::new(opts.clone()) {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        let mut l = log.lock().unwrap();
                        l.errors += 1;
                        l.last_error = e.to_string();
                        drop(l);
                        std::thread::sleep(patience.retry);
                        continue;
                    }
                }
            }
            let c = conn.as_mut().unwrap();
            match c.exec_drop("INSERT INTO t (id) VALUES (?)", (next,)) {
                Ok(()) => {
                    log.lock().unwrap().acked.push((next, Instant::now()));
                    next += 1;
                }
                Err(e) => {
                    // Unknown outcome: the next attempt uses a new id, so a row that did
                    // commit is never mistaken for one that did not.
                    next += 1;
                    let mut l = log.lock().unwrap();
                    l.errors += 1;
                    l.last_error = e.to_string();
                    conn = None;
                }
            }
        }
    })
}

/// The fence command (and the test's own "power off"): SIGKILL of every process in the node's
/// network namespace but its anchor, its addresses flushed and link down, the filesystem
/// unmounted in its mount namespace, its simulated DRBD crashed. `<dir>/map` lists each
/// node's name and anchor pid (`n1 <pid>` lines); the node's letter is `a` for n1, `b` for n2.
/// (`benches/stack.rs` kills Heartbeat's nodes with the same script.)
pub fn write_fence_script(path: &Path, dir: &Path, mnt: &Path, sim: &DrbdSim) {
    let script = format!(
        r#"#!/bin/sh
set -u
node=$1
pid=$(awk -v n="$node" '$1 == n {{ print $2 }}' {dir}/map)
[ -n "$pid" ] || {{ echo "fence: unknown node $node" >&2; exit 1; }}
case $node in n1) letter=a;; n2) letter=b;; *) exit 1;; esac
# Every process in the node's network namespace but the anchor (one find, no fork per pid).
ino=$(readlink "/proc/$pid/ns/net" | tr -dc 0-9)
for round in 1 2 3 4 5 6 7 8 9 10; do
  pids=$(find /proc/[0-9]*/ns/net -maxdepth 0 -lname "net:?$ino?" 2>/dev/null | cut -d/ -f3 | grep -vx "$pid")
  [ -z "$pids" ] && break
  kill -9 $pids 2>/dev/null
  sleep 0.02
done
nsenter -t "$pid" -n sh -c 'ip addr flush dev eth0; ip link set eth0 down'
nsenter -t "$pid" -m umount -l {mnt} 2>/dev/null
DRBD_SIM_DIR={sim} {ctl} crash $letter
echo "$node $(date +%s%N)" >> {dir}/fence.log
exit 0
"#,
        dir = dir.display(),
        mnt = mnt.display(),
        sim = sim.path().display(),
        ctl = sim.bin("drbd-sim-ctl").display(),
    );
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
