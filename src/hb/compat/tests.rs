use super::*;

/// A sequence number for messages whose number does not matter to the test.
const SEQ: u64 = 1;

fn msg(fields: &[(&str, &str)]) -> Message {
    Message::new(fields)
}

fn hb_status() -> Message {
    msg(&[("t", "status"), ("st", "active")])
}

fn nodes() -> Vec<String> {
    vec!["n1".into(), "n2".into()]
}

fn types(c: &Compat) -> Vec<String> {
    c.outbox
        .iter()
        .map(|(m, _)| {
            let mut s = m.get("t").unwrap_or("").to_string();
            for f in ["rsc_hold", "isstable", "info"] {
                if let Some(v) = m.get(f) {
                    s.push_str(&format!(" {f}={v}"));
                }
            }
            s
        })
        .collect()
}

#[test]
fn a_peer_without_rsc_is_heartbeat_and_is_told_who_we_are() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    assert_eq!(c.holding_of("n1", 0, false), None);
    let e = c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    assert_eq!(e, Effect::Reevaluate);
    assert!(c.is_heartbeat("n1"));
    assert_eq!(
        types(&c),
        ["starting", "resource rsc_hold=none isstable=1"],
        "first contact: starting, then our state"
    );
    // Until it answers, it may hold anything.
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::Starting));
    // Unless we hold it: our answer says so, it will not start it.
    assert_eq!(c.holding_of("n1", 0, true), Some(Holding::None));
    // An hb-monitor peer is not one.
    let mut d = Compat::new("n2", &nodes(), &["n1".to_string()]);
    d.observe(
        "n1",
        &msg(&[("t", "status"), ("rsc", "none")]),
        SEQ,
        false,
        &[Holding::None],
        true,
    );
    assert!(!d.is_heartbeat("n1") && d.outbox.is_empty());
}

#[test]
fn rsc_hold_means_the_group_relative_to_the_sender() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    let res = |hold: &str, stable: &str| {
        msg(&[
            ("t", "resource"),
            ("rsc_hold", hold),
            ("rtype", "full"),
            ("isstable", stable),
        ])
    };
    // n1 is the preferred node: "local" is the group.
    c.observe("n1", &res("local", "1"), SEQ, false, &[Holding::None], true);
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::Held));
    c.observe(
        "n1",
        &res("foreign", "1"),
        SEQ,
        false,
        &[Holding::None],
        true,
    );
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::None));
    c.observe("n1", &res("none", "0"), SEQ, false, &[Holding::None], true);
    assert_eq!(
        c.holding_of("n1", 0, false),
        Some(Holding::None),
        "never held: nothing to stop"
    );
    c.observe("n1", &res("local", "1"), SEQ, false, &[Holding::None], true);
    c.observe("n1", &res("none", "0"), SEQ, false, &[Holding::None], true);
    assert_eq!(
        c.holding_of("n1", 0, false),
        Some(Holding::Stopping),
        "held: stopping"
    );
    c.observe("n1", &res("none", "1"), SEQ, false, &[Holding::None], true);
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::None));
    // Seen from n1 (preferred), n2's group is "foreign".
    let mut p = Compat::new("n1", &nodes(), &["n1".to_string()]);
    p.observe("n2", &hb_status(), SEQ, false, &[Holding::None], true);
    p.observe("n2", &res("local", "1"), SEQ, false, &[Holding::None], true);
    assert_eq!(
        p.holding_of("n2", 0, false),
        Some(Holding::None),
        "vacuous local"
    );
    p.observe("n2", &res("all", "1"), SEQ, false, &[Holding::None], true);
    assert_eq!(p.holding_of("n2", 0, false), Some(Holding::Held));
}

