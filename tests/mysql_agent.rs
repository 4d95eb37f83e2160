//! mysql-agent as a process against a real MariaDB server, each test with its own datadir,
//! socket, pid file and error log (tests/util/mariadb.rs), never the system instance.

use std::time::{Duration, Instant};

use crate::util::agent::{AgentCmd, AgentRun};
use crate::util::host::{Host, Lan, wait_for};
use crate::util::mariadb::MariaDb;

/// mysql-agent for `db`, socket only: tests run in parallel in one network namespace, so
/// their servers must not all bind port 3306 (the TCP test uses a test host of its own).
fn mysql_for(db: &MariaDb) -> AgentCmd<'static> {
    let mut cmd = AgentCmd::new("mysql");
    for (name, value) in db.params() {
        cmd = cmd.param(name, &value);
    }
    cmd.param("additional_parameters", "--skip-networking")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn count_rows(db: &MariaDb) -> String {
    db.sql("SELECT COUNT(*) FROM ferroha_test.rows")
        .trim()
        .to_string()
}

// ---- no privileges needed ------------------------------------------------------------

#[test]
fn meta_data_and_bad_parameters() {
    AgentCmd::new("mysql").run("meta-data").rc(0);
    AgentCmd::new("mysql")
        .param("datadir", "relative")
        .run("validate-all")
        .rc(6)
        .reason_contains("absolute");
    AgentCmd::new("mysql")
        .param("test_table", "x; DROP TABLE y")
        .run("validate-all")
        .rc(6);
    // Probe and stop of a configuration that cannot run anything.
    AgentCmd::new("mysql")
        .param("datadir", "relative")
        .run("stop")
        .rc(0);
    AgentCmd::new("mysql")
        .param("datadir", "relative")
        .env("OCF_RESKEY_CRM_meta_interval", "0")
        .run("monitor")
        .rc(7);
}

