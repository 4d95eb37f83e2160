//! drbd-sim: a DRBD 8.4 userland simulator for tests (never shipped). One binary that acts as
//! `drbdadm`, `drbdsetup` or `drbd-sim-ctl` depending on the file name it is run under
//! (the tests symlink it under all three), for ONE resource `r0` shared by two simulated
//! nodes `a` and `b`.
//!
//! Environment: `DRBD_SIM_DIR` holds the shared state (`state`, `key=value` lines, replaced
//! atomically by rename; every command holds an exclusive lock on `lock` for its whole run, so
//! two nodes' agents do not race), `DRBD_SIM_NODE` (`a` or `b`) says which node "this" is.
//!
//! # State
//!
//! Per node: `up` (resource configured), `role` (Primary/Secondary), `disk`
//! (UpToDate/Inconsistent/Outdated/Consistent/Diskless), `held_open` (a mount, set by the
//! test). Shared: `link_cut`. The nodes are *connected* when both are up and the link is not
//! cut; there is no StandAlone state (no `disconnect` verb) and no split-brain detection on
//! reconnect. Initial state: both down, both disks Inconsistent (fresh meta-data), link up.
//!
//! After every change the state *settles*: a down node is Secondary; while connected, a node
//! whose disk is Inconsistent/Outdated/Consistent facing an UpToDate peer becomes UpToDate at
//! once (resync is instantaneous: SyncSource/SyncTarget are never shown).
//!
//! # `drbdsetup events2 --now r0` (as recorded in `tests/fixtures/drbd/8.4`)
//!
//! - down (or another resource name): `exists -` only.
//! - up: the `resource` line (own role), the `connection` line (`Connected` and the peer's
//!   role when connected, else `Connecting` and `role:Unknown`), the `device` line (own disk),
//!   the `peer-device` line (`Established` and the peer's disk when connected, else `Off` and
//!   `DUnknown`), then `exists -`. `peer-node-id` is 0 on both nodes, as 8.4 prints.
//!
//! `drbdsetup down r0` is `drbdadm down r0`.
//!
//! # `drbdadm -c <conf> <verb> [--force] <res>`
//!
//! A resource other than `r0`: exit 10, `'X' not defined in your config (for this host).`
//! (before anything else, as drbdadm parses its configuration first).
//!
//! - `up`: down → up, Secondary (connects when the peer is up and the link is not cut).
//!   Already up: exit 10 `(161) Minor or volume exists already`.
//! - `down`: up → down. Held open: exit 11 `(-12) Device is held open by someone`. Down
//!   already: 0.
//! - `primary`: down: exit 10 `(127) Device minor not allocated`. The connected peer is
//!   Primary: exit 11 `(-1) Multiple primaries not allowed by config` (not recorded from real
//!   DRBD; 8.4's message and its generic state-change exit code). Local disk not UpToDate:
//!   exit 17 `(-2) Need access to UpToDate data` (recorded; simplification: 8.4 would accept an
//!   Inconsistent disk with a connected UpToDate peer, the agent never asks for that).
//! - `primary --force`: as `primary` but a non-UpToDate disk (not Diskless) becomes UpToDate;
//!   a connected peer then resyncs from it (instantly).
//! - `secondary`: held open: exit 11 `(-12) Device is held open by someone` (recorded); else
//!   Secondary (0 also when down or Secondary already).
//! - `outdate`: up, Secondary and not connected: disk Outdated. Primary: exit 17 `(-2) Need
//!   access to UpToDate data`; connected: exit 11 `(-15) Refusing to be Outdated while
//!   Connected`; down: 0 (8.4 outdates the meta-data; modelled as disk Outdated too).
//! - `adjust`: 0, no change. `dump`: 0, prints a small configuration.
//!
//! # `drbd-sim-ctl` (tests only; acts on the shared state, not on `DRBD_SIM_NODE`)
//!
//! - `held-open <a|b> <0|1>`: simulate a mount.
//! - `cut-link` / `restore-link`: the replication link.
//! - `crash <a|b>`: power failure: down, Secondary, not held open; the peer sees a disconnect.
//! - `disk <a|b> <state>`: set a disk state (the state settles afterwards).
//! - `show`: print the state file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::exit;

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
}

struct State {
    a: Node,
    b: Node,
    link_cut: bool,
}

fn die(code: i32, msg: &str) -> ! {
    eprintln!("{msg}");
    exit(code)
}

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("DRBD_SIM_DIR").unwrap_or_else(|_| die(20, "DRBD_SIM_DIR unset")))
}

impl State {
    fn load() -> State {
        let text = fs::read_to_string(state_dir().join("state")).unwrap_or_default();
        let kv: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let node = |n: &str| Node {
            up: kv.get(format!("{n}.up").as_str()) == Some(&"1"),
            primary: kv.get(format!("{n}.role").as_str()) == Some(&"Primary"),
            disk: kv
                .get(format!("{n}.disk").as_str())
                .unwrap_or(&"Inconsistent")
                .to_string(),
            held_open: kv.get(format!("{n}.held_open").as_str()) == Some(&"1"),
        };
        State {
            a: node("a"),
            b: node("b"),
            link_cut: kv.get("link_cut") == Some(&"1"),
        }
    }

