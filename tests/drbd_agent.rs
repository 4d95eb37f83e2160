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
