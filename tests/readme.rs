//! The user documentation against what it documents: the parameter tables of docs/agents.md
//! are the meta-data's, rendered (a stale one fails and prints the table to paste), every
//! exit-code row names tests that exist, the directive table of docs/hb-monitor.md lists
//! every directive the parser knows with the treatment it gives, the README stays short,
//! and every relative link in README.md and docs/*.md reaches a file (and heading) that
//! exists.

use std::collections::BTreeSet;
use std::path::Path;

use crate::util::agent::{AGENT_TYPES, AgentCmd};

/// The table for one agent, rendered from its `meta-data` output.
fn table_from_meta_data(type_name: &str) -> String {
    let xml = AgentCmd::new(type_name).run("meta-data").stdout;
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&xml, options).expect("meta-data parses");
    let mut table =
        String::from("| parameter | required | default | description |\n|---|---|---|---|\n");
    for p in doc.descendants().filter(|n| n.has_tag_name("parameter")) {
        let content = p
            .children()
            .find(|c| c.has_tag_name("content"))
            .expect("content");
        let shortdesc = p
            .children()
            .find(|c| c.has_tag_name("shortdesc"))
            .and_then(|c| c.text())
            .unwrap_or("")
            .trim();
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            p.attribute("name").unwrap_or(""),
            if p.attribute("required") == Some("1") {
                "yes"
            } else {
                "no"
            },
            content
                .attribute("default")
                .map(|d| format!("`{d}`"))
                .unwrap_or_default(),
            shortdesc
        ));
    }
    table
}

/// A file of the repository (`README.md`, `docs/agents.md`), as text.
fn doc(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The text between `<!-- NAME -->` and `<!-- /NAME -->` in `path`.
fn block(path: &str, name: &str) -> String {
    let text = doc(path);
    let open = format!("<!-- {name} -->\n");
    let close = format!("<!-- /{name} -->");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("{path} lacks {open}"))
        + open.len();
    let end = text[start..]
        .find(&close)
        .unwrap_or_else(|| panic!("{path} lacks {close}"));
    text[start..start + end].to_string()
}

#[test]
fn agent_parameter_tables_match_the_meta_data() {
    for type_name in AGENT_TYPES {
        let expected = table_from_meta_data(type_name);
        assert_eq!(
            block("docs/agents.md", &format!("params:{type_name}")),
            expected,
            "docs/agents.md's {type_name} table is stale; replace it with:\n{expected}"
        );
    }
}

/// Every row of docs/agents.md's exit-code table names tests, and each named test exists.
#[test]
fn every_exit_code_row_names_existing_tests() {
    let root = env!("CARGO_MANIFEST_DIR");
    let table = block("docs/agents.md", "exit-codes");
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| agent"))
        .collect();
    assert!(rows.len() > 20, "{rows:?}");
    for row in rows {
        let tests_cell = row.trim_end_matches('|').rsplit('|').next().unwrap_or("");
        let named: Vec<&str> = tests_cell.split('`').skip(1).step_by(2).collect();
        assert!(!named.is_empty(), "row without a test: {row}");
        for name in named {
            let (module, function) = name.split_once("::").unwrap_or_else(|| panic!("{name}"));
            let source = std::fs::read_to_string(format!("{root}/tests/{module}.rs"))
                .unwrap_or_else(|e| panic!("{name}: tests/{module}.rs: {e}"));
            assert!(
                source.contains(&format!("fn {function}()")),
                "{name} (in docs/agents.md's exit-code table) does not exist"
            );
        }
    }
}

/// The README is the front page: what ferroha is, install, the two commands, two short
/// examples and links. Everything else lives in docs/.
#[test]
fn the_readme_stays_short() {
    let lines = doc("README.md").lines().count();
    assert!(
        lines <= 260,
        "README.md has {lines} lines; move detail to docs/"
    );
}

