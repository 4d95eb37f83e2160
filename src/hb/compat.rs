//! Heartbeat 3 peers: what hb-monitor says and does so that a Debian `heartbeat` node in the
//! same cluster sees it as one of its own (issue 10, rolling migration).
//!
//! Between hb-monitor nodes the group state rides in every heartbeat (`rsc=`). Heartbeat 3
//! instead keeps it in separate, sequenced messages (v1 "nice_failback" resource management,
//! the mode of `auto_failback on|off`):
//!
//! - `t=starting`: a node that has just come up asks who holds what; every peer answers with
//!   `t=resource rsc_hold=none|local|foreign|all rtype=full isstable=0|1`. `local` means the
//!   groups whose `haresources` line names the sender, `foreign` the others; `isstable=0`
//!   means "in transition, wait for me".
//! - `hb_standby` is a three-message hand-over: the giver sends `t=ask_resources info=me`,
//!   the taker answers `info=other`, the giver stops its resources (saying
//!   `t=resource ... isstable=0 info=standby` first) and sends `info=done`, the taker starts
//!   them and sends `info=done` too.
//! - An orderly shutdown says `t=resource rsc_hold=none info=shutdown isstable=0`, stops,
//!   then `t=shutdone st=dead`; the peer takes over at once.
//! - A starting Heartbeat node asks each peer for the node list (`t=reqnodes`) and waits
//!   for the answer (`t=repnodes nodelist= delnodelist=`) before anything else.
//! - Every sequenced message is acknowledged now and then (`t=NS_ackmsg dest= ackseq=`), or
//!   the sender's flow control pauses its clients; a gap in a sender's `seq` makes the
//!   receiver ask for a retransmission (`t=NS_rexmit firstseq= lastseq=`).
//!
//! A peer is a Heartbeat peer when its heartbeats lack hb-monitor's `rsc` field. This module
//! is pure logic: it reads accepted messages and this node's state, and queues the messages
//! to send, so that each rule is unit-tested without sockets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::group::Holding;
use super::proto::Message;

/// `rsc_hold` bit: the groups whose preferred node is the sender.
pub const LOCAL: u8 = 1;
/// `rsc_hold` bit: the groups preferred by other nodes.
pub const FOREIGN: u8 = 2;

/// How long a giver waits for the taker's `info=other` (Heartbeat's own limit is 10 s).
pub const STANDBY_ANSWER: Duration = Duration::from_secs(10);

/// Heartbeat acknowledges a sender's sequence numbers ending in a per-node digit; every
/// tenth is enough to keep its flow control open.
const ACK_EVERY: u64 = 10;

/// The `rsc_hold` word for these bits.
pub fn rsc_word(bits: u8) -> &'static str {
    match bits & (LOCAL | FOREIGN) {
        0 => "none",
        LOCAL => "local",
        FOREIGN => "foreign",
        _ => "all",
    }
}

/// The bits of an `rsc_hold` word.
pub fn rsc_bits(word: &str) -> Option<u8> {
    match word {
        "none" => Some(0),
        "local" => Some(LOCAL),
        "foreign" => Some(FOREIGN),
        "all" => Some(LOCAL | FOREIGN),
        _ => None,
    }
}

/// What this module knows of one Heartbeat peer.
#[derive(Debug, Clone, Default)]
struct HbPeer {
    /// Its last `t=resource`: `rsc_hold` bits and `isstable`.
    resources: Option<(u8, bool)>,
    /// Its last `t=resource` said it held the group: a following "none, in transition" is a
    /// stop under way (standby, shutdown), not a node that never held it.
    was_holding: bool,
    /// It left the group to us: `t=shutdone`, or its hand-over (`hb_standby`) completed.
    /// It is no candidate until it restarts or asks again.
    stepped_aside: bool,
    /// Sequence number of the `t=resource` applied last: a retransmitted older one (it was
    /// lost, then resent) must not undo a newer state.
    resource_seq: u64,
    /// Its sequence numbers we never received, with how often they were asked for again
    /// and when next; Heartbeat resends them on request (`NS_rexmit`).
    missing: BTreeMap<u64, (u32, Instant)>,
}

