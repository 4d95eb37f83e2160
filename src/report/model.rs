//! The results of one bench run as data: what ran, on which machine, and per figure each
//! system's median and spread (with the samples when the bench kept them).
//!
//! The JSON is written and read by hand through `serde_json::Value` rather than derived:
//! the crate has no `serde` derive dependency, and reading by hand lets every error name the
//! field it is about (`figures[1].systems[0].median: expected a number`).

use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value, json};

/// The version of the JSON layout; a reader refuses any other.
pub const FORMAT: u64 = 1;

/// One bench run.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    /// The bench's name, as in `cargo bench --bench <name>` (`vip`, `startup`).
    pub bench: String,
    /// The command that produced it, environment included (`BENCH_RUNS=50 cargo bench ...`).
    pub command: String,
    pub machine: Machine,
    pub figures: Vec<Figure>,
}

/// The machine a run was made on, and when, and from which commit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machine {
    /// `/proc/cpuinfo`'s model name.
    pub cpu: String,
    /// CPUs available to the run.
    pub cores: u32,
    /// The kernel's release (`uname -r`).
    pub kernel: String,
    /// `/etc/debian_version`, or "" off Debian.
    pub debian: String,
    /// When the run ended, UTC, as `2026-12-08 04:31 UTC`.
    pub date: String,
    /// `git rev-parse --short HEAD`, `-dirty` appended when the tree had changes.
    pub git_rev: String,
    /// The 1, 5 and 15 minute load averages when the run ended (`2.10 1.95 1.40`): the
    /// development machine is shared, and a loaded one slows every system alike but not
    /// by the same amount. "" when not known.
    pub load: String,
}

/// One figure: a measured quantity, each system's value of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Unique within a bench, and the chart's file name (`docs/bench/<bench>-<id>.svg`):
    /// lower-case letters, digits and `-` only.
    pub id: String,
    /// What is measured, for the chart's title (`vip monitor, VIP up`).
    pub label: String,
    /// The unit of every value (`ms`, `us`).
    pub unit: String,
    /// ferroha's and its peers', in the order to draw them.
    pub systems: Vec<Series>,
}

/// Whose a series is: ferroha's, or what ferroha is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Ferroha,
    Peer,
}

/// What `low` and `high` of a series are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    MinMax,
    P10P90,
}

impl Spread {
    /// The word in the JSON and under the charts.
    pub fn word(self) -> &'static str {
        match self {
            Spread::MinMax => "min-max",
            Spread::P10P90 => "p10-p90",
        }
    }
}

/// One system's values of a figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The system as the chart names it (`vip-agent`, `IPaddr2`).
    pub name: String,
    pub role: Role,
    pub median: f64,
    pub spread: Spread,
    pub low: f64,
    pub high: f64,
    /// Every sample, when the bench kept them (empty otherwise).
    pub samples: Vec<f64>,
}

/// Fewer samples than this make p10 and p90 the second-smallest and second-largest sample
/// at best; below it the spread is min-max.
const PERCENTILE_SAMPLES: usize = 10;

impl Series {
    /// The median and spread of `samples` (p10-p90 from ten samples on, min-max below),
    /// the samples kept. None when there are none or one is not finite.
    pub fn from_samples(name: &str, role: Role, samples: &[f64]) -> Option<Series> {
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let (spread, low, high) = if sorted.len() >= PERCENTILE_SAMPLES {
            (Spread::P10P90, at(0.1), at(0.9))
        } else {
            (Spread::MinMax, sorted[0], sorted[sorted.len() - 1])
        };
        Some(Series {
            name: name.to_string(),
            role,
            median: at(0.5),
            spread,
            low,
            high,
            samples: samples.to_vec(),
        })
    }
}

/// Why a results file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("{at}: {what}")]
    Field { at: String, what: String },
}

fn field_error(at: &str, what: impl Into<String>) -> ModelError {
    ModelError::Field {
        at: at.to_string(),
        what: what.into(),
    }
}

/// Whether `id` can be a figure's id: it becomes part of a file name.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Results {
    /// The JSON document, pretty-printed.
    pub fn to_json(&self) -> String {
        let figures: Vec<Value> = self.figures.iter().map(Figure::to_value).collect();
        let doc = json!({
            "format": FORMAT,
            "bench": self.bench,
            "command": self.command,
            "machine": {
                "cpu": self.machine.cpu,
                "cores": self.machine.cores,
                "kernel": self.machine.kernel,
                "debian": self.machine.debian,
                "date": self.machine.date,
                "git_rev": self.machine.git_rev,
                "load": self.machine.load,
            },
            "figures": figures,
        });
        let mut text = serde_json::to_string_pretty(&doc).expect("a Value always serializes");
        text.push('\n');
        text
    }

    /// Reads a document that `to_json` wrote; errors name the field.
    pub fn from_json(text: &str) -> Result<Results, ModelError> {
        let doc: Value = serde_json::from_str(text)?;
        let top = Fields::of(&doc, "the document")?;
        let format = top.u64("format")?;
        if format != FORMAT {
            return Err(field_error(
                "format",
                format!("is {format}; this reader knows format {FORMAT}"),
            ));
        }
        let bench = top.string("bench")?;
        if !valid_id(&bench) {
            return Err(field_error(
                "bench",
                format!("{bench:?}: only a-z, 0-9 and - (it names files)"),
            ));
        }
        let m = Fields::of(top.get("machine")?, "machine")?;
        let machine = Machine {
            cpu: m.string("cpu")?,
            cores: u32::try_from(m.u64("cores")?)
                .map_err(|_| field_error("machine.cores", "out of range"))?,
            kernel: m.string("kernel")?,
            debian: m.string("debian")?,
            date: m.string("date")?,
            git_rev: m.string("git_rev")?,
            // Absent from the first files written.
            load: match m.map.get("load") {
                None => String::new(),
                Some(_) => m.string("load")?,
            },
        };
        let figures = top
            .array("figures")?
            .iter()
            .enumerate()
            .map(|(i, f)| Figure::from_value(f, &format!("figures[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, f) in figures.iter().enumerate() {
            if figures[..i].iter().any(|g| g.id == f.id) {
                return Err(field_error(
                    &format!("figures[{i}].id"),
                    format!("{:?} appears twice", f.id),
                ));
            }
        }
        Ok(Results {
            bench,
            command: top.string("command")?,
            machine,
            figures,
        })
    }

    /// Writes `<dir>/<bench>.json`, creating `dir`; the path written.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.bench));
        std::fs::write(&path, self.to_json())?;
        Ok(path)
    }
}

