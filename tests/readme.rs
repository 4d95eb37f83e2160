//! The README's parameter tables are the meta-data's, rendered: this test fails (and prints
//! the table to paste) when an agent's parameters change and the README does not.

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

fn readme_block(type_name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let open = format!("<!-- params:{type_name} -->\n");
    let close = format!("<!-- /params:{type_name} -->");
    let start = readme
        .find(&open)
        .unwrap_or_else(|| panic!("README lacks {open}"))
        + open.len();
    let end = readme[start..]
        .find(&close)
        .unwrap_or_else(|| panic!("README lacks {close}"));
    readme[start..start + end].to_string()
}

#[test]
fn readme_parameter_tables_match_the_meta_data() {
    for type_name in AGENT_TYPES {
        let expected = table_from_meta_data(type_name);
        assert_eq!(
            readme_block(type_name),
            expected,
            "README's {type_name} table is stale; replace it with:\n{expected}"
        );
    }
}

/// Every row of the README's exit-code table names tests, and each named test exists.
#[test]
fn every_exit_code_row_names_existing_tests() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let start = readme
        .find("<!-- exit-codes -->")
        .expect("README lacks the exit-code table");
    let end = readme
        .find("<!-- /exit-codes -->")
        .expect("unterminated exit-code table");
    let rows: Vec<&str> = readme[start..end]
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
                "{name} (in the README's exit-code table) does not exist"
            );
        }
    }
}
