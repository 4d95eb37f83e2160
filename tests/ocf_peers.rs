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
