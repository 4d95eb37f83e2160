//! The man pages against what they document, so that they cannot drift: every subcommand and
//! option `hb-monitor --help` shows is in hb-monitor(8), every parameter and action of each
//! agent's `meta-data` is in its `ocf_ferroha_<type>(7)`, the page's `ha.cf` directives are
//! the parser's, and `man` renders every page without a warning. The pages are rendered here
//! by the same code as `make man` (examples/gen-docs/pages.rs).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::agent::{AGENT_TYPES, AgentCmd};

#[path = "../examples/gen-docs/pages.rs"]
#[allow(dead_code)]
pub(crate) mod pages;

use pages::Kind;

/// `man -l` of a roff source at 80 columns: the text, and whatever man and groff warned.
fn render(name: &str, roff: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, roff).unwrap();
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&path)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .output()
        .expect("man (man-db) is installed: scripts/install-deps");
    assert!(out.status.success(), "man -l {name} failed");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines of the rendered section or subsection called `title` (`SH` headings start in
/// column 0, `SS` in column 3), up to the next heading of the same or a higher level.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    let level = |line: &str| -> Option<usize> {
        let indent = line.len() - line.trim_start().len();
        (!line.trim().is_empty() && (indent == 0 || indent == 3)).then_some(indent)
    };
    let mut lines = text.lines();
    let Some(start) = lines.position(|l| level(l).is_some() && l.trim() == title) else {
        return vec![];
    };
    let depth = level(text.lines().nth(start).unwrap()).unwrap();
    text.lines()
        .skip(start + 1)
        .take_while(|l| level(l).is_none_or(|d| d > depth))
        .collect()
}

/// Options and positional arguments in one `--help` output: `-c`, `--config-dir`, `[SCOPE]`.
fn help_items(help: &str) -> BTreeSet<String> {
    let mut items = BTreeSet::new();
    for line in help.lines().map(str::trim_start) {
        if let Some(rest) = line.strip_prefix('[').or(line.strip_prefix('<'))
            && let Some(end) = rest.find([']', '>'])
        {
            items.insert(rest[..end].to_string());
            continue;
        }
        for word in line.split([' ', ',']).take(3) {
            if word.starts_with('-') && word.len() > 1 {
                items.insert(word.to_string());
            }
        }
    }
    items
}

/// Subcommand names in `hb-monitor --help`'s "Commands:" list (without `help`).
fn help_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_string)
        .collect()
}

fn hb_monitor_help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hb-monitor"))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The tags of a section's tagged paragraphs (`.TP`): the first words of each line indented 7,
/// e.g. `-c`, `--config-dir` and `DIR` of "-c, --config-dir DIR".
fn tags(lines: &[&str]) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| l.len() - l.trim_start().len() == 7)
        .flat_map(|l| l.split([' ', ',']).filter(|w| !w.is_empty()).take(3))
        .map(str::to_string)
        .collect()
}

/// What of `hb-monitor --help` (each subcommand, and each of its options and arguments) the
/// rendered page lacks as a tagged paragraph, as "subcommand: item".
fn missing_from_hb_monitor_page(text: &str) -> Vec<String> {
    let mut missing = vec![];
    let top = hb_monitor_help(&[]);
    let options = tags(&section(text, "OPTIONS"));
    for item in help_items(&top) {
        if !options.contains(&item) {
            missing.push(format!("hb-monitor: {item}"));
        }
    }
    let subs = help_subcommands(&top);
    assert!(subs.len() >= 5, "no subcommands in --help:\n{top}");
    for sub in subs {
        let body = section(text, &sub);
        if body.is_empty() {
            missing.push(format!("{sub}: the subcommand"));
            continue;
        }
        let body = tags(&body);
        for item in help_items(&hb_monitor_help(&[&sub])) {
            if item == "-h" || item == "--help" {
                continue;
            }
            if !body.contains(&item) {
                missing.push(format!("{sub}: {item}"));
            }
        }
    }
    missing
}