/// docs/hb-monitor.md's directive table names every `ha.cf` directive the parser knows
/// (src/hb/config.rs, read by `man_pages::parser_directives`) and no other, each with the
/// treatment hb-monitor(8) gives it, which `man_pages` checks against the parser itself.
#[test]
fn the_directive_table_lists_every_directive_the_parser_knows() {
    use crate::man_pages::pages::{DIRECTIVES, Kind};
    let table = block("docs/hb-monitor.md", "directives");
    let mut documented = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let name = cells[0]
            .trim_matches('`')
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no directive in {row}"));
        let kind = match cells.get(1).copied() {
            Some("honoured") => Kind::Honoured,
            Some("accepted, ignored") => Kind::Ignored,
            Some("refused") => Kind::Refused,
            other => panic!("{name}: treatment {other:?}: honoured, accepted, ignored or refused"),
        };
        let reason = cells.get(2).copied().unwrap_or("");
        assert!(reason.len() > 10, "{name}: say what it does or why not");
        let page = DIRECTIVES
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} in docs/hb-monitor.md is unknown to the parser"));
        assert_eq!(
            kind, page.kind,
            "{name}: docs/hb-monitor.md against the parser"
        );
        assert!(
            documented.insert(name.to_string()),
            "{name} is listed twice"
        );
    }
    let parser = crate::man_pages::parser_directives();
    let missing: Vec<_> = parser.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&parser).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "ha.cf directives missing from docs/hb-monitor.md: {missing:?}; listed there but \
         unknown to the parser: {unknown:?}"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks), with GitHub's `-1`,
/// `-2` suffixes for repeated headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let base = slug(line.trim_start_matches('#').trim());
            let mut anchor = base.clone();
            let mut n = 0;
            while !anchors.insert(anchor.clone()) {
                n += 1;
                anchor = format!("{base}-{n}");
            }
        }
    }
    anchors
}

/// The targets of the inline links `[text](target)` of a Markdown file, outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans are text, not links: drop them first.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            targets.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    targets
}

