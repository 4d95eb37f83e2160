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
    // A failover ends the soak; what led to it is printed below before the test fails.
    let mut failed_over = None;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        if c.holding(1) != "none" {
            failed_over = Some(t0.elapsed());
            break;
        }
    }
    let ran = t0.elapsed().as_secs();
    let seen = sampler.finish();
    let (samples, doubles) = (seen.samples, &seen.doubles);
    // What each node's daemon counted: its pauses (excused) and stand-in heartbeats.
    let counted: Vec<String> = (0..2)
        .map(|i| {
            let s = c.status(i);
            format!(
                "n{}: {} pauses excused (longest {} ms), {} stand-in heartbeats (the latest {} ms after due)",
                i + 1,
                s["pauses"]["count"],
                s["pauses"]["longest_ms"],
                s["stand_in"]["heartbeats"],
                s["stand_in"]["longest_late_ms"]
            )
        })
        .collect();
    let logs: Vec<String> = (0..2)
        .map(|i| std::fs::read_to_string(c.dirs[i].path().join("daemon.log")).unwrap_or_default())
        .collect();
    let late: Vec<u64> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter_map(|l| l.split("late heartbeat from ").nth(1))
        .filter_map(|rest| rest.split(": ").nth(1)?.strip_suffix(" ms")?.parse().ok())
        .collect();
    // The nodes' own pauses (the machine not running them) long enough to be logged: asleep
    // past the planned wake-up, or in a pass of the loop.
    let logged_pauses = |said: &str| -> Vec<u64> {
        logs.iter()
            .flat_map(|l| l.lines())
            .filter_map(|l| l.split(said).nth(1)?.split(" ms").next()?.parse().ok())
            .collect()
    };
    let in_a_pass = logged_pauses("a pass of the loop took ");
    let mut pauses = logged_pauses("did not run for ");
    pauses.extend(&in_a_pass);
    let deaths = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("is dead"))
        .count();
    // A takeover given back within the second is missed by the holding check above (and the
    // VIP may be on both for less than a sample): the standby's log says it.
    let takeovers = logs[1]
        .lines()
        .filter(|l| l.contains("taking the resource group"))
        .count();
    println!(
        "soak {ran} s of {secs} at keepalive {keepalive} / deadtime {deadtime}, 2 CPU hogs + a disk writer, an 800 ms monitor every 1 s: \
         {deaths} peer deaths, {takeovers} false takeovers, {} VIP samples with two holders of {samples}, {} late heartbeats{}, {} pauses of a node as long as warntime{} ({} of them in a pass of the loop); {}",
        doubles.len(),
        late.len(),
        late.iter()
            .max()
            .map(|m| format!(", the latest {m} ms"))
            .unwrap_or_default(),
        pauses.len(),
        pauses
            .iter()
            .max()
            .map(|m| format!(", the longest {m} ms"))
            .unwrap_or_default(),
        in_a_pass.len(),
        counted.join("; ")
    );
    if deaths > 0 || takeovers > 0 {
        // What each node saw just before: its own pauses, the late heartbeats.
        for (i, log) in logs.iter().enumerate() {
            let lines: Vec<&str> = log.lines().collect();
            for (at, _) in lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("is dead") || l.contains("taking the resource group"))
            {
                println!("n{}, before line {at}:", i + 1);
                for l in &lines[at.saturating_sub(8)..(at + 3).min(lines.len())] {
                    println!("  {l}");
                }
            }
        }
    }
    assert_eq!(
        failed_over, None,
        "the standby held the group (after this long)"
    );
    assert_eq!(takeovers, 0, "the standby took the group under load");
    assert_eq!(deaths, 0, "a node was declared dead under load");
    seen.assert_never_two(100);
    assert!(c.has(0, VIP));
}

/// The same load for keepalived at its fastest interval (VRRPv3 advert 0.01 s, unicast, the
/// configuration of `make bench`): does the fastest peer hold where hb-monitor's 5/20 ms does
/// not? Counts its transitions (the backup taking the VIP) over `SOAK_SECS` and prints them
/// (the reference, not the product: not asserted); asserts that keepalived ran and served
/// the VIP throughout, without which the count would mean nothing.
#[test]
#[ignore = "needs root"]
fn keepalived_under_the_same_load_for_comparison() {
    use crate::util::host::{Host, Lan};
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    assert!(
        std::path::Path::new("/usr/sbin/keepalived").exists(),
        "apt-get install keepalived"
    );
    let scratch = crate::util::agent::world_readable_tempdir();
    let lan = Lan::new(1);
    let hosts: Vec<Host> = (1..=2).map(|i| Host::new(&format!("k{i}"))).collect();
    let mut daemons = vec![];
    for (i, host) in hosts.iter().enumerate() {
        let (me, peer) = (i + 1, 2 - i);
        lan.attach(host, "eth0", Some(&format!("198.18.1.{me}/24")));
        let (state, prio) = if me == 1 {
            ("MASTER", 150)
        } else {
            ("BACKUP", 100)
        };
        let conf = scratch.path().join(format!("k{me}.conf"));
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n router_id k{me}\n vrrp_version 3\n vrrp_garp_master_delay 0\n}}\n\
                 vrrp_instance VI_1 {{\n state {state}\n interface eth0\n virtual_router_id 51\n priority {prio}\n advert_int 0.01\n\
                 unicast_src_ip 198.18.1.{me}\n unicast_peer {{\n  198.18.1.{peer}\n }}\n virtual_ipaddress {{\n  {VIP}/24 dev eth0\n }}\n}}\n"
            ),
        )
        .unwrap();
        daemons.push(
            host.spawn(
                host.command("/usr/sbin/keepalived")
                    .args(["-n", "-l", "-D", "-G", "-P", "-f"])
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            ),
        );
    }
    let pids: Vec<u32> = hosts.iter().map(|h| h.pid()).collect();
    crate::util::host::wait_for(
        "keepalived's VIP on k1",
        Duration::from_secs(15),
        Duration::from_millis(10),
        || crate::util::hb_cluster::has_local_address(pids[0], VIP).then_some(()),
    );
    let _load = load(scratch.path());
    let t0 = Instant::now();
    let (mut samples, mut backup_held, mut transitions, mut was) = (0u64, 0u64, 0u64, false);
    let mut nowhere = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        let on_backup = crate::util::hb_cluster::has_local_address(pids[1], VIP);
        let on_master = crate::util::hb_cluster::has_local_address(pids[0], VIP);
        samples += 1;
        nowhere += u64::from(!on_master && !on_backup);
        backup_held += u64::from(on_backup);
        transitions += u64::from(on_backup && !was);
        was = on_backup;
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "keepalived soak {secs} s at advert 0.01 s, same load: the backup took the VIP {transitions} times \
         ({backup_held} of {samples} samples every 10 ms, {nowhere} with the VIP on neither)"
    );
    // The figure compares with hb-monitor only if keepalived served the VIP all along: a
    // backup that died, or a VIP that was nowhere, would read as "never moved". How often
    // the backup took it is the finding, and is not asserted.
    for (daemon, name) in daemons.iter_mut().zip(["k1", "k2"]) {
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "{name}'s keepalived died under the load"
        );
    }
    // 10 ms sleeps with two CPU hogs: far more than 20 samples a second.
    assert!(samples >= secs * 20, "only {samples} samples in {secs} s");
    // Handovers leave the VIP nowhere for a few samples each; more than 1% of the time
    // means keepalived was not serving it.
    assert!(
        nowhere * 100 <= samples,
        "the VIP was on neither node in {nowhere} of {samples} samples"
    );
    drop(daemons);
}
