//! Two-node Corosync + Pacemaker clusters in test hosts, for running ferroha's agents (and
//! resource-agents' for comparison) the way a real cluster does: `pacemaker-execd` calling
//! them with a scrubbed environment, `cibadmin` for all configuration, `crm_mon` for status.
//!
//! Each [`Node`] is a [`Host`] on one [`Lan`] with its own state bind-mounted over the paths
//! the daemons have compiled in (`/etc/corosync`, `/var/lib/corosync`, `/var/lib/pacemaker`,
//! `/var/log/{corosync,pacemaker}`), a private tmpfs on `/dev/shm` (libqb's rings) and, over
//! `/usr/lib/ocf/resource.d`, a tmpfs holding the machine's providers plus `ferroha` bound to
//! a `make install` tree. The machine's own files are never touched: everything lives in the
//! node's mount namespace and vanishes with it. corosync runs in the foreground and
//! pacemakerd (which cannot daemonise) as a plain child; both are found by pid, and dropping
//! the cluster drops the hosts, which SIGKILL every member process by namespace.
//!
//! The recipe and its pitfalls are in /work/shared/PACEMAKER.md: `dc-deadtime=2s` is seeded
//! into the CIB before start (with the default 20 s the first DC is elected only after 20 s;
//! `0s` never elects one), `PCMK_logfacility=none` (no syslog here), and the totem token
//! is short so that a lost node is noticed in about two seconds.
//!
//! [`SharedDisk`] is the "replicated" block device: one loop device with ext4 that both nodes
//! reach through `/run/ferroha/drbd0` (a symlink in each node's private `/run`), so both see
//! the same data as DRBD protocol C gives them. A partition without fencing runs the stack on
//! both sides, as DRBD would on two disks; [`SharedDisk::split`] then gives the cut-off side
//! a copy of the disk taken while the file system was frozen (the state DRBD had replicated
//! at the cut), so the two sides never mount one device at once. [`MountWatch`] checks that.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::host::{Guarded, Host, Lan, wait_for};

/// Where a node's agents find the replicated device (a symlink in the node's own `/run`).
pub const DEVICE_LINK: &str = "/run/ferroha/drbd0";

/// How long to wait for a cluster to form, or for resources to settle after a change.
pub const SETTLE: Duration = Duration::from_secs(60);

/// How often status is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// One cluster node: a test host running corosync and pacemakerd.
pub struct Node {
    /// The host (hostname = node name). Dropped first: it kills the daemons.
    pub host: Host,
    /// Node name (also the hostname and corosync's `name`).
    pub name: String,
    /// Its port on the switch (`port<n>`: [`Lan::attach`] numbers them in order).
    port: String,
    corosync: Option<Guarded>,
    pacemakerd: Option<Guarded>,
    /// The node's state: corosync.conf, CIB, logs (bind-mounted inside the host).
    state: tempfile::TempDir,
}

/// A resource instance as `crm_mon` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Resource id (a clone's primitive id, e.g. `drbd`).
    pub id: String,
    /// `Started`, `Promoted`, `Unpromoted`, `Stopped`...
    pub role: String,
    /// Node it is active on.
    pub node: String,
    /// crm_mon's `failed` flag.
    pub failed: bool,
}

/// A failed operation as `crm_mon` shows it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// e.g. `vip_start_0`.
    pub op_key: String,
    /// Node it failed on.
    pub node: String,
    /// e.g. `not configured`.
    pub exitstatus: String,
    /// The agent's `ocf-exit-reason`.
    pub exitreason: String,
}

/// What one node's `crm_mon --output-as=xml` says.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Nodes shown online.
    pub online: BTreeSet<String>,
    /// Whether a DC is known.
    pub have_dc: bool,
    /// Active resource instances.
    pub resources: Vec<Placed>,
    /// Failed actions.
    pub failures: Vec<Failure>,
}

