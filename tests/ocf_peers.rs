//! The agents checked by the cluster stack's own tools: `make install` into a DESTDIR,
//! resource-agents' `ocf-tester`, and Pacemaker's `crm_resource` running the installed agents
//! from `/usr/lib/ocf/resource.d/ferroha` (the path is compiled into Pacemaker; a test host's
//! private mount namespace gets our tree bind-mounted there, so the machine is not touched).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::agent::{AGENT_TYPES, AgentCmd, agent_bin, make_install, world_readable_tempdir};
use crate::util::host::{Host, Lan};

#[test]
fn meta_data_is_valid_against_the_ocf_dtd_and_schema() {
    for type_name in AGENT_TYPES {
        let run = AgentCmd::new(type_name).run("meta-data");
        run.rc(0);
        let dir = tempfile::tempdir().unwrap();
        let xml = dir.path().join(format!("{type_name}.xml"));
        std::fs::write(&xml, &run.stdout).unwrap();
        for args in [
            [
                "--noout",
                "--dtdvalid",
                "/usr/share/resource-agents/ra-api-1.dtd",
            ],
            [
                "--noout",
                "--relaxng",
                "/usr/share/resource-agents/metadata.rng",
            ],
        ] {
            let out = Command::new("xmllint")
                .args(args)
                .arg(&xml)
                .output()
                .expect("xmllint (libxml2-utils) must be installed: make deps installs it");
            assert!(
                out.status.success(),
                "{type_name}: xmllint {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn installed(destdir: &Path) -> PathBuf {
    destdir.join("usr/lib/ocf/resource.d/ferroha")
}

#[test]
fn make_install_puts_agents_under_their_type_names() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let agent = installed(dest.path()).join("vip");
    let mode = std::fs::metadata(&agent).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "{}", agent.display());
    assert_eq!(
        std::fs::read(&agent).unwrap(),
        std::fs::read(agent_bin("vip")).unwrap()
    );
    let link = dest.path().join("usr/sbin/vip-agent");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("/usr/lib/ocf/resource.d/ferroha/vip"),
        "operators call vip-agent; it is the installed agent"
    );
    // Heartbeat's admin commands are hb-monitor under their names, and answer as cl_status.
    for name in ["cl_status", "hb_standby", "hb_takeover"] {
        let link = dest.path().join("usr/sbin").join(name);
        assert_eq!(
            std::fs::read_link(&link).unwrap_or_default(),
            PathBuf::from("hb-monitor"),
            "{name} is a link to hb-monitor"
        );
    }
    let usage = std::process::Command::new(dest.path().join("usr/sbin/cl_status"))
        .env_clear()
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&usage.stdout).starts_with("Usage: cl_status"),
        "{usage:?}"
    );
    // Every agent type in agents/ is installed, and nothing else lands in the provider dir.
    let types: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("agents"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut got: Vec<_> = std::fs::read_dir(installed(dest.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    got.sort();
    let mut want = types;
    want.sort();
    assert_eq!(got, want);
}

/// A host with 198.18.1.1/24 on eth0 and the installed agents where Pacemaker looks.
fn host_with_installed_agents(lan: &Lan, dest: &Path) -> Host {
    let host = Host::new("pcmk-node");
    lan.attach(&host, "eth0", Some("198.18.1.1/24"));
    host.sh_ok(&format!(
        "mount -t tmpfs tmpfs /usr/lib/ocf/resource.d && mkdir /usr/lib/ocf/resource.d/ferroha \
         && mount --bind {} /usr/lib/ocf/resource.d/ferroha",
        installed(dest).display()
    ));
    host
}

/// Runs a command in `host`, returns (exit code, stdout + stderr).
fn run_in(host: &Host, program: &str, args: &[&str]) -> (i32, String) {
    let out = host.command(program).args(args).output().expect(program);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
#[ignore = "needs root"]
fn ocf_tester_passes_on_vip_agent() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let lan = Lan::new(1);
    let host = host_with_installed_agents(&lan, dest.path());
    let (rc, text) = run_in(
        &host,
        "ocf-tester",
        &[
            "-n",
            "vip",
            "-o",
            "ip=198.18.1.100",
            "-o",
            "cidr_netmask=24",
            "-o",
            "nic=eth0",
            "/usr/lib/ocf/resource.d/ferroha/vip",
        ],
    );
    assert_eq!(rc, 0, "ocf-tester:\n{text}");
    assert!(text.contains("passed all tests"), "{text}");
    let left = host.sh_ok("ip -br addr show dev eth0");
    assert!(
        !left.contains("198.18.1.100"),
        "ocf-tester left the VIP: {left}"
    );
}

#[test]
#[ignore = "needs root"]
fn crm_resource_runs_the_installed_agent() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let lan = Lan::new(1);
    let host = host_with_installed_agents(&lan, dest.path());
    let crm = |op: &str, options: &[&str]| {
        let mut args = vec![
            op,
            "--class",
            "ocf",
            "--provider",
            "ferroha",
            "--agent",
            "vip",
        ];
        for o in options {
            args.push("--option");
            args.push(o);
        }
        run_in(&host, "crm_resource", &args)
    };
    let vip = ["ip=198.18.1.100"];
    assert_eq!(crm("--validate", &vip).0, 0);
    let (rc, text) = crm("--validate", &["ip=198.18.1.300"]);
    assert_eq!(rc, 6, "{text}");
    assert!(
        text.contains("is not an IPv4 or IPv6 address"),
        "the exit reason reaches Pacemaker: {text}"
    );
    assert_eq!(crm("--force-check", &vip).0, 7);
    assert_eq!(crm("--force-start", &vip).0, 0);
    assert!(
        host.sh_ok("ip -br addr show dev eth0")
            .contains("198.18.1.100/24")
    );
    assert_eq!(crm("--force-check", &vip).0, 0);
    assert_eq!(crm("--force-check=10", &vip).0, 0);
    assert_eq!(crm("--force-stop", &vip).0, 0);
    assert_eq!(crm("--force-check", &vip).0, 7);
    // Pacemaker reads our meta-data as an unprivileged user.
    let (rc, text) = run_in(
        &host,
        "crm_resource",
        &["--show-metadata", "ocf:ferroha:vip"],
    );
    assert_eq!(rc, 0, "{text}");
    assert!(text.contains("cidr_netmask"));
    let (rc, text) = run_in(
        &host,
        "su",
        &[
            "nobody",
            "-s",
            "/bin/sh",
            "-c",
            "/usr/lib/ocf/resource.d/ferroha/vip meta-data",
        ],
    );
    assert_eq!(rc, 0, "meta-data as nobody: {text}");
}

#[test]
#[ignore = "needs root"]
fn ocf_tester_passes_on_fs_agent() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let dev = crate::util::loopdev::LoopDevice::with_fs("ext4", None);
    let lan = Lan::new(1);
    let host = host_with_installed_agents(&lan, dest.path());
    let device = format!("device={}", dev.name());
    let (rc, text) = run_in(
        &host,
        "ocf-tester",
        &[
            "-n",
            "fs",
            "-o",
            &device,
            "-o",
            "directory=/run/ocf-tester/data",
            "-o",
            "fstype=ext4",
            "/usr/lib/ocf/resource.d/ferroha/fs",
        ],
    );
    assert_eq!(rc, 0, "ocf-tester:\n{text}");
    assert!(text.contains("passed all tests"), "{text}");
    let (rc, text) = run_in(
        &host,
        "crm_resource",
        &[
            "--validate",
            "--class",
            "ocf",
            "--provider",
            "ferroha",
            "--agent",
            "fs",
            "--option",
            &device,
            "--option",
            "directory=/",
        ],
    );
    assert_eq!(rc, 6, "{text}");
    assert!(text.contains("must not be /"), "{text}");
    drop(host);
}