#[test]
fn hb_monitor_page_has_every_subcommand_and_option_of_help() {
    let roff = pages::hb_monitor_page(ferroha::hb::cli::command());
    let (text, warnings) = render("hb-monitor.8", &roff);
    assert_eq!(warnings, "", "man warns about hb-monitor.8");
    let missing = missing_from_hb_monitor_page(&text);
    assert!(
        missing.is_empty(),
        "hb-monitor(8) lacks {missing:?}:\n{text}"
    );
    for title in ["CONFIGURATION", "FILES", "EXIT STATUS", "SIGNALS"] {
        assert!(!section(&text, title).is_empty(), "no {title} in:\n{text}");
    }
    // And the check sees a broken page: the same page without run's --op-timeout.
    let broken = roff.replace("op\\-timeout", "op\\-limit");
    assert_ne!(broken, roff);
    let missing = missing_from_hb_monitor_page(&render("hb-monitor.8", &broken).0);
    assert!(
        missing.iter().any(|m| m == "run: --op-timeout"),
        "{missing:?}"
    );
}

/// What of `xml` (each parameter with its default, each action) the rendered page lacks.
fn missing_from_agent_page(text: &str, xml: &str) -> Vec<String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options).expect("meta-data parses");
    // A parameter or action is a tagged paragraph's tag.
    let params = section(text, "SUPPORTED PARAMETERS").join("\n");
    let param_tags = tags(&section(text, "SUPPORTED PARAMETERS"));
    let action_tags = tags(&section(text, "SUPPORTED ACTIONS"));
    let mut missing = vec![];
    for p in doc.descendants().filter(|n| n.has_tag_name("parameter")) {
        let name = p.attribute("name").unwrap();
        if !param_tags.contains(name) {
            missing.push(format!("parameter {name}"));
        }
        let default = p
            .children()
            .find(|c| c.has_tag_name("content"))
            .and_then(|c| c.attribute("default"))
            .filter(|d| !d.is_empty());
        if let Some(default) = default {
            // man may break a long default over lines: compare without whitespace.
            let flat: String = params.split_whitespace().collect();
            let want: String = format!("default\"{default}\"").split_whitespace().collect();
            if !flat.contains(&want) {
                missing.push(format!("default of {name} ({default})"));
            }
        }
    }
    for a in doc.descendants().filter(|n| n.has_tag_name("action")) {
        let name = a.attribute("name").unwrap();
        if !action_tags.contains(name) {
            missing.push(format!("action {name}"));
        }
    }
    missing
}

#[test]
fn agent_pages_have_every_parameter_and_action_of_meta_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for agent in AGENT_TYPES {
        let source = std::fs::read_to_string(root.join(format!("ocf-meta/{agent}.xml"))).unwrap();
        let name = format!("ocf_ferroha_{agent}.7");
        let roff = pages::agent_page(agent, &source, env!("CARGO_PKG_VERSION"));
        let (text, warnings) = render(&name, &roff);
        assert_eq!(warnings, "", "man warns about {name}");
        // Against what the installed binary says, not only the file it embeds.
        let meta_data = AgentCmd::new(agent).run("meta-data").stdout;
        let missing = missing_from_agent_page(&text, &meta_data);
        assert!(missing.is_empty(), "{name} lacks {missing:?}:\n{text}");
        assert!(!section(&text, "EXIT STATUS").is_empty(), "{name}");

        // And the check sees a broken page: the first parameter deleted from its source.
        let first = source.find("<parameter ").unwrap();
        let end = first + source[first..].find("</parameter>").unwrap() + "</parameter>".len();
        let deleted = roxmltree::Document::parse_with_options(
            &source[first..end],
            roxmltree::ParsingOptions::default(),
        )
        .unwrap()
        .root_element()
        .attribute("name")
        .unwrap()
        .to_string();
        let broken = format!("{}{}", &source[..first], &source[end..]);
        let (text, _) = render(&name, &pages::agent_page(agent, &broken, "0"));
        let missing = missing_from_agent_page(&text, &meta_data);
        assert!(
            missing.contains(&format!("parameter {deleted}")),
            "{name} without {deleted}: {missing:?}"
        );
    }
}