impl Figure {
    /// ferroha's series, the first if several are.
    pub fn ferroha(&self) -> Option<&Series> {
        self.systems.iter().find(|s| s.role == Role::Ferroha)
    }

    fn to_value(&self) -> Value {
        let systems: Vec<Value> = self
            .systems
            .iter()
            .map(|s| {
                let mut v = json!({
                    "name": s.name,
                    "role": match s.role { Role::Ferroha => "ferroha", Role::Peer => "peer" },
                    "median": s.median,
                    "spread": s.spread.word(),
                    "low": s.low,
                    "high": s.high,
                });
                if !s.samples.is_empty() {
                    v["samples"] = json!(s.samples);
                }
                v
            })
            .collect();
        json!({ "id": self.id, "label": self.label, "unit": self.unit, "systems": systems })
    }

    fn from_value(v: &Value, at: &str) -> Result<Figure, ModelError> {
        let f = Fields::of(v, at)?;
        let id = f.string("id")?;
        if !valid_id(&id) {
            return Err(field_error(
                &format!("{at}.id"),
                format!("{id:?}: only a-z, 0-9 and - (it names a file)"),
            ));
        }
        let systems = f
            .array("systems")?
            .iter()
            .enumerate()
            .map(|(i, s)| series_from_value(s, &format!("{at}.systems[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if systems.is_empty() {
            return Err(field_error(&format!("{at}.systems"), "is empty"));
        }
        Ok(Figure {
            id,
            label: f.string("label")?,
            unit: f.string("unit")?,
            systems,
        })
    }
}

fn series_from_value(v: &Value, at: &str) -> Result<Series, ModelError> {
    let s = Fields::of(v, at)?;
    let role = match s.string("role")?.as_str() {
        "ferroha" => Role::Ferroha,
        "peer" => Role::Peer,
        other => {
            return Err(field_error(
                &format!("{at}.role"),
                format!("{other:?}: expected \"ferroha\" or \"peer\""),
            ));
        }
    };
    let spread = match s.string("spread")?.as_str() {
        "min-max" => Spread::MinMax,
        "p10-p90" => Spread::P10P90,
        other => {
            return Err(field_error(
                &format!("{at}.spread"),
                format!("{other:?}: expected \"min-max\" or \"p10-p90\""),
            ));
        }
    };
    let (median, low, high) = (s.number("median")?, s.number("low")?, s.number("high")?);
    if !(low <= median && median <= high) {
        return Err(field_error(
            at,
            format!("low {low}, median {median}, high {high} are out of order"),
        ));
    }
    let samples = match s.map.get("samples") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| field_error(&format!("{at}.samples[{i}]"), "expected a number"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(field_error(
                &format!("{at}.samples"),
                "expected an array of numbers",
            ));
        }
    };
    Ok(Series {
        name: s.string("name")?,
        role,
        median,
        spread,
        low,
        high,
        samples,
    })
}

/// An object's fields, read with the path of the object for errors.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    at: String,
}

impl<'a> Fields<'a> {
    fn of(v: &'a Value, at: &str) -> Result<Fields<'a>, ModelError> {
        match v {
            Value::Object(map) => Ok(Fields {
                map,
                at: at.to_string(),
            }),
            _ => Err(field_error(at, "expected an object")),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.at == "the document" {
            key.to_string()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    fn get(&self, key: &str) -> Result<&'a Value, ModelError> {
        self.map
            .get(key)
            .ok_or_else(|| field_error(&self.path(key), "missing"))
    }

    fn string(&self, key: &str) -> Result<String, ModelError> {
        self.get(key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| field_error(&self.path(key), "expected a string"))
    }

    fn u64(&self, key: &str) -> Result<u64, ModelError> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| field_error(&self.path(key), "expected a whole number"))
    }

    fn number(&self, key: &str) -> Result<f64, ModelError> {
        self.get(key)?
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| field_error(&self.path(key), "expected a number"))
    }

    fn array(&self, key: &str) -> Result<&'a Vec<Value>, ModelError> {
        self.get(key)?
            .as_array()
            .ok_or_else(|| field_error(&self.path(key), "expected an array"))
    }
}

impl Machine {
    /// This machine, now, and the commit of the repository at `repo` (or "unknown").
    pub fn probe(repo: &Path) -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
        Machine {
            cpu,
            cores,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            debian: read("/etc/debian_version").trim().to_string(),
            date: utc_minute(std::time::SystemTime::now()),
            git_rev: git_rev(repo),
            load: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn git_rev(repo: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev}-dirty") } else { rev }
        }
        _ => "unknown".to_string(),
    }
}

/// `t` as `YYYY-MM-DD HH:MM UTC` (the civil-from-days algorithm of Howard Hinnant's
/// `chrono`-compatible date library, for a date without a date crate).
pub fn utc_minute(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
