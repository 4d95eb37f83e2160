//! The bench report (`ferroha::report`, `make bench-report`): results files round-trip,
//! charts show what the results say, the page keeps its hand-written prose, and bad input is
//! refused with a message naming the file and field. No root, no bench run: known results.

use std::path::Path;

use ferroha::report::chart::{FERROHA_COLOUR, PEER_COLOUR};
use ferroha::report::{
    self, BEGIN, END, Figure, Machine, PageError, Paths, ReportError, Results, Role, Series, Spread,
};

fn machine() -> Machine {
    Machine {
        cpu: "Test CPU @ 2.0GHz".into(),
        cores: 2,
        kernel: "6.1.0-test-amd64".into(),
        debian: "12.8".into(),
        date: "2026-12-08 04:00 UTC".into(),
        git_rev: "abc1234".into(),
        load: "2.10 1.95 1.40".into(),
    }
}

fn series(name: &str, role: Role, median: f64, low: f64, high: f64) -> Series {
    Series {
        name: name.into(),
        role,
        median,
        spread: Spread::MinMax,
        low,
        high,
        samples: Vec::new(),
    }
}

/// vip: monitor, ferroha at 1.5 ms against IPaddr2 at 30 ms (20×), and start from samples.
fn known() -> Results {
    let samples: Vec<f64> = (1..=20).map(f64::from).collect();
    Results {
        bench: "vip".into(),
        command: "BENCH_RUNS=20 cargo bench --locked --bench vip".into(),
        machine: machine(),
        figures: vec![
            Figure {
                id: "monitor".into(),
                label: "vip monitor, VIP up".into(),
                unit: "ms".into(),
                systems: vec![
                    series("vip-agent", Role::Ferroha, 1.5, 1.25, 2.0),
                    series("IPaddr2", Role::Peer, 30.0, 28.0, 35.0),
                ],
            },
            Figure {
                id: "start".into(),
                label: "vip start".into(),
                unit: "ms".into(),
                systems: vec![
                    Series::from_samples("vip-agent", Role::Ferroha, &samples).unwrap(),
                    Series::from_samples("IPaddr2", Role::Peer, &[50.0, 40.0, 60.0]).unwrap(),
                ],
            },
        ],
    }
}

#[test]
fn results_round_trip_through_json() {
    let results = known();
    let text = results.to_json();
    assert_eq!(Results::from_json(&text).unwrap(), results, "{text}");
    // Files written before the load was recorded still read.
    let older = text.replace("\"load\":", "\"not-the-load\":");
    assert_ne!(older, text);
    let mut without = results.clone();
    without.machine.load = String::new();
    assert_eq!(Results::from_json(&older).unwrap(), without);
    let dir = tempfile::tempdir().unwrap();
    let path = results.write_to(&dir.path().join("bench")).unwrap();
    assert!(path.ends_with("bench/vip.json"), "{}", path.display());
    assert_eq!(
        report::read_results(&dir.path().join("bench")).unwrap(),
        [results]
    );
}

#[test]
fn a_series_from_samples_has_its_median_and_spread() {
    let many: Vec<f64> = (1..=21).rev().map(f64::from).collect();
    let s = Series::from_samples("x", Role::Peer, &many).unwrap();
    assert_eq!(
        (s.median, s.spread, s.low, s.high),
        (11.0, Spread::P10P90, 3.0, 19.0)
    );
    assert_eq!(s.samples, many, "the samples are kept as measured");
    let few = Series::from_samples("x", Role::Peer, &[5.0, 1.0, 3.0]).unwrap();
    assert_eq!(
        (few.median, few.spread, few.low, few.high),
        (3.0, Spread::MinMax, 1.0, 5.0)
    );
    assert_eq!(Series::from_samples("x", Role::Peer, &[]), None);
    assert_eq!(
        Series::from_samples("x", Role::Peer, &[1.0, f64::NAN]),
        None
    );
}

fn texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").to_string())
        .collect()
}

