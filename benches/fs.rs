//! fs-agent against resource-agents' Filesystem on the same loop device (ext4) in the same
//! test host, in the same run: `monitor` at depths 0 and 20 of a mounted filesystem, `start`
//! and `stop`, `meta-data`. Medians of many runs and the ratio; forks per monitor.
//!
//! Run as root: `make bench` (needs resource-agents, kmod and psmisc: Filesystem refuses every
//! action without modprobe and fuser).

#[path = "../tests/util/host.rs"]
#[allow(dead_code)]
mod host;

#[path = "../tests/util/loopdev.rs"]
#[allow(dead_code)]
mod loopdev;

mod common;

use common::Agent;
use host::Host;
use loopdev::LoopDevice;

const FILESYSTEM: &str = "/usr/lib/ocf/resource.d/heartbeat/Filesystem";

fn main() {
    if !host::is_root() {
        eprintln!("make bench needs root (loop devices, mount namespaces)");
        std::process::exit(1);
    }
    assert!(
        std::path::Path::new(FILESYSTEM).exists(),
        "{FILESYSTEM} missing: apt-get install resource-agents"
    );
    let runs = common::runs(100);
    let cycles = (runs / 5).max(5);
    let dev = LoopDevice::with_fs("ext4", None);
    let node = Host::new("bench-node");
    node.sh_ok("mkdir -p /run/resource-agents /run/bench/data");
    let params = vec![
        ("device", dev.name()),
        ("directory", "/run/bench/data".to_string()),
        ("fstype", "ext4".into()),
    ];
    let reference = Agent {
        name: "Filesystem",
        path: FILESYSTEM.into(),
        params: params.clone(),
    };
    let ours = Agent {
        name: "fs-agent",
        path: env!("CARGO_BIN_EXE_fs-agent").into(),
        params,
    };

    println!(
        "fs-agent vs Filesystem: {runs} runs (meta-data, monitor), {cycles} start/stop cycles"
    );
    println!(
        "ext4 on {} mounted on /run/bench/data of a test host; medians of wall time\n",
        dev.name()
    );
    let depth0 = [
        ("OCF_RESKEY_CRM_meta_interval", "20000"),
        ("OCF_CHECK_LEVEL", "0"),
    ];
    let depth20 = [
        ("OCF_RESKEY_CRM_meta_interval", "60000"),
        ("OCF_CHECK_LEVEL", "20"),
    ];
    let mut forks = Vec::new();
    let mut samples = Vec::new();
    for agent in [&reference, &ours] {
        let meta = common::samples_of(&node, agent, "meta-data", &[], 0, runs);
        let (start, stop) = common::start_stop(&node, agent, cycles);
        let (_, out) = common::run(&node, agent, "start", &[]);
        common::expect_rc(agent, "start", &out, 0);
        let monitor0 = common::samples_of(&node, agent, "monitor", &depth0, 0, runs);
        let monitor20 = common::samples_of(&node, agent, "monitor", &depth20, 0, runs);
        forks.push(common::forks(&node, agent, "monitor", &depth0));
        let (_, out) = common::run(&node, agent, "stop", &[]);
        common::expect_rc(agent, "stop", &out, 0);
        samples.push([meta, monitor0, monitor20, start, stop]);
    }
    let (r, o) = (&samples[0], &samples[1]);
    // (id, table row, chart title) per figure, in the order of `samples`.
    let figures = [
        ("meta-data", "meta-data", "ext4 meta-data"),
        ("monitor-0", "monitor (0)", "ext4 monitor, depth 0"),
        (
            "monitor-20",
            "monitor (20)",
            "ext4 monitor, depth 20 (synchronous write + read back)",
        ),
        ("start", "start", "ext4 start (mount)"),
        ("stop", "stop", "ext4 stop (unmount)"),
    ];
    let rows: Vec<_> = figures
        .iter()
        .enumerate()
        .map(|(i, (_, row, _))| (*row, common::median(&r[i]), common::median(&o[i])))
        .collect();
    common::print_table("Filesystem", &rows);
    let show = |f: Option<usize>| f.map_or("n/a (no strace)".to_string(), |n| n.to_string());
    println!(
        "\nprocesses forked per depth-0 monitor: Filesystem {}, ferroha {}",
        show(forks[0]),
        show(forks[1])
    );
    common::results::save(
        figures
            .iter()
            .enumerate()
            .map(|(i, (id, _, label))| {
                common::pair(id, label, "ms", (&ours, &o[i]), (&reference, &r[i]))
            })
            .collect(),
    );
}
