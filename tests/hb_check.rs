//! `hb-monitor check` as a process: Heartbeat's configuration files read unchanged, the
//! resources' agents (installed as `make install` puts them) asked to validate on this node,
//! and every problem named with file and line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::agent::{make_install, world_readable_tempdir};
use crate::util::host::{Host, Lan};

const HA_CF: &str = "\
keepalive 100ms
deadtime 1
ucast eth0 198.18.1.2
use_logd no
crm off
node n1
node n2
";

fn config_dir(ha_cf: &str, haresources: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ha.cf"), ha_cf).unwrap();
    std::fs::write(dir.path().join("haresources"), haresources).unwrap();
    let keys = dir.path().join("authkeys");
    std::fs::write(&keys, "auth 1\n1 sha256 a-test-secret\n").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

/// Runs `hb-monitor check` (in `host` when given); exit code and stdout+stderr.
fn check(host: Option<&Host>, dir: &Path, ocf_root: &Path) -> (i32, String) {
    let bin = env!("CARGO_BIN_EXE_hb-monitor");
    let mut cmd = match host {
        Some(h) => h.command(bin),
        None => {
            let mut c = Command::new(bin);
            c.env_clear();
            c
        }
    };
    let out = cmd
        .arg("check")
        .arg("-c")
        .arg(dir)
        .arg("--ocf-root")
        .arg(ocf_root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn broken_files_are_named_with_file_and_line_and_exit_6() {
    let dir = config_dir(
        "keepalive 2\ndeadtime 3\nnode n1\nbcast eth0\ncrm on\n",
        "n1 IPaddr2::198.18.1.100/24/eth0 \\\n   Nosuch::x\n",
    );
    let (rc, text) = check(None, dir.path(), Path::new("/nonexistent"));
    assert_eq!(rc, 6, "{text}");
    let d = dir.path().display();
    assert!(
        text.contains(&format!(
            "{d}/ha.cf:2: deadtime (3000 ms) must be more than twice keepalive"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("{d}/ha.cf:5: 'crm on'")), "{text}");
    assert!(
        text.contains(&format!("{d}/haresources:1: unknown resource 'Nosuch'")),
        "{text}"
    );
    let missing = tempfile::tempdir().unwrap();
    let (rc, text) = check(None, missing.path(), Path::new("/nonexistent"));
    assert_eq!(rc, 6);
    assert!(text.contains("ha.cf: cannot read"), "{text}");
}

#[test]
fn usage_errors_are_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_hb-monitor"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
#[ignore = "needs root"]
fn agents_validate_the_group_on_this_node() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let ocf_root = dest.path().join("usr/lib/ocf");
    let lan = Lan::new(1);
    let n1 = Host::new("n1");
    lan.attach(&n1, "eth0", Some("198.18.1.1/24"));
    let good = config_dir(
        HA_CF,
        "n1 IPaddr2::198.18.1.100/24/eth0 vip::ip=198.18.1.101\n",
    );
    let (rc, text) = check(Some(&n1), good.path(), &ocf_root);
    assert_eq!(rc, 0, "{text}");
    assert!(
        text.contains("configuration OK for node n1 (2 resources validated)"),
        "{text}"
    );
    assert!(
        text.contains("note: line 4: 'use_logd no' changes nothing"),
        "{text}"
    );

    // vip's own validate-all finds that nothing routes 198.19.9.9 here.
    let unroutable = config_dir(HA_CF, "n1 198.18.1.100 \\\n  IPaddr2::198.19.9.9\n");
    let (rc, text) = check(Some(&n1), unroutable.path(), &ocf_root);
    assert_eq!(rc, 6, "{text}");
    assert!(
        text.contains(&format!(
            "{}/haresources:1: IPaddr2::198.19.9.9: vip validate-all failed (exit 1): cannot infer",
            unroutable.path().display()
        )),
        "{text}"
    );
    // An agent that is not installed, and a node that is not in ha.cf.
    let uninstalled = config_dir(HA_CF, "n1 ferroha-test:nosuch::a=b\n");
    let (rc, text) = check(Some(&n1), uninstalled.path(), &ocf_root);
    assert_eq!(rc, 6);
    assert!(
        text.contains("agent ocf:ferroha-test:nosuch is not installed"),
        "{text}"
    );
    let n9 = Host::new("n9");
    let (rc, text) = check(Some(&n9), good.path(), &ocf_root);
    assert_eq!(rc, 6);
    assert!(
        text.contains("this node (n9, from uname -n) is not one of the nodes (n1, n2)"),
        "{text}"
    );
}

#[test]
fn absurd_op_timeouts_are_usage_errors_not_panics() {
    for value in ["18446744073709551615", "86401", "0", "-1"] {
        let out = Command::new(env!("CARGO_BIN_EXE_hb-monitor"))
            .args(["run", "-c", "/nonexistent"])
            .arg(format!("--op-timeout={value}"))
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(out.status.code(), Some(2), "--op-timeout {value}: {stderr}");
        assert!(stderr.contains("--op-timeout"), "{stderr}");
    }
}
