//! The results file of a bench, for `make bench-report`: its figures from the samples the
//! bench took, written to `target/bench/<bench>.json`. Apart from the rest of `common` (no test
//! host needed), so that the benches with their own harness include it alone.

use std::time::Duration;

use ferroha::report::{Figure, Machine, Results, Role, Series};

/// One figure of the results file: each system's samples in `unit` (`s`, `ms` or `us`),
/// ferroha's and its peers' in the order given.
pub fn figure(id: &str, label: &str, unit: &str, systems: &[(&str, Role, &[Duration])]) -> Figure {
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e3,
        "us" => 1e6,
        other => panic!("unit {other:?}: s, ms or us"),
    };
    let values: Vec<(&str, Role, Vec<f64>)> = systems
        .iter()
        .map(|(name, role, times)| {
            let v = times.iter().map(|t| t.as_secs_f64() * scale).collect();
            (*name, *role, v)
        })
        .collect();
    let borrowed: Vec<(&str, Role, &[f64])> = values
        .iter()
        .map(|(name, role, v)| (*name, *role, v.as_slice()))
        .collect();
    figure_of_values(id, label, unit, &borrowed)
}

/// One figure from samples already in `unit`.
pub fn figure_of_values(
    id: &str,
    label: &str,
    unit: &str,
    systems: &[(&str, Role, &[f64])],
) -> Figure {
    Figure {
        id: id.to_string(),
        label: label.to_string(),
        unit: unit.to_string(),
        systems: systems
            .iter()
            .map(|(name, role, values)| {
                Series::from_samples(name, *role, values)
                    .unwrap_or_else(|| panic!("{id}: no samples of {name}"))
            })
            .collect(),
    }
}

/// Writes this bench's results to `$BENCH_RESULTS_DIR/<bench>.json` (default
/// `target/bench`), for `make bench-report`, and says where. The bench is this crate: each
/// bench compiles this module into itself.
pub fn save(figures: Vec<Figure>) {
    let bench = env!("CARGO_CRATE_NAME");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("BENCH_RESULTS_DIR")
        .map_or_else(|| repo.join("target/bench"), std::path::PathBuf::from);
    let results = Results {
        bench: bench.to_string(),
        command: command_line(bench),
        machine: Machine::probe(repo),
        figures,
    };
    match results.write_to(&dir) {
        Ok(path) => println!("\nresults: {}", path.display()),
        Err(e) => panic!("writing the results into {}: {e}", dir.display()),
    }
}

/// The command that reruns this bench: `cargo bench` with the `BENCH_*` settings it ran with.
fn command_line(bench: &str) -> String {
    let mut settings: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BENCH_") && k != "BENCH_RESULTS_DIR")
        .map(|(k, v)| {
            let plain = v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/,._-".contains(&b));
            if plain {
                format!("{k}={v} ")
            } else {
                format!("{k}='{v}' ")
            }
        })
        .collect();
    settings.sort();
    format!("{}cargo bench --locked --bench {bench}", settings.concat())
}
