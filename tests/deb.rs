//! The Debian package, built as `make deb` builds it and installed with `apt-get install ./…`
//! into a clean Debian 12 chroot where Debian's `heartbeat` is installed and configured
//! (`util::chroot`). There: ferroha installs beside Heartbeat without touching `/etc/ha.d`
//! and without enabling or starting hb-monitor; it pulls no package (its Depends are exactly
//! the packages of the libraries its binaries link); each agent's `meta-data` validates
//! against the OCF DTD and schema; `hb-monitor check` accepts both shipped examples;
//! `systemd-analyze verify` accepts the unit; the man pages render; an upgrade and the
//! downgrade back only try-restart the unit and keep it disabled; and `apt-get purge`
//! leaves the tree as it found it. Then the same without Heartbeat, where the package
//! enables the unit (still starting nothing), an upgrade try-restarts it and keeps it
//! enabled, and purge must take the links away again.
//!
//! The package is built from the binaries this test run already has (`CARGO_BIN_EXE_*`, the
//! test profile) and man pages rendered in-process (`pages::write_all`, what `make man`
//! runs), so the test compiles nothing: `make deb` itself would first build the release
//! profile, minutes on a cold tree while the rest of the suite runs. The packaging script
//! and its lintian check are the ones `make deb` runs.
//!
//! ferroha's own install and purge run with an allow-all `policy-rc.d`, `/run/systemd/system`
//! present and a `systemctl` that records its arguments (and carries out only the offline
//! `--root=` ones): what its maintainer scripts would ask of systemd on a real node is
//! observed, not hidden by the chroot's policy-rc.d, which denies every start (101) for the
//! other packages' scripts. The chroot's network namespace has no route out: apt installs
//! from the local file only, so anything the package needed beyond the chroot would fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Instant;

use crate::man_pages::pages;
use crate::util::agent::{AGENT_TYPES, built_bin};
use crate::util::chroot::Chroot;

/// A configured Heartbeat node's own files, which the package must leave byte for byte.
const HEARTBEAT_HA_CF: &str = "\
# This node's Heartbeat configuration (not ferroha's).
keepalive 2
deadtime 30
ucast eth0 198.18.5.2
node alpha
node beta
crm off
";
const HEARTBEAT_HARESOURCES: &str = "alpha 198.18.5.10\n";
const HEARTBEAT_AUTHKEYS: &str = "auth 1\n1 sha1 a-heartbeat-secret\n";

/// What the shipped examples need on node `alpha` besides the package, set up as its admin
/// would: MariaDB's account, datadirs and option files (mariadb-server would have made the
/// account; the chroot has the server core only), and DRBD's resources r0 and r1. Device
/// nodes go to the chroot's `/dev` (see `prepare_devices`); the interfaces to the host.
const EXAMPLE_NODE: &str = r#"
set -eu
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mysql
install -d -o mysql -g mysql -m 0750 /var/lib/mysql /srv/mysql-a /srv/mysql-b
printf '[mysqld]\ndatadir = /srv/mysql-a\n' >/etc/mysql/a.cnf
printf '[mysqld]\ndatadir = /srv/mysql-b\n' >/etc/mysql/b.cnf
for n in 0 1; do
    cat >/etc/drbd.d/r$n.res <<EOF
resource r$n {
    device /dev/drbd$n;
    disk /dev/vdb$n;
    meta-disk internal;
    on alpha { address 198.18.4.1:778$n; }
    on beta { address 198.18.4.2:778$n; }
}
EOF
done
"#;

/// Every path of the tree but the volatile ones, with type, mode and link target, and the
/// checksum of every regular file under `/etc`: what "leaves nothing behind" compares.
const TREE: &str = r#"
find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/cache -o -path /var/log -o -path /var/lib/apt -o -path /var/lib/dpkg \) \
    -prune -o -printf '%y %m %u:%g %p %l\n'
find /etc -xdev -type f -exec sha256sum {} +
"#;

/// `/etc/ha.d` in full: types, modes, owners, link targets and contents.
const HA_D: &str = r#"
cd /etc/ha.d && find . -printf '%y %m %u:%g %p %l\n' | sort && find . -type f -exec sha256sum {} + | sort
"#;

