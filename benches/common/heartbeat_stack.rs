//! The same stack as `tests/util/stack.rs`, run by Debian's Heartbeat 3 (v1 mode,
//! haresources) with resource-agents: `drbddisk::r0` (Heartbeat's DRBD script, from
//! drbd-utils), `Filesystem`, `IPaddr2` and `mysql` (order: see [`HeartbeatStack::new`]);
//! `Filesystem` and `IPaddr2` through the v1 wrappers resource-agents ships in
//! `/etc/ha.d/resource.d`, and `mysql` through a wrapper of the same shape (none ships).
//!
//! Same LAN and addresses (n1 198.18.1.1, n2 198.18.1.2, client 198.18.1.200, VIP
//! 198.18.1.100), the same DRBD simulator, the same ext4 loop device with the same MariaDB
//! datadir and my.cnf, and the same "power off" (the stack's fence script). What differs is
//! what a Heartbeat user gets: no fencing (Heartbeat without STONITH), resource-agents' mysql
//! with its default `mysqld_safe`.
//!
//! Each node is a test [`Host`] with private copies of `/etc/ha.d` and `/var/lib/heartbeat`
//! bind-mounted in its mount namespace (HEARTBEAT.md's recipe), and a `drbdadm` wrapper
//! bind-mounted over `/usr/sbin/drbdadm` there, so that `drbddisk` drives the simulator:
//! the simulator finds its state from the path it is run as (`<dir>/bin/drbdadm`) and its node
//! from the hostname. Its processes are found by namespace membership, never by name.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::drbd_sim::DrbdSim;
use crate::util::heartbeat_node::{self, FRESH_RUN, HEARTBEAT};
use crate::util::host::{Host, Lan, wait_for};
use crate::util::loopdev::LoopDevice;
use crate::util::mariadb;
use crate::util::stack::{CLIENT_IP, VIP, disk_with_datadir, replicated_pair, write_fence_script};

/// What Heartbeat's drbddisk runs as `drbdadm`.
const DRBDADM: &str = "/usr/sbin/drbdadm";

/// Heartbeat 3 running drbddisk → Filesystem → mysql → IPaddr2 on two nodes. Field order is
/// drop order: hosts (and everything running in them) before the disk they mounted.
pub struct HeartbeatStack {
    /// The two nodes.
    pub hosts: Vec<Host>,
    /// The client host.
    pub client: Host,
    lan: Lan,
    /// The DRBD simulator (`a` = n1, `b` = n2).
    pub sim: DrbdSim,
    _disk: LoopDevice,
    /// Per node: `ha.d`, `varlib`, `ha-log`.
    nodes: Vec<tempfile::TempDir>,
    /// Mount point, my.cnf, the power-off script and its map.
    pub dir: tempfile::TempDir,
}

