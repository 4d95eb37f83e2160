//! `cl_status`, Heartbeat's status tool, answered from hb-monitor's state: the sub-commands
//! admins' scripts and monitoring checks call (`hbstatus`, `listnodes`, `nodestatus`,
//! `nodetype`, `listhblinks`, `hblinkstatus`, `rscstatus`, `clientstatus`), with Heartbeat
//! 3.0.6's output (`-m` for its human-readable form) and exit codes, so that a script keeps
//! working when its node moves from Heartbeat to hb-monitor.
//!
//! Pure: it turns the arguments and the daemon's status (None when the daemon does not
//! answer) into what to print and the exit code; the command line does the I/O.

use serde_json::Value;

/// Success; the node, link or client asked about is up.
pub const OK: u8 = 0;
/// A "normal" failure: the node is dead, the link down, the daemon stopped.
pub const NORMAL_FAIL: u8 = 1;
/// Bad arguments (an unknown sub-command or node, a missing parameter), as Heartbeat's
/// `cl_status` says them.
pub const PARAMETER_ERROR: u8 = 11;
/// The daemon's state could not be had.
pub const UNKNOWN_ERROR: u8 = 13;

/// What `cl_status` prints and returns.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit code.
    pub code: u8,
}

impl Outcome {
    fn fail(code: u8, message: &str) -> Outcome {
        Outcome {
            stderr: format!("{message}\n"),
            code,
            ..Outcome::default()
        }
    }
}

/// The usage, for people (scripts never parse it).
const USAGE: &str = "Usage: cl_status SUB-COMMAND [OPTIONS] [ARGUMENTS]
(hb-monitor answering for Heartbeat's cl_status; -m: human-readable output)

  hbstatus [-v]                   is the cluster daemon running here
  listnodes [-n|-p] [-v]          the nodes (-n normal, -p ping), -v with status and links
  nodestatus NODE                 active, up, ping or dead (exit 0 unless dead)
  nodetype NODE                   normal or ping
  listhblinks [-v] NODE           the node's heartbeat links, -v with their status
  hblinkstatus NODE LINK          up or dead (exit 0 if up)
  rscstatus                       what this node holds: local, foreign, all or none
  clientstatus NODE CLIENT        always offline: hb-monitor has no API clients
";

/// A node as `cl_status` sees it.
struct NodeView {
    name: String,
    /// `normal` or `ping`.
    kind: &'static str,
    /// `active`, `up`, `ping` or `dead`.
    status: String,
    /// Each heartbeat link (the interface, or the serial device) and whether it is up.
    links: Vec<(String, bool)>,
}

/// The link name Heartbeat shows for one of hb-monitor's media: the interface (`eth0` for
/// `eth0:694`), or a serial medium's device.
fn link_name(medium: &str) -> &str {
    // An IPv6 medium beside an IPv4 one of the same name is `eth0:694/ipv6`.
    let medium = medium.strip_suffix("/ipv6").unwrap_or(medium);
    match medium.rsplit_once(':') {
        Some((iface, port)) if !iface.is_empty() && port.parse::<u16>().is_ok() => iface,
        _ => medium,
    }
}

/// Every node in Heartbeat's order, the reverse of ha.cf's (it prepends each `node` and
/// `ping` it reads; seen in Debian's 3.0.6): the ping nodes, written after the `node` lines,
/// first.
fn nodes(status: &Value) -> Vec<NodeView> {
    let me = status["node"].as_str().unwrap_or_default();
    let media: Vec<&str> = status["media"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // One link per interface, as Heartbeat lists them, in ha.cf's order.
    let mut links: Vec<&str> = Vec::new();
    for medium in &media {
        let link = link_name(medium);
        if !links.contains(&link) {
            links.push(link);
        }
    }
    let peers: Vec<&Value> = status["peers"].as_array().into_iter().flatten().collect();
    let mut found = Vec::new();
    for name in status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if name == me {
            found.push(NodeView {
                name: name.to_string(),
                kind: "normal",
                status: "active".into(),
                // A node never hears itself on ucast or mcast: Heartbeat shows its own links
                // dead there, and hb-monitor drops its own heartbeats on every medium.
                links: links.iter().map(|l| (l.to_string(), false)).collect(),
            });
            continue;
        }
        let peer = peers.iter().find(|p| p["name"] == name);
        let up = peer.is_some_and(|p| p["state"] == "up");
        let status = match peer.and_then(|p| p["status"].as_str()) {
            Some(st) if up && !st.is_empty() => st.to_string(),
            _ if up => "active".into(),
            _ => "dead".into(),
        };
        let heard: Vec<(&str, bool)> = peer
            .and_then(|p| p["media"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| Some((link_name(m["medium"].as_str()?), m["up"] == true)))
            .collect();
        found.push(NodeView {
            name: name.to_string(),
            kind: "normal",
            status,
            links: links
                .iter()
                .map(|l| {
                    let link_up = up && heard.iter().any(|(h, on)| h == l && *on);
                    (l.to_string(), link_up)
                })
                .collect(),
        });
    }
    for ping in status["ping_nodes"].as_array().into_iter().flatten() {
        let Some(name) = ping["name"].as_str() else {
            continue;
        };
        let reachable = ping["reachable"] == true;
        found.push(NodeView {
            name: name.to_string(),
            kind: "ping",
            status: if reachable { "ping" } else { "dead" }.into(),
            // A ping node's one link is named by its address, as Heartbeat names it.
            links: vec![(name.to_string(), reachable)],
        });
    }
    found.reverse();
    found
}

/// Options (`-m`, `-v`, `-p`, `-n`) and the remaining words, as Heartbeat's getopt sees them.
struct Parsed<'a> {
    human: bool,
    verbose: bool,
    ping_only: bool,
    normal_only: bool,
    words: Vec<&'a str>,
}

fn parse<'a>(args: &'a [String], allowed: &str) -> Result<Parsed<'a>, Outcome> {
    let mut parsed = Parsed {
        human: false,
        verbose: false,
        ping_only: false,
        normal_only: false,
        words: Vec::new(),
    };
    for arg in args {
        match arg.strip_prefix('-') {
            Some(flags) if !flags.is_empty() => {
                for flag in flags.chars() {
                    if !allowed.contains(flag) {
                        return Err(Outcome::fail(
                            PARAMETER_ERROR,
                            &format!("cl_status: invalid option -- '{flag}'"),
                        ));
                    }
                    match flag {
                        'm' => parsed.human = true,
                        'v' => parsed.verbose = true,
                        'p' => parsed.ping_only = true,
                        _ => parsed.normal_only = true,
                    }
                }
            }
            _ => parsed.words.push(arg),
        }
    }
    Ok(parsed)
}

