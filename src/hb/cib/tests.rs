use std::os::unix::fs::PermissionsExt;

use super::*;

fn config(ha_cf_extra: &str, haresources: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let ha_cf = format!(
        "keepalive 100ms\ndeadtime 1\nucast eth0 198.18.0.2\nnode n1\nnode n2\n{ha_cf_extra}"
    );
    std::fs::write(dir.path().join("ha.cf"), ha_cf).unwrap();
    std::fs::write(dir.path().join("haresources"), haresources).unwrap();
    let keys = dir.path().join("authkeys");
    std::fs::write(&keys, "auth 1\n1 sha1 secret\n").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    super::super::config::load(dir.path()).expect("a valid configuration")
}

/// The elements of `xml` named `tag`, as (attribute name, value) lists.
fn elements(xml: &str, tag: &str) -> Vec<Vec<(String, String)>> {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name(tag))
        .map(|n| {
            n.attributes()
                .map(|a| (a.name().to_string(), a.value().to_string()))
                .collect()
        })
        .collect()
}

fn get<'a>(attrs: &'a [(String, String)], name: &str) -> &'a str {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

#[test]
fn a_drbd_line_becomes_a_promotable_clone_and_a_group_that_follows_it() {
    let c = convert(&config(
        "auto_failback on\nmonitor_interval 5\n",
        "n1 drbddisk::r0 Filesystem::/dev/drbd0::/srv/mysql::ext4 mysql IPaddr2::198.18.0.100/24/eth0\n",
    ));
    let primitives = elements(&c.xml, "primitive");
    let ids: Vec<&str> = primitives.iter().map(|p| get(p, "id")).collect();
    assert_eq!(ids, ["drbd_0", "fs_1", "mysql_2", "vip_3"], "{}", c.xml);
    assert_eq!(get(&primitives[3], "type"), "vip");
    let clones = elements(&c.xml, "clone");
    assert_eq!(get(&clones[0], "id"), "drbd_0-clone");
    assert!(c.xml.contains(r#"name="promotable" value="true""#));
    let groups = elements(&c.xml, "group");
    assert_eq!(groups.len(), 1);
    let colocation = &elements(&c.xml, "rsc_colocation")[0];
    assert_eq!(
        (
            get(colocation, "rsc"),
            get(colocation, "with-rsc"),
            get(colocation, "with-rsc-role")
        ),
        ("group_1", "drbd_0-clone", "Promoted")
    );
    let order = &elements(&c.xml, "rsc_order")[0];
    assert_eq!(
        (
            get(order, "first"),
            get(order, "first-action"),
            get(order, "then")
        ),
        ("drbd_0-clone", "promote", "group_1")
    );
    let location = &elements(&c.xml, "rsc_location")[0];
    assert_eq!(
        (get(location, "rsc"), get(location, "node")),
        ("group_1", "n1")
    );
    // The parameters as hb-monitor passes them.
    assert!(c.xml.contains(r#"name="ip" value="198.18.0.100""#));
    assert!(c.xml.contains(r#"name="drbd_resource" value="r0""#));
    // monitor_interval 5: 5 s, the Unpromoted role's one a second more.
    assert!(
        c.xml
            .contains(r#"name="monitor" interval="5s" timeout="60s" role="Promoted""#)
    );
    assert!(
        c.xml
            .contains(r#"interval="6s" timeout="60s" role="Unpromoted""#)
    );
    assert!(c.xml.contains(r#"name="resource-stickiness" value="0""#));
}

#[test]
fn auto_failback_off_sticks_and_values_are_escaped() {
    let c = convert(&config(
        "auto_failback off\n",
        "n2 vip::ip=198.18.0.100 ferroha:fs::device=/dev/x::directory=/srv/a&b\"c\n",
    ));
    assert!(
        c.xml
            .contains(r#"name="resource-stickiness" value="INFINITY""#)
    );
    let attrs = elements(&c.xml, "nvpair");
    assert!(
        attrs.iter().any(|a| get(a, "value") == "/srv/a&b\"c"),
        "the directory survives escaping: {}",
        c.xml
    );
    let location = &elements(&c.xml, "rsc_location")[0];
    assert_eq!(get(location, "node"), "n2");
    assert!(elements(&c.xml, "clone").is_empty());
}

#[test]
fn what_is_not_converted_is_said() {
    let c = convert(&config(
        "ping 198.18.0.254\nfence_command /bin/true\nmonitor_interval 0\n",
        "n1 198.18.0.100\n",
    ));
    let notes = c.notes.join("\n");
    assert!(notes.contains("ocf:pacemaker:ping"), "{notes}");
    assert!(notes.contains("fence device"), "{notes}");
    assert!(notes.contains("monitor_interval 0"), "{notes}");
}

#[test]
fn init_scripts_become_lsb_resources_and_heartbeat_scripts_are_left_out_with_a_note() {
    let c = convert(&config(
        "",
        "n1 198.18.0.100 lsb:myservice heartbeat:MailTo::root\n",
    ));
    let primitives = elements(&c.xml, "primitive");
    let lsb = primitives
        .iter()
        .find(|p| get(p, "class") == "lsb")
        .unwrap_or_else(|| panic!("no lsb primitive: {}", c.xml));
    assert_eq!(get(lsb, "type"), "myservice");
    assert_eq!(primitives.len(), 2, "{}", c.xml);
    let notes = c.notes.join("\n");
    assert!(
        notes.contains("heartbeat:MailTo::root is a Heartbeat resource script"),
        "{notes}"
    );
}
