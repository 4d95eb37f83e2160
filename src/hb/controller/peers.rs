//! What this node tells its peers and what it makes of theirs: the heartbeat's fields,
//! each peer's view of the groups, and the membership events (up, dead, restarted).

use super::*;

impl Node {
    pub(super) fn status_message(&self, st: &str, now: Instant) -> Message {
        let mut msg = Message::default();
        msg.push("t", "status");
        msg.push("st", st);
        msg.push("rsc", self.rsc_word());
        if let Some(ping) = &self.ping {
            msg.push("ping", ping.count(now).to_string());
        }
        if self.groups.iter().any(|g| g.want) {
            let wants: Vec<&str> = self
                .groups
                .iter()
                .map(|g| if g.want { "yes" } else { "no" })
                .collect();
            msg.push("want", wants.join(","));
            msg.push("wantid", format!("{:x}", self.want_id));
        }
        msg.push("seen", self.wants_seen());
        msg.push("dt", format!("{:x}", self.s.deadtime.as_millis()));
        msg.push("protocol", "1");
        msg
    }

    /// `seen=`: the latest takeover request heard from each peer, `node:id` comma-separated.
    pub(super) fn wants_seen(&self) -> String {
        let seen: Vec<String> = self
            .members
            .peers
            .iter()
            .filter_map(|(name, p)| Some(format!("{name}:{}", p.last_fields.get("wantid")?)))
            .collect();
        seen.join(",")
    }

    /// Whether every live hb-monitor peer has echoed this node's latest takeover request.
    /// Heartbeat peers and hb-monitor versions that do not echo are not waited for.
    pub(super) fn want_acknowledged(&self) -> bool {
        self.members.peers.iter().all(|(name, p)| {
            if p.state != PeerState::Up || self.compat.is_heartbeat(name) {
                return true;
            }
            let Some(seen) = p.last_fields.get("seen") else {
                return true;
            };
            seen.split(',')
                .filter_map(|entry| entry.split_once(':'))
                .any(|(node, id)| {
                    node == self.s.node
                        && crate::hb::proto::parse_hex(id).is_some_and(|id| id >= self.want_id)
                })
        })
    }

    /// `rsc=`: each group's word, comma-separated, in haresources order.
    pub(super) fn rsc_word(&self) -> String {
        if self.groups.is_empty() {
            return Holding::None.word().to_string();
        }
        let words: Vec<&str> = self.groups.iter().map(|g| g.holding.word()).collect();
        words.join(",")
    }

    pub(super) fn heartbeat(&mut self, now: Instant) {
        // Leaving, with nothing left here (a start-up clean-up still stopping what a killed
        // predecessor left is something): peers may take over at once.
        let gone = self
            .groups
            .iter()
            .all(|g| g.job.is_none() && !g.holding.occupies() && g.holding != Holding::Cleaning);
        let st = if self.exiting && gone {
            "dead"
        } else {
            "active"
        };
        // Heartbeat peers learn of a change in holding from a message of its own, sent
        // before the heartbeat that carries it for hb-monitor peers.
        let mine = self.holdings();
        self.compat.advertise(&mine);
        self.flush_compat();
        let msg = self.status_message(st, now);
        self.out.push(Action::Heartbeat { msg, last: false });
    }

    /// Queues what the Heartbeat side has to send.
    pub(super) fn flush_compat(&mut self) {
        for (msg, sequenced) in std::mem::take(&mut self.compat.outbox) {
            if let (Some(t), Some(info)) = (msg.get("t"), msg.get("info").or(msg.get("rsc_hold")))
                && t != "NS_ackmsg"
            {
                self.out.push(Action::Log(
                    Level::Debug,
                    format!("to Heartbeat peers: t={t} {info}"),
                ));
            }
            self.out.push(Action::Send { msg, sequenced });
        }
    }

    /// Whether this node could take groups now (for a Heartbeat peer's hand-over).
    pub(super) fn able_to_take(&self) -> bool {
        !self.exiting
            && self
                .groups
                .iter()
                .all(|g| g.holding == Holding::None && g.job.is_none() && !g.standby)
    }

