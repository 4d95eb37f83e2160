//! Heartbeat 3's configuration files, read so that an existing installation moves over
//! unchanged: `ha.cf` (nodes, timings, media, ping nodes), `haresources` (the resource group)
//! and `authkeys` (the HMAC key).
//!
//! Every error names the file and line. Directives that change nothing for hb-monitor are
//! accepted with a note; anything hb-monitor cannot honour safely (`crm on`, an unknown
//! directive, `crc` "authentication", a readable `authkeys`) is an error, so that the daemon
//! refuses to start rather than run differently from what the file says.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// One heartbeat medium from `ha.cf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Medium {
    /// `bcast IFACE...`: broadcast on each interface.
    Bcast {
        /// Interface.
        iface: String,
    },
    /// `mcast IFACE GROUP PORT TTL LOOP`, or with an IPv6 group `mcast6 IFACE GROUP PORT HOPS
    /// LOOP`.
    Mcast {
        /// Interface.
        iface: String,
        /// Multicast group.
        group: IpAddr,
        /// UDP port.
        port: u16,
        /// Multicast TTL (1-255), or for IPv6 the hop limit (1-4).
        ttl: u8,
        /// Whether our own packets loop back (Heartbeat's `loop`, 0 or 1).
        looped: bool,
    },
    /// `ucast IFACE PEER`, or with an IPv6 peer `ucast6 IFACE PEER`: unicast to one peer.
    Ucast {
        /// Interface.
        iface: String,
        /// Peer address (a link-local IPv6 one is on `iface`).
        peer: IpAddr,
    },
    /// `serial DEVICE` (with `baud`).
    Serial {
        /// Device path.
        device: PathBuf,
    },
}

/// `auto_failback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoFailback {
    /// Resources go back to their preferred node when it returns.
    On,
    /// Resources stay where they are.
    Off,
    /// Heartbeat's pre-1.2 behaviour (`legacy`): like on, for clusters without the new logic.
    Legacy,
}

/// `ha.cf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaCf {
    /// `node` names (`uname -n` of each member).
    pub nodes: Vec<String>,
    /// `keepalive`: time between heartbeats.
    pub keepalive: Duration,
    /// `deadtime`: silence after which a peer is dead.
    pub deadtime: Duration,
    /// `warntime`: silence after which a late heartbeat is logged.
    pub warntime: Duration,
    /// `initdead`: deadtime at start-up.
    pub initdead: Duration,
    /// `deadping`: a ping node is unreachable after this long without a reply (default
    /// `deadtime`, as in Heartbeat).
    pub deadping: Duration,
    /// `udpport`.
    pub udpport: u16,
    /// Media, in file order.
    pub media: Vec<Medium>,
    /// `baud` for serial media.
    pub baud: u32,
    /// `ping` and `ping6` nodes, each its own group.
    pub ping: Vec<IpAddr>,
    /// `ping_group NAME ADDR...`: a group counts as reachable when any member answers.
    pub ping_groups: Vec<(String, Vec<IpAddr>)>,
    /// `auto_failback`.
    pub auto_failback: AutoFailback,
    /// `logfacility` (syslog), if any and not `none`.
    pub logfacility: Option<String>,
    /// `logfile`.
    pub logfile: Option<PathBuf>,
    /// `debugfile`.
    pub debugfile: Option<PathBuf>,
    /// Accepted directives that change nothing for hb-monitor, as notes to log.
    pub notes: Vec<String>,
    /// `realtime` (default on, as in Heartbeat): SCHED_RR and locked memory, so that a busy
    /// machine does not delay heartbeats into a false failover.
    pub realtime: bool,
    /// `rtprio`: the SCHED_RR priority (default 10).
    pub rtprio: u8,
    /// `fence_command PROGRAM [ARG...]` (ours): run with the node's name appended before
    /// taking the group over from a node that did not hand it over cleanly; exit 0 means
    /// that node is off.
    pub fence_command: Vec<String>,
    /// `fence_timeout` (ours, default 60 s).
    pub fence_timeout: Duration,
    /// `monitor_interval` (ours, default 10 s, 0 = off): how often each running resource
    /// of the group is monitored.
    pub monitor_interval: Duration,
    /// `restart_limit COUNT WINDOW` (ours, default 3 in 10 min): local restarts of a failed
    /// resource before the group fails over.
    pub restart_limit: (u32, Duration),
    /// `watchdog DEVICE` (Heartbeat's): fed every keepalive; if the daemon hangs or dies, the
    /// watchdog resets the machine.
    pub watchdog: Option<PathBuf>,
    /// `metrics_listen [ADDR:]PORT` (ours): serve `GET /metrics` (Prometheus text) there;
    /// 127.0.0.1 when only a port is given.
    pub metrics_listen: Option<SocketAddr>,
    /// `notify_command PROGRAM [ARG...]` (ours): run on each transition an operator wants
    /// to hear of, with the event appended and in `HB_*` variables.
    pub notify_command: Vec<String>,
    /// `notify_timeout` (ours, default 10 s): how long one run of notify_command may take.
    pub notify_timeout: Duration,
    /// `respawn USER PROGRAM [ARG...]` (Heartbeat's): helpers kept running (`hb::respawn`),
    /// each with its line.
    pub respawn: Vec<Respawn>,
    /// The line of each directive (its last occurrence), for messages about what it names.
    pub lines: BTreeMap<String, usize>,
    /// The line of each medium, in the order of `media`.
    pub media_lines: Vec<usize>,
}

impl HaCf {
    /// The line where `directive` was last given (0: not given).
    pub fn line_of(&self, directive: &str) -> usize {
        self.lines.get(directive).copied().unwrap_or(0)
    }
}

/// How a resource runs: the classes of Heartbeat 3 (and Pacemaker's names for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceClass {
    /// An OCF agent, `$OCF_ROOT/resource.d/PROVIDER/TYPE ACTION`, its parameters in
    /// `OCF_RESKEY_*`.
    Ocf,
    /// A Heartbeat resource script, `$HA_DIR/resource.d/NAME [ARG...] start|stop|status`,
    /// whose `status` is read from what it prints.
    Heartbeat,
    /// An LSB init script, `INIT_DIR/NAME [ARG...] start|stop|status`, whose `status` is its
    /// LSB exit code.
    Lsb,
}

/// Where a script was found and the environment it runs with (Heartbeat's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The executable.
    pub path: PathBuf,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
}

/// One resource of a group as written in `haresources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceEntry {
    /// How it runs.
    pub class: ResourceClass,
    /// The OCF agent's provider (`heartbeat` or `lsb` for a script, for messages).
    pub provider: String,
    /// The OCF agent's type, or the script's name.
    pub agent: String,
    /// OCF parameters (`OCF_RESKEY_<name>`) in order; a script's arguments, named 1, 2, ...
    pub params: Vec<(String, String)>,
    /// Written without a class (`NAME::ARG`): Heartbeat's search, `resource.d` and then the
    /// init directory, decides the class ([`resolve_scripts`]).
    pub searched: bool,
    /// A script's path and environment, once [`resolve_scripts`] found it.
    pub script: Option<Script>,
    /// How it was written, for messages.
    pub written: String,
    /// Line in `haresources`.
    pub line: usize,
}