#[test]
fn we_advertise_like_heartbeat_and_only_on_change() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    c.outbox.clear();
    c.advertise(&[Holding::None]);
    assert!(c.outbox.is_empty());
    c.advertise(&[Holding::Starting]);
    c.advertise(&[Holding::Held]);
    assert_eq!(
        types(&c),
        [
            "resource rsc_hold=all isstable=0",
            "resource rsc_hold=all isstable=1"
        ]
    );
    // Its starting is answered, whatever was said before.
    c.outbox.clear();
    c.observe(
        "n1",
        &msg(&[("t", "starting")]),
        SEQ,
        false,
        &[Holding::Held],
        false,
    );
    assert_eq!(types(&c), ["resource rsc_hold=all isstable=1"]);
}

#[test]
fn hb_standby_on_the_heartbeat_node_gives_us_the_group() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    let res = msg(&[
        ("t", "resource"),
        ("rsc_hold", "local"),
        ("rtype", "full"),
        ("isstable", "1"),
    ]);
    c.observe("n1", &res, SEQ, false, &[Holding::None], true);
    c.outbox.clear();
    let ask = |info: &str| msg(&[("t", "ask_resources"), ("rsc_hold", "all"), ("info", info)]);
    c.observe("n1", &ask("me"), SEQ, false, &[Holding::None], true);
    assert_eq!(types(&c), ["ask_resources rsc_hold=all info=other"]);
    let standby = msg(&[
        ("t", "resource"),
        ("rsc_hold", "none"),
        ("rtype", "full"),
        ("isstable", "0"),
        ("info", "standby"),
    ]);
    c.observe("n1", &standby, SEQ, false, &[Holding::None], true);
    assert_eq!(
        c.holding_of("n1", 0, false),
        Some(Holding::Stopping),
        "still stopping"
    );
    c.observe("n1", &ask("done"), SEQ, false, &[Holding::None], true);
    assert_eq!(
        c.holding_of("n1", 0, false),
        Some(Holding::Standby),
        "ours to take"
    );
    c.outbox.clear();
    c.started();
    assert_eq!(types(&c), ["ask_resources rsc_hold=all info=done"]);
    assert_eq!(c.handover, Handover::Idle);
    // Later it takes the group back (our standby): it holds it again, not aside any more.
    c.observe(
        "n1",
        &msg(&[
            ("t", "resource"),
            ("rsc_hold", "all"),
            ("rtype", "full"),
            ("isstable", "1"),
        ]),
        SEQ,
        false,
        &[Holding::Standby],
        false,
    );
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::Held));
    // A node that cannot take the group does not answer (Heartbeat gives up after 10 s).
    let mut busy = Compat::new("n2", &nodes(), &["n1".to_string()]);
    busy.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    busy.outbox.clear();
    busy.observe("n1", &ask("me"), SEQ, false, &[Holding::Standby], false);
    assert!(busy.outbox.is_empty());
}

#[test]
fn our_standby_asks_the_heartbeat_peer_first() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::Held], false);
    c.outbox.clear();
    let t0 = Instant::now();
    assert!(!c.may_release(t0, true), "ask first");
    assert_eq!(types(&c), ["ask_resources rsc_hold=all info=me"]);
    assert!(!c.may_release(t0, true), "asked once");
    assert_eq!(c.outbox.len(), 1);
    let ask = |info: &str| msg(&[("t", "ask_resources"), ("rsc_hold", "all"), ("info", info)]);
    c.observe("n1", &ask("other"), SEQ, false, &[Holding::Held], false);
    assert!(c.may_release(t0, true));
    c.outbox.clear();
    c.stopped();
    assert_eq!(types(&c), ["ask_resources rsc_hold=all info=done"]);
    c.observe("n1", &ask("done"), SEQ, false, &[Holding::Standby], false);
    assert_eq!(c.handover, Handover::Idle);
    // Unanswered: given up after Heartbeat's 10 s, and asked again later.
    let mut d = Compat::new("n2", &nodes(), &["n1".to_string()]);
    d.observe("n1", &hb_status(), SEQ, false, &[Holding::Held], false);
    assert!(!d.may_release(t0, true));
    let late = t0 + STANDBY_ANSWER + Duration::from_millis(1);
    assert!(d.giving_expired(late));
    assert!(!d.may_release(late, true));
    assert_eq!(d.handover, Handover::Idle);
    // Without a Heartbeat peer nothing is asked.
    let mut e = Compat::new("n2", &nodes(), &["n1".to_string()]);
    assert!(e.may_release(t0, false));
    assert!(e.outbox.is_empty());
}