    pub(super) fn receive(&mut self, medium: &str, msg: &Message, arrived: Instant, now: Instant) {
        let src = msg.get("src").unwrap_or("").to_string();
        // Heartbeat's unsequenced control messages (acks, retransmission requests).
        if msg.get("t").is_some_and(|t| t.starts_with("NS_")) {
            if src != self.s.node
                && let Effect::Retransmit(seqs) = self.compat.control(&src, msg)
            {
                self.out.push(Action::Retransmit { to: src, seqs });
            }
            return;
        }
        let before = self.members.peers.get(&src).map(|p| (p.generation, p.seq));
        // A Heartbeat peer's message we asked for again (it was lost): older than the last
        // one, so membership would take it for a replay; it is of the current generation,
        // authenticated and awaited, and counts for the resource protocol.
        if let (Some((Some(g), _)), Some(hg), Some(seq)) =
            (before, msg.get_hex("hg"), msg.get_hex("seq"))
            && g == hg
            && self.compat.resent(&src, seq)
        {
            let able = self.able_to_take();
            let mine = self.holdings();
            self.compat.observe(&src, msg, seq, false, &mine, able);
            return;
        }
        match self.members.receive(msg, medium, arrived) {
            Ok(events) => {
                let after = self.members.peers.get(&src).map(|p| (p.generation, p.seq));
                // A copy from another medium changes nothing: only fresh messages count.
                if after != before
                    && let Some((_, Some(seq))) = after
                {
                    let restarted = events
                        .iter()
                        .any(|e| matches!(e, Event::PeerRestarted(p) if *p == src));
                    if let (Some((Some(g0), Some(s0))), Some((Some(g1), _))) = (before, after)
                        && g0 == g1
                    {
                        self.compat.gap(&src, s0, seq, now);
                    }
                    self.compat.acknowledge(&src, seq);
                    let able = self.able_to_take();
                    let mine = self.holdings();
                    self.compat.observe(&src, msg, seq, restarted, &mine, able);
                }
                self.report(events);
            }
            Err(Dropped::Own) => {}
            Err(why) => self.log(
                Level::Debug,
                format!("dropped a message on {medium}: {why:?}"),
            ),
        }
    }

    /// What peer `name` does with group `g`: from its heartbeats (hb-monitor) or its resource
    /// messages (Heartbeat 3).
    pub(super) fn peer_holding(&self, name: &str, g: usize) -> Holding {
        let i_hold = matches!(self.groups[g].holding, Holding::Held | Holding::Stopping);
        if let Some(h) = self.compat.holding_of(name, g, i_hold) {
            return h;
        }
        let Some(peer) = self.members.peers.get(name) else {
            return Holding::None;
        };
        match peer.last_fields.get("rsc") {
            // A peer configured with fewer groups says nothing of this one: it may run it.
            Some(words) => words
                .split(',')
                .nth(g)
                .map_or(Holding::Starting, Holding::from_word),
            // Heard from, but not a heartbeat yet (a Heartbeat peer's first message may be
            // an acknowledgement or a resource message): it may hold the group.
            None if peer.state == PeerState::Up => Holding::Starting,
            None => Holding::None,
        }
    }

    pub(super) fn peer_wants(&self, name: &str, g: usize) -> bool {
        self.members
            .peers
            .get(name)
            .and_then(|p| p.last_fields.get("want"))
            .is_some_and(|w| w.split(',').nth(g) == Some("yes"))
    }