#[test]
fn every_relative_link_reaches_a_file_and_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec!["README.md".to_string(), "CHANGELOG.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let dir = Path::new(file).parent().unwrap_or(Path::new(""));
        for target in link_targets(&doc(file)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            // The repository path of the target, from the linking file's directory.
            let mut parts: Vec<&str> = dir.iter().filter_map(|p| p.to_str()).collect();
            for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
                if part == ".." {
                    parts.pop();
                } else {
                    parts.push(part);
                }
            }
            let repo_path = if path.is_empty() {
                file.clone()
            } else {
                parts.join("/")
            };
            let full = root.join(&repo_path);
            if !full.exists() {
                broken.push(format!("{file}: {target}: no such file"));
            } else if !anchor.is_empty() {
                let text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{file}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The documents whose `<!-- claims -->` … `<!-- /claims -->` sections are behaviour
/// claims, each of which names the test that proves it (docs/testing.md, "The claim index").
const CLAIM_DOCS: &[&str] = &[
    "README.md",
    "docs/hb-monitor.md",
    "docs/agents.md",
    "docs/migrating-from-heartbeat.md",
];

/// Claims without a test yet: (document, the claim's first words, issue). The check fails
/// on a claim that is neither referenced nor listed here, and on an entry that no longer
/// matches an unreferenced claim, so the list can only shrink.
const CLAIMS_WITHOUT_A_TEST_YET: &[(&str, &str, u32)] = &[
    (
        "README.md",
        "- **Four OCF resource agents** that Pacemaker, ferroha's",
        21,
    ),
    (
        "docs/hb-monitor.md",
        "On a virtual machine the hypervisor deschedules vCPUs,",
        21,
    ),
    (
        "docs/hb-monitor.md",
        "Between real hosts a stall of one host's",
        21,
    ),
    (
        "docs/agents.md",
        "One dispatcher (`src/ocf/run.rs`) owns the call order for",
        21,
    ),
    (
        "docs/agents.md",
        "- Parameters come from `OCF_RESKEY_<name>` or from `--<name>",
        21,
    ),
    (
        "docs/agents.md",
        "- Every other action validates first. `stop` is",
        21,
    ),
    (
        "docs/agents.md",
        "- `OCF_CHECK_LEVEL` (or `--check-level`) selects the monitor depth.",
        21,
    ),
    (
        "docs/agents.md",
        "- `OCF_RESKEY_CRM_meta_timeout` (ms; at a shell, the meta-data's",
        21,
    ),
    (
        "docs/agents.md",
        "- Errors print one `ocf-exit-reason:` line (`OCF_EXIT_REASON_PREFIX` honoured).",
        21,
    ),
    (
        "docs/agents.md",
        "Pacemaker treats 6 (`OCF_ERR_CONFIGURED`) as fatal: the resource",
        21,
    ),
    (
        "docs/agents.md",
        "- The address is added, listed and removed",
        21,
    ),
    (
        "docs/agents.md",
        "- `nic` and `cidr_netmask` are inferred from the",
        21,
    ),
    (
        "docs/agents.md",
        "- `monitor` is 0 only when the address",
        21,
    ),
    (
        "docs/agents.md",
        "Not carried over from IPaddr2: CLUSTERIP clones (gone",
        21,
    ),
    (
        "docs/agents.md",
        "- `start` returns 0 only when the mount",
        21,
    ),
    (
        "docs/agents.md",
        "- `monitor`: depth 0 checks the mount and",
        21,
    ),
    (
        "docs/agents.md",
        "- `start` runs the server binary (`mariadbd`/`mysqld`) itself,",
        21,
    ),
    (
        "docs/agents.md",
        "- The server of a datadir is recognised",
        21,
    ),
    (
        "docs/agents.md",
        "Not carried over from the mysql agent: `client_binary`",
        21,
    ),
    ("docs/agents.md", "- Two modes, chosen by how it runs.", 21),
    (
        "docs/agents.md",
        "- **Safety**: promotion is refused (1, with the",
        21,
    ),
    (
        "docs/agents.md",
        "- State is read with one `drbdsetup events2",
        21,
    ),
    (
        "docs/agents.md",
        "- Without the DRBD tools or without the",
        21,
    ),
    (
        "docs/agents.md",
        "- Not supported: `wfc_timeout`, `unfence_*` (LINBIT's agent has",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "hb-monitor joins a running Heartbeat 3 cluster (v1",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "1. Install ferroha on every node (`apt-get install",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "3. Check what each `haresources` resource becomes ([hb-monitor.md](hb-monitor.md#haresources)):",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "hb-monitor runs `mysql` with its defaults (`/etc/mysql/my.cnf`, datadir",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "4. Do not add hb-monitor's own directives (`fence_command`,",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "Node `n2` is the standby, `n1` holds the",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "2. Check both views: `hb-monitor status` on `n2`",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "3. On `n1`: `hb_standby`. Heartbeat stops the group",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "4. On `n1`: stop Heartbeat and start hb-monitor,",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "5. Once no node runs Heartbeat: add `fence_command`",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "6. `systemctl disable heartbeat; systemctl enable hb-monitor` on",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "While the cluster is mixed, `hb-monitor takeover` does",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "Rollback is the same hand-over the other way;",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "1. Remove hb-monitor's own directives from `ha.cf` on",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "2. On the standby node: stop hb-monitor, start",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "3. Check that the peer counts its heartbeats:",
        21,
    ),
    (
        "docs/migrating-from-heartbeat.md",
        "4. On the node holding the group: `hb-monitor",
        21,
    ),
];

/// The claims of one document: every paragraph and every bullet item inside its claims
/// sections, as (first line number, text joined by spaces). Headings, code blocks, tables
/// and HTML comments are not claims.
fn claims(path: &str) -> Vec<(usize, String)> {
    let text = doc(path);
    let mut found = Vec::new();
    let mut inside = false;
    let mut fenced = false;
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        let ends_claim = trimmed.is_empty()
            || trimmed.starts_with("```")
            || trimmed.starts_with('|')
            || trimmed.starts_with('#')
            || trimmed.starts_with("<!--")
            || is_item_start(trimmed)
            || fenced
            || !inside;
        if ends_claim && let Some(claim) = current.take() {
            found.push(claim);
        }
        if trimmed.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if trimmed == "<!-- claims -->" {
            inside = true;
            continue;
        }
        if trimmed == "<!-- /claims -->" {
            inside = false;
            continue;
        }
        if !inside
            || trimmed.is_empty()
            || trimmed.starts_with('|')
            || trimmed.starts_with('#')
            || trimmed.starts_with("<!--")
        {
            continue;
        }
        match current.as_mut() {
            Some((_, claim)) => {
                claim.push(' ');
                claim.push_str(trimmed);
            }
            None => current = Some((index + 1, trimmed.to_string())),
        }
    }
    if let Some(claim) = current {
        found.push(claim);
    }
    assert!(!inside, "{path}: a <!-- claims --> section is not closed");
    found
}

/// Whether a line opens a list item (`- `, `* `, `1. `).
fn is_item_start(line: &str) -> bool {
    let digits = line.trim_start_matches(|c: char| c.is_ascii_digit());
    line.starts_with("- ")
        || line.starts_with("* ")
        || (digits.len() < line.len() && digits.starts_with(". "))
}

/// The test names in a claim's `(test: module::name, …)` and `(unit: path::tests::name, …)`
/// references, each as (kind, path).
fn claim_references(claim: &str) -> Vec<(&'static str, String)> {
    let mut references = Vec::new();
    for (kind, open) in [("test", "(test: "), ("unit", "(unit: ")] {
        let mut rest = claim;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len()..];
            let end = after.find(')').unwrap_or(after.len());
            for name in after[..end].split(',') {
                references.push((kind, name.trim().trim_matches('`').to_string()));
            }
            rest = &after[end..];
        }
    }
    references
}

