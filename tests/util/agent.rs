//! Running a built agent binary as Pacemaker or an operator would: a scrubbed environment,
//! parameters as `OCF_RESKEY_*`, and the exit code, stdout and the exit reason collected.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::host::Host;

/// The OCF types of the agents built so far (the entries of `agents/`).
pub const AGENT_TYPES: &[&str] = &["drbd", "fs", "mysql", "vip"];

/// The built binary of an agent (`vip` → `vip-agent`).
pub fn agent_bin(type_name: &str) -> PathBuf {
    match type_name {
        "vip" | "fs" | "drbd" | "mysql" => built_bin(&format!("{type_name}-agent")),
        other => panic!("no agent binary for type {other}"),
    }
}

/// A binary of this package: where cargo says it built it for tests and benches
/// (`CARGO_BIN_EXE_*`), else (the demo, an example) next to the running program's profile
/// directory (`target/<triple>/<profile>/examples/demo` → `target/<triple>/<profile>/<name>`), or in
/// `FERROHA_BIN_DIR` when set.
pub fn built_bin(name: &str) -> PathBuf {
    let from_cargo = match name {
        "vip-agent" => option_env!("CARGO_BIN_EXE_vip-agent"),
        "fs-agent" => option_env!("CARGO_BIN_EXE_fs-agent"),
        "drbd-agent" => option_env!("CARGO_BIN_EXE_drbd-agent"),
        "mysql-agent" => option_env!("CARGO_BIN_EXE_mysql-agent"),
        "hb-monitor" => option_env!("CARGO_BIN_EXE_hb-monitor"),
        _ => None,
    };
    from_cargo.map(PathBuf::from).unwrap_or_else(|| {
        // `make demo` says where its release binaries are.
        if let Some(dir) = std::env::var_os("FERROHA_BIN_DIR") {
            return PathBuf::from(dir).join(name);
        }
        let exe = std::env::current_exe().expect("current_exe");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<triple>/<profile>/<dir>/<program>");
        let bin = profile.join(name);
        assert!(bin.exists(), "{} is not built (make build)", bin.display());
        bin
    })
}

