//! `hb-monitor check` on real-world Heartbeat configurations (`tests/fixtures/heartbeat-corpus`,
//! each from a named guide): an installation moves over without edits, and what each
//! haresources entry becomes is what Heartbeat would have run.
//!
//! Each configuration is checked in a test host whose hostname is the node its `SOURCE`
//! names, with an OCF root whose ferroha agents record the parameters `validate-all` was
//! given and succeed: the agents' own validation on a node is their suites' business
//! (tests/vip_agent.rs, fs_agent.rs, mysql_agent.rs, drbd_agent.rs); here it is the reading
//! of the files and the translation of every resource that is tested. LSB init scripts the
//! resources name (`httpd`) are found in the test's init directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::agent::{AGENT_TYPES, world_readable_tempdir};
use crate::util::host::Host;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/heartbeat-corpus"
);

/// The node a corpus entry is checked as: the `node:` line of its `SOURCE`.
fn node_of(entry: &Path) -> String {
    let source = std::fs::read_to_string(entry.join("SOURCE")).expect("SOURCE");
    source
        .lines()
        .find_map(|l| l.strip_prefix("node: "))
        .unwrap_or_else(|| panic!("{}: SOURCE names no node", entry.display()))
        .trim()
        .to_string()
}

/// A recording agent: `validate-all` writes its instance's `OCF_RESKEY_*` parameters, one
/// `name=value` per line, to `$log/<type>.<instance>` and succeeds; any other action fails.
fn recording_agent(log: &Path, type_name: &str) -> String {
    format!(
        "#!/bin/sh\n\
         [ \"$1\" = validate-all ] || exit 3\n\
         env | grep '^OCF_RESKEY_' | grep -v '^OCF_RESKEY_CRM_meta' | sort \
         >'{}/{type_name}.'\"$OCF_RESOURCE_INSTANCE\"\n\
         exit 0\n",
        log.display()
    )
}

struct Checked {
    code: i32,
    output: String,
    /// Per agent run (`<type>.<instance>`), the parameters it was given.
    validated: BTreeMap<String, BTreeMap<String, String>>,
}