impl Status {
    /// Nodes on which resource `id` is active in `role` (any role when `None`).
    pub fn nodes_of(&self, id: &str, role: Option<&str>) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .resources
            .iter()
            .filter(|r| r.id == id && role.is_none_or(|role| r.role == role))
            .map(|r| r.node.clone())
            .collect();
        nodes.sort();
        nodes
    }

    /// The one node where `id` is active in `role`, if exactly one.
    pub fn only_node(&self, id: &str, role: &str) -> Option<String> {
        match self.nodes_of(id, Some(role)).as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    fn parse(xml: &str) -> Option<Status> {
        let doc = roxmltree::Document::parse(xml).ok()?;
        let mut status = Status::default();
        for n in doc.descendants() {
            match n.tag_name().name() {
                "current_dc" => status.have_dc = n.attribute("present") == Some("true"),
                "node"
                    if n.parent()?.tag_name().name() == "nodes"
                        && n.attribute("online") == Some("true") =>
                {
                    status.online.insert(n.attribute("name")?.to_string());
                }
                "resource" if n.parent()?.tag_name().name() != "history" => {
                    for on in n.children().filter(|c| c.tag_name().name() == "node") {
                        status.resources.push(Placed {
                            id: n.attribute("id")?.to_string(),
                            role: n.attribute("role").unwrap_or("").to_string(),
                            node: on.attribute("name")?.to_string(),
                            failed: n.attribute("failed") == Some("true"),
                        });
                    }
                }
                "failure" => status.failures.push(Failure {
                    op_key: n.attribute("op_key").unwrap_or("").to_string(),
                    node: n.attribute("node").unwrap_or("").to_string(),
                    exitstatus: n.attribute("exitstatus").unwrap_or("").to_string(),
                    exitreason: n.attribute("exitreason").unwrap_or("").to_string(),
                }),
                _ => {}
            }
        }
        Some(status)
    }
}

/// Cluster-wide options seeded into the CIB before the first start.
const CRM_CONFIG: &str = r#"<cluster_property_set id="cib-bootstrap-options">
  <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
  <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
  <nvpair id="opt-recheck" name="cluster-recheck-interval" value="1min"/>
</cluster_property_set>"#;

/// Resource defaults: stay where you run (no bouncing back after a rejoin).
const RSC_DEFAULTS: &str = r#"<rsc_defaults><meta_attributes id="rsc-options">
  <nvpair id="rsc-stickiness" name="resource-stickiness" value="100"/>
</meta_attributes></rsc_defaults>"#;

/// A two-node cluster on one LAN.
pub struct Cluster {
    /// The two nodes. Dropped before the LAN.
    pub nodes: Vec<Node>,
    /// The LAN (its switch can ping the VIP).
    pub lan: Lan,
}

impl Cluster {
    /// Two nodes `<prefix>1` and `<prefix>2` at 198.18.<subnet>.1 and .2, corosync with a
    /// totem token of `token_ms` (consensus 1.2 times that), Pacemaker with the agents of
    /// `agents` (a `make install` provider tree) as `ocf:ferroha:*`. Returns once both nodes
    /// are online and a DC is elected.
    pub fn start(subnet: u8, prefix: &str, token_ms: u32, agents: &Path) -> Cluster {
        let lan = Lan::new(subnet);
        let names: Vec<String> = (1..=2).map(|i| format!("{prefix}{i}")).collect();
        let conf = corosync_conf(&lan, &names, token_ms);
        let mut nodes: Vec<Node> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Node::prepare(&lan, name, i as u8 + 1, &conf, agents))
            .collect();
        // Both corosyncs first, then both pacemakerds, so that neither waits for the other.
        for node in &mut nodes {
            node.start_corosync();
        }
        for node in &mut nodes {
            node.start_pacemaker();
        }
        let cluster = Cluster { nodes, lan };
        cluster.wait_formed(SETTLE);
        cluster
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The other node.
    pub fn other(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name != name)
            .expect("two nodes")
    }

    /// Pulls (or plugs back) `node`'s cable: its port on the switch goes down (up), so the
    /// node loses every link it has and cannot undo it itself. (`ip link set eth0 down`
    /// inside the node would not last: a VIP agent whose monitor then fails is restarted,
    /// and its start sets the interface up, as IPaddr2's does.)
    pub fn set_cable(&self, node: &Node, plugged: bool) {
        let state = if plugged { "up" } else { "down" };
        self.lan
            .switch
            .ip_batch(&format!("link set {} {state}", node.port));
    }

    /// Waits until the cluster has no pending actions (`crm_resource --wait`).
    pub fn wait_idle(&self, timeout: Duration) {
        self.nodes[0].run_ok(
            "crm_resource",
            &["--wait", &format!("--timeout={}s", timeout.as_secs())],
        );
    }

    /// Polls both nodes' Pacemaker logs until a line contains `text`; returns that line.
    pub fn wait_log(&self, text: &str, timeout: Duration) -> String {
        wait_for(
            &format!("{text:?} in a Pacemaker log"),
            timeout,
            Duration::from_millis(100),
            || {
                self.nodes.iter().find_map(|n| {
                    n.pacemaker_log()
                        .lines()
                        .find(|l| l.contains(text))
                        .map(str::to_string)
                })
            },
        )
    }

    /// Waits until every node sees every node online and a DC.
    pub fn wait_formed(&self, timeout: Duration) {
        let all: BTreeSet<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for node in &self.nodes {
            node.wait_status("both nodes online with a DC", timeout, |s| {
                s.have_dc && s.online == all
            });
        }
    }
}

