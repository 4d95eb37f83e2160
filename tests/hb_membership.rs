//! hb-monitor's membership between real daemons in test hosts: peers come up, a killed
//! daemon is declared dead within its deadtime, a restarted one is seen as a new generation,
//! one of two media cut is a warning (no death), forged/replayed/garbage packets from a third
//! host are dropped (in the kernel, unless they forge a peer's address) and counted, and SIGTERM ends the daemon cleanly.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ferroha::hb::config::{AuthKeys, AuthMethod};
use ferroha::hb::proto::{self, Message};

use crate::util::host::{Guarded, Host, Lan, wait_for};

const SECRET: &str = "hb-membership-test-secret";

/// A node's configuration directory: unicast to `peers` on each interface, fast timings.
fn config_dir(media: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ha-log");
    let ha_cf = format!(
        "keepalive 50ms\ndeadtime 400ms\nwarntime 200ms\ninitdead 2\nlogfile {}\n{media}node n1\nnode n2\n",
        log.display()
    );
    std::fs::write(dir.path().join("ha.cf"), ha_cf).unwrap();
    std::fs::write(dir.path().join("haresources"), "n1 198.18.1.100\n").unwrap();
    let keys = dir.path().join("authkeys");
    std::fs::write(&keys, format!("auth 1\n1 sha256 {SECRET}\n")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

fn run_daemon(host: &Host, dir: &Path, state: &Path) -> Guarded {
    host.spawn(
        host.command(env!("CARGO_BIN_EXE_hb-monitor"))
            .arg("run")
            .arg("-c")
            .arg(dir)
            .arg("--state-dir")
            .arg(state)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
}

fn status(host: &Host) -> Option<serde_json::Value> {
    let out = host
        .command(env!("CARGO_BIN_EXE_hb-monitor"))
        .args(["status", "--json"])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn peer(host: &Host, name: &str) -> Option<serde_json::Value> {
    status(host)?["peers"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

fn wait_state(host: &Host, peer_name: &str, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    wait_for(
        &format!("{} to see {peer_name} {state}", host.name()),
        within,
        Duration::from_millis(5),
        || (peer(host, peer_name)?["state"] == state).then_some(()),
    );
    started.elapsed()
}

struct Pair {
    lan: Lan,
    n1: Host,
    n2: Host,
    _dirs: Vec<tempfile::TempDir>,
    d1: Option<Guarded>,
    d2: Option<Guarded>,
    state: tempfile::TempDir,
    dir2: std::path::PathBuf,
}

fn pair() -> Pair {
    let lan = Lan::new(1);
    let (n1, n2) = (Host::new("n1"), Host::new("n2"));
    lan.attach(&n1, "eth0", Some("198.18.1.1/24"));
    lan.attach(&n2, "eth0", Some("198.18.1.2/24"));
    let c1 = config_dir("ucast eth0 198.18.1.2\n");
    let c2 = config_dir("ucast eth0 198.18.1.1\n");
    let state = tempfile::tempdir().unwrap();
    let d1 = run_daemon(&n1, c1.path(), &state.path().join("n1"));
    let d2 = run_daemon(&n2, c2.path(), &state.path().join("n2"));
    let dir2 = c2.path().to_path_buf();
    Pair {
        lan,
        n1,
        n2,
        _dirs: vec![c1, c2],
        d1: Some(d1),
        d2: Some(d2),
        state,
        dir2,
    }
}

#[test]
#[ignore = "needs root"]
fn a_killed_daemon_is_dead_within_deadtime_and_a_restart_is_a_new_generation() {
    let mut p = pair();
    wait_state(&p.n1, "n2", "up", Duration::from_secs(10));
    wait_state(&p.n2, "n1", "up", Duration::from_secs(10));
    let first = peer(&p.n1, "n2").unwrap()["generation"].as_u64().unwrap();
    // ha.cf's logfile gets the daemon's log lines too.
    let log = std::fs::read_to_string(p._dirs[0].path().join("ha-log")).unwrap();
    assert!(log.contains("INFO: node n2 is up"), "{log}");
    // kill -9 of n2's daemon: n1 hears nothing more.
    drop(p.d2.take());
    let detected = wait_state(&p.n1, "n2", "dead", Duration::from_secs(5));
    // deadtime is 400 ms; the bound leaves room for a loaded CI machine.
    assert!(
        detected < Duration::from_millis(2000),
        "detection took {detected:?}"
    );
    eprintln!(
        "n2 declared dead {} ms after its daemon was killed",
        detected.as_millis()
    );
    p.d2 = Some(run_daemon(&p.n2, &p.dir2, &p.state.path().join("n2")));
    wait_state(&p.n1, "n2", "up", Duration::from_secs(10));
    let second = peer(&p.n1, "n2").unwrap()["generation"].as_u64().unwrap();
    assert!(second > first, "generation {second} after {first}");
    drop(p.d1.take());
}

#[test]
#[ignore = "needs root"]
fn forged_replayed_and_garbage_packets_are_dropped_and_counted() {
    let p = pair();
    wait_state(&p.n1, "n2", "up", Duration::from_secs(10));
    let intruder = Host::new("intruder");
    p.lan.attach(&intruder, "eth0", Some("198.18.1.66/24"));
    let mut msg = Message::new(&[
        ("t", "status"),
        ("st", "active"),
        ("src", "n2"),
        ("hg", "1"),
        ("seq", "1"),
    ]);
    let right = AuthKeys {
        active: 1,
        keys: [(1, (AuthMethod::Sha256, SECRET.as_bytes().to_vec()))].into(),
    };
    let wrong = AuthKeys {
        active: 1,
        keys: [(1, (AuthMethod::Sha256, b"guess".to_vec()))].into(),
    };
    // Signed right but from n2's long-gone generation 1: a replay.
    let replay = proto::encode(&msg, &right).unwrap();
    msg.push("seq", "2");
    let forged = proto::encode(&msg, &wrong).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // Sent twice: from the intruder's own address, which n1's socket filter refuses in the
    // kernel (only n2 may send there), then with n2's address forged on a raw socket, which
    // passes the filter and must be refused by n1 itself.
    let script = format!(
        "import socket, struct\n\
         packets = [bytes.fromhex(h) for h in ['{}', '{}', '{}']]\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for p in packets: s.sendto(p, ('198.18.1.1', 694))\n\
         raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n\
         for p in packets:\n\
         \x20   udp = struct.pack('!HHHH', 40000, 694, 8 + len(p), 0) + p\n\
         \x20   ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,\n\
         \x20       socket.inet_aton('198.18.1.2'), socket.inet_aton('198.18.1.1'))\n\
         \x20   raw.sendto(ip + udp, ('198.18.1.1', 0))\n",
        hex(&replay),
        hex(&forged),
        hex(b"###\nnot a heartbeat")
    );
    let out = intruder
        .command("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the drops to be counted",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            let dropped = status(&p.n1)?["dropped"].clone();
            (dropped["kernel"] == 3
                && dropped["replayed"] == 1
                && dropped["bad_signature"] == 1
                && dropped["malformed"] == 1)
                .then_some(())
        },
    );
    assert_eq!(peer(&p.n1, "n2").unwrap()["state"], "up");
}

#[test]
#[ignore = "needs root"]
fn one_of_two_media_cut_is_a_warning_not_a_death() {
    let (lan_a, lan_b) = (Lan::new(1), Lan::new(2));
    let (n1, n2) = (Host::new("n1"), Host::new("n2"));
    lan_a.attach(&n1, "eth0", Some("198.18.1.1/24"));
    lan_a.attach(&n2, "eth0", Some("198.18.1.2/24"));
    lan_b.attach(&n1, "eth1", Some("198.18.2.1/24"));
    lan_b.attach(&n2, "eth1", Some("198.18.2.2/24"));
    let c1 = config_dir("ucast eth0 198.18.1.2\nucast eth1 198.18.2.2\n");
    let c2 = config_dir("ucast eth0 198.18.1.1\nucast eth1 198.18.2.1\n");
    let state = tempfile::tempdir().unwrap();
    let _d1 = run_daemon(&n1, c1.path(), &state.path().join("n1"));
    let _d2 = run_daemon(&n2, c2.path(), &state.path().join("n2"));
    wait_for(
        "both media up",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || (peer(&n1, "n2")?["media"].as_array()?.len() == 2).then_some(()),
    );
    lan_b.switch.sh_ok("ip link set port2 down");
    wait_for(
        "eth1 reported down",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            let media = peer(&n1, "n2")?["media"].as_array()?.clone();
            media
                .iter()
                .any(|m| m["medium"] == "eth1:694" && m["up"] == false)
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        peer(&n1, "n2").unwrap()["state"],
        "up",
        "one medium lost must not kill the peer"
    );
}

#[test]
#[ignore = "needs root"]
fn sigterm_ends_the_daemon_cleanly() {
    let mut p = pair();
    wait_state(&p.n1, "n2", "up", Duration::from_secs(10));
    let mut d1 = p.d1.take().unwrap();
    // SAFETY: our own child.
    unsafe { libc::kill(d1.pid() as i32, libc::SIGTERM) };
    let status = wait_for(
        "the daemon to exit",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || d1.child.try_wait().ok().flatten(),
    );
    assert!(status.success(), "{status}");
    assert!(
        !p.n1.sh("test -e /run/hb-monitor.sock").status.success(),
        "control socket left"
    );
}
