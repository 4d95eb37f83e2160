//! A resource group: who should run it.
//!
//! The decision is a pure function of what this node and its peers say ([`decide`]), so
//! that Heartbeat's v1 rules are unit-tested on their own:
//! - a group runs on at most one live node; it goes to the preferred node when nobody holds
//!   it, and to another live node when the preferred node is dead, failed or in standby;
//! - at start-up nobody acquires until every peer is known (heard from, or dead after
//!   initdead), so that two nodes booting together do not both start the group;
//! - `auto_failback on`, and `legacy` (Heartbeat 3's default, also when the line is absent):
//!   a holder that is not the preferred node gives the group back when the preferred node is
//!   up and available; `off`: it keeps it;
//! - if two nodes hold it (a healed partition), the one that is not preferred releases.

use super::config::AutoFailback;

/// This node's group state, as advertised in its heartbeats (`rsc=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Not running, available to take it.
    None,
    /// Starting it.
    Starting,
    /// Running it.
    Held,
    /// Stopping it.
    Stopping,
    /// A start or stop failed here: this node will not take it.
    Failed,
    /// Operator standby: will not take it.
    Standby,
    /// A stop failed here: the group may still run (in part) on this node. Peers must fence
    /// this node before they take the group over.
    Unclean,
    /// Start-up: stopping whatever a previous run of the daemon left running here (a kill -9
    /// leaves the VIP and mounts behind) before taking part. This node does not claim the
    /// group, so a holder elsewhere keeps it; but parts of it may still run here until the
    /// stops are done, so nobody starts it meanwhile, and a node that dies cleaning up is
    /// fenced like one that died holding it.
    Cleaning,
}

impl Holding {
    /// The wire word.
    pub fn word(self) -> &'static str {
        match self {
            Holding::None => "none",
            Holding::Cleaning => "cleaning",
            Holding::Starting => "starting",
            Holding::Held => "held",
            Holding::Stopping => "stopping",
            Holding::Failed => "failed",
            Holding::Standby => "standby",
            Holding::Unclean => "unclean",
        }
    }

    /// From the wire word; unknown words count as holding (the safe assumption).
    pub fn from_word(word: &str) -> Holding {
        match word {
            "none" => Holding::None,
            "failed" => Holding::Failed,
            "standby" => Holding::Standby,
            "stopping" => Holding::Stopping,
            "starting" => Holding::Starting,
            "unclean" => Holding::Unclean,
            "cleaning" => Holding::Cleaning,
            _ => Holding::Held,
        }
    }

    /// Running or about to: another node must not start the group.
    pub fn occupies(self) -> bool {
        matches!(
            self,
            Holding::Starting | Holding::Held | Holding::Stopping | Holding::Unclean
        )
    }
}

/// A peer as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView<'a> {
    /// Node name.
    pub name: &'a str,
    /// Heard from and not dead.
    pub alive: bool,
    /// Not heard from yet (within initdead).
    pub unknown: bool,
    /// What it advertises.
    pub holding: Holding,
    /// It asked for the group (`hb-monitor takeover`).
    pub wants: bool,
}

/// What this node should do about the group now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it.
    Acquire,
    /// Stop it.
    Release,
    /// Nothing.
    Wait,
}

