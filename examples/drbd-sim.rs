//! drbd-sim: a DRBD 8.4 and DRBD 9 userland simulator for tests (never shipped). One binary
//! that acts as `drbdadm`, `drbdsetup` or `drbd-sim-ctl` depending on the file name it is run
//! under (the tests symlink it under all three), for ONE resource `r0` shared by two simulated
//! nodes `a` and `b`. It speaks 8.4 unless `drbd-sim-ctl version 9` switched it to 9.2's
//! output; only two nodes: DRBD 9's three-node states (a diskless tiebreaker, quorum) are not
//! simulated.
//!
//! Environment: `DRBD_SIM_DIR` holds the shared state (`state`, `key=value` lines, replaced
//! atomically by rename; every command holds an exclusive lock on `lock` for its whole run, so
//! two nodes' agents do not race), `DRBD_SIM_NODE` (`a` or `b`) says which node "this" is.
//! Run by a cluster manager that scrubs the environment (Pacemaker, hb-monitor), the
//! simulator finds both without it: the state directory is the parent of the `bin/` it was
//! run from (`<dir>/bin/drbdadm`, as invoked, symlinks not resolved), and the node is looked
//! up by hostname (`uname -n`, per UTS namespace) in `<dir>/nodes` (`hostname=a` lines).
//!
//! # State
//!
//! Per node: `up` (resource configured), `role` (Primary/Secondary), `disk`
//! (UpToDate/Inconsistent/Outdated/Consistent/Diskless), `held_open` (a mount, set by the
//! test), `standalone` (no connection attempts: after `disconnect` or a detected split brain),
//! `discard` (a pending `connect --discard-my-data`), and two data generations standing in for
//! DRBD's UUIDs: `current` (the current one) and `base` (the one both nodes shared when they were
//! last in sync). Shared: `link_cut`, `resync_ms` (how long a resync takes, 0 = at once), the
//! running resync (`resync_source`, `resync_until`, wall-clock ms), `next_gen` and `version`
//! (`8.4` or `9`).
//! The nodes are *connected* when both are up, neither is StandAlone and the link is not cut.
//! Initial state: both down, both disks Inconsistent (fresh meta-data), generations 0, link up.
//!
//! After every change (and before every read) the state *settles*, in this order:
//! 1. A down node is Secondary.
//! 2. A Primary that is not connected gets a new generation (it may write what the peer does
//!    not have), as DRBD creates a new current UUID when a Primary loses its peer.
//! 3. A running resync stops when the connection goes (the target stays Inconsistent) and
//!    completes when `resync_until` has passed: the target is UpToDate, both share the
//!    source's generation.
//! 4. On connection, generations decide, as DRBD's UUID comparison does: the side with a
//!    pending `--discard-my-data` becomes the target; else both moved away from `base`:
//!    **split brain**, both nodes become StandAlone (8.4's default `after-sb-*` policies
//!    `disconnect`) and nothing is discarded; else the side that moved (or, with equal
//!    generations, the UpToDate side facing an Inconsistent/Outdated/Consistent one) is the
//!    sync source: the target's disk becomes Inconsistent and a resync of `resync_ms` starts.
//!
//! # `drbdsetup events2 --now r0` (as recorded in `tests/fixtures/drbd/8.4` and `…/9`)
//!
//! - down (or another resource name): `exists -` only.
//! - up: the `resource` line (own role), the `connection` line (`Connected` and the peer's
//!   role when connected, `StandAlone` when this node is, else `Connecting`; `role:Unknown`
//!   when not connected), the `device` line (own disk), the `peer-device` line (`Established`,
//!   `SyncSource` or `SyncTarget` and the peer's disk when connected, else `Off` and
//!   `DUnknown`), then `exists -`.
//! - 8.4: `peer-node-id` is 0 on both nodes, as 8.4 prints; a StandAlone node prints no
//!   `conn-name`, as recorded.
//! - 9: `a` is alpha (198.18.3.1, node-id 1) and `b` beta (198.18.3.2, node-id 0), as in the
//!   recorded two-node configuration, which names no node-ids (drbd-utils numbered them).
//!   Every peer line carries the peer's `peer-node-id` and its host as `conn-name`, StandAlone
//!   too. The resource line adds `force-io-failures:no` and drbdsetup's `may_promote` and
//!   `promotion_score` (computed as drbd-utils 9.22 computes them, see `promotion9`); the
//!   device line `backing_dev:/dev/vda` (`none` when Diskless), `client:no` and `quorum:yes`
//!   (no quorum is configured for two nodes); the peer-device line `peer-client:no`; a `path`
//!   line follows it, `established:yes` when connected. Every recorded two-node state is
//!   checked byte for byte; the mid-sync lines are not recorded (DRBD 9 finished the initial
//!   sync before the recording saw it) and follow the same rules. Without `--statistics`,
//!   nothing printed varies from run to run.
//!
//! `drbdsetup down r0` is `drbdadm down r0`; `drbdsetup outdate 0` is `drbdadm outdate r0`.
//!
//! # `drbdadm -c <conf> <verb> [--force|--discard-my-data] <res>`
//!
//! A resource other than `r0`: exit 10, `'X' not defined in your config (for this host).`
//! (before anything else, as drbdadm parses its configuration first).
//!
//! A refused state change is `<object>: State change failed: <why>`, the object being what
//! drbdadm handed drbdsetup: the minor `0` on 8.4, the resource `r0` on 9 for `primary`,
//! `secondary` and `down` (recorded for `primary` and `secondary`), the minor for `outdate` on
//! both. DRBD 9's kernel lines after it (`additional info from kernel:`, who holds the device
//! open) are not printed. The `Failure:` messages below are 8.4's on both versions (not
//! recorded on 9).
//!
//! - `up`: down → up, Secondary, connecting (connects when the peer is up and the link is not
//!   cut). Already up: exit 10 `(161) Minor or volume exists already`.
//! - `down`: up → down. Held open: exit 11 `(-12) Device is held open by someone`. Down
//!   already: 0.
//! - `primary`: down: exit 10 `(127) Device minor not allocated`. The connected peer is
//!   Primary: exit 11 `(-1) Multiple primaries not allowed by config` (not recorded from real
//!   DRBD; 8.4's message and its generic state-change exit code). Local disk not UpToDate:
//!   exit 17 `(-2) Need access to UpToDate data` (recorded; simplification: 8.4 would accept an
//!   Inconsistent disk with a connected UpToDate peer, the agent never asks for that).
//! - `primary --force`: as `primary` but a non-UpToDate disk (not Diskless) becomes UpToDate
//!   with a new generation; a connected peer then resyncs from it.
//! - `secondary`: held open: exit 11 `(-12) Device is held open by someone` (recorded); else
//!   Secondary (0 also when down or Secondary already).
//! - `outdate`: up, Secondary and not connected: disk Outdated. Primary: exit 17 `(-2) Need
//!   access to UpToDate data`; connected: exit 11 `(-6) Refusing to be Outdated while
//!   Connected` (DRBD's code for it; not recorded); down: 0 (8.4 outdates the meta-data;
//!   modelled as disk Outdated too). On 9, `drbdadm outdate` exits 20 saying so: drbd-utils
//!   9.22's fails on DRBD 9 (`tests/fixtures/drbd/9/README.md`); `drbdsetup outdate 0` works.
//! - `disconnect`: up → StandAlone (0 also when StandAlone already or down).
//! - `connect [--discard-my-data]`: StandAlone → connecting; `--discard-my-data` makes this
//!   node the sync target at the next connection (DRBD's manual split-brain recovery). Not
//!   StandAlone: exit 10 `(125) Device has a net-config (use disconnect first)` (not recorded;
//!   8.4's message). Down: exit 10 `(127) Device minor not allocated`.
//! - `adjust`: 0, no change. `dump`: 0, prints a small configuration.
//!
//! # `drbd-sim-ctl` (tests only; acts on the shared state, not on `DRBD_SIM_NODE`)
//!
//! - `held-open <a|b> <0|1>`: simulate a mount.
//! - `cut-link` / `restore-link`: the replication link.
//! - `crash <a|b>`: power failure: down, Secondary, not held open; the peer sees a disconnect.
//! - `disk <a|b> <state>`: set a disk state; UpToDate on a node that was not also gives it a
//!   new generation (its data is the newer), as `primary --force` would.
//! - `resync-ms <n>`: how long later resyncs take.
//! - `version <8.4|9>`: the DRBD version to speak.
//! - `show`: print the state file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::exit;
use std::time::{SystemTime, UNIX_EPOCH};

