//! Real DRBD 8.4.11 in two QEMU guests (`make test-vm`; built only with `--features vm-tests`):
//! the behaviour drbd-agent and the DRBD simulator must match, driven here with the real
//! `drbdadm` of drbd-utils 9.22, then drbd-agent itself against the same real DRBD.
//!
//! The scenario asserts each state it reaches by parsing `drbdadm status r0`. With
//! `FERROHA_RECORD_DRBD=1` it also records, at each distinct state, what DRBD's userland prints
//! there into `tests/fixtures/drbd/8.4/<state>/<command>.txt` (format in that directory's
//! README.md): data for the simulator, never compared here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::util::host::is_root;
use crate::util::vm::{Drbd, Exec, Guest, Pair, PairOptions, Trio};

/// TCG is slow, the machine shared: waits for DRBD state changes are generous.
const STATE_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(300);

/// `drbdadm status r0` parsed into `key -> value`: the node's own fields under their names
/// (`role`, `disk`), the peer's prefixed with `peer.` (`peer.role`, `peer.connection`,
/// `peer.replication`, `peer.peer-disk`, `peer.done`). Empty when the resource is down.
#[derive(Debug, Default, Clone)]
struct Status {
    fields: BTreeMap<String, String>,
    text: String,
}

impl Status {
    fn parse(text: &str) -> Status {
        let mut fields = BTreeMap::new();
        let mut prefix = "";
        for (n, line) in text.lines().enumerate() {
            let mut tokens = line.split_whitespace().peekable();
            // First line: `r0 role:X`; a line opening with a bare word after it (the peer's
            // name, `peer` in 8.4's emulation) starts the peer's section.
            if let Some(first) = tokens.peek()
                && !first.contains(':')
            {
                if n > 0 {
                    prefix = "peer.";
                }
                tokens.next();
            }
            for token in tokens {
                if let Some((key, value)) = token.split_once(':') {
                    fields.insert(format!("{prefix}{key}"), value.to_owned());
                }
            }
        }
        // DRBD 9 leaves out what is as it should be: `connection:Connected` of a connected
        // peer and `replication:Established` of a volume replicating normally.
        if fields.contains_key("peer.role") && !fields.contains_key("peer.connection") {
            fields.insert("peer.connection".into(), "Connected".into());
        }
        if fields.contains_key("peer.peer-disk") && !fields.contains_key("peer.replication") {
            fields.insert("peer.replication".into(), "Established".into());
        }
        Status {
            fields,
            text: text.to_owned(),
        }
    }

    fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }

    fn role(&self) -> &str {
        self.get("role")
    }

    fn disk(&self) -> &str {
        self.get("disk")
    }

    fn peer_disk(&self) -> &str {
        self.get("peer.peer-disk")
    }

    /// Connected to the peer: a replication state is shown (Established, SyncSource, ...).
    fn replication(&self) -> &str {
        self.get("peer.replication")
    }

    fn connected(&self) -> bool {
        !self.replication().is_empty()
    }

    fn is_down(&self) -> bool {
        self.fields.is_empty()
    }
}

fn status(guest: &Guest) -> Status {
    let exec = guest.exec("drbdadm status r0", Duration::from_secs(30));
    if exec.code == 0 {
        Status::parse(&exec.stdout)
    } else {
        Status {
            text: exec.stderr,
            ..Status::default()
        }
    }
}

/// Poll `drbdadm status r0` on `guest` until `pred` holds; panics with the last status.
fn wait_status(guest: &Guest, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
    let start = Instant::now();
    loop {
        let last = status(guest);
        if pred(&last) {
            eprintln!("{}: {what} after {:.1?}", guest.name(), start.elapsed());
            return last;
        }
        if start.elapsed() >= STATE_TIMEOUT {
            panic!(
                "{}: timed out after {STATE_TIMEOUT:?} waiting for {what}; \
                 last `drbdadm status r0`:\n{}",
                guest.name(),
                last.text
            );
        }
        std::thread::sleep(POLL);
    }
}

fn connected_up_to_date(s: &Status) -> bool {
    s.replication() == "Established" && s.disk() == "UpToDate" && s.peer_disk() == "UpToDate"
}

/// Records fixtures when `FERROHA_RECORD_DRBD=1`; otherwise does nothing.
struct Recorder {
    dir: Option<PathBuf>,
    drbd: Drbd,
}

/// What is recorded at each state: (file name, command).
const STATE_COMMANDS: &[(&str, &str)] = &[
    ("drbdadm-status", "drbdadm status r0"),
    ("drbdadm-role", "drbdadm role r0"),
    ("drbdadm-cstate", "drbdadm cstate r0"),
    ("drbdadm-dstate", "drbdadm dstate r0"),
    ("drbdsetup-sh-status", "drbdsetup sh-status r0"),
    ("drbdsetup-events2-now", "drbdsetup events2 --now r0"),
    ("proc-drbd", "cat /proc/drbd"),
];

