//! The rolling migration of a live Heartbeat 3 cluster to hb-monitor with the whole stack
//! (issue 10): DRBD (the simulator) → ext4 → MySQL (MariaDB) → VIP, run from ONE
//! `haresources` line by Debian's `heartbeat` first and by hb-monitor after the switch, while a
//! client on a third host commits rows through the VIP the whole time.
//!
//! The line is what a Heartbeat user of DRBD's guide writes:
//!
//! ```text
//! n1 drbddisk::r0 Filesystem::/dev/loopN::/var/lib/mysql::ext4 mysql IPaddr2::198.18.1.100/24/eth0
//! ```
//!
//! Heartbeat runs `drbddisk` (drbd-utils' script), resource-agents' `Filesystem` and
//! `IPaddr2` v1 wrappers, and `/etc/ha.d/resource.d/mysql`, a wrapper of the same shape around
//! resource-agents' mysql (none ships; as in `benches/common/heartbeat_stack.rs`) with a
//! Debian machine's paths. hb-monitor maps the same words to ferroha's drbd, fs, mysql (all
//! defaults) and vip agents. What makes one line serve both is the node's view of the machine,
//! the way a real node looks, not a product change: in each node's mount namespace the DRBD
//! simulator's `drbdadm` and `drbdsetup` are bind-mounted at `/usr/sbin` (where drbd-utils
//! puts them), a standard `/etc/mysql/my.cnf` (the test's MariaDB settings), the node's own
//! `/var/log` (MariaDB's error log), and the datadir is the filesystem at `/var/lib/mysql`.
//!
//! Sampled from outside the nodes every 10 ms: which nodes are DRBD Primary, have the
//! filesystem mounted, run mariadbd and hold the VIP; never two at one sample. The client's
//! gaps (no acknowledgement for more than 200 ms) are reported; one of a second or more must
//! fall inside one of the two orderly hand-overs (from its command to the first commit after
//! the VIP arrived), and every acknowledged commit must be in the table at the end.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::util::agent::{built_bin, world_readable_tempdir};
use super::util::drbd_sim::DrbdSim;
use super::util::hb_mixed::{Mixed, heartbeat_installed, peer};
use super::util::host::{Host, wait_for};
use super::util::loopdev::LoopDevice;
use super::util::mariadb::{self, MariaDb};
use super::util::stack::{CLIENT_IP, ClientLog, VIP, node_state, replicated_pair, spawn_client};

/// Where the filesystem goes, and MySQL's datadir: Debian's.
const DATADIR: &str = "/var/lib/mysql";
const SOCKET_SQL: &str = "mariadb --socket=/run/mysqld/mysqld.sock";
const KEEPALIVE_MS: u64 = 100;
/// Above the VIP tests' 600 ms: MariaDB's start and the client's commits load this 2-core
/// machine, and an orderly hand-over does not wait for deadtime.
const DEADTIME_MS: u64 = 1000;
/// A pause between acknowledgements longer than this is a gap the client saw (reported).
const GAP: Duration = Duration::from_millis(200);
/// Outside the hand-overs the service never stops: a pause this long there fails the test (a
/// shorter one is a commit slowed by a loaded machine, and is reported).
const STALL: Duration = Duration::from_secs(1);