/// How often a lost message is asked for again (Heartbeat's `max_rexmit_delay`) and how
/// many times before it is given up.
const REXMIT_EVERY: Duration = Duration::from_millis(250);
const REXMIT_TRIES: u32 = 20;
/// At most this many lost messages are tracked per peer (Heartbeat starts over beyond its
/// own limit too).
const MAX_MISSING: u64 = 50;

/// A hand-over under way with a Heartbeat peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// None.
    Idle,
    /// The peer asked to give the group to us (`info=me`); we answered `info=other` and
    /// take the group when it says `done`.
    Taking {
        /// The giver.
        from: String,
    },
    /// We asked to give the group away (`info=me`); the group is stopped once the peer
    /// answers `info=other`, then we say `done`.
    Giving {
        /// The taker (the first one to answer).
        to: Option<String>,
        /// When we asked.
        asked: Instant,
        /// `info=done` sent: waiting for the taker's `done`.
        done_sent: bool,
    },
}

/// What the daemon must do after a message (beyond sending the queued replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing more.
    None,
    /// Re-evaluate the group decision now (a peer's holding changed).
    Reevaluate,
    /// Send these earlier messages again (sequence numbers).
    Retransmit(Vec<u64>),
}

/// What this node asked Heartbeat peers to resend, and what became of it (the status'
/// `retransmission`, for the operator's view of a lossy link).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RexmitCounters {
    /// Messages asked for, each request of each lost message counted (first and repeated).
    pub requested: u64,
    /// Lost messages that arrived as asked (then taken, although older than the last).
    pub recovered: u64,
    /// Lost messages given up: asked for too often, or no longer in the sender's history.
    pub abandoned: u64,
}

/// The Heartbeat side of this node.
#[derive(Debug)]
pub struct Compat {
    me: String,
    /// Every node of `ha.cf`, in its order (Heartbeat's node list).
    nodes: Vec<String>,
    /// Each group's preferred node, in `haresources` order.
    preferred: Vec<String>,
    /// Every configured peer, by name, with whether it is a Heartbeat peer (`None`: not
    /// heard from yet).
    kinds: BTreeMap<String, Option<bool>>,
    peers: BTreeMap<String, HbPeer>,
    /// The hand-over under way.
    pub handover: Handover,
    /// The last `t=resource` state sent (bits, stable), so that changes are announced once.
    advertised: Option<(u8, bool)>,
    /// `t=starting` sent (once per run, when the first Heartbeat peer is known).
    starting_sent: bool,
    /// The daemon is exiting: its shutdown notice stands, no more state changes are
    /// announced until `t=shutdone`.
    leaving: bool,
    /// Messages to send, without the envelope (`src`, `seq`, `hg`, …): the daemon adds it.
    /// The flag says whether the message takes a sequence number (`NS_` types do not).
    pub outbox: Vec<(Message, bool)>,
    /// Retransmissions asked of Heartbeat peers.
    pub rexmit: RexmitCounters,
}

impl Compat {
    /// For node `me` among `nodes`, with groups preferred by `preferred` (one per group).
    pub fn new(me: &str, nodes: &[String], preferred: &[String]) -> Compat {
        Compat {
            me: me.to_string(),
            nodes: nodes.to_vec(),
            preferred: preferred.to_vec(),
            kinds: nodes
                .iter()
                .filter(|n| *n != me)
                .map(|n| (n.clone(), None))
                .collect(),
            peers: BTreeMap::new(),
            handover: Handover::Idle,
            advertised: None,
            starting_sent: false,
            leaving: false,
            outbox: Vec::new(),
            rexmit: RexmitCounters::default(),
        }
    }

    /// Whether `name` is a Heartbeat peer (known from its heartbeats).
    pub fn is_heartbeat(&self, name: &str) -> bool {
        self.kinds.get(name).copied().flatten() == Some(true)
    }

    /// Whether any Heartbeat peer is known.
    pub fn any_heartbeat(&self) -> bool {
        self.kinds.values().any(|k| *k == Some(true))
    }