/// Recorded on DRBD 9 only (drbd-utils has no JSON for 8.4).
const STATE_COMMANDS_9: &[(&str, &str)] =
    &[("drbdsetup-status-json", "drbdsetup status --json r0")];

impl Recorder {
    fn from_env(drbd: Drbd) -> Recorder {
        let on = std::env::var("FERROHA_RECORD_DRBD").is_ok_and(|v| v == "1");
        Recorder {
            dir: on.then(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/drbd")
                    .join(drbd.as_str())
            }),
            drbd,
        }
    }

    /// Record every command of [`STATE_COMMANDS`] on `guest` under `state`.
    fn state(&self, guest: &Guest, state: &str) {
        if self.dir.is_none() {
            return;
        }
        let start = Instant::now();
        let extra = if self.drbd == Drbd::V9 {
            STATE_COMMANDS_9
        } else {
            &[]
        };
        for (file, command) in STATE_COMMANDS.iter().chain(extra) {
            let exec = guest.exec(command, Duration::from_secs(30));
            self.write(state, file, &exec);
        }
        eprintln!(
            "{}: recorded {state} in {:.1?}",
            guest.name(),
            start.elapsed()
        );
    }

    /// Write what one command returned, as `<state>/<file>.txt`.
    fn write(&self, state: &str, file: &str, exec: &Exec) {
        let Some(dir) = &self.dir else { return };
        let dir = dir.join(state);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let mut text = format!("# exit {}\n{}", exec.code, exec.stdout);
        if !exec.stderr.is_empty() {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("# stderr\n");
            text.push_str(&exec.stderr);
        }
        std::fs::write(dir.join(format!("{file}.txt")), text).expect("fixture file");
    }
}

/// Run a command DRBD must refuse; assert it fails, record it, return what it printed.
fn refused(rec: &Recorder, guest: &Guest, state: &str, file: &str, command: &str) -> Exec {
    let exec = guest.exec(command, Duration::from_secs(60));
    assert_ne!(
        exec.code,
        0,
        "{}: `{command}` should be refused\n{}{}",
        guest.name(),
        exec.stdout,
        exec.stderr
    );
    rec.write(state, file, &exec);
    exec
}

/// Everything the real tier must show of DRBD itself, with `drbdadm` in place of the agent.
#[test]
#[ignore = "needs root"]
fn drbd_84_up_sync_crash_failover_resync_link_cut_demote_down() {
    up_sync_crash_failover_resync_link_cut_demote_down(Drbd::V84);
}

/// The same on DRBD 9.
#[test]
#[ignore = "needs root"]
fn drbd_9_up_sync_crash_failover_resync_link_cut_demote_down() {
    up_sync_crash_failover_resync_link_cut_demote_down(Drbd::V9);
}

