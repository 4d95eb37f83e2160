//! Who must be fenced before a takeover, asking for it, and what its result allows.

use super::*;

impl Node {
    /// The first node to fence before this one may take group `g`: a dead peer that did not
    /// hand it over cleanly, or a live one whose stop of it failed.
    pub(super) fn node_to_fence(&self, g: usize) -> Option<String> {
        self.fence_needed
            .iter()
            .find(|(_, groups)| groups.contains(&g))
            .map(|(n, _)| n.clone())
            .or_else(|| {
                self.members
                    .peers
                    .iter()
                    .find(|(name, p)| {
                        p.state == PeerState::Up && self.peer_holding(name, g) == Holding::Unclean
                    })
                    .map(|(n, _)| n.clone())
            })
    }

    /// Before taking group `g` from `node`: asks for the fence command (and returns false:
    /// the takeover waits for its outcome), or without one, proceeds (a dead peer that
    /// last said it held or was starting or stopping the group: Heartbeat's behaviour
    /// without STONITH, with a warning) or waits (a peer, live or dead, whose stop failed:
    /// nobody may start the group beside what may still run there).
    pub(super) fn fence_first(&mut self, node: String, g: usize, now: Instant) -> bool {
        let dead = self.fence_needed.contains_key(&node);
        if dead && self.s.mutation == Some(Mutation::TakeoverWithoutFencing) {
            self.fence_needed.remove(&node);
            return true;
        }
        if !self.s.fencing {
            // A peer whose stop failed and whose daemon then left (st=dead after a failed
            // stop) or died is as unclean as a live one: it said so.
            if dead && self.peer_holding(&node, g) != Holding::Unclean {
                self.log(
                    Level::Warn,
                    format!(
                        "taking {} over from {node} without fencing: if {node} still runs (its daemon killed, its link cut) both nodes now run it",
                        self.the(g)
                    ),
                );
                // Only this group: another it left unclean stays down.
                if let Some(groups) = self.fence_needed.get_mut(&node) {
                    groups.remove(&g);
                    if groups.is_empty() {
                        self.fence_needed.remove(&node);
                    }
                }
                return true;
            }
            if self.groups[g].waiting_unfenced.as_deref() != Some(node.as_str()) {
                self.log(
                    Level::Error,
                    format!(
                        "{node} failed to stop the group and no fence_command is configured: the group stays down until an operator cleans {node} up"
                    ),
                );
                self.groups[g].waiting_unfenced = Some(node);
            }
            return false;
        }
        if self.next_fence_attempt.is_some_and(|t| now < t) {
            return false;
        }
        self.log(
            Level::Warn,
            format!(
                "fencing {node} before taking the group over ({})",
                if dead {
                    "it died without handing the group over"
                } else {
                    "its stop failed"
                }
            ),
        );
        self.next_fence_attempt = None;
        self.fencing = Some(node.clone());
        self.notify(Notice::FenceStarted { peer: node.clone() });
        self.out.push(Action::Fence {
            node,
            timeout: self.s.fence_timeout,
        });
        false
    }

    pub(super) fn fence_done(&mut self, node: String, result: Result<(), String>, now: Instant) {
        if self.fencing.as_deref() != Some(node.as_str()) {
            return;
        }
        self.fencing = None;
        let count = self.fences.entry(node.clone()).or_default();
        match &result {
            Ok(()) => count.0 += 1,
            Err(_) => count.1 += 1,
        }
        match result {
            Ok(()) => {
                self.log(Level::Info, format!("{node} is fenced"));
                self.notify(Notice::FenceSucceeded { peer: node.clone() });
                self.fence_needed.remove(&node);
                self.just_fenced = Some(node.clone());
                self.next_fence_attempt = None;
                if self.s.mutation != Some(Mutation::AcceptFencedPackets) {
                    self.members.mark_fenced(&node);
                }
                self.compat.peer_gone(&node);
            }
            Err(why) => {
                self.log(
                    Level::Error,
                    format!("fencing {node} failed ({why}): no takeover; trying again in 1 s"),
                );
                self.notify(Notice::FenceFailed {
                    peer: node,
                    reason: why,
                });
                self.next_fence_attempt = Some(now + Duration::from_secs(1));
            }
        }
        self.changed = true;
    }
}
