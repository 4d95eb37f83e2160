//! The wire format: round trips, every kind of damage rejected without a panic, the HMACs
//! against their RFC test vectors, and Heartbeat's captured framing parsed.

use std::collections::BTreeMap;

use super::*;

fn keys(active: u8, list: &[(u8, AuthMethod, &str)]) -> AuthKeys {
    AuthKeys {
        active,
        keys: list
            .iter()
            .map(|(n, m, s)| (*n, (*m, s.as_bytes().to_vec())))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn status() -> Message {
    let mut m = Message::new(&[
        ("t", "status"),
        ("st", "active"),
        ("dt", "7530"),
        ("src", "n1"),
    ]);
    m.push_binary("srcuuid", &[0xe3, 0x58, b',', b':', 0, 0x0a, 0xff]);
    m.push("seq", "16");
    m.push("ld", "0.87 1.16 0.64 1/145 7903");
    m
}

#[test]
fn hmacs_match_the_rfc_test_vectors() {
    let data = b"what do ya want for nothing?";
    // RFC 2202 (HMAC-SHA-1, HMAC-MD5 test case 2) and RFC 4231 test case 2.
    assert_eq!(
        hmac_hex(AuthMethod::Sha1, b"Jefe", data),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
    assert_eq!(
        hmac_hex(AuthMethod::Md5, b"Jefe", data),
        "750c783e6ab0b503eaa86e310a5db738"
    );
    assert_eq!(
        hmac_hex(AuthMethod::Sha256, b"Jefe", data),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn round_trip_with_every_method() {
    for method in [AuthMethod::Sha256, AuthMethod::Sha1, AuthMethod::Md5] {
        let k = keys(1, &[(1, method, "a secret")]);
        let wire = encode(&status(), &k).unwrap();
        assert!(wire.starts_with(b"###\n11:(0)t=status,"));
        assert_eq!(decode(&wire, &k).unwrap(), status());
    }
}

#[test]
fn the_wire_layout_is_heartbeats() {
    let k = keys(1, &[(1, AuthMethod::Sha1, "s")]);
    let wire = encode(&Message::new(&[("t", "NS_st"), ("st", "ping")]), &k).unwrap();
    let text = String::from_utf8(wire.clone()).unwrap();
    let classic = hmac_hex(AuthMethod::Sha1, b"s", b"t=NS_st\nst=ping\n");
    let body = format!("###\n10:(0)t=NS_st,10:(0)st=ping,50:(0)auth=1 {classic},%%%\n");
    let trailer = hmac_hex(AuthMethod::Sha1, b"s", body.as_bytes());
    assert_eq!(text, format!("{body}42:1 {trailer},"));
}

#[test]
fn captured_heartbeat_framing_parses_up_to_the_signature() {
    // A ping-node message captured from Debian's heartbeat 3.0.6, signed with a key we do not
    // have: the framing must be read to the end, and only the signature refused.
    let captured = b"###\n10:(0)t=NS_st,10:(0)st=ping,12:(0)info=ping,17:(0)src=198.18.0.1,\
14:(0)ts=6b0a7cd2,50:(0)auth=1 2884a3071321e08d375197248b545b20db5e01c7,%%%\n\
42:1 b0d25f010ee4dc4230d70b82bb9b11cbcc2bc19d,";
    let k = keys(1, &[(1, AuthMethod::Sha1, "not the capture's key")]);
    assert_eq!(decode(captured, &k), Err(ProtoError::BadSignature));
    assert_eq!(
        decode(captured, &keys(2, &[(2, AuthMethod::Sha1, "x")])),
        Err(ProtoError::UnknownKey(1))
    );
}

#[test]
fn key_rotation_verifies_with_any_known_key() {
    let old = keys(1, &[(1, AuthMethod::Sha1, "old")]);
    let both = keys(
        2,
        &[(1, AuthMethod::Sha1, "old"), (2, AuthMethod::Sha256, "new")],
    );
    let wire = encode(&status(), &old).unwrap();
    assert_eq!(decode(&wire, &both).unwrap(), status());
    let wire = encode(&status(), &both).unwrap();
    assert_eq!(decode(&wire, &old), Err(ProtoError::UnknownKey(2)));
}

#[test]
fn another_clusters_key_is_a_bad_signature() {
    let ours = keys(1, &[(1, AuthMethod::Sha256, "ours")]);
    let theirs = keys(1, &[(1, AuthMethod::Sha256, "theirs")]);
    let wire = encode(&status(), &theirs).unwrap();
    assert_eq!(decode(&wire, &ours), Err(ProtoError::BadSignature));
}

#[test]
fn every_flipped_byte_and_every_truncation_is_refused() {
    let k = keys(1, &[(1, AuthMethod::Sha256, "k")]);
    let wire = encode(&status(), &k).unwrap();
    for i in 0..wire.len() {
        let mut damaged = wire.clone();
        damaged[i] ^= 0x01;
        assert!(decode(&damaged, &k).is_err(), "flipped byte {i} accepted");
        assert!(
            decode(&wire[..i], &k).is_err(),
            "truncation to {i} accepted"
        );
    }
    let mut extended = wire.clone();
    extended.push(b'x');
    assert_eq!(
        decode(&extended, &k),
        Err(ProtoError::Malformed("bytes after the signature"))
    );
}

#[test]
fn oversized_and_garbage_input_is_refused_without_panic() {
    let k = keys(1, &[(1, AuthMethod::Sha1, "k")]);
    assert_eq!(
        decode(&vec![b'#'; MAX_MESSAGE + 1], &k),
        Err(ProtoError::TooLarge(MAX_MESSAGE + 1))
    );
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 120) as usize;
        let mut data = b"###\n".to_vec();
        data.extend((0..len).map(|i| b"0123:(),=%#\n19ab"[((seed >> (i % 60)) % 16) as usize]));
        let _ = decode(&data, &k);
    }
    for bad in [
        &b"###\n99999999999:(0)t=x,%%%\n"[..],
        b"###\n5:(0)t=x;%%%\n",
        b"###\n3:(0),%%%\n1:x,",
        b"###\n%%%\n",
        b"###\n%%%\nnot-a-netstring",
        b"###\n4:(9)a=,%%%\n",
    ] {
        assert!(
            decode(bad, &k).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn unencodable_messages_are_errors() {
    let k = keys(1, &[(1, AuthMethod::Sha1, "k")]);
    for m in [
        Message::new(&[("auth", "x")]),
        Message::new(&[("a=b", "x")]),
        Message::new(&[("t", "line\nbreak")]),
        Message::new(&[("", "x")]),
    ] {
        assert!(
            matches!(encode(&m, &k), Err(ProtoError::Unencodable(_))),
            "{m:?}"
        );
    }
    let big = Message::new(&[("x", &"y".repeat(MAX_MESSAGE))]);
    assert!(matches!(encode(&big, &k), Err(ProtoError::TooLarge(_))));
}

#[test]
fn framing_finds_whole_messages_in_a_byte_stream() {
    let keys = keys(1, &[(1, AuthMethod::Sha256, "serial")]);
    let one = encode(&Message::new(&[("t", "status"), ("src", "n1")]), &keys).unwrap();
    let two = encode(&Message::new(&[("t", "status"), ("src", "n2")]), &keys).unwrap();
    let mut stream = one.clone();
    stream.extend_from_slice(&two);
    assert_eq!(framed_len(&stream), Ok(Some(one.len())));
    assert_eq!(framed_len(&stream[one.len()..]), Ok(Some(two.len())));
    // Every cut short of the whole message asks for more.
    for cut in 0..one.len() {
        assert_eq!(framed_len(&one[..cut]), Ok(None), "cut at {cut}");
    }
    // Garbage is not a message.
    assert!(framed_len(b"hello").is_err());
    assert!(framed_len(b"###\nzz:").is_err());
}
