//! The daemon's state as Prometheus metrics (text exposition format 0.0.4), for
//! `hb-monitor metrics` (node_exporter's textfile collector) and `metrics_listen` (a scrape).
//!
//! Rendered from the status the control socket answers (one query path, so that `status`
//! and the metrics never disagree), in the style of ClusterLabs' `ha_cluster_exporter`:
//! `ha_cluster_hb_` names, one family per quantity with its labels, gauges 0/1 for states
//! (`ha_cluster_hb_group_state{state=...}` lists every state, the current one 1), counters
//! ending in `_total`, times in seconds. Pure: JSON in, text out.

use std::fmt::Write;

use serde_json::Value;

/// The content type of the text this module renders.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every state of a group on a node (see `group::Holding::word`), for the state gauge.
const GROUP_STATES: [&str; 8] = [
    "none", "cleaning", "starting", "held", "stopping", "failed", "standby", "unclean",
];

/// What the daemon said of itself when it did not answer: `ha_cluster_hb_up 0` alone.
pub fn render_down() -> String {
    let mut out = Out::default();
    out.family(
        "up",
        "gauge",
        "Whether hb-monitor answered on its control socket.",
    );
    out.sample("up", &[], 0.0);
    out.text
}

/// The metrics of `status` (the control socket's answer to `status`).
pub fn render(status: &Value) -> String {
    let mut out = Out::default();
    let u = |v: &Value| v.as_u64().unwrap_or(0) as f64;
    let seconds = |v: &Value| v.as_u64().map(|ms| ms as f64 / 1000.0);
    let node = status["node"].as_str().unwrap_or("");
    let peers = status["peers"].as_array().map_or(&[][..], Vec::as_slice);
    let groups = status["groups"].as_array().map_or(&[][..], Vec::as_slice);
    let name_of = |v: &Value| v["name"].as_str().unwrap_or("").to_string();

    out.family(
        "up",
        "gauge",
        "Whether hb-monitor answered on its control socket.",
    );
    out.sample("up", &[], 1.0);
    out.family(
        "generation",
        "gauge",
        "This run's generation (increases at every start of the daemon).",
    );
    out.sample("generation", &[], u(&status["generation"]));
    out.family(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    out.sample(
        "uptime_seconds",
        &[],
        seconds(&status["uptime_ms"]).unwrap_or(0.0),
    );

    out.family(
        "node_up",
        "gauge",
        "Whether a cluster node is up as this node sees it (1 up, 0 dead or not heard from yet).",
    );
    out.sample("node_up", &[("node", node)], 1.0);
    for p in peers {
        let up = p["state"].as_str() == Some("up");
        out.sample("node_up", &[("node", &name_of(p))], f64::from(u8::from(up)));
    }

    out.family(
        "peer_last_heartbeat_seconds",
        "gauge",
        "Seconds since the last heartbeat of a peer on a medium.",
    );
    for p in peers {
        for m in p["media"].as_array().into_iter().flatten() {
            if let Some(age) = seconds(&m["last_heartbeat_ms_ago"]) {
                let medium = m["medium"].as_str().unwrap_or("");
                out.sample(
                    "peer_last_heartbeat_seconds",
                    &[("peer", &name_of(p)), ("medium", medium)],
                    age,
                );
            }
        }
    }
    out.family(
        "medium_up",
        "gauge",
        "Whether a peer's heartbeats arrive on a medium (0: silent there past deadtime).",
    );
    for p in peers {
        for m in p["media"].as_array().into_iter().flatten() {
            let medium = m["medium"].as_str().unwrap_or("");
            let up = m["up"].as_bool().unwrap_or(false);
            out.sample(
                "medium_up",
                &[("peer", &name_of(p)), ("medium", medium)],
                f64::from(u8::from(up)),
            );
        }
    }

    out.family(
        "dropped_packets_total",
        "counter",
        "Datagrams dropped before membership, by kind and medium (kernel: by the socket's filter or a full buffer); replayed, unknown_node and incomplete are counted over all media (medium=\"all\").",
    );
    if let Some(by_medium) = status["dropped_by_medium"].as_object() {
        for (medium, kinds) in by_medium {
            for (kind, n) in kinds.as_object().into_iter().flatten() {
                out.sample(
                    "dropped_packets_total",
                    &[("kind", kind), ("medium", medium)],
                    u(n),
                );
            }
        }
    }
    for kind in ["replayed", "unknown_node", "incomplete"] {
        out.sample(
            "dropped_packets_total",
            &[("kind", kind), ("medium", "all")],
            u(&status["dropped"][kind]),
        );
    }
    out.family(
        "accepted_packets_total",
        "counter",
        "Messages membership accepted.",
    );
    out.sample("accepted_packets_total", &[], u(&status["accepted"]));
    out.family(
        "retransmitted_messages_total",
        "counter",
        "Heartbeat peers' lost messages: requested (each request of each message), recovered (arrived as asked), abandoned (asked too often, or gone from the sender's history); and their requests of this node's: resent, not_found.",
    );
    for kind in ["requested", "recovered", "abandoned", "resent", "not_found"] {
        out.sample(
            "retransmitted_messages_total",
            &[("kind", kind)],
            u(&status["retransmission"][kind]),
        );
    }
    out.family(
        "pauses_total",
        "counter",
        "Times this node did not run for a while (its machine stalled); peers' silence over them is excused.",
    );
    out.sample("pauses_total", &[], u(&status["pauses"]["count"]));
    out.family("longest_pause_seconds", "gauge", "The longest such pause.");
    out.sample(
        "longest_pause_seconds",
        &[],
        seconds(&status["pauses"]["longest_ms"]).unwrap_or(0.0),
    );
    out.family(
        "stand_in_heartbeats_total",
        "counter",
        "Heartbeats the stand-in threads sent while the loop's CPU stalled.",
    );
    out.sample(
        "stand_in_heartbeats_total",
        &[],
        u(&status["stand_in"]["heartbeats"]),
    );

    out.family(
        "group_holder",
        "gauge",
        "Which node runs a resource group (1), as this node sees it.",
    );
    for g in groups {
        let holder = g["holder"].as_str();
        let group = name_of(g);
        out.sample(
            "group_holder",
            &[("group", &group), ("node", node)],
            f64::from(u8::from(holder == Some(node))),
        );
        for p in peers {
            let peer = name_of(p);
            out.sample(
                "group_holder",
                &[("group", &group), ("node", &peer)],
                f64::from(u8::from(holder == Some(peer.as_str()))),
            );
        }
    }
    out.family(
        "group_state",
        "gauge",
        "What this node does with a resource group: 1 for its state, 0 for the others.",
    );
    for g in groups {
        let group = name_of(g);
        let state = g["holding"].as_str().unwrap_or("");
        for s in GROUP_STATES {
            out.sample(
                "group_state",
                &[("group", &group), ("state", s)],
                f64::from(u8::from(s == state)),
            );
        }
    }
    // Counters per group: (metric, the status field, help).
    for (name, field, help) in [
        (
            "failovers_total",
            "failovers",
            "Times this node took a group over from a node that died with it or failed to stop it.",
        ),
        (
            "local_restarts_total",
            "restarts",
            "Restarts in place of a group's resources after a failed monitor, on this node.",
        ),
    ] {
        out.family(name, "counter", help);
        for g in groups {
            out.sample(name, &[("group", &name_of(g))], u(&g[field]));
        }
    }
    out.family(
        "resource_last_operation_seconds",
        "gauge",
        "How long the last operation on a resource took on this node, by operation and result.",
    );
    // A family's samples stand together: the ages are a family of their own, after.
    let mut ages = Out::default();
    ages.family(
        "resource_last_operation_age_seconds",
        "gauge",
        "Seconds since the last operation on a resource ended on this node.",
    );
    for g in groups {
        let group = name_of(g);
        for r in g["resources"].as_array().into_iter().flatten() {
            let (Some(op), Some(ok)) = (r["last_op"].as_str(), r["last_op_ok"].as_bool()) else {
                continue;
            };
            let labels = [
                ("group", group.as_str()),
                ("resource", r["name"].as_str().unwrap_or("")),
                ("operation", op),
                ("result", if ok { "ok" } else { "failed" }),
            ];
            out.sample(
                "resource_last_operation_seconds",
                &labels,
                seconds(&r["last_op_duration_ms"]).unwrap_or(0.0),
            );
            ages.sample(
                "resource_last_operation_age_seconds",
                &labels,
                seconds(&r["last_op_ms_ago"]).unwrap_or(0.0),
            );
        }
    }
    out.text += &ages.text;

    out.family(
        "fences_total",
        "counter",
        "Runs of fence_command from this node, by node fenced and result.",
    );
    for (peer, counts) in status["fences"].as_object().into_iter().flatten() {
        for (result, key) in [("success", "succeeded"), ("failure", "failed")] {
            out.sample(
                "fences_total",
                &[("peer", peer), ("result", result)],
                u(&counts[key]),
            );
        }
    }
    out.family("fence_running", "gauge", "Whether fence_command runs now.");
    out.sample(
        "fence_running",
        &[],
        f64::from(u8::from(!status["fence_running"].is_null())),
    );
    if let Some(ping) = status["ping_nodes"].as_array() {
        out.family(
            "ping_node_reachable",
            "gauge",
            "Whether a ping node (group) answers this node.",
        );
        for p in ping {
            let reachable = p["reachable"].as_bool().unwrap_or(false);
            out.sample(
                "ping_node_reachable",
                &[("ping_node", &name_of(p))],
                f64::from(u8::from(reachable)),
            );
        }
    }
    out.text
}

/// Text under construction.
#[derive(Default)]
struct Out {
    text: String,
}

impl Out {
    /// `# HELP` and `# TYPE` of `ha_cluster_hb_<name>`; its samples follow.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP ha_cluster_hb_{name} {help}");
        let _ = writeln!(self.text, "# TYPE ha_cluster_hb_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.text, "ha_cluster_hb_{name}");
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
