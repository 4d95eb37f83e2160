//! Who is alive: each peer's heartbeats per medium, on a monotonic clock, with replay
//! protection. Pure logic (the daemon feeds it messages and the time), so every rule is
//! unit-tested without sockets or sleeps.
//!
//! Rules:
//! - A peer is dead after `deadtime` without a heartbeat on any medium (`initdead` until the
//!   first one arrives); a heartbeat later than `warntime` is logged as late.
//! - A medium silent for `deadtime` is down: a warning, never a failover on its own.
//! - Replays: every accepted message carries the sender's generation `hg` (bumped at every
//!   daemon start) and a sequence `seq`; a generation older than the last one seen, or a
//!   sequence not above the last one of the same generation, is dropped and counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A peer's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not heard from since we started (within `initdead`).
    Unknown,
    /// Heartbeats arrive.
    Up,
    /// Silent for longer than its dead time.
    Dead,
}

/// One peer's record.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Liveness.
    pub state: PeerState,
    /// Last heartbeat on any medium.
    pub last_heard: Option<Instant>,
    /// Last heartbeat per medium name.
    pub media: BTreeMap<String, Instant>,
    /// Media currently reported down.
    pub media_down: Vec<String>,
    /// Sender generation of the last accepted message.
    pub generation: Option<u64>,
    /// Sequence of the last accepted message in that generation.
    pub seq: Option<u64>,
    /// The peer's own status field (`st`), e.g. `active`.
    pub status: String,
    /// Fields of the last accepted message the daemon cares about (resource hold etc.).
    pub last_fields: BTreeMap<String, String>,
    /// The generation the peer had when it was fenced: nothing of it counts any more (late
    /// packets of a node that is off); it rejoins with a new generation (a restart).
    pub fenced_generation: Option<u64>,
    /// Until its first message in this run: the last generation and sequence accepted from
    /// it before this daemon restarted ([`Membership::set_replay_floor`]). Nothing at or
    /// below it is new.
    pub replay_floor: Option<(u64, u64)>,
}

/// Drop counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Accepted messages.
    pub accepted: u64,
    /// Replayed or reordered-old messages dropped (copies of a recent heartbeat on another
    /// medium are not counted: they are how each medium's health is known).
    pub replayed: u64,
    /// Messages from names not in `ha.cf`.
    pub unknown_node: u64,
    /// Messages missing src/hg/seq or with unreadable numbers.
    pub incomplete: u64,
}

/// A change worth logging or acting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// First heartbeat from a peer, or heartbeats again after it was dead.
    PeerUp(String),
    /// A peer restarted (new generation).
    PeerRestarted(String),
    /// A peer is dead.
    PeerDead(String),
    /// A heartbeat arrived later than warntime.
    Late(String, Duration),
    /// A medium of a peer went silent.
    MediumDown(String, String),
    /// A medium of a peer works again.
    MediumUp(String, String),
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// From our own node (looped-back broadcast/multicast).
    Own,
    /// From a node not in `ha.cf`.
    UnknownNode,
    /// Missing or unreadable `src`/`hg`/`seq`.
    Incomplete,
    /// Replay or reordered-old.
    Replayed,
    /// From the generation of a node that was fenced.
    Fenced,
}

/// The membership table of one node.
#[derive(Debug)]
pub struct Membership {
    me: String,
    started: Instant,
    deadtime: Duration,
    warntime: Duration,
    initdead: Duration,
    /// Peers by name.
    pub peers: BTreeMap<String, Peer>,
    /// Drop counters.
    pub counters: Counters,
}

/// A received message's text fields, as membership reads them: the decoded wire message in
/// the daemon, a map in tests.
pub trait Fields {
    /// The text value of `name`.
    fn field(&self, name: &str) -> Option<&str>;
    /// Every text field, for [`Peer::last_fields`].
    fn all(&self) -> BTreeMap<String, String>;
}

impl Fields for BTreeMap<String, String> {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
    fn all(&self) -> BTreeMap<String, String> {
        self.clone()
    }
}

impl Fields for super::proto::Message {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
    fn all(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter_map(|(k, v)| match v {
                super::proto::Value::Text(t) => Some((k.clone(), t.clone())),
                super::proto::Value::Binary(_) => None,
            })
            .collect()
    }
}