/// A resource group: where it prefers to run and its resources, started left to right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceGroup {
    /// The preferred node.
    pub preferred: String,
    /// Resources in start order.
    pub resources: Vec<ResourceEntry>,
    /// Line where the group starts.
    pub line: usize,
}

/// HMAC methods of `authkeys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HMAC-SHA-256 (hb-monitor's own; the default for new clusters).
    Sha256,
    /// HMAC-SHA-1 (Heartbeat's).
    Sha1,
    /// HMAC-MD5 (Heartbeat's).
    Md5,
}

/// `authkeys`: the active key and every key that may verify a packet.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKeys {
    /// Key number used to sign.
    pub active: u8,
    /// Keys by number.
    pub keys: BTreeMap<u8, (AuthMethod, Vec<u8>)>,
}

impl fmt::Debug for AuthKeys {
    // Secrets stay out of logs and test output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let methods: Vec<_> = self.keys.iter().map(|(n, (m, _))| (n, m)).collect();
        f.debug_struct("AuthKeys")
            .field("active", &self.active)
            .field("keys", &methods)
            .finish()
    }
}

/// The whole configuration directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory it was read from.
    pub dir: PathBuf,
    /// `ha.cf`.
    pub ha_cf: HaCf,
    /// `haresources`.
    pub groups: Vec<ResourceGroup>,
    /// `authkeys`.
    pub auth: AuthKeys,
}

