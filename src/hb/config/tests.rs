//! Heartbeat's files as users write them, and every error named by file and line.

use std::os::unix::fs::PermissionsExt;

use super::*;

const HA_CF: &str = "\
# two nodes, unicast
logfile /var/log/ha-log
logfacility none
use_logd no
keepalive 100ms
deadtime 1
warntime 500ms
initdead 10
udpport 694
ucast eth0 198.18.0.12
bcast eth1 eth2
mcast eth0 239.0.0.1 694 1 0
auto_failback off
crm off
ping 198.18.0.1
ping_group routers 198.18.0.1 198.18.0.2
node n1
node n2
";

const HARESOURCES: &str = "\
# preferred node, then the group left to right
n1 drbddisk::r0 \\
   Filesystem::/dev/drbd0::/srv/mysql::ext4::noatime \\
   mysql::datadir=/srv/mysql/data \\
   IPaddr2::198.18.0.100/24/eth0
";

fn dir_with(ha_cf: &str, haresources: &str, authkeys: &str, mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ha.cf"), ha_cf).unwrap();
    std::fs::write(dir.path().join("haresources"), haresources).unwrap();
    let keys = dir.path().join("authkeys");
    std::fs::write(&keys, authkeys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

fn errors_of(dir: &tempfile::TempDir) -> Vec<String> {
    load(dir.path())
        .unwrap_err()
        .iter()
        .map(|e| e.to_string().replace(&dir.path().display().to_string(), ""))
        .collect()
}

/// ha.cf of node n1 on bcast eth0 with `extra` lines, beside a valid haresources and
/// authkeys: the parsed ha.cf, or the errors without the directory's path.
fn ha_cf_with(extra: &str) -> Result<HaCf, Vec<String>> {
    let dir = dir_with(
        &format!("node n1\nbcast eth0\n{extra}"),
        "n1 vip::ip=198.18.0.7\n",
        "auth 1\n1 sha1 k\n",
        0o600,
    );
    load(dir.path())
        .map(|c| c.ha_cf)
        .map_err(|_| errors_of(&dir))
}

#[test]
fn a_heartbeat_configuration_reads_unchanged() {
    let dir = dir_with(HA_CF, HARESOURCES, "auth 1\n1 sha1 example secret\n", 0o600);
    let cfg = load(dir.path()).unwrap();
    let cf = &cfg.ha_cf;
    assert_eq!(cf.nodes, ["n1", "n2"]);
    assert_eq!(cf.keepalive, Duration::from_millis(100));
    assert_eq!(cf.deadtime, Duration::from_secs(1));
    assert_eq!(cf.warntime, Duration::from_millis(500));
    assert_eq!(cf.initdead, Duration::from_secs(10));
    assert_eq!(cf.media.len(), 4);
    assert_eq!(
        cf.media[0],
        Medium::Ucast {
            iface: "eth0".into(),
            peer: "198.18.0.12".parse().unwrap()
        }
    );
    assert!(matches!(
        cf.media[3],
        Medium::Mcast {
            ttl: 1,
            looped: false,
            port: 694,
            ..
        }
    ));
    assert_eq!(cf.auto_failback, AutoFailback::Off);
    assert_eq!(cf.ping_groups[0].1.len(), 2);
    assert_eq!(cf.logfacility, None);
    assert_eq!(
        cf.notes.len(),
        2,
        "use_logd and crm off are noted: {:?}",
        cf.notes
    );
    let group = &cfg.groups[0];
    assert_eq!(group.preferred, "n1");
    let agents: Vec<_> = group.resources.iter().map(|r| r.agent.as_str()).collect();
    assert_eq!(agents, ["drbd", "fs", "mysql", "vip"]);
    assert_eq!(
        group.resources[1].params[3],
        ("options".to_string(), "noatime".to_string())
    );
    assert_eq!(
        group.resources[3].params,
        vec![
            ("ip".to_string(), "198.18.0.100".to_string()),
            ("cidr_netmask".into(), "24".into()),
            ("nic".into(), "eth0".into())
        ]
    );
    assert_eq!(cfg.auth.active, 1);
    assert_eq!(
        cfg.auth.keys[&1],
        (AuthMethod::Sha1, b"example secret".to_vec())
    );
    assert!(
        !format!("{:?}", cfg.auth).contains("secret"),
        "secrets must not reach logs"
    );
}

#[test]
fn heartbeat_defaults_apply() {
    let dir = dir_with(
        "node a\nnode b\nbcast eth0\n",
        "a 198.18.0.100\n",
        "auth 2\n2 sha256 k\n",
        0o600,
    );
    let cfg = load(dir.path()).unwrap();
    assert_eq!(cfg.ha_cf.keepalive, Duration::from_secs(2));
    assert_eq!(cfg.ha_cf.deadtime, Duration::from_secs(30));
    assert_eq!(cfg.ha_cf.warntime, Duration::from_secs(16));
    assert_eq!(cfg.ha_cf.initdead, Duration::from_secs(30));
    assert_eq!(cfg.ha_cf.udpport, 694);
    assert_eq!(cfg.ha_cf.auto_failback, AutoFailback::Legacy);
    assert!(
        cfg.ha_cf.realtime,
        "realtime is on by default, as in Heartbeat"
    );
    assert_eq!(cfg.ha_cf.rtprio, 10);
    assert_eq!(
        cfg.groups[0].resources[0].params,
        vec![("ip".to_string(), "198.18.0.100".to_string())]
    );
}

#[test]
fn every_error_is_named_with_file_and_line() {
    let ha_cf = "node n1\nkeepalive 2\ndeadtime 4\ncrm on\nfrobnicate yes\nucast eth0 not-an-ip\nmcast eth0 10.0.0.1 694 1 0\nrealtime maybe\nrtprio 100\n";
    let haresources = "n1 IPaddr2::198.18.0.100/24/eth0 \\\n  No/such::x\nn3 vip::ip=198.18.0.7\n";
    let dir = dir_with(ha_cf, haresources, "auth 1\n1 sha1 k\n", 0o600);
    let errors = errors_of(&dir);
    let expect = [
        "/ha.cf:3: deadtime (4000 ms) must be more than twice keepalive (2000 ms)",
        "/ha.cf:4: 'crm on': hb-monitor runs haresources groups itself",
        "/ha.cf:5: unknown directive 'frobnicate'",
        "/ha.cf:6: ucast peer 'not-an-ip' is not an IP address",
        "/ha.cf:7: mcast group '10.0.0.1' is not a multicast address",
        "/ha.cf:8: realtime 'maybe': on or off",
        "/ha.cf:9: rtprio '100': a priority from 1 to 99",
        "/haresources:1: unknown resource 'No/such'",
    ];
    for e in expect {
        assert!(
            errors.iter().any(|got| got.starts_with(e)),
            "missing {e:?} in {errors:#?}"
        );
    }
}

#[test]
fn preferred_node_must_be_a_node() {
    let dir = dir_with(
        "node n1\nnode n2\nbcast eth0\n",
        "n3 vip::ip=198.18.0.7\n",
        "auth 1\n1 sha1 k\n",
        0o600,
    );
    assert_eq!(
        errors_of(&dir),
        ["/haresources:1: preferred node 'n3' is not a node of ha.cf (n1, n2)"]
    );
}

#[test]
fn authkeys_must_be_private_and_really_authenticate() {
    let ok_cf = "node n1\nbcast eth0\n";
    let ok_res = "n1 vip::ip=198.18.0.7\n";
    let readable = dir_with(ok_cf, ok_res, "auth 1\n1 sha1 k\n", 0o644);
    assert_eq!(
        errors_of(&readable),
        ["/authkeys: mode 644 lets others read the key: chmod 600"]
    );
    for (keys, error) in [
        (
            "auth 1\n1 crc\n",
            "/authkeys:1: auth 1: key 1 is crc, which authenticates nothing",
        ),
        (
            "auth 2\n1 crc\n2 crc\n",
            "/authkeys:1: auth 2: key 2 is crc",
        ),
        (
            "auth 2\n1 crc\n1 sha1 k\n2 sha1 j\n",
            "/authkeys:3: key 1 is defined twice",
        ),
        ("auth 2\n1 sha1 k\n", "/authkeys:1: auth 2 names no key"),
        ("1 sha1 k\n", "/authkeys: no 'auth N' line"),
        ("auth 1\n1 sha1\n", "/authkeys:2: key 1 has no secret"),
        ("auth 1\n1 rot13 k\n", "/authkeys:2: unknown method 'rot13'"),
    ] {
        let dir = dir_with(ok_cf, ok_res, keys, 0o600);
        let errors = errors_of(&dir);
        assert!(errors[0].starts_with(error), "{keys:?}: {errors:?}");
    }
    // Heartbeat's example file: a crc key beside the active sha1 one is read, noted and
    // left out, so that nothing "signed" with it is ever accepted.
    let example = dir_with(
        ok_cf,
        ok_res,
        "auth 2\n1 crc\n2 sha1 HI!\n3 md5 Hello!\n",
        0o600,
    );
    let cfg = load(example.path()).unwrap();
    assert_eq!(cfg.auth.active, 2);
    assert_eq!(cfg.auth.keys.keys().copied().collect::<Vec<_>>(), [2, 3]);
    assert!(
        cfg.ha_cf
            .notes
            .iter()
            .any(|n| n.ends_with("authkeys:2: crc key 1 is not used: crc authenticates nothing, so a message signed with it is dropped as signed with an unknown key")),
        "{:?}",
        cfg.ha_cf.notes
    );
}

#[test]
fn times_in_seconds_or_milliseconds() {
    assert_eq!(parse_time("2"), Some(Duration::from_secs(2)));
    assert_eq!(parse_time("0.5"), Some(Duration::from_millis(500)));
    assert_eq!(parse_time("150ms"), Some(Duration::from_millis(150)));
    assert_eq!(parse_time("10s"), Some(Duration::from_secs(10)));
    for bad in ["", "x", "-1", "1e99", "NaN", "5 ms x"] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

#[test]
fn absurd_times_and_counts_are_refused_where_read_not_panicked_on() {
    assert_eq!(parse_time("86400"), Some(MAX_TIME));
    assert_eq!(parse_time("86400000ms"), Some(MAX_TIME));
    for bad in [
        "86401",
        "86400001ms",
        "18446744073709551615ms",
        "1e9",
        "inf",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
    let ok_res = "n1 vip::ip=198.18.0.7\n";
    for (ha_cf, error) in [
        (
            "keepalive 18446744073709551615ms\n",
            "/ha.cf:1: keepalive '18446744073709551615ms' is not a time up to a day",
        ),
        (
            "deadtime 18446744073709551615ms\n",
            "/ha.cf:1: deadtime '18446744073709551615ms' is not a time up to a day",
        ),
        (
            "keepalive 0.0000001\ndeadtime 1\n",
            "/ha.cf:1: keepalive (0 µs) must be at least 1 ms",
        ),
        (
            "keepalive 0ms\n",
            "/ha.cf:1: keepalive (0 µs) must be at least 1 ms",
        ),
        (
            "restart_limit 4294967295 600\n",
            "/ha.cf:1: restart_limit count '4294967295' is not a number from 0 to 1000",
        ),
        (
            "restart_limit 3 99999999\n",
            "/ha.cf:1: restart_limit window '99999999' is not a time up to a day",
        ),
        (
            "fence_timeout 18446744073709551615ms\n",
            "/ha.cf:1: fence_timeout '18446744073709551615ms' is not a time up to a day",
        ),
    ] {
        let dir = dir_with(
            &format!("{ha_cf}node n1\nbcast eth0\n"),
            ok_res,
            "auth 1\n1 sha1 k\n",
            0o600,
        );
        let errors = errors_of(&dir);
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{ha_cf:?}: {errors:?}"
        );
    }
    // The benchmark's setting stays allowed.
    let fast = dir_with(
        "keepalive 5ms\ndeadtime 20ms\nnode n1\nbcast eth0\n",
        ok_res,
        "auth 1\n1 sha1 k\n",
        0o600,
    );
    assert_eq!(
        load(fast.path()).unwrap().ha_cf.keepalive,
        Duration::from_millis(5)
    );
}

#[test]
fn what_run_cannot_honour_is_refused_where_read() {
    let ok_res = "n1 vip::ip=198.18.0.7\n";
    for (ha_cf, error) in [
        (
            "ucast eth0 2001:db8::2\n",
            "/ha.cf:1: ucast 2001:db8::2: ucast is IPv4 only, as in Heartbeat; for IPv6 write 'ucast6 eth0 2001:db8::2'",
        ),
        (
            "mcast eth0 ff02::1 694 1 0\n",
            "/ha.cf:1: mcast ff02::1: mcast is IPv4 only, as in Heartbeat; for IPv6 write 'mcast6 eth0 ff02::1 694 1 0'",
        ),
        (
            "ping 2001:db8::1\n",
            "/ha.cf:1: ping 2001:db8::1 is an IPv6 address: use ping6 for IPv6 ping nodes",
        ),
        (
            "ping_group r 198.18.0.1 2001:db8::1\n",
            "/ha.cf:1: ping_group member 2001:db8::1 is an IPv6 address: a ping_group is IPv4 only",
        ),
        (
            "baud 12345\n",
            "/ha.cf:1: baud '12345': one of 9600, 19200, 38400, 57600, 115200, 230400",
        ),
    ] {
        let dir = dir_with(
            &format!("{ha_cf}node n1\nbcast eth0\n"),
            ok_res,
            "auth 1\n1 sha1 k\n",
            0o600,
        );
        let errors = errors_of(&dir);
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{ha_cf:?}: {errors:?}"
        );
    }
}

#[test]
fn directives_and_media_know_their_lines() {
    let dir = dir_with(HA_CF, HARESOURCES, "auth 1\n1 sha1 k\n", 0o600);
    let cf = load(dir.path()).unwrap().ha_cf;
    assert_eq!(cf.line_of("logfile"), 2);
    assert_eq!(cf.line_of("watchdog"), 0);
    // ucast (line 10), bcast eth1 eth2 (11), mcast (12).
    assert_eq!(cf.media_lines, [10, 11, 11, 12]);
}

#[test]
#[ignore = "needs root"]
fn authkeys_must_be_owned_by_root() {
    let dir = dir_with(
        "node n1\nbcast eth0\n",
        "n1 vip::ip=198.18.0.7\n",
        "auth 1\n1 sha1 k\n",
        0o600,
    );
    std::os::unix::fs::chown(dir.path().join("authkeys"), Some(12345), None).unwrap();
    assert_eq!(
        errors_of(&dir),
        ["/authkeys: owned by uid 12345: whoever owns it can change the key; chown root"]
    );
}

#[test]
fn resource_mapping() {
    for (written, provider) in [
        ("ocf:heartbeat:Dummy::state=/run/x", "heartbeat"),
        ("other:Dummy::state=/run/x", "other"),
    ] {
        let m = map_resource(written).unwrap();
        assert_eq!(
            (m.class, m.provider.as_str(), m.agent.as_str()),
            (ResourceClass::Ocf, provider, "Dummy"),
            "{written}"
        );
        assert_eq!(m.params, vec![("state".to_string(), "/run/x".to_string())]);
    }
    // Without a resource, drbd-utils' script acts on all of them: it is what runs.
    let all = map_resource("drbddisk").unwrap();
    assert_eq!(
        (all.class, all.provider.as_str(), all.agent.as_str()),
        (ResourceClass::Heartbeat, "heartbeat", "drbddisk")
    );
    assert!(all.params.is_empty(), "{:?}", all.params);
    for bad in [
        "IPaddr2::notanip/24",
        "Filesystem::/dev/x",
        "vip::novalue",
        "198.18.0.1::x",
        "a/b:c",
        "ocf::x",
        "../x",
        ".hidden",
        "lsb:",
        "lsb:a/b",
        "heartbeat:x::::y",
    ] {
        assert!(map_resource(bad).is_err(), "{bad}");
    }
}

#[test]
fn scripts_are_mapped_with_their_positional_arguments() {
    let args = |m: &MappedResource| {
        m.params
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
    };
    // Pacemaker's class names choose the original script over ferroha's agent.
    let m = map_resource("heartbeat:IPaddr2::198.18.0.10/24/eth0").unwrap();
    assert_eq!(
        (m.class, m.agent.as_str(), m.searched),
        (ResourceClass::Heartbeat, "IPaddr2", false)
    );
    assert_eq!(args(&m), ["1=198.18.0.10/24/eth0"]);
    let m = map_resource("lsb:mysql").unwrap();
    assert_eq!(
        (m.class, m.agent.as_str(), m.searched, m.params.len()),
        (ResourceClass::Lsb, "mysql", false, 0)
    );
    // Anything else is Heartbeat's search: resource.d, then init.d.
    let m = map_resource("MailTo::root@example.org::subject=x").unwrap();
    assert_eq!(
        (m.class, m.agent.as_str(), m.searched),
        (ResourceClass::Heartbeat, "MailTo", true)
    );
    assert_eq!(args(&m), ["1=root@example.org", "2=subject=x"]);
    // The four names ferroha implements stay ferroha's agents.
    for (written, agent) in [
        ("IPaddr2::198.18.0.10/24", "vip"),
        ("IPaddr::198.18.0.10", "vip"),
        ("198.18.0.10", "vip"),
        ("Filesystem::/dev/drbd0::/srv", "fs"),
        ("drbddisk::r0", "drbd"),
        ("mysql::datadir=/srv/mysql", "mysql"),
    ] {
        let m = map_resource(written).unwrap();
        assert_eq!(
            (m.class, m.provider.as_str(), m.agent.as_str()),
            (ResourceClass::Ocf, "ferroha", agent),
            "{written}"
        );
    }
}

/// A configuration directory whose haresources names `resources`, with these scripts
/// (path relative to the directory, mode) in it.
fn with_scripts(resources: &str, scripts: &[(&str, u32)]) -> (tempfile::TempDir, Config) {
    let dir = dir_with(
        "node n1\nbcast eth0\n",
        &format!("n1 {resources}\n"),
        "auth 1\n1 sha1 k\n",
        0o600,
    );
    for (path, mode) in scripts {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let cfg = load(dir.path()).unwrap();
    (dir, cfg)
}

#[test]
fn scripts_are_found_in_resource_d_then_init_d() {
    let (dir, mut cfg) = with_scripts(
        "both::a svc lsb:both heartbeat:both",
        &[
            ("resource.d/both", 0o755),
            ("init.d/both", 0o755),
            ("init.d/svc", 0o700),
        ],
    );
    let dirs = ScriptDirs::new(dir.path(), &dir.path().join("init.d"));
    assert_eq!(resolve_scripts(&mut cfg, &dirs, "n1"), vec![]);
    let found: Vec<_> = cfg.groups[0]
        .resources
        .iter()
        .map(|r| {
            let path = r
                .script
                .as_ref()
                .unwrap()
                .path
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string();
            (r.class, path)
        })
        .collect();
    assert_eq!(
        found,
        [
            (ResourceClass::Heartbeat, "resource.d/both".to_string()),
            (ResourceClass::Lsb, "init.d/svc".to_string()),
            (ResourceClass::Lsb, "init.d/both".to_string()),
            (ResourceClass::Heartbeat, "resource.d/both".to_string()),
        ]
    );
    let env = &cfg.groups[0].resources[0].script.as_ref().unwrap().env;
    let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(get("HA_CURHOST").as_deref(), Some("n1"));
    assert_eq!(get("HA_DIR"), Some(dir.path().display().to_string()));
    assert_eq!(get("HOME"), None);
}

#[test]
fn scripts_get_heartbeats_environment() {
    let dir = dir_with(
        "node n1\nbcast eth0\nlogfile /var/log/ha-log\ndebugfile /var/log/ha-debug\nlogfacility local0\n",
        "n1 lsb:svc\n",
        "auth 1\n1 sha1 k\n",
        0o600,
    );
    let init = dir.path().join("init.d/svc");
    std::fs::create_dir_all(init.parent().unwrap()).unwrap();
    std::fs::write(&init, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = load(dir.path()).unwrap();
    let dirs = ScriptDirs::new(dir.path(), &dir.path().join("init.d"));
    assert_eq!(resolve_scripts(&mut cfg, &dirs, "n1"), vec![]);
    let d = dir.path().display().to_string();
    let env: Vec<String> = cfg.groups[0].resources[0]
        .script
        .as_ref()
        .unwrap()
        .env
        .iter()
        .map(|(n, v)| format!("{n}={}", v.replace(&d, "DIR")))
        .collect();
    assert_eq!(
        env,
        [
            "PATH=/usr/libexec/heartbeat:/usr/sbin:/usr/share/heartbeat:/usr/bin:/sbin:/bin",
            "LC_ALL=C",
            "HA_DIR=DIR",
            "HA_FUNCS=DIR/shellfuncs",
            "HA_RESOURCEDIR=DIR/resource.d",
            "HA_RCDIR=DIR/rc.d",
            "HA_BIN=/usr/libexec/heartbeat",
            "HA_CURHOST=n1",
            "HA_DATEFMT=%Y/%m/%d_%T\t",
            "HA_LOGD=no",
            "HA_debug=0",
            "HA_logfacility=local0",
            "HA_LOGFACILITY=local0",
            "HA_logfile=/var/log/ha-log",
            "HA_LOGFILE=/var/log/ha-log",
            "HA_debugfile=/var/log/ha-debug",
            "HA_DEBUGLOG=/var/log/ha-debug",
        ]
    );
}

#[test]
fn a_script_found_nowhere_names_the_paths_searched() {
    let (dir, mut cfg) = with_scripts(
        "Nosuch::x lsb:gone heartbeat:plain",
        &[("resource.d/plain", 0o644)],
    );
    let dirs = ScriptDirs::new(dir.path(), Path::new("/nonexistent/init.d"));
    let d = dir.path().display();
    let errors: Vec<String> = resolve_scripts(&mut cfg, &dirs, "n1")
        .iter()
        .map(|e| e.to_string().replace(&d.to_string(), "DIR"))
        .collect();
    assert_eq!(
        errors,
        [
            "DIR/haresources:1: 'Nosuch::x': unknown resource 'Nosuch': not one of hb-monitor's names and no script: looked for DIR/resource.d/Nosuch, then /nonexistent/init.d/Nosuch",
            "DIR/haresources:1: 'lsb:gone': no script 'gone': looked for /nonexistent/init.d/gone",
            "DIR/haresources:1: 'heartbeat:plain': no script 'plain': looked for DIR/resource.d/plain (not an executable file)",
        ]
    );
}

#[test]
fn metrics_listen_and_notify_command() {
    let ok_res = "n1 vip::ip=198.18.0.7\n";
    let keys = "auth 1\n1 sha1 k\n";
    let read = |extra: &str| {
        let dir = dir_with(
            &format!("node n1\nbcast eth0\n{extra}"),
            ok_res,
            keys,
            0o600,
        );
        load(dir.path())
            .map(|c| c.ha_cf)
            .map_err(|_| errors_of(&dir))
    };
    let cf = read("").unwrap();
    assert_eq!(cf.metrics_listen, None);
    assert!(cf.notify_command.is_empty());
    assert_eq!(cf.notify_timeout, Duration::from_secs(10));
    // A bare port stays on this machine.
    let cf = read("metrics_listen 9664\n").unwrap();
    assert_eq!(cf.metrics_listen, Some("127.0.0.1:9664".parse().unwrap()));
    let cf = read("metrics_listen 198.18.0.1:9100\n").unwrap();
    assert_eq!(cf.metrics_listen, Some("198.18.0.1:9100".parse().unwrap()));
    let cf = read("metrics_listen [::1]:9100\n").unwrap();
    assert_eq!(cf.metrics_listen, Some("[::1]:9100".parse().unwrap()));
    let cf = read("notify_command /usr/local/bin/hook --to ops\nnotify_timeout 2\n").unwrap();
    assert_eq!(cf.notify_command, ["/usr/local/bin/hook", "--to", "ops"]);
    assert_eq!(cf.notify_timeout, Duration::from_secs(2));
    assert_eq!(cf.line_of("notify_command"), 3);
    for (extra, error) in [
        (
            "metrics_listen localhost:9100\n",
            "/ha.cf:3: metrics_listen 'localhost:9100' is not ADDR:PORT or PORT",
        ),
        (
            "metrics_listen 99999\n",
            "/ha.cf:3: metrics_listen '99999' is not ADDR:PORT or PORT",
        ),
        (
            "metrics_listen 0\n",
            "/ha.cf:3: metrics_listen '0': the port must not be 0",
        ),
        (
            "metrics_listen 1 2\n",
            "/ha.cf:3: metrics_listen takes exactly one value",
        ),
        (
            "notify_command\n",
            "/ha.cf:3: notify_command needs a program",
        ),
        (
            "notify_timeout 0\n",
            "/ha.cf:3: notify_timeout must be more than 0",
        ),
    ] {
        let errors = read(extra).unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{extra:?}: {errors:?}"
        );
    }
}

#[test]
fn respawn_lines_are_kept_and_ipfail_is_replaced() {
    let read = ha_cf_with;
    let cf = read(
        "respawn hacluster /usr/lib/heartbeat/ipfail\n\
         apiauth ipfail gid=haclient uid=hacluster\n\
         respawn nobody /usr/local/bin/probe --every 5\n\
         respawn hacluster /usr/lib/heartbeat/dopd\n",
    )
    .unwrap();
    assert_eq!(
        cf.respawn,
        [Respawn {
            user: "nobody".into(),
            program: PathBuf::from("/usr/local/bin/probe"),
            args: vec!["--every".into(), "5".into()],
            line: 5,
        }]
    );
    assert!(
        cf.notes
            .iter()
            .any(|n| n.starts_with("line 3:") && n.contains("is not run: ipfail needs")),
        "{:?}",
        cf.notes
    );
    assert!(
        cf.notes
            .iter()
            .any(|n| n.starts_with("line 6:") && n.contains("is not run: dopd needs")),
        "{:?}",
        cf.notes
    );
    for (extra, error) in [
        (
            "respawn nobody\n",
            "/ha.cf:3: respawn needs a user and a program",
        ),
        (
            "respawn nobody probe\n",
            "/ha.cf:3: respawn probe: the program must be an absolute path",
        ),
    ] {
        let errors = read(extra).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains(error)),
            "{extra}: {errors:?}"
        );
    }
}

#[test]
fn autojoin_none_is_what_hb_monitor_does_and_the_others_are_refused() {
    let read = |extra: &str| ha_cf_with(extra).map(|_| ());
    assert_eq!(read("autojoin none\n"), Ok(()));
    for (value, error) in [
        (
            "any",
            "/ha.cf:3: 'autojoin any': nodes joining without a node line are not supported",
        ),
        (
            "other",
            "/ha.cf:3: 'autojoin other': nodes joining without a node line are not supported",
        ),
        ("sometimes", "/ha.cf:3: autojoin takes none, other or any"),
    ] {
        let errors = read(&format!("autojoin {value}\n")).unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{value}: {errors:?}"
        );
    }
}

