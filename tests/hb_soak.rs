//! The soak (`make soak`, feature `soak`; not part of `make test`): a two-node cluster at
//! `SOAK_KEEPALIVE` / `SOAK_DEADTIME` (default 5ms / 20ms, hb-monitor's fastest advertised
//! setting) for `SOAK_SECS` (default 600) with both cores saturated by CPU hogs and a disk
//! writer (`SOAK_DISK=0`: without it), and a resource whose monitor takes most of its timeout:
//! no false failover may happen. Prints the late heartbeats seen (gaps above warntime) as the
//! margin that was left.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::hb_cluster::{Cluster, Sampler, VIP};

/// Background load, killed by pid when dropped.
struct Load(Vec<Child>);

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn load(scratch: &std::path::Path) -> Load {
    let mut children = vec![];
    for _ in 0..2 {
        children.push(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap(),
        );
    }
    if std::env::var("SOAK_DISK").is_ok_and(|v| v == "0") {
        return Load(children);
    }
    let file = scratch.join("disk-writer");
    children.push(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while :; do dd if=/dev/zero of={} bs=1M count=256 conv=fsync 2>/dev/null; done",
                file.display()
            ))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    Load(children)
}

#[test]
#[ignore = "needs root"]
fn no_false_failover_at_the_fastest_setting_under_load() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let keepalive = std::env::var("SOAK_KEEPALIVE").unwrap_or_else(|_| "5ms".into());
    let deadtime = std::env::var("SOAK_DEADTIME").unwrap_or_else(|_| "20ms".into());
    let scratch = crate::util::agent::world_readable_tempdir();
    let mut c = Cluster::stopped(
        2,
        &format!("n1 IPaddr2::{VIP}/24/eth0 ferroha-test:slow\n"),
        &format!("auto_failback off\nkeepalive {keepalive}\nmonitor_interval 1\n"),
        &deadtime,
        |_| {},
    );
    // A monitor that takes 800 ms of its 1 s timeout.
    let agent_dir = c.ocf_root().join("resource.d/ferroha-test");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent = agent_dir.join("slow");
    std::fs::write(
        &agent,
        "#!/bin/sh\ncase \"$1\" in monitor) sleep 0.8;; esac\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.start(0);
    c.start(1);
    c.wait_vip_on(0, Duration::from_secs(15));
    let _load = load(scratch.path());
    let sampler = Sampler::start(
        c.hosts.iter().map(|h| h.pid()).collect(),
        VIP,
        Duration::from_millis(10),
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            c.holding(1),
            "none",
            "false failover after {:?}",
            t0.elapsed()
        );
    }
    let (samples, doubles) = sampler.finish();
    let logs: Vec<String> = (0..2)
        .map(|i| std::fs::read_to_string(c.dirs[i].path().join("daemon.log")).unwrap_or_default())
        .collect();
    let late: Vec<u64> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter_map(|l| l.split("late heartbeat from ").nth(1))
        .filter_map(|rest| rest.split(": ").nth(1)?.strip_suffix(" ms")?.parse().ok())
        .collect();
    let deaths = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("is dead"))
        .count();
    println!(
        "soak {secs} s at keepalive {keepalive} / deadtime {deadtime}, 2 CPU hogs + a disk writer, an 800 ms monitor every 1 s: \
         {deaths} peer deaths, {} VIP samples with two holders of {samples}, {} late heartbeats{}",
        doubles.len(),
        late.len(),
        late.iter()
            .max()
            .map(|m| format!(", the latest {m} ms"))
            .unwrap_or_default()
    );
    assert_eq!(deaths, 0, "a node was declared dead under load");
    assert!(doubles.is_empty());
    assert!(c.has(0, VIP));
}