/// Copies `entry` into a fresh configuration directory (authkeys 0600, as Heartbeat needs)
/// and runs `hb-monitor check` on it in a host named after its node.
fn check_entry(entry: &Path) -> Checked {
    let node = node_of(entry);
    let work = world_readable_tempdir();
    let dir = work.path().join("ha.d");
    std::fs::create_dir(&dir).unwrap();
    for file in ["ha.cf", "haresources", "authkeys"] {
        std::fs::copy(entry.join(file), dir.join(file)).unwrap();
    }
    std::fs::set_permissions(dir.join("authkeys"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = work.path().join("validated");
    let ocf_root = work.path().join("ocf");
    let agents = ocf_root.join("resource.d/ferroha");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::create_dir(&log).unwrap();
    for type_name in AGENT_TYPES {
        let path = agents.join(type_name);
        std::fs::write(&path, recording_agent(&log, type_name)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The scripts the entries name, where their packages put them: the init script of a
    // web server, drbd-utils' drbddisk in resource.d.
    let init_dir = work.path().join("init.d");
    for script in [init_dir.join("httpd"), dir.join("resource.d/drbddisk")] {
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let state_dir = work.path().join("state");

    // The node with the interfaces its media name (each a veth with its peer beside it).
    let host = Host::new(&node);
    let ha_cf = std::fs::read_to_string(dir.join("ha.cf")).unwrap();
    let mut interfaces = std::collections::BTreeSet::new();
    for line in ha_cf.lines() {
        let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
        match words.as_slice() {
            ["bcast", ifaces @ ..] => interfaces.extend(ifaces.iter().map(|i| i.to_string())),
            ["ucast" | "mcast" | "ucast6" | "mcast6", iface, ..] => {
                interfaces.insert(iface.to_string());
            }
            _ => {}
        }
    }
    for (i, iface) in interfaces.iter().enumerate() {
        host.ip_batch(&format!(
            "link add {iface} type veth peer name corpus{i}\nlink set {iface} up\nlink set corpus{i} up"
        ));
    }
    let out = host
        .command(env!("CARGO_BIN_EXE_hb-monitor"))
        .arg("check")
        .arg("-c")
        .arg(&dir)
        .arg("--ocf-root")
        .arg(&ocf_root)
        .arg("--init-dir")
        .arg(&init_dir)
        .arg("--state-dir")
        .arg(&state_dir)
        .output()
        .expect("run hb-monitor check");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut validated = BTreeMap::new();
    for file in std::fs::read_dir(&log).unwrap().flatten() {
        let text = std::fs::read_to_string(file.path()).unwrap();
        let params = text
            .lines()
            .filter_map(|l| l.strip_prefix("OCF_RESKEY_")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        validated.insert(file.file_name().to_string_lossy().into_owned(), params);
    }
    Checked {
        code: out.status.code().unwrap_or(-1),
        output,
        validated,
    }
}

/// Every corpus entry's directory.
fn entries() -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("the corpus")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    entries
}

/// The parameters of each agent run, by type, in the order of the runs' instance names
/// (which follow haresources' order).
fn params_by_type(c: &Checked, type_name: &str) -> Vec<BTreeMap<String, String>> {
    c.validated
        .iter()
        .filter(|(run, _)| run.split('.').next() == Some(type_name))
        .map(|(_, p)| p.clone())
        .collect()
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn check_accepts_every_real_world_configuration_unchanged() {
    let entries = entries();
    assert!(entries.len() >= 4, "the corpus: {entries:?}");
    let mut failed = vec![];
    for entry in &entries {
        let c = check_entry(entry);
        assert!(!c.output.contains("panicked"), "{}", c.output);
        if c.code != 0 {
            failed.push(format!(
                "{} (exit {}):\n{}",
                entry.display(),
                c.code,
                c.output
            ));
        } else {
            assert!(
                !c.validated.is_empty(),
                "{}: no agent was asked to validate:\n{}",
                entry.display(),
                c.output
            );
        }
    }
    assert!(failed.is_empty(), "check refused:\n{}", failed.join("\n"));
}

#[test]
#[ignore = "needs root"]
fn the_drbd_users_guide_mysql_group_becomes_our_four_agents() {
    let c = check_entry(&Path::new(CORPUS).join("drbd-ug-8.3"));
    assert_eq!(c.code, 0, "{}", c.output);
    assert_eq!(
        params_by_type(&c, "drbd"),
        [params(&[("drbd_resource", "mysql")])],
        "{c:?}",
        c = c.validated
    );
    let fs = params_by_type(&c, "fs");
    assert_eq!(fs.len(), 1, "{:?}", c.validated);
    for (key, value) in [
        ("device", "/dev/drbd0"),
        ("directory", "/var/lib/mysql"),
        ("fstype", "ext3"),
    ] {
        assert_eq!(
            fs[0].get(key).map(String::as_str),
            Some(value),
            "{key}: {:?}",
            fs[0]
        );
    }
    let vip = params_by_type(&c, "vip");
    assert_eq!(
        vip.first().and_then(|p| p.get("ip")).map(String::as_str),
        Some("198.18.24.1"),
        "{vip:?}"
    );
    assert_eq!(params_by_type(&c, "mysql").len(), 1, "{:?}", c.validated);
}

#[test]
#[ignore = "needs root"]
fn a_bare_drbddisk_is_drbd_utils_script_for_all_resources_not_one_agent() {
    // The MySQL manual's group: `drbddisk` without a resource, which drbd-utils' script
    // runs as `drbdadm primary all`. ferroha's drbd agent manages one resource, so it is
    // not what runs here; the other three are.
    let c = check_entry(&Path::new(CORPUS).join("mysql-refman-5.1"));
    assert_eq!(c.code, 0, "{}", c.output);
    assert_eq!(
        params_by_type(&c, "drbd"),
        [] as [BTreeMap<String, String>; 0]
    );
    let fs = params_by_type(&c, "fs");
    assert_eq!(
        fs.first()
            .and_then(|p| p.get("options"))
            .map(String::as_str),
        Some("defaults"),
        "{fs:?}"
    );
    assert_eq!(params_by_type(&c, "vip").len(), 1, "{:?}", c.validated);
    assert_eq!(params_by_type(&c, "mysql").len(), 1, "{:?}", c.validated);
}