const RES: &str = "r0";
const DISKS: &[&str] = &[
    "UpToDate",
    "Inconsistent",
    "Outdated",
    "Consistent",
    "Diskless",
];

#[derive(Clone)]
struct Node {
    up: bool,
    primary: bool,
    disk: String,
    held_open: bool,
    standalone: bool,
    discard: bool,
    current: u64,
    base: u64,
}

struct State {
    a: Node,
    b: Node,
    link_cut: bool,
    resync_ms: u64,
    /// "a" or "b" while a resync runs, else empty.
    resync_source: String,
    resync_until: u64,
    next_gen: u64,
    /// Speaks DRBD 9 (`version=9`) rather than 8.4.
    v9: bool,
}

fn die(code: i32, msg: &str) -> ! {
    eprintln!("{msg}");
    exit(code)
}

fn state_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("DRBD_SIM_DIR") {
        return PathBuf::from(dir);
    }
    // <dir>/bin/<name>, as invoked (not the resolved symlink).
    let invoked = PathBuf::from(std::env::args().next().unwrap_or_default());
    invoked
        .parent()
        .and_then(|bin| bin.parent())
        .filter(|dir| dir.join("state").exists() || dir.join("nodes").exists())
        .map(PathBuf::from)
        .unwrap_or_else(|| die(20, "DRBD_SIM_DIR unset and not run as <dir>/bin/<name>"))
}

