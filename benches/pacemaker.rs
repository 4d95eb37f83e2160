//! The MySQL-on-DRBD stack failing over under Pacemaker: ferroha's agents against
//! resource-agents' `Filesystem`, `mysql` and `IPaddr2`, in the same two-node cluster
//! (tests/util/pacemaker.rs: Corosync totem token 1 s, Pacemaker 2.1, DRBD simulated and run
//! by drbd-agent in both, since LINBIT's agent needs the kernel module), in the same run.
//!
//! One run: a fresh cluster, the stack configured with `cibadmin` and started, a random pause
//! (so the cut falls at any point of the monitor and token cycles), then the active node's
//! cable is pulled (its switch port set down, and the simulated DRBD link cut with it; `ip
//! link set eth0 down` inside the node does not last: the VIP agents set the link up again
//! when their monitor fails and they are restarted). The
//! time is from the cut to the first reply to the VIP on the LAN: the switch pings it every
//! 10 ms (`ping -D`, kernel receive stamps on the wall clock). It covers Corosync noticing
//! the loss (token + consensus), Pacemaker's transition, drbd-agent's promote, then each
//! agent's start: mount, MariaDB start until it answers, the address and its gratuitous ARP.
//! Runs alternate between the two sets of agents. Medians, min and max, and the ratio.
//!
//! Run as root: `make bench` (BENCH_RUNS=n runs per set of agents, default 5; about 15 s
//! a run).

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

#[path = "../tests/util/pacemaker.rs"]
#[allow(dead_code)]
mod pacemaker;

#[path = "common/results.rs"]
mod results;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferroha::report::Role;
use pacemaker::{Agents, Lab, SETTLE};