#[test]
#[ignore = "needs root"]
fn ocf_tester_passes_on_mysql_agent() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let db = crate::util::mariadb::MariaDb::new();
    let lan = Lan::new(1);
    let host = host_with_installed_agents(&lan, dest.path());
    let options: Vec<String> = db
        .params()
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let mut args = vec!["-n", "mysql"];
    for o in &options {
        args.push("-o");
        args.push(o);
    }
    args.push("/usr/lib/ocf/resource.d/ferroha/mysql");
    let (rc, text) = run_in(&host, "ocf-tester", &args);
    assert_eq!(rc, 0, "ocf-tester:\n{text}");
    assert!(text.contains("passed all tests"), "{text}");
    assert!(
        db.server_processes().is_empty(),
        "ocf-tester left a server running"
    );
}

/// `crm_resource --validate/--force-check/--force-start/--force-stop` against every installed
/// agent, as an operator debugging a resource would: each returns the agent's own OCF code
/// (0, 7, 6), and the deepest monitor level works. drbd-agent runs against the simulator
/// (node `a` by hostname, as under a cluster manager that scrubs the environment).
#[test]
#[ignore = "needs root"]
fn crm_resource_drives_every_installed_agent() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let dev = crate::util::loopdev::LoopDevice::with_fs("ext4", None);
    let db = crate::util::mariadb::MariaDb::new();
    let sim = crate::util::drbd_sim::DrbdSim::new();
    sim.map_host("pcmk-node", "a");
    sim.ctl(&["disk", "a", "UpToDate"]);
    let lan = Lan::new(1);
    let host = host_with_installed_agents(&lan, dest.path());
    let path = |p: &Path| p.display().to_string();
    let mut mysql: Vec<String> = db
        .params()
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    mysql.push("additional_parameters=--skip-networking".into());
    // (type, good options, deepest monitor level, a bad option and the code it gets)
    let cases: Vec<(&str, Vec<String>, &str, String, i32)> = vec![
        (
            "vip",
            vec!["ip=198.18.1.100".into(), "cidr_netmask=24".into()],
            "10",
            "ip=198.18.1.300".into(),
            6,
        ),
        (
            "fs",
            vec![
                format!("device={}", dev.name()),
                "directory=/run/crm-fs".into(),
                "fstype=ext4".into(),
            ],
            "20",
            "directory=relative".into(),
            6,
        ),
        ("mysql", mysql, "10", "datadir=relative".into(), 6),
        (
            "drbd",
            vec![
                "drbd_resource=r0".into(),
                format!("drbdadm={}", path(&sim.bin("drbdadm"))),
                format!("drbdsetup={}", path(&sim.bin("drbdsetup"))),
                format!("drbdconf={}", path(&sim.conf())),
            ],
            "0",
            "drbd_resource=bad name".into(),
            6,
        ),
    ];
    for (agent, options, level, bad, bad_rc) in &cases {
        let crm = |op: &str, extra: Option<&str>| {
            let mut args = vec![
                op,
                "--class",
                "ocf",
                "--provider",
                "ferroha",
                "--agent",
                agent,
            ];
            // A bad option replaces the good one of the same name.
            let name = |o: &str| o.split('=').next().unwrap_or("").to_string();
            for o in options {
                if extra.is_none_or(|e| name(e) != name(o)) {
                    args.extend(["--option", o.as_str()]);
                }
            }
            if let Some(e) = extra {
                args.extend(["--option", e]);
            }
            run_in(&host, "crm_resource", &args)
        };
        let level_op = format!("--force-check={level}");
        for (op, rc) in [
            ("--validate", 0),
            ("--force-check", 7),
            ("--force-start", 0),
            ("--force-check", 0),
            (level_op.as_str(), 0),
            ("--force-start", 0),
            ("--force-stop", 0),
            ("--force-check", 7),
            ("--force-stop", 0),
        ] {
            let (got, text) = crm(op, None);
            assert_eq!(got, rc, "{agent} {op}:\n{text}");
        }
        let (got, text) = crm("--validate", Some(bad));
        assert_eq!(got, *bad_rc, "{agent} --validate {bad}:\n{text}");
    }
    assert!(db.server_processes().is_empty(), "mysqld left running");
    assert!(
        !host
            .sh_ok("cat /proc/self/mountinfo")
            .contains("/run/crm-fs")
    );
}