/// Wall-clock milliseconds: the state is shared by separate processes.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn is_stale(disk: &str) -> bool {
    matches!(disk, "Inconsistent" | "Outdated" | "Consistent")
}

impl State {
    fn load() -> State {
        let text = fs::read_to_string(state_dir().join("state")).unwrap_or_default();
        let kv: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let flag = |k: String| kv.get(k.as_str()) == Some(&"1");
        let num = |k: &str| kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(0u64);
        let node = |n: &str| Node {
            up: flag(format!("{n}.up")),
            primary: kv.get(format!("{n}.role").as_str()) == Some(&"Primary"),
            disk: kv
                .get(format!("{n}.disk").as_str())
                .unwrap_or(&"Inconsistent")
                .to_string(),
            held_open: flag(format!("{n}.held_open")),
            standalone: flag(format!("{n}.standalone")),
            discard: flag(format!("{n}.discard")),
            current: num(&format!("{n}.current")),
            base: num(&format!("{n}.base")),
        };
        let mut st = State {
            a: node("a"),
            b: node("b"),
            link_cut: kv.get("link_cut") == Some(&"1"),
            resync_ms: num("resync_ms"),
            resync_source: kv.get("resync_source").unwrap_or(&"").to_string(),
            resync_until: num("resync_until"),
            next_gen: num("next_gen").max(1),
            v9: kv.get("version") == Some(&"9"),
        };
        st.settle();
        st
    }