/// Bound over the chroot's `systemctl` and `policy-rc.d` around ferroha's install and purge
/// (`$ROOT` set; see the module docs). The recording systemctl hands offline calls
/// (`--root=`, how deb-systemd-helper enables a unit by its presets) to the real one, so the
/// unit's links are made as on a real node; every other call only goes into the log.
const STUB_SYSTEMD: &str = r#"
set -eu
mkdir -p "$ROOT/run/systemd/system" "$ROOT/run/ferroha-test"
cp "$ROOT/usr/bin/systemctl" "$ROOT/run/ferroha-test/systemctl.real"
cat >"$ROOT/run/ferroha-test/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >>/run/ferroha-test/systemctl.log
case $1 in --root=*) exec /run/ferroha-test/systemctl.real "$@" ;; esac
EOF
printf '#!/bin/sh\nexit 0\n' >"$ROOT/run/ferroha-test/policy-rc.d"
chmod 0755 "$ROOT/run/ferroha-test/systemctl" "$ROOT/run/ferroha-test/policy-rc.d"
: >"$ROOT/run/ferroha-test/systemctl.log"
mount --bind "$ROOT/run/ferroha-test/systemctl" "$ROOT/usr/bin/systemctl"
mount --bind "$ROOT/run/ferroha-test/policy-rc.d" "$ROOT/usr/sbin/policy-rc.d"
"#;
const UNSTUB_SYSTEMD: &str = r#"
set -eu
umount "$ROOT/usr/bin/systemctl" "$ROOT/usr/sbin/policy-rc.d"
cat "$ROOT/run/ferroha-test/systemctl.log"
rm -rf "$ROOT/run/systemd" "$ROOT/run/ferroha-test"
"#;

/// Builds the package into `out` with packaging/deb/build (lintian included) from the test
/// build's binaries; returns the `.deb`.
fn build_package(out: &Path) -> PathBuf {
    let man = out.join("man");
    pages::write_all(&man).expect("rendering the man pages");
    let hb_monitor = built_bin("hb-monitor");
    let bin_dir = hb_monitor.parent().expect("a binary's directory");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("timeout")
        .arg("300")
        .arg(root.join("packaging/deb/build"))
        .arg(bin_dir)
        .arg(&man)
        .arg(out)
        // xz at level 1 rather than dpkg-deb's 6: the same format, a larger file, and a
        // quarter of the time on the test profile's larger binaries.
        .env("DPKG_DEB_COMPRESSOR_LEVEL", "1")
        .current_dir(root)
        .output()
        .expect("run packaging/deb/build");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "packaging/deb/build failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(deb.is_file(), "packaging/deb/build printed {deb:?}");
    deb
}

/// The lines of a command's output as a set.
fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_owned).collect()
}

/// Panics naming the lines `after` has that `before` has not (left behind, or changed) and
/// the other way round (gone): for file lists, where order means nothing.
fn assert_same_lines(before: &str, after: &str, what: &str) {
    let (before, after) = (lines(before), lines(after));
    let gained: Vec<&str> = after.difference(&before).map(String::as_str).collect();
    let lost: Vec<&str> = before.difference(&after).map(String::as_str).collect();
    assert!(
        gained.is_empty() && lost.is_empty(),
        "{what}: not as before the install\n--- left behind or changed\n{}\n--- gone\n{}",
        gained.join("\n"),
        lost.join("\n"),
    );
}

