//! Agent start-up: each agent's `meta-data` and recurring `monitor` against the exec floor, an
//! empty static C program (`int main(void) { return 0; }`, built here with `gcc -static`),
//! all timed the same way in the same run and interleaved (one call of each case per round),
//! so that load on the machine shifts them together. Prints each median, its offset over the
//! floor and the ratio, and the system calls and processes each call makes (strace).
//!
//! Each monitor finds its resource running: a VIP on a namespace LAN, ext4 mounted from a loop
//! device, a MariaDB server (depth 0), a simulated DRBD resource (drbd-agent runs `drbdsetup`,
//! here the simulator, so its monitor includes one more exec).
//!
//! Run as root: `make bench` (needs gcc, mariadb-server, and strace for the counts).

#[path = "../tests/util/host.rs"]
#[allow(dead_code)]
mod host;

#[path = "../tests/util/agent.rs"]
#[allow(dead_code)]
mod agent;

#[path = "../tests/util/drbd_sim.rs"]
#[allow(dead_code)]
mod drbd_sim;

#[path = "../tests/util/loopdev.rs"]
#[allow(dead_code)]
mod loopdev;

#[path = "../tests/util/mariadb.rs"]
#[allow(dead_code)]
mod mariadb;

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferroha::report::Role;

use common::Agent;
use common::results;
use drbd_sim::DrbdSim;
use host::{Host, Lan};
use loopdev::LoopDevice;
use mariadb::MariaDb;

/// 198.18.20.0/24: no other bench or test uses it.
const SUBNET: u8 = 20;

/// One timed call: an agent, its action, the extra environment and the exit code it must give.
struct Case<'a> {
    label: String,
    agent: &'a Agent,
    action: &'static str,
    env: Vec<(&'static str, String)>,
    rc: i32,
}

impl Case<'_> {
    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// Compiles the floor: the smallest static executable gcc makes, in `dir`.
