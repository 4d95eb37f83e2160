//! What the daemon keeps across restarts in its state directory: the generation (Heartbeat's
//! `hg`, by which peers tell a restarted node from a replay of an old one) and the node's
//! UUID (Heartbeat's `srcuuid`). A node that ran Heartbeat before keeps Heartbeat's UUID and
//! counts on from Heartbeat's generation.

use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

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

#[cfg(test)]
mod tests {
    use super::*;

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