/// Runs `script` (apt-get on ferroha) with systemd stubbed; returns what it printed and the
/// systemctl calls its maintainer scripts made.
fn with_recorded_systemctl(chroot: &Chroot, script: &str) -> (String, Vec<String>) {
    chroot.outside(STUB_SYSTEMD).ok("stubbing systemctl");
    let ran = chroot.sh(script);
    let calls = chroot.outside(UNSTUB_SYSTEMD).ok("restoring systemctl");
    let output = format!("{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, 0, "`{script}` failed:\n{output}");
    (output, calls.lines().map(str::to_owned).collect())
}

/// The same package one version up (its control file's `Version` given a `+upgrade1`
/// suffix), made in the chroot as `/tmp/ferroha-upgrade.deb`: what an upgrade installs.
fn make_upgrade(chroot: &Chroot, name: &str) {
    chroot
        .sh(&format!(
            "set -e
             rm -rf /tmp/upgrade && dpkg-deb -R /tmp/{name} /tmp/upgrade
             sed -i 's/^Version: .*/&+upgrade1/' /tmp/upgrade/DEBIAN/control
             dpkg-deb -Zxz -z1 -b /tmp/upgrade /tmp/ferroha-upgrade.deb >/dev/null
             rm -rf /tmp/upgrade"
        ))
        .ok("the upgrade's package");
}

/// Upgrades the installed ferroha to `/tmp/ferroha-upgrade.deb` and checks it is what Debian
/// does to a daemon on upgrade: the unit is restarted if it runs (try-restart), never
/// started, enabled or restarted otherwise, so a configured node's daemon picks up the new
/// binaries and an unconfigured node still runs nothing; the unit stays `enabled` as it was
/// and `/etc/ha.d` is untouched. Then downgrades back to the original package (`name`), the
/// admin's rollback, with the same checks.
fn check_upgrade(chroot: &Chroot, name: &str, enabled: &str, ha_d: &str) {
    for (package, what) in [
        ("/tmp/ferroha-upgrade.deb".to_string(), "the upgrade"),
        (format!("/tmp/{name} --allow-downgrades"), "the downgrade"),
    ] {
        let (apt, systemctl) =
            with_recorded_systemctl(chroot, &format!("apt-get install -y {package}"));
        assert!(
            apt.contains("1 upgraded, 0 newly installed, 0 to remove")
                || apt.contains("1 downgraded, 0 to remove"),
            "{what} did not replace the installed package:\n{apt}"
        );
        assert!(
            systemctl
                .iter()
                .any(|c| c.ends_with("try-restart hb-monitor.service")),
            "{what} did not try-restart the unit: {systemctl:?}"
        );
        let started = systemctl.iter().find(|c| {
            c.split_whitespace()
                .any(|word| matches!(word, "start" | "restart" | "enable" | "reload-or-restart"))
        });
        assert_eq!(started, None, "{what}: systemctl calls {systemctl:?}");
        assert_nothing_runs(chroot, what);
        let state = chroot.sh("systemctl is-enabled hb-monitor.service");
        assert_eq!(state.stdout.trim(), enabled, "after {what}: {state:?}");
        assert_same_lines(
            ha_d,
            &chroot.sh(HA_D).ok("/etc/ha.d"),
            &format!("/etc/ha.d after {what}"),
        );
    }
    let version = chroot
        .sh("dpkg-query -W -f '${Version}' ferroha")
        .ok("ferroha's version");
    assert!(!version.contains("upgrade"), "the downgrade left {version}");
}

/// No process is left in the chroot's host (a daemon a maintainer script started, say).
fn assert_nothing_runs(chroot: &Chroot, after: &str) {
    let pids = chroot.host().pids();
    let cmdlines: Vec<String> = pids
        .iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ")
        })
        .collect();
    assert!(pids.is_empty(), "running after {after}: {cmdlines:?}");
}

/// Each agent's meta-data against resource-agents' DTD and RELAX NG schema; the agents
/// installed are exactly `AGENT_TYPES`.
fn check_meta_data(chroot: &Chroot) {
    let listed = chroot
        .sh("ls /usr/lib/ocf/resource.d/ferroha")
        .ok("listing the agents");
    assert_eq!(
        listed.split_whitespace().collect::<Vec<_>>(),
        AGENT_TYPES,
        "installed agents"
    );
    for agent in AGENT_TYPES {
        let xmllint = chroot.sh(&format!(
            "set -e; ra=/usr/share/resource-agents
             /usr/lib/ocf/resource.d/ferroha/{agent} meta-data >/tmp/{agent}.xml
             xmllint --noout --path $ra --dtdvalid $ra/ra-api-1.dtd /tmp/{agent}.xml
             xmllint --noout --path $ra --relaxng $ra/metadata.rng /tmp/{agent}.xml"
        ));
        // xmllint says nothing but the schema's "validates" unless something is wrong,
        // warnings included.
        assert!(
            xmllint.code == 0 && xmllint.stderr == format!("/tmp/{agent}.xml validates\n"),
            "{agent} meta-data against the OCF DTD and schema: {xmllint:?}"
        );
    }
}

