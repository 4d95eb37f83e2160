//! `hb-monitor cib`: the road on to Pacemaker. Turns `ha.cf` + `haresources` into a
//! Pacemaker CIB that runs the same resources with the same agents: a group per
//! `haresources` line (its resources in order, the same OCF instance names hb-monitor uses,
//! so that the agents' records carry over), the group placed on its preferred node, a DRBD
//! resource as a promotable clone that the group follows (colocated with the Promoted
//! instance, started after the promotion, as DRBD's guide configures it), and resource
//! stickiness from `auto_failback`. What has no Pacemaker equivalent here (fencing, ping
//! nodes) is said in notes rather than guessed.
//!
//! Pure: configuration in, XML and notes out.

use std::time::Duration;

use super::agent_worker::instance_name;
use super::config::{AutoFailback, Config, ResourceClass, ResourceEntry};
use crate::xml::escape as attr;

/// The operation timeout written for every action (hb-monitor's default `--op-timeout`).
const OP_TIMEOUT: &str = "60s";

/// A monitor interval for Pacemaker when ha.cf's `monitor_interval` is 0 (hb-monitor then
/// never monitors, but a Pacemaker resource without one is never checked at all): the
/// hb-monitor default.
const DEFAULT_MONITOR: Duration = Duration::from_secs(10);

/// The CIB and what the operator must still do.
#[derive(Debug)]
pub struct Converted {
    /// A whole `<cib>` document, for `cibadmin --replace --xml-file` on a new cluster.
    pub xml: String,
    /// What was not converted, and why.
    pub notes: Vec<String>,
}

