//! `make demo`: MySQL on DRBD failing over under load, on this one machine.
//!
//! Two nodes (each a network + mount + UTS namespace with its own hb-monitor), a simulated
//! DRBD resource replicated between them, ext4 on it, MariaDB on that and the VIP; a client on
//! a third host inserts rows through the VIP. The active node is powered off (every process
//! SIGKILLed, its link cut) and the timeline of the takeover is printed from the survivor's
//! log and the client's record; the failed node then comes back as standby (DRBD resyncs),
//! and everything is torn down. Ctrl-C finishes the current step and cleans up; nothing is
//! left behind (hosts, mounts, loop device, servers). The timeline is also drawn, with the
//! client's commits per 10 ms around the failure, in target/demo-output/failover-timeline.svg;
//! what the demo printed is kept beside it, in target/demo-output/failover.txt.

#[path = "../tests/util/mod.rs"]
#[allow(dead_code, unused_imports)]
mod util;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use util::stack::{Stack, VIP};
use util::svg::{FailoverChart, Phase, failover_svg};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Everything the demo printed, for target/demo-output/failover.txt.
static PRINTED: Mutex<String> = Mutex::new(String::new());

/// println!, also kept in PRINTED.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        let mut printed = PRINTED.lock().unwrap_or_else(|e| e.into_inner());
        printed.push_str(&line);
        printed.push('\n');
    }};
}

/// Where the demo writes its picture and its text: target/demo-output in the repository
/// (cargo builds the demo profile into target/<triple>/demo).
fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/demo-output")
}

/// `path` relative to the current directory when it is below it, for messages.
fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Writes `text` to `name` in the output directory; says where, or why not.
fn write_output(name: &str, what: &str, text: &str) {
    let dir = output_dir();
    let path = dir.join(name);
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => say!("{what}: {}", shown(&path)),
        Err(e) => say!("could not write {what} to {}: {e}", shown(&path)),
    }
}

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