/// Both shipped examples, copied as the admin would (authkeys made 0600 as its comment
/// says), pass `hb-monitor check` on node alpha.
fn check_examples(chroot: &Chroot) {
    for (example, resources) in [("mysql-drbd", 4), ("active-active", 8)] {
        let out = chroot
            .sh(&format!(
                "set -e; cp -r /usr/share/doc/ferroha/examples/{example} /tmp/{example}
                 chmod 0600 /tmp/{example}/authkeys
                 hb-monitor check -c /tmp/{example} 2>&1"
            ))
            .ok(&format!("hb-monitor check of the {example} example"));
        assert!(
            out.contains(&format!(
                "configuration OK for node alpha ({resources} resources validated)"
            )),
            "{example}: {out}"
        );
    }
}

/// systemd-analyze accepts the unit without a word; every man page renders without one.
fn check_unit_and_man_pages(chroot: &Chroot) {
    let verify = chroot.sh("systemd-analyze verify /lib/systemd/system/hb-monitor.service");
    assert!(
        verify.code == 0 && verify.stdout.is_empty() && verify.stderr.is_empty(),
        "systemd-analyze verify hb-monitor.service: {verify:?}"
    );
    // (what man is asked for, the title the page starts with, in any case): <type>-agent(8)
    // is the agent's page.
    let mut pages = vec![("8 hb-monitor".to_owned(), "hb-monitor(8)".to_owned())];
    for agent in AGENT_TYPES {
        let title = format!("ocf_ferroha_{agent}(7)");
        pages.push((format!("7 ocf_ferroha_{agent}"), title.clone()));
        pages.push((format!("8 {agent}-agent"), title));
    }
    for (page, title) in pages {
        let man = chroot.sh(&format!("MANWIDTH=80 man --warnings -P cat {page}"));
        assert!(
            man.code == 0 && man.stderr.is_empty() && man.stdout.to_lowercase().starts_with(&title),
            "man {page}: {man:?}"
        );
    }
}

