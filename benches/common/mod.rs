//! What every benchmark shares: running an agent the way Pacemaker does inside a test host,
//! timing it until it exits, medians, fork counts, the comparison table, and the results file
//! for `make bench-report` (`save`).

use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferroha::report::{Figure, Role};

use crate::host::Host;

pub mod results;

/// An agent under test: ours or the reference.
pub struct Agent {
    /// Shown in the table.
    pub name: &'static str,
    /// Executable.
    pub path: String,
    /// `OCF_RESKEY_*` parameters.
    pub params: Vec<(&'static str, String)>,
}

/// One call's result: its exit code and what it printed.
pub struct Output {
    /// Exit code.
    pub code: Option<i32>,
    /// stdout and stderr.
    pub text: String,
}

/// `argv` (an agent and its action, possibly behind a wrapper such as strace) in `host`, with
/// the environment Pacemaker gives an operation.
fn command(host: &Host, agent: &Agent, argv: &[&str], extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = host.command(argv[0]);
    cmd.args(&argv[1..])
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", "bench")
        .env("OCF_RESKEY_CRM_meta_timeout", "20000");
    for (k, v) in &agent.params {
        cmd.env(format!("OCF_RESKEY_{k}"), v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs one action and times it until the agent *exits* (as Pacemaker's executor does), not
/// until its output pipes close: IPaddr2's background send_arp inherits them. Output goes to
/// a file for the same reason.
pub fn run(
    host: &Host,
    agent: &Agent,
    action: &str,
    extra_env: &[(&str, &str)],
) -> (Duration, Output) {
    let mut cmd = command(host, agent, &[&agent.path, action], extra_env);
    let mut log = tempfile::tempfile().expect("temp file");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log.try_clone().expect("dup"));
    let started = Instant::now();
    let status = cmd.status().expect("run agent");
    let elapsed = started.elapsed();
    let mut text = String::new();
    let _ = log.rewind();
    let _ = log.read_to_string(&mut text);
    (
        elapsed,
        Output {
            code: status.code(),
            text,
        },
    )
}

/// Runs `action` `runs` times, checking the exit code each time; the wall times in order.
pub fn samples_of(
    host: &Host,
    agent: &Agent,
    action: &str,
    env: &[(&str, &str)],
    rc: i32,
    runs: usize,
) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let (t, out) = run(host, agent, action, env);
            expect_rc(agent, action, &out, rc);
            t
        })
        .collect()
}

/// The median of `times` (the upper one of an even count, as `Series` takes it).
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// Panics with the agent's output when the exit code is not `rc`.
pub fn expect_rc(agent: &Agent, action: &str, out: &Output, rc: i32) {
    assert_eq!(out.code, Some(rc), "{} {action}: {}", agent.name, out.text);
}

/// The wall times of start and of stop over `cycles` start/stop pairs.
pub fn start_stop(host: &Host, agent: &Agent, cycles: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..cycles {
        let (t, out) = run(host, agent, "start", &[]);
        expect_rc(agent, "start", &out, 0);
        start.push(t);
        let (t, out) = run(host, agent, "stop", &[]);
        expect_rc(agent, "stop", &out, 0);
        stop.push(t);
    }
    (start, stop)
}

/// Processes (not threads) an action forks, counted with strace; None without strace.
pub fn forks(host: &Host, agent: &Agent, action: &str, env: &[(&str, &str)]) -> Option<usize> {
    let trace = tempfile::NamedTempFile::new().ok()?;
    let trace_path = trace.path().display().to_string();
    let strace = [
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=clone,clone3,fork,vfork",
        "-o",
        &trace_path,
    ];
    let argv: Vec<&str> = strace
        .iter()
        .copied()
        .chain([agent.path.as_str(), action])
        .collect();
    let out = command(host, agent, &argv, env).output().ok()?;
    if !out.status.success() && out.status.code() != Some(7) {
        return None;
    }
    let text = std::fs::read_to_string(trace.path()).ok()?;
    Some(
        text.lines()
            .filter(|l| {
                (l.contains("clone(") || l.contains("clone3(") || l.contains("fork("))
                    && !l.contains("CLONE_THREAD")
                    && !l.contains("resumed>")
            })
            .count(),
    )
}

/// Prints one comparison table: rows of (action, reference, ours).
pub fn print_table(reference: &str, rows: &[(&str, Duration, Duration)]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<14} {:>12} {:>12} {:>10}",
        "action",
        format!("{reference} ms"),
        "ferroha ms",
        "speed-up"
    );
    for (name, r, o) in rows {
        println!(
            "{name:<14} {:>12.2} {:>12.2} {:>9.1}x",
            ms(*r),
            ms(*o),
            ms(*r) / ms(*o)
        );
    }
}

/// The `BENCH_RUNS` environment variable, or `default`.
pub fn runs(default: usize) -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// ferroha's agent beside the reference: a figure of two series.
pub fn pair(
    id: &str,
    label: &str,
    unit: &str,
    ours: (&Agent, &[Duration]),
    reference: (&Agent, &[Duration]),
) -> Figure {
    results::figure(
        id,
        label,
        unit,
        &[
            (ours.0.name, Role::Ferroha, ours.1),
            (reference.0.name, Role::Peer, reference.1),
        ],
    )
}