/// Whether the test a reference names exists: `test: module::name` is `fn name(` in
/// tests/module.rs; `unit: a::b::tests::name` is `fn name(` in src/a/b/tests.rs,
/// src/a/b.rs or src/a/b/mod.rs (the module that holds the `tests` module).
fn referenced_test_exists(kind: &str, name: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some((module, function)) = name.rsplit_once("::") else {
        return false;
    };
    let candidates: Vec<std::path::PathBuf> = if kind == "test" {
        vec![root.join(format!("tests/{}.rs", module.replace("::", "/")))]
    } else {
        let Some(parent) = module.strip_suffix("::tests") else {
            return false;
        };
        let parent = parent.replace("::", "/");
        vec![
            root.join(format!("src/{parent}/tests.rs")),
            root.join(format!("src/{parent}.rs")),
            root.join(format!("src/{parent}/mod.rs")),
        ]
    };
    candidates.iter().any(|file| {
        std::fs::read_to_string(file)
            .is_ok_and(|source| source.contains(&format!("fn {function}(")))
    })
}

#[test]
fn every_documented_claim_names_an_existing_test_or_is_a_listed_gap() {
    let mut problems = Vec::new();
    let mut referenced = 0;
    let mut gaps_used = BTreeSet::new();
    for path in CLAIM_DOCS {
        let found = claims(path);
        assert!(!found.is_empty(), "{path} has no <!-- claims --> section");
        for (line, claim) in found {
            let references = claim_references(&claim);
            for (kind, name) in &references {
                if !referenced_test_exists(kind, name) {
                    problems.push(format!("{path}:{line}: ({kind}: {name}) does not exist"));
                }
            }
            let gap = CLAIMS_WITHOUT_A_TEST_YET
                .iter()
                .position(|(doc, start, _)| doc == path && claim.starts_with(start));
            match (references.is_empty(), gap) {
                (false, None) => referenced += 1,
                (true, Some(index)) => {
                    gaps_used.insert(index);
                }
                (false, Some(_)) => problems.push(format!(
                    "{path}:{line}: now referenced; remove it from CLAIMS_WITHOUT_A_TEST_YET"
                )),
                (true, None) => {
                    let start: String = claim.split(' ').take(8).collect::<Vec<_>>().join(" ");
                    problems.push(format!(
                        "{path}:{line}: a claim without a test; add (test: …) or list it: \
                         (\"{path}\", \"{start}\", 21),"
                    ));
                }
            }
        }
    }
    for (index, (path, start, _)) in CLAIMS_WITHOUT_A_TEST_YET.iter().enumerate() {
        if !gaps_used.contains(&index) {
            problems.push(format!(
                "gap ({path}, {start:?}) matches no unreferenced claim"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{referenced} claims referenced, {} listed without a test;\n{}",
        gaps_used.len(),
        problems.join("\n")
    );
}