/// Reads and checks `dir/{ha.cf,haresources,authkeys}`; every problem found, not just the first.
pub fn load(dir: &Path) -> Result<Config, Vec<ConfigError>> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .map(|text| (path.clone(), text))
            .map_err(|e| ConfigError {
                file: path,
                line: 0,
                message: format!("cannot read: {e}"),
            })
    };
    let mut errors = Vec::new();
    let ha_cf = read("ha.cf").and_then(|(p, t)| {
        parse_ha_cf(&p, &t).map_err(|mut e| {
            let first = e.remove(0);
            errors.extend(e);
            first
        })
    });
    let groups = read("haresources").and_then(|(p, t)| {
        parse_haresources(&p, &t).map_err(|mut e| {
            let first = e.remove(0);
            errors.extend(e);
            first
        })
    });
    let auth = check_authkeys_mode(&dir.join("authkeys"))
        .and_then(|()| read("authkeys"))
        .and_then(|(p, t)| parse_authkeys(&p, &t));
    let (mut ha_cf, groups, (auth, auth_notes)) = match (ha_cf, groups, auth) {
        (Ok(h), Ok(g), Ok(a)) => (h, g, a),
        (h, g, a) => {
            errors.extend([h.err(), g.err(), a.err()].into_iter().flatten());
            errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    ha_cf.notes.extend(auth_notes);
    let haresources = dir.join("haresources");
    for group in &groups {
        if !ha_cf.nodes.contains(&group.preferred) {
            errors.push(ConfigError {
                file: haresources.clone(),
                line: group.line,
                message: format!(
                    "preferred node '{}' is not a node of ha.cf ({})",
                    group.preferred,
                    ha_cf.nodes.join(", ")
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(Config {
            dir: dir.to_path_buf(),
            ha_cf,
            groups,
            auth,
        })
    } else {
        Err(errors)
    }
}

/// Parses the three files' texts as [`load`] would (without reading files or checking the
/// authkeys' permissions): for the fuzz targets and their regression corpus, which must find
/// errors, never panics.
pub fn parse_texts(ha_cf: &str, haresources: &str, authkeys: &str) -> Vec<String> {
    let mut errors = vec![];
    if let Err(e) = parse_ha_cf(Path::new("ha.cf"), ha_cf) {
        errors.extend(e.iter().map(ToString::to_string));
    }
    if let Err(e) = parse_haresources(Path::new("haresources"), haresources) {
        errors.extend(e.iter().map(ToString::to_string));
    }
    if let Err(e) = parse_authkeys(Path::new("authkeys"), authkeys) {
        errors.push(e.to_string());
    }
    errors
}

/// The longest time any directive may say: a day. Longer times are typos (or attacks), and
/// capping them where they are read keeps every sum of times and instants far from overflow.
pub const MAX_TIME: Duration = Duration::from_secs(86_400);

/// The shortest `keepalive`: 1 ms. Below it the loop would spend its CPU sending and the log
/// would fill (docs/hb-monitor.md, "Configuration"); 5 ms, the benchmark setting, is well above.
pub const MIN_KEEPALIVE: Duration = Duration::from_millis(1);

/// The most restarts `restart_limit` may allow within its window.
pub const MAX_RESTARTS: u32 = 1000;

/// Heartbeat's time syntax: seconds (`2`, `0.5`) or milliseconds with `ms`; at most
/// [`MAX_TIME`].
pub fn parse_time(text: &str) -> Option<Duration> {
    let text = text.trim();
    let time = if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_millis(ms.trim().parse::<u64>().ok()?)
    } else {
        let secs: f64 = text.strip_suffix('s').unwrap_or(text).parse().ok()?;
        if !(0.0..=MAX_TIME.as_secs_f64()).contains(&secs) {
            return None;
        }
        Duration::from_secs_f64(secs)
    };
    (time <= MAX_TIME).then_some(time)
}

/// One `respawn USER PROGRAM [ARG...]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Respawn {
    /// The user it runs as.
    pub user: String,
    /// The program (an absolute path).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The line in ha.cf.
    pub line: usize,
}

/// Directives of ha.cf that change nothing for hb-monitor, and why: accepted, noted.
const IGNORED: &[(&str, &str)] = &[
    (
        "use_logd",
        "there is no logging daemon: logs go to logfile and syslog directly",
    ),
    (
        "msgfmt",
        "heartbeats are netstring messages whatever it says, as Heartbeat sends them",
    ),
    (
        "apiauth",
        "it governs Heartbeat's client API, which hb-monitor does not have",
    ),
    (
        "coredumps",
        "core dumps are the service manager's setting (LimitCORE=)",
    ),
    (
        "compression",
        "hb-monitor compresses nothing: its messages are all small",
    ),
    ("compression_threshold", "hb-monitor compresses nothing"),
    ("traditional_compression", "hb-monitor compresses nothing"),
    (
        "uuidfrom",
        "the node's UUID is Heartbeat's hb_uuid when there is one, else its own",
    ),
    ("hopfudge", "hb-monitor forwards no messages between media"),
    (
        "conn_logd_time",
        "there is no logging daemon to reconnect to",
    ),
    (
        "max_rexmit_delay",
        "lost messages are asked for again at once",
    ),
    ("logfile_max_size", "rotating logfile is left to logrotate"),
    (
        "cluster",
        "the cluster's name is for Pacemaker; hb-monitor's cluster is its node lines",
    ),
    (
        "hbgenmethod",
        "the generation is kept in the state directory, above Heartbeat's",
    ),
    (
        "use_apphbd",
        "there is no apphbd to register with; watchdog guards the daemon",
    ),
    (
        "log_badpack",
        "refused packets are counted per kind in status and metrics instead",
    ),
    (
        "syslogmsgfmt",
        "logfile lines have one format, with time, level and message",
    ),
    ("coreroot", "core dumps are the service manager's setting"),
    (
        "memreserve",
        "the daemon's memory is locked whole when realtime is on",
    ),
    (
        "record_config_changes",
        "it is for Heartbeat's CRM, which hb-monitor does not run",
    ),
    (
        "record_pengine_inputs",
        "it is for Heartbeat's CRM, which hb-monitor does not run",
    ),
    (
        "enable_config_writes",
        "it is for Heartbeat's CRM, which hb-monitor does not run",
    ),
    (
        "quorum_server",
        "it is for Heartbeat's CRM, which hb-monitor does not run",
    ),
];

/// `metrics_listen`'s value: `ADDR:PORT` (IPv4, or IPv6 in brackets) or a bare `PORT` on
/// 127.0.0.1, so that metrics are not served beyond this machine unless asked for.
fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let addr = match value.parse::<u16>() {
        Ok(port) => SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Err(_) => value.parse::<SocketAddr>().map_err(|_| {
            format!(
                "metrics_listen '{value}' is not ADDR:PORT or PORT (e.g. 127.0.0.1:9664, or 9664 for localhost)"
            )
        })?,
    };
    if addr.port() == 0 {
        return Err(format!("metrics_listen '{value}': the port must not be 0"));
    }
    Ok(addr)
}

fn parse_ha_cf(path: &Path, text: &str) -> Result<HaCf, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut err = |line: usize, message: String| {
        errors.push(ConfigError {
            file: path.to_path_buf(),
            line,
            message,
        })
    };
    let mut cf = HaCf {
        nodes: vec![],
        keepalive: Duration::from_secs(2),
        deadtime: Duration::from_secs(30),
        warntime: Duration::ZERO,
        initdead: Duration::ZERO,
        deadping: Duration::ZERO,
        udpport: 694,
        media: vec![],
        baud: 19200,
        ping: vec![],
        ping_groups: vec![],
        auto_failback: AutoFailback::Legacy,
        logfacility: None,
        logfile: None,
        debugfile: None,
        notes: vec![],
        realtime: true,
        rtprio: 10,
        fence_command: vec![],
        fence_timeout: Duration::from_secs(60),
        monitor_interval: Duration::from_secs(10),
        restart_limit: (3, Duration::from_secs(600)),
        watchdog: None,
        metrics_listen: None,
        notify_command: vec![],
        notify_timeout: Duration::from_secs(10),
        respawn: vec![],
        lines: BTreeMap::new(),
        media_lines: vec![],
    };
    let mut seen_times: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut words = content.split_whitespace();
        let directive = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let one = |name: &str| -> Result<&str, String> {
            match args.as_slice() {
                [value] => Ok(value),
                _ => Err(format!("{name} takes exactly one value")),
            }
        };
        let time = |name: &str| -> Result<Duration, String> {
            let v = one(name)?;
            parse_time(v).ok_or_else(|| {
                format!("{name} '{v}' is not a time up to a day (seconds up to 86400, or NNNms)")
            })
        };
        let result: Result<(), String> = (|| {
            match directive {
                "node" => {
                    if args.is_empty() {
                        return Err("node needs at least one name".into());
                    }
                    for n in &args {
                        if cf.nodes.iter().any(|m| m == n) {
                            return Err(format!("node '{n}' is listed twice"));
                        }
                        cf.nodes.push(n.to_string());
                    }
                }
                "keepalive" => cf.keepalive = time("keepalive")?,
                "deadtime" => cf.deadtime = time("deadtime")?,
                "warntime" => cf.warntime = time("warntime")?,
                "initdead" => cf.initdead = time("initdead")?,
                "deadping" => cf.deadping = time("deadping")?,
                "udpport" => {
                    let v = one("udpport")?;
                    cf.udpport = v
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("udpport '{v}' is not a UDP port"))?;
                }
                "bcast" => {
                    if args.is_empty() {
                        return Err("bcast needs at least one interface".into());
                    }
                    cf.media.extend(args.iter().map(|i| Medium::Bcast {
                        iface: i.to_string(),
                    }));
                }
                "ucast" => match args.as_slice() {
                    [iface, peer] => cf.media.push(Medium::Ucast {
                        iface: iface.to_string(),
                        peer: ipv4_only(
                            peer.parse()
                                .map_err(|_| format!("ucast peer '{peer}' is not an IP address"))?,
                            "ucast",
                            format!("ucast6 {iface} {peer}"),
                        )?,
                    }),
                    _ => return Err("ucast takes an interface and a peer address".into()),
                },
                "ucast6" => match args.as_slice() {
                    [iface, peer] => cf.media.push(Medium::Ucast {
                        iface: iface.to_string(),
                        peer: IpAddr::V6(ucast6_peer(iface, peer)?),
                    }),
                    _ => return Err("ucast6 takes an interface and a peer's IPv6 address".into()),
                },
                "mcast" | "mcast6" => {
                    let v6 = directive == "mcast6";
                    let hops = if v6 { "hops" } else { "ttl" };
                    match args.as_slice() {
                        [iface, group, port, ttl, looped] => {
                            let group = if v6 {
                                IpAddr::V6(mcast6_group(group)?)
                            } else {
                                let group: IpAddr = group
                                    .parse()
                                    .ok()
                                    .filter(|g: &IpAddr| g.is_multicast())
                                    .ok_or_else(|| {
                                        format!("mcast group '{group}' is not a multicast address")
                                    })?;
                                ipv4_only(group, "mcast", format!("mcast6 {}", args.join(" ")))?
                            };
                            // Heartbeat's mcast6 refuses a hop limit above 4; 0 (which it
                            // lets through) would keep every heartbeat on this machine.
                            let max_hops = if v6 { 4 } else { 255 };
                            cf.media.push(Medium::Mcast {
                                iface: iface.to_string(),
                                group,
                                port: port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                                    format!("{directive} port '{port}' is not a UDP port")
                                })?,
                                ttl: ttl
                                    .parse()
                                    .ok()
                                    .filter(|t| (1..=max_hops).contains(t))
                                    .ok_or_else(|| {
                                        format!("{directive} {hops} '{ttl}' must be 1-{max_hops}")
                                    })?,
                                looped: match *looped {
                                    "0" => false,
                                    "1" => true,
                                    other => {
                                        return Err(format!(
                                            "{directive} loop '{other}' must be 0 or 1"
                                        ));
                                    }
                                },
                            });
                        }
                        _ => {
                            return Err(format!(
                                "{directive} takes: interface group port {hops} loop"
                            ));
                        }
                    }
                }
                "serial" => {
                    if args.is_empty() {
                        return Err("serial needs a device".into());
                    }
                    cf.media.extend(args.iter().map(|d| Medium::Serial {
                        device: PathBuf::from(d),
                    }));
                }
                "baud" => {
                    let v = one("baud")?;
                    cf.baud = v
                        .parse()
                        .ok()
                        .filter(|b| crate::sys::serial::BAUD_RATES.contains(b))
                        .ok_or_else(|| {
                            format!(
                                "baud '{v}': one of {}",
                                crate::sys::serial::BAUD_RATES
                                    .map(|b| b.to_string())
                                    .join(", ")
                            )
                        })?;
                }
                "ping" => {
                    for a in &args {
                        let node = a
                            .parse()
                            .map_err(|_| format!("ping node '{a}' is not an IP address"))?;
                        cf.ping
                            .push(ipv4_ping(node, "ping", "use ping6 for IPv6 ping nodes")?);
                    }
                    if args.is_empty() {
                        return Err("ping needs at least one address".into());
                    }
                }
                "ping6" => {
                    for a in &args {
                        cf.ping.push(IpAddr::V6(ping6_node(a)?));
                    }
                    if args.is_empty() {
                        return Err("ping6 needs at least one IPv6 address".into());
                    }
                }
                "ping_group" => match args.split_first() {
                    Some((name, members)) if !members.is_empty() => {
                        let members = members
                            .iter()
                            .map(|a| {
                                a.parse()
                                    .map_err(|_| {
                                        format!("ping_group member '{a}' is not an IP address")
                                    })
                                    .and_then(|node| {
                                        ipv4_ping(
                                            node,
                                            "ping_group member",
                                            "a ping_group is IPv4 only, as in Heartbeat; list \
                                             IPv6 ping nodes with ping6, each its own group",
                                        )
                                    })
                            })
                            .collect::<Result<Vec<IpAddr>, String>>()?;
                        cf.ping_groups.push((name.to_string(), members));
                    }
                    _ => return Err("ping_group takes a name and at least one address".into()),
                },
                "auto_failback" | "nice_failback" => {
                    let other = match directive {
                        "auto_failback" => "nice_failback",
                        _ => "auto_failback",
                    };
                    if cf.lines.contains_key(other) {
                        return Err("both auto_failback and nice_failback: use auto_failback \
                                    only (nice_failback is its old, inverted form)"
                            .into());
                    }
                    let value = one(directive)?;
                    // Heartbeat 1's `nice_failback on` is `auto_failback off`.
                    let value = match (directive, value) {
                        ("nice_failback", "on" | "yes" | "true" | "1") => "off",
                        ("nice_failback", "off" | "no" | "false" | "0") => "on",
                        ("nice_failback", v) => {
                            return Err(format!("nice_failback '{v}' must be on or off"));
                        }
                        (_, v) => v,
                    };
                    cf.auto_failback = match value {
                        "on" | "yes" | "true" | "1" => AutoFailback::On,
                        "off" | "no" | "false" | "0" => AutoFailback::Off,
                        "legacy" => AutoFailback::Legacy,
                        v => return Err(format!("auto_failback '{v}' must be on, off or legacy")),
                    }
                }
                "logfacility" => {
                    let v = one("logfacility")?;
                    cf.logfacility = (v != "none").then(|| v.to_string());
                }
                "logfile" => cf.logfile = Some(PathBuf::from(one("logfile")?)),
                "debugfile" => cf.debugfile = Some(PathBuf::from(one("debugfile")?)),
                "realtime" => {
                    cf.realtime = match one("realtime")? {
                        "on" | "yes" | "true" => true,
                        "off" | "no" | "false" => false,
                        v => return Err(format!("realtime '{v}': on or off")),
                    }
                }
                "rtprio" => {
                    let v = one("rtprio")?;
                    cf.rtprio = v
                        .parse()
                        .ok()
                        .filter(|p| (1..=99).contains(p))
                        .ok_or_else(|| format!("rtprio '{v}': a priority from 1 to 99"))?;
                }
                "fence_command" => {
                    if args.is_empty() {
                        return Err("fence_command needs a program".into());
                    }
                    cf.fence_command = args.iter().map(|a| a.to_string()).collect();
                }
                "fence_timeout" => {
                    cf.fence_timeout = time("fence_timeout")?;
                    if cf.fence_timeout.is_zero() {
                        return Err("fence_timeout must be more than 0".into());
                    }
                }
                "monitor_interval" => cf.monitor_interval = time("monitor_interval")?,
                "restart_limit" => match args.as_slice() {
                    [count, window] => {
                        let count = count
                            .parse()
                            .ok()
                            .filter(|c| *c <= MAX_RESTARTS)
                            .ok_or_else(|| {
                                format!(
                                    "restart_limit count '{count}' is not a number from 0 to {MAX_RESTARTS}"
                                )
                            })?;
                        let window = parse_time(window).ok_or_else(|| {
                            format!("restart_limit window '{window}' is not a time up to a day")
                        })?;
                        cf.restart_limit = (count, window);
                    }
                    _ => {
                        return Err("restart_limit COUNT WINDOW, e.g. 'restart_limit 3 600'".into());
                    }
                },
                "debug" => cf.notes.push(format!(
                    "line {line}: debug level is set by hb-monitor's own options"
                )),
                "crm" | "pacemaker" => match args.as_slice() {
                    ["off" | "no" | "false"] => cf.notes.push(format!(
                        "line {line}: '{content}' is hb-monitor's only mode"
                    )),
                    _ => {
                        return Err(format!(
                            "'{content}': hb-monitor runs haresources groups itself (Heartbeat's v1 \
                             mode); for a CRM cluster use Pacemaker with the ferroha agents"
                        ));
                    }
                },
                "stonith" | "stonith_host" => {
                    return Err(format!(
                        "'{directive}': Heartbeat's STONITH plugins are not run by hb-monitor; \
                         use 'fence_command PROGRAM' (run with the node's name appended, exit 0 \
                         when that node is off)"
                    ));
                }
                "watchdog" => cf.watchdog = Some(PathBuf::from(one("watchdog")?)),
                "metrics_listen" => cf.metrics_listen = Some(parse_listen(one("metrics_listen")?)?),
                "notify_command" => {
                    if args.is_empty() {
                        return Err("notify_command needs a program".into());
                    }
                    cf.notify_command = args.iter().map(|a| a.to_string()).collect();
                }
                "respawn" => match args.as_slice() {
                    [_, program, ..] if program.rsplit('/').next() == Some("ipfail") => {
                        cf.notes.push(format!(
                            "line {line}: '{content}' is not run: ipfail needs Heartbeat's client \
                             API, and hb-monitor's own ping nodes (ping, ping_group, deadping) \
                             do its work"
                        ))
                    }
                    [_, program, ..] if program.rsplit('/').next() == Some("dopd") => {
                        cf.notes.push(format!(
                            "line {line}: '{content}' is not run: dopd needs Heartbeat's client \
                             API, so DRBD's drbd-peer-outdater handler cannot reach it and a \
                             peer is not outdated through it; with fence_command set, the \
                             peer node is fenced before hb-monitor takes over, and ferroha's \
                             drbd agent promotes only UpToDate data and never over a Primary \
                             peer"
                        ))
                    }
                    [user, program, rest @ ..] => {
                        if !program.starts_with('/') {
                            return Err(format!(
                                "respawn {program}: the program must be an absolute path (Heartbeat \
                                 runs it without searching PATH)"
                            ));
                        }
                        cf.respawn.push(Respawn {
                            user: user.to_string(),
                            program: PathBuf::from(program),
                            args: rest.iter().map(|a| a.to_string()).collect(),
                            line,
                        });
                    }
                    _ => return Err("respawn needs a user and a program".into()),
                },
                "notify_timeout" => {
                    cf.notify_timeout = time("notify_timeout")?;
                    if cf.notify_timeout.is_zero() {
                        return Err("notify_timeout must be more than 0".into());
                    }
                }
                "autojoin" => match one("autojoin")? {
                    // Heartbeat's default: the cluster is the node lines, as hb-monitor has it.
                    "none" => {}
                    "other" | "any" => {
                        return Err(format!(
                            "'{content}': nodes joining without a node line are not supported; \
                             list every node with 'node' and use 'autojoin none'"
                        ));
                    }
                    _ => return Err("autojoin takes none, other or any".into()),
                },
                "failfast" => {
                    return Err(
                        "'failfast': Heartbeat reboots the node when such a program exits, which \
                         hb-monitor does not do; run it with 'respawn', and fence with \
                         'fence_command'"
                            .into(),
                    );
                }
                "hbaping" => {
                    return Err(
                        "'hbaping': Fibre Channel HBA ping nodes are not supported; use 'ping' \
                         with an address the node must reach"
                            .into(),
                    );
                }
                "env" => {
                    return Err(
                        "'env': setting the environment of the daemon and its resource scripts \
                         is not supported; set the variables in the scripts, or in the service \
                         unit (Environment=)"
                            .into(),
                    );
                }
                other => match IGNORED.iter().find(|(name, _)| *name == other) {
                    Some((_, why)) => cf.notes.push(format!(
                        "line {line}: '{content}' changes nothing for hb-monitor: {why}"
                    )),
                    None => return Err(format!("unknown directive '{other}'")),
                },
            }
            cf.lines.insert(directive.to_string(), line);
            let media = cf.media.len();
            cf.media_lines.resize(media, line);
            if matches!(
                directive,
                "keepalive" | "deadtime" | "warntime" | "initdead" | "deadping"
            ) {
                seen_times.insert(
                    match directive {
                        "keepalive" => "keepalive",
                        "deadtime" => "deadtime",
                        "warntime" => "warntime",
                        "deadping" => "deadping",
                        _ => "initdead",
                    },
                    line,
                );
            }
            Ok(())
        })();
        if let Err(message) = result {
            err(line, message);
        }
    }
    let at = |name: &str| seen_times.get(name).copied().unwrap_or(0);
    if cf.nodes.is_empty() {
        err(
            0,
            "no 'node' lines: list every cluster node (uname -n)".into(),
        );
    }
    if cf.media.is_empty() {
        err(
            0,
            "no heartbeat medium (bcast, mcast, mcast6, ucast, ucast6 or serial)".into(),
        );
    }
    if cf.keepalive < MIN_KEEPALIVE {
        err(
            at("keepalive"),
            format!(
                "keepalive ({} µs) must be at least {} ms: shorter ones only burn CPU and flood the log",
                cf.keepalive.as_micros(),
                MIN_KEEPALIVE.as_millis()
            ),
        );
    }
    // Heartbeat's own rule: it refuses deadtime <= 2 x keepalive.
    if cf.deadtime <= cf.keepalive * 2 {
        err(
            at("deadtime"),
            format!(
                "deadtime ({} ms) must be more than twice keepalive ({} ms)",
                cf.deadtime.as_millis(),
                cf.keepalive.as_millis()
            ),
        );
    }
    if cf.warntime.is_zero() {
        // Heartbeat's default: between keepalive and deadtime.
        cf.warntime = (cf.deadtime + cf.keepalive) / 2;
    } else if cf.warntime <= cf.keepalive || cf.warntime >= cf.deadtime {
        err(
            at("warntime"),
            "warntime must be between keepalive and deadtime".into(),
        );
    }
    if cf.deadping.is_zero() {
        cf.deadping = cf.deadtime;
    } else if cf.deadping <= cf.keepalive * 2 {
        // Pings go out every keepalive: a shorter deadping would count a ping node lost
        // between two of them, and move the groups back and forth.
        err(
            at("deadping"),
            format!(
                "deadping ({} ms) must be more than twice keepalive ({} ms): ping nodes are pinged every keepalive",
                cf.deadping.as_millis(),
                cf.keepalive.as_millis()
            ),
        );
    }
    if cf.initdead.is_zero() {
        cf.initdead = cf.deadtime;
    } else if cf.initdead < cf.deadtime {
        err(at("initdead"), "initdead must be at least deadtime".into());
    }
    if errors.is_empty() {
        Ok(cf)
    } else {
        Err(errors)
    }
}