    /// Group `group` as a Heartbeat peer holds it, in hb-monitor's terms; `None` for other
    /// peers.
    ///
    /// Until its first `t=resource` the peer may hold anything: it counts as starting, so
    /// that nothing is started beside it (it answers our `t=starting` at once) — unless this
    /// node holds the group (`i_hold`): then our answer tells it so, and it does not start.
    pub fn holding_of(&self, name: &str, group: usize, i_hold: bool) -> Option<Holding> {
        if !self.is_heartbeat(name) {
            return None;
        }
        let peer = self.peers.get(name).cloned().unwrap_or_default();
        if peer.stepped_aside {
            return Some(Holding::Standby);
        }
        let Some((bits, stable)) = peer.resources else {
            return Some(if i_hold {
                Holding::None
            } else {
                Holding::Starting
            });
        };
        let wanted = self.group_bit(name, group);
        Some(match (bits & wanted != 0, stable) {
            (true, true) => Holding::Held,
            (true, false) => Holding::Starting,
            (false, true) => Holding::None,
            (false, false) if peer.was_holding => Holding::Stopping,
            (false, false) => Holding::None,
        })
    }

    /// The `rsc_hold` bit that means group `group` in a message from `sender`: `local` is
    /// what the sender's own haresources lines name, so the group when the sender is its
    /// preferred node; for the other nodes, `foreign`.
    fn group_bit(&self, sender: &str, group: usize) -> u8 {
        if self.preferred.get(group).is_some_and(|p| p == sender) {
            LOCAL
        } else {
            FOREIGN
        }
    }

    /// The bits of every group in a message from `sender`.
    fn all_group_bits(&self, sender: &str) -> u8 {
        (0..self.preferred.len()).fold(0, |bits, g| bits | self.group_bit(sender, g))
    }

    /// This node's `rsc_hold` bits for its holdings (one per group), as Heartbeat would say
    /// them: `local` while it holds a group it prefers, `foreign` while it holds another's.
    /// Heartbeat's classes are all-or-nothing; hb-monitor's groups move one by one, so a class
    /// counts as held while any of its groups is.
    fn bits_for(&self, mine: &[Holding]) -> (u8, bool) {
        let mut bits = 0;
        for (g, holding) in mine.iter().enumerate() {
            if matches!(
                holding,
                Holding::Held | Holding::Starting | Holding::Unclean
            ) {
                bits |= self.group_bit(&self.me, g);
            }
        }
        // Holding another node's group with none of its own to hold: Heartbeat says `all`
        // after a takeover.
        if bits == FOREIGN && !self.preferred.contains(&self.me) {
            bits |= LOCAL;
        }
        let stable = mine.iter().all(|h| {
            matches!(
                h,
                Holding::None | Holding::Held | Holding::Standby | Holding::Failed
            )
        });
        (bits, stable)
    }

    fn resource_message(&self, mine: &[Holding], info: Option<&str>) -> Message {
        let (bits, stable) = self.bits_for(mine);
        let mut m = Message::default();
        m.push("t", "resource");
        m.push("rsc_hold", rsc_word(bits));
        m.push("rtype", "full");
        m.push("isstable", if stable { "1" } else { "0" });
        if let Some(info) = info {
            m.push("info", info);
        }
        m
    }

    fn ask_resources(&self, rsc_hold: &str, info: &str) -> Message {
        let mut m = Message::default();
        m.push("t", "ask_resources");
        m.push("rsc_hold", rsc_hold);
        m.push("info", info);
        m
    }

    /// Announces this node's state to Heartbeat peers when it changed (and `t=starting`
    /// once, when the first Heartbeat peer is known). Called after every change of holding.
    pub fn advertise(&mut self, mine: &[Holding]) {
        if !self.any_heartbeat() || mine.contains(&Holding::Cleaning) || self.leaving {
            return;
        }
        if !self.starting_sent {
            self.starting_sent = true;
            let mut m = Message::default();
            m.push("t", "starting");
            self.outbox.push((m, true));
        }
        let now = self.bits_for(mine);
        if self.advertised != Some(now) {
            self.advertised = Some(now);
            self.outbox.push((self.resource_message(mine, None), true));
        }
    }

    /// The daemon is exiting: tell Heartbeat peers before the group is stopped.
    pub fn shutting_down(&mut self) {
        if !self.any_heartbeat() || self.leaving {
            return;
        }
        self.leaving = true;
        // Whatever it holds is being given up: "none, in transition".
        let mut m = Message::default();
        m.push("t", "resource");
        m.push("rsc_hold", "none");
        m.push("rtype", "full");
        m.push("isstable", "0");
        m.push("info", "shutdown");
        self.advertised = Some((0, false));
        self.outbox.push((m, true));
    }