/// A line that uses `name` as the parser accepts it (honoured directives need valid values).
fn sample(name: &str) -> String {
    let args = match name {
        "node" => "c",
        "keepalive" => "1",
        "warntime" => "10",
        "deadtime" => "30",
        "initdead" => "60",
        "deadping" => "20",
        "udpport" => "695",
        "bcast" => "lo",
        "serial" => "/dev/ttyS0",
        "baud" => "38400",
        "ucast" => "lo 127.0.0.3",
        "mcast" => "lo 239.0.0.1 694 1 0",
        "ucast6" => "lo fd00:198:18::3",
        "mcast6" => "lo ff12::1:2:3:4 694 1 0",
        "ping6" => "fd00:198:18::1",
        "ping" => "127.0.0.1",
        "ping_group" => "g 127.0.0.1 127.0.0.2",
        "auto_failback" => "off",
        "nice_failback" => "on",
        "autojoin" => "none",
        "logfacility" => "daemon",
        "logfile" | "debugfile" => "/var/log/x",
        "realtime" | "crm" | "pacemaker" => "off",
        "rtprio" => "20",
        "watchdog" => "/dev/watchdog",
        "fence_command" | "notify_command" => "/bin/true",
        "fence_timeout" | "monitor_interval" | "notify_timeout" => "5",
        "metrics_listen" => "9664",
        "restart_limit" => "2 60",
        "respawn" => "nobody /bin/true",
        _ => "1",
    };
    format!("{name} {args}")
}

/// The directive names src/hb/config.rs matches on in `ha.cf`, and its IGNORED list: read
/// from the source, so that a directive added there and not to the page fails this test.
pub(crate) fn parser_directives() -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/hb/config.rs"))
            .unwrap();
    let body = &source[source.find("fn parse_ha_cf").unwrap()..];
    let body = &body[..body.find("\nfn ").unwrap()];
    let mut names = BTreeSet::new();
    // The directive match's arms, at its indentation (rustfmt keeps it): `"a" | "b" => …`.
    for line in body.lines() {
        if let Some(arm) = line.strip_prefix(&" ".repeat(16))
            && arm.starts_with('"')
            && let Some((pattern, _)) = arm.split_once(" =>")
        {
            names.extend(
                pattern
                    .split(" | ")
                    .map(|s| s.trim_matches('"').to_string()),
            );
        }
    }
    let ignored = &source[source.find("const IGNORED").unwrap()..];
    let ignored = &ignored[ignored.find("= &[").unwrap() + 4..ignored.find("];").unwrap()];
    // `("name", "why"),` pairs (the reasons hold no quotes): every other string.
    names.extend(ignored.split('"').skip(1).step_by(4).map(str::to_string));
    names
}

#[test]
fn ha_cf_directives_on_the_page_are_the_parsers() {
    let page: BTreeSet<String> = pages::DIRECTIVES
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    let parser = parser_directives();
    assert!(parser.len() > 30, "{parser:?}");
    let undocumented: Vec<_> = parser.difference(&page).collect();
    let unknown: Vec<_> = page.difference(&parser).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "ha.cf directives not on hb-monitor(8): {undocumented:?}; on it, unknown to the \
         parser: {unknown:?}"
    );
    for directive in pages::DIRECTIVES {
        let dir = tempfile::tempdir().unwrap();
        let line = sample(directive.name);
        std::fs::write(
            dir.path().join("ha.cf"),
            format!("node a b\nucast lo 127.0.0.2\n{line}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("haresources"), "a 198.18.0.10\n").unwrap();
        let keys = dir.path().join("authkeys");
        std::fs::write(&keys, "auth 1\n1 sha256 secret\n").unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        let result = ferroha::hb::config::load(dir.path());
        let noted = |cfg: &ferroha::hb::config::Config| {
            cfg.ha_cf.notes.iter().any(|n| n.starts_with("line 3:"))
        };
        let kind = match &result {
            Ok(cfg) if noted(cfg) => Kind::Ignored,
            Ok(_) => Kind::Honoured,
            Err(errors) if errors.iter().any(|e| e.line == 3) => Kind::Refused,
            Err(errors) => panic!("'{line}': {errors:?}"),
        };
        assert_eq!(kind, directive.kind, "'{line}' on hb-monitor(8)");
    }
}