/// The package's Depends name exactly the packages that own the shared libraries its
/// binaries load (ldd, then dpkg -S, in the chroot): nothing missing, nothing extra; none
/// for static executables.
fn check_depends(chroot: &Chroot) {
    let depends = chroot
        .sh("dpkg-query -W -f='${Depends}' ferroha")
        .ok("ferroha's Depends");
    let declared: BTreeSet<String> = depends
        .split([',', '|'])
        .filter_map(|dep| dep.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let needed = chroot
        .sh(
            // Step by step: dash has no pipefail. ldd names the paths dpkg registered
            // (/lib/...), which the /usr-merged real paths are not.
            "set -e
             : >/tmp/ldd
             for b in /usr/sbin/hb-monitor /usr/lib/ocf/resource.d/ferroha/*; do
                 # A static executable loads no library: ldd says so on stderr and fails.
                 if ! ldd \"$b\" >/tmp/one 2>/tmp/err; then
                     grep -qx '[[:space:]]*not a dynamic executable' /tmp/err
                 fi
                 cat /tmp/one >>/tmp/ldd
             done
             grep -o '/[^ ]*' /tmp/ldd | sort -u >/tmp/libs
             [ -s /tmp/libs ] || exit 0
             dpkg -S $(cat /tmp/libs) >/tmp/owners
             cut -d: -f1 /tmp/owners | sort -u",
        )
        .ok("the packages of the binaries' libraries");
    assert_eq!(declared, lines(&needed), "Depends: {depends}");
}

#[test]
#[ignore = "needs root"]
fn package_installs_beside_heartbeat_works_and_purges_clean() {
    let start = Instant::now();
    let out = tempfile::tempdir().unwrap();
    // The package builds while the chroot unpacks: the two take about as long.
    let (deb, chroot) = thread::scope(|s| {
        let build = s.spawn(|| build_package(out.path()));
        let chroot = Chroot::new("alpha");
        eprintln!("chroot unpacked at {:.1?}", start.elapsed());
        let deb = build
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (deb, chroot)
    });
    eprintln!("package built at {:.1?}", start.elapsed());
    let name = deb.file_name().unwrap().to_str().unwrap();

    // The node: a configured Heartbeat node that also has what the examples reference.
    chroot
        .host()
        .ip_batch("link add eth0 type veth peer name eth1\nlink set eth0 up\nlink set eth1 up");
    // DRBD's devices without its kernel module: drbdadm only parses the resources.
    chroot
        .outside(
            "set -e
             mknod -m 0660 \"$ROOT/dev/drbd0\" b 147 0
             mknod -m 0660 \"$ROOT/dev/drbd1\" b 147 1",
        )
        .ok("DRBD's device nodes");
    std::fs::copy(&deb, chroot.path(&format!("/tmp/{name}"))).expect("copy the package");
    chroot.sh(EXAMPLE_NODE).ok("preparing the examples' node");
    for (file, text) in [
        ("ha.cf", HEARTBEAT_HA_CF),
        ("haresources", HEARTBEAT_HARESOURCES),
        ("authkeys", HEARTBEAT_AUTHKEYS),
    ] {
        std::fs::write(chroot.path(&format!("/etc/ha.d/{file}")), text).unwrap();
    }
    chroot
        .sh("chmod 0600 /etc/ha.d/authkeys")
        .ok("configuring heartbeat");
    let ha_d = chroot.sh(HA_D).ok("/etc/ha.d before");
    let before = chroot.sh(TREE).ok("the tree before the install");

    let (apt, systemctl) =
        with_recorded_systemctl(&chroot, &format!("apt-get install -y /tmp/{name}"));
    eprintln!("installed at {:.1?}", start.elapsed());
    assert!(
        apt.contains("0 upgraded, 1 newly installed, 0 to remove"),
        "apt pulled in more than ferroha:\n{apt}"
    );
    assert!(
        apt.contains("heartbeat is installed: hb-monitor.service is not enabled"),
        "{apt}"
    );
    assert_eq!(systemctl, ["--system daemon-reload"], "systemctl calls");
    assert_nothing_runs(&chroot, "the install");
    assert_same_lines(
        &ha_d,
        &chroot.sh(HA_D).ok("/etc/ha.d"),
        "/etc/ha.d after the install",
    );
    let enabled = chroot.sh("systemctl is-enabled hb-monitor.service");
    assert_eq!(enabled.stdout.trim(), "disabled", "{enabled:?}");

    check_meta_data(&chroot);
    check_examples(&chroot);
    check_unit_and_man_pages(&chroot);
    check_depends(&chroot);
    eprintln!("checked at {:.1?}", start.elapsed());
    make_upgrade(&chroot, name);
    check_upgrade(&chroot, name, "disabled", &ha_d);
    eprintln!("upgraded and downgraded at {:.1?}", start.elapsed());

    // What hb-monitor run leaves (the unit's StateDirectory, its generation number): purge
    // takes it too.
    chroot
        .sh("mkdir /var/lib/hb-monitor && echo 1 >/var/lib/hb-monitor/generation")
        .ok("hb-monitor's state");
    let (_, systemctl) = with_recorded_systemctl(&chroot, "apt-get purge -y ferroha");
    assert!(
        !systemctl
            .iter()
            .any(|c| c.contains("start") || c.contains("enable")),
        "systemctl calls on purge: {systemctl:?}"
    );
    assert_nothing_runs(&chroot, "the purge");
    assert_same_lines(
        &ha_d,
        &chroot.sh(HA_D).ok("/etc/ha.d"),
        "/etc/ha.d after the purge",
    );
    let after = chroot.sh(TREE).ok("the tree");
    assert_same_lines(&before, &after, "the tree after the purge");

    // Without Heartbeat (removed, its configuration kept): a first install enables the unit
    // but starts nothing; purge removes the links again.
    chroot
        .sh("dpkg --remove heartbeat")
        .ok("removing heartbeat");
    let before = chroot.sh(TREE).ok("the tree before the second install");
    let (_, systemctl) =
        with_recorded_systemctl(&chroot, &format!("apt-get install -y /tmp/{name}"));
    assert_eq!(
        systemctl,
        [
            "--root=/ --system --preset-mode=enable-only preset hb-monitor.service",
            "--system daemon-reload"
        ],
        "systemctl calls"
    );
    assert_nothing_runs(&chroot, "the second install");
    let enabled = chroot.sh("systemctl is-enabled hb-monitor.service");
    assert_eq!(enabled.stdout.trim(), "enabled", "{enabled:?}");
    check_upgrade(&chroot, name, "enabled", &ha_d);
    with_recorded_systemctl(&chroot, "apt-get purge -y ferroha");
    let after = chroot.sh(TREE).ok("the tree");
    assert_same_lines(
        &before,
        &after,
        "the tree after the purge without heartbeat",
    );
    assert_same_lines(
        &ha_d,
        &chroot.sh(HA_D).ok("/etc/ha.d"),
        "/etc/ha.d at the end",
    );
    eprintln!("done in {:.1?}", start.elapsed());
}