/// The address of an IPv4 medium (`directive`): an IPv6 one is refused, as Heartbeat's IPv4
/// plugins refuse it, with the IPv6 line to write (`instead`).
fn ipv4_only(addr: IpAddr, directive: &str, instead: String) -> Result<IpAddr, String> {
    match addr {
        IpAddr::V4(_) => Ok(addr),
        IpAddr::V6(_) => Err(format!(
            "{directive} {addr}: {directive} is IPv4 only, as in Heartbeat; for IPv6 write '{instead}'"
        )),
    }
}

/// An IPv4 ping node's address (`what`: where it was written); an IPv6 one is refused with
/// `instead`.
fn ipv4_ping(addr: IpAddr, what: &str, instead: &str) -> Result<IpAddr, String> {
    match addr {
        IpAddr::V4(_) => Ok(addr),
        IpAddr::V6(_) => Err(format!("{what} {addr} is an IPv6 address: {instead}")),
    }
}

/// `text` as an IPv6 address, or why not (`what`: the value's name in messages); an IPv4
/// address names the IPv4 directive (`v4`).
fn ipv6_of(text: &str, what: &str, v4: &str) -> Result<Ipv6Addr, String> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => Ok(a),
        Ok(IpAddr::V4(_)) => Err(format!(
            "{what} '{text}' is an IPv4 address: write '{v4} ...' for IPv4"
        )),
        Err(_) => Err(format!("{what} '{text}' is not an IPv6 address")),
    }
}