fn up_sync_crash_failover_resync_link_cut_demote_down(drbd: Drbd) {
    assert!(
        is_root(),
        "the VM tier needs root (debootstrap, QEMU); run `make test-vm`"
    );
    let rec = Recorder::from_env(drbd);
    let pair = Pair::with(PairOptions {
        drbd,
        ..PairOptions::default()
    });
    let (a, b) = (&pair.a, &pair.b);
    let start = Instant::now();
    for g in [a, b] {
        eprintln!("{} {} qemu pid {:?}", g.name(), g.ip(), g.pid());
    }
    eprintln!("shared as /share: {}", pair.share().display());
    let version = a.run_ok("cat /proc/drbd");
    assert!(
        version.contains(drbd.proc_version_prefix()),
        "{drbd:?} expected: {version}"
    );

    // Unconfigured: the module is loaded, the resource is not up.
    assert!(status(a).is_down());
    rec.state(a, "unconfigured-no-metadata");

    // create-md + up on both: Connected, Secondary/Secondary, Inconsistent/Inconsistent.
    for g in [a, b] {
        g.run_ok("drbdadm create-md r0 && drbdadm up r0");
    }
    for g in [a, b] {
        wait_status(g, "Connected Secondary/Secondary Inconsistent", |s| {
            s.replication() == "Established"
                && s.role() == "Secondary"
                && s.get("peer.role") == "Secondary"
                && s.disk() == "Inconsistent"
                && s.peer_disk() == "Inconsistent"
        });
    }
    rec.state(a, "secondary-inconsistent-connected");
    refused(
        &rec,
        a,
        "secondary-inconsistent-connected",
        "drbdadm-primary",
        "drbdadm primary r0",
    );

    // Initial sync with a forced first Primary. Slowed down first (both ends: the SyncTarget's
    // rate rules in 8.4) so the mid-sync state can be seen, then back to the defaults.
    for g in [a, b] {
        let (code, out) = g.run("drbdadm disk-options --c-plan-ahead=0 --resync-rate=2M r0");
        if code != 0 {
            eprintln!("{}: cannot slow the resync down ({code}): {out}", g.name());
        }
    }
    a.run_ok("drbdadm primary --force r0");
    let s = wait_status(a, "Primary, syncing or synced", |s| {
        s.role() == "Primary" && s.disk() == "UpToDate" && s.connected()
    });
    if s.replication() == "SyncSource" {
        rec.state(a, "primary-sync-source");
        rec.state(b, "secondary-sync-target");
    } else {
        eprintln!("initial sync finished before it could be recorded");
    }
    for g in [a, b] {
        g.run("drbdadm disk-options --c-plan-ahead=20 --resync-rate=250k r0");
    }
    for g in [a, b] {
        wait_status(g, "UpToDate/UpToDate", connected_up_to_date);
    }
    assert_eq!(status(b).role(), "Secondary");
    rec.state(a, "primary-uptodate-connected");
    rec.state(b, "secondary-uptodate-connected");

    // A filesystem and data on alpha; then alpha loses power with it mounted.
    a.run_ok(
        "mkfs.ext4 -q /dev/drbd0 && mount /dev/drbd0 /mnt && \
         echo written-by-alpha > /mnt/alpha && sync",
    );
    let crash = Instant::now();
    a.power_off();
    wait_status(b, "peer gone", |s| {
        !s.connected() && s.peer_disk() != "UpToDate"
    });
    eprintln!("beta noticed the crash in {:.1?}", crash.elapsed());
    rec.state(b, "secondary-peer-gone");

    // Fail-over: beta is promoted (UpToDate, peer unknown, no fencing: allowed), the data is
    // there, beta writes while alpha is down.
    b.run_ok("drbdadm primary r0 && mount /dev/drbd0 /mnt");
    assert_eq!(b.run_ok("cat /mnt/alpha"), "written-by-alpha\n");
    b.run_ok("echo written-by-beta > /mnt/beta && sync");
    wait_status(b, "Primary, peer gone", |s| {
        s.role() == "Primary" && !s.connected()
    });
    rec.state(b, "primary-peer-gone");

    // alpha comes back with its disk: up, resync from beta, UpToDate on both.
    let reboot = Instant::now();
    a.boot();
    assert!(status(a).is_down(), "no resource is up after a reboot");
    a.run_ok("drbdadm up r0");
    for g in [a, b] {
        wait_status(g, "resynced UpToDate/UpToDate", connected_up_to_date);
    }
    eprintln!("alpha back and resynced in {:.1?}", reboot.elapsed());
    assert_eq!(status(a).role(), "Secondary");
    assert_eq!(status(b).role(), "Primary");

    // Link cut: both lose the connection (no FIN: ping timeout), each keeps its role.
    a.cut_link();
    b.cut_link();
    let sa = wait_status(a, "link cut on alpha", |s| !s.connected());
    let sb = wait_status(b, "link cut on beta", |s| !s.connected());
    assert_eq!((sa.role(), sb.role()), ("Secondary", "Primary"));
    rec.state(b, "primary-link-cut");
    rec.state(a, "secondary-link-cut");
    b.run_ok("echo written-during-cut > /mnt/cut && sync");

    // The disconnected Secondary is outdated by hand (what a fence-peer handler would do);
    // an Outdated node refuses to become Primary without --force.
    if drbd == Drbd::V9 {
        // DRBD 9 refuses to outdate a disk while it tries to connect: disconnect first, as
        // LINBIT's agent does.
        a.run_ok("drbdadm disconnect r0");
        // Outdating is refused while the connection is still being torn down (drbdadm then
        // tries drbdmeta, which refuses a configured device): wait for StandAlone.
        wait_status(a, "StandAlone", |s| {
            s.get("peer.connection") == "StandAlone"
        });
    }
    // By minor: drbd-utils 9.22's `drbdadm outdate` hands DRBD 9's drbdsetup the resource
    // name where it wants a minor, then tries drbdmeta, which refuses a configured device.
    a.run_ok(match drbd {
        Drbd::V84 => "drbdadm outdate r0",
        Drbd::V9 => "drbdsetup outdate 0",
    });
    wait_status(a, "Outdated", |s| s.disk() == "Outdated");
    rec.state(a, "secondary-outdated");
    refused(
        &rec,
        a,
        "secondary-outdated",
        "drbdadm-primary",
        "drbdadm primary r0",
    );

    // StandAlone: the Primary stops trying to connect.
    b.run_ok("drbdadm disconnect r0");
    wait_status(b, "StandAlone", |s| !s.connected());
    rec.state(b, "primary-standalone");

    // Restore: reconnect, bitmap resync from beta, UpToDate on both.
    a.restore_link();
    b.restore_link();
    b.run_ok("drbdadm connect r0");
    if drbd == Drbd::V9 {
        a.run_ok("drbdadm connect r0");
    }
    for g in [a, b] {
        wait_status(g, "reconnected UpToDate/UpToDate", connected_up_to_date);
    }

    // Demotion is refused while the device is mounted, and works after umount.
    let exec = refused(
        &rec,
        b,
        "primary-mounted",
        "drbdadm-secondary",
        "drbdadm secondary r0",
    );
    assert!(
        exec.stderr.contains("held open"),
        "unexpected refusal: {}",
        exec.stderr
    );
    b.run_ok("umount /mnt && drbdadm secondary r0");
    for g in [a, b] {
        wait_status(g, "Secondary/Secondary UpToDate", |s| {
            connected_up_to_date(s) && s.role() == "Secondary" && s.get("peer.role") == "Secondary"
        });
    }
    rec.state(a, "secondary-secondary-uptodate");

    // Planned fail-back to alpha: everything beta wrote reached it.
    a.run_ok("drbdadm primary r0 && mount /dev/drbd0 /mnt");
    assert_eq!(
        a.run_ok("cat /mnt/alpha /mnt/beta /mnt/cut"),
        "written-by-alpha\nwritten-by-beta\nwritten-during-cut\n"
    );
    a.run_ok("umount /mnt && drbdadm secondary r0");

    // Down on both.
    for g in [a, b] {
        g.run_ok("drbdadm down r0");
        wait_status(g, "down", Status::is_down);
    }
    rec.state(a, "down");
    eprintln!("scenario done in {:.1?}", start.elapsed());
}

