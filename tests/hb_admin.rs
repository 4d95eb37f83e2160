//! The admin commands of Heartbeat that scripts call, run against hb-monitor: `cl_status`
//! and `hb_standby` as links to `hb-monitor` (its multi-call names). In a mixed cluster (n1
//! runs Debian's Heartbeat, n2 hb-monitor, the same files) the real `cl_status` on n1 and
//! ours on n2 are asked the same questions about the same cluster and must answer alike.

use std::path::Path;
use std::time::Duration;

use super::util::agent::built_bin;
use super::util::hb_mixed::{Mixed, heartbeat_installed};
use super::util::host::{Host, wait_for};

/// Heartbeat's own `cl_status`.
const HEARTBEAT_CL_STATUS: &str = "/usr/bin/cl_status";

/// Output and exit code of a command run on a host.
fn answer(host: &Host, command: &str) -> (String, Option<i32>) {
    let out = host.sh(&format!("{command} 2>/dev/null"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

/// A directory of links to the built hb-monitor under Heartbeat's command names.
fn multi_call_links() -> tempfile::TempDir {
    let dir = super::util::agent::world_readable_tempdir();
    for name in ["cl_status", "hb_standby", "hb_takeover"] {
        std::os::unix::fs::symlink(built_bin("hb-monitor"), dir.path().join(name)).unwrap();
    }
    dir
}

#[test]
#[ignore = "needs root"]
fn cl_status_answers_as_heartbeats_own_about_the_same_cluster() {
    heartbeat_installed();
    let links = multi_call_links();
    let ours = |sub: &str| format!("{}/cl_status {sub}", links.path().display());
    let mut m = Mixed::new();
    m.start_hb_monitor(1);
    m.start_heartbeat(0);
    m.wait_vip_only_on(0, Duration::from_secs(40));
    // Both views settled: each daemon sees the other alive.
    wait_for(
        "both nodes to see each other active",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let theirs = answer(&m.hosts[0], &format!("{HEARTBEAT_CL_STATUS} nodestatus n2"));
            let mine = answer(&m.hosts[1], &ours("nodestatus n1"));
            (theirs.0 == "active\n" && mine.0 == "active\n").then_some(())
        },
    );
    // Questions about a node's own links have answers relative to the node asking: each is
    // asked about the asker (ME) and its peer (PEER) on both sides.
    let questions = [
        "hbstatus",
        "listnodes",
        "listnodes -n",
        "listnodes -p",
        "nodestatus ME",
        "nodestatus PEER",
        "nodestatus -m PEER",
        "nodetype ME",
        "nodetype PEER",
        "listhblinks ME",
        "listhblinks PEER",
        "listhblinks -v ME",
        "listhblinks -v PEER",
        "hblinkstatus ME eth0",
        "hblinkstatus PEER eth0",
        "hblinkstatus -m PEER eth0",
        "hblinkstatus PEER eth9",
        "nodestatus nosuch",
        "nosuchcommand",
    ];
    let mut differ = Vec::new();
    for q in questions {
        let on = |me: &str, peer: &str| q.replace("ME", me).replace("PEER", peer);
        let theirs = answer(
            &m.hosts[0],
            &format!("{HEARTBEAT_CL_STATUS} {}", on("n1", "n2")),
        );
        let mine = answer(&m.hosts[1], &ours(&on("n2", "n1")));
        // Answers that name the node asked about, in the asker's terms.
        let relative = q.contains("ME") || q.contains("PEER");
        let back = |(out, code): (String, Option<i32>), me: &str, peer: &str| {
            if relative {
                (out.replace(me, "ME").replace(peer, "PEER"), code)
            } else {
                (out, code)
            }
        };
        let (theirs, mine) = (back(theirs, "n1", "n2"), back(mine, "n2", "n1"));
        eprintln!("cl_status {q}: heartbeat {theirs:?}, hb-monitor {mine:?}");
        if theirs != mine {
            differ.push(format!(
                "cl_status {q}:\n  heartbeat  {theirs:?}\n  hb-monitor {mine:?}"
            ));
        }
    }
    assert!(differ.is_empty(), "answers differ:\n{}", differ.join("\n"));

    // Resources, in Heartbeat's counting (seen in a two-node Heartbeat cluster: the node
    // holding its group and the standby beside it both say `local`, the standby holding
    // nothing of its own): each side as Heartbeat says it in its place.
    assert_eq!(
        answer(&m.hosts[0], &format!("{HEARTBEAT_CL_STATUS} rscstatus")).0,
        "local\n"
    );
    assert_eq!(answer(&m.hosts[1], &ours("rscstatus")).0, "local\n");
    // Heartbeat's hb_standby on n1: n1 then holds nothing, n2 everything.
    m.hosts[0].sh_ok("/usr/share/heartbeat/hb_standby >/dev/null 2>&1 || true");
    m.wait_vip_only_on(1, Duration::from_secs(20));
    wait_for(
        "Heartbeat on n1 to say it holds nothing and n2 to say it holds all",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let theirs = answer(&m.hosts[0], &format!("{HEARTBEAT_CL_STATUS} rscstatus")).0;
            let mine = answer(&m.hosts[1], &ours("rscstatus")).0;
            (theirs == "none\n" && mine == "all\n").then_some(())
        },
    );

    // Our hb_standby, with Heartbeat's `failback`: the foreign group goes home to n1, and
    // n2 is left with its own (none): local.
    let (_, code) = answer(
        &m.hosts[1],
        &format!("{}/hb_standby failback", links.path().display()),
    );
    assert_eq!(code, Some(0), "hb_standby failback on n2");
    m.wait_vip_only_on(0, Duration::from_secs(20));
    wait_for(
        "n2 to say local again",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || (answer(&m.hosts[1], &ours("rscstatus")).0 == "local\n").then_some(()),
    );
}

#[test]
fn cl_status_without_a_daemon_says_stopped_and_falls_back_to_heartbeats_own() {
    // As `hb-monitor cl-status`, nothing to fall back to: Heartbeat's stopped answer.
    let out = std::process::Command::new(built_bin("hb-monitor"))
        .args([
            "cl-status",
            "--control",
            "/nonexistent/hb-monitor.sock",
            "hbstatus",
        ])
        .output()
        .unwrap();
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).as_ref(),
            out.status.code()
        ),
        ("Heartbeat is stopped on this machine.\n", Some(1))
    );
    // As `cl_status`, with no hb-monitor answering, Heartbeat's own runs in its place (here
    // it finds no Heartbeat either and says so in its own words).
    if !Path::new(HEARTBEAT_CL_STATUS).exists() {
        panic!("{HEARTBEAT_CL_STATUS} is missing: scripts/install-deps installs heartbeat");
    }
    let links = multi_call_links();
    let out = std::process::Command::new(links.path().join("cl_status"))
        .args(["--control", "/nonexistent/hb-monitor.sock", "listnodes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Cannot signon with heartbeat") && stderr.contains("hb_api_signon"),
        "Heartbeat's own cl_status did not answer: {stderr}"
    );
}