/// An address that cannot name another host: unspecified, loopback, multicast, or IPv4
/// written as IPv6 (which the kernel would send as IPv4, not on an IPv6 medium).
fn not_a_peer(addr: Ipv6Addr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("the unspecified address")
    } else if addr.is_loopback() {
        Some("the loopback address")
    } else if addr.is_multicast() {
        Some("a multicast address (use mcast6)")
    } else if addr.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped address (use ucast with the IPv4 address)")
    } else {
        None
    }
}

/// Whether `addr` is link-local (fe80::/10), where an address means nothing without its
/// interface.
fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// `ucast6 IFACE PEER`'s peer, as Heartbeat's ucast6 checks it: an IPv6 address that can
/// be a host's, with `%scope` allowed on a link-local one; the scope is always the medium's
/// interface, so a `%` naming another one is refused (Heartbeat refuses a mismatched index;
/// a numeric scope is refused here too, as the name says the same thing).
fn ucast6_peer(iface: &str, text: &str) -> Result<Ipv6Addr, String> {
    let (addr, scope) = match text.split_once('%') {
        Some((a, s)) => (a, Some(s)),
        None => (text, None),
    };
    let peer = ipv6_of(addr, "ucast6 peer", "ucast")?;
    if let Some(why) = not_a_peer(peer) {
        return Err(format!("ucast6 peer '{text}' is {why}"));
    }
    match scope {
        Some(_) if !is_link_local(peer) => Err(format!(
            "ucast6 peer '{text}': a %scope belongs only to a link-local (fe80::/10) address"
        )),
        Some(scope) if scope != iface => Err(format!(
            "ucast6 peer '{text}': its scope must be the medium's interface ({addr}%{iface}), or \
             leave it out"
        )),
        _ => Ok(peer),
    }
}

