//! hb-monitor's controller under deterministic simulation: 2 to 4 nodes, their resources,
//! a lossy network and a fence device, all driven by one seed, with faults injected and the
//! cluster's rules checked after every event (see `world.rs`).
//!
//! `cargo test --test simulate` runs a short round; `make simulate` runs at least a million
//! controller steps across many seeds; `make simulate SEED=n` replays one seed with its
//! trace. A failing seed is shrunk to the fewest faults that still break a rule, and that
//! trace is printed. The deliberately broken controllers ([`Mutation`]) must each be caught
//! within a bounded number of seeds, or the run fails: a simulator that finds nothing proves
//! nothing.

mod rng;
mod world;

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ferroha::hb::controller::Mutation;

use rng::Rng;
use world::{Profile, Report, Scheduled, World};

/// Seeds tried per broken controller before the simulator counts as blind to it.
const MUTATION_SEEDS: u64 = 300;

struct Options {
    steps: u64,
    first_seed: u64,
    seed: Option<u64>,
    mutations: bool,
    threads: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        steps: 1_000_000,
        first_seed: 0,
        seed: None,
        mutations: true,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{what} needs a number"))?;
            v.parse().map_err(|_| format!("{what}: not a number: {v}"))
        };
        match arg.as_str() {
            "--steps" => o.steps = number("--steps")?,
            "--first-seed" => o.first_seed = number("--first-seed")?,
            "--seed" => o.seed = Some(number("--seed")?),
            "--threads" => o.threads = number("--threads")?.max(1) as usize,
            "--no-mutations" => o.mutations = false,
            // What cargo test passes to every test target (`make test` adds these).
            "--list" => {
                println!("simulate: test");
                std::process::exit(0);
            }
            _ => {}
        }
    }
    if let Ok(seed) = std::env::var("SEED")
        && !seed.is_empty()
    {
        o.seed = Some(
            seed.parse()
                .map_err(|_| format!("SEED: not a number: {seed}"))?,
        );
    }
    Ok(o)
}

/// The profile and fault schedule of a seed.
fn scenario(seed: u64, mutation: Option<Mutation>) -> (Profile, Vec<Scheduled>) {
    let mut root = Rng::new(seed);
    let mut schedule = root.fork();
    let profile = Profile::draw(&mut schedule, mutation);
    let faults = world::draw_faults(&mut schedule, &profile);
    (profile, faults)
}

fn run(seed: u64, p: &Profile, faults: &[Scheduled], tracing: bool) -> Report {
    let world = World::new(seed, p.clone(), faults.to_vec(), tracing);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run())) {
        Ok(report) => report,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Report {
                violation: Some(world::Violation {
                    at: Default::default(),
                    rule: "no panic",
                    detail: what,
                }),
                ..Report::default()
            }
        }
    }
}

/// The fewest faults of `faults` that still break the same rule: each fault is dropped in
/// turn and left out when the rule still breaks without it.
fn shrink(seed: u64, p: &Profile, faults: &[Scheduled], rule: &str) -> Vec<Scheduled> {
    let mut kept = faults.to_vec();
    let mut i = kept.len();
    while i > 0 {
        i -= 1;
        let mut fewer = kept.clone();
        fewer.remove(i);
        let report = run(seed, p, &fewer, false);
        if report.violation.is_some_and(|v| v.rule == rule) {
            kept = fewer;
        }
    }
    kept
}

/// Shrinks a failing seed and prints its trace. Returns the rule broken.
fn explain(seed: u64, mutation: Option<Mutation>, print: bool) -> Option<String> {
    let (p, faults) = scenario(seed, mutation);
    let first = run(seed, &p, &faults, false);
    let violation = first.violation?;
    let kept = shrink(seed, &p, &faults, violation.rule);
    let report = run(seed, &p, &kept, true);
    if print {
        println!("seed {seed}: {p:?}");
        println!(
            "faults ({} of {} needed to break the rule):",
            kept.len(),
            faults.len()
        );
        for f in &kept {
            println!("  at {:.4} s: {:?}", f.at.as_secs_f64(), f.fault);
        }
        let trace = &report.trace;
        let from = trace.len().saturating_sub(300);
        if from > 0 {
            println!("... ({from} earlier lines)");
        }
        for line in &trace[from..] {
            println!("{line}");
        }
    }
    Some(report.violation.unwrap_or(violation).rule.to_string())
}

