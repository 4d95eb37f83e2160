//! Meta-data: each agent's `ocf-meta/<type>.xml` is embedded in its binary and is the one
//! copy of its documentation. At run time the dispatcher reads the advertised actions and
//! their timeout hints from it (a shell user gets the hint as the action's timeout); a unit
//! test per agent checks the XML against the agent's parameter table.

use std::time::Duration;

/// An `<action>` element: its name and timeout hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionHint {
    /// `name="…"`.
    pub name: String,
    /// `timeout="…"`, parsed.
    pub timeout: Option<Duration>,
}

/// Parses a Pacemaker time spec: `20`, `20s`, `500ms`, `2m`, `2min`, `1h`.
pub fn parse_timespec(spec: &str) -> Option<Duration> {
    let spec = spec.trim();
    let split = spec
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(spec.len());
    let (number, unit) = spec.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "" | "s" | "sec" => Some(Duration::from_secs(n)),
        "ms" | "msec" => Some(Duration::from_millis(n)),
        "m" | "min" => Some(Duration::from_secs(n * 60)),
        "h" | "hr" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

/// The value of `attr="…"` inside one tag's text.
fn attribute<'a>(tag: &'a str, attr: &str) -> Option<&'a str> {
    let pattern = format!(" {attr}=\"");
    let start = tag.find(&pattern)? + pattern.len();
    let end = tag[start..].find('"')?;
    Some(&tag[start..start + end])
}

/// The `<action …/>` elements of a meta-data document, in order.
///
/// Our own XML has one action per `<action …/>` tag (a unit test parses it with a real XML
/// parser and compares), so a tag scan is enough here and keeps an XML parser out of the
/// agents' start-up path.
pub fn action_hints(xml: &str) -> Vec<ActionHint> {
    xml.split("<action ")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            let tag = format!(" {tag}");
            Some(ActionHint {
                name: attribute(&tag, "name")?.to_string(),
                timeout: attribute(&tag, "timeout").and_then(parse_timespec),
            })
        })
        .collect()
}

#[cfg(test)]
pub mod check {
    //! The meta-data consistency check every agent's unit tests run.

    use super::super::params::ParamSpec;
    use super::action_hints;

    /// Panics with every disagreement between `xml` and the agent's parameter table and
    /// action list: names, order, defaults, required, unique, types; actions and timeouts.
    pub fn assert_meta_matches(xml: &str, type_name: &str, table: &[ParamSpec], actions: &[&str]) {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(xml, options)
            .expect("meta-data is well-formed XML");
        let root = doc.root_element();
        let mut problems = Vec::new();
        if root.attribute("name") != Some(type_name) {
            problems.push(format!(
                "resource-agent name is {:?}, expected {type_name:?}",
                root.attribute("name")
            ));
        }
        let params: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("parameter"))
            .collect();
        let xml_names: Vec<_> = params.iter().filter_map(|p| p.attribute("name")).collect();
        let table_names: Vec<_> = table.iter().map(|s| s.name).collect();
        if xml_names != table_names {
            problems.push(format!(
                "parameters differ: xml {xml_names:?} vs table {table_names:?}"
            ));
        }
        for spec in table {
            let Some(p) = params
                .iter()
                .find(|p| p.attribute("name") == Some(spec.name))
            else {
                continue;
            };
            let flag = |b: bool| if b { "1" } else { "0" };
            if p.attribute("required") != Some(flag(spec.required)) {
                problems.push(format!("{}: required differs", spec.name));
            }
            if p.attribute("unique") != Some(flag(spec.unique)) {
                problems.push(format!("{}: unique differs", spec.name));
            }
            let content = p.children().find(|c| c.has_tag_name("content"));
            let content_type = content.and_then(|c| c.attribute("type"));
            if content_type != Some(spec.kind.meta_type()) {
                problems.push(format!(
                    "{}: type {content_type:?} vs {}",
                    spec.name,
                    spec.kind.meta_type()
                ));
            }
            let default = content.and_then(|c| c.attribute("default"));
            if default != spec.default {
                problems.push(format!(
                    "{}: default {default:?} vs table {:?}",
                    spec.name, spec.default
                ));
            }
            for tag in ["longdesc", "shortdesc"] {
                if !p.children().any(|c| c.has_tag_name(tag)) {
                    problems.push(format!("{}: no <{tag}>", spec.name));
                }
            }
        }
        let xml_actions: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("action"))
            .map(|a| {
                if a.attribute("timeout").is_none() {
                    problems.push(format!("action {:?} has no timeout", a.attribute("name")));
                }
                a.attribute("name").unwrap_or("").to_string()
            })
            .collect();
        let mut unique_actions = xml_actions.clone();
        unique_actions.dedup();
        let mut expected: Vec<_> = actions.iter().map(|s| s.to_string()).collect();
        let mut got = unique_actions.clone();
        expected.sort();
        got.sort();
        got.dedup();
        if got != expected {
            problems.push(format!("actions differ: xml {got:?} vs agent {expected:?}"));
        }
        let scanned: Vec<_> = action_hints(xml).into_iter().map(|h| h.name).collect();
        if scanned != xml_actions {
            problems.push(format!(
                "the run-time tag scan sees {scanned:?}, the parser {xml_actions:?}"
            ));
        }
        assert!(
            problems.is_empty(),
            "meta-data disagrees:\n{}",
            problems.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespecs() {
        assert_eq!(parse_timespec("20s"), Some(Duration::from_secs(20)));
        assert_eq!(parse_timespec("20"), Some(Duration::from_secs(20)));
        assert_eq!(parse_timespec("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timespec("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timespec("x"), None);
        assert_eq!(parse_timespec("5 parsecs"), None);
    }

    #[test]
    fn scans_action_tags() {
        let xml = r#"<actions><action name="start" timeout="20s"/>
            <action name="monitor" timeout="10s" interval="10s" depth="0"/></actions>"#;
        assert_eq!(
            action_hints(xml),
            vec![
                ActionHint {
                    name: "start".into(),
                    timeout: Some(Duration::from_secs(20))
                },
                ActionHint {
                    name: "monitor".into(),
                    timeout: Some(Duration::from_secs(10))
                },
            ]
        );
    }
}