/// LAN 198.18.8.0/24 (the tests use 7).
const SUBNET: u8 = 8;
const TOKEN_MS: u32 = 1000;

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The `[seconds.micros]` stamp of a `ping -D` reply line, if it is one.
fn reply_stamp(line: &str) -> Option<f64> {
    if !line.contains("bytes from") {
        return None;
    }
    line.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// The operations the failover runs on the new node, in order.
const STEPS: [&str; 4] = ["drbd promote", "fs start", "mysql start", "vip start"];

/// Execution time (ms) of each of [`STEPS`] in a Pacemaker log (pacemaker-execd's
/// `<rsc> <action> (call N, PID P) exited with status 0 [(reason)] (execution time 62ms)`), the last
/// occurrence of each; None for a step that is missing.
fn step_times(log: &str) -> Vec<Option<f64>> {
    let mut times = vec![None; STEPS.len()];
    for line in log.lines() {
        // An exit reason, when the agent printed one, comes between the two.
        let (Some(call), true, Some(exec)) = (
            line.find(" (call "),
            line.contains(") exited with status 0"),
            line.split(" (execution time ").nth(1),
        ) else {
            continue;
        };
        let mut words = line[..call].rsplit(' ');
        let (Some(action), Some(rsc)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(i) = STEPS.iter().position(|s| *s == format!("{rsc} {action}")) else {
            continue;
        };
        let text = exec.split([')', ',']).next().unwrap_or("");
        let ms = if let Some(v) = text.strip_suffix("ms") {
            v.parse::<f64>().ok()
        } else {
            text.strip_suffix('s')
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v * 1000.0)
        };
        if ms.is_some() {
            times[i] = ms;
        }
    }
    times
}

/// One failover: time from the link cut to the first VIP reply, and the new node's step
/// times.
fn one_run(agents: Agents, seed: &mut u64) -> (Duration, Vec<Option<f64>>) {
    let mut lab = Lab::start(SUBNET, "pcb", TOKEN_MS);
    lab.configure(&lab.stack(agents));
    let active = lab.wait_stack(&lab.cluster.nodes[0], SETTLE);
    let (old, new) = (lab.cluster.node(&active), lab.cluster.other(&active));
    // The switch pings the VIP every 10 ms for the whole run; replies go to a channel.
    let switch = &lab.cluster.lan.switch;
    let mut ping = switch.spawn(
        switch
            .command("ping")
            .args(["-D", "-n", "-i", "0.01", &lab.vip])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = ping.child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(stamp) = reply_stamp(&line)
                && tx.send(stamp).is_err()
            {
                break;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the VIP answers before the cut");
    // Random phase over 2 s: monitors run every 1 to 3 s.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    std::thread::sleep(Duration::from_millis(500 + *seed % 2000));
    let mut cut = 0.0;
    lab.disk.split(old, new, &lab.mountpoint, || {
        lab.sim.ctl(&["cut-link"]);
        lab.cluster.set_cable(old, false);
        cut = now_epoch();
    });
    let answered = loop {
        let stamp = rx
            .recv_timeout(SETTLE)
            .unwrap_or_else(|_| panic!("{agents:?}: no VIP reply within {SETTLE:?} of the cut"));
        if stamp > cut {
            break stamp;
        }
    };
    assert!(
        new.has_ip(&lab.vip),
        "{agents:?}: the reply came from the new node"
    );
    drop(ping);
    let _ = reader.join();
    // The VIP may answer before pacemaker-execd has logged vip's start.
    let logged = std::time::Instant::now();
    let mut steps = step_times(&new.pacemaker_log());
    while steps[STEPS.len() - 1].is_none() && logged.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        steps = step_times(&new.pacemaker_log());
    }
    // A successful operation that still printed an exit reason: show it.
    for line in new.pacemaker_log().lines() {
        if line.contains(") exited with status 0 (") && !line.contains("status 0 (execution") {
            println!("  note: {}", line.split_once(": ").map_or(line, |(_, l)| l));
        }
    }
    (Duration::from_secs_f64(answered - cut), steps)
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

fn main() {
    if !host::is_root() {
        eprintln!("make bench needs root (network namespaces, loop devices)");
        std::process::exit(1);
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!(
        "MySQL-on-DRBD failover under Pacemaker 2.1 / Corosync 3 (token {TOKEN_MS} ms), link \
         cut of the active node: {runs} runs each, ms until the VIP answers on the other node\n"
    );
    let sets = [
        ("ferroha fs/mysql/vip", Agents::Ferroha),
        ("heartbeat Filesystem/mysql/IPaddr2", Agents::ResourceAgents),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sets.len()];
    let mut steps: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); STEPS.len()]; sets.len()];
    let mut seed = 0x9e37_79b9u64;
    for run in 0..runs {
        for (i, (name, agents)) in sets.iter().enumerate() {
            let (t, step) = one_run(*agents, &mut seed);
            let shown: Vec<String> = step
                .iter()
                .zip(STEPS)
                .map(|(ms, s)| format!("{s} {}", ms.map_or("?".into(), |v| format!("{v:.0}"))))
                .collect();
            println!(
                "run {:>2} {name:<36} {:>8.0} ms   ({})",
                run + 1,
                t.as_secs_f64() * 1000.0,
                shown.join(", ")
            );
            times[i].push(t);
            for (j, ms) in step.into_iter().enumerate() {
                steps[i][j].extend(ms);
            }
        }
    }
    println!(
        "\n{:<36} {:>9} {:>9} {:>9}",
        "agents", "median", "min", "max"
    );
    let mut medians = vec![];
    for ((name, _), t) in sets.iter().zip(times.clone()) {
        let (med, min, max) = stats(t);
        println!("{name:<36} {med:>9.0} {min:>9.0} {max:>9.0}");
        medians.push(med);
    }
    println!("\nmedian execution time on the new node (pacemaker-execd's log), ms");
    println!(
        "{:<36} {}",
        "agents",
        STEPS.map(|s| format!("{s:>13}")).join("")
    );
    for ((name, _), set) in sets.iter().zip(&mut steps) {
        let cells: Vec<String> = set
            .iter_mut()
            .map(|v| {
                v.sort_by(f64::total_cmp);
                match v.get(v.len() / 2) {
                    Some(m) => format!("{m:>13.0}"),
                    None => format!("{:>13}", "?"),
                }
            })
            .collect();
        println!("{name:<36} {}", cells.join(""));
    }
    println!(
        "\nresource-agents / ferroha = {:.2}x (medians; drbd-agent and the cluster are the same in both)",
        medians[1] / medians[0]
    );

    let roles = [Role::Ferroha, Role::Peer];
    let mut figures = vec![results::figure(
        "failover",
        "Pacemaker: link cut of the active node to the VIP answering on the other",
        "ms",
        &[
            (sets[0].0, roles[0], &times[0]),
            (sets[1].0, roles[1], &times[1]),
        ],
    )];
    // A step some run's log did not show is left out rather than charted from nothing.
    for (j, step) in STEPS.iter().enumerate() {
        if steps.iter().all(|set| !set[j].is_empty()) {
            figures.push(results::figure_of_values(
                &step.replace(' ', "-"),
                &format!("Pacemaker failover: {step} on the new node (pacemaker-execd)"),
                "ms",
                &[
                    (sets[0].0, roles[0], &steps[0][j]),
                    (sets[1].0, roles[1], &steps[1][j]),
                ],
            ));
        }
    }
    results::save(figures);
}