/// Pacemaker reads meta-data as `hacluster` and ocf-tester as `nobody`: it works for both,
/// opens nothing for writing and creates nothing (strace), and `crm_resource --show-metadata`
/// shows every parameter with the documentation of `ocf-meta/<type>.xml`.
#[test]
#[ignore = "needs root"]
fn meta_data_as_unprivileged_users_writes_nothing_and_pacemaker_shows_our_docs() {
    let dest = world_readable_tempdir();
    make_install(dest.path());
    let lan = Lan::new(1);
    let host = host_with_installed_agents(&lan, dest.path());
    let trace_dir = world_readable_tempdir();
    std::fs::set_permissions(trace_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    for agent in AGENT_TYPES {
        let bin = format!("/usr/lib/ocf/resource.d/ferroha/{agent}");
        for user in ["nobody", "hacluster"] {
            let trace = trace_dir.path().join(format!("{agent}-{user}"));
            let script = format!(
                "cd {dir} && strace -f -qq -o {trace} -e trace=execve,openat,open,creat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,truncate \
                 setpriv --reuid={user} --regid=$(id -g {user}) --clear-groups {bin} meta-data",
                dir = trace_dir.path().display(),
                trace = trace.display()
            );
            let (rc, text) = run_in(&host, "sh", &["-c", &script]);
            assert_eq!(rc, 0, "{agent} meta-data as {user}: {text}");
            assert!(
                text.contains("<resource-agent"),
                "{agent} as {user}: {text}"
            );
            let calls = std::fs::read_to_string(&trace).unwrap();
            // After the exec of the agent (setpriv's own calls come before).
            let agent_calls = calls
                .split_once(&format!("execve(\"{bin}\""))
                .map(|(_, rest)| rest)
                .unwrap_or_else(|| panic!("no execve of {bin} in:\n{calls}"));
            for line in agent_calls.lines() {
                let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                    .iter()
                    .any(|flag| line.contains(flag));
                let changes = ["mkdir", "unlink", "rename", "creat(", "truncate("]
                    .iter()
                    .any(|call| line.contains(call));
                assert!(!writes && !changes, "{agent} meta-data as {user}: {line}");
            }
            std::fs::remove_file(&trace).unwrap();
        }
        assert_eq!(
            std::fs::read_dir(trace_dir.path()).unwrap().count(),
            0,
            "{agent} meta-data created files"
        );

        let (rc, shown) = run_in(
            &host,
            "crm_resource",
            &["--show-metadata", &format!("ocf:ferroha:{agent}")],
        );
        assert_eq!(rc, 0, "{shown}");
        let ours = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("ocf-meta/{agent}.xml")),
        )
        .unwrap();
        assert_eq!(params_doc(&shown), params_doc(&ours), "{agent}");
        assert!(!params_doc(&ours).is_empty());
    }
}

/// (name, shortdesc, longdesc, default) of every parameter in a meta-data document.
fn params_doc(xml: &str) -> Vec<(String, String, String, String)> {
    let start = xml
        .find("<?xml")
        .or_else(|| xml.find("<resource-agent"))
        .unwrap();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&xml[start..], options).unwrap();
    let child_text = |n: roxmltree::Node, tag: &str| {
        n.children()
            .find(|c| c.tag_name().name() == tag)
            .and_then(|c| c.text())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    doc.descendants()
        .filter(|n| n.tag_name().name() == "parameter")
        .map(|p| {
            let default = p
                .children()
                .find(|c| c.tag_name().name() == "content")
                .and_then(|c| c.attribute("default"))
                .unwrap_or("")
                .to_string();
            (
                p.attribute("name").unwrap_or("").to_string(),
                child_text(p, "shortdesc"),
                child_text(p, "longdesc"),
                default,
            )
        })
        .collect()
}