/// The fields whose change the daemon acts on; the others (`seq`, `ts`, …) change with
/// every heartbeat, so `last_fields` is rebuilt only when one of these changes.
const STATE_FIELDS: &[&str] = &[
    "st", "rsc", "want", "wantid", "seen", "dt", "protocol", "ping",
];

/// How far back a sequence number counts as a copy from another medium rather than a replay.
const RECENT: u64 = 8;

impl Membership {
    /// The table for node `me` among `nodes`.
    pub fn new(
        me: &str,
        nodes: &[String],
        deadtime: Duration,
        warntime: Duration,
        initdead: Duration,
        now: Instant,
    ) -> Membership {
        let peers = nodes
            .iter()
            .filter(|n| *n != me)
            .map(|n| {
                (
                    n.clone(),
                    Peer {
                        state: PeerState::Unknown,
                        last_heard: None,
                        media: BTreeMap::new(),
                        media_down: vec![],
                        generation: None,
                        seq: None,
                        status: String::new(),
                        last_fields: BTreeMap::new(),
                        fenced_generation: None,
                        replay_floor: None,
                    },
                )
            })
            .collect();
        Membership {
            me: me.to_string(),
            started: now,
            deadtime,
            warntime,
            initdead,
            peers,
            counters: Counters::default(),
        }
    }

    /// Takes an authenticated message received on `medium`. `fields` are its text fields.
    pub fn receive(
        &mut self,
        fields: &impl Fields,
        medium: &str,
        now: Instant,
    ) -> Result<Vec<Event>, Dropped> {
        let Some(src) = fields.field("src") else {
            self.counters.incomplete += 1;
            return Err(Dropped::Incomplete);
        };
        if src == self.me {
            return Err(Dropped::Own);
        }
        let (Some(generation), Some(seq)) = (
            fields.field("hg").and_then(super::proto::parse_hex),
            fields.field("seq").and_then(super::proto::parse_hex),
        ) else {
            self.counters.incomplete += 1;
            return Err(Dropped::Incomplete);
        };
        let warntime = self.warntime;
        let Some(peer) = self.peers.get_mut(src) else {
            self.counters.unknown_node += 1;
            return Err(Dropped::UnknownNode);
        };
        if peer.fenced_generation.is_some_and(|g| generation <= g) {
            return Err(Dropped::Fenced);
        }
        if peer.generation.is_none()
            && peer
                .replay_floor
                .is_some_and(|floor| (generation, seq) <= floor)
        {
            self.counters.replayed += 1;
            return Err(Dropped::Replayed);
        }
        let mut events = Vec::new();
        match (peer.generation, peer.seq) {
            (Some(g), _) if generation < g => {
                self.counters.replayed += 1;
                return Err(Dropped::Replayed);
            }
            // The same heartbeat arriving on another medium (or one of the last few, slightly
            // reordered between media): it proves that medium works, nothing more.
            (Some(g), Some(s)) if generation == g && seq <= s && s - seq < RECENT => {
                if let Some(pos) = peer.media_down.iter().position(|m| m == medium) {
                    peer.media_down.remove(pos);
                    events.push(Event::MediumUp(src.to_string(), medium.to_string()));
                }
                note_medium(&mut peer.media, medium, now);
                return Ok(events);
            }
            (Some(g), Some(s)) if generation == g && seq <= s => {
                self.counters.replayed += 1;
                return Err(Dropped::Replayed);
            }
            (Some(g), _) if generation > g => events.push(Event::PeerRestarted(src.to_string())),
            _ => {}
        }
        peer.generation = Some(generation);
        peer.seq = Some(seq);
        if let Some(last) = peer.last_heard {
            let gap = now.saturating_duration_since(last);
            if gap > warntime && peer.state == PeerState::Up {
                events.push(Event::Late(src.to_string(), gap));
            }
        }
        if peer.state != PeerState::Up {
            peer.state = PeerState::Up;
            events.push(Event::PeerUp(src.to_string()));
        }
        if let Some(pos) = peer.media_down.iter().position(|m| m == medium) {
            peer.media_down.remove(pos);
            events.push(Event::MediumUp(src.to_string(), medium.to_string()));
        }
        // Messages read late (and from several media) do not arrive in order: keep the latest.
        peer.last_heard = Some(peer.last_heard.map_or(now, |t| t.max(now)));
        note_medium(&mut peer.media, medium, now);
        if let Some(st) = fields.field("st")
            && peer.status != st
        {
            peer.status = st.to_string();
        }
        if peer.last_fields.is_empty()
            || STATE_FIELDS
                .iter()
                .any(|k| fields.field(k) != peer.last_fields.get(*k).map(String::as_str))
        {
            peer.last_fields = fields.all();
        }
        self.counters.accepted += 1;
        // An orderly shutdown says so (st=dead) after giving up its resources: the peers need
        // not wait deadtime to take over.
        if fields.field("st") == Some("dead") {
            peer.state = PeerState::Dead;
            events.retain(|e| *e != Event::PeerUp(src.to_string()));
            events.push(Event::PeerDead(src.to_string()));
        }
        Ok(events)
    }