#[test]
fn nice_failback_is_auto_failback_inverted() {
    let read = |extra: &str| ha_cf_with(extra).map(|cf| cf.auto_failback);
    assert_eq!(read("nice_failback on\n"), Ok(AutoFailback::Off));
    assert_eq!(read("nice_failback off\n"), Ok(AutoFailback::On));
    let errors = read("nice_failback legacy\n").unwrap_err();
    assert!(
        errors[0].starts_with("/ha.cf:3: nice_failback 'legacy' must be on or off"),
        "{errors:?}"
    );
}

fn ha_cf_of(lines: &str) -> Result<HaCf, Vec<String>> {
    parse_ha_cf(Path::new("ha.cf"), &format!("node n1\n{lines}"))
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn ipv6_media_and_ping_nodes_read_as_heartbeat_writes_them() {
    let cf = ha_cf_of(
        "ucast6 eth0 fd00:198:18::2\n\
         ucast6 eth1 fe80::2%eth1\n\
         ucast6 eth1 fe80::3\n\
         mcast6 eth0 ff12::1:2:3:4 694 1 0\n\
         mcast6 eth1 ff05::694 695 4 1\n\
         ping6 fd00:198:18::fe 2001:db8::1\n\
         ping 198.18.0.1\n",
    )
    .unwrap();
    let v6 = |a: &str| IpAddr::V6(a.parse().unwrap());
    assert_eq!(
        cf.media[..3],
        [
            Medium::Ucast {
                iface: "eth0".into(),
                peer: v6("fd00:198:18::2"),
            },
            Medium::Ucast {
                iface: "eth1".into(),
                peer: v6("fe80::2"),
            },
            Medium::Ucast {
                iface: "eth1".into(),
                peer: v6("fe80::3"),
            },
        ]
    );
    assert_eq!(
        cf.media[3..],
        [
            Medium::Mcast {
                iface: "eth0".into(),
                group: v6("ff12::1:2:3:4"),
                port: 694,
                ttl: 1,
                looped: false,
            },
            Medium::Mcast {
                iface: "eth1".into(),
                group: v6("ff05::694"),
                port: 695,
                ttl: 4,
                looped: true,
            },
        ]
    );
    assert_eq!(
        cf.ping,
        [
            v6("fd00:198:18::fe"),
            v6("2001:db8::1"),
            "198.18.0.1".parse::<IpAddr>().unwrap()
        ]
    );
    assert_eq!(cf.media_lines, [2, 3, 4, 5, 6]);
}

#[test]
fn ipv6_directives_refuse_what_heartbeat_refuses_and_say_why() {
    for (line, error) in [
        (
            "ucast6 eth0",
            "ucast6 takes an interface and a peer's IPv6 address",
        ),
        (
            "ucast6 eth0 fd00::2 fd00::3",
            "ucast6 takes an interface and a peer's IPv6 address",
        ),
        (
            "ucast6 eth0 198.18.0.2",
            "ucast6 peer '198.18.0.2' is an IPv4 address: write 'ucast ...' for IPv4",
        ),
        (
            "ucast6 eth0 peer2",
            "ucast6 peer 'peer2' is not an IPv6 address",
        ),
        (
            "ucast6 eth0 ::",
            "ucast6 peer '::' is the unspecified address",
        ),
        (
            "ucast6 eth0 ::1",
            "ucast6 peer '::1' is the loopback address",
        ),
        (
            "ucast6 eth0 ff02::1",
            "ucast6 peer 'ff02::1' is a multicast address (use mcast6)",
        ),
        (
            "ucast6 eth0 ::ffff:198.18.0.2",
            "is an IPv4-mapped address (use ucast with the IPv4 address)",
        ),
        (
            "ucast6 eth0 fd00::2%eth0",
            "a %scope belongs only to a link-local (fe80::/10) address",
        ),
        (
            "ucast6 eth0 fe80::2%eth1",
            "its scope must be the medium's interface (fe80::2%eth0)",
        ),
        (
            "mcast6 eth0 ff02::1:2 694 1",
            "mcast6 takes: interface group port hops loop",
        ),
        (
            "mcast6 eth0 239.0.0.1 694 1 0",
            "mcast6 group '239.0.0.1' is an IPv4 address: write 'mcast ...' for IPv4",
        ),
        (
            "mcast6 eth0 fd00::1 694 1 0",
            "mcast6 group 'fd00::1' is not a multicast address (ff00::/8)",
        ),
        ("mcast6 eth0 ff32::1 694 1 0", "sets a reserved flag"),
        (
            "mcast6 eth0 ff01::1:2 694 1 0",
            "is interface-local (ff01::/16)",
        ),
        ("mcast6 eth0 ff0e::1:2 694 1 0", "is global (ffxe::/16)"),
        (
            "mcast6 eth0 ff03::1:2 694 1 0",
            "scope 3 is reserved or unassigned",
        ),
        (
            "mcast6 eth0 ff02:: 694 1 0",
            "mcast6 group 'ff02::' is reserved (its group ID is 0)",
        ),
        (
            "mcast6 eth0 ff02::1:2 0 1 0",
            "mcast6 port '0' is not a UDP port",
        ),
        (
            "mcast6 eth0 ff02::1:2 ha 1 0",
            "mcast6 port 'ha' is not a UDP port",
        ),
        (
            "mcast6 eth0 ff02::1:2 694 0 0",
            "mcast6 hops '0' must be 1-4",
        ),
        (
            "mcast6 eth0 ff02::1:2 694 5 0",
            "mcast6 hops '5' must be 1-4",
        ),
        (
            "mcast6 eth0 ff02::1:2 694 x 0",
            "mcast6 hops 'x' must be 1-4",
        ),
        (
            "mcast6 eth0 ff02::1:2 694 1 2",
            "mcast6 loop '2' must be 0 or 1",
        ),
        ("ping6", "ping6 needs at least one IPv6 address"),
        (
            "ping6 198.18.0.1",
            "ping6 node '198.18.0.1' is an IPv4 address: write 'ping ...' for IPv4",
        ),
        ("ping6 router", "ping6 node 'router' is not an IPv6 address"),
        ("ping6 ::", "ping6 node '::' is the unspecified address"),
        (
            "ping6 ff02::1",
            "ping6 node 'ff02::1' is a multicast address",
        ),
        ("ping6 fe80::1", "ping6 node 'fe80::1' is link-local"),
        (
            "ping6 fe80::1%eth0",
            "ping6 node 'fe80::1%eth0': ping6 takes no %scope",
        ),
        (
            "ping6 ::ffff:198.18.0.1",
            "is an IPv4-mapped address: use ping with the IPv4 address",
        ),
    ] {
        let errors = ha_cf_of(&format!("{line}\nbcast eth0\n")).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("ha.cf:2: ") && e.contains(error)),
            "{line:?}: {errors:?}"
        );
    }
}
