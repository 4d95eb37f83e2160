//! `make demo`: MySQL on DRBD failing over under load, on this one machine.
//!
//! Two nodes (each a network + mount + UTS namespace with its own hb-monitor), a simulated
//! DRBD resource replicated between them, ext4 on it, MariaDB on that and the VIP; a client on
//! a third host inserts rows through the VIP. The active node is powered off (every process
//! SIGKILLed, its link cut) and the timeline of the takeover is printed from the survivor's
//! log and the client's record; the failed node then comes back as standby (DRBD resyncs),
//! and everything is torn down. Ctrl-C finishes the current step and cleans up; nothing is
//! left behind (hosts, mounts, loop device, servers).

#[path = "../tests/util/mod.rs"]
#[allow(dead_code, unused_imports)]
mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use util::stack::{Stack, VIP};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Between steps: an interrupt unwinds, so that every guard cleans up on the way out.
fn checkpoint() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted: cleaning up");
    }
}

fn sleep(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        checkpoint();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ms(d: Duration) -> String {
    format!("{:>6} ms", d.as_millis())
}

fn main() {
    if !util::host::is_root() {
        eprintln!("make demo needs root (network namespaces, a loop device, mounts)");
        std::process::exit(1);
    }
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let result = std::panic::catch_unwind(run);
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    println!(
        "\nTorn down: hosts, mounts, the loop device and every server are gone{}.",
        if interrupted { " (interrupted)" } else { "" }
    );
    if result.is_err() {
        std::process::exit(if interrupted { 130 } else { 1 });
    }
}

fn run() {
    println!("ferroha demo: MySQL on DRBD behind a VIP, two nodes on this machine\n");
    let t_build = Instant::now();
    let mut s = Stack::new();
    println!(
        "{}  cluster up: n1 (198.18.1.1) runs drbd → fs → mysql → vip {VIP}; n2 (198.18.1.2) stands by",
        ms(t_build.elapsed())
    );
    checkpoint();
    s.start_watch();
    s.start_client();
    println!("            a client on 198.18.1.200 inserts rows through {VIP}, one commit each");
    sleep(Duration::from_secs(3));
    let before = s.acked();
    println!("            {before} rows committed in 3 s\n");

    println!("Powering n1 off: every process in it SIGKILLed, its link cut.");
    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    s.power_off(0);
    s.wait_group_on(1, Duration::from_secs(30));
    let down = s.wait_service(t0, Instant::now(), Duration::from_secs(30));
    // The first commit after the outage: the one that ends the longest gap since the kill.
    let first_write = {
        let log = s.client_log.lock().unwrap();
        let from = log.acked.iter().rposition(|(_, t)| *t <= t0).unwrap_or(0);
        log.acked[from..]
            .windows(2)
            .max_by_key(|w| w[1].1.duration_since(w[0].1))
            .map(|w| w[1].1.saturating_duration_since(t0))
    };
    checkpoint();

    // The survivor's log, from the moment of the failure.
    let since = |t: SystemTime| t.duration_since(wall0).unwrap_or_default();
    let mut lines: Vec<(Duration, String)> = vec![];
    for (t, line) in s.node_log(1) {
        if t < wall0 {
            continue;
        }
        let text = line.split(": ").skip(2).collect::<Vec<_>>().join(": ");
        let what = if text.contains("is dead") {
            "heartbeat lost: n1 declared dead".to_string()
        } else if text.starts_with("fencing n1") {
            "fencing n1".to_string()
        } else if text.contains("n1 is fenced") {
            "n1 fenced (powered off)".to_string()
        } else if text.starts_with("start ") {
            let kind = if text.contains("drbd") {
                "DRBD promoted (Primary on n2)"
            } else if text.contains("ferroha:fs") {
                "filesystem mounted"
            } else if text.contains("mysql") {
                "MySQL answering (crash recovery done)"
            } else {
                "VIP moved (gratuitous ARP sent)"
            };
            let took = text.rsplit(" in ").next().unwrap_or("");
            format!("{kind} [{took}]")
        } else {
            continue;
        };
        lines.push((since(t), what));
    }
    for (t, what) in &lines {
        println!("{}  {what}", ms(*t));
    }
    if let Some(w) = first_write {
        println!("{}  first successful client write through the VIP", ms(w));
    }
    println!(
        "            client-visible downtime: {} ms (last commit before → first commit after)",
        down.as_millis()
    );
    sleep(Duration::from_secs(2));

    println!(
        "\nPowering n1 on again: DRBD comes up and resyncs from n2, hb-monitor joins as standby."
    );
    let t1 = Instant::now();
    s.power_on(0);
    let resynced = util::host::wait_for(
        "n1's DRBD to be UpToDate",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let e = s.sim.events2("a");
            (e.contains("disk:UpToDate") && e.contains("connection:Connected")).then_some(e)
        },
    );
    println!(
        "{}  n1 back: {}",
        ms(t1.elapsed()),
        resynced
            .lines()
            .find(|l| l.contains("exists device"))
            .unwrap_or("")
            .trim()
    );
    sleep(Duration::from_secs(2));
    println!(
        "            n1's daemon: {}, n2's: {}",
        s.cluster.holding(0),
        s.cluster.holding(1)
    );

    s.stop_client();
    let watch = s.finish_watch();
    let (acked, present, lost) = s.audit();
    println!(
        "\nRows: {before} committed before the failure, {acked} in all; {present} in the table now, {} acknowledged commits lost.",
        lost.len()
    );
    println!(
        "Never two nodes active: {} samples from outside the nodes, {} with two nodes Primary, mounted, running MySQL or holding the VIP.",
        watch.samples,
        watch.doubles.len()
    );
}