fn corosync_conf(lan: &Lan, names: &[String], token_ms: u32) -> String {
    let mut nodelist = String::new();
    for (i, name) in names.iter().enumerate() {
        nodelist.push_str(&format!(
            "    node {{\n        name: {name}\n        nodeid: {}\n        ring0_addr: {}\n    }}\n",
            i + 1,
            lan.ip(i as u8 + 1)
        ));
    }
    format!(
        "totem {{\n    version: 2\n    cluster_name: ferroha-test\n    transport: knet\n    \
         crypto_cipher: none\n    crypto_hash: none\n    token: {token_ms}\n}}\n\
         logging {{\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n    \
         to_syslog: no\n    to_stderr: no\n    timestamp: hires\n}}\n\
         quorum {{\n    provider: corosync_votequorum\n    two_node: 1\n}}\n\
         nodelist {{\n{nodelist}}}\n"
    )
}

/// `mkdir` with an exact mode, owned by hacluster:haclient when `hacluster`.
fn make_dir(path: &Path, mode: u32, hacluster: bool) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    if hacluster {
        let (uid, gid) = hacluster_ids();
        chown(path, Some(uid), Some(gid)).unwrap();
    }
}

fn hacluster_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name("hacluster")
        .ok()
        .flatten()
        .expect("user hacluster (apt-get install pacemaker)");
    let group = nix::unistd::Group::from_name("haclient")
        .ok()
        .flatten()
        .expect("group haclient");
    (user.uid.as_raw(), group.gid.as_raw())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Node {
    /// The host with its state mounted and the CIB seeded; no daemon yet.
    fn prepare(lan: &Lan, name: &str, index: u8, conf: &str, agents: &Path) -> Node {
        let host = Host::new(name);
        lan.attach(&host, "eth0", Some(&lan.cidr(index)));
        let state = tempfile::Builder::new()
            .prefix("ferroha-pcmk-")
            .tempdir_in("/tmp")
            .unwrap();
        let s = state.path();
        fs::set_permissions(s, fs::Permissions::from_mode(0o755)).unwrap();
        make_dir(&s.join("etc-corosync"), 0o755, false);
        fs::write(s.join("etc-corosync/corosync.conf"), conf).unwrap();
        make_dir(&s.join("var-lib-corosync"), 0o755, false);
        make_dir(&s.join("log-corosync"), 0o755, false);
        make_dir(&s.join("log-pacemaker"), 0o770, true);
        make_dir(&s.join("var-lib-pacemaker"), 0o755, false);
        for sub in ["cib", "pengine", "blackbox", "cores"] {
            make_dir(&s.join("var-lib-pacemaker").join(sub), 0o750, true);
        }
        seed_cib(&s.join("var-lib-pacemaker/cib/cib.xml"));
        let script = format!(
            "set -e
S={s}
mount --bind $S/etc-corosync /etc/corosync
mount --bind $S/var-lib-corosync /var/lib/corosync
mount --bind $S/var-lib-pacemaker /var/lib/pacemaker
mount --bind $S/log-corosync /var/log/corosync
mount --bind $S/log-pacemaker /var/log/pacemaker
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mkdir -p /run/crm /run/ferroha
chown hacluster:haclient /run/crm
R=/usr/lib/ocf/resource.d
mkdir /run/ocf-providers
mount --bind $R /run/ocf-providers
mount -t tmpfs -o mode=0755 tmpfs $R
for p in /run/ocf-providers/*; do
    mkdir $R/${{p##*/}}
    mount --bind $p $R/${{p##*/}}
done
mkdir $R/ferroha
mount --bind {agents} $R/ferroha
",
            s = s.display(),
            agents = agents.display()
        );
        host.sh_ok(&script);
        Node {
            host,
            name: name.to_string(),
            port: format!("port{index}"),
            corosync: None,
            pacemakerd: None,
            state,
        }
    }

    fn start_corosync(&mut self) {
        let mut cmd = self.host.command("corosync");
        cmd.arg("-f").stdout(Stdio::null()).stderr(Stdio::null());
        self.corosync = Some(self.host.spawn(&mut cmd));
        // IPC is ready after about 0.4 s.
        wait_for(
            &format!("corosync on {} to answer", self.name),
            Duration::from_secs(20),
            POLL,
            || {
                let out = self.host.command("corosync-cfgtool").arg("-s").output();
                out.ok().filter(|o| o.status.success()).map(|_| ())
            },
        );
    }

    fn start_pacemaker(&mut self) {
        let mut cmd = self.host.command("pacemakerd");
        cmd.env("PCMK_logfile", "/var/log/pacemaker/pacemaker.log")
            .env("PCMK_logfacility", "none")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.pacemakerd = Some(self.host.spawn(&mut cmd));
    }

    /// Runs a program in the node (Pacemaker's CLI tools talk to the local daemons).
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.host
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run {program}: {e}", self.name))
    }

    /// Like [`Node::run`], panicking with the output on failure; returns stdout.
    pub fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{}: {program} {args:?}: {}\n{}",
            self.name,
            out.status,
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cibadmin <args>`, which must succeed.
    pub fn cibadmin(&self, args: &[&str]) -> String {
        self.run_ok("cibadmin", args)
    }

    /// This node's view: `crm_mon -1 --output-as=xml` (None while it cannot answer).
    pub fn status(&self) -> Option<Status> {
        let out = self
            .host
            .command("crm_mon")
            .args(["-1", "--output-as=xml", "--inactive"])
            .output()
            .ok()?;
        Status::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// `crm_mon -1` as text, with failed actions (what an operator reads).
    pub fn crm_mon_text(&self) -> String {
        text(&self.run("crm_mon", &["-1", "--inactive"]))
    }

    /// Polls [`Node::status`] until `pred` holds; returns that status.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Status) -> bool,
    ) -> Status {
        let start = Instant::now();
        loop {
            if let Some(status) = self.status().filter(|s| pred(s)) {
                return status;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "timed out after {timeout:?} waiting on {} for {what}; crm_mon:\n{}",
                    self.name,
                    self.crm_mon_text()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Pacemaker's log on this node.
    pub fn pacemaker_log(&self) -> String {
        fs::read_to_string(self.state.path().join("log-pacemaker/pacemaker.log"))
            .unwrap_or_default()
    }

    /// The promotion score drbd-agent published for resource `rsc` on this node (None when
    /// absent).
    pub fn promotion_score(&self, rsc: &str) -> Option<String> {
        let out = self.run(
            "crm_attribute",
            &[
                "--node",
                &self.name,
                "--name",
                &format!("master-{rsc}"),
                "--lifetime",
                "reboot",
                "--query",
                "--quiet",
            ],
        );
        let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !value.is_empty()).then_some(value)
    }

    /// The fail count of `rsc` on this node (0 when none).
    pub fn fail_count(&self, rsc: &str) -> u64 {
        let out = self.run(
            "crm_failcount",
            &["--query", "-r", rsc, "-N", &self.name, "--quiet"],
        );
        let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match value.as_str() {
            "INFINITY" => u64::MAX,
            v => v.parse().unwrap_or(0),
        }
    }

    /// Its port on the switch.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// Whether `ip` is configured on eth0.
    pub fn has_ip(&self, ip: &str) -> bool {
        let out = self.host.sh("ip -o -4 addr show dev eth0");
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {ip}/"))
    }

    /// Block devices (`major:minor`) mounted in this node, read from its mountinfo.
    pub fn mounted_devices(&self) -> Vec<String> {
        mounted_devices(self.host.pid())
    }

    /// SQL as root over a socket inside the node (unix_socket authentication).
    pub fn sql(&self, socket: &str, statements: &str) -> Result<String, String> {
        let out = self
            .host
            .command("/usr/bin/mariadb")
            .args([
                "--no-defaults",
                &format!("--socket={socket}"),
                "--user=root",
                "--batch",
                "--skip-column-names",
                "--connect-timeout=5",
            ])
            .arg(format!("--execute={statements}"))
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(text(&out))
        }
    }
}

/// Writes a CIB holding only the cluster options and resource defaults, with `cibadmin` on a file (`CIB_file`).
fn seed_cib(path: &Path) {
    let empty = Command::new("cibadmin")
        .arg("--empty")
        .output()
        .expect("cibadmin (apt-get install pacemaker-cli-utils)");
    assert!(empty.status.success(), "cibadmin --empty: {}", text(&empty));
    fs::write(path, &empty.stdout).unwrap();
    for (section, xml) in [("crm_config", CRM_CONFIG), ("configuration", RSC_DEFAULTS)] {
        let out = Command::new("cibadmin")
            .env("CIB_file", path)
            .args(["--create", "-o", section, "-X", xml])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cibadmin on {}: {}",
            path.display(),
            text(&out)
        );
    }
    let (uid, gid) = hacluster_ids();
    chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    // cibadmin on a file leaves a digest next to it; the daemon writes its own.
    let _ = fs::remove_file(path.with_extension("xml.sig"));
}

/// The `major:minor` of every block-device mount (major 7 = loop) in the mount namespace of
/// `pid`.
fn mounted_devices(pid: u32) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .filter(|dev| dev.starts_with("7:"))
        .map(str::to_string)
        .collect()
}

/// `major:minor` of a block device path.
pub fn dev_number(path: &str) -> String {
    let rdev = fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .rdev();
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// The "replicated" device (see the module docs).
pub struct SharedDisk {
    /// The device both nodes see while they are connected.
    pub dev: super::loopdev::LoopDevice,
    /// Copies given to a cut-off node; detached on drop (after the hosts are gone).
    replicas: Vec<Replica>,
}

/// A loop device over a copy of the shared disk's file.
struct Replica {
    dev: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Whether the device is (still) ours: attached to our file. Once it is detached (a
    /// detach while mounted only sets autoclear, and the kernel detaches it later) its
    /// number may be reused by someone else, whose device must be left alone.
    fn attached(&self) -> bool {
        let name = self.dev.trim_start_matches("/dev/");
        fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"))
            .is_ok_and(|f| Path::new(f.trim()) == self.file)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.attached() {
            let detached = Command::new("losetup")
                .args(["-d", &self.dev])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if detached {
                return;
            }
            if Instant::now() >= deadline {
                eprintln!("loop device {} could not be detached", self.dev);
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Thaws a frozen file system when dropped (a test that fails mid-split must not leave a
/// frozen file system behind: its mount could never be torn down).
struct Frozen<'a> {
    host: &'a Host,
    dir: String,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = self.host.sh(&format!("fsfreeze -u {}", self.dir));
    }
}

impl SharedDisk {
    /// A 64 MiB ext4 loop device holding a copy of `datadir` as `data/` (ownership kept),
    /// filled through a mount inside a throw-away host (so the machine's mount table never
    /// shows it). [`Lab::start`] links it as [`DEVICE_LINK`] on every node.
    pub fn with_datadir(datadir: &Path, mountpoint: &Path) -> SharedDisk {
        let dev = super::loopdev::LoopDevice::with_fs("ext4", Some("ferroha"));
        let filler = Host::new("ferroha-disk-fill");
        filler.sh_ok(&format!(
            "set -e; mount {dev} {mnt}; cp -a {src} {mnt}/data; umount {mnt}",
            dev = dev.name(),
            mnt = mountpoint.display(),
            src = datadir.display()
        ));
        drop(filler);
        SharedDisk {
            dev,
            replicas: Vec::new(),
        }
    }

    /// Points `node`'s [`DEVICE_LINK`] at `dev`.
    fn link(&self, node: &Node, dev: &str) {
        let link = PathBuf::from(format!("/proc/{}/root{DEVICE_LINK}", node.host.pid()));
        let _ = fs::remove_file(&link);
        symlink(dev, &link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    }

    /// `major:minor` of the device both nodes share.
    pub fn dev_number(&self) -> String {
        dev_number(&self.dev.name())
    }

    /// A partition: freezes the file system mounted at `mountpoint` on `active`, copies the
    /// disk (what DRBD had replicated at that moment), points `other` at the copy, runs `cut`
    /// (which cuts the link) while still frozen, then thaws. Returns the copy's device.
    pub fn split(
        &mut self,
        active: &Node,
        other: &Node,
        mountpoint: &Path,
        cut: impl FnOnce(),
    ) -> String {
        let backing = fs::read_to_string(format!(
            "/sys/block/{}/loop/backing_file",
            self.dev.name().trim_start_matches("/dev/")
        ))
        .expect("backing file of the shared disk");
        let dir = tempfile::Builder::new()
            .prefix("ferroha-replica-")
            .tempdir_in("/tmp")
            .unwrap();
        let copy = dir.path().join("disk.img");
        let frozen = Frozen {
            host: &active.host,
            dir: mountpoint.display().to_string(),
        };
        active
            .host
            .sh_ok(&format!("fsfreeze -f {}", mountpoint.display()));
        let out = Command::new("cp")
            .arg("--sparse=always")
            .arg(backing.trim())
            .arg(&copy)
            .output()
            .unwrap();
        assert!(out.status.success(), "cp: {}", text(&out));
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {}", text(&out));
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.replicas.push(Replica {
            dev: dev.clone(),
            file: copy.canonicalize().unwrap_or(copy),
            _dir: dir,
        });
        self.link(other, &dev);
        cut();
        drop(frozen);
        dev
    }
}

/// Samples both nodes' mount tables every few milliseconds in a thread and records every
/// moment one device was mounted on both nodes at once (or twice on one).
pub struct MountWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl MountWatch {
    /// Starts watching the hosts of `nodes` (by anchor pid).
    pub fn start(nodes: &[Node]) -> MountWatch {
        let pids: Vec<(String, u32)> = nodes
            .iter()
            .map(|n| (n.name.clone(), n.host.pid()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let mut all: Vec<(String, String)> = Vec::new();
                for (name, pid) in &pids {
                    for dev in mounted_devices(*pid) {
                        all.push((dev, name.clone()));
                    }
                }
                all.sort();
                for pair in all.windows(2) {
                    if pair[0].0 == pair[1].0 && seen.len() < 20 {
                        seen.push(format!(
                            "device {} mounted on {} and {} at once",
                            pair[0].0, pair[0].1, pair[1].1
                        ));
                    }
                }
                thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        MountWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching; the double mounts seen (empty when none).
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("mount watch"))
            .unwrap_or_default()
    }
}

impl Drop for MountWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where each node's MySQL keeps its pid file, socket and error log (the node's own `/run`).
pub const MYSQL_RUN: &str = "/run/ferroha-mysql";

/// The MySQL socket on the active node.
pub fn mysql_socket() -> String {
    format!("{MYSQL_RUN}/mysqld.sock")
}

/// Which agents run the file system, MySQL and the VIP (drbd-agent runs DRBD in both: the
/// simulator is a DRBD 8.4 userland, which LINBIT's agent cannot drive without the module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agents {
    /// `ocf:ferroha:fs`, `ocf:ferroha:mysql`, `ocf:ferroha:vip`.
    Ferroha,
    /// `ocf:heartbeat:Filesystem`, `ocf:heartbeat:mysql`, `ocf:heartbeat:IPaddr2`
    /// (benches/pacemaker.rs compares them).
    #[allow(dead_code)]
    ResourceAgents,
}

/// A `<primitive>` with instance attributes and operations (`(name, interval, timeout)`).
pub fn primitive(
    id: &str,
    provider: &str,
    type_name: &str,
    params: &[(&str, String)],
    ops: &[(&str, &str, &str, Option<&str>)],
) -> String {
    let mut xml = format!(
        r#"<primitive id="{id}" class="ocf" provider="{provider}" type="{type_name}"><instance_attributes id="{id}-ia">"#
    );
    for (name, value) in params {
        xml.push_str(&format!(
            r#"<nvpair id="{id}-{name}" name="{name}" value="{value}"/>"#
        ));
    }
    xml.push_str("</instance_attributes><operations>");
    for (name, interval, timeout, role) in ops {
        let role_attr = role.map(|r| format!(r#" role="{r}""#)).unwrap_or_default();
        let role_id = role.map(|r| format!("-{r}")).unwrap_or_default();
        xml.push_str(&format!(
            r#"<op id="{id}-{name}-{interval}{role_id}" name="{name}" interval="{interval}" timeout="{timeout}"{role_attr}/>"#
        ));
    }
    xml.push_str("</operations></primitive>");
    xml
}

/// The MySQL-on-DRBD stack's resources and constraints, with the ids the tests use:
/// `drbd-clone` (primitive `drbd`), group `db` of `fs`, `mysql`, `vip`.
pub struct Stack {
    /// The promotable clone.
    pub clone: String,
    /// The group, created with `target-role=Stopped` (see [`Lab::configure`]).
    pub group: String,
    /// Colocation with the Promoted role and order after promotion.
    pub constraints: [String; 2],
}

/// A cluster with everything the stack needs: the DRBD simulator (node `a` = `<prefix>1`,
/// `b` = `<prefix>2`; `a` has UpToDate data, `b` syncs from it on first connect), a shared
/// disk holding a MariaDB datadir, a mount point, ferroha's agents installed.
pub struct Lab {
    /// The running cluster (dropped first: its hosts take every process and mount along).
    pub cluster: Cluster,
    /// The replicated disk.
    pub disk: SharedDisk,
    /// The DRBD simulator.
    pub sim: super::drbd_sim::DrbdSim,
    /// Where `fs` mounts the disk (the same path on both nodes).
    pub mountpoint: PathBuf,
    /// The VIP.
    pub vip: String,
    /// The datadir template copy and `my.cnf`.
    db: super::mariadb::MariaDb,
    _dirs: Vec<tempfile::TempDir>,
}

impl Lab {
    /// Starts it all on LAN `subnet` with nodes `<prefix>1` and `<prefix>2` (no resources
    /// configured yet).
    pub fn start(subnet: u8, prefix: &str, token_ms: u32) -> Lab {
        let dest = super::agent::world_readable_tempdir();
        super::agent::make_install(dest.path());
        let agents = dest.path().join("usr/lib/ocf/resource.d/ferroha");
        let sim = super::drbd_sim::DrbdSim::new();
        sim.map_host(&format!("{prefix}1"), "a");
        sim.map_host(&format!("{prefix}2"), "b");
        sim.ctl(&["disk", "a", "UpToDate"]);
        let db = super::mariadb::MariaDb::new();
        let mnt = super::agent::world_readable_tempdir();
        let mountpoint = mnt.path().join("mysql");
        make_dir(&mountpoint, 0o755, false);
        let disk = SharedDisk::with_datadir(db.datadir(), &mountpoint);
        let cluster = Cluster::start(subnet, prefix, token_ms, &agents);
        for node in &cluster.nodes {
            disk.link(node, &disk.dev.name());
        }
        let vip = cluster.lan.ip(100);
        Lab {
            cluster,
            disk,
            sim,
            mountpoint,
            vip,
            db,
            _dirs: vec![dest, mnt],
        }
    }

    /// drbd-agent's parameters for the simulator's resource `r0`.
    pub fn drbd_params(&self) -> Vec<(&'static str, String)> {
        let sim = &self.sim;
        let path = |p: &Path| p.display().to_string();
        vec![
            ("drbd_resource", "r0".into()),
            ("drbdconf", path(&sim.conf())),
            ("drbdadm", path(&sim.bin("drbdadm"))),
            ("drbdsetup", path(&sim.bin("drbdsetup"))),
        ]
    }

    /// The mysql agent's parameters for the lab's datadir (`agents`' server binary).
    pub fn mysql_params(&self, agents: Agents) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        vec![
            (
                "binary",
                match agents {
                    Agents::Ferroha => super::mariadb::MARIADBD.into(),
                    Agents::ResourceAgents => "/usr/bin/mysqld_safe".into(),
                },
            ),
            ("config", path(self.db.config())),
            ("datadir", path(&self.mountpoint.join("data"))),
            ("user", super::mariadb::USER.into()),
            ("group", super::mariadb::GROUP.into()),
            ("log", format!("{MYSQL_RUN}/error.log")),
            ("pid", format!("{MYSQL_RUN}/mysqld.pid")),
            ("socket", mysql_socket()),
        ]
    }

    /// The resources (agents of `agents` for fs, mysql and vip) and constraints.
    pub fn stack(&self, agents: Agents) -> Stack {
        let path = |p: &Path| p.display().to_string();
        let drbd = primitive(
            "drbd",
            "ferroha",
            "drbd",
            &self.drbd_params(),
            &[
                ("monitor", "2s", "20s", Some("Promoted")),
                ("monitor", "3s", "20s", Some("Unpromoted")),
                ("start", "0s", "60s", None),
                ("stop", "0s", "60s", None),
                ("promote", "0s", "60s", None),
                ("demote", "0s", "60s", None),
                ("notify", "0s", "60s", None),
            ],
        );
        let clone = format!(
            r#"<clone id="drbd-clone"><meta_attributes id="drbd-clone-meta">
<nvpair id="drbd-clone-promotable" name="promotable" value="true"/>
<nvpair id="drbd-clone-promoted-max" name="promoted-max" value="1"/>
<nvpair id="drbd-clone-promoted-node-max" name="promoted-node-max" value="1"/>
<nvpair id="drbd-clone-clone-max" name="clone-max" value="2"/>
<nvpair id="drbd-clone-clone-node-max" name="clone-node-max" value="1"/>
<nvpair id="drbd-clone-notify" name="notify" value="true"/>
</meta_attributes>{drbd}</clone>"#
        );
        let ops = |interval| {
            [
                ("monitor", interval, "20s", None),
                ("start", "0s", "60s", None),
                ("stop", "0s", "60s", None),
            ]
        };
        let mysql_params = self.mysql_params(agents);
        let (provider, fs_type, mysql_type, vip_type) = match agents {
            Agents::Ferroha => ("ferroha", "fs", "mysql", "vip"),
            Agents::ResourceAgents => ("heartbeat", "Filesystem", "mysql", "IPaddr2"),
        };
        let fs = primitive(
            "fs",
            provider,
            fs_type,
            &[
                ("device", DEVICE_LINK.into()),
                ("directory", path(&self.mountpoint)),
                ("fstype", "ext4".into()),
            ],
            &ops("2s"),
        );
        let mysql = primitive("mysql", provider, mysql_type, &mysql_params, &ops("2s"));
        let vip = primitive(
            "vip",
            provider,
            vip_type,
            &[
                ("ip", self.vip.clone()),
                ("cidr_netmask", "24".into()),
                ("nic", "eth0".into()),
            ],
            &ops("1s"),
        );
        let group = format!(
            r#"<group id="db"><meta_attributes id="db-meta"><nvpair id="db-target-role" name="target-role" value="Stopped"/></meta_attributes>{fs}{mysql}{vip}</group>"#
        );
        Stack {
            clone,
            group,
            constraints: [
                r#"<rsc_colocation id="db-with-promoted-drbd" score="INFINITY" rsc="db" with-rsc="drbd-clone" with-rsc-role="Promoted"/>"#.into(),
                r#"<rsc_order id="db-after-drbd-promote" kind="Mandatory" first="drbd-clone" first-action="promote" then="db" then-action="start"/>"#.into(),
            ],
        }
    }

    /// Loads `stack` with cibadmin on the first node: the clone, the group (stopped), the
    /// constraints, then the group's target-role to Started, so the group never runs before
    /// it is tied to the Promoted instance.
    pub fn configure(&self, stack: &Stack) {
        let node = &self.cluster.nodes[0];
        node.cibadmin(&["--create", "-o", "resources", "-X", &stack.clone]);
        node.cibadmin(&["--create", "-o", "resources", "-X", &stack.group]);
        for c in &stack.constraints {
            node.cibadmin(&["--create", "-o", "constraints", "-X", c]);
        }
        node.cibadmin(&[
            "--modify",
            "-X",
            r#"<nvpair id="db-target-role" name="target-role" value="Started"/>"#,
        ]);
    }

    /// Waits until, seen from `observer`, the whole stack runs on one node with DRBD promoted
    /// there; returns that node's name.
    pub fn wait_stack(&self, observer: &Node, timeout: Duration) -> String {
        let status = observer.wait_status("the stack on one node", timeout, |s| {
            let Some(node) = s.only_node("drbd", "Promoted") else {
                return false;
            };
            ["fs", "mysql", "vip"]
                .iter()
                .all(|r| s.nodes_of(r, Some("Started")) == [node.as_str()])
        });
        status.only_node("drbd", "Promoted").expect("checked")
    }
}