    fn save(&mut self) {
        self.settle();
        let mut text = String::new();
        for (n, s) in [("a", &self.a), ("b", &self.b)] {
            let role = if s.primary { "Primary" } else { "Secondary" };
            text += &format!(
                "{n}.up={}\n{n}.role={role}\n{n}.disk={}\n{n}.held_open={}\n\
                 {n}.standalone={}\n{n}.discard={}\n{n}.current={}\n{n}.base={}\n",
                u8::from(s.up),
                s.disk,
                u8::from(s.held_open),
                u8::from(s.standalone),
                u8::from(s.discard),
                s.current,
                s.base,
            );
        }
        text += &format!(
            "link_cut={}\nresync_ms={}\nresync_source={}\nresync_until={}\nnext_gen={}\n\
             version={}\n",
            u8::from(self.link_cut),
            self.resync_ms,
            self.resync_source,
            self.resync_until,
            self.next_gen,
            if self.v9 { "9" } else { "8.4" },
        );
        let dir = state_dir();
        let tmp = dir.join("state.tmp");
        let mut f = File::create(&tmp).expect("write state");
        f.write_all(text.as_bytes()).expect("write state");
        fs::rename(&tmp, dir.join("state")).expect("rename state");
    }

    fn connected(&self) -> bool {
        self.a.up && self.b.up && !self.link_cut && !self.a.standalone && !self.b.standalone
    }

    fn new_gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// The settling rules of the header, in order.
    fn settle(&mut self) {
        let connected = self.connected();
        for n in [&mut self.a, &mut self.b] {
            if !n.up {
                n.primary = false;
            }
        }
        for name in ["a", "b"] {
            let (n, _) = self.node(name);
            if n.up && n.primary && !connected && n.current == n.base {
                let g = self.new_gen();
                self.node(name).0.current = g;
            }
        }
        if !self.resync_source.is_empty() {
            if !connected {
                self.resync_source.clear();
            } else if now_ms() >= self.resync_until {
                let source = self.resync_source.clone();
                let (src, dst) = self.node(&source);
                dst.disk = "UpToDate".into();
                dst.current = src.current;
                dst.base = src.current;
                src.base = src.current;
                self.resync_source.clear();
            }
        }
        if connected && self.resync_source.is_empty() {
            self.on_connected();
        }
    }

    /// Generation comparison on a (re)connection; see rule 4 of the header.
    fn on_connected(&mut self) {
        let (a, b) = (&self.a, &self.b);
        let source = if a.discard || b.discard {
            Some(if a.discard { "b" } else { "a" })
        } else {
            let moved_a = a.current != a.base;
            let moved_b = b.current != b.base;
            if moved_a && moved_b && a.current != b.current {
                self.a.standalone = true;
                self.b.standalone = true;
                return;
            }
            if moved_a && a.current != b.current {
                Some("a")
            } else if moved_b && a.current != b.current {
                Some("b")
            } else if a.disk == "UpToDate" && is_stale(&b.disk) {
                Some("a")
            } else if b.disk == "UpToDate" && is_stale(&a.disk) {
                Some("b")
            } else {
                None
            }
        };
        self.a.discard = false;
        self.b.discard = false;
        match source {
            Some(src) => {
                let (s, t) = self.node(src);
                if t.disk == "Diskless" || s.disk != "UpToDate" {
                    return;
                }
                t.disk = "Inconsistent".into();
                self.resync_source = src.to_string();
                self.resync_until = now_ms() + self.resync_ms;
                if self.resync_ms == 0 {
                    self.settle();
                }
            }
            None => {
                if self.a.current == self.b.current {
                    self.a.base = self.a.current;
                    self.b.base = self.b.current;
                }
            }
        }
    }

    fn node(&mut self, name: &str) -> (&mut Node, &mut Node) {
        match name {
            "a" => (&mut self.a, &mut self.b),
            "b" => (&mut self.b, &mut self.a),
            _ => die(20, &format!("unknown node '{name}' (a or b)")),
        }
    }
}

fn this_node() -> String {
    if let Ok(node) = std::env::var("DRBD_SIM_NODE") {
        return node;
    }
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    fs::read_to_string(state_dir().join("nodes"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.split_once('=')
                .filter(|(h, _)| *h == host)
                .map(|(_, n)| n.to_string())
        })
        .unwrap_or_else(|| {
            die(
                20,
                &format!("DRBD_SIM_NODE unset and host '{host}' not in nodes"),
            )
        })
}