/// What the survivor logged about the takeover: when (from the failure), what, and how long
/// it took when the log says.
struct Step {
    at: Duration,
    kind: StepKind,
    /// The text output's words for it.
    what: &'static str,
    /// The picture's, shorter.
    phase: &'static str,
    took: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum StepKind {
    Dead,
    Fencing,
    Fenced,
    Start,
}

/// The takeover's steps in the survivor's `log` from `wall0` (the failure) on.
fn takeover_steps(log: &[(SystemTime, String)], wall0: SystemTime) -> Vec<Step> {
    let mut steps = vec![];
    for (t, line) in log {
        let Ok(at) = t.duration_since(wall0) else {
            continue;
        };
        let text = line.split(": ").skip(2).collect::<Vec<_>>().join(": ");
        let (kind, what, phase, took) = if text.contains("is dead") {
            let what = "heartbeat lost: n1 declared dead";
            (StepKind::Dead, what, "detection (heartbeat lost)", None)
        } else if text.starts_with("fencing n1") {
            (StepKind::Fencing, "fencing n1", "fence n1", None)
        } else if text.contains("n1 is fenced") {
            (
                StepKind::Fenced,
                "n1 fenced (powered off)",
                "fence n1",
                None,
            )
        } else if text.starts_with("start ") {
            let (what, phase) = if text.contains("drbd") {
                ("DRBD promoted (Primary on n2)", "DRBD promote")
            } else if text.contains("ferroha:fs") {
                ("filesystem mounted", "mount")
            } else if text.contains("mysql") {
                ("MySQL answering (crash recovery done)", "MySQL start")
            } else {
                ("VIP moved (gratuitous ARP sent)", "VIP (gratuitous ARP)")
            };
            let took = text.rsplit(" in ").next().unwrap_or("").to_string();
            (StepKind::Start, what, phase, Some(took))
        } else {
            continue;
        };
        steps.push(Step {
            at,
            kind,
            what,
            phase,
            took,
        });
    }
    steps
}

/// The chart's lane: detection from the failure to the verdict, fencing from its start to
/// its end, each start from its beginning (its end less what it took) to its end, and the
/// first client write as a point.
fn chart_phases(steps: &[Step], first_write: Option<Duration>) -> Vec<Phase> {
    let msf = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut phases = vec![];
    let mut fencing_from = None;
    for step in steps {
        let end = msf(step.at);
        let start = match step.kind {
            StepKind::Dead => 0.0,
            StepKind::Fencing => {
                fencing_from = Some(end);
                continue;
            }
            StepKind::Fenced => fencing_from.take().unwrap_or(end),
            StepKind::Start => {
                let took = step
                    .took
                    .as_deref()
                    .and_then(|t| t.trim().trim_end_matches("ms").trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                (end - took).max(0.0)
            }
        };
        phases.push(Phase {
            label: step.phase.to_string(),
            start_ms: start,
            end_ms: end,
        });
    }
    if let Some(at) = fencing_from {
        phases.push(Phase {
            label: "fencing n1 (no end logged)".to_string(),
            start_ms: at,
            end_ms: at,
        });
    }
    if let Some(w) = first_write {
        phases.push(Phase {
            label: "first client write".to_string(),
            start_ms: msf(w),
            end_ms: msf(w),
        });
    }
    phases
}

/// `t` in ms from `t0`, negative before it.
fn signed_ms(t: Instant, t0: Instant) -> f64 {
    match t.checked_duration_since(t0) {
        Some(after) => after.as_secs_f64() * 1000.0,
        None => -(t0.duration_since(t).as_secs_f64() * 1000.0),
    }
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
    say!(
        "\nTorn down: hosts, mounts, the loop device and every server are gone{}.",
        if interrupted { " (interrupted)" } else { "" }
    );
    if result.is_ok() {
        let printed = PRINTED.lock().unwrap_or_else(|e| e.into_inner()).clone();
        write_output("failover.txt", "This output", &printed);
    }
    if result.is_err() {
        std::process::exit(if interrupted { 130 } else { 1 });
    }
}

fn run() {
    say!("ferroha demo: MySQL on DRBD behind a VIP, two nodes on this machine\n");
    let t_build = Instant::now();
    let mut s = Stack::new();
    say!(
        "{}  cluster up: n1 (198.18.1.1) runs drbd → fs → mysql → vip {VIP}; n2 (198.18.1.2) stands by",
        ms(t_build.elapsed())
    );
    checkpoint();
    s.start_watch();
    s.start_client();
    say!("            a client on 198.18.1.200 inserts rows through {VIP}, one commit each");
    sleep(Duration::from_secs(3));
    let before = s.acked();
    say!("            {before} rows committed in 3 s\n");

    say!("Powering n1 off: every process in it SIGKILLed, its link cut.");
    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    s.power_off(0);
    s.wait_group_on(1, Duration::from_secs(30));
    let down = s.wait_service(t0, Instant::now(), Duration::from_secs(30));
    // The outage: the longest gap since the kill, ended by the first commit after it.
    let outage = s.client_log.lock().unwrap().longest_gap_span_since(t0);
    let first_write = outage.map(|(_, first)| first.saturating_duration_since(t0));
    checkpoint();

    let steps = takeover_steps(&s.node_log(1), wall0);
    for step in &steps {
        match &step.took {
            Some(took) => say!("{}  {} [{took}]", ms(step.at), step.what),
            None => say!("{}  {}", ms(step.at), step.what),
        }
    }
    if let Some(w) = first_write {
        say!("{}  first successful client write through the VIP", ms(w));
    }
    say!(
        "            client-visible downtime: {} ms (last commit before → first commit after)",
        down.as_millis()
    );
    sleep(Duration::from_secs(2));

    // A second on either side of the outage: the commit rate before, the gap, the rate after.
    let chart = FailoverChart {
        title: format!(
            "make demo: n1 powered off at t=0, n2 takes over; client-visible downtime {} ms",
            down.as_millis()
        ),
        phases: chart_phases(&steps, first_write),
        commits_ms: s
            .client_log
            .lock()
            .unwrap()
            .acked
            .iter()
            .map(|(_, t)| signed_ms(*t, t0))
            .collect(),
        outage_ms: outage.map(|(last, first)| (signed_ms(last, t0), signed_ms(first, t0))),
        window_ms: (
            -1000.0,
            first_write.map_or(0.0, |w| w.as_secs_f64() * 1000.0) + 1000.0,
        ),
        bucket_ms: 10.0,
    };
    write_output(
        "failover-timeline.svg",
        "The timeline as a picture",
        &failover_svg(&chart),
    );

    say!("\nPowering n1 on again: DRBD comes up and resyncs from n2, hb-monitor joins as standby.");
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
    say!(
        "{}  n1 back: {}",
        ms(t1.elapsed()),
        resynced
            .lines()
            .find(|l| l.contains("exists device"))
            .unwrap_or("")
            .trim()
    );
    sleep(Duration::from_secs(2));
    say!(
        "            n1's daemon: {}, n2's: {}",
        s.cluster.holding(0),
        s.cluster.holding(1)
    );

    s.stop_client();
    let watch = s.finish_watch();
    let (acked, present, lost) = s.audit();
    say!(
        "\nRows: {before} committed before the failure, {acked} in all; {present} in the table now, {} acknowledged commits lost.",
        lost.len()
    );
    say!(
        "Never two nodes active: {} samples from outside the nodes, {} with two nodes Primary, mounted, running MySQL or holding the VIP.",
        watch.samples,
        watch.doubles.len()
    );
}