#[test]
fn status_parser_reads_the_9_style_format() {
    let s = Status::parse(
        "r0 role:Primary\n  disk:UpToDate\n  peer role:Secondary\n    \
         replication:SyncSource peer-disk:Inconsistent done:12.50\n\n",
    );
    assert_eq!(s.role(), "Primary");
    assert_eq!(s.disk(), "UpToDate");
    assert_eq!(s.get("peer.role"), "Secondary");
    assert_eq!(s.replication(), "SyncSource");
    assert_eq!(s.peer_disk(), "Inconsistent");
    let s = Status::parse("r0 role:Secondary\n  disk:UpToDate\n  peer connection:Connecting\n");
    assert!(!s.connected());
    assert_eq!(s.get("peer.connection"), "Connecting");
}

/// drbd-agent (the binary of this build, shared into the guests) run against real DRBD.
fn agent(guest: &Guest, action: &str, env: &str) -> Exec {
    guest.exec(
        &format!(
            "OCF_RESKEY_drbd_resource=r0 OCF_RESKEY_drbdconf=/etc/drbd.conf \
             OCF_RESOURCE_INSTANCE=drbd_r0 OCF_RESKEY_CRM_meta_interval=10000 {env} \
             /share/drbd-agent {action}"
        ),
        Duration::from_secs(120),
    )
}

/// Clone mode, as Pacemaker runs it.
const CLONE: &str = "OCF_RESKEY_CRM_meta_promotable=true OCF_RESKEY_CRM_meta_clone_max=2";

fn assert_rc(exec: &Exec, rc: i32, what: &str) {
    assert_eq!(
        exec.code, rc,
        "{what}: stdout {}\nstderr {}",
        exec.stdout, exec.stderr
    );
}

#[test]
#[ignore = "needs root"]
fn drbd_agent_against_real_drbd() {
    agent_against_real_drbd(Drbd::V84);
}

/// The same on DRBD 9.
#[test]
#[ignore = "needs root"]
fn drbd_agent_against_real_drbd_9() {
    agent_against_real_drbd(Drbd::V9);
}

/// Two guests on `drbd` with this build's drbd-agent and fs-agent in their share.
fn pair_with_agents(drbd: Drbd) -> Pair {
    assert!(is_root(), "the VM tier needs root; run `make test-vm`");
    let pair = Pair::with(PairOptions {
        drbd,
        ..PairOptions::default()
    });
    for (name, built) in [
        ("drbd-agent", env!("CARGO_BIN_EXE_drbd-agent")),
        ("fs-agent", env!("CARGO_BIN_EXE_fs-agent")),
    ] {
        std::fs::copy(built, pair.share().join(name)).unwrap();
    }
    pair
}