fn role(primary: bool) -> &'static str {
    if primary { "Primary" } else { "Secondary" }
}

/// What `events2` shows of the connection and the peer, from `me`'s side.
struct PeerView<'a> {
    connected: bool,
    /// Connection state: Connected, StandAlone or Connecting.
    cs: &'static str,
    role: &'static str,
    repl: &'static str,
    disk: &'a str,
}

fn events2(st: &mut State, res: &str) {
    let connected = st.connected();
    let v9 = st.v9;
    let me_name = this_node();
    let syncing_from = st.resync_source.clone();
    let (me, peer) = st.node(&me_name);
    if res == RES && me.up {
        let view = if connected {
            let repl = match syncing_from.as_str() {
                "" => "Established",
                s if s == me_name => "SyncSource",
                _ => "SyncTarget",
            };
            let (cs, role) = ("Connected", role(peer.primary));
            PeerView {
                connected,
                cs,
                role,
                repl,
                disk: &peer.disk,
            }
        } else {
            let cs = if me.standalone {
                "StandAlone"
            } else {
                "Connecting"
            };
            PeerView {
                connected,
                cs,
                role: "Unknown",
                repl: "Off",
                disk: "DUnknown",
            }
        };
        if v9 {
            events2_9(&me_name, me, &view);
        } else {
            events2_84(me, &view);
        }
    }
    println!("exists -");
}

fn events2_84(me: &Node, peer: &PeerView) {
    // As recorded: a StandAlone connection has no conn-name.
    let conn_name = if me.standalone { "" } else { " conn-name:peer" };
    println!(
        "exists resource name:{RES} role:{} suspended:no",
        role(me.primary)
    );
    println!(
        "exists connection name:{RES} peer-node-id:0{conn_name} connection:{} role:{}",
        peer.cs, peer.role
    );
    println!("exists device name:{RES} volume:0 minor:0 disk:{}", me.disk);
    println!(
        "exists peer-device name:{RES} peer-node-id:0{conn_name} volume:0 \
         replication:{} peer-disk:{} resync-suspended:no",
        peer.repl, peer.disk
    );
}

/// Host name, address and node-id of simulated node `a` or `b` in DRBD 9 mode: the recorded
/// two-node configuration names no node-ids, and drbd-utils gave alpha 1 and beta 0.
fn host9(node: &str) -> (&'static str, &'static str, u32) {
    match node {
        "a" => ("alpha", "198.18.3.1", 1),
        _ => ("beta", "198.18.3.2", 0),
    }
}

/// drbd-utils' `may_promote` and `promotion_score` (drbdsetup computes them from the states
/// it prints): no promotion without an UpToDate replica anywhere; may promote with UpToDate
/// data and no Primary, own or peer; the score is 10000 for a local disk that holds data
/// (UpToDate, Consistent or Inconsistent), 100 per UpToDate local volume, 1 per UpToDate
/// replica (local or peer). Quorum always holds: the two-node resource configures none.
fn promotion9(me: &Node, peer: &PeerView) -> (bool, u32) {
    let up_to_date = |d: &str| d == "UpToDate";
    let replicas = u32::from(up_to_date(&me.disk)) + u32::from(up_to_date(peer.disk));
    if replicas == 0 {
        return (false, 0);
    }
    let may = !me.primary && peer.role != "Primary" && up_to_date(&me.disk);
    let has_data = matches!(me.disk.as_str(), "UpToDate" | "Consistent" | "Inconsistent");
    let score = 10000 * u32::from(has_data) + 100 * u32::from(up_to_date(&me.disk)) + replicas;
    (may, score)
}