// ---- a real server -------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn start_monitor_stop_double_start_double_stop() {
    let db = MariaDb::new();
    let agent = mysql_for(&db);
    agent.run("monitor").rc(7);
    agent.run("start").rc(0);
    let pid = db.server_pid().expect("pid file");
    for depth in ["0", "10", "20"] {
        mysql_for(&db)
            .env("OCF_CHECK_LEVEL", depth)
            .run("monitor")
            .rc(0);
    }
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM ferroha_monitor.heartbeat")
            .trim(),
        "1"
    );
    agent.run("start").rc(0);
    assert_eq!(
        db.server_pid(),
        Some(pid),
        "double start started a second server"
    );
    agent.run("stop").rc(0);
    assert!(!alive(pid));
    agent.run("stop").rc(0);
    agent.run("monitor").rc(7);
    agent.run("start").rc(0);
    agent.run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn committed_rows_survive_a_clean_stop_and_a_sigkill() {
    let db = MariaDb::new();
    let agent = mysql_for(&db);
    agent.run("start").rc(0);
    db.sql(
        "CREATE DATABASE ferroha_test; \
         CREATE TABLE ferroha_test.rows (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO ferroha_test.rows VALUES (1), (2), (3);",
    );
    agent.run("stop").rc(0);
    agent.run("start").rc(0);
    assert_eq!(count_rows(&db), "3");
    db.sql("INSERT INTO ferroha_test.rows VALUES (4), (5);");
    let pid = db.server_pid().unwrap();
    // SAFETY: the server of this test's own datadir.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for(
        "the server to die",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || (!alive(pid)).then_some(()),
    );
    agent.run("monitor").rc(7);
    agent.run("start").rc(0);
    assert_eq!(count_rows(&db), "5", "committed rows lost across a crash");
    agent.run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn a_stale_pid_file_naming_another_process_is_never_signalled() {
    let db = MariaDb::new();
    let agent = mysql_for(&db);
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    std::fs::write(db.pid_file(), format!("{}\n", bystander.id())).unwrap();
    agent.run("monitor").rc(7);
    agent.run("stop").rc(0);
    std::fs::write(db.pid_file(), format!("{}\n", bystander.id())).unwrap();
    agent.run("start").rc(0);
    agent.run("monitor").rc(0);
    agent.run("stop").rc(0);
    assert!(
        alive(bystander.id()),
        "the agent signalled a process that is not the server"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
#[ignore = "needs root"]
fn a_second_server_on_the_same_datadir_is_refused() {
    let db = MariaDb::new();
    mysql_for(&db).run("start").rc(0);
    let other_pid_file = db.pid_file().with_file_name("other.pid");
    mysql_for(&db)
        .param("pid", &other_pid_file.display().to_string())
        .run("start")
        .rc(1)
        .reason_contains("already uses datadir");
    mysql_for(&db).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn wrong_test_credentials_fail_depth_10_with_a_clear_reason() {
    let db = MariaDb::new();
    mysql_for(&db).run("start").rc(0);
    mysql_for(&db)
        .param("test_user", "ferroha_nobody")
        .param("test_passwd", "wrong")
        .env("OCF_CHECK_LEVEL", "10")
        .run("monitor")
        .rc(1)
        .reason_contains("Access denied");
    mysql_for(&db)
        .param("test_table", "mysql.no_such_table")
        .env("OCF_CHECK_LEVEL", "10")
        .run("monitor")
        .rc(1)
        .reason_contains("no_such_table");
    // Depth 0 does not log in: still running.
    mysql_for(&db)
        .param("test_passwd", "wrong")
        .run("monitor")
        .rc(0);
    mysql_for(&db).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn a_hung_server_is_killed_within_the_stop_timeout() {
    let db = MariaDb::new();
    mysql_for(&db).run("start").rc(0);
    let pid = db.server_pid().unwrap();
    // SAFETY: freezing the server of this test's own datadir.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let started = Instant::now();
    let run = mysql_for(&db)
        .env("OCF_RESKEY_CRM_meta_timeout", "4000")
        .run("stop");
    run.rc(0);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("KILL"), "{}", run.stderr);
    assert!(!alive(pid));
    mysql_for(&db).run("monitor").rc(7);
}

#[test]
#[ignore = "needs root"]
fn a_server_that_cannot_start_reports_its_log() {
    let db = MariaDb::new();
    mysql_for(&db)
        .param(
            "additional_parameters",
            "--skip-networking --ferroha-no-such-option=1",
        )
        .run("start")
        .rc(1)
        .reason_contains("ferroha-no-such-option");
    mysql_for(&db).run("monitor").rc(7);
}

#[test]
#[ignore = "needs root"]
fn enable_creation_initialises_an_empty_datadir() {
    let db = MariaDb::empty();
    // An empty datadir is this node's state (storage not mounted here): 5, so that another
    // node can take over; the original starts the server, which fails (1).
    mysql_for(&db)
        .run("start")
        .rc(5)
        .reason_contains("enable_creation");
    let agent = mysql_for(&db).param("enable_creation", "true");
    agent.run("start").rc(0);
    agent.env("OCF_CHECK_LEVEL", "10").run("monitor").rc(0);
    mysql_for(&db).run("stop").rc(0);
}

/// validate-all by mysql-agent and, when installed, resource-agents' mysql, with `db`'s
/// parameters and `overrides`: (ours, the original's exit code).
fn validate_side_by_side(db: &MariaDb, overrides: &[(&str, &str)]) -> (AgentRun, Option<i32>) {
    let build = |mut cmd: AgentCmd<'static>| {
        for (name, value) in db.params() {
            if !overrides.iter().any(|(k, _)| *k == name) {
                cmd = cmd.param(name, &value);
            }
        }
        for (k, v) in overrides {
            cmd = cmd.param(k, v);
        }
        cmd.run("validate-all")
    };
    let ours = build(AgentCmd::new("mysql"));
    let theirs = AgentCmd::original("heartbeat/mysql").map(|c| build(c).rc);
    (ours, theirs)
}

/// What one node may lack and another have (a user, a group, a binary, a datadir that lives
/// on storage not mounted here) is 5, never 6: 6 would stop the database cluster-wide. The
/// original agent says 5 for each of them too.
#[test]
#[ignore = "needs root"]
fn node_local_problems_are_err_installed_as_with_the_original() {
    let db = MariaDb::new();
    let missing = db.datadir().with_file_name("missing");
    let missing = missing.display().to_string();
    let missing_cnf = format!("{missing}.cnf");
    // (parameters replaced, exit code of both agents, part of our reason)
    type Case<'a> = (&'a [(&'a str, &'a str)], i32, &'a str);
    let cases: [Case; 7] = [
        (&[], 0, ""),
        // A bare name is looked up in PATH, as the original does.
        (&[("binary", "mariadbd")], 0, ""),
        (&[("binary", "ferroha-no-mysqld")], 5, "not found in PATH"),
        (&[("user", "ferroha-no-user")], 5, "user 'ferroha-no-user'"),
        (
            &[("group", "ferroha-no-group")],
            5,
            "group 'ferroha-no-group'",
        ),
        (&[("datadir", &missing)], 5, "does not exist"),
        (&[("config", &missing_cnf)], 5, "does not exist"),
    ];
    for (overrides, rc, reason) in cases {
        let (ours, theirs) = validate_side_by_side(&db, overrides);
        ours.rc(rc);
        if !reason.is_empty() {
            ours.reason_contains(reason);
        }
        if let Some(theirs) = theirs {
            assert_eq!(theirs, rc, "the original mysql agent with {overrides:?}");
        }
    }
    // The lookup is logged with the path it found.
    let (ours, _) = validate_side_by_side(&db, &[("binary", "mariadbd")]);
    assert!(
        ours.stderr.contains("/usr/sbin/mariadbd"),
        "{}",
        ours.stderr
    );
    // A relative path with a directory in it is wrong on every node.
    validate_side_by_side(&db, &[("binary", "sbin/mariadbd")])
        .0
        .rc(6);
}

#[test]
#[ignore = "needs root"]
fn validate_all_exit_codes() {
    let db = MariaDb::new();
    mysql_for(&db).run("validate-all").rc(0);
    mysql_for(&db)
        .param("binary", "/usr/sbin/ferroha-no-mysqld")
        .run("validate-all")
        .rc(5);
    mysql_for(&db)
        .param("user", "ferroha-no-user")
        .run("validate-all")
        .rc(5)
        .reason_contains("does not exist");
    let missing = db.datadir().with_file_name("missing");
    mysql_for(&db)
        .param("datadir", &missing.display().to_string())
        .run("validate-all")
        .rc(5);
    let private = db.datadir().with_file_name("private");
    std::fs::create_dir(&private).unwrap();
    mysql_for(&db)
        .param("datadir", &private.display().to_string())
        .run("validate-all")
        .rc(4)
        .reason_contains("not writable");
}

#[test]
#[ignore = "needs root"]
fn port_and_bind_address_reach_the_server() {
    let db = MariaDb::new();
    let lan = Lan::new(1);
    let host = Host::new("db-node");
    lan.attach(&host, "eth0", Some("198.18.1.1/24"));
    let mut agent = AgentCmd::new("mysql").on(&host);
    for (name, value) in db.params() {
        agent = agent.param(name, &value);
    }
    let agent = agent
        .param("port", "3307")
        .param("bind_address", "198.18.1.1");
    agent.run("start").rc(0);
    let listening = host.sh_ok("ss -Hltn");
    assert!(listening.contains("198.18.1.1:3307"), "{listening}");
    agent.run("stop").rc(0);
}

/// The first child of `pid` (`/proc/<pid>/task/<pid>/children`), once it has one.
fn first_child(pid: u32) -> u32 {
    wait_for(
        "a child process",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        },
    )
}

/// A process the agent cannot kill: the init of a PID namespace ignores every signal it has
/// no handler for, SIGKILL included, when the sender is inside that namespace (only an
/// ancestor namespace can kill it). The stand-in server is that init, named `mariadbd` and
/// working in the datadir as the real one does, and the agent runs inside its PID and mount
/// namespaces (with their /proc), where the pid file's `1` names it.
#[test]
#[ignore = "needs root"]
fn stop_fails_when_the_server_survives_kill() {
    let db = MariaDb::new();
    let host = Host::new("mysql-unkillable");
    let bin_dir = tempfile::tempdir().unwrap();
    let fake_server = bin_dir.path().join("mariadbd");
    std::fs::copy("/usr/bin/sleep", &fake_server).unwrap();
    let unshare = host.spawn(
        host.command("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(&fake_server)
            .arg("1000")
            .current_dir(db.datadir()),
    );
    let server = first_child(unshare.pid());
    wait_for(
        "the stand-in server to run",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            let comm = std::fs::read_to_string(format!("/proc/{server}/comm")).ok()?;
            (comm.trim() == "mariadbd").then_some(())
        },
    );
    std::fs::write(db.pid_file(), "1\n").unwrap();
    let server_ns = server.to_string();
    let started = Instant::now();
    let run = mysql_for(&db)
        .wrapped(&["nsenter", "-t", &server_ns, "--pid", "--mount", "--"])
        .env("OCF_RESKEY_CRM_meta_timeout", "3000")
        .run("stop");
    run.rc(1).reason_contains("still exists after KILL");
    assert!(run.stderr.contains("sending KILL"), "{}", run.stderr);
    assert!(
        alive(server),
        "the stand-in server did die: the test proved nothing"
    );
    // The agent gives up on its own, before the 3 s op timeout (its margin is 150 ms).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        started.elapsed()
    );
}