fn build_floor(dir: &Path) -> String {
    let source = dir.join("empty.c");
    let binary = dir.join("empty");
    std::fs::write(&source, "int main(void) { return 0; }\n").expect("write empty.c");
    let out = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("gcc missing: apt-get install gcc libc6-dev");
    assert!(
        out.status.success(),
        "gcc -static: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    binary.display().to_string()
}

/// System calls one call makes, all its processes included (strace -f); None without strace.
fn syscalls(node: &Host, case: &Case) -> Option<usize> {
    let trace = tempfile::NamedTempFile::new().ok()?;
    let mut cmd = node.command("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(trace.path())
        .arg(&case.agent.path)
        .arg(case.action)
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RESOURCE_INSTANCE", "bench")
        .env("OCF_RESKEY_CRM_meta_timeout", "20000");
    for (k, v) in &case.agent.params {
        cmd.env(format!("OCF_RESKEY_{k}"), v);
    }
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let out = cmd.output().ok()?;
    if out.status.code() != Some(case.rc) {
        return None;
    }
    let text = std::fs::read_to_string(trace.path()).ok()?;
    // A call interrupted by another process's line is one call in two lines: count its start.
    Some(
        text.lines()
            .filter(|l| !l.contains("resumed>") && !l.contains("+++ exited") && !l.contains("---"))
            .count(),
    )
}

fn main() {
    if !host::is_root() {
        eprintln!("make bench needs root (namespaces, loop devices, a MariaDB server)");
        std::process::exit(1);
    }
    assert!(
        Path::new(mariadb::MARIADBD).exists(),
        "{} missing: apt-get install mariadb-server",
        mariadb::MARIADBD
    );
    let runs = common::runs(400);
    let tmp = tempfile::tempdir().expect("tempdir");
    let floor = Agent {
        name: "empty",
        path: build_floor(tmp.path()),
        params: Vec::new(),
    };

    let lan = Lan::new(SUBNET);
    let node = Host::new("bench-startup");
    lan.attach(&node, "eth0", Some(&format!("198.18.{SUBNET}.1/24")));
    node.sh_ok("mkdir -p /run/bench/data");

    let vip = Agent {
        name: "vip-agent",
        path: env!("CARGO_BIN_EXE_vip-agent").into(),
        params: vec![
            ("ip", format!("198.18.{SUBNET}.100")),
            ("cidr_netmask", "24".into()),
            ("nic", "eth0".into()),
        ],
    };
    let dev = LoopDevice::with_fs("ext4", None);
    let fs = Agent {
        name: "fs-agent",
        path: env!("CARGO_BIN_EXE_fs-agent").into(),
        params: vec![
            ("device", dev.name()),
            ("directory", "/run/bench/data".to_string()),
            ("fstype", "ext4".into()),
        ],
    };
    let db = MariaDb::new();
    let mysql = Agent {
        name: "mysql-agent",
        path: env!("CARGO_BIN_EXE_mysql-agent").into(),
        params: db.params(),
    };
    let sim = DrbdSim::new();
    // Connected and UpToDate on both nodes, Secondary on both: what a healthy unpromoted
    // instance's monitor finds.
    for n in ["a", "b"] {
        assert_eq!(
            sim.drbdadm(n, &["up", "r0"]).rc,
            0,
            "drbd-sim: up r0 on {n}"
        );
    }
    assert_eq!(sim.drbdadm("a", &["primary", "--force", "r0"]).rc, 0);
    assert_eq!(sim.drbdadm("a", &["secondary", "r0"]).rc, 0);
    let path = |name: &str| sim.bin(name).display().to_string();
    let drbd = Agent {
        name: "drbd-agent",
        path: env!("CARGO_BIN_EXE_drbd-agent").into(),
        params: vec![
            ("drbd_resource", "r0".to_string()),
            ("drbdadm", path("drbdadm")),
            ("drbdsetup", path("drbdsetup")),
            ("drbdconf", sim.conf().display().to_string()),
        ],
    };
    let drbd_env = [
        ("DRBD_SIM_DIR", sim.path().display().to_string()),
        ("DRBD_SIM_NODE", "a".to_string()),
    ];

    let agents = [&vip, &fs, &mysql, &drbd];
    for agent in agents {
        let env: Vec<(&str, &str)> = if agent.name == "drbd-agent" {
            drbd_env.iter().map(|(k, v)| (*k, v.as_str())).collect()
        } else {
            Vec::new()
        };
        let (_, out) = common::run(&node, agent, "start", &env);
        common::expect_rc(agent, "start", &out, 0);
    }

    // Recurring monitors at depth 0, as Pacemaker and hb-monitor run them.
    let recurring = |agent: &Agent| {
        let mut env = vec![
            ("OCF_RESKEY_CRM_meta_interval", "10000".to_string()),
            ("OCF_CHECK_LEVEL", "0".to_string()),
        ];
        if agent.name == "drbd-agent" {
            env.extend(drbd_env.iter().cloned());
        }
        env
    };
    let mut cases = vec![Case {
        label: "floor (empty static C)".into(),
        agent: &floor,
        action: "meta-data",
        env: Vec::new(),
        rc: 0,
    }];
    for agent in agents {
        cases.push(Case {
            label: format!("{} meta-data", agent.name),
            agent,
            action: "meta-data",
            env: Vec::new(),
            rc: 0,
        });
        cases.push(Case {
            label: format!("{} monitor", agent.name),
            agent,
            action: "monitor",
            env: recurring(agent),
            rc: 0,
        });
    }

    println!(
        "agent start-up against the exec floor: {runs} rounds, one call of each case per round"
    );
    println!("medians of wall time from spawn to exit, inside a test host\n");
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); cases.len()];
    for _ in 0..runs {
        for (case, t) in cases.iter().zip(times.iter_mut()) {
            let (elapsed, out) = common::run(&node, case.agent, case.action, &case.env());
            common::expect_rc(case.agent, case.action, &out, case.rc);
            t.push(elapsed);
        }
    }
    let medians: Vec<Duration> = times.iter().map(|t| common::median(t)).collect();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let base = us(medians[0]);
    println!(
        "{:<24} {:>10} {:>10} {:>8} {:>9} {:>6}",
        "case", "median us", "+floor us", "ratio", "syscalls", "forks"
    );
    let show = |n: Option<usize>| n.map_or("n/a".to_string(), |n| n.to_string());
    for (case, median) in cases.iter().zip(&medians) {
        let env = case.env();
        println!(
            "{:<24} {:>10.0} {:>+10.0} {:>7.2}x {:>9} {:>6}",
            case.label,
            us(*median),
            us(*median) - base,
            us(*median) / base,
            show(syscalls(&node, case)),
            show(common::forks(&node, case.agent, case.action, &env)),
        );
    }

    // Each agent's call beside the floor, for `make bench-report`.
    results::save(
        cases
            .iter()
            .zip(&times)
            .skip(1)
            .map(|(case, t)| {
                results::figure(
                    &format!("{}-{}", case.agent.name, case.action),
                    &format!("{}: spawn to exit", case.label),
                    "us",
                    &[
                        (case.agent.name, Role::Ferroha, t),
                        ("floor (empty static C)", Role::Peer, &times[0]),
                    ],
                )
            })
            .collect(),
    );

    for agent in agents.iter().rev() {
        let env: Vec<(&str, &str)> = if agent.name == "drbd-agent" {
            drbd_env.iter().map(|(k, v)| (*k, v.as_str())).collect()
        } else {
            Vec::new()
        };
        let (_, out) = common::run(&node, agent, "stop", &env);
        common::expect_rc(agent, "stop", &out, 0);
    }
}