fn events2_9(me_name: &str, me: &Node, peer: &PeerView) {
    let (_, my_ip, _) = host9(me_name);
    let (peer_host, peer_ip, peer_id) = host9(if me_name == "a" { "b" } else { "a" });
    let peer_ctx = format!("name:{RES} peer-node-id:{peer_id} conn-name:{peer_host}");
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let (may_promote, score) = promotion9(me, peer);
    let backing = if me.disk == "Diskless" {
        "none"
    } else {
        "/dev/vda"
    };
    println!(
        "exists resource name:{RES} role:{} suspended:no force-io-failures:no \
         may_promote:{} promotion_score:{score}",
        role(me.primary),
        yes_no(may_promote)
    );
    println!(
        "exists connection {peer_ctx} connection:{} role:{}",
        peer.cs, peer.role
    );
    println!(
        "exists device name:{RES} volume:0 minor:0 backing_dev:{backing} disk:{} client:no \
         quorum:yes",
        me.disk
    );
    println!(
        "exists peer-device {peer_ctx} volume:0 replication:{} peer-disk:{} peer-client:no \
         resync-suspended:no",
        peer.repl, peer.disk
    );
    println!(
        "exists path {peer_ctx} local:ipv4:{my_ip}:7789 peer:ipv4:{peer_ip}:7789 \
         established:{}",
        yes_no(peer.connected)
    );
}

const HELD_OPEN: &str = "(-12) Device is held open by someone";
const NEED_UP_TO_DATE: &str = "(-2) Need access to UpToDate data";

/// A refused state change, prefixed with the object drbdsetup was given.
fn state_change_failed(object: &str, code: i32, why: &str) -> ! {
    die(code, &format!("{object}: State change failed: {why}"))
}

/// The object drbdadm hands drbdsetup for `primary`, `secondary` and `down`: 8.4's drbdsetup
/// takes the minor, 9's the resource.
fn role_object(v9: bool) -> &'static str {
    if v9 { RES } else { "0" }
}
const NOT_ALLOCATED: &str = "0: Failure: (127) Device minor not allocated";

fn down(v9: bool, me: &mut Node) {
    if me.up && me.held_open {
        state_change_failed(role_object(v9), 11, HELD_OPEN);
    }
    me.up = false;
}

fn drbdadm(st: &mut State, verb: &str, flags: &[&str]) {
    let connected = st.connected();
    let force = flags.contains(&"--force");
    let discard = flags.contains(&"--discard-my-data");
    let forced_gen = st.next_gen + 1;
    let v9 = st.v9;
    let (me, peer) = st.node(&this_node());
    match verb {
        "up" if me.up => die(
            10,
            "0: Failure: (161) Minor or volume exists already (delete it first)",
        ),
        "up" => {
            me.up = true;
            me.standalone = false;
        }
        "down" => down(v9, me),
        "primary" => {
            if !me.up {
                die(10, NOT_ALLOCATED);
            }
            if connected && peer.primary {
                state_change_failed(
                    role_object(v9),
                    11,
                    "(-1) Multiple primaries not allowed by config",
                );
            }
            if me.disk != "UpToDate" {
                if !force || me.disk == "Diskless" {
                    state_change_failed(role_object(v9), 17, NEED_UP_TO_DATE);
                }
                me.disk = "UpToDate".into();
                me.current = forced_gen;
                st.next_gen = forced_gen;
                st.resync_source.clear();
                let (me, _) = st.node(&this_node());
                me.primary = true;
                return;
            }
            me.primary = true;
        }
        "secondary" if me.up && me.primary && me.held_open => {
            state_change_failed(role_object(v9), 11, HELD_OPEN)
        }
        "secondary" => me.primary = false,
        // Outdate goes by minor on both versions.
        "outdate" if me.up && me.primary => state_change_failed("0", 17, NEED_UP_TO_DATE),
        "outdate" if connected => {
            state_change_failed("0", 11, "(-6) Refusing to be Outdated while Connected")
        }
        "outdate" => {
            if me.disk != "Diskless" && me.disk != "Inconsistent" {
                me.disk = "Outdated".into();
            }
        }
        "disconnect" => {
            if me.up {
                me.standalone = true;
            }
        }
        "connect" if !me.up => die(10, NOT_ALLOCATED),
        "connect" if !me.standalone => die(
            10,
            "0: Failure: (125) Device has a net-config (use disconnect first)",
        ),
        "connect" => {
            me.standalone = false;
            me.discard = discard;
        }
        "adjust" => {}
        "dump" => println!(
            "resource {RES} {{\n    on alpha {{ device /dev/drbd0 minor 0; disk /dev/vda; \
             address 198.18.3.1:7789; meta-disk internal; }}\n    on beta {{ device \
             /dev/drbd0 minor 0; disk /dev/vda; address 198.18.3.2:7789; meta-disk \
             internal; }}\n}}"
        ),
        other => die(
            20,
            &format!("drbd-sim: drbdadm verb '{other}' not simulated"),
        ),
    }
}