    fn save(&mut self) {
        self.settle();
        let mut text = String::new();
        for (n, s) in [("a", &self.a), ("b", &self.b)] {
            let role = if s.primary { "Primary" } else { "Secondary" };
            text += &format!(
                "{n}.up={}\n{n}.role={role}\n{n}.disk={}\n{n}.held_open={}\n",
                u8::from(s.up),
                s.disk,
                u8::from(s.held_open)
            );
        }
        text += &format!("link_cut={}\n", u8::from(self.link_cut));
        let dir = state_dir();
        let tmp = dir.join("state.tmp");
        let mut f = File::create(&tmp).expect("write state");
        f.write_all(text.as_bytes()).expect("write state");
        fs::rename(&tmp, dir.join("state")).expect("rename state");
    }

    fn connected(&self) -> bool {
        self.a.up && self.b.up && !self.link_cut
    }

    fn settle(&mut self) {
        for n in [&mut self.a, &mut self.b] {
            if !n.up {
                n.primary = false;
            }
        }
        if self.connected() {
            let stale = |d: &str| matches!(d, "Inconsistent" | "Outdated" | "Consistent");
            if self.a.disk == "UpToDate" && stale(&self.b.disk) {
                self.b.disk = "UpToDate".into();
            }
            if self.b.disk == "UpToDate" && stale(&self.a.disk) {
                self.a.disk = "UpToDate".into();
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
    std::env::var("DRBD_SIM_NODE").unwrap_or_else(|_| die(20, "DRBD_SIM_NODE unset"))
}

fn role(primary: bool) -> &'static str {
    if primary { "Primary" } else { "Secondary" }
}

fn events2(st: &mut State, res: &str) {
    let connected = st.connected();
    let (me, peer) = st.node(&this_node());
    if res == RES && me.up {
        let (cs, prole, repl, pdisk) = if connected {
            (
                "Connected",
                role(peer.primary),
                "Established",
                peer.disk.as_str(),
            )
        } else {
            ("Connecting", "Unknown", "Off", "DUnknown")
        };
        println!(
            "exists resource name:{RES} role:{} suspended:no",
            role(me.primary)
        );
        println!(
            "exists connection name:{RES} peer-node-id:0 conn-name:peer connection:{cs} \
             role:{prole}"
        );
        println!("exists device name:{RES} volume:0 minor:0 disk:{}", me.disk);
        println!(
            "exists peer-device name:{RES} peer-node-id:0 conn-name:peer volume:0 \
             replication:{repl} peer-disk:{pdisk} resync-suspended:no"
        );
    }
    println!("exists -");
}

const HELD_OPEN: &str = "0: State change failed: (-12) Device is held open by someone";

fn down(me: &mut Node) {
    if me.up && me.held_open {
        die(11, HELD_OPEN);
    }
    me.up = false;
}

fn drbdadm(st: &mut State, verb: &str, force: bool) {
    let connected = st.connected();
    let (me, peer) = st.node(&this_node());
    match verb {
        "up" if me.up => die(
            10,
            "0: Failure: (161) Minor or volume exists already (delete it first)",
        ),
        "up" => me.up = true,
        "down" => down(me),
        "primary" => {
            if !me.up {
                die(10, "0: Failure: (127) Device minor not allocated");
            }
            if connected && peer.primary {
                die(
                    11,
                    "0: State change failed: (-1) Multiple primaries not allowed by config",
                );
            }
            if me.disk != "UpToDate" {
                if !force || me.disk == "Diskless" {
                    die(
                        17,
                        "0: State change failed: (-2) Need access to UpToDate data",
                    );
                }
                me.disk = "UpToDate".into();
            }
            me.primary = true;
        }
        "secondary" if me.up && me.primary && me.held_open => die(11, HELD_OPEN),
        "secondary" => me.primary = false,
        "outdate" if me.up && me.primary => die(
            17,
            "0: State change failed: (-2) Need access to UpToDate data",
        ),
        "outdate" if connected => die(
            11,
            "0: State change failed: (-15) Refusing to be Outdated while Connected",
        ),
        "outdate" => {
            if me.disk != "Diskless" && me.disk != "Inconsistent" {
                me.disk = "Outdated".into();
            }
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
        ["disk", n, d] if DISKS.contains(d) => st.node(n).0.disk = d.to_string(),
        ["show"] => {
            st.settle();
            let text = fs::read_to_string(state_dir().join("state")).unwrap_or_default();
            print!("{text}");
        }
        _ => die(
            20,
            "usage: drbd-sim-ctl held-open <a|b> <0|1> | cut-link | restore-link | \
             crash <a|b> | disk <a|b> <state> | show",
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
            ["down", res] if *res == RES => down(st.node(&this_node()).0),
            ["down", _] => {}
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
            let force = words.contains(&"--force");
            words.retain(|w| *w != "--force");
            let [verb, res] = words.as_slice() else {
                die(20, &format!("drbd-sim: drbdadm {rest:?} not simulated"));
            };
            if *res != RES {
                die(
                    10,
                    &format!("'{res}' not defined in your config (for this host)."),
                );
            }
            drbdadm(&mut st, verb, force);
        }
        _ => ctl(&mut st, rest),
    }
    st.save();
}