fn agent_against_real_drbd(drbd: Drbd) {
    let pair = pair_with_agents(drbd);
    let (a, b) = (&pair.a, &pair.b);
    // validate-all: the module and tools pair is fine; DRBD 9's default auto-promote draws a
    // warning; a third clone instance has no node to run on.
    let valid = agent(a, "validate-all", CLONE);
    assert_rc(&valid, 0, "validate-all");
    assert_eq!(
        valid.stderr.contains("auto-promote on"),
        drbd == Drbd::V9,
        "{}",
        valid.stderr
    );
    let three = agent(
        a,
        "validate-all",
        "OCF_RESKEY_CRM_meta_promotable=true OCF_RESKEY_CRM_meta_clone_max=3",
    );
    assert_rc(&three, 6, "validate-all with clone-max 3");
    let why = match drbd {
        Drbd::V84 => "DRBD 8.4 replicates between two nodes",
        Drbd::V9 => "names 2 nodes",
    };
    assert!(three.stderr.contains(why), "{}", three.stderr);
    for g in [a, b] {
        g.run_ok("drbdadm create-md r0");
        assert_rc(&agent(g, "validate-all", CLONE), 0, "validate-all");
        assert_rc(&agent(g, "monitor", CLONE), 7, "monitor while down");
        assert_rc(&agent(g, "start", CLONE), 0, "clone start");
        assert_rc(&agent(g, "start", CLONE), 0, "double start");
    }
    for g in [a, b] {
        wait_status(g, "Connected Inconsistent", |s| {
            s.replication() == "Established"
        });
        assert_rc(&agent(g, "monitor", CLONE), 0, "Secondary monitor");
    }
    // Inconsistent data is never promoted.
    let refused = agent(a, "promote", CLONE);
    assert_rc(&refused, 1, "promote while Inconsistent");
    assert!(
        refused.stderr.contains("refusing to promote"),
        "{}",
        refused.stderr
    );
    // The operator forces the first Primary (initial sync), as with LINBIT's agent.
    a.run_ok("drbdadm primary --force r0");
    for g in [a, b] {
        wait_status(g, "UpToDate/UpToDate", connected_up_to_date);
    }
    assert_rc(&agent(a, "monitor", CLONE), 8, "Primary monitor");
    assert_rc(&agent(b, "monitor", CLONE), 0, "Secondary monitor");
    // A Primary peer blocks promotion; after demotion it works.
    let refused = agent(b, "promote", CLONE);
    assert_rc(&refused, 1, "promote while the peer is Primary");
    assert!(refused.stderr.contains("Primary"), "{}", refused.stderr);
    assert_rc(&agent(a, "demote", CLONE), 0, "demote a");
    assert_rc(&agent(b, "promote", CLONE), 0, "promote b");
    assert_rc(&agent(b, "monitor", CLONE), 8, "b Primary");
    // fs-agent mounts the device; DRBD then refuses the demotion, and the reason says why.
    let fs = |g: &Guest, action: &str| {
        g.exec(
            &format!(
                "OCF_RESKEY_device=/dev/drbd0 OCF_RESKEY_directory=/mnt/r0 \
                 OCF_RESKEY_fstype=ext4 /share/fs-agent {action}"
            ),
            Duration::from_secs(120),
        )
    };
    b.run_ok("mkfs.ext4 -q /dev/drbd0 && echo committed > /tmp/marker");
    assert_rc(&fs(b, "start"), 0, "fs-agent start on the Primary");
    b.run_ok("cp /tmp/marker /mnt/r0/marker && sync");
    let held = agent(b, "demote", CLONE);
    assert_rc(&held, 1, "demote while mounted");
    assert!(held.stderr.contains("still open"), "{}", held.stderr);
    assert_rc(&fs(b, "stop"), 0, "fs-agent stop");
    assert_rc(
        &agent(b, "demote", CLONE),
        0,
        "demote after fs-agent unmounted",
    );
    // b becomes Primary again and then dies (kill -9 of its VM): the survivor a, UpToDate
    // with its peer gone, is promoted by the agent and has the data.
    assert_rc(&agent(b, "promote", CLONE), 0, "promote b again");
    b.power_off();
    wait_status(a, "peer gone", |s| !s.connected());
    assert_rc(&agent(a, "monitor", CLONE), 0, "survivor Secondary");
    assert_rc(&agent(a, "promote", CLONE), 0, "promote the survivor");
    assert_rc(&agent(a, "monitor", CLONE), 8, "survivor Primary");
    assert_rc(&fs(a, "start"), 0, "fs-agent start on the survivor");
    assert_eq!(a.run_ok("cat /mnt/r0/marker").trim(), "committed");
    assert_rc(&fs(a, "stop"), 0, "fs-agent stop on the survivor");
    assert_rc(&agent(a, "demote", CLONE), 0, "demote the survivor");
    // b returns: up again through the agent, it resyncs from a.
    b.boot();
    assert_rc(&agent(b, "start", CLONE), 0, "clone start after the crash");
    for g in [a, b] {
        wait_status(
            g,
            "UpToDate/UpToDate after the resync",
            connected_up_to_date,
        );
    }
    // Half-configured: b's disk detached by hand, and the configuration changed meanwhile.
    // A clone start adjusts the resource to it: the disk attached again (resynced from the
    // bitmap), the new option in force.
    b.run_ok("drbdadm detach r0");
    wait_status(b, "detached", |s| s.disk() == "Diskless");
    let res = pair.share().join("r0.res");
    let conf = std::fs::read_to_string(&res).unwrap();
    assert!(conf.contains("ping-timeout 10;"), "{conf}");
    std::fs::write(&res, conf.replace("ping-timeout 10;", "ping-timeout 11;")).unwrap();
    assert_rc(
        &agent(b, "start", CLONE),
        0,
        "clone start of a detached resource",
    );
    wait_status(b, "attached again", connected_up_to_date);
    let shown = b.run_ok("drbdsetup show r0");
    assert!(
        shown
            .lines()
            .any(|l| l.contains("ping-timeout") && l.contains("11")),
        "{shown}"
    );
    std::fs::write(&res, conf).unwrap();
    // Primitive mode (hb-monitor's drbddisk role): start = Primary here, stop = Secondary.
    assert_rc(&agent(a, "start", ""), 0, "primitive start");
    assert_rc(
        &agent(a, "monitor", ""),
        0,
        "primitive monitor while Primary",
    );
    assert_rc(&agent(a, "stop", ""), 0, "primitive stop");
    assert_rc(
        &agent(a, "monitor", ""),
        7,
        "primitive monitor while Secondary",
    );
    assert!(status(a).connected(), "a primitive stop keeps replicating");
    // Clone stop takes it down; stop again is 0.
    for g in [a, b] {
        assert_rc(&agent(g, "stop", CLONE), 0, "clone stop");
        assert_rc(&agent(g, "stop", CLONE), 0, "double stop");
        assert_rc(&agent(g, "monitor", CLONE), 7, "monitor after stop");
    }
}