#[test]
fn shutdone_steps_aside_and_a_restart_forgets() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    c.observe(
        "n1",
        &msg(&[
            ("t", "resource"),
            ("rsc_hold", "local"),
            ("rtype", "full"),
            ("isstable", "1"),
        ]),
        SEQ,
        false,
        &[Holding::None],
        true,
    );
    c.observe(
        "n1",
        &msg(&[
            ("t", "resource"),
            ("rsc_hold", "none"),
            ("rtype", "full"),
            ("isstable", "0"),
            ("info", "shutdown"),
        ]),
        SEQ,
        false,
        &[Holding::None],
        true,
    );
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::Stopping));
    c.observe(
        "n1",
        &msg(&[("t", "shutdone"), ("st", "dead")]),
        SEQ,
        false,
        &[Holding::None],
        true,
    );
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::Standby));
    c.observe("n1", &hb_status(), SEQ, true, &[Holding::Held], false);
    assert_eq!(
        c.holding_of("n1", 0, false),
        Some(Holding::Starting),
        "restarted: unknown again"
    );
}

#[test]
fn acks_and_retransmission_requests() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    c.outbox.clear();
    c.acknowledge("n1", 0x1f);
    assert!(c.outbox.is_empty());
    c.acknowledge("n1", 0x1e);
    let (ack, sequenced) = &c.outbox[0];
    assert!(!sequenced);
    assert_eq!(ack.get("t"), Some("NS_ackmsg"));
    assert_eq!(ack.get("dest"), Some("n1"));
    assert_eq!(ack.get("ackseq"), Some("1e"));
    let rexmit = |first: &str, last: &str, dest: &str| {
        msg(&[
            ("t", "NS_rexmit"),
            ("firstseq", first),
            ("lastseq", last),
            ("dest", dest),
        ])
    };
    assert_eq!(
        c.control("n1", &rexmit("12", "14", "n2")),
        Effect::Retransmit(vec![12, 13, 14])
    );
    assert_eq!(c.control("n1", &rexmit("12", "14", "n3")), Effect::None);
    assert_eq!(c.control("n1", &rexmit("14", "12", "n2")), Effect::None);
    assert_eq!(c.control("n1", &rexmit("1", "100000", "n2")), Effect::None);
    assert_eq!(c.control("x", &rexmit("1", "2", "n2")), Effect::None);
}

#[test]
fn a_starting_heartbeat_node_gets_the_node_list() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe(
        "n1",
        &msg(&[("t", "reqnodes"), ("dest", "n2")]),
        SEQ,
        false,
        &[Holding::None],
        true,
    );
    let (m, sequenced) = &c.outbox[0];
    assert!(sequenced);
    assert_eq!(m.get("t"), Some("repnodes"));
    assert_eq!(m.get("dest"), Some("n1"));
    assert_eq!(m.get("nodelist"), Some("n1 n2 "));
    assert_eq!(m.get("delnodelist"), Some(" "));
    c.outbox.clear();
    c.observe(
        "n1",
        &msg(&[("t", "reqnodes"), ("dest", "n3")]),
        SEQ,
        false,
        &[Holding::None],
        true,
    );
    assert!(c.outbox.is_empty(), "not for us");
}