/// Heartbeat's v1 rules (see the module documentation).
pub fn decide(
    me: &str,
    preferred: &str,
    mine: Holding,
    i_want: bool,
    peers: &[PeerView],
    failback: AutoFailback,
) -> Decision {
    let live: Vec<&PeerView> = peers.iter().filter(|p| p.alive).collect();
    let preferred_is_me = me == preferred;
    match mine {
        Holding::Held => {
            // An operator's takeover on another node: hand it over.
            if !i_want && live.iter().any(|p| p.wants && p.holding == Holding::None) {
                return Decision::Release;
            }
            // Two holders after a partition heals: the non-preferred one yields.
            if live.iter().any(|p| p.holding.occupies()) && !preferred_is_me {
                return Decision::Release;
            }
            let preferred_ready = live
                .iter()
                .any(|p| p.name == preferred && p.holding == Holding::None);
            if failback != AutoFailback::Off && !preferred_is_me && preferred_ready {
                return Decision::Release;
            }
            Decision::Wait
        }
        Holding::None => {
            if peers.iter().any(|p| p.unknown) {
                return Decision::Wait; // start-up: not everyone is known yet
            }
            // Running elsewhere, or what a restarted daemon's predecessor left there is
            // still being stopped.
            if live
                .iter()
                .any(|p| p.holding.occupies() || p.holding == Holding::Cleaning)
            {
                return Decision::Wait;
            }
            // An operator's takeover elsewhere: the group goes there, not back here (else the
            // preferred node, having just released it, would race the requester for it).
            if !i_want && live.iter().any(|p| p.wants && p.holding == Holding::None) {
                return Decision::Wait;
            }
            // Takeovers asked on several nodes: one of them goes first, the same one as each
            // sees it (the preferred node, else the first by name); the others' wants stay
            // and are served after it.
            if i_want {
                let first = live
                    .iter()
                    .filter(|p| p.wants && p.holding == Holding::None)
                    .map(|p| p.name)
                    .chain(std::iter::once(me))
                    .min_by_key(|name| (*name != preferred, *name))
                    .unwrap_or(me);
                return if first == me {
                    Decision::Acquire
                } else {
                    Decision::Wait
                };
            }
            if preferred_is_me {
                return Decision::Acquire;
            }
            // The preferred node cannot take it: dead, failed, standby or absent.
            let preferred_available = live
                .iter()
                .any(|p| p.name == preferred && p.holding == Holding::None);
            if preferred_available {
                return Decision::Wait;
            }
            // Among the other available nodes, the first by name takes it, so that three
            // nodes do not all start.
            let first = live
                .iter()
                .filter(|p| p.holding == Holding::None && p.name != preferred)
                .map(|p| p.name)
                .chain(std::iter::once(me))
                .min()
                .unwrap_or(me);
            if first == me {
                Decision::Acquire
            } else {
                Decision::Wait
            }
        }
        Holding::Starting
        | Holding::Stopping
        | Holding::Failed
        | Holding::Standby
        | Holding::Unclean
        | Holding::Cleaning => Decision::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, alive: bool, holding: Holding) -> PeerView<'_> {
        PeerView {
            name,
            alive,
            unknown: false,
            holding,
            wants: false,
        }
    }

    #[test]
    fn after_releasing_to_a_takeover_the_preferred_node_does_not_race_the_requester() {
        let mut wanting = peer("n2", true, Holding::None);
        wanting.wants = true;
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::None,
                false,
                &[wanting],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn the_preferred_node_acquires_when_nobody_holds() {
        let peers = [peer("n2", true, Holding::None)];
        assert_eq!(
            decide("n1", "n1", Holding::None, false, &peers, AutoFailback::Off),
            Decision::Acquire
        );
        let peers = [peer("n1", true, Holding::None)];
        assert_eq!(
            decide("n2", "n1", Holding::None, false, &peers, AutoFailback::Off),
            Decision::Wait
        );
    }

    #[test]
    fn nobody_acquires_while_a_peer_is_unknown() {
        let mut p = peer("n2", false, Holding::None);
        p.unknown = true;
        assert_eq!(
            decide("n1", "n1", Holding::None, false, &[p], AutoFailback::Off),
            Decision::Wait
        );
    }

    #[test]
    fn takeover_when_the_holder_dies_or_cannot_run_it() {
        for holder in [
            peer("n1", false, Holding::Held),
            peer("n1", true, Holding::Failed),
            peer("n1", true, Holding::Standby),
        ] {
            assert_eq!(
                decide(
                    "n2",
                    "n1",
                    Holding::None,
                    false,
                    std::slice::from_ref(&holder),
                    AutoFailback::Off
                ),
                Decision::Acquire,
                "{holder:?}"
            );
        }
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                false,
                &[peer("n1", true, Holding::Held)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                false,
                &[peer("n1", true, Holding::Stopping)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn auto_failback_gives_the_group_back_when_on_or_legacy() {
        let back = [peer("n1", true, Holding::None)];
        assert_eq!(
            decide("n2", "n1", Holding::Held, false, &back, AutoFailback::On),
            Decision::Release
        );
        assert_eq!(
            decide("n2", "n1", Holding::Held, false, &back, AutoFailback::Off),
            Decision::Wait
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::Held,
                false,
                &back,
                AutoFailback::Legacy
            ),
            Decision::Release
        );
        // The preferred node holding it keeps it.
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::Held,
                false,
                &[peer("n2", true, Holding::None)],
                AutoFailback::On
            ),
            Decision::Wait
        );
    }

    #[test]
    fn two_holders_after_a_partition_the_non_preferred_releases() {
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::Held,
                false,
                &[peer("n1", true, Holding::Held)],
                AutoFailback::Off
            ),
            Decision::Release
        );
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::Held,
                false,
                &[peer("n2", true, Holding::Held)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn three_nodes_only_one_takes_over() {
        let peers_of_n2 = [
            peer("n1", false, Holding::Held),
            peer("n3", true, Holding::None),
        ];
        let peers_of_n3 = [
            peer("n1", false, Holding::Held),
            peer("n2", true, Holding::None),
        ];
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                false,
                &peers_of_n2,
                AutoFailback::Off
            ),
            Decision::Acquire
        );
        assert_eq!(
            decide(
                "n3",
                "n1",
                Holding::None,
                false,
                &peers_of_n3,
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn takeover_moves_the_group_to_the_node_that_asks() {
        let mut asking = peer("n2", true, Holding::None);
        asking.wants = true;
        assert_eq!(
            decide(
                "n1",
                "n1",
                Holding::Held,
                false,
                &[asking],
                AutoFailback::Off
            ),
            Decision::Release
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                true,
                &[peer("n1", true, Holding::None)],
                AutoFailback::Off
            ),
            Decision::Acquire
        );
        assert_eq!(
            decide(
                "n2",
                "n1",
                Holding::None,
                true,
                &[peer("n1", true, Holding::Stopping)],
                AutoFailback::Off
            ),
            Decision::Wait
        );
    }

    #[test]
    fn holding_words_round_trip_and_unknown_words_are_safe() {
        for h in [
            Holding::None,
            Holding::Starting,
            Holding::Held,
            Holding::Stopping,
            Holding::Failed,
            Holding::Standby,
        ] {
            assert_eq!(Holding::from_word(h.word()), h);
        }
        assert!(Holding::from_word("garbage").occupies());
    }
}
