//! What the daemon keeps across restarts in its state directory: the generation (Heartbeat's
//! `hg`, by which peers tell a restarted node from a replay of an old one) and the node's
//! UUID (Heartbeat's `srcuuid`). A node that ran Heartbeat before keeps Heartbeat's UUID and
//! counts on from Heartbeat's generation.

use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sys::mapped::MappedWords;

/// Where the daemon keeps what must survive restarts.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hb-monitor";

/// Heartbeat 3's state directory (`hb_uuid`, `hb_generation`).
const HEARTBEAT_STATE: &str = "/var/lib/heartbeat";

/// The generation after `stored` (ours, 0 if none), `heartbeats` (Heartbeat's, 0 if none)
/// at wall-clock second `wall`: one above both, and never below the wall clock, so that a
/// lost state directory does not restart the count at 1, which peers would take for a
/// replay.
pub fn next_generation_value(stored: u64, heartbeats: u64, wall: u64) -> u64 {
    stored.max(heartbeats).saturating_add(1).max(wall)
}

fn read_number(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// Bumps and returns the generation kept in `state_dir`.
pub fn next_generation(state_dir: &Path) -> io::Result<u64> {
    std::fs::create_dir_all(state_dir)?;
    let path = state_dir.join("generation");
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let next = next_generation_value(
        read_number(&path),
        read_number(&Path::new(HEARTBEAT_STATE).join("hb_generation")),
        wall,
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{next}\n"))?;
    std::fs::rename(&tmp, &path)?;
    Ok(next)
}

/// This node's UUID, kept in `state_dir`: Heartbeat's own when the node ran Heartbeat
/// before, else a new random one.
pub fn node_uuid(state_dir: &Path) -> io::Result<[u8; 16]> {
    let path = state_dir.join("uuid");
    let read16 = |p: &Path| -> Option<[u8; 16]> { std::fs::read(p).ok()?.try_into().ok() };
    if let Some(uuid) = read16(&path) {
        return Ok(uuid);
    }
    let uuid = match read16(&Path::new(HEARTBEAT_STATE).join("hb_uuid")) {
        Some(uuid) => uuid,
        None => {
            let mut uuid = [0u8; 16];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut uuid)?;
            // RFC 4122 version 4, as libuuid makes them.
            uuid[6] = (uuid[6] & 0x0f) | 0x40;
            uuid[8] = (uuid[8] & 0x3f) | 0x80;
            uuid
        }
    };
    std::fs::create_dir_all(state_dir)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, uuid)?;
    std::fs::rename(&tmp, &path)?;
    Ok(uuid)
}

/// Where [`ReplayFloors`] live in the state directory.
const REPLAY_FLOORS: &str = "replay-floors";
const FLOORS_MAGIC: u64 = u64::from_ne_bytes(*b"hbfloor1");
/// Words of a peer's name in its record: 128 bytes, above Heartbeat's own limit (100).
const NAME_WORDS: usize = 16;
/// A record: the name (NUL-padded), the generation (0: none yet), the sequence.
const RECORD_WORDS: usize = NAME_WORDS + 2;
/// Before the records: the magic and the number of records.
const HEADER_WORDS: usize = 2;

/// Per peer, the highest generation and sequence this node has accepted, kept in the state
/// directory so that a restarted daemon refuses what it accepted before its restart: without
/// it, heartbeats of a powered-off peer, recorded earlier and replayed, would keep that peer
/// alive in the restarted daemon's eyes and delay the takeover. Each change is one or two
/// memory stores into a shared file mapping ([`MappedWords`]), so the heartbeat path makes
/// no system call for it and the record survives the daemon being killed at any instant.
/// After a power loss of this node it is what the kernel last wrote back.
#[derive(Debug)]
pub struct ReplayFloors {
    words: MappedWords,
    /// Per peer (in the order given to `open`): its record, if its name fits one.
    slots: Vec<Option<usize>>,
    /// What each record holds now, so that only changes are stored.
    stored: Vec<Option<Floor>>,
}

/// A generation and a sequence number.
pub type Floor = (u64, u64);

fn name_words(name: &str) -> Option<[u64; NAME_WORDS]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > NAME_WORDS * 8 || bytes.contains(&0) {
        return None;
    }
    let mut padded = [0u8; NAME_WORDS * 8];
    padded[..bytes.len()].copy_from_slice(bytes);
    let mut words = [0u64; NAME_WORDS];
    for (word, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
        *word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
    }
    Some(words)
}

/// The records of a floors file: (name words, generation, sequence); none if it is not one.
fn read_floors(bytes: &[u8]) -> Vec<([u64; NAME_WORDS], u64, u64)> {
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if words.len() < HEADER_WORDS || words[0] != FLOORS_MAGIC {
        return vec![];
    }
    words[HEADER_WORDS..]
        .chunks_exact(RECORD_WORDS)
        .take(usize::try_from(words[1]).unwrap_or(usize::MAX))
        .map(|r| {
            let name: [u64; NAME_WORDS] = r[..NAME_WORDS].try_into().expect("name words");
            (name, r[NAME_WORDS], r[NAME_WORDS + 1])
        })
        .collect()
}