fn widths(doc: &roxmltree::Document, fill: &str) -> Vec<f64> {
    doc.descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(fill))
        .map(|n| n.attribute("width").unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_chart_of_known_results_has_the_bars_labels_and_ratio() {
    let results = known();
    let svg = report::figure_svg(&results, &results.figures[0]);
    let doc = roxmltree::Document::parse(&svg)
        .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = texts(&doc);
    for want in [
        "vip monitor, VIP up",
        "vip-agent",
        "IPaddr2",
        "1.50 ms",
        "30.0 ms",
        "IPaddr2 / vip-agent = 20.0× (medians)",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
    }
    assert!(
        texts.iter().any(|t| t.contains("min-max")),
        "the spread is named: {texts:?}"
    );
    let (ours, peer) = (widths(&doc, FERROHA_COLOUR), widths(&doc, PEER_COLOUR));
    assert_eq!((ours.len(), peer.len()), (1, 1), "{svg}");
    let ratio = peer[0] / ours[0];
    assert!(
        (ratio - 20.0).abs() < 0.5,
        "bars are medians to scale: {ratio}"
    );
    // Whiskers: a line across each spread, with its two end caps.
    let lines = doc.descendants().filter(|n| n.has_tag_name("line")).count();
    assert!(lines >= 6, "{svg}");
    assert!(!svg.contains("<script"));

    let sampled = report::figure_svg(&results, &results.figures[1]);
    // Samples 1..=20: the median is the upper middle one, 11; IPaddr2's of 40, 50, 60 is 50.
    assert!(sampled.contains("11.0 ms (n=20)"), "{sampled}");
    assert!(sampled.contains("IPaddr2 / vip-agent = 4.55×"), "{sampled}");
}

fn page(section: &str) -> String {
    format!(
        "# Benchmarks\n\nHand-written intro.\n\n{BEGIN}\n{section}\n{END}\n\n## Later\n\nProse after.\n"
    )
}

#[test]
fn the_page_writer_keeps_the_text_outside_the_markers() {
    let old = page("old generated text\nmore of it");
    let new = report::replace_generated(&old, "new table\n").unwrap();
    assert_eq!(new, page("new table"));
    // Again: the same page, nothing accumulates.
    assert_eq!(report::replace_generated(&new, "new table").unwrap(), new);
    let section = report::render_section(&[known()], &["startup".into(), "vip".into()], "bench");
    let full = report::replace_generated(&old, &section).unwrap();
    let (before, rest) = full.split_once(BEGIN).unwrap();
    let (inner, after) = rest.split_once(END).unwrap();
    assert_eq!(before, "# Benchmarks\n\nHand-written intro.\n\n");
    assert_eq!(after, "\n\n## Later\n\nProse after.\n");
    for want in [
        "Benches in this section: `vip`.",
        "Not run for it, so absent here: `startup`",
        "Command: `BENCH_RUNS=20 cargo bench --locked --bench vip`; 2026-12-08 04:00 UTC, git abc1234.",
        "Machine: Test CPU @ 2.0GHz, 2 cores, Linux 6.1.0-test-amd64, Debian 12.8; load average (1/5/15 min) 2.10 1.95 1.40 at the end.",
        "| vip monitor, VIP up | vip-agent: 1.50 ms (min-max 1.25–2.00) | IPaddr2: 30.0 ms (min-max 28.0–35.0) | 20.0× |",
        "![vip monitor, VIP up](bench/vip-monitor.svg)",
        "![vip start](bench/vip-start.svg)",
    ] {
        assert!(inner.contains(want), "{want:?} not in:\n{inner}");
    }
}

#[test]
fn a_page_without_its_markers_is_refused_clearly() {
    let cases = [
        (
            "# Benchmarks\n\nno markers\n".to_string(),
            PageError::NoBegin,
        ),
        (format!("{BEGIN}\nno end\n"), PageError::NoEnd),
        (
            format!("{END}\n{BEGIN}\nend before begin\n"),
            PageError::NoEnd,
        ),
        (
            format!("{BEGIN}\n{END}\n{BEGIN}\n{END}\n"),
            PageError::Twice(BEGIN),
        ),
        (format!("{BEGIN}\n{END}\n{END}\n"), PageError::Twice(END)),
    ];
    for (text, want) in cases {
        assert_eq!(report::replace_generated(&text, "x"), Err(want), "{text}");
    }
    assert!(PageError::NoBegin.to_string().contains(BEGIN));
    assert!(PageError::NoEnd.to_string().contains(END));

    // Through generate: the page named, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    known().write_to(&paths.results).unwrap();
    std::fs::create_dir_all(paths.page.parent().unwrap()).unwrap();
    std::fs::write(&paths.page, "# Benchmarks\n\nno markers\n").unwrap();
    let err = report::generate(&paths).unwrap_err();
    assert!(matches!(err, ReportError::Page { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("benchmarks.md") && message.contains(BEGIN),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&paths.page).unwrap(),
        "# Benchmarks\n\nno markers\n"
    );
    assert!(
        !paths.charts.exists(),
        "no chart written for a page it cannot update"
    );
}

fn paths_in(dir: &Path) -> Paths {
    Paths {
        results: dir.join("target/bench"),
        page: dir.join("docs/benchmarks.md"),
        charts: dir.join("docs/bench"),
        benches: vec!["startup".into(), "vip".into()],
    }
}

#[test]
fn bad_json_is_a_clear_error() {
    let good = known().to_json();
    let cases: Vec<(String, &str)> = vec![
        ("{ not json".into(), "not valid JSON"),
        ("[1, 2]".into(), "the document: expected an object"),
        (
            good.replace("\"bench\": \"vip\"", "\"bench\": 3"),
            "bench: expected a string",
        ),
        (
            good.replace("\"bench\": \"vip\"", "\"bench\": \"../x\""),
            "bench: \"../x\"",
        ),
        (
            good.replace("\"format\": 1", "\"format\": 9"),
            "format: is 9",
        ),
        (
            good.replace("\"cores\": 2", "\"cores\": \"two\""),
            "machine.cores: expected a whole number",
        ),
        (
            good.replacen("\"unit\": \"ms\"", "\"units\": \"ms\"", 1),
            "figures[0].unit: missing",
        ),
        (
            good.replacen("\"median\": 1.5", "\"median\": \"fast\"", 1),
            "figures[0].systems[0].median: expected a number",
        ),
        (
            good.replacen("\"median\": 1.5", "\"median\": 99.0", 1),
            "figures[0].systems[0]: low 1.25, median 99, high 2 are out of order",
        ),
        (
            good.replacen("\"role\": \"peer\"", "\"role\": \"rival\"", 1),
            "figures[0].systems[1].role: \"rival\"",
        ),
        (
            good.replacen("\"id\": \"start\"", "\"id\": \"monitor\"", 1),
            "figures[1].id: \"monitor\" appears twice",
        ),
        (
            good.replacen("\"id\": \"start\"", "\"id\": \"a/b\"", 1),
            "figures[1].id: \"a/b\"",
        ),
    ];
    for (text, want) in &cases {
        assert_ne!(text, &good, "the case for {want:?} changed nothing");
        let err = Results::from_json(text).unwrap_err().to_string();
        assert!(err.starts_with(want), "{want:?}: got {err:?}");
    }

    // Through generate: the file named, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    known().write_to(&paths.results).unwrap();
    std::fs::write(paths.results.join("broken.json"), "{ not json").unwrap();
    std::fs::create_dir_all(paths.page.parent().unwrap()).unwrap();
    std::fs::write(&paths.page, page("old")).unwrap();
    let err = report::generate(&paths).unwrap_err().to_string();
    assert!(err.contains("broken.json: not valid JSON"), "{err}");
    assert_eq!(std::fs::read_to_string(&paths.page).unwrap(), page("old"));

    let empty = tempfile::tempdir().unwrap();
    let err = report::read_results(empty.path()).unwrap_err().to_string();
    assert!(
        err.contains("no results") && err.contains("make bench"),
        "{err}"
    );
}

#[test]
fn generate_writes_each_chart_and_the_section_and_drops_stale_charts() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    known().write_to(&paths.results).unwrap();
    std::fs::create_dir_all(&paths.charts).unwrap();
    std::fs::create_dir_all(paths.page.parent().unwrap()).unwrap();
    std::fs::write(paths.charts.join("vip-gone.svg"), "<svg/>").unwrap();
    std::fs::write(&paths.page, page("old")).unwrap();
    let written = report::generate(&paths).unwrap();
    assert_eq!(written.benches, ["vip"]);
    let mut charts: Vec<String> = std::fs::read_dir(&paths.charts)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    charts.sort();
    assert_eq!(charts, ["vip-monitor.svg", "vip-start.svg"]);
    let text = std::fs::read_to_string(&paths.page).unwrap();
    assert!(text.contains("](bench/vip-monitor.svg)"), "{text}");
    assert!(text.starts_with("# Benchmarks\n\nHand-written intro.\n\n"));
    assert!(text.ends_with("## Later\n\nProse after.\n"));
}

#[test]
fn the_bench_list_is_cargo_tomls() {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let names = report::bench_names(&toml);
    for name in ["vip", "startup", "stack"] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
    assert!(!names.iter().any(|n| n == "integration"), "{names:?}");
}

#[test]
fn docs_benchmarks_md_has_one_generated_section() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/benchmarks.md"))
        .unwrap();
    report::replace_generated(&text, "").expect("docs/benchmarks.md's markers");
}
