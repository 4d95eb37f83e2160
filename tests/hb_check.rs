//! `hb-monitor check` as a process: Heartbeat's configuration files read unchanged, the
//! resources' agents (installed as `make install` puts them) asked to validate on this node,
//! and every problem named with file and line.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::agent::{make_install, world_readable_tempdir};
use crate::util::host::{Host, Lan, wait_for};

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
        "n1 IPaddr2::198.18.1.100/24/eth0 \\\n   No/such::x\n",
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
        text.contains(&format!("{d}/haresources:1: unknown resource 'No/such'")),
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
    lan.attach(&n9, "eth0", Some("198.18.1.9/24"));
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

/// An OCF root with one agent, `ocf:ferroha-test:ok`, whose every action succeeds: the
/// agents are not what the refusal table is about.
pub(crate) fn ok_agent_root() -> tempfile::TempDir {
    let root = world_readable_tempdir();
    let dir = root.path().join("resource.d/ferroha-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ok"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(dir.join("ok"), std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// `hb-monitor run` in `host` with `dir` and `state_dir`: it must exit (refuse) within 10 s;
/// exit code and stderr.
fn run_refusal(host: &Host, dir: &Path, state_dir: &Path, ocf_root: &Path) -> (i32, String) {
    let mut daemon = host.spawn(
        host.command(env!("CARGO_BIN_EXE_hb-monitor"))
            .arg("run")
            .arg("-c")
            .arg(dir)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--control")
            .arg("/run/hb-check-test.sock")
            .arg("--ocf-root")
            .arg(ocf_root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let status = wait_for(
        &format!("run to refuse {}", dir.display()),
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(10),
        || daemon.child.try_wait().unwrap(),
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.code().unwrap_or(-1), stderr)
}

/// The `error: ` lines of an output, the configuration directory's path taken out.
fn refusals(text: &str, dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(|l| l.replace(&dir.display().to_string(), "DIR"))
        .collect();
    lines.sort();
    lines
}

#[test]
#[ignore = "needs root"]
fn check_refuses_everything_run_refuses_with_the_same_message() {
    let lan = Lan::new(1);
    let n1 = Host::new("n1");
    lan.attach(&n1, "eth0", Some("198.18.1.1/24"));
    let agents = ok_agent_root();
    let files = world_readable_tempdir();
    let f = files.path().display().to_string();
    // Something precious where a device or a directory belongs.
    let precious = files.path().join("precious.conf");
    std::fs::write(&precious, "precious contents\n").unwrap();
    let not_executable = files.path().join("fence-644");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let haresources = "n1 ferroha-test:ok::a=b\n";
    let good_state = files.path().join("state");
    // (what, extra ha.cf lines, state directory, the refusal's message).
    let table: Vec<(&str, String, PathBuf, String)> = vec![
        (
            "watchdog a regular file",
            format!("watchdog {f}/precious.conf\n"),
            good_state.clone(),
            format!("error: DIR/ha.cf:8: watchdog {f}/precious.conf: a regular file, not a watchdog device (a character device such as /dev/watchdog)"),
        ),
        (
            "watchdog missing",
            "watchdog /dev/ferroha-no-such-watchdog\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: watchdog /dev/ferroha-no-such-watchdog does not exist (load a watchdog driver, e.g. `modprobe softdog`, or remove the directive)".into(),
        ),
        (
            "serial a regular file",
            format!("serial {f}/precious.conf\n"),
            good_state.clone(),
            format!("error: DIR/ha.cf:8: serial {f}/precious.conf: a regular file, not a terminal"),
        ),
        (
            "serial a character device that is not a tty",
            "serial /dev/null\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: serial /dev/null: a character device, not a terminal".into(),
        ),
        (
            "an unsupported baud",
            "baud 12345\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: baud '12345': one of 9600, 19200, 38400, 57600, 115200, 230400".into(),
        ),
        (
            "fence command not executable",
            format!("fence_command {f}/fence-644 --hard\n"),
            good_state.clone(),
            format!("error: DIR/ha.cf:8: fence_command {f}/fence-644: not executable (chmod +x)"),
        ),
        (
            "fence command a directory",
            format!("fence_command {f}\n"),
            good_state.clone(),
            format!("error: DIR/ha.cf:8: fence_command {f}: a directory, not an executable file"),
        ),
        (
            "logfile in a missing directory",
            format!("logfile {f}/nosuch/ha-log\n"),
            good_state.clone(),
            format!("error: DIR/ha.cf:8: logfile {f}/nosuch/ha-log: directory {f}/nosuch does not exist"),
        ),
        (
            "logfile a directory",
            format!("logfile {f}\n"),
            good_state.clone(),
            format!("error: DIR/ha.cf:8: logfile {f}: a directory, not a file to append to"),
        ),
        (
            "debugfile a character device",
            "debugfile /dev/null\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: debugfile /dev/null: a character device, not a file to append to".into(),
        ),
        (
            "notify command not executable",
            format!("notify_command {f}/fence-644 --to ops\n"),
            good_state.clone(),
            format!("error: DIR/ha.cf:8: notify_command {f}/fence-644: not executable (chmod +x)"),
        ),
        (
            "metrics_listen on an address of another machine",
            "metrics_listen 198.18.9.9:9664\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: metrics_listen 198.18.9.9:9664: 198.18.9.9 is not an address of this machine (use one it has, or a bare PORT for localhost)".into(),
        ),
        (
            "bcast on a missing interface",
            "bcast eth9\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: bcast: interface eth9 does not exist".into(),
        ),
        (
            "ucast on a missing interface",
            "ucast eth9 198.18.1.3\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: ucast: interface eth9 does not exist".into(),
        ),
        (
            "IPv6 ucast",
            "ucast eth0 2001:db8:1::2\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: ucast 2001:db8:1::2: ucast is IPv4 only, as in Heartbeat; for IPv6 write 'ucast6 eth0 2001:db8:1::2'".into(),
        ),
        (
            "IPv6 ping node",
            "ping 2001:db8:1::254\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: ping 2001:db8:1::254 is an IPv6 address: use ping6 for IPv6 ping nodes".into(),
        ),
        (
            "a sub-millisecond keepalive",
            "keepalive 0.0000001\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: keepalive (0 µs) must be at least 1 ms: shorter ones only burn CPU and flood the log".into(),
        ),
        (
            "deadping within two pings",
            "deadping 150ms\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: deadping (150 ms) must be more than twice keepalive (100 ms): ping nodes are pinged every keepalive".into(),
        ),
        (
            "initdead below deadtime",
            "initdead 500ms\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: initdead must be at least deadtime".into(),
        ),
        (
            "a Heartbeat STONITH plugin",
            "stonith external/ipmi /etc/ha.d/stonith.cfg\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: 'stonith': Heartbeat's STONITH plugins are not run by hb-monitor; use 'fence_command PROGRAM' (run with the node's name appended, exit 0 when that node is off)".into(),
        ),
        (
            "a Heartbeat STONITH host",
            "stonith_host * external/ipmi n2 198.18.1.202 admin secret\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: 'stonith_host': Heartbeat's STONITH plugins are not run by hb-monitor; use 'fence_command PROGRAM' (run with the node's name appended, exit 0 when that node is off)".into(),
        ),
        (
            "autojoin",
            "autojoin any\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: 'autojoin any': nodes joining without a node line are not supported; list every node with 'node' and use 'autojoin none'".into(),
        ),
        (
            "a directive Heartbeat does not have either",
            "respawn_hold hacluster /usr/lib/heartbeat/ipfail\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: unknown directive 'respawn_hold'".into(),
        ),
        (
            "a failfast helper",
            "failfast hacluster /usr/local/bin/probe\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: 'failfast': Heartbeat reboots the node when such a program exits, which hb-monitor does not do; run it with 'respawn', and fence with 'fence_command'".into(),
        ),
        (
            "an environment for the scripts",
            "env HA_LOGFACILITY=daemon\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: 'env': setting the environment of the daemon and its resource scripts is not supported; set the variables in the scripts, or in the service unit (Environment=)".into(),
        ),
        (
            "both failback directives",
            "auto_failback on\nnice_failback on\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:9: both auto_failback and nice_failback: use auto_failback only (nice_failback is its old, inverted form)".into(),
        ),
        (
            "a respawned helper as a user this node lacks",
            "respawn ferroha-no-such-user /bin/sleep 60\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: respawn ferroha-no-such-user /bin/sleep: no user 'ferroha-no-such-user' on this node".into(),
        ),
        (
            "a respawned helper by a bare name",
            "respawn nobody sleep 60\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: respawn sleep: the program must be an absolute path (Heartbeat runs it without searching PATH)".into(),
        ),
        (
            "a respawned helper that does not exist",
            "respawn nobody /nonexistent/helper\n".into(),
            good_state.clone(),
            "error: DIR/ha.cf:8: respawn /nonexistent/helper does not exist".into(),
        ),
        (
            "a state directory under a regular file",
            String::new(),
            precious.join("state"),
            format!("error: {f}/precious.conf/state: state directory (--state-dir): {f}/precious.conf is a regular file, not a directory"),
        ),
    ];
    // The baseline passes check: each row's refusal is its own line's doing.
    let good = config_dir(HA_CF, haresources);
    let (rc, text) = check_with_state(&n1, good.path(), agents.path(), &good_state);
    assert_eq!(rc, 0, "the baseline must pass: {text}");
    let mut failures = vec![];
    for (what, extra, state_dir, expected) in &table {
        let dir = config_dir(&format!("{HA_CF}{extra}"), haresources);
        let (check_rc, check_text) = check_with_state(&n1, dir.path(), agents.path(), state_dir);
        let (run_rc, run_text) = run_refusal(&n1, dir.path(), state_dir, agents.path());
        let (checked, ran) = (
            refusals(&check_text, dir.path()),
            refusals(&run_text, dir.path()),
        );
        eprintln!("{what}: check {check_rc} {checked:?}, run {run_rc} {ran:?}");
        if check_rc != 6 || run_rc != 6 || checked != ran || checked != [expected.clone()] {
            failures.push(format!(
                "{what}: want exit 6 and [{expected:?}] from both;\n  check exit {check_rc}: {check_text}\n  run exit {run_rc}: {run_text}"
            ));
        }
    }
    // Scripts haresources names that are not where Heartbeat would look: (what, the
    // resource added to the group, a file put in DIR/resource.d with its mode, the refusal).
    type ScriptRow<'a> = (&'a str, &'a str, Option<(&'a str, u32)>, &'a str);
    let scripts: Vec<ScriptRow> = vec![
        (
            "a name found nowhere",
            "ferroha-no-such-script::x",
            None,
            "error: DIR/haresources:1: 'ferroha-no-such-script::x': unknown resource 'ferroha-no-such-script': not one of hb-monitor's names and no script: looked for DIR/resource.d/ferroha-no-such-script, then /etc/init.d/ferroha-no-such-script",
        ),
        (
            "a missing init script",
            "lsb:ferroha-no-such-init",
            None,
            "error: DIR/haresources:1: 'lsb:ferroha-no-such-init': no script 'ferroha-no-such-init': looked for /etc/init.d/ferroha-no-such-init",
        ),
        (
            "a resource script that is not executable",
            "heartbeat:plain::a",
            Some(("plain", 0o644)),
            "error: DIR/haresources:1: 'heartbeat:plain::a': no script 'plain': looked for DIR/resource.d/plain (not an executable file)",
        ),
    ];
    for (what, resource, file, expected) in &scripts {
        let dir = config_dir(HA_CF, &format!("n1 ferroha-test:ok::a=b {resource}\n"));
        if let Some((name, mode)) = file {
            let path = dir.path().join("resource.d").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "#!/bin/sh\necho OK\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        let (check_rc, check_text) = check_with_state(&n1, dir.path(), agents.path(), &good_state);
        let (run_rc, run_text) = run_refusal(&n1, dir.path(), &good_state, agents.path());
        let (checked, ran) = (
            refusals(&check_text, dir.path()),
            refusals(&run_text, dir.path()),
        );
        eprintln!("{what}: check {check_rc} {checked:?}, run {run_rc} {ran:?}");
        if check_rc != 6 || run_rc != 6 || checked != ran || checked != [expected.to_string()] {
            failures.push(format!(
                "{what}: want exit 6 and [{expected:?}] from both;\n  check exit {check_rc}: {check_text}\n  run exit {run_rc}: {run_text}"
            ));
        }
    }
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "precious contents\n",
        "a refused path was written to"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `hb-monitor check` in `host` with `--state-dir`.
fn check_with_state(host: &Host, dir: &Path, ocf_root: &Path, state_dir: &Path) -> (i32, String) {
    let out = host
        .command(env!("CARGO_BIN_EXE_hb-monitor"))
        .arg("check")
        .arg("-c")
        .arg(dir)
        .arg("--ocf-root")
        .arg(ocf_root)
        .arg("--state-dir")
        .arg(state_dir)
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
