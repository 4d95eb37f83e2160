//! drbd-agent as a process where no DRBD kernel is needed: meta-data, bad input, and the
//! OCF rules for a machine without DRBD (the real DRBD runs in the VM tier, make test-vm).

use crate::util::agent::AgentCmd;

#[test]
fn meta_data_and_bad_input() {
    AgentCmd::new("drbd").run("meta-data").rc(0);
    AgentCmd::new("drbd")
        .run("validate-all")
        .rc(6)
        .reason_contains("'drbd_resource'");
    AgentCmd::new("drbd")
        .param("drbd_resource", "r 0")
        .run("validate-all")
        .rc(6)
        .reason_contains("characters");
    AgentCmd::new("drbd")
        .param("drbd_resource", "r0")
        .param("adjust_master_score", "5 4 3 2")
        .run("start")
        .rc(6)
        .reason_contains("ascending");
}

#[test]
fn without_drbd_tools_actions_say_not_installed_and_probes_say_not_running() {
    let agent = || {
        AgentCmd::new("drbd")
            .param("drbd_resource", "r0")
            .param("drbdadm", "/nonexistent/drbdadm")
            .param("drbdsetup", "/nonexistent/drbdsetup")
    };
    agent()
        .run("validate-all")
        .rc(5)
        .reason_contains("not installed");
    agent().run("start").rc(5);
    agent().run("promote").rc(5);
    agent()
        .env("OCF_RESKEY_CRM_meta_interval", "20000")
        .run("monitor")
        .rc(5);
    // No tools and (on this host) no DRBD module: nothing of it can be up, so a probe says
    // not running and stop succeeds.
    assert!(!std::path::Path::new("/proc/drbd").exists());
    agent()
        .env("OCF_RESKEY_CRM_meta_interval", "0")
        .run("monitor")
        .rc(7);
    agent().run("stop").rc(0);
}

/// Debian's drbdadm on the host checks a resource file the test writes: no DRBD kernel is
/// needed for `drbdadm dump`, which validate-all runs.
#[test]
#[ignore = "needs root"]
fn validate_all_uses_the_real_drbdadm_on_the_configuration() {
    use crate::util::host::{Host, Lan};
    // drbdadm matches `on <host>` sections against uname -n and their addresses against the
    // host's: a test host called alpha with 198.18.3.1.
    let lan = Lan::new(3);
    let alpha = Host::new("alpha");
    lan.attach(&alpha, "eth0", Some("198.18.3.1/24"));
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("drbd.conf");
    std::fs::write(
        &good,
        "resource r0 {\n\
         \x20 on alpha { device /dev/drbd0; disk /dev/vda; address 198.18.3.1:7789; meta-disk internal; }\n\
         \x20 on beta { device /dev/drbd0; disk /dev/vda; address 198.18.3.2:7789; meta-disk internal; }\n\
         }\n",
    )
    .unwrap();
    let broken = dir.path().join("broken.conf");
    std::fs::write(&broken, "resource r0 {\n  on alpha { device /dev/drbd0\n").unwrap();
    let agent = |conf: &std::path::Path, resource: &str| {
        AgentCmd::new("drbd")
            .on(&alpha)
            .param("drbd_resource", resource)
            .param("drbdconf", &conf.display().to_string())
            .run("validate-all")
    };
    // The configuration passes drbdadm's check. This host lacks the module, which
    // `drbdadm --version` reports (through modinfo) as version 0: a warning, not a refusal
    // (a node being prepared may get it later; its start is 5 until then, below).
    let valid = agent(&good, "r0");
    valid.rc(0);
    assert!(
        valid.stderr.contains("no DRBD kernel module"),
        "{}",
        valid.stderr
    );
    // /etc/drbd.conf is each node's own file: one node's copy that lacks the resource or does
    // not parse is 5, which bans that node, not 6, which would stop DRBD everywhere. LINBIT's
    // agent says 5 too ("the local config may be broken, but some other node may have a
    // valid config"). It is not run here: without the DRBD module it answers 5 to every
    // action, which would agree for the wrong reason.
    agent(&good, "r9")
        .rc(5)
        .reason_contains("'r9' not defined in your config");
    agent(&broken, "r0").rc(5).reason_contains("Parse error");
    // This host has drbd-utils but no DRBD module: what only this node lacks, so 5 (it
    // was 1, a failure Pacemaker retries here, and a probe said 1, "failed", too).
    let real = |action: &str, interval: &str| {
        AgentCmd::new("drbd")
            .on(&alpha)
            .param("drbd_resource", "r0")
            .param("drbdconf", &good.display().to_string())
            .env("OCF_RESKEY_CRM_meta_interval", interval)
            .run(action)
    };
    assert!(!std::path::Path::new("/proc/drbd").exists());
    real("monitor", "0").rc(7);
    real("stop", "0").rc(0);
    // LINBIT's agent says 5 for every action then, probes included; a probe says 7 here:
    // nothing of DRBD can be up without its module (OCF: a probe answers 7 or 5).
    real("start", "0").rc(5).reason_contains("module");
    real("monitor", "10000").rc(5).reason_contains("module");
    real("promote", "0").rc(5);
}