/// `mcast6`'s group, as Heartbeat's mcast6 checks it: multicast (ff00::/8) with no reserved
/// flag, a nonzero group ID, and a scope a heartbeat can use: link-local (2), admin-local
/// (4), site-local (5) or organisation-local (8). Interface-local stays on this machine, and
/// Heartbeat keeps heartbeats out of the global scope.
fn mcast6_group(text: &str) -> Result<Ipv6Addr, String> {
    let group = ipv6_of(text, "mcast6 group", "mcast")?;
    let octets = group.octets();
    if octets[0] != 0xff {
        return Err(format!(
            "mcast6 group '{text}' is not a multicast address (ff00::/8)"
        ));
    }
    if octets[1] & 0xe0 != 0 {
        return Err(format!(
            "mcast6 group '{text}' sets a reserved flag (only the transient flag, ff1x::, may be set)"
        ));
    }
    let scope = octets[1] & 0x0f;
    match scope {
        0x2 | 0x4 | 0x5 | 0x8 => {}
        0x1 => {
            return Err(format!(
                "mcast6 group '{text}' is interface-local (ff01::/16): heartbeats would not leave this machine"
            ));
        }
        0xe => {
            return Err(format!(
                "mcast6 group '{text}' is global (ffxe::/16): Heartbeat keeps heartbeats out of the global scope"
            ));
        }
        _ => {
            return Err(format!(
                "mcast6 group '{text}': scope {scope:x} is reserved or unassigned; use link-local \
                 (ff02::), admin-local (ff04::), site-local (ff05::) or organisation-local (ff08::)"
            ));
        }
    }
    if octets[2..].iter().all(|b| *b == 0) {
        return Err(format!(
            "mcast6 group '{text}' is reserved (its group ID is 0)"
        ));
    }
    Ok(group)
}

/// A `ping6` node. Heartbeat's ping6 takes any IPv6 address; the ones that can never answer
/// an echo of ours are refused here: the unspecified address, a multicast group (replies
/// come from its members), and a link-local address, which needs an interface that ping6
/// has no place for.
fn ping6_node(text: &str) -> Result<Ipv6Addr, String> {
    if text.contains('%') {
        return Err(format!(
            "ping6 node '{text}': ping6 takes no %scope; use the ping node's global or unique \
             local address"
        ));
    }
    let node = ipv6_of(text, "ping6 node", "ping")?;
    let why = if node.is_unspecified() {
        "is the unspecified address"
    } else if node.is_multicast() {
        "is a multicast address: the replies would come from its members"
    } else if is_link_local(node) {
        "is link-local, which needs an interface ping6 does not name: use the ping node's \
         global or unique local address"
    } else if node.to_ipv4_mapped().is_some() {
        "is an IPv4-mapped address: use ping with the IPv4 address"
    } else {
        return Ok(node);
    };
    Err(format!("ping6 node '{text}' {why}"))
}

/// Splits `ip/cidr/nic/broadcast` (Heartbeat's IPaddr/IPaddr2 argument) into vip parameters.
fn ipaddr_params(spec: &str) -> Result<Vec<(String, String)>, String> {
    let parts: Vec<&str> = spec.split('/').collect();
    let names = ["ip", "cidr_netmask", "nic", "broadcast"];
    if parts.len() > names.len() || parts[0].is_empty() {
        return Err(format!(
            "'{spec}' is not ip[/cidr_netmask[/nic[/broadcast]]]"
        ));
    }
    if parts[0].parse::<IpAddr>().is_err() {
        return Err(format!("'{}' is not an IP address", parts[0]));
    }
    Ok(names
        .iter()
        .zip(&parts)
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect())
}

/// `name=value` arguments.
fn named_params(args: &[&str]) -> Result<Vec<(String, String)>, String> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .filter(|(n, _)| !n.is_empty())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .ok_or_else(|| format!("'{a}' is not name=value"))
        })
        .collect()
}

/// What one `haresources` resource runs, before any script is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedResource {
    /// Its class (for a name written without one: [`ResourceClass::Heartbeat`], with
    /// `searched`).
    pub class: ResourceClass,
    /// The OCF provider (`heartbeat` or `lsb` for a script).
    pub provider: String,
    /// The OCF type or the script's name.
    pub agent: String,
    /// OCF parameters, or a script's arguments named 1, 2, ...
    pub params: Vec<(String, String)>,
    /// Written without a class: `resource.d`, then the init directory.
    pub searched: bool,
}

/// A script's name: one path component, nothing a shell or a path would read differently.
fn script_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '@'))
}