/// Runs `cl_status ARGS` (without the program name) against `status`, the daemon's answer
/// (None: no daemon answered).
pub fn run(args: &[String], status: Option<&Value>) -> Outcome {
    let Some((command, rest)) = args.split_first() else {
        return Outcome {
            stdout: USAGE.into(),
            ..Outcome::default()
        };
    };
    if command == "-h" && rest.is_empty() {
        return Outcome {
            stdout: USAGE.into(),
            ..Outcome::default()
        };
    }
    let allowed = match command.as_str() {
        "hbstatus" | "listhblinks" => "mv",
        "listnodes" => "mpnv",
        "nodestatus" | "nodetype" | "hblinkstatus" | "clientstatus" | "rscstatus" => "m",
        _ => {
            return Outcome::fail(
                PARAMETER_ERROR,
                &format!("cl_status: {command}: invalid sub-command."),
            );
        }
    };
    let p = match parse(rest, allowed) {
        Ok(p) => p,
        Err(outcome) => return outcome,
    };
    if command == "hbstatus" {
        return hbstatus(&p, status);
    }
    let Some(status) = status else {
        return Outcome::fail(
            NORMAL_FAIL,
            "cl_status: Cannot signon with heartbeat\ncl_status: REASON: hb-monitor is not running",
        );
    };
    let all = nodes(status);
    let find = |name: &str| all.iter().find(|n| n.name == name);
    let mut out = String::new();
    let code = match command.as_str() {
        "listnodes" => {
            listnodes(&all, &p, &mut out);
            OK
        }
        "nodestatus" | "nodetype" => {
            let Some(name) = p.words.first() else {
                return Outcome::fail(PARAMETER_ERROR, "Not enough parameters.");
            };
            let Some(node) = find(name) else {
                return Outcome::fail(PARAMETER_ERROR, "Error. May be due to incorrect node name");
            };
            if command == "nodetype" {
                out += &if p.human {
                    format!("The node {name}'s type: {}\n", node.kind)
                } else {
                    format!("{}\n", node.kind)
                };
                OK
            } else {
                out += &if p.human {
                    format!("The cluster node {name} is {}\n", node.status)
                } else {
                    format!("{}\n", node.status)
                };
                if matches!(node.status.as_str(), "active" | "up" | "ping") {
                    OK
                } else {
                    NORMAL_FAIL
                }
            }
        }
        "listhblinks" => {
            let Some(name) = p.words.first() else {
                return Outcome::fail(PARAMETER_ERROR, "No enough parameter.");
            };
            let Some(node) = find(name) else {
                return Outcome::fail(
                    UNKNOWN_ERROR,
                    "cl_status: Cannot start heartbeat link interface walk.",
                );
            };
            links(node, p.human, p.verbose, &mut out);
            OK
        }
        "hblinkstatus" => {
            let [name, link, ..] = p.words[..] else {
                return Outcome::fail(PARAMETER_ERROR, "No enough parameter.");
            };
            let Some(up) = find(name)
                .and_then(|n| n.links.iter().find(|(l, _)| l == link))
                .map(|(_, up)| *up)
            else {
                return Outcome::fail(UNKNOWN_ERROR, "cl_status: Cannot get heartbeat link status");
            };
            let word = if up { "up" } else { "dead" };
            out += &if p.human {
                format!("The node {name}'s heartbeat link {link} is {word}\n")
            } else {
                format!("{word}\n")
            };
            if up { OK } else { NORMAL_FAIL }
        }
        "clientstatus" => {
            if p.words.len() < 2 {
                return Outcome::fail(PARAMETER_ERROR, "No enough parameter.");
            }
            // hb-monitor has no API clients (ipfail, ccm): every one is offline.
            out += "offline\n";
            NORMAL_FAIL
        }
        _ => {
            let word = rscstatus(status);
            out += &if p.human {
                format!("This node is holding {word} resources.\n")
            } else {
                format!("{word}\n")
            };
            OK
        }
    };
    Outcome {
        stdout: out,
        stderr: String::new(),
        code,
    }
}