#[test]
fn lost_messages_are_asked_for_and_taken_when_resent() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    c.outbox.clear();
    let t0 = Instant::now();
    c.gap("n1", 10, 14, t0);
    let (req, sequenced) = &c.outbox[0];
    assert!(!sequenced);
    assert_eq!(req.get("t"), Some("NS_rexmit"));
    assert_eq!(req.get("dest"), Some("n1"));
    assert_eq!(
        (req.get("firstseq"), req.get("lastseq")),
        (Some("11"), Some("13"))
    );
    c.outbox.clear();
    assert!(c.resent("n1", 12));
    assert!(!c.resent("n1", 12), "taken once");
    assert!(!c.resent("n1", 14), "never missing");
    let counted = |requested, recovered, abandoned| RexmitCounters {
        requested,
        recovered,
        abandoned,
    };
    assert_eq!(c.rexmit, counted(3, 1, 0), "11-13 asked, 12 came");
    // Asked again every 250 ms while missing; a NAK ends it.
    c.ask_again(t0);
    assert!(c.outbox.is_empty(), "not yet");
    let later = t0 + REXMIT_EVERY;
    c.ask_again(later);
    assert_eq!(c.outbox.len(), 2, "11 and 13");
    c.outbox.clear();
    c.control(
        "n1",
        &msg(&[("t", "NS_nak_rexmit"), ("firstseq", "b"), ("dest", "n2")]),
    );
    c.ask_again(later + REXMIT_EVERY);
    assert_eq!(c.outbox.len(), 1, "13 only");
    assert_eq!(
        c.rexmit,
        counted(6, 1, 1),
        "11 and 13 again, then 13; 11 NAKed"
    );
    // Given up after 20 tries.
    let mut t = later + REXMIT_EVERY;
    for _ in 0..40 {
        t += REXMIT_EVERY;
        c.ask_again(t);
    }
    assert_eq!(c.next_request(), None);
    assert_eq!(c.rexmit, counted(23, 1, 2), "13 asked 20 times in all");
    // A late resource message does not undo a newer one.
    let res = |hold: &str| {
        msg(&[
            ("t", "resource"),
            ("rsc_hold", hold),
            ("rtype", "full"),
            ("isstable", "1"),
        ])
    };
    c.observe("n1", &res("local"), 20, false, &[Holding::None], true);
    c.observe("n1", &res("none"), 18, false, &[Holding::None], true);
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::Held));
}

#[test]
fn an_exiting_node_says_so_once_and_then_only_shutdone() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::Held], false);
    c.outbox.clear();
    c.shutting_down();
    c.advertise(&[Holding::Held]);
    c.advertise(&[Holding::Stopping]);
    c.advertise(&[Holding::None]);
    c.shut_down();
    assert_eq!(
        types(&c),
        [
            "resource rsc_hold=none isstable=0 info=shutdown",
            "shutdone"
        ]
    );
}

#[test]
fn no_acknowledgement_past_a_gap() {
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    c.gap("n1", 17, 19, Instant::now());
    c.outbox.clear();
    c.acknowledge("n1", 20);
    assert!(c.outbox.is_empty(), "18 is missing");
    assert!(c.resent("n1", 18));
    c.acknowledge("n1", 30);
    assert_eq!(c.outbox.len(), 1);
}

#[test]
fn a_partial_resource_update_adds_to_what_was_held() {
    // n1 is preferred: "local" is the group; the takeover script's partial "foreign" after
    // a full "local" means both, not "foreign only".
    let mut c = Compat::new("n2", &nodes(), &["n1".to_string()]);
    c.observe("n1", &hb_status(), SEQ, false, &[Holding::None], true);
    let full = msg(&[
        ("t", "resource"),
        ("rsc_hold", "local"),
        ("rtype", "full"),
        ("isstable", "1"),
    ]);
    c.observe("n1", &full, 2, false, &[Holding::None], true);
    let partial = msg(&[
        ("t", "resource"),
        ("rsc_hold", "foreign"),
        ("info", "mach_down"),
    ]);
    c.observe("n1", &partial, 3, false, &[Holding::None], true);
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::Held));
    let full_none = msg(&[
        ("t", "resource"),
        ("rsc_hold", "none"),
        ("rtype", "full"),
        ("isstable", "1"),
    ]);
    c.observe("n1", &full_none, 4, false, &[Holding::None], true);
    assert_eq!(c.holding_of("n1", 0, false), Some(Holding::None));
}