/// Seconds as Pacemaker writes an interval.
fn interval(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// One `<primitive>`; `ops` are (name, interval, role). An LSB init script is Pacemaker's
/// `lsb` class (which passes no arguments).
fn primitive(id: &str, res: &ResourceEntry, ops: &[(&str, &str, Option<&str>)]) -> String {
    let mut xml = match res.class {
        ResourceClass::Lsb => format!(
            r#"<primitive id="{id}" class="lsb" type="{}">"#,
            attr(&res.agent)
        ),
        _ => format!(
            r#"<primitive id="{id}" class="ocf" provider="{}" type="{}">"#,
            attr(&res.provider),
            attr(&res.agent)
        ),
    };
    if res.class == ResourceClass::Ocf && !res.params.is_empty() {
        xml += &format!(r#"<instance_attributes id="{id}-instance_attributes">"#);
        for (name, value) in &res.params {
            xml += &format!(
                r#"<nvpair id="{id}-instance_attributes-{name}" name="{}" value="{}"/>"#,
                attr(name),
                attr(value)
            );
        }
        xml += "</instance_attributes>";
    }
    xml += "<operations>";
    for (name, every, role) in ops {
        let (role_attr, role_id) = match role {
            Some(r) => (format!(r#" role="{r}""#), format!("-{r}")),
            None => (String::new(), String::new()),
        };
        xml += &format!(
            r#"<op id="{id}-{name}-{every}{role_id}" name="{name}" interval="{every}" timeout="{OP_TIMEOUT}"{role_attr}/>"#
        );
    }
    xml += "</operations></primitive>";
    xml
}

/// Whether a resource is DRBD, which Pacemaker runs as a promotable clone.
fn is_drbd(res: &ResourceEntry) -> bool {
    res.provider == "ferroha" && res.agent == "drbd"
}

/// Converts `cfg`.
pub fn convert(cfg: &Config) -> Converted {
    let ha = &cfg.ha_cf;
    let mut notes = Vec::new();
    let monitor = if ha.monitor_interval.is_zero() {
        notes.push(format!(
            "monitor_interval 0 (never monitor) has no Pacemaker equivalent: every resource \
             is monitored every {}",
            interval(DEFAULT_MONITOR)
        ));
        interval(DEFAULT_MONITOR)
    } else {
        interval(ha.monitor_interval)
    };
    let mut resources = String::new();
    let mut constraints = String::new();
    for (g, group) in cfg.groups.iter().enumerate() {
        let group_id = format!("group_{}", g + 1);
        let mut members = String::new();
        let mut clones = Vec::new();
        for (i, res) in group.resources.iter().enumerate() {
            let id = instance_name(res, g, i);
            if res.class == ResourceClass::Heartbeat {
                // Pacemaker runs no Heartbeat resource scripts (its heartbeat class is gone).
                notes.push(format!(
                    "haresources line {}: {} is a Heartbeat resource script, which Pacemaker does not run: replace it with an OCF agent or an LSB init script; left out of group_{}",
                    group.line,
                    res.written,
                    g + 1
                ));
                continue;
            }
            if res.class == ResourceClass::Lsb && !res.params.is_empty() {
                notes.push(format!(
                    "haresources line {}: {} takes arguments, which Pacemaker does not pass to LSB init scripts",
                    group.line, res.written
                ));
            }
            if is_drbd(res) {
                // Monitors of the two roles must differ in interval (Pacemaker tells them
                // apart by it).
                let unpromoted = interval(
                    if ha.monitor_interval.is_zero() {
                        DEFAULT_MONITOR
                    } else {
                        ha.monitor_interval
                    } + Duration::from_secs(1),
                );
                let drbd = primitive(
                    &id,
                    res,
                    &[
                        ("monitor", &monitor, Some("Promoted")),
                        ("monitor", &unpromoted, Some("Unpromoted")),
                        ("start", "0s", None),
                        ("stop", "0s", None),
                        ("promote", "0s", None),
                        ("demote", "0s", None),
                        ("notify", "0s", None),
                    ],
                );
                let clone_id = format!("{id}-clone");
                resources += &format!(
                    r#"<clone id="{clone_id}"><meta_attributes id="{clone_id}-meta_attributes"><nvpair id="{clone_id}-promotable" name="promotable" value="true"/><nvpair id="{clone_id}-promoted-max" name="promoted-max" value="1"/><nvpair id="{clone_id}-promoted-node-max" name="promoted-node-max" value="1"/><nvpair id="{clone_id}-clone-max" name="clone-max" value="2"/><nvpair id="{clone_id}-clone-node-max" name="clone-node-max" value="1"/><nvpair id="{clone_id}-notify" name="notify" value="true"/></meta_attributes>{drbd}</clone>"#
                );
                if i != 0 {
                    notes.push(format!(
                        "haresources line {}: {} is not the group's first resource; under \
                         Pacemaker the whole group {group_id} starts after its promotion",
                        group.line, res.written
                    ));
                }
                clones.push(clone_id);
            } else {
                members += &primitive(
                    &id,
                    res,
                    &[
                        ("monitor", &monitor, None),
                        ("start", "0s", None),
                        ("stop", "0s", None),
                    ],
                );
            }
        }
        if members.is_empty() {
            continue;
        }
        resources += &format!(r#"<group id="{group_id}">{members}</group>"#);
        constraints += &format!(
            r#"<rsc_location id="{group_id}-prefers-{node}" rsc="{group_id}" node="{node}" score="100"/>"#,
            node = attr(&group.preferred)
        );
        for clone_id in clones {
            constraints += &format!(
                r#"<rsc_colocation id="{group_id}-with-{clone_id}" score="INFINITY" rsc="{group_id}" with-rsc="{clone_id}" with-rsc-role="Promoted"/><rsc_order id="{group_id}-after-{clone_id}" kind="Mandatory" first="{clone_id}" first-action="promote" then="{group_id}" then-action="start"/>"#
            );
        }
    }
    // auto_failback on: a group goes home when its node returns (no stickiness against
    // the location preference); off: it stays where it runs.
    let stickiness = match ha.auto_failback {
        AutoFailback::Off => "INFINITY",
        _ => "0",
    };
    if !ha.fence_command.is_empty() {
        notes.push(
            "fence_command is hb-monitor's: configure a Pacemaker fence device (stonith) for \
             each node, then set stonith-enabled=true"
                .into(),
        );
    } else {
        notes.push(
            "no fencing: stonith-enabled=false, as the cluster ran without it; a production \
             Pacemaker cluster needs a fence device"
                .into(),
        );
    }
    if !ha.ping.is_empty() || !ha.ping_groups.is_empty() {
        notes.push(
            "ping nodes are not converted: use a clone of ocf:pacemaker:ping and a location \
             rule on its pingd attribute"
                .into(),
        );
    }
    let xml = format!(
        r#"<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="1" num_updates="0"><configuration><crm_config><cluster_property_set id="cib-bootstrap-options"><nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/></cluster_property_set></crm_config><nodes/><resources>{resources}</resources><constraints>{constraints}</constraints><rsc_defaults><meta_attributes id="rsc-options"><nvpair id="rsc-options-resource-stickiness" name="resource-stickiness" value="{stickiness}"/></meta_attributes></rsc_defaults></configuration><status/></cib>
"#
    );
    Converted { xml, notes }
}

#[cfg(test)]
mod tests;