#[test]
#[ignore = "needs root"]
fn drbd_84_split_brain_is_detected_and_left_to_the_operator() {
    split_brain_is_detected_and_left_to_the_operator(Drbd::V84);
}

#[test]
#[ignore = "needs root"]
fn drbd_9_split_brain_is_detected_and_left_to_the_operator() {
    split_brain_is_detected_and_left_to_the_operator(Drbd::V9);
}

/// Both nodes promoted by the agent while their link is cut (what fencing exists to
/// prevent), each writing its own block: on reconnection DRBD finds a split brain and both
/// go StandAlone (the default `after-sb-*` policies disconnect); the agent discards nothing
/// and tells the operator how to recover on every monitor; the operator's recovery
/// (`connect --discard-my-data` on the victim) resyncs the victim from the survivor.
fn split_brain_is_detected_and_left_to_the_operator(drbd: Drbd) {
    let pair = pair_with_agents(drbd);
    let (a, b) = (&pair.a, &pair.b);
    for g in [a, b] {
        g.run_ok("drbdadm create-md r0");
        assert_rc(&agent(g, "start", CLONE), 0, "clone start");
    }
    wait_status(a, "Connected", |s| s.replication() == "Established");
    a.run_ok("drbdadm primary --force r0");
    for g in [a, b] {
        wait_status(g, "UpToDate/UpToDate", connected_up_to_date);
    }
    assert_rc(
        &agent(a, "demote", CLONE),
        0,
        "demote after the initial sync",
    );

    a.cut_link();
    for g in [a, b] {
        wait_status(g, "the peer gone", |s| !s.connected());
    }
    // 512-byte block 100 of the device: each node writes its name there.
    let write = |g: &Guest| {
        g.run_ok(&format!(
            "printf '%-512s' written-by-{} | dd of=/dev/drbd0 bs=512 seek=100 count=1              oflag=direct status=none",
            g.name()
        ))
    };
    for g in [a, b] {
        assert_rc(&agent(g, "promote", CLONE), 0, "promote with the link cut");
        write(g);
    }
    a.restore_link();
    for g in [a, b] {
        wait_events2(g, "StandAlone after the split brain", |t| {
            t.contains("connection:StandAlone")
        });
    }
    // Both stay Primary with their own data; every monitor says what the operator must do.
    for g in [a, b] {
        let m = agent(g, "monitor", CLONE);
        assert_rc(&m, 8, "monitor of a StandAlone Primary");
        assert!(
            m.stderr.contains("StandAlone") && m.stderr.contains("--discard-my-data"),
            "{}",
            m.stderr
        );
    }
    // The operator keeps alpha's data: beta is demoted by the agent and discards its own.
    assert_rc(&agent(b, "demote", CLONE), 0, "demote the victim");
    b.run_ok("drbdadm connect --discard-my-data r0");
    a.run_ok("drbdadm connect r0");
    for g in [a, b] {
        wait_status(g, "resynced after the recovery", connected_up_to_date);
    }
    // beta's disk (internal meta-data is at its end: block 100 is the device's block 100).
    let on_beta = b.run_ok("dd if=/dev/vda bs=512 skip=100 count=1 iflag=direct status=none");
    assert_eq!(
        on_beta.trim_end(),
        "written-by-alpha",
        "beta's disk after the resync"
    );
    assert_rc(&agent(a, "monitor", CLONE), 8, "the survivor Primary");
    assert_rc(&agent(b, "monitor", CLONE), 0, "the victim Secondary");
    for g in [a, b] {
        assert_rc(&agent(g, "stop", CLONE), 0, "clone stop");
    }
}

