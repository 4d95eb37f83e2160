//! `make bench-report`: the charts (docs/bench/*.svg) and the generated section of
//! docs/benchmarks.md from the results the benches wrote (target/bench/*.json, or
//! `$BENCH_RESULTS_DIR`). All of it is `ferroha::report::generate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferroha::report::{self, Paths};

fn main() -> ExitCode {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo_toml = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap_or_default();
    let paths = Paths {
        results: std::env::var_os("BENCH_RESULTS_DIR")
            .map_or_else(|| repo.join("target/bench"), PathBuf::from),
        page: repo.join("docs/benchmarks.md"),
        charts: repo.join("docs/bench"),
        benches: report::bench_names(&cargo_toml),
    };
    match report::generate(&paths) {
        Ok(written) => {
            println!(
                "docs/benchmarks.md: benches {}; {} charts in docs/bench",
                written.benches.join(", "),
                written.charts.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}
