//! The man pages, rendered from the sources `--help` and `meta-data` come from: hb-monitor(8)
//! from its clap command (clap_mangen for the header, synopsis and options; the subcommands,
//! `ha.cf` directives, files, exit codes and signals below), and `ocf_ferroha_<type>(7)` from
//! `ocf-meta/<type>.xml`, in the layout of resource-agents' `ocf_heartbeat_IPaddr2(7)`.
//!
//! Used by `examples/gen-docs/main.rs` (`make man`), by `tests/man_pages.rs`, which checks
//! the pages against `hb-monitor --help` and each agent's `meta-data`, and by `tests/deb.rs`,
//! which packages them.

use std::io;
use std::path::{Path, PathBuf};

use clap_mangen::roff::{Roff, bold, italic, roman};

/// Writes every page and the bash completion into `out` (created if missing), as `make man`
/// does: `hb-monitor.8`, `ocf_ferroha_<type>.7` for each `ocf-meta/<type>.xml`, and
/// `hb-monitor.bash`. Returns the paths written.
pub fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: &[u8]| -> io::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        written.push(path);
        Ok(())
    };
    write(
        "hb-monitor.8",
        hb_monitor_page(ferroha::hb::cli::command()).as_bytes(),
    )?;
    let meta = Path::new(env!("CARGO_MANIFEST_DIR")).join("ocf-meta");
    let mut agents: Vec<PathBuf> = std::fs::read_dir(&meta)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    agents.retain(|p| p.extension().is_some_and(|e| e == "xml"));
    agents.sort();
    for xml in agents {
        let agent = xml.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&xml)?;
        write(
            &format!("ocf_ferroha_{agent}.7"),
            agent_page(&agent, &text, env!("CARGO_PKG_VERSION")).as_bytes(),
        )?;
    }
    let mut bash = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut ferroha::hb::cli::command(),
        "hb-monitor",
        &mut bash,
    );
    write("hb-monitor.bash", &bash)?;
    Ok(written)
}

/// How `ha.cf` treats a directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Read and acted on.
    Honoured,
    /// Accepted with a note: it changes nothing for hb-monitor.
    Ignored,
    /// An error: hb-monitor will not run differently from what the file says.
    Refused,
}

/// One `ha.cf` directive: syntax, treatment, meaning. `tests/man_pages.rs` checks each
/// against the parser (src/hb/config.rs) and that the parser knows no directive missing here.
pub struct Directive {
    /// The directive's name.
    pub name: &'static str,
    /// Its arguments, as written after the name.
    pub args: &'static str,
    /// Honoured, ignored or refused.
    pub kind: Kind,
    /// What it does (and its default), or why it is ignored or refused.
    pub text: &'static str,
}

const fn d(name: &'static str, args: &'static str, kind: Kind, text: &'static str) -> Directive {
    Directive {
        name,
        args,
        kind,
        text,
    }
}