    pub(super) fn peer_views(&self, g: usize) -> Vec<PeerView<'_>> {
        self.members
            .peers
            .iter()
            .map(|(name, p)| {
                let mut holding = self.peer_holding(name, g);
                if self.s.mutation == Some(Mutation::FailbackDuringStop)
                    && holding == Holding::Stopping
                {
                    holding = Holding::None;
                }
                PeerView {
                    name,
                    // A live peer whose stop failed counts as gone for the decision:
                    // whoever would take the group fences it first.
                    alive: p.state == PeerState::Up && holding != Holding::Unclean,
                    unknown: p.state == PeerState::Unknown,
                    holding,
                    wants: self.peer_wants(name, g),
                }
            })
            .collect()
    }

    /// A live Heartbeat peer that could take group `g`: a voluntary hand-over to it goes
    /// through its three-message protocol, or it would never start the group.
    pub(super) fn heartbeat_taker_alive(&self, g: usize) -> bool {
        self.members.peers.iter().any(|(name, p)| {
            p.state == PeerState::Up
                && self.compat.is_heartbeat(name)
                && matches!(self.peer_holding(name, g), Holding::None | Holding::Standby)
        })
    }

    pub(super) fn report(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::PeerUp(p) => {
                    self.log(Level::Info, format!("node {p} is up"));
                    self.fence_needed.remove(&p);
                    self.forget_takeover_from(&p);
                    self.notify(Notice::PeerUp { peer: p });
                }
                Event::PeerRestarted(p) => {
                    // A restarted daemon cleans up before it takes part (start-up clean-up).
                    self.log(Level::Info, format!("node {p} restarted (new generation)"));
                    self.fence_needed.remove(&p);
                    self.forget_takeover_from(&p);
                }
                Event::PeerDead(p) => {
                    self.notify(Notice::PeerDead { peer: p.clone() });
                    let orderly = self
                        .members
                        .peers
                        .get(&p)
                        .is_some_and(|peer| peer.status == "dead");
                    let never_heard = self
                        .members
                        .peers
                        .get(&p)
                        .is_some_and(|peer| peer.last_heard.is_none());
                    if never_heard && !self.groups.is_empty() {
                        // Silent since this daemon started: it may run any group (its daemon
                        // killed, this one restarted meanwhile), and nobody here knows.
                        // Pacemaker's startup-fencing: fence it before taking any.
                        self.log(
                            Level::Warn,
                            format!(
                                "node {p} was not heard from within initdead: it may run any group; {}",
                                if self.s.fencing {
                                    "it is fenced before any takeover"
                                } else {
                                    "without a fence_command it may still run one"
                                }
                            ),
                        );
                        self.fence_needed
                            .insert(p, (0..self.groups.len()).collect());
                        continue;
                    }
                    let mut unclean_groups = BTreeSet::new();
                    let mut words = vec![];
                    for g in 0..self.groups.len() {
                        let holding = self.peer_holding(&p, g);
                        let may_run = holding.occupies() || holding == Holding::Cleaning;
                        if may_run && !(orderly && holding != Holding::Unclean) {
                            unclean_groups.insert(g);
                            self.groups[g].taking_over_from = Some(p.clone());
                            words.push(if self.groups.len() == 1 {
                                holding.word().to_string()
                            } else {
                                format!("{} {}", self.groups[g].spec.name, holding.word())
                            });
                        }
                    }
                    if self.s.fencing && !orderly {
                        // Cut off rather than gone, it may have taken any group since it was
                        // last heard (it sees this node dead too): Pacemaker fences every
                        // lost node, and so does the node that takes a group next.
                        let what = if words.is_empty() {
                            String::new()
                        } else if self.groups.len() == 1 {
                            format!(" while it advertised the group as {}", words.join(", "))
                        } else {
                            format!(" while it advertised groups as {}", words.join(", "))
                        };
                        self.log(
                            Level::Warn,
                            format!("node {p} is dead{what}: it is fenced before any takeover"),
                        );
                        self.fence_needed
                            .insert(p, (0..self.groups.len()).collect());
                    } else if unclean_groups.is_empty() {
                        self.log(Level::Warn, format!("node {p} is dead"));
                    } else {
                        let what = if self.groups.len() == 1 {
                            format!("the group as {}", words.join(", "))
                        } else {
                            format!("groups as {}", words.join(", "))
                        };
                        self.log(
                            Level::Warn,
                            format!(
                                "node {p} is dead while it advertised {what}: {}",
                                if self.s.fencing {
                                    "it is fenced before any takeover"
                                } else {
                                    "without a fence_command it may still run it"
                                }
                            ),
                        );
                        self.fence_needed.insert(p, unclean_groups);
                    }
                }
                Event::Late(p, gap) => self.log(
                    Level::Warn,
                    format!("late heartbeat from {p}: {} ms", gap.as_millis()),
                ),
                Event::MediumDown(p, m) => {
                    self.log(Level::Warn, format!("no heartbeats from {p} on {m}"));
                    self.notify(Notice::MediumDown { peer: p, medium: m });
                }
                Event::MediumUp(p, m) => {
                    self.log(Level::Info, format!("heartbeats from {p} on {m} again"));
                    self.notify(Notice::MediumUp { peer: p, medium: m });
                }
            }
        }
    }

    /// `peer` is back: whatever it died with, it has cleaned up (start-up clean-up), so a
    /// later start here is no failover from it.
    fn forget_takeover_from(&mut self, peer: &str) {
        for group in &mut self.groups {
            if group.taking_over_from.as_deref() == Some(peer) {
                group.taking_over_from = None;
            }
        }
    }
}
