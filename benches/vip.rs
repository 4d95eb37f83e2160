//! vip-agent against resource-agents' IPaddr2, on the same namespace setup in the same run:
//! `meta-data`, a recurring `monitor` of a running VIP, `start` and `stop`. Many runs each,
//! medians, and the ratio. Also counts the processes each forks per monitor (strace).
//!
//! Run as root: `make bench` (needs resource-agents' IPaddr2 and strace).

#[path = "../tests/util/host.rs"]
#[allow(dead_code)]
mod host;

use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host::{Host, Lan};

const VIP: &str = "198.18.1.100";
const IPADDR2: &str = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2";

struct Agent {
    name: &'static str,
    path: String,
}

/// `argv` (an agent and its action, possibly behind a wrapper such as strace) in `host`, with
/// the environment Pacemaker gives an operation on the benchmark's VIP.
fn agent_command(host: &Host, argv: &[&str], extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = host.command(argv[0]);
    cmd.args(&argv[1..])
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", "bench")
        .env("OCF_RESKEY_CRM_meta_timeout", "20000")
        .env("OCF_RESKEY_ip", VIP)
        .env("OCF_RESKEY_cidr_netmask", "24")
        .env("OCF_RESKEY_nic", "eth0");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// One call's result: its exit code and what it printed.
struct Output {
    code: Option<i32>,
    text: String,
}

/// Runs one action and times it until the agent *exits* (as Pacemaker's executor does), not
/// until its output pipes close: IPaddr2's background send_arp inherits them. Output goes to
/// a file for the same reason.
fn run(host: &Host, agent: &Agent, action: &str, extra_env: &[(&str, &str)]) -> (Duration, Output) {
    let mut cmd = agent_command(host, &[&agent.path, action], extra_env);
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

fn expect_rc(agent: &Agent, action: &str, out: &Output, rc: i32) {
    assert_eq!(out.code, Some(rc), "{} {action}: {}", agent.name, out.text);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Processes (not threads) an action forks, counted with strace.
fn forks(host: &Host, agent: &Agent, action: &str, env: &[(&str, &str)]) -> Option<usize> {
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
    let mut cmd = agent_command(host, &argv, env);
    let out = cmd.output().ok()?;
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

struct Figures {
    meta: Duration,
    monitor: Duration,
    start: Duration,
    stop: Duration,
    monitor_forks: Option<usize>,
}

fn measure(host: &Host, agent: &Agent, runs: usize, cycles: usize) -> Figures {
    let recurring = [("OCF_RESKEY_CRM_meta_interval", "10000")];
    let mut meta = Vec::new();
    for _ in 0..runs {
        let (t, out) = run(host, agent, "meta-data", &[]);
        expect_rc(agent, "meta-data", &out, 0);
        meta.push(t);
    }
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..cycles {
        let (t, out) = run(host, agent, "start", &[]);
        expect_rc(agent, "start", &out, 0);
        start.push(t);
        let (t, out) = run(host, agent, "stop", &[]);
        expect_rc(agent, "stop", &out, 0);
        stop.push(t);
    }
    let (_, out) = run(host, agent, "start", &[]);
    expect_rc(agent, "start", &out, 0);
    let mut monitor = Vec::new();
    for _ in 0..runs {
        let (t, out) = run(host, agent, "monitor", &recurring);
        expect_rc(agent, "monitor", &out, 0);
        monitor.push(t);
    }
    let monitor_forks = forks(host, agent, "monitor", &recurring);
    let (_, out) = run(host, agent, "stop", &[]);
    expect_rc(agent, "stop", &out, 0);
    Figures {
        meta: median(meta),
        monitor: median(monitor),
        start: median(start),
        stop: median(stop),
        monitor_forks,
    }
}

fn main() {
    if !host::is_root() {
        eprintln!("make bench needs root (network namespaces)");
        std::process::exit(1);
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let cycles = (runs / 5).max(5);
    let lan = Lan::new(1);
    let node = Host::new("bench-node");
    lan.attach(&node, "eth0", Some("198.18.1.1/24"));
    node.sh_ok("mkdir -p /run/resource-agents");

    let ours = Agent {
        name: "vip-agent",
        path: env!("CARGO_BIN_EXE_vip-agent").to_string(),
    };
    let reference = Agent {
        name: "IPaddr2",
        path: IPADDR2.to_string(),
    };
    assert!(
        std::path::Path::new(IPADDR2).exists(),
        "{IPADDR2} missing: apt-get install resource-agents"
    );
    println!("vip-agent vs IPaddr2: {runs} runs (meta-data, monitor), {cycles} start/stop cycles");
    println!("VIP {VIP}/24 on eth0 of a namespace host; medians of wall time per call\n");
    // Alternate the two so that machine noise hits both alike.
    let ref_figures = measure(&node, &reference, runs, cycles);
    let our_figures = measure(&node, &ours, runs, cycles);

    println!(
        "{:<12} {:>12} {:>12} {:>10}",
        "action", "IPaddr2 ms", "ferroha ms", "speed-up"
    );
    for (name, r, o) in [
        ("meta-data", ref_figures.meta, our_figures.meta),
        ("monitor", ref_figures.monitor, our_figures.monitor),
        ("start", ref_figures.start, our_figures.start),
        ("stop", ref_figures.stop, our_figures.stop),
    ] {
        println!(
            "{name:<12} {:>12.2} {:>12.2} {:>9.1}x",
            ms(r),
            ms(o),
            ms(r) / ms(o)
        );
    }
    let show = |f: Option<usize>| f.map_or("n/a (no strace)".to_string(), |n| n.to_string());
    println!(
        "\nprocesses forked per monitor: IPaddr2 {}, ferroha {}",
        show(ref_figures.monitor_forks),
        show(our_figures.monitor_forks)
    );
}