/// `drbdsetup events2 --now r0` on `guest` (empty when it fails).
fn events2(guest: &Guest) -> String {
    guest
        .exec("drbdsetup events2 --now r0", Duration::from_secs(30))
        .stdout
}

/// Poll events2 on `guest` until `pred` holds; panics with the last output.
fn wait_events2(guest: &Guest, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = events2(guest);
        if pred(&text) {
            eprintln!("{}: {what} after {:.1?}", guest.name(), start.elapsed());
            return text;
        }
        assert!(
            start.elapsed() < STATE_TIMEOUT,
            "{}: timed out after {STATE_TIMEOUT:?} waiting for {what}; last events2:\n{text}",
            guest.name()
        );
        std::thread::sleep(POLL);
    }
}

/// The `connection` line of events2 towards `peer`.
fn connection_to<'t>(events2: &'t str, peer: &str) -> &'t str {
    let tag = format!("conn-name:{peer} ");
    events2
        .lines()
        .find(|l| l.starts_with("exists connection ") && l.contains(&tag))
        .unwrap_or("")
}

/// The node's own disk state in events2 (its `device` line; `peer-disk:` is the peers').
fn own_disk(events2: &str) -> &str {
    events2
        .lines()
        .filter(|l| l.starts_with("exists device "))
        .flat_map(str::split_whitespace)
        .find_map(|w| w.strip_prefix("disk:"))
        .unwrap_or("")
}

/// The last `crm_attribute` call drbd-agent made on `guest` (the stand-in records them).
fn last_score_call(guest: &Guest) -> String {
    guest
        .run_ok("tail -n 1 /tmp/crm_attribute.calls")
        .trim()
        .to_owned()
}

