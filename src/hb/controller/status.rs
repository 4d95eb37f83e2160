//! The controller's state as JSON, for `hb-monitor status` and the control socket.

use super::*;

impl Node {
    /// Status as JSON: the peers, the groups, the counters of what membership refused.
    pub fn status(&self, now: Instant) -> serde_json::Value {
        let ms =
            |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_millis() as u64);
        let peers: Vec<serde_json::Value> = self
            .members
            .peers
            .iter()
            .map(|(name, p)| {
                let holdings: Vec<&str> = (0..self.groups.len())
                    .map(|g| self.peer_holding(name, g).word())
                    .collect();
                serde_json::json!({
                    "name": name,
                    "state": match p.state {
                        PeerState::Unknown => "unknown",
                        PeerState::Up => "up",
                        PeerState::Dead => "dead",
                    },
                    "status": p.status,
                    "kind": if self.compat.is_heartbeat(name) { "heartbeat" } else if p.state == PeerState::Unknown { "unknown" } else { "hb-monitor" },
                    "holding": holdings.join(","),
                    "generation": p.generation,
                    "last_heartbeat_ms_ago": ms(p.last_heard),
                    "media": p.media.iter().map(|(m, t)| serde_json::json!({
                        "medium": m,
                        "last_heartbeat_ms_ago": ms(Some(*t)),
                        "up": !p.media_down.contains(m),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let c = &self.members.counters;
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let holder = if group.holding.occupies() {
                    Some(self.s.node.clone())
                } else {
                    self.members
                        .peers
                        .keys()
                        .find(|name| self.peer_holding(name, g).occupies() && self.peer_up(name))
                        .cloned()
                };
                serde_json::json!({
                    "name": group.spec.name,
                    "preferred": group.spec.preferred,
                    "holder": holder,
                    "holding": group.holding.word(),
                    "job": group.job.as_ref().map(|j| format!("{:?}", j.kind).to_lowercase()),
                    "want": group.want,
                    "standby": group.standby,
                    "resources": group.spec.resources.iter().zip(&group.last_ops).map(|(r, last)| serde_json::json!({
                        "name": r,
                        "last_op": last.as_ref().map(|l| l.op.word()),
                        "last_result": last.as_ref().map(|l| match &l.result { Ok(()) => "ok".to_string(), Err(e) => e.clone() }),
                        "last_op_ms_ago": last.as_ref().map(|l| now.saturating_duration_since(l.at).as_millis() as u64),
                        "last_op_ok": last.as_ref().map(|l| l.result.is_ok()),
                        "last_op_duration_ms": last.as_ref().map(|l| l.took.as_millis() as u64),
                    })).collect::<Vec<_>>(),
                    "last_error": group.last_error,
                    "restarts_in_window": group.restarts.len(),
                    "restarts": group.restarts_total,
                    "failovers": group.failovers,
                })
            })
            .collect();
        serde_json::json!({
            "node": self.s.node,
            "nodes": self.s.nodes,
            "generation": self.s.generation,
            "uptime_ms": now.saturating_duration_since(self.started).as_millis() as u64,
            "keepalive_ms": self.s.keepalive.as_millis() as u64,
            "deadtime_ms": self.s.deadtime.as_millis() as u64,
            "peers": peers,
            "dropped": {
                "replayed": c.replayed,
                "unknown_node": c.unknown_node,
                "incomplete": c.incomplete,
            },
            "accepted": c.accepted,
            "retransmission": {
                "requested": self.compat.rexmit.requested,
                "recovered": self.compat.rexmit.recovered,
                "abandoned": self.compat.rexmit.abandoned,
            },
            "pauses": {
                "count": self.pauses,
                "longest_ms": self.longest_pause.as_millis() as u64,
            },
            "ping_nodes": self.ping.as_ref().map(|p| {
                p.entries
                    .iter()
                    .map(|e| serde_json::json!({
                        "name": e.name,
                        "reachable": p.reachable(e, now),
                        "last_reply_ms_ago": e.last_reply.map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    }))
                    .collect::<Vec<_>>()
            }),
            "groups": groups,
            "to_fence": self.fence_needed.keys().collect::<Vec<_>>(),
            "fencing": self.s.fencing,
            "fence_running": self.fencing,
            "fences": self.fences.iter().map(|(node, (ok, failed))| (node.clone(), serde_json::json!({
                "succeeded": ok,
                "failed": failed,
            }))).collect::<serde_json::Map<_, _>>(),
        })
    }
}
