//! What the media refused before the controller saw it: datagrams that were no valid
//! heartbeat (by kind), and what each socket's kernel dropped (its filter's refusals and the
//! datagrams that found its buffer full), with a warning when a peer's messages went missing
//! on a medium while its kernel was dropping: real heartbeats lost to a flood. Pure
//! bookkeeping over numbers the event loop reads, so it is tested without sockets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often the loss warning may repeat for one medium.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counters of what was refused on the wire, per medium (in the order of the media).
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Per medium: datagrams that were no valid heartbeat, by kind.
    pub refused: Vec<Refused>,
    /// Per medium: what its kernel dropped.
    pub kernel: Vec<KernelDrops>,
}

/// Datagrams of one medium that were no valid heartbeat, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// A signature that did not verify.
    pub bad_signature: u64,
    /// A key id not in authkeys.
    pub unknown_key: u64,
    /// Not a heartbeat message at all.
    pub malformed: u64,
    /// Longer than any heartbeat.
    pub too_large: u64,
}

impl Refused {
    /// Each kind by the name status and metrics give it.
    pub fn by_kind(&self) -> [(&'static str, u64); 4] {
        [
            ("bad_signature", self.bad_signature),
            ("unknown_key", self.unknown_key),
            ("malformed", self.malformed),
            ("too_large", self.too_large),
        ]
    }
}

/// One medium's kernel drops and the last message of each peer on it.
#[derive(Debug, Default)]
pub struct KernelDrops {
    /// Datagrams the kernel dropped on this medium since the daemon opened it.
    pub total: u64,
    /// The kernel's own count when last seen (it comes with each datagram, and wraps).
    last_count: u32,
    /// Per peer: (generation, sequence, `total` then) of its last message here.
    last_seen: BTreeMap<String, (u64, u64, u64)>,
    /// When the loss warning was last given, and how many it held back since.
    warned: Option<Instant>,
    held_back: u64,
}

impl WireCounters {
    /// Counters for `media` media.
    pub fn new(media: usize) -> WireCounters {
        WireCounters {
            refused: vec![Refused::default(); media],
            kernel: (0..media).map(|_| KernelDrops::default()).collect(),
        }
    }

    /// Every medium's refusals together.
    pub fn refused_total(&self) -> Refused {
        self.refused
            .iter()
            .fold(Refused::default(), |a, r| Refused {
                bad_signature: a.bad_signature + r.bad_signature,
                unknown_key: a.unknown_key + r.unknown_key,
                malformed: a.malformed + r.malformed,
                too_large: a.too_large + r.too_large,
            })
    }

    /// Every medium's kernel drops together.
    pub fn kernel_total(&self) -> u64 {
        self.kernel.iter().map(|k| k.total).sum()
    }
}

impl KernelDrops {
    /// The kernel's drop count that came with a datagram (none: it has dropped nothing).
    pub fn count(&mut self, kernel_count: Option<u32>) {
        let count = kernel_count.unwrap_or(0);
        self.total += u64::from(count.wrapping_sub(self.last_count));
        self.last_count = count;
    }

    /// A message of `peer` (`generation`, `seq`) read on this medium, named `medium`: a
    /// warning to log when messages of it are missing since its last one here and the kernel
    /// dropped datagrams meanwhile.
    pub fn message(
        &mut self,
        medium: &str,
        peer: &str,
        generation: u64,
        seq: u64,
        now: Instant,
    ) -> Option<String> {
        let total = self.total;
        let last = self.last_seen.get(peer).copied();
        match last {
            // A retransmission or a copy: not the newest, nothing to learn.
            Some((g, s, _)) if g == generation && seq <= s => return None,
            _ => {}
        }
        // Every heartbeat passes here: allocate the peer's name only the first time.
        match self.last_seen.get_mut(peer) {
            Some(entry) => *entry = (generation, seq, total),
            None => {
                self.last_seen
                    .insert(peer.to_string(), (generation, seq, total));
            }
        }
        let (g, s, dropped_then) = last?;
        let missing = seq
            .checked_sub(s + 1)
            .filter(|m| g == generation && *m > 0)?;
        let dropped = total - dropped_then;
        if dropped == 0 {
            return None;
        }
        if self
            .warned
            .is_some_and(|t| now.saturating_duration_since(t) < WARN_EVERY)
        {
            self.held_back += 1;
            return None;
        }
        self.warned = Some(now);
        let held_back = std::mem::take(&mut self.held_back);
        let more = if held_back > 0 {
            format!(
                " ({held_back} more such losses in the last {} s)",
                WARN_EVERY.as_secs()
            )
        } else {
            String::new()
        };
        Some(format!(
            "{missing} messages of {peer} missing on {medium} while its kernel dropped {dropped} datagrams (refused by the socket filter, or no room in the receive buffer: a flood?){more}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_counts_accumulate_across_wraps() {
        let mut k = KernelDrops::default();
        k.count(None);
        assert_eq!(k.total, 0);
        k.count(Some(10));
        k.count(Some(10));
        assert_eq!(k.total, 10);
        k.count(Some(u32::MAX));
        k.count(Some(4));
        assert_eq!(k.total, 10 + (u64::from(u32::MAX) - 10) + 5);
    }

    #[test]
    fn a_gap_while_the_kernel_dropped_is_warned_once_per_interval() {
        let t0 = Instant::now();
        let mut k = KernelDrops::default();
        assert_eq!(k.message("eth0:694", "n1", 1, 1, t0), None);
        // A gap with no kernel drop: the network lost it, nothing to say here.
        assert_eq!(k.message("eth0:694", "n1", 1, 3, t0), None);
        k.count(Some(500));
        // No gap although the kernel dropped (the filter refused junk): nothing lost.
        assert_eq!(k.message("eth0:694", "n1", 1, 4, t0), None);
        k.count(Some(900));
        let warning = k.message("eth0:694", "n1", 1, 7, t0).unwrap();
        assert!(
            warning.starts_with("2 messages of n1 missing on eth0:694"),
            "{warning}"
        );
        assert!(warning.contains("dropped 400 datagrams"), "{warning}");
        // Copies and retransmissions of older messages change nothing.
        assert_eq!(k.message("eth0:694", "n1", 1, 5, t0), None);
        k.count(Some(950));
        assert_eq!(k.message("eth0:694", "n1", 1, 9, t0), None, "held back");
        k.count(Some(960));
        let later = t0 + WARN_EVERY;
        let warning = k.message("eth0:694", "n1", 1, 11, later).unwrap();
        assert!(warning.contains("(1 more such losses"), "{warning}");
        // A new generation starts over: no gap across a restart.
        k.count(Some(990));
        assert_eq!(k.message("eth0:694", "n1", 2, 1, later + WARN_EVERY), None);
    }
}