/// Every directive of `ha.cf` hb-monitor knows, in the order of the page.
pub const DIRECTIVES: &[Directive] = &[
    d(
        "node",
        "NAME...",
        Kind::Honoured,
        "A cluster node, by its uname -n; this node must be one of them.",
    ),
    d(
        "keepalive",
        "TIME",
        Kind::Honoured,
        "Interval between heartbeats (default 2). TIME is seconds (0.5) or milliseconds (100ms).",
    ),
    d(
        "deadtime",
        "TIME",
        Kind::Honoured,
        "A peer is dead after this long without a heartbeat on any medium (default 30); must be more than twice keepalive.",
    ),
    d(
        "warntime",
        "TIME",
        Kind::Honoured,
        "A late heartbeat is logged after this long (default halfway between keepalive and deadtime).",
    ),
    d(
        "initdead",
        "TIME",
        Kind::Honoured,
        "deadtime at start-up, until a peer's first heartbeat (default deadtime; not below it).",
    ),
    d(
        "deadping",
        "TIME",
        Kind::Honoured,
        "A ping node is unreachable after this long without a reply (default deadtime); must be more than twice keepalive.",
    ),
    d(
        "udpport",
        "PORT",
        Kind::Honoured,
        "UDP port of bcast, ucast and ucast6 media (default 694).",
    ),
    d(
        "bcast",
        "IFACE...",
        Kind::Honoured,
        "Broadcast heartbeats on each interface.",
    ),
    d(
        "ucast",
        "IFACE ADDRESS",
        Kind::Honoured,
        "Unicast heartbeats to one IPv4 peer address from IFACE (for IPv6, ucast6).",
    ),
    d(
        "ucast6",
        "IFACE ADDRESS",
        Kind::Honoured,
        "Unicast heartbeats over IPv6 to one peer address from IFACE (a link-local one may end in %IFACE).",
    ),
    d(
        "mcast",
        "IFACE GROUP PORT TTL LOOP",
        Kind::Honoured,
        "Multicast heartbeats to GROUP:PORT (TTL 1-255, LOOP 0 or 1).",
    ),
    d(
        "mcast6",
        "IFACE GROUP PORT HOPS LOOP",
        Kind::Honoured,
        "Multicast heartbeats over IPv6 to GROUP:PORT (hop limit 1-4, LOOP 0 or 1).",
    ),
    d(
        "serial",
        "DEVICE...",
        Kind::Honoured,
        "Heartbeats over a raw serial line (see baud).",
    ),
    d(
        "baud",
        "RATE",
        Kind::Honoured,
        "Speed of serial media (default 19200).",
    ),
    d(
        "ping",
        "ADDRESS...",
        Kind::Honoured,
        "Ping nodes: a node that reaches fewer of them gives its groups to a node that reaches more.",
    ),
    d(
        "ping6",
        "ADDRESS...",
        Kind::Honoured,
        "IPv6 ping nodes (ICMPv6 echo), counted as ping nodes are.",
    ),
    d(
        "ping_group",
        "NAME ADDRESS...",
        Kind::Honoured,
        "A ping node that counts as reached when any of its addresses answers.",
    ),
    d(
        "auto_failback",
        "on|off|legacy",
        Kind::Honoured,
        "Whether a group goes back to its preferred node when that returns (default legacy, as on).",
    ),
    d(
        "nice_failback",
        "on|off",
        Kind::Honoured,
        "Heartbeat 1's inverted auto_failback: on is auto_failback off; not with auto_failback.",
    ),
    d(
        "logfacility",
        "FACILITY|none",
        Kind::Honoured,
        "Also log to syslog with this facility.",
    ),
    d("logfile", "FILE", Kind::Honoured, "Also log to FILE."),
    d(
        "debugfile",
        "FILE",
        Kind::Honoured,
        "Accepted for Heartbeat's files; not written to.",
    ),
    d(
        "realtime",
        "on|off",
        Kind::Honoured,
        "Run SCHED_RR at rtprio with memory locked (default on).",
    ),
    d(
        "rtprio",
        "N",
        Kind::Honoured,
        "Real-time priority, 1-99 (default 10).",
    ),
    d(
        "watchdog",
        "DEVICE",
        Kind::Honoured,
        "Feed this watchdog every keepalive; disarmed on an orderly exit. Must exist.",
    ),
    d(
        "fence_command",
        "PROGRAM [ARG...]",
        Kind::Honoured,
        "hb-monitor's own: run with a node's name appended (also in HB_FENCE_NODE) before taking a group over from a node that did not hand it over cleanly; exit 0 means that node is off.",
    ),
    d(
        "fence_timeout",
        "TIME",
        Kind::Honoured,
        "hb-monitor's own: how long fence_command may take (default 60).",
    ),
    d(
        "notify_command",
        "PROGRAM [ARG...]",
        Kind::Honoured,
        "hb-monitor's own: run on each transition an operator wants to hear of (peer-dead, peer-up, medium-down, medium-up, group-acquired, group-released, group-failed, fence-started, fence-succeeded, fence-failed, local-restart) with the event and its subjects appended and in HB_* variables; off the heartbeat loop, one at a time, killed at notify_timeout.",
    ),
    d(
        "respawn",
        "USER PROGRAM [ARG...]",
        Kind::Honoured,
        "Heartbeat's: run PROGRAM (an absolute path) as USER while the daemon runs, started again when it exits unless with code 100, given up after 10 exits in a row within 10 s of their start, stopped with the daemon. ipfail is not run (a note says so): the ping nodes do its work.",
    ),
    d(
        "notify_timeout",
        "TIME",
        Kind::Honoured,
        "hb-monitor's own: how long one run of notify_command may take (default 10).",
    ),
    d(
        "metrics_listen",
        "[ADDR:]PORT",
        Kind::Honoured,
        "hb-monitor's own: serve the metrics (as hb-monitor metrics prints them, Prometheus text) on GET /metrics over HTTP at ADDR:PORT; a bare PORT listens on 127.0.0.1.",
    ),
    d(
        "monitor_interval",
        "TIME",
        Kind::Honoured,
        "hb-monitor's own: interval of each running resource's monitor (default 10; 0 is off).",
    ),
    d(
        "restart_limit",
        "COUNT WINDOW",
        Kind::Honoured,
        "hb-monitor's own: local restarts of a failing resource within WINDOW before its group fails over (default 3 600).",
    ),
    d(
        "crm",
        "off",
        Kind::Ignored,
        "hb-monitor's only mode (Heartbeat's v1, haresources); crm on is refused: use Pacemaker with the ferroha agents.",
    ),
    d("pacemaker", "off", Kind::Ignored, "As crm."),
    d(
        "debug",
        "LEVEL",
        Kind::Ignored,
        "The log level is set by hb-monitor's own options.",
    ),
    d(
        "use_logd",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "msgfmt",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "apiauth",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "coredumps",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "compression",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "compression_threshold",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "traditional_compression",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "uuidfrom",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "hopfudge",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "conn_logd_time",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "max_rexmit_delay",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "logfile_max_size",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "cluster",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "hbgenmethod",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "use_apphbd",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "log_badpack",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "syslogmsgfmt",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "coreroot",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "memreserve",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "record_config_changes",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "record_pengine_inputs",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "enable_config_writes",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "quorum_server",
        "...",
        Kind::Ignored,
        "Changes nothing for hb-monitor.",
    ),
    d(
        "stonith",
        "...",
        Kind::Refused,
        "Heartbeat's STONITH plugins are not run; use fence_command.",
    ),
    d("stonith_host", "...", Kind::Refused, "As stonith."),
    d(
        "autojoin",
        "none",
        Kind::Honoured,
        "none (Heartbeat's default) is hb-monitor's only way: the cluster is the node lines; other and any are refused.",
    ),
    d(
        "failfast",
        "...",
        Kind::Refused,
        "Heartbeat reboots the node when such a program exits; use respawn, and fence_command.",
    ),
    d(
        "hbaping",
        "...",
        Kind::Refused,
        "Fibre Channel HBA ping nodes are not supported; use ping.",
    ),
    d(
        "env",
        "...",
        Kind::Refused,
        "Setting the environment of the daemon and its scripts is not supported.",
    ),
];