/// The example `name` (a test tool: the DRBD simulator, the flooder), built for the profile
/// of the running tests (`cargo test --test …` does not build examples).
pub fn built_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<triple>/<profile>/deps/<test binary>, or the release directory `make demo` names
    // (.cargo/config.toml names the target, hence the triple).
    let profile_dir = match std::env::var_os("FERROHA_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => exe.parent().unwrap().parent().unwrap().to_path_buf(),
    };
    let release = std::env::var_os("FERROHA_BIN_DIR").is_some() || !cfg!(debug_assertions);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "--quiet", "--example", name, "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(profile_dir.parent().unwrap().parent().unwrap());
    if release {
        c.arg("--release");
    }
    let out = c.output().expect("cargo build --example");
    assert!(
        out.status.success(),
        "cargo build --example {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir.join("examples").join(name);
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

/// What one action returned.
#[derive(Debug)]
pub struct AgentRun {
    /// Exit code.
    pub rc: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl AgentRun {
    fn from_output(what: &str, out: Output) -> AgentRun {
        let run = AgentRun {
            rc: out
                .status
                .code()
                .unwrap_or_else(|| panic!("{what}: killed by a signal: {out:?}")),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "{what} panicked:\n{}",
            run.stderr
        );
        run
    }

    /// Asserts the exit code, showing the agent's output when it differs.
    pub fn rc(&self, expected: i32) -> &AgentRun {
        assert_eq!(
            self.rc, expected,
            "unexpected exit code; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }

    /// The `ocf-exit-reason:` lines.
    pub fn reasons(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
            .collect()
    }

    /// Asserts exactly one exit reason containing `text`.
    pub fn reason_contains(&self, text: &str) -> &AgentRun {
        let reasons = self.reasons();
        assert_eq!(
            reasons.len(),
            1,
            "expected one exit reason, stderr:\n{}",
            self.stderr
        );
        assert!(
            reasons[0].contains(text),
            "reason {:?} does not contain {text:?}",
            reasons[0]
        );
        self
    }
}

/// An agent invocation being built.
pub struct AgentCmd<'h> {
    bin: PathBuf,
    host: Option<&'h Host>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// A program (and its arguments) the agent runs under: `strace ...`, `nsenter ...`.
    wrapper: Vec<String>,
}

impl<'h> AgentCmd<'h> {
    /// The agent of `type_name`, run in the test's own namespaces.
    pub fn new(type_name: &str) -> AgentCmd<'h> {
        AgentCmd {
            bin: agent_bin(type_name),
            host: None,
            env: vec![],
            args: vec![],
            wrapper: vec![],
        }
    }

    /// The reference agent `<provider>/<type>` from resource-agents or drbd-utils
    /// (`heartbeat/IPaddr2`), run the same way, with the environment its shell library needs.
    /// None when it is not installed on this machine.
    pub fn original(agent: &str) -> Option<AgentCmd<'h>> {
        let bin = Path::new("/usr/lib/ocf/resource.d").join(agent);
        bin.exists().then(|| AgentCmd {
            bin,
            host: None,
            env: vec![
                ("OCF_ROOT".into(), "/usr/lib/ocf".into()),
                ("OCF_RA_VERSION_MAJOR".into(), "1".into()),
                ("OCF_RA_VERSION_MINOR".into(), "0".into()),
                ("OCF_RESOURCE_INSTANCE".into(), "original".into()),
            ],
            args: vec![],
            wrapper: vec![],
        })
    }

    /// Run inside `host`'s namespaces.
    pub fn on(mut self, host: &'h Host) -> AgentCmd<'h> {
        self.host = Some(host);
        self
    }

    /// `OCF_RESKEY_<name>=<value>`.
    pub fn param(mut self, name: &str, value: &str) -> AgentCmd<'h> {
        self.env
            .push((format!("OCF_RESKEY_{name}"), value.to_string()));
        self
    }

    /// Any environment variable.
    pub fn env(mut self, name: &str, value: &str) -> AgentCmd<'h> {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Extra command-line arguments after the action.
    pub fn args(mut self, args: &[&str]) -> AgentCmd<'h> {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Run the agent as the last arguments of `wrapper` (`["strace", "-f", ...]`), which
    /// must exec or wait for it and pass its exit code on.
    pub fn wrapped(mut self, wrapper: &[&str]) -> AgentCmd<'h> {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Runs `action` and collects the result.
    pub fn run(&self, action: &str) -> AgentRun {
        let (program, leading): (&Path, &[String]) = match self.wrapper.split_first() {
            Some((program, args)) => (Path::new(program), args),
            None => (&self.bin, &[]),
        };
        let mut cmd = match self.host {
            Some(h) => h.command(program),
            None => {
                let mut c = Command::new(program);
                c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
                c
            }
        };
        if !self.wrapper.is_empty() {
            cmd.args(leading).arg(&self.bin);
        }
        cmd.arg(action).args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let what = format!("{} {action}", self.bin.display());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
        AgentRun::from_output(&what, out)
    }
}

/// What [`AgentCmd::run_traced`] saw.
#[derive(Debug)]
pub struct Traced {
    /// The action's result.
    pub run: AgentRun,
    /// Processes (not threads) the agent forked.
    pub forks: usize,
    /// Programs it executed, itself not counted.
    pub execs: usize,
}

impl<'h> AgentCmd<'h> {
    /// Runs `action` under `strace -f` (as the benchmarks count forks) and counts the
    /// processes the agent and its children forked and the programs they executed.
    pub fn run_traced(self, action: &str) -> Traced {
        let trace = tempfile::NamedTempFile::new().unwrap();
        let trace_path = trace.path().display().to_string();
        let run = self
            .wrapped(&[
                "/usr/bin/strace",
                "-f",
                "-qq",
                "-e",
                "trace=clone,clone3,fork,vfork,execve,execveat",
                "-o",
                &trace_path,
            ])
            .run(action);
        let text = std::fs::read_to_string(trace.path()).unwrap();
        let calls = |names: &[&str]| {
            text.lines()
                .filter(|l| !l.contains("resumed>") && !l.contains("CLONE_THREAD"))
                .filter(|l| names.iter().any(|n| l.contains(&format!(" {n}("))))
                .count()
        };
        Traced {
            run,
            forks: calls(&["clone", "clone3", "fork", "vfork"]),
            // strace's exec of the agent itself.
            execs: calls(&["execve", "execveat"]).saturating_sub(1),
        }
    }
}

/// A temporary directory that the `nobody` user can traverse (ocf-tester and Pacemaker run
/// `meta-data` unprivileged).
pub fn world_readable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ferroha-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs `make install` into `destdir` with the test build's binaries (no release build).
pub fn make_install(destdir: &Path) {
    let bin_dir = agent_bin("vip").parent().unwrap().to_path_buf();
    let out = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-s", "-o", "build", "install"])
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("BIN_DIR={}", bin_dir.display()))
        .output()
        .expect("make");
    assert!(
        out.status.success(),
        "make install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
