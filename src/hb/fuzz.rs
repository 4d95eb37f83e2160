//! Entry points of the fuzz targets (`fuzz/`, run by `make fuzz` with cargo-fuzz), kept in
//! the library so that `make test` replays the regression corpus (`fuzz/corpus/`) and runs a
//! bounded mutation round on stable Rust. Whatever the input: errors, never a panic, and a
//! message that was not signed with our key is never accepted.

use std::collections::BTreeMap;

use super::config::{self, AuthKeys, AuthMethod};
use super::proto;

/// The key the wire target's messages are checked against.
pub fn fuzz_keys() -> AuthKeys {
    AuthKeys {
        active: 1,
        keys: BTreeMap::from([(1, (AuthMethod::Sha256, b"fuzz".to_vec()))]),
    }
}

/// One datagram, or serial bytes: framed and decoded.
pub fn wire(data: &[u8]) {
    let keys = fuzz_keys();
    let _ = proto::framed_len(data);
    if let Ok(msg) = proto::decode(data, &keys) {
        // Accepted: it must survive a round trip (signed with the same key).
        let again = proto::encode(&msg, &keys).expect("an accepted message re-encodes");
        assert_eq!(proto::decode(&again, &keys).as_ref(), Ok(&msg));
    }
}

/// ha.cf, haresources and authkeys texts, split on NUL bytes.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let ha_cf = parts.next().unwrap_or("");
    let haresources = parts.next().unwrap_or("");
    let authkeys = parts.next().unwrap_or("");
    let _ = config::parse_texts(ha_cf, haresources, authkeys);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(format!("{CORPUS}/{target}"))
            .unwrap()
            .flatten()
            .map(|e| std::fs::read(e.path()).unwrap())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "empty corpus for {target}");
        inputs
    }

    /// xorshift64: reproducible mutations without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(out.len() + 1);
            let last = out.len().saturating_sub(1);
            let (bit, byte) = (rng.below(8), rng.next() as u8);
            match rng.below(6) {
                0 if !out.is_empty() => out[at.min(last)] ^= 1 << bit,
                1 => out.truncate(at),
                2 => out.insert(at, b"0123456789:,=()#%\n\0"[rng.below(19)]),
                3 if at < out.len() => {
                    out.remove(at);
                }
                4 => {
                    let copy = out[at..].to_vec();
                    out.extend_from_slice(&copy[..copy.len().min(64)]);
                }
                _ if !out.is_empty() => out[at.min(last)] = byte,
                _ => {}
            }
        }
        out
    }

    #[test]
    fn the_regression_corpus_is_handled() {
        for input in corpus("wire") {
            wire(&input);
        }
        for input in corpus("config") {
            config(&input);
        }
    }

    #[test]
    fn mutated_messages_are_never_accepted_and_never_panic() {
        let keys = fuzz_keys();
        let seeds = corpus("wire");
        let signed: Vec<&Vec<u8>> = seeds
            .iter()
            .filter(|s| proto::decode(s, &keys).is_ok())
            .collect();
        assert!(
            !signed.is_empty(),
            "the corpus has a validly signed message"
        );
        let mut rng = Rng(0x5eed_f00d_dead_beef);
        let mut accepted = 0;
        for i in 0..50_000 {
            let seed = &seeds[i % seeds.len()];
            let input = mutate(&mut rng, seed);
            wire(&input);
            if input != **seed && proto::decode(&input, &keys).is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 0, "a changed message passed the HMAC");
    }

    #[test]
    fn mutated_configurations_never_panic() {
        let seeds = corpus("config");
        let mut rng = Rng(0xc0ff_ee00_1234_5678);
        for i in 0..20_000 {
            config(&mutate(&mut rng, &seeds[i % seeds.len()]));
        }
    }
}
