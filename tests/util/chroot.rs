//! A clean Debian 12 root to install packages into (tests/deb.rs): debootstrap's minbase
//! bookworm plus a fixed package list, built once by `tests/deb/build-chroot.sh` and cached as
//! a tarball in `target/chroot-cache/` (keyed by the script, and so by the package list), then
//! unpacked afresh for every [`Chroot`], so each test starts clean and the cache is never
//! written to.
//!
//! A [`Chroot`] lives inside a test [`Host`] (fresh net, mount and UTS namespaces, hostname
//! set): its root is a tmpfs mounted in the host's mount namespace only, with `/proc`, a
//! minimal `/dev` (a tmpfs with the usual character devices; tests `mknod` what they need),
//! and tmpfs `/run` and `/tmp`; `/sys` is not mounted. Nothing of it is visible outside the
//! host, and it needs no unmounting: dropping the host SIGKILLs every process in its
//! namespaces (daemons a maintainer script may have started included), and the namespace
//! takes its mounts, the tree's memory with them, when its last process is gone. The same
//! happens if the test process dies without running destructors (see `host.rs`). What is
//! left is an empty temporary directory, removed on drop.
//!
//! Maintainer scripts run with `/usr/sbin/policy-rc.d` exiting 101 (the build leaves it in
//! the tree): invoke-rc.d and deb-systemd-invoke start no service. The network namespace has
//! only what the test adds (no route out), so apt installs only from local files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::cache;
use super::host::Host;

/// Default time limit of [`Chroot::sh`] and [`Chroot::outside`].
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// How [`Chroot::new`] mounts and fills the root (`$ROOT`, `$TARBALL`), in the host.
const SETUP: &str = r#"
set -eu
mount -t tmpfs -o mode=0755 ferroha-chroot "$ROOT"
zstd -dc "$TARBALL" | tar -C "$ROOT" --numeric-owner --xattrs -xpf -
mount -t proc proc "$ROOT/proc"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$ROOT/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name major minor <<EOF
$node
EOF
    mknod -m 0666 "$ROOT/dev/$name" c "$major" "$minor"
done
mkdir "$ROOT/dev/pts" "$ROOT/dev/shm"
ln -s /proc/self/fd "$ROOT/dev/fd"
ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$ROOT/run"
mkdir "$ROOT/run/lock"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/tmp"
"#;

/// The cached root tarball: built on first use (as root, with network), then reused.
/// Panics with the script's output when the build fails.
pub fn tarball() -> &'static Path {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| {
        let path = cache::build(
            "tests/deb/build-chroot.sh",
            "target/chroot-cache",
            &[],
            "debootstrap zstd",
        );
        assert!(
            path.is_file(),
            "build-chroot.sh printed {path:?}, not a file"
        );
        path
    })
}

/// What a script returned.
#[derive(Debug, Clone)]
pub struct Exec {
    /// Exit code (137 when the time limit killed it).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Exec {
    /// Panics with the script, exit code and output unless it exited 0; returns stdout.
    pub fn ok(self, what: &str) -> String {
        assert_eq!(
            self.code, 0,
            "{what}: exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self.stdout
    }
}

/// A fresh copy of the cached root in its own [`Host`]; see the module docs.
pub struct Chroot {
    // Dropped first: its namespaces take the mounts with them, then the mount point goes.
    host: Host,
    dir: tempfile::TempDir,
}

impl Chroot {
    /// Unpacks the cached root (building it first if needed) inside a new host whose hostname
    /// is `hostname`.
    pub fn new(hostname: &str) -> Chroot {
        let tarball = tarball();
        let host = Host::new(hostname);
        let dir = tempfile::Builder::new()
            .prefix("ferroha-chroot-")
            .tempdir()
            .expect("temp dir for a chroot");
        let chroot = Chroot { host, dir };
        chroot
            .run_outside(SETUP, &[("TARBALL", tarball.as_os_str())], TIMEOUT)
            .ok("unpacking the chroot");
        chroot
    }

    /// The host the chroot lives in (its network namespace is the chroot's).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The root directory, as the host sees it (empty from the test process's view).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where `path` of the chroot (absolute) is, for the test process's own file calls: the
    /// host anchor's view of the filesystem, `/proc/<anchor>/root/<root>/<path>`.
    pub fn path(&self, path: &str) -> PathBuf {
        let inside = path
            .strip_prefix('/')
            .expect("an absolute path in the chroot");
        Path::new(&format!("/proc/{}/root", self.host.pid()))
            .join(self.root().strip_prefix("/").expect("an absolute root"))
            .join(inside)
    }

    /// Runs `script` with `/bin/sh -c` inside the chroot, cwd `/`, killed after `timeout`.
    /// The environment is `PATH`, `LC_ALL=C`, `HOME=/root`, `DEBIAN_FRONTEND=noninteractive`.
    pub fn sh_for(&self, script: &str, timeout: Duration) -> Exec {
        let mut cmd = self.host.command("timeout");
        cmd.args(["-s", "KILL"])
            .arg(timeout.as_secs().to_string())
            .arg("chroot")
            .arg(self.root())
            .args(["/bin/sh", "-c", script]);
        self.exec(script, &mut cmd)
    }

    /// [`Chroot::sh_for`] with the default [`TIMEOUT`].
    pub fn sh(&self, script: &str) -> Exec {
        self.sh_for(script, TIMEOUT)
    }

    /// Runs `script` with the host's `/bin/sh -c` in the host's namespaces, outside the
    /// chroot, with `$ROOT` set to its root: to mount or bind something into it.
    pub fn outside(&self, script: &str) -> Exec {
        self.run_outside(script, &[], TIMEOUT)
    }

    fn run_outside(
        &self,
        script: &str,
        env: &[(&str, &std::ffi::OsStr)],
        timeout: Duration,
    ) -> Exec {
        let mut cmd = self.host.command("timeout");
        cmd.args(["-s", "KILL"])
            .arg(timeout.as_secs().to_string())
            .args(["/bin/sh", "-c", script])
            .env("ROOT", self.root());
        for (name, value) in env {
            cmd.env(name, value);
        }
        self.exec(script, &mut cmd)
    }

    fn exec(&self, script: &str, cmd: &mut Command) -> Exec {
        let out = cmd
            .env("HOME", "/root")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("chroot: cannot run `{script}`: {err}"));
        Exec {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
