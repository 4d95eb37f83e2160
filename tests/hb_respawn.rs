//! `respawn USER PROGRAM [ARG...]` (Heartbeat's): the helper runs as USER with a clean
//! signal mask, normal scheduling and all CPUs although the daemon runs SCHED_RR; it is
//! started again when it dies, not when it exits with 100; and it goes when the daemon does.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::util::agent::world_readable_tempdir;
use crate::util::hb_cluster::{Cluster, VIP, cpus_allowed, scheduling_of};
use crate::util::host::wait_for;

/// The helper: appends `NODE PID` to `DIR/started` and its credentials, signal mask,
/// CPUs and scheduling to `DIR/report.PID` (the mask as grep inherited it: the shell's own
/// status can show every signal blocked while it forks); exits 100 once `DIR/stop` exists, else
/// becomes a long sleep (same pid).
const HELPER: &str = "#!/bin/sh\n\
    dir=$1\n\
    { grep -E '^(Uid|Gid|Groups|SigBlk|Cpus_allowed_list)' /proc/self/status; chrt -p $$; } > \"$dir/report.$$\"\n\
    echo \"$(uname -n) $$\" >> \"$dir/started\"\n\
    [ -e \"$dir/stop\" ] && exit 100\n\
    exec sleep 600\n";

/// The pids the helper on `node` was started as, in order.
fn starts(dir: &std::path::Path, node: &str) -> Vec<i32> {
    std::fs::read_to_string(dir.join("started"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| *n == node)
        .map(|(_, pid)| pid.parse().unwrap())
        .collect()
}

fn kill9(pid: i32) {
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -KILL {pid}");
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_starts(dir: &std::path::Path, node: &str, count: usize) -> Vec<i32> {
    wait_for(
        &format!("{count} starts of {node}'s helper"),
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Some(starts(dir, node)).filter(|s| s.len() >= count),
    )
}

#[test]
#[ignore = "needs root"]
fn a_respawned_helper_runs_as_its_user_comes_back_and_goes_with_the_daemon() {
    let bin = world_readable_tempdir();
    let helper = bin.path().join("helper");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let dir = out.path();
    let mut c = Cluster::new(
        &format!("n1 {VIP}\n"),
        &format!(
            "respawn nobody {} {}\nrespawn hacluster /usr/lib/heartbeat/ipfail\n",
            helper.display(),
            dir.display()
        ),
        "400ms",
        |_| {},
    );
    let first = wait_starts(dir, "n1", 1)[0];
    let report = wait_for(
        "the helper's report",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            std::fs::read_to_string(dir.join(format!("report.{first}")))
                .ok()
                .filter(|t| t.contains("policy"))
        },
    );
    // nobody (65534 on Debian), with nobody's group only: not root's groups.
    assert!(
        report.contains("Uid:\t65534\t65534\t65534\t65534"),
        "{report}"
    );
    assert!(
        report.contains("Gid:\t65534\t65534\t65534\t65534"),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("Groups:") && l.trim_end() == "Groups:"),
        "{report}"
    );
    assert!(report.contains("SigBlk:\t0000000000000000"), "{report}");
    assert!(report.contains("policy: SCHED_OTHER"), "{report}");
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        cpus_allowed(&report),
        cpus_allowed(&own),
        "the helper's CPUs: {report}"
    );
    assert!(
        scheduling_of(c.daemons[0].as_ref().unwrap().pid()).contains("SCHED_RR"),
        "the daemon runs realtime, so the helper's normal scheduling is its own doing"
    );

    // Killed: started again, as a new process.
    kill9(first);
    let second = wait_starts(dir, "n1", 2)[1];
    assert_ne!(second, first);
    assert!(alive(second));
    // Exiting with 100 (Heartbeat's "do not restart me"): not started again.
    std::fs::write(dir.join("stop"), "").unwrap();
    kill9(second);
    wait_starts(dir, "n1", 3);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(starts(dir, "n1").len(), 3, "started again after exit 100");
    let log = std::fs::read_to_string(c.dirs[0].path().join("daemon.log")).unwrap();
    assert!(log.contains("exited with 100: not started again"), "{log}");
    assert!(log.contains("is not run: ipfail needs"), "{log}");

    // n2's helper goes with its daemon.
    let on_n2 = wait_starts(dir, "n2", 1)[0];
    assert!(alive(on_n2));
    c.terminate(1);
    assert!(!alive(on_n2), "n2's helper outlived its daemon");
}