/// Three nodes on DRBD 9: two with disks and a diskless tiebreaker. The tiebreaker is never
/// promoted and gets no score; killing the Primary leaves the other two with quorum, and the
/// agent promotes the survivor; a Primary cut off from both loses quorum and its monitor
/// says so.
#[test]
#[ignore = "needs root"]
fn drbd_9_three_nodes_a_diskless_tiebreaker_keeps_quorum_for_the_survivor() {
    assert!(is_root(), "the VM tier needs root; run `make test-vm`");
    let rec = Recorder::from_env(Drbd::V9);
    let agent_bin = std::fs::read(env!("CARGO_BIN_EXE_drbd-agent")).unwrap();
    // Pacemaker's crm_attribute, standing in: records the agent's score calls.
    let crm = b"#!/bin/sh\necho \"$*\" >> /tmp/crm_attribute.calls\n".to_vec();
    let trio = Trio::new(vec![
        ("drbd-agent".into(), agent_bin, 0o755),
        ("crm_attribute".into(), crm, 0o755),
    ]);
    let [a, b, c] = &trio.guests;
    const CLONE3: &str = "PATH=/share:/usr/sbin:/usr/bin:/sbin:/bin \
        OCF_RESKEY_CRM_meta_promotable=true OCF_RESKEY_CRM_meta_clone_max=3";
    let version = a.run_ok("cat /proc/drbd");
    assert!(version.contains("version: 9."), "{version}");
    // Three nodes (one diskless) take three clone instances, not four; auto-promote is off
    // in this configuration, so validate-all does not warn about it.
    let valid = agent(a, "validate-all", CLONE3);
    assert_rc(&valid, 0, "validate-all, three nodes");
    assert!(!valid.stderr.contains("auto-promote"), "{}", valid.stderr);
    let four = agent(
        a,
        "validate-all",
        &CLONE3.replace("clone_max=3", "clone_max=4"),
    );
    assert_rc(&four, 6, "validate-all with clone-max 4");
    assert!(four.stderr.contains("names 3 nodes"), "{}", four.stderr);

    for g in [a, b] {
        g.run_ok("drbdadm create-md r0");
    }
    for g in [a, b, c] {
        assert_rc(&agent(g, "start", CLONE3), 0, "clone start");
    }
    for g in [a, b, c] {
        wait_events2(g, "connected to both peers", |t| {
            t.matches("connection:Connected").count() == 2
        });
    }
    // The initial sync from a forced first Primary (the operator's step, as with LINBIT's).
    a.run_ok("drbdadm primary --force r0");
    wait_events2(b, "UpToDate", |t| own_disk(t) == "UpToDate");
    a.run_ok("drbdadm secondary r0");
    rec.state(c, "three-tiebreaker-connected");
    rec.state(b, "three-secondary-uptodate-connected");

    // The tiebreaker: running (diskless is its design, not a failure), never promoted, and
    // its score is removed.
    assert_rc(&agent(c, "monitor", CLONE3), 0, "tiebreaker monitor");
    assert_eq!(last_score_call(c), "--promotion --lifetime reboot --delete");
    let refused = agent(c, "promote", CLONE3);
    assert_rc(&refused, 1, "promote the tiebreaker");
    assert!(refused.stderr.contains("diskless"), "{}", refused.stderr);
    assert!(events2(c).contains("role:Secondary"), "{}", events2(c));
    // The disk nodes score beside a diskless peer as beside none.
    for g in [a, b] {
        assert_rc(&agent(g, "monitor", CLONE3), 0, "Secondary monitor");
        assert_eq!(
            last_score_call(g),
            "--promotion --lifetime reboot --update 10000"
        );
    }

    // alpha Primary through the agent, data on it; then alpha loses power.
    assert_rc(&agent(a, "promote", CLONE3), 0, "promote alpha");
    assert_rc(&agent(a, "monitor", CLONE3), 8, "alpha Primary");
    rec.state(a, "three-primary-uptodate-connected");
    a.run_ok(
        "mkfs.ext4 -q /dev/drbd0 && mount /dev/drbd0 /mnt && \
         echo written-by-alpha > /mnt/alpha && umount /mnt",
    );
    a.power_off();
    let t = wait_events2(b, "alpha gone", |t| {
        !connection_to(t, "alpha").contains("connection:Connected")
    });
    assert!(
        t.contains("quorum:yes"),
        "beta keeps quorum with gamma:\n{t}"
    );
    rec.state(b, "three-secondary-peer-gone-quorum");
    assert_rc(&agent(b, "promote", CLONE3), 0, "promote the survivor");
    assert_rc(&agent(b, "monitor", CLONE3), 8, "survivor Primary");
    assert_eq!(
        b.run_ok("mount /dev/drbd0 /mnt && cat /mnt/alpha && umount /mnt"),
        "written-by-alpha\n"
    );
    rec.state(b, "three-primary-peer-gone-quorum");

    // alpha back (outdated by beta's promotion, DRBD 9 does not count it as a voter while it
    // is away: so beta alone would keep quorum now); up again through the agent, resynced.
    a.boot();
    assert_rc(
        &agent(a, "start", CLONE3),
        0,
        "alpha's clone start after the crash",
    );
    wait_events2(a, "alpha resynced and connected to both", |t| {
        t.matches("connection:Connected").count() == 2 && own_disk(t) == "UpToDate"
    });
    // Now beta cut off from both: one of three, no quorum; its monitor fails and says why.
    b.cut_link();
    wait_events2(b, "quorum lost", |t| t.contains("quorum:no"));
    rec.state(b, "three-primary-quorum-lost");
    let lost = agent(b, "monitor", CLONE3);
    assert_rc(&lost, 9, "monitor of a Primary without quorum");
    assert!(lost.stderr.contains("without quorum"), "{}", lost.stderr);
    // Demoted there, a Secondary without quorum is not promoted; the operator's
    // force_promote is, DRBD 9 overriding the lost quorum (`primary --force`).
    assert_rc(&agent(b, "demote", CLONE3), 0, "demote without quorum");
    let refused = agent(b, "promote", CLONE3);
    assert_rc(&refused, 1, "promote without quorum");
    assert!(refused.stderr.contains("lost quorum"), "{}", refused.stderr);
    let forced = agent(
        b,
        "promote",
        &format!("{CLONE3} OCF_RESKEY_force_promote=true"),
    );
    assert_rc(&forced, 0, "forced promotion without quorum");
    assert!(forced.stderr.contains("force_promote"), "{}", forced.stderr);
    // DRBD 9 outdates the unreachable peers (in beta's meta-data), and with them no longer
    // voting beta has quorum again: a Primary the monitor accepts.
    let t = wait_events2(b, "forced Primary", |t| t.contains("role:Primary"));
    assert!(t.contains("quorum:yes"), "{t}");
    assert_eq!(t.matches("peer-disk:Outdated").count(), 2, "{t}");
    assert_rc(&agent(b, "monitor", CLONE3), 8, "forced Primary");
    rec.state(b, "three-primary-forced-no-quorum");
    b.restore_link();
    wait_events2(b, "quorum back", |t| t.contains("quorum:yes"));
    assert_rc(&agent(b, "monitor", CLONE3), 8, "Primary with quorum again");
    for g in [b, c] {
        assert_rc(&agent(g, "stop", CLONE3), 0, "clone stop");
    }
}
