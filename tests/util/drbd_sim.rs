//! The DRBD simulator (`examples/drbd-sim.rs`) set up for a test: `drbdadm`, `drbdsetup` and
//! `drbd-sim-ctl` symlinks to the built example, a shared state directory, a configuration
//! file, and drbd-agent runs as node `a` or `b`.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::agent::{AgentCmd, AgentRun, world_readable_tempdir};

/// The built simulator, built once per test process (`cargo test --test …` does not build
/// examples).
fn sim_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| super::agent::built_example("drbd-sim"))
}

/// The DRBD version the simulator speaks (see its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrbdVersion {
    /// DRBD 8.4, as recorded in `tests/fixtures/drbd/8.4`.
    V84,
    /// DRBD 9.2, as recorded in `tests/fixtures/drbd/9`.
    V9,
}

impl DrbdVersion {
    /// `drbd-sim-ctl version`'s argument, also the fixture directory under
    /// `tests/fixtures/drbd`.
    pub fn name(self) -> &'static str {
        match self {
            DrbdVersion::V84 => "8.4",
            DrbdVersion::V9 => "9",
        }
    }
}

/// One simulated two-node DRBD resource `r0`.
pub struct DrbdSim {
    dir: tempfile::TempDir,
    version: DrbdVersion,
}

/// What a simulator command returned.
pub struct SimRun {
    /// Exit code.
    pub rc: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl DrbdSim {
    /// A fresh DRBD 8.4 resource: both nodes down, both disks Inconsistent, link up.
    /// Everything in it is readable by `nobody` (ocf-tester).
    pub fn new() -> DrbdSim {
        DrbdSim::with_version(DrbdVersion::V84)
    }

    /// A fresh resource, as [`DrbdSim::new`], speaking DRBD `version`.
    pub fn with_version(version: DrbdVersion) -> DrbdSim {
        let dir = world_readable_tempdir();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["drbdadm", "drbdsetup", "drbd-sim-ctl"] {
            symlink(sim_bin(), bin.join(name)).unwrap();
        }
        std::fs::write(dir.path().join("drbd.conf"), "# simulated\n").unwrap();
        let sim = DrbdSim { dir, version };
        sim.ctl(&["version", version.name()]);
        sim
    }

    /// The DRBD version it speaks.
    pub fn version(&self) -> DrbdVersion {
        self.version
    }

    /// The directory (state, `bin/`, `drbd.conf`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A simulator command path (`drbdadm`, `drbdsetup`, `drbd-sim-ctl`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.path().join("bin").join(name)
    }

    /// A `drbdadm` script for Heartbeat's `drbddisk` over the simulator: drbddisk's status
    /// asks `drbdadm role`, which the simulator lacks (its `drbdsetup events2` resource line
    /// carries the role); everything else goes to the simulator's drbdadm, run under its own
    /// path, which is how it finds its state.
    pub fn drbdadm_for_drbddisk(&self) -> String {
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = role ]; then\n\
             \x20 {setup} events2 --now \"$2\" | sed -n 's/^exists resource .*role:\\([A-Za-z]*\\).*/\\1/p'\n\
             \x20 exit 0\n\
             fi\n\
             exec {adm} \"$@\"\n",
            setup = self.bin("drbdsetup").display(),
            adm = self.bin("drbdadm").display(),
        )
    }

    /// Maps a hostname to simulated node `a` or `b`, for agents run by a cluster manager
    /// that scrubs the environment (see the simulator's header).
    pub fn map_host(&self, hostname: &str, node: &str) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("nodes"))
            .unwrap();
        writeln!(f, "{hostname}={node}").unwrap();
    }

    /// The configuration file.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("drbd.conf")
    }

    /// Runs a simulator command as `node`.
    pub fn run(&self, node: &str, name: &str, args: &[&str]) -> SimRun {
        let out = Command::new(self.bin(name))
            .args(args)
            .env("DRBD_SIM_DIR", self.path())
            .env("DRBD_SIM_NODE", node)
            .output()
            .unwrap();
        SimRun {
            rc: out.status.code().expect("killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `drbdsetup events2 --now r0` on `node`.
    pub fn events2(&self, node: &str) -> String {
        let r = self.run(node, "drbdsetup", &["events2", "--now", "r0"]);
        assert_eq!(r.rc, 0, "{}", r.stderr);
        r.stdout
    }

    /// `drbdadm -c <conf> <args…>` on `node`.
    pub fn drbdadm(&self, node: &str, args: &[&str]) -> SimRun {
        let conf = self.conf();
        let mut all = vec!["-c", conf.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run(node, "drbdadm", &all)
    }

    /// A control verb (see the simulator's header), which must succeed.
    pub fn ctl(&self, args: &[&str]) {
        let r = self.run("a", "drbd-sim-ctl", args);
        assert_eq!(r.rc, 0, "drbd-sim-ctl {args:?}: {}", r.stderr);
    }

    /// drbd-agent as a primitive on `node`.
    pub fn agent(&self, node: &str) -> AgentCmd<'static> {
        AgentCmd::new("drbd")
            .param("drbd_resource", "r0")
            .param("drbdadm", self.bin("drbdadm").to_str().unwrap())
            .param("drbdsetup", self.bin("drbdsetup").to_str().unwrap())
            .param("drbdconf", self.conf().to_str().unwrap())
            .env("DRBD_SIM_DIR", self.path().to_str().unwrap())
            .env("DRBD_SIM_NODE", node)
            .env("OCF_RESOURCE_INSTANCE", "drbd")
    }

    /// drbd-agent as one instance of a promotable clone of two on `node`.
    pub fn clone_agent(&self, node: &str) -> AgentCmd<'static> {
        self.agent(node)
            .env("OCF_RESKEY_CRM_meta_promotable", "true")
            .env("OCF_RESKEY_CRM_meta_clone_max", "2")
    }

    /// Runs `action` of the clone instance on `node`.
    pub fn clone_run(&self, node: &str, action: &str) -> AgentRun {
        self.clone_agent(node).run(action)
    }
}