/// `hb-monitor cib` finds a bare haresources name where `run` would (resource.d, then the
/// init directory): an init script becomes Pacemaker's `lsb` class; a name found nowhere is
/// refused as `check` refuses it.
#[test]
fn cib_takes_init_scripts_from_the_init_directory_and_refuses_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let init = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ha.cf"),
        "ucast eth0 198.18.0.2\nnode n1\nnode n2\n",
    )
    .unwrap();
    let keys = dir.path().join("authkeys");
    std::fs::write(&keys, "auth 1\n1 sha1 secret\n").unwrap();
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let script = init.path().join("myservice");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cib = |haresources: &str| {
        std::fs::write(dir.path().join("haresources"), haresources).unwrap();
        std::process::Command::new(built_bin("hb-monitor"))
            .args(["cib", "-c"])
            .arg(dir.path())
            .arg("--init-dir")
            .arg(init.path())
            .env_clear()
            .output()
            .unwrap()
    };
    let out = cib("n1 198.18.0.100 myservice\n");
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        xml.contains(r#"class="lsb" type="myservice""#),
        "the init script is not an lsb resource:\n{xml}"
    );
    let out = cib("n1 198.18.0.100 nosuchservice\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("nosuchservice") && stderr.contains(&init.path().display().to_string()),
        "the refusal names the paths searched: {stderr}"
    );
}