    /// The last generation and sequence accepted from `node` before this daemon restarted:
    /// a message at or below it is a replay.
    pub fn set_replay_floor(&mut self, node: &str, generation: u64, seq: u64) {
        if let Some(peer) = self.peers.get_mut(node) {
            peer.replay_floor = Some((generation, seq));
        }
    }

    /// `node` was fenced: dead now, and what its current generation still sends is ignored.
    pub fn mark_fenced(&mut self, node: &str) {
        if let Some(peer) = self.peers.get_mut(node) {
            peer.state = PeerState::Dead;
            peer.fenced_generation = peer.generation;
            // Its last advertisement (held, unclean) no longer describes anything.
            peer.last_fields.remove("rsc");
        }
    }

    /// Applies the passing of time: dead peers and silent media.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let since_start = now.saturating_duration_since(self.started);
        for (name, peer) in &mut self.peers {
            // At the deadline exactly, as next_deadline says: a loop woken then must find the
            // peer dead, or it is woken for the same instant again and again.
            let silent = match peer.last_heard {
                Some(t) => now.saturating_duration_since(t) >= self.deadtime,
                None => since_start >= self.initdead,
            };
            if silent && peer.state != PeerState::Dead {
                peer.state = PeerState::Dead;
                events.push(Event::PeerDead(name.clone()));
            }
            for (medium, last) in &peer.media {
                if now.saturating_duration_since(*last) >= self.deadtime
                    && !peer.media_down.contains(medium)
                {
                    peer.media_down.push(medium.clone());
                    events.push(Event::MediumDown(name.clone(), medium.clone()));
                }
            }
        }
        events
    }

    /// This node did not run for `pause` (the machine, or its hypervisor, stalled it; detected
    /// by the daemon as a wake-up that late): a peer's silence over that time is not evidence
    /// against it, because a stall of the whole machine also stopped the peer's heartbeats
    /// before they were sent (its sender is as late as our reader). Every silence clock is
    /// moved forward by `pause` (never past `now`), so a peer gets what is left of its
    /// deadtime again from the end of the pause. A peer that really died is still declared
    /// dead, `pause` later; corosync does the same ("process pause detected").
    pub fn excuse(&mut self, pause: Duration, now: Instant) {
        let forward = |t: &mut Instant| *t = (*t + pause).min(now);
        forward(&mut self.started);
        for peer in self.peers.values_mut() {
            if let Some(t) = peer.last_heard.as_mut() {
                forward(t);
            }
            peer.media.values_mut().for_each(forward);
        }
    }

    /// When [`tick`](Self::tick) next has something to decide.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        let mut next = now + self.deadtime;
        for peer in self.peers.values() {
            let due = match peer.last_heard {
                Some(t) if peer.state == PeerState::Up => t + self.deadtime,
                None if peer.state == PeerState::Unknown => self.started + self.initdead,
                _ => continue,
            };
            next = next.min(due);
            for last in peer.media.values() {
                let medium_due = *last + self.deadtime;
                if medium_due > now {
                    next = next.min(medium_due);
                }
            }
        }
        next.max(now)
    }
}