    /// The group is down here and the daemon leaves: `t=shutdone` lets Heartbeat peers take
    /// over without waiting for deadtime.
    pub fn shut_down(&mut self) {
        if !self.any_heartbeat() {
            return;
        }
        let mut m = Message::default();
        m.push("t", "shutdone");
        m.push("st", "dead");
        self.outbox.push((m, true));
    }

    /// An accepted message from peer `src` (authenticated; sequence number `seq`, which may
    /// be an older one retransmitted; `restarted`: of a new generation). `mine`: this node's
    /// holding; `able`: this node could take the group now (not standby, failed, busy or
    /// exiting).
    pub fn observe(
        &mut self,
        src: &str,
        msg: &Message,
        seq: u64,
        restarted: bool,
        mine: &[Holding],
        able: bool,
    ) -> Effect {
        let Some(kind) = self.kinds.get_mut(src) else {
            return Effect::None;
        };
        let t = msg.get("t").unwrap_or("");
        if t == "status" {
            let heartbeat = msg.get("rsc").is_none();
            let newly = *kind != Some(heartbeat);
            *kind = Some(heartbeat);
            if heartbeat && newly {
                // First contact: announce ourselves (and ask what it holds).
                self.advertise(mine);
                return Effect::Reevaluate;
            }
        }
        if t == "reqnodes" && msg.get("dest").is_none_or(|d| d == self.me) {
            // A starting Heartbeat node asks for the node list (dynamic membership) and
            // waits for the answer before it goes on: ours is ha.cf's, nothing deleted.
            let mut m = Message::default();
            m.push("dest", src);
            m.push("t", "repnodes");
            m.push(
                "nodelist",
                self.nodes
                    .iter()
                    .map(|n| format!("{n} "))
                    .collect::<String>(),
            );
            m.push("delnodelist", " ");
            self.outbox.push((m, true));
            return Effect::None;
        }
        if !self.is_heartbeat(src) {
            return Effect::None;
        }
        if restarted {
            self.peers.remove(src);
            if matches!(&self.handover, Handover::Taking { from } if from == src) {
                self.handover = Handover::Idle;
            }
        }
        let wanted = self.all_group_bits(src);
        let peer = self.peers.entry(src.to_string()).or_default();
        match t {
            "starting" => {
                // It has just come up: it holds nothing yet but decides now; answer with
                // our state so that it does not wait for us.
                peer.resources = None;
                peer.stepped_aside = false;
                if !self.leaving {
                    let reply = self.resource_message(mine, None);
                    self.advertised = Some(self.bits_for(mine));
                    self.outbox.push((reply, true));
                }
                Effect::Reevaluate
            }
            "resource" => {
                let Some(bits) = msg.get("rsc_hold").and_then(rsc_bits) else {
                    return Effect::None;
                };
                if seq < peer.resource_seq {
                    return Effect::None; // a lost one resent late: a newer state is known
                }
                peer.resource_seq = seq;
                // No isstable: the takeover script's message, which reports a finished
                // takeover.
                let stable = msg.get("isstable").is_none_or(|s| s == "1");
                // Held before, or still in the transition that began while it held.
                peer.was_holding = match peer.resources {
                    Some((before, before_stable)) => {
                        before & wanted != 0 || (peer.was_holding && !before_stable)
                    }
                    None => false,
                };
                // A partial update (no `rtype=full`: the takeover script's) adds to what
                // was held, as Heartbeat reads it; "none" is always all of it.
                let bits = match (msg.get("rtype"), peer.resources) {
                    (Some("full"), _) | (_, None) => bits,
                    (_, Some(_)) if bits == 0 => 0,
                    (_, Some((before, _))) => bits | before,
                };
                peer.resources = Some((bits, stable));
                // Holding the group again (it took it back): a candidate like any other.
                if bits & wanted != 0 {
                    peer.stepped_aside = false;
                }
                Effect::Reevaluate
            }
            "shutdone" => {
                peer.resources = Some((0, true));
                peer.stepped_aside = true;
                Effect::Reevaluate
            }
            "ask_resources" => self.ask_resources_from(src, msg, able),
            _ => Effect::None,
        }
    }