/// hb-monitor(8), roff source.
pub fn hb_monitor_page(cmd: clap::Command) -> String {
    let cmd = cmd.bin_name("hb-monitor");
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("ferroha {}", cmd.get_version().unwrap_or_default()));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    out.extend_from_slice(b".nh\n");
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    let mut r = Roff::new();
    r.control("PP", []);
    r.text([roman(
        "hb-monitor is ferroha's heartbeat daemon: a replacement for Heartbeat 3 in its v1 \
         mode (haresources, no CRM). It reads /etc/ha.d unchanged, exchanges heartbeats in \
         Heartbeat's wire format, declares a silent peer dead after deadtime, fences it \
         (fence_command) and runs each resource group's OCF agents, so that a Heartbeat \
         cluster can move to it one node at a time. Under systemd it runs as \
         hb-monitor.service (hb-monitor run).",
    )]);
    out.extend_from_slice(r.to_roff().as_bytes());
    man.render_options_section(&mut out).unwrap();
    let mut page = String::from_utf8(out).unwrap();

    let mut r = Roff::new();
    r.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut synopsis = vec![bold(format!("hb-monitor {}", sub.get_name()))];
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            synopsis.push(roman(" "));
            if arg.is_positional() {
                synopsis.push(roman("["));
                synopsis.push(italic(value_name(arg)));
                synopsis.push(roman("]"));
            } else {
                synopsis.push(roman("["));
                synopsis.push(bold(flag(arg)));
                if arg.get_action().takes_values() {
                    synopsis.push(roman(" "));
                    synopsis.push(italic(value_name(arg)));
                }
                synopsis.push(roman("]"));
            }
        }
        r.control("SS", [sub.get_name()]);
        r.text(synopsis);
        r.control("PP", []);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            r.text([roman(about.to_string())]);
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            r.control("TP", []);
            let mut head = vec![];
            if arg.is_positional() {
                head.push(italic(value_name(arg)));
            } else {
                if let Some(short) = arg.get_short() {
                    head.push(bold(format!("-{short}")));
                    head.push(roman(", "));
                }
                head.push(bold(flag(arg)));
                if arg.get_action().takes_values() {
                    head.push(roman(" "));
                    head.push(italic(value_name(arg)));
                }
            }
            r.text(head);
            let mut body = vec![];
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                body.push(roman(help.to_string()));
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() {
                body.push(roman(format!(" [default: {}]", defaults.join(", "))));
            }
            if let Some(env) = arg.get_env() {
                body.push(roman(format!(" [env: {}]", env.to_string_lossy())));
            }
            r.text(body);
        }
    }

    r.control("SH", ["CONFIGURATION"]);
    r.text([roman(
        "hb-monitor reads Heartbeat 3's configuration unchanged from the configuration \
         directory (/etc/ha.d by default): ha.cf (nodes, timings, media, ping nodes), \
         haresources (one resource group per line) and authkeys (the HMAC key). Every problem \
         is named with file and line. Directives that change nothing for hb-monitor are \
         accepted with a note; a directive it cannot honour safely, or does not know, is an \
         error, so that the daemon refuses to start rather than run differently from what the \
         file says. The directives of ha.cf:",
    )]);
    for (kind, title) in [
        (Kind::Honoured, "Honoured"),
        (Kind::Ignored, "Accepted and ignored"),
        (Kind::Refused, "Refused"),
    ] {
        r.control("SS", [title]);
        for dir in DIRECTIVES.iter().filter(|x| x.kind == kind) {
            r.control("TP", []);
            r.text([bold(dir.name), roman(" "), italic(dir.args)]);
            r.text([roman(dir.text)]);
        }
    }
    r.control("SS", ["haresources"]);
    r.text([roman(
        "Each line is a resource group: its preferred node, then its resources, started left \
         to right and stopped right to left. A bare address, IPaddr::... and IPaddr2::... run \
         ocf:ferroha:vip; Filesystem::device::directory[::fstype[::options]] runs ocf:ferroha:fs; \
         drbddisk::RESOURCE runs ocf:ferroha:drbd; vip, fs, mysql and drbd take name=value \
         arguments; provider:type and ocf:provider:type run any installed OCF agent.",
    )]);
    r.control("SS", ["authkeys"]);
    r.text([roman(
        "auth N and a key line N sha256|sha1|md5 SECRET. The file must be mode 600; crc is \
         refused (it authenticates nothing).",
    )]);

    r.control("SH", ["FILES"]);
    for (file, text) in [
        (
            "/etc/ha.d/ha.cf",
            "Nodes, timings, media, fencing (see CONFIGURATION).",
        ),
        ("/etc/ha.d/haresources", "The resource groups."),
        (
            "/etc/ha.d/authkeys",
            "The key that authenticates heartbeats; mode 600.",
        ),
        (
            "/usr/lib/ocf/resource.d/",
            "Where agents are looked up (--ocf-root, OCF_ROOT); ferroha's are in ferroha/.",
        ),
        (
            "/var/lib/hb-monitor/",
            "The generation number, kept across restarts (--state-dir).",
        ),
        (
            "/run/hb-monitor.sock",
            "The control socket of status, standby and takeover; root only (--control).",
        ),
        (
            "/lib/systemd/system/hb-monitor.service",
            "The unit; it starts only when /etc/ha.d/ha.cf exists.",
        ),
        (
            "/usr/share/doc/ferroha/examples/",
            "Example configurations: MySQL on DRBD, and two groups active/active.",
        ),
    ] {
        r.control("TP", []);
        r.text([italic(file)]);
        r.text([roman(text)]);
    }

    r.control("SH", ["EXIT STATUS"]);
    for (code, text) in [
        (
            "0",
            "Success; run: stopped on SIGTERM or SIGINT after handing over its groups.",
        ),
        ("1", "A failure not listed below."),
        ("2", "Invalid command line."),
        (
            "3",
            "status, standby, takeover: the daemon is not running (its socket does not answer).",
        ),
        (
            "4",
            "Insufficient privilege: the control socket answers root only.",
        ),
        (
            "6",
            "Not configured: check found a problem, or run cannot honour the configuration. \
             The unit does not restart on it (RestartPreventExitStatus=6).",
        ),
    ] {
        r.control("TP", []);
        r.text([bold(code)]);
        r.text([roman(text)]);
    }

    r.control("SH", ["SIGNALS"]);
    for (signal, text) in [
        (
            "SIGTERM, SIGINT",
            "Stop the resource groups held here, tell the peers (which take over at once), \
             exit 0.",
        ),
        (
            "SIGHUP",
            "Logged and ignored: configuration reload is not supported yet.",
        ),
    ] {
        r.control("TP", []);
        r.text([bold(signal)]);
        r.text([roman(text)]);
    }

    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "ocf_ferroha_drbd(7), ocf_ferroha_fs(7), ocf_ferroha_mysql(7), ocf_ferroha_vip(7), \
         systemctl(1), /usr/share/doc/ferroha/README.md",
    )]);
    page.push_str(&r.to_roff());

    let mut out = Vec::new();
    man.render_version_section(&mut out).unwrap();
    page.push_str(&String::from_utf8(out).unwrap());
    page
}