fn hbstatus(p: &Parsed<'_>, status: Option<&Value>) -> Outcome {
    let Some(status) = status else {
        // Heartbeat's exact words: scripts test for them.
        return Outcome {
            stdout: "Heartbeat is stopped on this machine.\n".into(),
            code: NORMAL_FAIL,
            ..Outcome::default()
        };
    };
    let mut out = String::new();
    if !p.verbose {
        out += "Heartbeat is running on this machine.\n";
    } else {
        let version = format!("hb-monitor {}", env!("CARGO_PKG_VERSION"));
        if p.human {
            out +=
                &format!("Heartbeat version {version}\nResources controlled by \"haresources\"\n");
        } else {
            out += &format!("version:\t{version}\nmanaged by:\t\"haresources\"\n");
        }
        let verbose = Parsed {
            human: p.human,
            verbose: true,
            ping_only: false,
            normal_only: false,
            words: Vec::new(),
        };
        listnodes(&nodes(status), &verbose, &mut out);
    }
    Outcome {
        stdout: out,
        ..Outcome::default()
    }
}

fn listnodes(all: &[NodeView], p: &Parsed<'_>, out: &mut String) {
    // Both filters at once is no filter, as in Heartbeat.
    let (ping_only, normal_only) = if p.ping_only && p.normal_only {
        (false, false)
    } else {
        (p.ping_only, p.normal_only)
    };
    if p.human {
        *out += "The nodes are as follow:\n";
    }
    for node in all {
        if (ping_only && node.kind != "ping") || (normal_only && node.kind != "normal") {
            continue;
        }
        if p.verbose {
            *out += &format!(
                "\n{}\t{}\t(nodetype: {})\n",
                node.name, node.status, node.kind
            );
            links(node, p.human, true, out);
        } else {
            *out += &format!("{}\n", node.name);
        }
    }
}

fn links(node: &NodeView, human: bool, verbose: bool, out: &mut String) {
    if human {
        *out += "\tthis node has the following heartbeat links:\n";
    }
    for (link, up) in &node.links {
        if verbose {
            *out += &format!("\t{link}\t{}\n", if *up { "up" } else { "dead" });
        } else {
            *out += &format!("\t{link}\n");
        }
    }
}

/// Which resources this node holds, in Heartbeat's words: `local` (every group it is the
/// preferred node of), `foreign` (every other group), `all` (both) or `none`. As in
/// Heartbeat, a node with no groups of its own holds its local ones (none of them): a
/// two-node standby says `local` while its peer runs the group. (Heartbeat remembers a
/// `hb_standby all` on such a node and says `none`; hb-monitor's groups do not tell it
/// from `hb_standby foreign`, so it says `local` in both.)
fn rscstatus(status: &Value) -> &'static str {
    let me = &status["node"];
    let groups: Vec<&Value> = status["groups"].as_array().into_iter().flatten().collect();
    let held = |g: &&Value| g["holding"] == "held";
    let (mine, others): (Vec<&Value>, Vec<&Value>) =
        groups.iter().partition(|g| &g["preferred"] == me);
    let local = mine.iter().all(held);
    let foreign = !others.is_empty() && others.iter().all(held);
    match (local, foreign) {
        (true, true) => "all",
        (true, false) => "local",
        (false, true) => "foreign",
        (false, false) => "none",
    }
}

#[cfg(test)]
mod tests;