impl ReplayFloors {
    /// The floors of `peers` in `state_dir`, with what an earlier run stored for each peer
    /// (`None`: nothing). The file is rewritten for exactly these peers (a peer removed from
    /// `ha.cf` loses its record), then mapped.
    pub fn open(
        state_dir: &Path,
        peers: &[&str],
    ) -> io::Result<(ReplayFloors, Vec<Option<Floor>>)> {
        let path = state_dir.join(REPLAY_FLOORS);
        let earlier = match std::fs::read(&path) {
            Ok(bytes) => read_floors(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(e),
        };
        let mut slots = Vec::with_capacity(peers.len());
        let mut loaded = Vec::with_capacity(peers.len());
        let mut words = vec![FLOORS_MAGIC, 0];
        for peer in peers {
            let Some(name) = name_words(peer) else {
                slots.push(None);
                loaded.push(None);
                continue;
            };
            let floor = earlier
                .iter()
                .find(|(n, g, _)| *n == name && *g != 0)
                .map(|(_, g, s)| (*g, *s));
            slots.push(Some(words[1] as usize));
            loaded.push(floor);
            words[1] += 1;
            words.extend(name);
            let (generation, seq) = floor.unwrap_or((0, 0));
            words.extend([generation, seq]);
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        let words = MappedWords::open(&path, words.len())?;
        let stored = loaded.clone();
        Ok((
            ReplayFloors {
                words,
                slots,
                stored,
            },
            loaded,
        ))
    }

    /// Peer `index` (as given to `open`) was last accepted at `generation`, `seq`.
    pub fn record(&mut self, index: usize, generation: u64, seq: u64) {
        let Some(Some(slot)) = self.slots.get(index).copied() else {
            return;
        };
        let before = self.stored[index];
        if before == Some((generation, seq)) {
            return;
        }
        let at = HEADER_WORDS + slot * RECORD_WORDS + NAME_WORDS;
        // The sequence first: a daemon killed between the two stores leaves a floor below
        // the truth (a replay window), never above it (a live peer's messages refused).
        self.words.set(at + 1, seq);
        if before.map(|(g, _)| g) != Some(generation) {
            self.words.set(at, generation);
        }
        self.stored[index] = Some((generation, seq));
    }

    /// Writes the floors to disk now, for an orderly exit.
    pub fn sync(&self) -> io::Result<()> {
        self.words.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_floors_survive_a_restart_and_follow_the_node_list() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(200);
        {
            let (mut floors, loaded) =
                ReplayFloors::open(dir.path(), &["n2", "n3", &long]).unwrap();
            assert_eq!(loaded, vec![None, None, None]);
            floors.record(0, 5, 9);
            floors.record(1, 4, 1);
            floors.record(1, 4, 2);
            // A name that fits no record is not kept, and is no error.
            floors.record(2, 1, 1);
            // Dropped without sync: as if killed.
        }
        let (mut floors, loaded) = ReplayFloors::open(dir.path(), &["n3", "n2", &long]).unwrap();
        assert_eq!(loaded, vec![Some((4, 2)), Some((5, 9)), None]);
        floors.record(1, 6, 1);
        floors.sync().unwrap();
        drop(floors);
        // n3 left ha.cf: its record goes; n4 is new.
        let (_, loaded) = ReplayFloors::open(dir.path(), &["n2", "n4"]).unwrap();
        assert_eq!(loaded, vec![Some((6, 1)), None]);
        let (_, loaded) = ReplayFloors::open(dir.path(), &["n3"]).unwrap();
        assert_eq!(loaded, vec![None]);
    }

    #[test]
    fn a_floors_file_that_is_not_one_is_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPLAY_FLOORS);
        for junk in [
            &b""[..],
            b"hbfloor1",
            b"not a floors file at all, really",
            &[0xff; 300],
        ] {
            std::fs::write(&path, junk).unwrap();
            let (_, loaded) = ReplayFloors::open(dir.path(), &["n2"]).unwrap();
            assert_eq!(loaded, vec![None], "{junk:?}");
        }
        // A count above what the file holds reads what is there.
        let mut words = vec![FLOORS_MAGIC, u64::MAX];
        words.extend(name_words("n2").unwrap());
        words.extend([3, 4]);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let (_, loaded) = ReplayFloors::open(dir.path(), &["n2"]).unwrap();
        assert_eq!(loaded, vec![Some((3, 4))]);
    }

    #[test]
    fn the_generation_rises_past_ours_heartbeats_and_the_wall_clock() {
        assert_eq!(next_generation_value(7, 3, 0), 8);
        assert_eq!(next_generation_value(7, 30, 0), 31);
        // A lost state directory: the wall clock keeps it above any earlier run's.
        assert_eq!(next_generation_value(0, 0, 1_700_000_000), 1_700_000_000);
        // A wall clock stepped back: still above what was stored.
        assert_eq!(
            next_generation_value(1_700_000_005, 0, 1_600_000_000),
            1_700_000_006
        );
        assert_eq!(next_generation_value(u64::MAX, 0, 0), u64::MAX);
    }
}