/// resource-agents' mysql as a v1 resource script (the shape of the Filesystem and IPaddr2
/// wrappers resource-agents ships: hto-mapfuncs maps `status` to `monitor` and prints what
/// Heartbeat's ResourceManager looks for), with a Debian machine's paths: the same server,
/// configuration, datadir, pid file and socket ferroha's mysql agent uses by default.
const MYSQL_V1_WRAPPER: &str = "#!/bin/sh
. /etc/ha.d/resource.d//hto-mapfuncs
usage() { echo \"usage: $0 $LEGAL_ACTIONS\"; }
OCF_RESKEY_binary=/usr/bin/mysqld_safe
OCF_RESKEY_config=/etc/mysql/my.cnf
OCF_RESKEY_datadir=/var/lib/mysql
OCF_RESKEY_user=mysql
OCF_RESKEY_group=mysql
OCF_RESKEY_log=/var/log/mysql/error.log
OCF_RESKEY_pid=/run/mysqld/mysqld.pid
OCF_RESKEY_socket=/run/mysqld/mysqld.sock
OCF_TYPE=mysql
OCF_RESOURCE_INSTANCE=mysql
export OCF_RESKEY_binary OCF_RESKEY_config OCF_RESKEY_datadir OCF_RESKEY_user OCF_RESKEY_group \
OCF_RESKEY_log OCF_RESKEY_pid OCF_RESKEY_socket OCF_TYPE OCF_RESOURCE_INSTANCE
ra_execocf $1
";

/// Two nodes running the stack from one set of files, a client host, the simulator, the disk.
/// Field order is drop order: the nodes (and everything running or mounted in them) go first,
/// then the client, then the disk they mounted.
struct World {
    m: Mixed,
    client: Host,
    sim: DrbdSim,
    _disk: LoopDevice,
    /// `/etc/mysql` of both nodes, each node's `/var/log`, the DRBD wrappers.
    dir: tempfile::TempDir,
    t0: Instant,
    timeline: Vec<(Duration, String)>,
}

impl World {
    fn new() -> World {
        let t0 = Instant::now();
        let dir = world_readable_tempdir();
        let d = dir.path();
        // DRBD as in Stack.
        let sim = replicated_pair();
        // ext4 whose root is the MariaDB datadir (mounted at /var/lib/mysql, as Debian's).
        let disk = LoopDevice::new(512);
        disk.mkfs("ext4", None);
        {
            let db = MariaDb::new();
            let mnt = d.join("setup-mnt");
            std::fs::create_dir(&mnt).unwrap();
            let setup = Host::new("setup");
            setup.sh_ok(&format!(
                "mount {dev} {m} && cp -a {data}/. {m}/ && chown mysql:mysql {m} && umount {m}",
                dev = disk.name(),
                m = mnt.display(),
                data = db.datadir().display()
            ));
        }
        // The machine's /etc/mysql: my.cnf with the tests' MariaDB settings, reachable from
        // the LAN.
        std::fs::create_dir(d.join("etc-mysql")).unwrap();
        let cnf = d.join("etc-mysql/my.cnf");
        std::fs::write(
            &cnf,
            mariadb::CONFIG.replace("bind-address=127.0.0.1", "bind-address=0.0.0.0"),
        )
        .unwrap();
        std::fs::set_permissions(&cnf, std::fs::Permissions::from_mode(0o644)).unwrap();
        // drbddisk's drbdadm, and a drbdsetup that runs the simulator under its own path
        // (how it finds its state).
        let drbdadm = sim.drbdadm_for_drbddisk();
        let drbdsetup = format!(
            "#!/bin/sh\nexec {} \"$@\"\n",
            sim.bin("drbdsetup").display()
        );
        for (name, text) in [("drbdadm", &drbdadm), ("drbdsetup", &drbdsetup)] {
            let path = d.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let haresources = format!(
            "n1 drbddisk::r0 Filesystem::{dev}::{DATADIR}::ext4 mysql IPaddr2::{VIP}/24/eth0\n",
            dev = disk.name()
        );
        let m = Mixed::build(
            "off",
            KEEPALIVE_MS,
            DEADTIME_MS,
            &haresources,
            |i, host, node_dir| {
                let script = node_dir.join("ha.d/resource.d/mysql");
                std::fs::write(&script, MYSQL_V1_WRAPPER).unwrap();
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
                let log = d.join(format!("n{}-log", i + 1));
                std::fs::create_dir(&log).unwrap();
                host.sh_ok(&format!(
                    "mkdir -p {log}/mysql && chown mysql:adm {log}/mysql && \
                     mount --bind {d}/drbdadm /usr/sbin/drbdadm && \
                     mount --bind {d}/drbdsetup /usr/sbin/drbdsetup && \
                     mount --bind {d}/etc-mysql /etc/mysql && \
                     mount --bind {log} /var/log && \
                     mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld",
                    log = log.display(),
                    d = d.display(),
                ));
            },
        );
        let client = Host::new("client");
        m.lan
            .attach(&client, "eth0", Some(&format!("{CLIENT_IP}/24")));
        World {
            m,
            client,
            sim,
            _disk: disk,
            dir,
            t0,
            timeline: vec![],
        }
    }

    fn note(&mut self, what: &str) {
        self.timeline.push((self.t0.elapsed(), what.to_string()));
    }

    /// What started node `i`'s running mariadbd: its parent's command line
    /// (resource-agents' mysql runs it under `mysqld_safe`; ferroha's starts it directly, so
    /// its parent is the daemon's init).
    fn mysqld_parent(&self, i: usize) -> String {
        let anchor = self.m.hosts[i].pid();
        let pid = std::fs::read_to_string(format!("/proc/{anchor}/root/run/mysqld/mysqld.pid"))
            .unwrap_or_default();
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        // pid (comm) state ppid ...: comm may hold spaces, so count from its closing paren.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .unwrap_or("0");
        std::fs::read(format!("/proc/{ppid}/cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// Node `i`'s MariaDB answers on its socket.
    fn mysql_answers(&self, i: usize) -> bool {
        self.m.hosts[i]
            .sh(&format!("{SOCKET_SQL} -e 'SELECT 1'"))
            .status
            .success()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- timeline ----");
            for (at, what) in &self.timeline {
                eprintln!("{:>7} ms  {what}", at.as_millis());
            }
            for i in 0..2 {
                let log = self
                    .dir
                    .path()
                    .join(format!("n{}-log/mysql/error.log", i + 1));
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!("---- n{} MariaDB error log (last lines) ----", i + 1);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// What the sampler saw.
#[derive(Default)]
struct Seen {
    samples: u64,
    /// (ms since the sampler started, what, nodes) at every sample where two nodes had it.
    doubles: Vec<(u128, &'static str, Vec<usize>)>,
    /// Samples in which one node was DRBD Primary, mounted, running MySQL, holding the VIP
    /// (each must be seen, or the sampler would prove nothing).
    single: [u64; 4],
    /// Stretches with no node holding the VIP: (start, length).
    vip_gaps: Vec<(Instant, Duration)>,
    elapsed: Duration,
}

/// Samples both nodes every 10 ms from outside (the simulator's state file, each anchor's
/// mounts, pid file and addresses), until `stop`.
fn spawn_sampler(
    anchors: [u32; 2],
    state_file: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let what = ["DRBD Primary", "mounted", "MySQL running", "VIP"];
        let mut seen = Seen::default();
        let start = Instant::now();
        let mut gap_since: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let sim_state = std::fs::read_to_string(&state_file).unwrap_or_default();
            let now = Instant::now();
            let states: Vec<[bool; 4]> = anchors
                .iter()
                .zip(["a", "b"])
                .map(|(p, l)| node_state(*p, DATADIR, &sim_state, l))
                .collect();
            seen.samples += 1;
            for (k, name) in what.iter().enumerate() {
                let nodes: Vec<usize> = (0..2).filter(|&i| states[i][k]).collect();
                match nodes.len() {
                    0 => {}
                    1 => seen.single[k] += 1,
                    _ => seen
                        .doubles
                        .push((start.elapsed().as_millis(), name, nodes.clone())),
                }
            }
            let vip_holders = states.iter().filter(|s| s[3]).count();
            match (vip_holders, gap_since) {
                (0, None) => gap_since = Some(now),
                (1.., Some(t)) => {
                    seen.vip_gaps.push((t, now - t));
                    gap_since = None;
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(t) = gap_since {
            seen.vip_gaps.push((t, t.elapsed()));
        }
        seen.elapsed = start.elapsed();
        seen
    })
}

/// Waits until the client has an acknowledgement later than `since`; the first such.
fn wait_commit_after(log: &Mutex<ClientLog>, since: Instant, within: Duration) -> Instant {
    wait_for(
        "a commit through the VIP",
        within,
        Duration::from_millis(5),
        || {
            log.lock()
                .unwrap()
                .acked
                .iter()
                .rev()
                .take_while(|(_, t)| *t > since)
                .last()
                .map(|(_, t)| *t)
        },
    )
}

#[test]
#[ignore = "needs root"]
fn rolling_migration_of_the_mysql_on_drbd_group_loses_no_commit() {
    heartbeat_installed();
    let mut w = World::new();
    w.note("world built");
    // Heartbeat on both nodes, from the line above; the group comes up on n1.
    w.m.start_heartbeat(0);
    w.m.start_heartbeat(1);
    wait_for(
        "Heartbeat's group (MySQL and the VIP) on n1",
        Duration::from_secs(90),
        Duration::from_millis(50),
        || (w.m.has_vip(0) && !w.m.has_vip(1) && w.mysql_answers(0)).then_some(()),
    );
    wait_for(
        "both Heartbeat nodes to settle",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            (0..2)
                .all(|i| {
                    w.m.heartbeat_log(i)
                        .contains("Initial resource acquisition complete")
                })
                .then_some(())
        },
    );
    w.m.hosts[0].sh_ok(&format!(
        "{SOCKET_SQL} -e \"CREATE DATABASE ha; \
         CREATE TABLE ha.t (id BIGINT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE USER 'app'@'%' IDENTIFIED BY 'app'; GRANT ALL ON ha.* TO 'app'@'%';\""
    ));
    let parent = w.mysqld_parent(0);
    assert!(
        parent.contains("mysqld_safe") || parent.contains("mariadbd-safe"),
        "Heartbeat's mysql (resource-agents) runs the server under mysqld_safe: {parent:?}"
    );
    w.note(&format!(
        "Heartbeat runs the group on n1 (mariadbd's parent: {parent})"
    ));

    let stop_sampler = Arc::new(AtomicBool::new(false));
    let sampler = spawn_sampler(
        [w.m.hosts[0].pid(), w.m.hosts[1].pid()],
        w.sim.path().join("state"),
        stop_sampler.clone(),
    );
    let stop_client = Arc::new(AtomicBool::new(false));
    let client_log: Arc<Mutex<ClientLog>> = Arc::default();
    let client = spawn_client(&w.client, stop_client.clone(), client_log.clone());
    wait_commit_after(&client_log, Instant::now(), Duration::from_secs(20));
    w.note("client commits through the VIP");
    let migration = Instant::now();
    // (what, start, first commit after it)
    let mut handovers: Vec<(&str, Instant, Instant)> = vec![];

    // 1. n2 (standby) switches to hb-monitor.
    w.m.stop_heartbeat(1);
    let n1_since = w.m.heartbeat_log(0).len();
    w.note("n2: heartbeat -k done");
    // The same files, as hb-monitor reads them: every resource of the line maps to a ferroha
    // agent, and each validates on this node.
    let check = w.m.hosts[1]
        .command(built_bin("hb-monitor"))
        .args(["check", "-c", "/etc/ha.d", "--ocf-root"])
        .arg(w.m.ocf_root())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "hb-monitor check on n2: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    w.m.start_hb_monitor(1);
    wait_for(
        "n2 (hb-monitor) to see n1 holding the group",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let s = w.m.status(1);
            (peer(&s, "n1")["holding"] == "held" && s["groups"][0]["holding"] == "none")
                .then_some(())
        },
    );
    w.note("n2: hb-monitor runs, sees n1 holding");

    // 2. hb_standby on n1 (Heartbeat): the group goes to n2 (hb-monitor).
    let t = Instant::now();
    w.m.hosts[0].sh_ok("/usr/share/heartbeat/hb_standby >/dev/null 2>&1 || true");
    w.m.wait_vip_only_on(1, Duration::from_secs(60));
    let back = wait_commit_after(&client_log, Instant::now(), Duration::from_secs(30));
    handovers.push(("hb_standby on n1 (Heartbeat) -> n2 (hb-monitor)", t, back));
    let parent = w.mysqld_parent(1);
    assert!(
        !parent.contains("safe"),
        "ferroha's mysql starts the server itself: {parent:?}"
    );
    w.note("group on n2, client committing");

    // 3. n1 switches to hb-monitor; auto_failback off: the group stays on n2.
    w.m.stop_heartbeat(0);
    w.note("n1: heartbeat -k done");
    w.m.start_hb_monitor(0);
    wait_for(
        "n1 (hb-monitor) to see n2 holding the group",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let s = w.m.status(0);
            (peer(&s, "n2")["holding"] == "held"
                && peer(&s, "n2")["kind"] == "hb-monitor"
                && s["groups"][0]["holding"] == "none")
                .then_some(())
        },
    );
    w.note("n1: hb-monitor runs, sees n2 holding");

    // 4. Hand back to the preferred node, now between two hb-monitor nodes.
    let t = Instant::now();
    let out = w.m.hosts[1]
        .command(built_bin("hb-monitor"))
        .arg("standby")
        .output()
        .unwrap();
    assert!(out.status.success(), "hb-monitor standby: {out:?}");
    w.m.wait_vip_only_on(0, Duration::from_secs(60));
    let back = wait_commit_after(&client_log, Instant::now(), Duration::from_secs(30));
    handovers.push(("hb-monitor standby on n2 -> n1 (hb-monitor)", t, back));
    let parent = w.mysqld_parent(0);
    assert!(
        !parent.contains("safe"),
        "ferroha's mysql starts the server itself: {parent:?}"
    );
    w.note("group on n1, client committing");
    std::thread::sleep(Duration::from_millis(300));
    let migration_took = migration.elapsed();

    stop_client.store(true, Ordering::Relaxed);
    client.join().unwrap();
    stop_sampler.store(true, Ordering::Relaxed);
    let seen = sampler.join().unwrap();

    // The audit: every acknowledged id in the table, read on the holder's socket.
    let rows = w.m.hosts[0].sh_ok(&format!("{SOCKET_SQL} -N -B -e 'SELECT id FROM ha.t'"));
    let present: std::collections::BTreeSet<u64> =
        rows.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let log = client_log.lock().unwrap();
    let lost: Vec<u64> = log
        .acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !present.contains(id))
        .collect();
    // The client's gaps: pauses between consecutive acknowledgements longer than GAP.
    let gaps: Vec<(Instant, Duration)> = log
        .acked
        .windows(2)
        .map(|p| (p[0].1, p[1].1 - p[0].1))
        .filter(|(_, d)| *d > GAP)
        .collect();

    for (at, what) in &w.timeline {
        eprintln!("{:>7} ms  {what}", at.as_millis());
    }
    let ms = |d: Duration| d.as_millis();
    for (what, start, back) in &handovers {
        eprintln!(
            "{what}: service back {} ms after the command",
            ms(*back - *start)
        );
    }
    // A gap belongs to a hand-over when it ends by the first commit after it and began no
    // earlier than one GAP before its command (the last commit before it may precede it).
    let within = |start: Instant, len: Duration, s: Instant, b: Instant| {
        start + GAP >= s && start + len <= b
    };
    for (start, len) in &gaps {
        let during = handovers
            .iter()
            .find(|(_, s, b)| within(*start, *len, *s, *b))
            .map_or("OUTSIDE any hand-over", |(w, _, _)| w);
        eprintln!(
            "client gap {} ms at {} ms: {during}",
            ms(*len),
            ms(*start - w.t0)
        );
    }
    eprintln!(
        "VIP gaps {:?} ms; {} samples in {} ms (one every {:.1} ms) of DRBD Primary, mounted, \
         MySQL running, VIP: {} with two nodes (on one node: {:?}); migration {} ms; commits acknowledged {}, \
         failed attempts {} (last: {}), rows {}, lost {}; wall {} ms",
        seen.vip_gaps
            .iter()
            .map(|(_, l)| ms(*l))
            .collect::<Vec<_>>(),
        seen.samples,
        ms(seen.elapsed),
        seen.elapsed.as_secs_f64() * 1000.0 / seen.samples.max(1) as f64,
        seen.doubles.len(),
        seen.single,
        ms(migration_took),
        log.acked.len(),
        log.errors,
        log.last_error,
        present.len(),
        lost.len(),
        ms(w.t0.elapsed()),
    );

    assert!(
        seen.single.iter().all(|n| *n > 0),
        "the sampler never saw one of DRBD Primary, mounted, MySQL, VIP: {:?}",
        seen.single
    );
    assert!(
        seen.doubles.is_empty(),
        "two nodes at once: {:?}",
        &seen.doubles[..seen.doubles.len().min(20)]
    );
    assert!(lost.is_empty(), "acknowledged commits lost: {lost:?}");
    assert!(log.acked.len() > 100, "too few commits to mean anything");
    for (start, len) in &gaps {
        assert!(
            *len < STALL
                || handovers
                    .iter()
                    .any(|(_, s, b)| within(*start, *len, *s, *b)),
            "a client gap of {} ms outside the hand-overs",
            ms(*len)
        );
    }
    assert!(
        seen.vip_gaps.len() <= 2,
        "the VIP was missing more often than the two hand-overs"
    );
    // n1's Heartbeat talked to hb-monitor from step 1 until its own stop in step 3.
    let complaints = w.m.protocol_complaints(0, n1_since);
    assert!(
        complaints.is_empty(),
        "Heartbeat on n1 complained about hb-monitor:\n{}",
        complaints.join("\n")
    );
}