fn ctl(st: &mut State, args: &[String]) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["held-open", n, v] => st.node(n).0.held_open = *v == "1",
        ["cut-link"] => st.link_cut = true,
        ["restore-link"] => st.link_cut = false,
        ["crash", n] => {
            let (me, _) = st.node(n);
            me.up = false;
            me.held_open = false;
        }
        ["disk", n, d] if DISKS.contains(d) => {
            let newer = *d == "UpToDate" && st.node(n).0.disk != "UpToDate";
            let g = if newer { st.new_gen() } else { 0 };
            let (me, _) = st.node(n);
            if newer {
                me.current = g;
            }
            me.disk = d.to_string();
        }
        ["resync-ms", ms] => {
            st.resync_ms = ms
                .parse()
                .unwrap_or_else(|_| die(20, &format!("resync-ms: '{ms}' is not a number")))
        }
        ["version", "8.4"] => st.v9 = false,
        ["version", "9"] => st.v9 = true,
        ["show"] => {
            st.save();
            let text = fs::read_to_string(state_dir().join("state")).unwrap_or_default();
            print!("{text}");
        }
        _ => die(
            20,
            "usage: drbd-sim-ctl held-open <a|b> <0|1> | cut-link | restore-link | \
             crash <a|b> | disk <a|b> <state> | resync-ms <n> | version <8.4|9> | show",
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = PathBuf::from(&args[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = state_dir();
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .unwrap_or_else(|e| die(20, &format!("{}: {e}", dir.display())));
    lock.lock().expect("lock");
    let mut st = State::load();
    let rest = &args[1..];
    match name.as_str() {
        "drbdsetup" => match rest
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["events2", "--now", res] => events2(&mut st, res),
            ["down", res] if *res == RES => {
                let v9 = st.v9;
                down(v9, st.node(&this_node()).0)
            }
            ["down", _] => {}
            // The simulated resource's one volume is minor 0.
            ["outdate", "0"] => drbdadm(&mut st, "outdate", &[]),
            _ => die(20, &format!("drbd-sim: drbdsetup {rest:?} not simulated")),
        },
        "drbdadm" => {
            let mut words: Vec<&str> = vec![];
            let mut it = rest.iter();
            while let Some(w) = it.next() {
                if w == "-c" {
                    it.next();
                } else {
                    words.push(w);
                }
            }
            let (flags, words): (Vec<&str>, Vec<&str>) =
                words.into_iter().partition(|w| w.starts_with("--"));
            let [verb, res] = words.as_slice() else {
                die(20, &format!("drbd-sim: drbdadm {rest:?} not simulated"));
            };
            if *res != RES {
                die(
                    10,
                    &format!("'{res}' not defined in your config (for this host)."),
                );
            }
            if st.v9 && *verb == "outdate" {
                die(
                    20,
                    "drbd-sim: drbdadm outdate fails on DRBD 9 (drbd-utils 9.22): use \
                     drbdsetup outdate 0",
                );
            }
            drbdadm(&mut st, verb, &flags);
        }
        _ => ctl(&mut st, rest),
    }
    st.save();
}