impl HeartbeatStack {
    /// Builds and starts the stack with these timings (ms); returns once MySQL answers on n1's
    /// socket and the VIP is on n1.
    ///
    /// The group is `drbddisk Filesystem IPaddr2 mysql`, the order of DRBD's user's guide for
    /// Heartbeat R1-style clusters ("bob drbddisk::mysql Filesystem::/dev/drbd0::/var/lib/mysql::ext3
    /// 10.9.42.1 mysql"): the VIP comes up before MySQL, so clients get in as soon as MariaDB
    /// accepts connections, not only once resource-agents' mysql start returns (it polls
    /// every 2 s). With `vip_last`, the VIP comes last, as in ferroha's stack.
    pub fn new(
        keepalive_ms: u64,
        deadtime_ms: u64,
        warntime_ms: u64,
        vip_last: bool,
    ) -> HeartbeatStack {
        let dir = crate::util::agent::world_readable_tempdir();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        // DRBD, disk and datadir exactly as Stack::new prepares them.
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
        let fs = format!("Filesystem::{}::{m}::ext4", disk.name());
        let ip = format!("IPaddr2::{VIP}/24/eth0");
        let haresources = if vip_last {
            format!("n1 drbddisk::r0 {fs} mysql {ip}\n")
        } else {
            format!("n1 drbddisk::r0 {fs} {ip} mysql\n")
        };
        // resource-agents' mysql as a v1 resource script, in the shape of the IPaddr2 and
        // Filesystem wrappers it ships (hto-mapfuncs maps status to monitor and prints
        // "Running OK", which Heartbeat's ResourceManager looks for). Same parameters as
        // the Pacemaker tier gives it (tests/util/pacemaker.rs).
        let mysql_wrapper = format!(
            "#!/bin/sh\n\
             . /etc/ha.d/resource.d//hto-mapfuncs\n\
             usage() {{ echo \"usage: $0 $LEGAL_ACTIONS\"; }}\n\
             OCF_RESKEY_binary=/usr/bin/mysqld_safe\n\
             OCF_RESKEY_config={cfg}\n\
             OCF_RESKEY_datadir={m}/data\n\
             OCF_RESKEY_user={user}\n\
             OCF_RESKEY_group={group}\n\
             OCF_RESKEY_log={m}/error.log\n\
             OCF_RESKEY_pid=/run/mysqld/mysqld.pid\n\
             OCF_RESKEY_socket=/run/mysqld/mysqld.sock\n\
             OCF_TYPE=mysql\n\
             OCF_RESOURCE_INSTANCE=mysql\n\
             export OCF_RESKEY_binary OCF_RESKEY_config OCF_RESKEY_datadir OCF_RESKEY_user \
             OCF_RESKEY_group OCF_RESKEY_log OCF_RESKEY_pid OCF_RESKEY_socket OCF_TYPE \
             OCF_RESOURCE_INSTANCE\n\
             ra_execocf $1\n",
            cfg = config.display(),
            user = mariadb::USER,
            group = mariadb::GROUP,
        );
        let drbdadm_wrapper = sim.drbdadm_for_drbddisk();
        let lan = Lan::new(1);
        let hosts: Vec<Host> = (1..=2).map(|i| Host::new(&format!("n{i}"))).collect();
        let mut nodes = vec![];
        for (i, host) in hosts.iter().enumerate() {
            lan.attach(host, "eth0", Some(&format!("198.18.1.{}/24", i + 1)));
            let node = crate::util::agent::world_readable_tempdir();
            let d = node.path();
            let settings = heartbeat_node::Settings::timed(keepalive_ms, deadtime_ms, warntime_ms);
            heartbeat_node::write_files(d, i + 1, &settings, &haresources, "bench");
            for (path, text) in [
                (d.join("ha.d/resource.d/mysql"), &mysql_wrapper),
                (d.join("drbdadm"), &drbdadm_wrapper),
            ] {
                std::fs::write(&path, text).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            // The node's private view, kept for its life (the anchor holds the namespace).
            heartbeat_node::bind_files(host, d);
            host.sh_ok(&format!("mount --bind {}/drbdadm {DRBDADM}", d.display()));
            nodes.push(node);
        }
        let map: String = hosts
            .iter()
            .map(|h| format!("{} {}\n", h.name(), h.pid()))
            .collect();
        std::fs::write(dir.path().join("map"), map).unwrap();
        let client = Host::new("client");
        lan.attach(&client, "eth0", Some(&format!("{CLIENT_IP}/24")));
        let stack = HeartbeatStack {
            hosts,
            client,
            lan,
            sim,
            _disk: disk,
            nodes,
            dir,
        };
        stack.start(0);
        stack.start(1);
        wait_for(
            "Heartbeat's group with MySQL and the VIP on n1",
            Duration::from_secs(120),
            Duration::from_millis(50),
            || {
                (crate::util::hb_cluster::has_local_address(stack.hosts[0].pid(), VIP)
                    && stack.hosts[0]
                        .sh("mariadb --socket=/run/mysqld/mysqld.sock -e 'SELECT 1'")
                        .status
                        .success())
                .then_some(())
            },
        );
        stack.hosts[0].sh_ok(
            "mariadb --socket=/run/mysqld/mysqld.sock -e \"\
             CREATE DATABASE ha; CREATE TABLE ha.t (id BIGINT PRIMARY KEY) ENGINE=InnoDB; \
             CREATE USER 'app'@'%' IDENTIFIED BY 'app'; GRANT ALL ON ha.* TO 'app'@'%';\"",
        );
        stack
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Starts Heartbeat on node `i` (it daemonises) with the `/run` of a booted node: a stale
    /// pid file from a power-off would stop it.
    pub fn start(&self, i: usize) {
        self.hosts[i].sh_ok(&format!("{FRESH_RUN} && {HEARTBEAT} >/dev/null 2>&1"));
    }

    /// Powers node `i` off: the stack's own script (every process in the node SIGKILLed, its
    /// addresses flushed and link down, the filesystem lazily unmounted, DRBD crashed).
    pub fn power_off(&self, i: usize) {
        let out = std::process::Command::new(self.dir.path().join("fence"))
            .arg(format!("n{}", i + 1))
            .output()
            .unwrap();
        assert!(out.status.success(), "power off: {out:?}");
    }

    /// Powers node `i` on: link and address back, DRBD up (resyncs from the peer), Heartbeat
    /// started; returns once both daemons see each other, the node holds nothing and the
    /// peer everything (`cl_status`).
    pub fn power_on(&self, i: usize) {
        self.hosts[i].sh_ok(&format!(
            "ip link set eth0 up; ip addr add 198.18.1.{}/24 dev eth0 2>/dev/null; true",
            i + 1
        ));
        let up = self.sim.drbdadm(["a", "b"][i], &["up", "r0"]);
        assert!(
            up.rc == 0 || up.stderr.contains("exists already"),
            "drbdadm up: {}",
            up.stderr
        );
        self.start(i);
        let me = format!("n{}", i + 1);
        let peer = format!("n{}", 2 - i);
        wait_for(
            &format!("{me}'s Heartbeat to rejoin as standby"),
            Duration::from_secs(120),
            Duration::from_millis(50),
            || {
                let mine = self.cl_status(i, &format!("nodestatus {peer}"));
                let theirs = self.cl_status(1 - i, &format!("nodestatus {me}"));
                let rsc = self.cl_status(i, "rscstatus");
                let holder = self.cl_status(1 - i, "rscstatus");
                (mine == "active" && theirs == "active" && rsc == "none" && holder == "all")
                    .then_some(())
            },
        );
    }

    /// `cl_status <args>` on node `i`, trimmed ("" when it fails).
    pub fn cl_status(&self, i: usize, args: &str) -> String {
        let out = self.hosts[i].sh(&format!("cl_status {args} 2>/dev/null"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Node `i`'s ha-log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].path().join("ha-log")).unwrap_or_default()
    }

    /// The anchor pids of the nodes.
    pub fn anchors(&self) -> Vec<u32> {
        self.hosts.iter().map(Host::pid).collect()
    }

    /// The LAN's switch (kept alive with the stack).
    pub fn lan(&self) -> &Lan {
        &self.lan
    }

    /// Where the nodes' files are.
    pub fn node_dir(&self, i: usize) -> &Path {
        self.nodes[i].path()
    }
}
