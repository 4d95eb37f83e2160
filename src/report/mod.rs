//! The bench report: each bench's results as a JSON file (`model`), a chart per figure
//! (`chart`, drawn with `svg`) and the generated section of docs/benchmarks.md (`page`).
//!
//! The benches write `target/bench/<bench>.json` (benches/common); `make bench-report`
//! (examples/bench-report.rs) calls [`generate`], which reads them all, writes
//! `docs/bench/<bench>-<figure>.svg` and rewrites the page between its markers.

pub mod chart;
pub mod model;
pub mod page;
pub mod svg;

use std::path::{Path, PathBuf};

pub use chart::figure_svg;
pub use model::{Figure, Machine, ModelError, Results, Role, Series, Spread};
pub use page::{BEGIN, END, PageError, render_section, replace_generated};

/// Why the report could not be made; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Results { path: PathBuf, source: ModelError },
    #[error("{path}: {source}")]
    Page { path: PathBuf, source: PageError },
    #[error("no results (*.json) in {0}: run `make bench` or `cargo bench --bench <name>` first")]
    NoResults(PathBuf),
    #[error("{second} holds bench {bench:?}, as {first} does")]
    SameBench {
        bench: String,
        first: PathBuf,
        second: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every `*.json` of `dir`, parsed, in the order of their file names.
pub fn read_results(dir: &Path) -> Result<Vec<Results>, ReportError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ReportError::NoResults(dir.to_path_buf()));
    }
    let mut all: Vec<(PathBuf, Results)> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        let results = Results::from_json(&text).map_err(|source| ReportError::Results {
            path: path.clone(),
            source,
        })?;
        if let Some((first, _)) = all.iter().find(|(_, r)| r.bench == results.bench) {
            return Err(ReportError::SameBench {
                bench: results.bench,
                first: first.clone(),
                second: path,
            });
        }
        all.push((path, results));
    }
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// The names of the `[[bench]]` targets of a Cargo.toml: the benches a full report covers.
pub fn bench_names(cargo_toml: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bench = false;
    for line in cargo_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench
            && let Some(value) = line.strip_prefix("name").map(str::trim_start)
            && let Some(value) = value.strip_prefix('=')
        {
            names.push(value.trim().trim_matches('"').to_string());
        }
    }
    names
}

/// Where [`generate`] reads and writes.
pub struct Paths {
    /// The results files (`target/bench`).
    pub results: PathBuf,
    /// The page with the markers (`docs/benchmarks.md`).
    pub page: PathBuf,
    /// The charts' directory (`docs/bench`); its `*.svg` are the report's alone.
    pub charts: PathBuf,
    /// Every bench there is, for the page to name those it lacks.
    pub benches: Vec<String>,
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub struct Written {
    pub benches: Vec<String>,
    pub charts: Vec<PathBuf>,
}

/// Reads every results file, writes one chart per figure (removing charts of figures no
/// longer reported) and rewrites the page's generated section. Nothing is written when a
/// results file is bad or the page lacks its markers.
pub fn generate(paths: &Paths) -> Result<Written, ReportError> {
    let results = read_results(&paths.results)?;
    let page_text = std::fs::read_to_string(&paths.page).map_err(io_error(&paths.page))?;
    let page_dir = paths.page.parent().unwrap_or(Path::new(""));
    let charts_rel = paths
        .charts
        .strip_prefix(page_dir)
        .unwrap_or(&paths.charts)
        .display()
        .to_string();
    let section = render_section(&results, &paths.benches, &charts_rel);
    let new_page = replace_generated(&page_text, &section).map_err(|source| ReportError::Page {
        path: paths.page.clone(),
        source,
    })?;

    std::fs::create_dir_all(&paths.charts).map_err(io_error(&paths.charts))?;
    let mut written = Vec::new();
    for r in &results {
        for f in &r.figures {
            let path = paths.charts.join(page::chart_file(r, &f.id));
            std::fs::write(&path, figure_svg(r, f)).map_err(io_error(&path))?;
            written.push(path);
        }
    }
    for entry in std::fs::read_dir(&paths.charts).map_err(io_error(&paths.charts))? {
        let path = entry.map_err(io_error(&paths.charts))?.path();
        if path.extension().is_some_and(|x| x == "svg") && !written.contains(&path) {
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    std::fs::write(&paths.page, new_page).map_err(io_error(&paths.page))?;
    Ok(Written {
        benches: results.into_iter().map(|r| r.bench).collect(),
        charts: written,
    })
}