fn flag(arg: &clap::Arg) -> String {
    match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => format!("-{}", arg.get_short().unwrap_or('?')),
    }
}

fn value_name(arg: &clap::Arg) -> String {
    arg.get_value_names()
        .and_then(|v| v.first())
        .map_or_else(|| arg.get_id().as_str().to_uppercase(), |v| v.to_string())
}

/// What the page of one agent needs from its meta-data.
struct Meta {
    longdesc: String,
    shortdesc: String,
    params: Vec<Param>,
    actions: Vec<Vec<(String, String)>>,
}

struct Param {
    name: String,
    required: bool,
    unique: bool,
    kind: String,
    default: Option<String>,
    shortdesc: String,
    longdesc: String,
}

fn child_text(node: roxmltree::Node, tag: &str) -> String {
    node.children()
        .find(|c| c.has_tag_name(tag))
        .and_then(|c| c.text())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn parse_meta(xml: &str) -> Meta {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options).expect("meta-data is XML");
    let root = doc.root_element();
    let params = root
        .descendants()
        .filter(|n| n.has_tag_name("parameter"))
        .map(|p| {
            let content = p.children().find(|c| c.has_tag_name("content"));
            Param {
                name: p.attribute("name").unwrap_or("").to_string(),
                required: p.attribute("required") == Some("1"),
                unique: p.attribute("unique") == Some("1"),
                kind: content
                    .and_then(|c| c.attribute("type"))
                    .unwrap_or("string")
                    .to_string(),
                default: content
                    .and_then(|c| c.attribute("default"))
                    .map(str::to_string),
                shortdesc: child_text(p, "shortdesc"),
                longdesc: child_text(p, "longdesc"),
            }
        })
        .collect();
    let actions = root
        .descendants()
        .filter(|n| n.has_tag_name("action"))
        .map(|a| {
            a.attributes()
                .map(|at| (at.name().to_string(), at.value().to_string()))
                .collect()
        })
        .collect();
    Meta {
        longdesc: child_text(root, "longdesc"),
        shortdesc: child_text(root, "shortdesc"),
        params,
        actions,
    }
}