    fn ask_resources_from(&mut self, src: &str, msg: &Message, able: bool) -> Effect {
        let info = msg.get("info").unwrap_or("");
        let rsc_hold = msg.get("rsc_hold").unwrap_or("all").to_string();
        match (&self.handover, info) {
            (Handover::Idle, "me") => {
                if able {
                    self.outbox
                        .push((self.ask_resources(&rsc_hold, "other"), true));
                    self.handover = Handover::Taking {
                        from: src.to_string(),
                    };
                }
                Effect::None
            }
            (Handover::Taking { from }, "done") if from == src => {
                // It has stopped the group: ours to start now.
                if let Some(p) = self.peers.get_mut(src) {
                    p.stepped_aside = true;
                    p.resources = Some((0, true));
                }
                Effect::Reevaluate
            }
            (Handover::Giving { to: None, .. }, "other") => {
                if let Handover::Giving { to, .. } = &mut self.handover {
                    *to = Some(src.to_string());
                }
                Effect::Reevaluate
            }
            (
                Handover::Giving {
                    to: Some(to),
                    done_sent: true,
                    ..
                },
                "done",
            ) if to == src => {
                self.handover = Handover::Idle;
                self.advertised = None;
                Effect::Reevaluate
            }
            _ => Effect::None,
        }
    }

    /// Whether this node, about to give the group up voluntarily (standby, failback), must
    /// first ask a Heartbeat peer to take it (the three-message hand-over), and may stop the
    /// group now. Returns `true` when the stop may go ahead.
    pub fn may_release(&mut self, now: Instant, live_heartbeat_peer: bool) -> bool {
        match &self.handover {
            Handover::Giving { to: Some(_), .. } => true,
            Handover::Giving { asked, .. } => {
                if now.saturating_duration_since(*asked) > STANDBY_ANSWER {
                    // Heartbeat cancels an unanswered standby after 10 s; so do we.
                    self.handover = Handover::Idle;
                }
                false
            }
            Handover::Taking { .. } => false,
            Handover::Idle if live_heartbeat_peer => {
                self.outbox.push((self.ask_resources("all", "me"), true));
                self.handover = Handover::Giving {
                    to: None,
                    asked: now,
                    done_sent: false,
                };
                false
            }
            Handover::Idle => true,
        }
    }

    /// Whether an unanswered request to give the group away was just given up (for the log).
    pub fn giving_expired(&self, now: Instant) -> bool {
        matches!(&self.handover, Handover::Giving { to: None, asked, .. }
            if now.saturating_duration_since(*asked) > STANDBY_ANSWER)
    }

    /// The group has stopped here.
    pub fn stopped(&mut self) {
        if let Handover::Giving {
            to: Some(_),
            done_sent,
            ..
        } = &mut self.handover
            && !*done_sent
        {
            *done_sent = true;
            self.outbox.push((self.ask_resources("all", "done"), true));
        }
    }

    /// The group has started here (or failed to): finish a hand-over to us.
    pub fn started(&mut self) {
        if let Handover::Taking { .. } = self.handover {
            self.handover = Handover::Idle;
            self.outbox.push((self.ask_resources("all", "done"), true));
        }
    }

    /// A peer was fenced or declared dead: what it held is gone; a hand-over with it ends.
    pub fn peer_gone(&mut self, name: &str) {
        if let Some(p) = self.peers.get_mut(name) {
            p.resources = Some((0, true));
        }
        match &self.handover {
            Handover::Taking { from } if from == name => self.handover = Handover::Idle,
            Handover::Giving { to: Some(to), .. } if to == name => self.handover = Handover::Idle,
            _ => {}
        }
    }

    /// A Heartbeat peer's sequence jumped from `last` to `seq`: the messages between were
    /// lost; ask for them (Heartbeat resends from its history).
    pub fn gap(&mut self, src: &str, last: u64, seq: u64, now: Instant) {
        if !self.is_heartbeat(src) || seq <= last + 1 {
            return;
        }
        let first = (last + 1).max(seq.saturating_sub(MAX_MISSING));
        let peer = self.peers.entry(src.to_string()).or_default();
        for lost in first..seq {
            peer.missing.insert(lost, (1, now + REXMIT_EVERY));
        }
        self.rexmit.requested += seq - first;
        self.outbox
            .push((rexmit_request(src, first, seq - 1), false));
    }