/// Maps one `haresources` resource to what runs it.
///
/// | written | runs | arguments |
/// |---|---|---|
/// | `198.18.0.10` (a bare address), `IPaddr::…`, `IPaddr2::…` | ferroha `vip` | `ip/cidr_netmask/nic/broadcast` |
/// | `Filesystem::…` | ferroha `fs` | `device::directory::fstype::options` |
/// | `drbddisk::…` | ferroha `drbd` | `drbd_resource` |
/// | `drbddisk` (no resource: all of them) | the script `resource.d/drbddisk` | none |
/// | `vip`, `fs`, `mysql`, `drbd` | ferroha's agent | `name=value` each |
/// | `ocf:provider:type::…`, `provider:type::…` | any installed OCF agent | `name=value` each |
/// | `heartbeat:NAME::…` | the script `resource.d/NAME` | positional |
/// | `lsb:NAME::…` | the init script `NAME` | positional |
/// | `NAME::…` (anything else) | `resource.d/NAME`, else the init script | positional |
pub fn map_resource(written: &str) -> Result<MappedResource, String> {
    let parts: Vec<&str> = written.split("::").collect();
    let (name, args) = (parts[0], &parts[1..]);
    let ocf = |provider: &str, agent: &str, params| {
        Ok(MappedResource {
            class: ResourceClass::Ocf,
            provider: provider.to_string(),
            agent: agent.to_string(),
            params,
            searched: false,
        })
    };
    let ferroha = |agent: &str, params| ocf("ferroha", agent, params);
    let script = |class: ResourceClass, script: &str, searched: bool| {
        if !script_name(script) {
            return Err(format!("'{written}': '{script}' is not a script's name"));
        }
        if let Some(empty) = args.iter().position(|a| a.is_empty()) {
            return Err(format!(
                "'{written}': argument {} is empty (Heartbeat would drop it and shift the others)",
                empty + 1
            ));
        }
        Ok(MappedResource {
            class,
            provider: match class {
                ResourceClass::Lsb => "lsb",
                _ => "heartbeat",
            }
            .to_string(),
            agent: script.to_string(),
            params: args
                .iter()
                .enumerate()
                .map(|(i, a)| ((i + 1).to_string(), a.to_string()))
                .collect(),
            searched,
        })
    };
    if name.parse::<IpAddr>().is_ok()
        || (name.contains('/')
            && name
                .split('/')
                .next()
                .is_some_and(|a| a.parse::<Ipv4Addr>().is_ok()))
    {
        if !args.is_empty() {
            return Err(format!("'{written}': a bare address takes no arguments"));
        }
        return ferroha("vip", ipaddr_params(name)?);
    }
    match name {
        "IPaddr" | "IPaddr2" => match args {
            [spec] => ferroha("vip", ipaddr_params(spec)?),
            _ => Err(format!(
                "'{written}': {name} takes one argument, ip/cidr/nic/broadcast"
            )),
        },
        "Filesystem" => {
            if args.len() < 2 || args.len() > 4 {
                return Err(format!(
                    "'{written}': Filesystem takes device::directory[::fstype[::options]]"
                ));
            }
            let names = ["device", "directory", "fstype", "options"];
            ferroha(
                "fs",
                names
                    .iter()
                    .zip(args.iter())
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
        }
        "drbddisk" => match args {
            // drbd-utils' drbddisk acts on every DRBD resource when it is given none
            // (`drbdadm primary all`): the script itself does that, as under Heartbeat.
            [] => script(ResourceClass::Heartbeat, "drbddisk", false),
            [res] => ferroha("drbd", vec![("drbd_resource".into(), res.to_string())]),
            _ => Err(format!("'{written}': drbddisk takes one resource name")),
        },
        "vip" | "fs" | "mysql" | "drbd" => ferroha(name, named_params(args)?),
        other => {
            // Pacemaker's class names: `heartbeat:NAME` and `lsb:NAME` are scripts,
            // `ocf:provider:type` (or `provider:type`) an OCF agent.
            if matches!(other, "ocf" | "heartbeat" | "lsb") {
                return Err(format!(
                    "'{written}': {other} is a class, not a resource: write {other}:NAME"
                ));
            }
            if let Some(rest) = other.strip_prefix("heartbeat:")
                && !rest.contains(':')
            {
                return script(ResourceClass::Heartbeat, rest, false);
            }
            if let Some(rest) = other.strip_prefix("lsb:") {
                return script(ResourceClass::Lsb, rest, false);
            }
            match other.strip_prefix("ocf:").unwrap_or(other).split_once(':') {
                Some((provider, agent)) if !provider.is_empty() && !agent.is_empty() => {
                    let valid = |s: &str| {
                        s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    };
                    if !valid(provider) || !valid(agent) {
                        return Err(format!("'{other}' is not provider:type"));
                    }
                    ocf(provider, agent, named_params(args)?)
                }
                _ if !other.contains(':') && script_name(other) => {
                    script(ResourceClass::Heartbeat, other, true)
                }
                _ => Err(format!(
                    "unknown resource '{other}': use vip, fs, mysql, drbd, a Heartbeat name \
                     (IPaddr, IPaddr2, Filesystem, drbddisk), a script's name (heartbeat:NAME, \
                     lsb:NAME) or ocf:provider:type for another OCF agent"
                )),
            }
        }
    }
}

/// Where [`resolve_scripts`] looks for scripts and what it tells them.
#[derive(Debug, Clone)]
pub struct ScriptDirs {
    /// Heartbeat's `HA_RESOURCEDIR`: `resource.d` of the configuration directory.
    pub resource_d: PathBuf,
    /// Where LSB init scripts are (`/etc/init.d`, `--init-dir`).
    pub init_d: PathBuf,
}

impl ScriptDirs {
    /// `resource.d` in `config_dir` (Heartbeat's `HA_DIR`), init scripts in `init_d`.
    pub fn new(config_dir: &Path, init_d: &Path) -> ScriptDirs {
        ScriptDirs {
            resource_d: config_dir.join("resource.d"),
            init_d: init_d.to_path_buf(),
        }
    }
}

/// Whether `path` is what Heartbeat runs: a regular file (or a link to one) with an execute
/// bit (`[ -f $f -a -x $f ]`).
fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The environment Heartbeat 3 (Debian's 3.0.6, as measured) gives the scripts it runs,
/// less what only Heartbeat has (its control FIFO, the fields of the message that triggered
/// the run) and with the directory paths of this configuration: its `PATH` and `LC_ALL=C`;
/// `HA_DIR` (the configuration directory), `HA_FUNCS`, `HA_RESOURCEDIR`, `HA_RCDIR`,
/// `HA_BIN`; `HA_CURHOST`, `HA_DATEFMT`, `HA_LOGD=no`, `HA_NICEFAILBACK` (with
/// `auto_failback on` or `off`); the log directives both as Heartbeat exports every
/// directive (`HA_logfile`, `HA_debugfile`, `HA_logfacility`) and as its shellfuncs derive
/// them (`HA_LOGFILE`, `HA_DEBUGLOG`, `HA_LOGFACILITY`); `HA_debug=0`. The run adds
/// `OCF_ROOT` and `OCF_AGENTS` ([`crate::hb::script`]). Nothing of hb-monitor's environment.
fn script_env(cfg: &Config, dirs: &ScriptDirs, node: &str) -> Vec<(String, String)> {
    let dir = cfg.dir.display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), SCRIPT_PATH.into()),
        ("LC_ALL".into(), "C".into()),
        ("HA_DIR".into(), dir.clone()),
        ("HA_FUNCS".into(), format!("{dir}/shellfuncs")),
        (
            "HA_RESOURCEDIR".into(),
            dirs.resource_d.display().to_string(),
        ),
        ("HA_RCDIR".into(), format!("{dir}/rc.d")),
        ("HA_BIN".into(), "/usr/libexec/heartbeat".into()),
        ("HA_CURHOST".into(), node.to_string()),
        ("HA_DATEFMT".into(), "%Y/%m/%d_%T\t".into()),
        ("HA_LOGD".into(), "no".into()),
        // hb-monitor has no debug levels: Heartbeat's default.
        ("HA_debug".into(), "0".into()),
    ];
    let ha = &cfg.ha_cf;
    if ha.auto_failback != AutoFailback::Legacy {
        env.push(("HA_NICEFAILBACK".into(), "yes".into()));
    }
    // `logfacility none` is no facility for hb-monitor; Heartbeat still exports the word.
    let facility = ha
        .logfacility
        .clone()
        .or_else(|| (ha.line_of("logfacility") != 0).then(|| "none".to_string()));
    for (directive, derived, value) in [
        ("logfacility", "HA_LOGFACILITY", facility),
        (
            "logfile",
            "HA_LOGFILE",
            ha.logfile.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "debugfile",
            "HA_DEBUGLOG",
            ha.debugfile.as_ref().map(|p| p.display().to_string()),
        ),
    ] {
        if let Some(value) = value {
            env.push((format!("HA_{directive}"), value.clone()));
            env.push((derived.into(), value));
        }
    }
    env
}

/// Heartbeat's `PATH` for its scripts (its helpers first), without the duplicates.
const SCRIPT_PATH: &str =
    "/usr/libexec/heartbeat:/usr/sbin:/usr/share/heartbeat:/usr/bin:/sbin:/bin";

