use super::*;
use crate::hb::config::{AuthKeys, AuthMethod};

fn keys() -> AuthKeys {
    AuthKeys {
        active: 1,
        keys: [(1, (AuthMethod::Sha256, b"secret".to_vec()))].into(),
    }
}

/// A sending side: what it sends on no media is seen in its history.
fn outgoing(now: Instant) -> Outgoing {
    Outgoing::new("n1", [7; 16], 42, keys(), now)
}

const NO_MEDIA: MediaSet = MediaSet { sockets: vec![] };

fn status(rsc: &str) -> Message {
    Message::new(&[("t", "status"), ("st", "active"), ("rsc", rsc)])
}

/// The message last kept for retransmission, decoded.
fn last_sent(out: &Outgoing) -> Message {
    proto::decode(&lock(&out.history).back().unwrap().1, &keys()).unwrap()
}

const KEEPALIVE: Duration = Duration::from_millis(5);

#[test]
fn stands_in_after_two_silent_keepalives_with_the_loops_last_heartbeat() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let out = outgoing(t0);
    // Nothing to repeat before the loop's first heartbeat.
    assert_eq!(out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + ms(20)).1, None);
    out.heartbeat(&NO_MEDIA, status("held"), false, t0 + ms(20));
    assert_eq!(last_sent(&out).get("seq"), Some("1"));
    assert_eq!(
        out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + ms(29)),
        (t0 + ms(30), None)
    );
    let (next, sent) = out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + ms(30));
    assert_eq!((next, sent), (t0 + ms(40), Some(vec![])));
    let repeated = last_sent(&out);
    assert_eq!(
        repeated.get("seq"),
        Some("2"),
        "a new sequence number, so that it counts"
    );
    assert_eq!(repeated.get("rsc"), Some("held"));
    assert_eq!(repeated.get("src"), Some("n1"));
    assert_eq!(repeated.get("hg"), Some("2a"));
    assert_eq!(out.stood_in().0, 1);
    // The loop is back: the stand-in waits two keepalives from its heartbeat again.
    out.heartbeat(&NO_MEDIA, status("none"), false, t0 + ms(33));
    assert_eq!(
        out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + ms(40)),
        (t0 + ms(43), None)
    );
    assert_eq!(out.stood_in().0, 1);
}

#[test]
fn a_stuck_loop_is_covered_for_cover_only() {
    let t0 = Instant::now();
    let out = outgoing(t0);
    out.heartbeat(&NO_MEDIA, status("held"), false, t0);
    let mut t = t0;
    while t <= t0 + COVER + Duration::from_millis(100) {
        let (next, _) = out.stand_in(&NO_MEDIA, KEEPALIVE, t);
        t = next;
    }
    // One every two keepalives within COVER, none after: the node then looks dead.
    let expected = (COVER.as_millis() / (2 * KEEPALIVE.as_millis())) as u64;
    assert_eq!(out.stood_in().0, expected);
    let seq_after_cover = out.seq.load(Ordering::Relaxed);
    out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + 10 * COVER);
    assert_eq!(out.seq.load(Ordering::Relaxed), seq_after_cover);
}

#[test]
fn a_leaving_node_is_not_stood_in_for() {
    let t0 = Instant::now();
    let out = outgoing(t0);
    out.heartbeat(&NO_MEDIA, status("held"), false, t0);
    out.heartbeat(
        &NO_MEDIA,
        Message::new(&[("t", "status"), ("st", "dead"), ("rsc", "none")]),
        true,
        t0 + KEEPALIVE,
    );
    out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + 5 * KEEPALIVE);
    assert_eq!(out.stood_in().0, 0);
    assert_eq!(last_sent(&out).get("st"), Some("dead"));
}

#[test]
fn old_messages_are_resent_as_they_were_until_they_leave_the_history() {
    let t0 = Instant::now();
    let out = outgoing(t0);
    for _ in 0..HISTORY + 1 {
        out.send(&NO_MEDIA, status("held"), true);
    }
    assert!(out.resend(&NO_MEDIA, 1).is_none(), "seq 1 left the history");
    assert!(out.resend(&NO_MEDIA, 2).is_some());
    assert!(out.resend(&NO_MEDIA, HISTORY as u64 + 1).is_some());
    // Unsequenced messages are not kept.
    out.send(&NO_MEDIA, Message::new(&[("t", "NS_ackmsg")]), false);
    assert_eq!(lock(&out.history).len(), HISTORY);
}

#[test]
fn the_stand_in_never_waits_for_a_lock_the_loop_holds() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let out = outgoing(t0);
    out.heartbeat(&NO_MEDIA, status("held"), false, t0);
    {
        // The loop swapping its heartbeat: look again in a millisecond.
        let _swapping = lock(&out.heartbeat);
        assert_eq!(
            out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + ms(10)),
            (t0 + ms(11), None)
        );
    }
    {
        // The loop answering a retransmission request: the stand-in sends all the same and
        // leaves its heartbeat out of the history.
        let _resending = lock(&out.history);
        assert_eq!(
            out.stand_in(&NO_MEDIA, KEEPALIVE, t0 + ms(11)).1,
            Some(vec![])
        );
    }
    assert_eq!(out.stood_in(), (1, ms(1)));
    assert_eq!(out.seq.load(Ordering::Relaxed), 2);
    assert_eq!(lock(&out.history).len(), 1);
}