/// Paragraphs of a longdesc: blank lines separate them, line breaks inside are reflowed.
fn paragraphs(r: &mut Roff, text: &str) {
    for (i, para) in text.split("\n\n").enumerate() {
        let para = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if para.is_empty() {
            continue;
        }
        if i > 0 {
            r.control("PP", []);
        }
        r.text([roman(para)]);
    }
}

/// `ocf_ferroha_<agent>(7)`, roff source, from the agent's meta-data XML.
pub fn agent_page(agent: &str, xml: &str, version: &str) -> String {
    let meta = parse_meta(xml);
    let title = format!("ocf_ferroha_{agent}");
    let mut r = Roff::new();
    // No date in the title line: the same sources give the same page (reproducible builds).
    let mut page = format!(
        // .nh: no hyphenation, so that paths and parameter names stay whole.
        ".TH {} 7 \"\" \"ferroha {version}\" \"OCF resource agents\"\n.nh\n",
        title.to_uppercase()
    );
    r.control("SH", ["NAME"]);
    r.text([roman(format!("{title} - {}", meta.shortdesc))]);
    r.control("SH", ["SYNOPSIS"]);
    let mut names: Vec<&str> = meta
        .actions
        .iter()
        .filter_map(|a| a.iter().find(|(k, _)| k == "name").map(|(_, v)| v.as_str()))
        .collect();
    names.dedup();
    r.text([
        bold(agent),
        roman(" ["),
        roman(names.join(" | ")),
        roman("]"),
    ]);
    r.control("SH", ["DESCRIPTION"]);
    paragraphs(&mut r, &meta.longdesc);
    r.control("PP", []);
    r.text([roman(format!(
        "Installed as /usr/lib/ocf/resource.d/ferroha/{agent} (Pacemaker: ocf:ferroha:{agent}), \
         linked from /usr/sbin/{agent}-agent."
    ))]);

    r.control("SH", ["SUPPORTED PARAMETERS"]);
    for p in &meta.params {
        r.control("TP", []);
        r.text([bold(p.name.clone())]);
        if !p.shortdesc.is_empty() {
            r.text([roman(format!("{}.", p.shortdesc.trim_end_matches('.')))]);
            r.control("br", []);
        }
        paragraphs(&mut r, &p.longdesc);
        let mut facts = vec![
            if p.required { "required" } else { "optional" }.to_string(),
            p.kind.clone(),
        ];
        if p.unique {
            facts.push("unique".into());
        }
        facts.push(match &p.default {
            Some(d) if !d.is_empty() => format!("default \"{d}\""),
            _ => "no default".into(),
        });
        r.text([roman(format!("({})", facts.join(", ")))]);
    }

    r.control("SH", ["SUPPORTED ACTIONS"]);
    r.text([roman(
        "The actions of the agent, with the timeouts and intervals its meta-data advises:",
    )]);
    for a in &meta.actions {
        let name = a.iter().find(|(k, _)| k == "name").map_or("", |(_, v)| v);
        let rest: Vec<String> = a
            .iter()
            .filter(|(k, _)| k != "name")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        r.control("TP", []);
        r.text([bold(name)]);
        r.text([roman(rest.join(" "))]);
    }

    r.control("SH", ["EXIT STATUS"]);
    r.text([roman(
        "The OCF return codes (resource-agents' ocf-returncodes); the reason for a failure is \
         one line on standard error, prefixed ocf-exit-reason:.",
    )]);
    let mut codes = vec![
        ("0", "OCF_SUCCESS: done; for monitor, running."),
        ("1", "OCF_ERR_GENERIC: the action failed."),
        ("2", "OCF_ERR_ARGS: invalid arguments."),
        (
            "3",
            "OCF_ERR_UNIMPLEMENTED: an action the agent does not implement.",
        ),
        ("4", "OCF_ERR_PERM: insufficient privilege."),
        (
            "5",
            "OCF_ERR_INSTALLED: a program or device the resource needs is missing here.",
        ),
        ("6", "OCF_ERR_CONFIGURED: a parameter's value is invalid."),
        (
            "7",
            "OCF_NOT_RUNNING: monitor: the resource is cleanly stopped.",
        ),
    ];
    if names.contains(&"promote") {
        codes.push(("8", "OCF_RUNNING_PROMOTED: monitor: running, promoted."));
        codes.push(("9", "OCF_FAILED_PROMOTED: monitor: failed while promoted."));
    }
    for (code, text) in codes {
        r.control("TP", []);
        r.text([bold(code)]);
        r.text([roman(text)]);
    }

    r.control("SH", ["EXAMPLE"]);
    r.text([roman(format!(
        "Pacemaker: pcs resource create NAME ocf:ferroha:{agent} PARAMETER=VALUE ...; \
         hb-monitor: {agent} PARAMETER=VALUE ... in a haresources line. By hand: \
         OCF_ROOT=/usr/lib/ocf OCF_RESKEY_PARAMETER=VALUE {agent}-agent monitor"
    ))]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "hb-monitor(8), crm_resource(8), ocf-tester(8), /usr/share/doc/ferroha/README.md",
    )]);
    page.push_str(&r.to_roff());
    page
}