/// Records a heartbeat on `medium` (allocating its name only the first time).
fn note_medium(media: &mut BTreeMap<String, Instant>, medium: &str, now: Instant) {
    match media.get_mut(medium) {
        Some(last) => *last = (*last).max(now),
        None => {
            media.insert(medium.to_string(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(src: &str, hg: u64, seq: u64) -> BTreeMap<String, String> {
        [
            ("src", src.to_string()),
            ("hg", format!("{hg:x}")),
            ("seq", format!("{seq:x}")),
            ("st", "active".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn table(now: Instant) -> Membership {
        let nodes = vec!["n1".to_string(), "n2".to_string(), "n3".to_string()];
        Membership::new(
            "n1",
            &nodes,
            Duration::from_millis(300),
            Duration::from_millis(200),
            Duration::from_millis(1000),
            now,
        )
    }

    #[test]
    fn peers_come_up_go_dead_and_come_back() {
        let t0 = Instant::now();
        let mut m = table(t0);
        assert_eq!(m.peers["n2"].state, PeerState::Unknown);
        assert_eq!(
            m.receive(&fields("n2", 1, 1), "eth0", t0).unwrap(),
            vec![Event::PeerUp("n2".into())]
        );
        // initdead applies to a peer never heard from; deadtime to one that was.
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(
            m.tick(t1),
            vec![
                Event::PeerDead("n2".into()),
                Event::MediumDown("n2".into(), "eth0".into())
            ]
        );
        assert_eq!(m.peers["n3"].state, PeerState::Unknown);
        assert_eq!(
            m.tick(t0 + Duration::from_millis(1001)),
            vec![Event::PeerDead("n3".into())]
        );
        let back = m.receive(&fields("n2", 1, 2), "eth0", t1).unwrap();
        assert_eq!(
            back,
            vec![
                Event::PeerUp("n2".into()),
                Event::MediumUp("n2".into(), "eth0".into())
            ]
        );
    }

    #[test]
    fn after_a_restart_nothing_at_or_below_the_floor_counts() {
        let t0 = Instant::now();
        let mut m = table(t0);
        m.set_replay_floor("n2", 5, 20);
        for (hg, seq) in [(5, 20), (5, 19), (5, 1), (4, 99)] {
            assert_eq!(
                m.receive(&fields("n2", hg, seq), "eth0", t0),
                Err(Dropped::Replayed),
                "hg {hg} seq {seq}"
            );
        }
        assert_eq!(m.peers["n2"].state, PeerState::Unknown);
        assert_eq!(m.counters.replayed, 4);
        // The peer itself, still sending: its next heartbeat is above the floor.
        assert_eq!(
            m.receive(&fields("n2", 5, 21), "eth0", t0).unwrap(),
            vec![Event::PeerUp("n2".into())]
        );
        // So is a restarted peer's first one.
        let mut m = table(t0);
        m.set_replay_floor("n2", 5, 20);
        assert!(m.receive(&fields("n2", 6, 1), "eth0", t0).is_ok());
        m.set_replay_floor("n9", 1, 1);
    }

    #[test]
    fn replays_and_old_generations_are_dropped_and_counted() {
        let t0 = Instant::now();
        let mut m = table(t0);
        m.receive(&fields("n2", 5, 20), "eth0", t0).unwrap();
        // The same heartbeat on a second medium only refreshes that medium.
        assert_eq!(m.receive(&fields("n2", 5, 20), "eth1", t0), Ok(vec![]));
        assert!(m.peers["n2"].media.contains_key("eth1"));
        assert_eq!(
            m.receive(&fields("n2", 5, 9), "eth0", t0),
            Err(Dropped::Replayed)
        );
        assert_eq!(
            m.receive(&fields("n2", 4, 99), "eth0", t0),
            Err(Dropped::Replayed)
        );
        assert_eq!(m.counters.replayed, 2);
        // A restart: a newer generation starts its sequence over.
        assert_eq!(
            m.receive(&fields("n2", 6, 1), "eth0", t0).unwrap(),
            vec![Event::PeerRestarted("n2".into())]
        );
    }

    #[test]
    fn own_unknown_and_incomplete_messages_are_dropped() {
        let t0 = Instant::now();
        let mut m = table(t0);
        assert_eq!(
            m.receive(&fields("n1", 1, 1), "eth0", t0),
            Err(Dropped::Own)
        );
        assert_eq!(
            m.receive(&fields("intruder", 1, 1), "eth0", t0),
            Err(Dropped::UnknownNode)
        );
        let mut no_seq = fields("n2", 1, 1);
        no_seq.remove("seq");
        assert_eq!(m.receive(&no_seq, "eth0", t0), Err(Dropped::Incomplete));
        let mut bad_hg = fields("n2", 1, 1);
        bad_hg.insert("hg".into(), "zz".into());
        assert_eq!(m.receive(&bad_hg, "eth0", t0), Err(Dropped::Incomplete));
        assert_eq!((m.counters.unknown_node, m.counters.incomplete), (1, 2));
    }

    #[test]
    fn one_silent_medium_is_a_warning_not_a_death() {
        let t0 = Instant::now();
        let mut m = table(t0);
        m.receive(&fields("n2", 1, 1), "eth0", t0).unwrap();
        m.receive(&fields("n2", 1, 2), "eth1", t0).unwrap();
        let mut events = vec![];
        for (seq, step) in (3..).zip(1..=5) {
            let t = t0 + Duration::from_millis(100 * step);
            m.receive(&fields("n2", 1, seq), "eth0", t).unwrap();
            events.extend(m.tick(t));
        }
        assert_eq!(events, vec![Event::MediumDown("n2".into(), "eth1".into())]);
        assert_eq!(m.peers["n2"].state, PeerState::Up);
    }

    #[test]
    fn an_orderly_shutdown_is_dead_at_once() {
        let t0 = Instant::now();
        let mut m = table(t0);
        m.receive(&fields("n2", 1, 1), "eth0", t0).unwrap();
        let mut leaving = fields("n2", 1, 2);
        leaving.insert("st".into(), "dead".into());
        assert_eq!(
            m.receive(&leaving, "eth0", t0).unwrap(),
            vec![Event::PeerDead("n2".into())]
        );
        assert_eq!(m.peers["n2"].state, PeerState::Dead);
        assert_eq!(
            m.receive(&fields("n2", 2, 1), "eth0", t0).unwrap(),
            vec![
                Event::PeerRestarted("n2".into()),
                Event::PeerUp("n2".into())
            ]
        );
    }

    #[test]
    fn late_heartbeats_are_reported() {
        let t0 = Instant::now();
        let mut m = table(t0);
        m.receive(&fields("n2", 1, 1), "eth0", t0).unwrap();
        let late = m
            .receive(&fields("n2", 1, 2), "eth0", t0 + Duration::from_millis(250))
            .unwrap();
        assert_eq!(
            late,
            vec![Event::Late("n2".into(), Duration::from_millis(250))]
        );
    }

    #[test]
    fn a_pause_of_this_node_is_not_held_against_its_peers() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut m = table(t0);
        m.receive(&fields("n2", 1, 1), "eth0", t0).unwrap();
        // This node stalled for 200 ms and woke at t0 + 350: n2's silence is 150 ms, not 350.
        m.excuse(ms(200), t0 + ms(350));
        assert_eq!(m.tick(t0 + ms(350)), vec![]);
        assert_eq!(m.next_deadline(t0 + ms(350)), t0 + ms(500));
        // A peer that stays silent is still dead, the pause later; n3, never heard, gets its
        // initdead from the pause's end too.
        assert_eq!(m.tick(t0 + ms(499)), vec![]);
        assert_eq!(
            m.tick(t0 + ms(501)),
            vec![
                Event::PeerDead("n2".into()),
                Event::MediumDown("n2".into(), "eth0".into())
            ]
        );
        assert_eq!(m.tick(t0 + ms(1199)), vec![]);
        assert_eq!(m.tick(t0 + ms(1201)), vec![Event::PeerDead("n3".into())]);
    }

    #[test]
    fn an_excuse_never_moves_a_clock_past_now() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut m = table(t0);
        m.receive(&fields("n2", 1, 1), "eth0", t0 + ms(100))
            .unwrap();
        // A pause longer than the silence: n2 counts as heard now, not in the future.
        m.excuse(ms(500), t0 + ms(150));
        assert_eq!(m.peers["n2"].last_heard, Some(t0 + ms(150)));
        assert_eq!(m.tick(t0 + ms(449)), vec![]);
        assert_eq!(m.tick(t0 + ms(450)).len(), 2);
    }

    #[test]
    fn the_next_deadline_is_the_earliest_decision() {
        let t0 = Instant::now();
        let mut m = table(t0);
        m.receive(&fields("n2", 1, 1), "eth0", t0).unwrap();
        assert_eq!(m.next_deadline(t0), t0 + Duration::from_millis(300));
    }
}