/// Finds every script of `cfg`'s groups as Heartbeat does (`resource.d` first, then the
/// init directory, for a name written without a class; only the class's directory for
/// `heartbeat:` and `lsb:`), and fixes its class, path and environment (node `node`). A
/// script found nowhere is an error naming the paths searched.
pub fn resolve_scripts(cfg: &mut Config, dirs: &ScriptDirs, node: &str) -> Vec<ConfigError> {
    let env = script_env(cfg, dirs, node);
    let haresources = cfg.dir.join("haresources");
    let mut errors = vec![];
    for res in cfg.groups.iter_mut().flat_map(|g| g.resources.iter_mut()) {
        let candidates: Vec<(ResourceClass, &Path)> = match (res.class, res.searched) {
            (ResourceClass::Ocf, _) => continue,
            (ResourceClass::Heartbeat, true) => vec![
                (ResourceClass::Heartbeat, dirs.resource_d.as_path()),
                (ResourceClass::Lsb, dirs.init_d.as_path()),
            ],
            (ResourceClass::Heartbeat, false) => {
                vec![(ResourceClass::Heartbeat, dirs.resource_d.as_path())]
            }
            (ResourceClass::Lsb, _) => vec![(ResourceClass::Lsb, dirs.init_d.as_path())],
        };
        let found = candidates
            .iter()
            .map(|(class, dir)| (*class, dir.join(&res.agent)))
            .find(|(_, path)| executable(path));
        match found {
            Some((class, path)) => {
                res.class = class;
                res.provider = match class {
                    ResourceClass::Lsb => "lsb",
                    _ => "heartbeat",
                }
                .into();
                res.script = Some(Script {
                    path,
                    env: env.clone(),
                });
            }
            None => {
                let searched: Vec<String> = candidates
                    .iter()
                    .map(|(_, dir)| {
                        let path = dir.join(&res.agent);
                        if path.exists() {
                            format!("{} (not an executable file)", path.display())
                        } else {
                            path.display().to_string()
                        }
                    })
                    .collect();
                let what = if res.searched {
                    format!(
                        "unknown resource '{}': not one of hb-monitor's names and no script",
                        res.agent
                    )
                } else {
                    format!("no script '{}'", res.agent)
                };
                errors.push(ConfigError {
                    file: haresources.clone(),
                    line: res.line,
                    message: format!(
                        "'{}': {what}: looked for {}",
                        res.written,
                        searched.join(", then ")
                    ),
                });
            }
        }
    }
    errors
}

fn parse_haresources(path: &Path, text: &str) -> Result<Vec<ResourceGroup>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    // Join continuation lines (a trailing backslash), remembering where each logical line began.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let content = raw.split('#').next().unwrap_or("");
        let (piece, continued) = match content.trim_end().strip_suffix('\\') {
            Some(p) => (p.to_string(), true),
            None => (content.to_string(), false),
        };
        let entry = pending.get_or_insert((index + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(&piece);
        if !continued {
            logical.extend(pending.take());
        }
    }
    logical.extend(pending.take());
    for (line, content) in logical {
        let words: Vec<&str> = content.split_whitespace().collect();
        let Some((preferred, resources)) = words.split_first() else {
            continue;
        };
        if resources.is_empty() {
            errors.push(ConfigError {
                file: path.to_path_buf(),
                line,
                message: format!("node '{preferred}' has no resources"),
            });
            continue;
        }
        let mut group = ResourceGroup {
            preferred: preferred.to_string(),
            resources: vec![],
            line,
        };
        for written in resources {
            match map_resource(written) {
                Ok(mapped) => group.resources.push(ResourceEntry {
                    class: mapped.class,
                    provider: mapped.provider,
                    agent: mapped.agent,
                    params: mapped.params,
                    searched: mapped.searched,
                    script: None,
                    written: written.to_string(),
                    line,
                }),
                Err(message) => errors.push(ConfigError {
                    file: path.to_path_buf(),
                    line,
                    message,
                }),
            }
        }
        groups.push(group);
    }
    if groups.is_empty() && errors.is_empty() {
        errors.push(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            message: "no resource group".into(),
        });
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// Heartbeat refuses an `authkeys` that group or others can read: so does hb-monitor. And,
/// as ssh does with its keys, one owned by anyone but root (or the user running hb-monitor,
/// for tests run unprivileged): whoever owns it may change the key or its mode.
fn check_authkeys_mode(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt as _;
    let me = nix::unistd::geteuid().as_raw();
    match std::fs::metadata(path) {
        Ok(meta) if meta.uid() != 0 && meta.uid() != me => Err(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            message: format!(
                "owned by uid {}: whoever owns it can change the key; chown root",
                meta.uid()
            ),
        }),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Err(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            message: format!(
                "mode {:o} lets others read the key: chmod 600",
                meta.permissions().mode() & 0o777
            ),
        }),
        _ => Ok(()),
    }
}

/// The keys of `authkeys`, and notes on what is read but not used. A `crc` key is a
/// checksum anyone can compute: as the active key it is refused; listed beside another
/// (Heartbeat's shipped example file does that) it is left out, so that a message "signed"
/// with it is dropped as signed with an unknown key.
fn parse_authkeys(path: &Path, text: &str) -> Result<(AuthKeys, Vec<String>), ConfigError> {
    let err = |line: usize, message: String| ConfigError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let mut active = None;
    let mut keys = BTreeMap::new();
    let mut crc = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let words: Vec<&str> = content.split_whitespace().collect();
        match words.as_slice() {
            ["auth", n] => {
                active = Some((
                    n.parse::<u8>()
                        .map_err(|_| err(line, format!("auth '{n}' is not a key number")))?,
                    line,
                ))
            }
            [n, method, secret @ ..] => {
                let number = n
                    .parse::<u8>()
                    .map_err(|_| err(line, format!("'{n}' is not a key number")))?;
                let method = match *method {
                    "sha256" => AuthMethod::Sha256,
                    "sha1" => AuthMethod::Sha1,
                    "md5" => AuthMethod::Md5,
                    "crc" => {
                        if keys.contains_key(&number) || crc.insert(number, line).is_some() {
                            return Err(err(line, format!("key {number} is defined twice")));
                        }
                        continue;
                    }
                    other => return Err(err(line, format!("unknown method '{other}'"))),
                };
                let secret = secret.join(" ");
                if secret.is_empty() {
                    return Err(err(line, format!("key {number} has no secret")));
                }
                if crc.contains_key(&number)
                    || keys.insert(number, (method, secret.into_bytes())).is_some()
                {
                    return Err(err(line, format!("key {number} is defined twice")));
                }
            }
            _ => return Err(err(line, format!("cannot read '{content}'"))),
        }
    }
    let (active, line) = active.ok_or_else(|| err(0, "no 'auth N' line".into()))?;
    if crc.contains_key(&active) {
        return Err(err(
            line,
            format!(
                "auth {active}: key {active} is crc, which authenticates nothing (anyone can \
                 forge it); use sha256 or sha1"
            ),
        ));
    }
    if !keys.contains_key(&active) {
        return Err(err(line, format!("auth {active} names no key")));
    }
    let notes = crc
        .iter()
        .map(|(number, line)| {
            format!(
                "{}:{line}: crc key {number} is not used: crc authenticates nothing, so a \
                 message signed with it is dropped as signed with an unknown key",
                path.display()
            )
        })
        .collect();
    Ok((AuthKeys { active, keys }, notes))
}

#[cfg(test)]
mod tests;