/// The server creates its pid file and socket as `user`: a directory it cannot write is 4,
/// for each of them, and a missing one is fine (start creates it).
#[test]
#[ignore = "needs root"]
fn pid_or_socket_directory_not_writable_by_the_user_is_err_perm() {
    let db = MariaDb::new();
    let root_only = db.datadir().with_file_name("root-only");
    std::fs::create_dir(&root_only).unwrap();
    let in_root_only = |name: &str| root_only.join(name).display().to_string();
    for (param, what) in [("pid", "pid file"), ("socket", "socket")] {
        mysql_for(&db)
            .param(param, &in_root_only("mysqld.x"))
            .run("validate-all")
            .rc(4)
            .reason_contains(&format!("cannot create the {what} in"));
        let missing = root_only.with_file_name("missing").join("mysqld.x");
        mysql_for(&db)
            .param(param, &missing.display().to_string())
            .run("validate-all")
            .rc(0);
    }
}

/// "Queries use the MySQL protocol: nothing is forked" at every monitor depth, and no
/// program is executed, while a probe of a stopped server forks nothing either.
#[test]
#[ignore = "needs root"]
fn monitor_forks_nothing_at_any_depth() {
    let db = MariaDb::new();
    let probe = mysql_for(&db).run_traced("monitor");
    probe.run.rc(7);
    assert_eq!(
        (probe.forks, probe.execs),
        (0, 0),
        "probe of a stopped server"
    );
    mysql_for(&db).run("start").rc(0);
    for depth in ["0", "10", "20"] {
        let agent = mysql_for(&db).env("OCF_CHECK_LEVEL", depth);
        let traced = agent.run_traced("monitor");
        traced.run.rc(0);
        assert_eq!(
            (traced.forks, traced.execs),
            (0, 0),
            "monitor depth {depth} forked or executed; stderr:\n{}",
            traced.run.stderr
        );
    }
    mysql_for(&db).run("stop").rc(0);
}