/// Runs seeds from `first` until `steps` controller steps are done (or a violation).
fn sweep(o: &Options) -> (u64, u64, Option<(u64, world::Violation)>, f64) {
    let next = AtomicU64::new(o.first_seed);
    let steps = AtomicU64::new(0);
    let seeds = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<(u64, world::Violation)>> = Mutex::new(None);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..o.threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) && steps.load(Ordering::Relaxed) < o.steps {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    let (p, faults) = scenario(seed, None);
                    let report = run(seed, &p, &faults, false);
                    steps.fetch_add(report.steps, Ordering::Relaxed);
                    seeds.fetch_add(1, Ordering::Relaxed);
                    if let Some(v) = report.violation {
                        let mut f = failure.lock().unwrap();
                        if f.as_ref().is_none_or(|(s, _)| seed < *s) {
                            *f = Some((seed, v));
                        }
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    (
        steps.into_inner(),
        seeds.into_inner(),
        failure.into_inner().unwrap(),
        secs,
    )
}

/// Each broken controller must be caught; returns the ones that were not.
fn mutations(o: &Options) -> Vec<Mutation> {
    let all = [
        Mutation::TakeoverWithoutFencing,
        Mutation::AcceptFencedPackets,
        Mutation::FailbackDuringStop,
    ];
    let mut missed = Vec::new();
    for mutation in all {
        let t0 = Instant::now();
        let next = AtomicU64::new(0);
        let found: Mutex<Option<(u64, String, u64)>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..o.threads {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed >= MUTATION_SEEDS {
                            return;
                        }
                        let (p, faults) = scenario(seed, Some(mutation));
                        let report = run(seed, &p, &faults, false);
                        if let Some(v) = report.violation {
                            let mut f = found.lock().unwrap();
                            if f.as_ref().is_none_or(|(s, _, _)| seed < *s) {
                                *f =
                                    Some((seed, format!("{}: {}", v.rule, v.detail), report.steps));
                            }
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        match found.into_inner().unwrap() {
            Some((seed, what, _)) => println!(
                "broken controller {mutation:?}: caught by seed {seed} in {:.2} s ({what})",
                t0.elapsed().as_secs_f64()
            ),
            None => {
                println!("broken controller {mutation:?}: NOT caught in {MUTATION_SEEDS} seeds");
                missed.push(mutation);
            }
        }
    }
    missed
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = o.seed {
        return match explain(seed, None, true) {
            Some(rule) => {
                println!("seed {seed}: FAILED ({rule})");
                ExitCode::FAILURE
            }
            None => {
                let (p, faults) = scenario(seed, None);
                let report = run(seed, &p, &faults, true);
                for line in &report.trace {
                    println!("{line}");
                }
                println!(
                    "seed {seed}: every rule held ({} steps, {} faults)",
                    report.steps,
                    faults.len()
                );
                ExitCode::SUCCESS
            }
        };
    }
    let (steps, seeds, failure, secs) = sweep(&o);
    println!(
        "simulate: {steps} steps over {seeds} seeds (from {}) in {secs:.1} s on {} threads: {:.0} steps/s, {:.1} seeds/s",
        o.first_seed,
        o.threads,
        steps as f64 / secs,
        seeds as f64 / secs
    );
    if let Some((seed, v)) = failure {
        println!(
            "seed {seed} broke \"{}\" at {:.3} s: {}",
            v.rule,
            v.at.as_secs_f64(),
            v.detail
        );
        explain(seed, None, true);
        println!("replay: make simulate SEED={seed}");
        return ExitCode::FAILURE;
    }
    if o.mutations && !mutations(&o).is_empty() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