    /// Whether `seq` of `src` is one we asked for (it is then no longer missing): such a
    /// message is taken although older than the last one.
    pub fn resent(&mut self, src: &str, seq: u64) -> bool {
        let asked = self
            .peers
            .get_mut(src)
            .is_some_and(|p| p.missing.remove(&seq).is_some());
        self.rexmit.recovered += u64::from(asked);
        asked
    }

    /// Asks again for what is still missing (every 250 ms, up to 20 times).
    pub fn ask_again(&mut self, now: Instant) {
        let mut requests = vec![];
        let mut abandoned = 0;
        for (name, peer) in &mut self.peers {
            peer.missing.retain(|seq, (tries, next)| {
                if now < *next {
                    return true;
                }
                if *tries >= REXMIT_TRIES {
                    abandoned += 1;
                    return false;
                }
                *tries += 1;
                *next = now + REXMIT_EVERY;
                requests.push(rexmit_request(name, *seq, *seq));
                true
            });
        }
        self.rexmit.requested += requests.len() as u64;
        self.rexmit.abandoned += abandoned;
        self.outbox.extend(requests.into_iter().map(|m| (m, false)));
    }

    /// When [`ask_again`](Self::ask_again) next has something to do.
    pub fn next_request(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|p| p.missing.values().map(|(_, next)| *next))
            .min()
    }

    /// Acknowledges a Heartbeat peer's sequenced message when Heartbeat expects it.
    pub fn acknowledge(&mut self, src: &str, seq: u64) {
        // Like Heartbeat, never past a gap: an acknowledged message is dropped from the
        // sender's history, and a lost one could no longer be resent.
        let gap = self.peers.get(src).is_some_and(|p| !p.missing.is_empty());
        if self.is_heartbeat(src) && seq.is_multiple_of(ACK_EVERY) && !gap {
            let mut m = Message::default();
            m.push("t", "NS_ackmsg");
            m.push("dest", src);
            m.push("ackseq", format!("{seq:x}"));
            self.outbox.push((m, false));
        }
    }

    /// An unsequenced control message (`NS_…`) from `src`: a retransmission request
    /// addressed to us is answered from the history.
    pub fn control(&mut self, src: &str, msg: &Message) -> Effect {
        if !self.kinds.contains_key(src) || msg.get("dest").is_some_and(|d| d != self.me) {
            return Effect::None;
        }
        if msg.get("t") == Some("NS_nak_rexmit") {
            // It no longer has what we asked for: stop asking.
            if let (Some(peer), Some(seq)) = (self.peers.get_mut(src), msg.get_hex("firstseq")) {
                self.rexmit.abandoned += u64::from(peer.missing.remove(&seq).is_some());
            }
            return Effect::None;
        }
        if msg.get("t") != Some("NS_rexmit") {
            return Effect::None;
        }
        // Heartbeat writes these two in decimal (and reads them with atoi).
        let num = |name: &str| msg.get(name).and_then(|v| v.parse::<u64>().ok());
        match (num("firstseq"), num("lastseq")) {
            (Some(first), Some(last)) if first >= 1 && first <= last && last - first < 256 => {
                Effect::Retransmit((first..=last).collect())
            }
            _ => Effect::None,
        }
    }
}

/// `NS_nak_rexmit` to `to` for its request of `seq`, no longer in this node's history.
pub fn nak_rexmit(to: &str, seq: u64) -> Message {
    let mut m = Message::default();
    m.push("t", "NS_nak_rexmit");
    m.push("firstseq", format!("{seq:x}"));
    m.push("dest", to);
    m.push("info", "seqno not found");
    m
}

/// `t=NS_rexmit` for `first..=last` of node `to` (decimal, as Heartbeat writes them).
fn rexmit_request(to: &str, first: u64, last: u64) -> Message {
    let mut m = Message::default();
    m.push("t", "NS_rexmit");
    m.push("dest", to);
    m.push("firstseq", first.to_string());
    m.push("lastseq", last.to_string());
    m
}

#[cfg(test)]
mod tests;
