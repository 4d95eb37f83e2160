//! vip-agent against resource-agents' IPaddr2, on the same namespace setup in the same run:
//! `meta-data`, a recurring `monitor` of a running VIP, `start` and `stop`. Many runs each,
//! medians, and the ratio. Also counts the processes each forks per monitor (strace).
//!
//! Run as root: `make bench` (needs resource-agents' IPaddr2 and strace).

#[path = "../tests/util/host.rs"]
#[allow(dead_code)]
mod host;

mod common;

use common::Agent;
use host::{Host, Lan};

const IPADDR2: &str = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2";

fn main() {
    if !host::is_root() {
        eprintln!("make bench needs root (network namespaces)");
        std::process::exit(1);
    }
    assert!(
        std::path::Path::new(IPADDR2).exists(),
        "{IPADDR2} missing: apt-get install resource-agents"
    );
    let runs = common::runs(200);
    let cycles = (runs / 5).max(5);
    let lan = Lan::new(1);
    let node = Host::new("bench-node");
    lan.attach(&node, "eth0", Some("198.18.1.1/24"));
    node.sh_ok("mkdir -p /run/resource-agents");
    let params = vec![
        ("ip", "198.18.1.100".to_string()),
        ("cidr_netmask", "24".into()),
        ("nic", "eth0".into()),
    ];
    let reference = Agent {
        name: "IPaddr2",
        path: IPADDR2.into(),
        params: params.clone(),
    };
    let ours = Agent {
        name: "vip-agent",
        path: env!("CARGO_BIN_EXE_vip-agent").into(),
        params,
    };

    println!("vip-agent vs IPaddr2: {runs} runs (meta-data, monitor), {cycles} start/stop cycles");
    println!("VIP 198.18.1.100/24 on eth0 of a namespace host; medians of wall time per call\n");
    let recurring = [("OCF_RESKEY_CRM_meta_interval", "10000")];
    let mut forks = Vec::new();
    let mut samples = Vec::new();
    for agent in [&reference, &ours] {
        let meta = common::samples_of(&node, agent, "meta-data", &[], 0, runs);
        let (start, stop) = common::start_stop(&node, agent, cycles);
        let (_, out) = common::run(&node, agent, "start", &[]);
        common::expect_rc(agent, "start", &out, 0);
        let monitor = common::samples_of(&node, agent, "monitor", &recurring, 0, runs);
        forks.push(common::forks(&node, agent, "monitor", &recurring));
        let (_, out) = common::run(&node, agent, "stop", &[]);
        common::expect_rc(agent, "stop", &out, 0);
        samples.push([meta, monitor, start, stop]);
    }
    let (r, o) = (&samples[0], &samples[1]);
    let actions = ["meta-data", "monitor", "start", "stop"];
    let rows: Vec<_> = actions
        .iter()
        .enumerate()
        .map(|(i, action)| (*action, common::median(&r[i]), common::median(&o[i])))
        .collect();
    common::print_table("IPaddr2", &rows);
    let show = |f: Option<usize>| f.map_or("n/a (no strace)".to_string(), |n| n.to_string());
    println!(
        "\nprocesses forked per monitor: IPaddr2 {}, ferroha {}",
        show(forks[0]),
        show(forks[1])
    );
    let labels = [
        "VIP meta-data",
        "VIP monitor (recurring, VIP up)",
        "VIP start",
        "VIP stop",
    ];
    common::results::save(
        actions
            .iter()
            .zip(labels)
            .enumerate()
            .map(|(i, (id, label))| {
                common::pair(id, label, "ms", (&ours, &o[i]), (&reference, &r[i]))
            })
            .collect(),
    );
}
