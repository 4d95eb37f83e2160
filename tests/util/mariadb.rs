//! Private MariaDB instances for tests and benchmarks: each [`MariaDb`] is a temporary
//! directory holding an initialised datadir, a config file and the paths for the pid file,
//! socket and error log. No server runs until an agent (or a test) starts one; dropping the
//! guard SIGKILLs whatever server still runs on the datadir and removes the directory.
//!
//! Layout of one instance (everything inside one temp dir, so nothing collides with another
//! test, the machine's own MariaDB paths or another run):
//! ```text
//! /tmp/ferroha-mariadb-XXXXXX/     root, 0755 (the `mysql` user must traverse it)
//!     my.cnf                       root, 0644: CONFIG below
//!     data/                        mysql:mysql: the datadir
//!     run/                         mysql:mysql, 0755: mysqld.pid, mysqld.sock, error.log
//! ```
//! `run/` plays the part of `/run/mysqld`: the server (running as `mysql`) creates its pid
//! file, socket and log there. Tests that want the agent to create a missing pid or socket
//! directory pass paths of their own.
//!
//! Initialising a datadir (`mariadb-install-db`) takes about a second, copying one about a
//! tenth of that, so the datadir is initialised once into a *template* and every instance
//! gets a copy (`cp -a`, ownership preserved). The template lives under the cargo target dir
//! (`$CARGO_TARGET_TMPDIR/mariadb-template-<key>`), keyed by everything it depends on (the
//! config, the install arguments, the installed `mariadbd` and `mariadb-install-db`, the
//! `mysql` user's ids): it is reused across runs while those are unchanged, rebuilt when one
//! changes, never left in `/tmp`, and goes with `cargo clean`.
//!
//! The template is built in a temp dir under `/tmp` first (the `mysql` user must reach the
//! datadir while it is initialised, and the target dir may be under a 0700 home), then copied
//! to a staging name in the target dir and renamed into place, so concurrent test processes
//! (the integration tests and a bench, say) never see a half-built template: the first rename
//! wins, the others discard their copy.
//!
//! The server's TCP side: CONFIG sets `bind-address=127.0.0.1` and `port=3306`, so a server
//! binds that port in whatever network namespace it starts in. Start servers inside a test
//! [`Host`](super::host::Host) (its own network namespace), and ports never clash; a server
//! started in the test's own namespace must be given `--skip-networking`.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server binary (what mysql-agent runs).
pub const MARIADBD: &str = "/usr/sbin/mariadbd";
/// The client used by [`MariaDb::sql`].
pub const CLIENT: &str = "/usr/bin/mariadb";
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";

/// The account the server runs as (and owns the datadir).
pub const USER: &str = "mysql";
/// Its group.
pub const GROUP: &str = "mysql";

/// `my.cnf` of every instance (and of the template, so its InnoDB files have these sizes).
/// Small InnoDB files make the copy cheap and the start fast. `log-error` is not set: the
/// agent passes `--log-error`, as it passes `--pid-file`, `--socket` and `--datadir`.
pub const CONFIG: &str = "\
[mysqld]
innodb_log_file_size=8M
innodb_buffer_pool_size=16M
innodb_data_file_path=ibdata1:10M:autoextend
skip-name-resolve
bind-address=127.0.0.1
port=3306
";

/// `mariadb-install-db` arguments besides `--defaults-file`, `--user` and `--datadir`: root
/// authenticates through `unix_socket` (any process running as root may connect as root over
/// the socket, without a password), and no `test` database.
const INSTALL_ARGS: &[&str] = &["--auth-root-authentication-method=socket", "--skip-test-db"];

/// How long [`MariaDb`]'s drop keeps killing before it gives up and reports leftovers.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A MariaDB instance's files in a private temp directory (mode 0755 so the `mysql` user can
/// reach it): an initialised datadir (owned by mysql:mysql), a config file, and paths for the
/// pid file, socket and error log, all inside that directory. No server runs until an agent
/// starts one.
///
/// Dropping it SIGKILLs every process still serving (or supervising) this datadir, waits until
/// they are gone, then removes the directory. If the test process itself is killed, the
/// directory stays in `/tmp` (`ferroha-mariadb-*`); a server started inside a test `Host` is
/// swept by the host's anchor in that case.
pub struct MariaDb {
    datadir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    /// Dropped after [`Drop::drop`] has stopped the server.
    dir: tempfile::TempDir,
}

impl MariaDb {
    /// A ready datadir: a copy of the template (initialised once per set of inputs, see the
    /// module docs) with `mysql`, `performance_schema` and `sys` databases and root on
    /// unix_socket auth.
    pub fn new() -> MariaDb {
        let template = template();
        let db = MariaDb::skeleton();
        run_ok(Command::new("cp").arg("-a").arg(template).arg(&db.datadir));
        db
    }

    /// An empty datadir directory (exists, owned by mysql:mysql, nothing inside): for
    /// `enable_creation` tests.
    pub fn empty() -> MariaDb {
        let db = MariaDb::skeleton();
        make_dir(&db.datadir, 0o755, true);
        db
    }

    /// The temp dir with `my.cnf` and `run/`, without the datadir.
    fn skeleton() -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("ferroha-mariadb-")
            .tempdir()
            .expect("MariaDb: cannot create a temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("MariaDb: chmod 0755 of the temp dir");
        // The paths the server reports (and /proc/<pid>/cwd) are canonical: so are ours.
        let root = dir
            .path()
            .canonicalize()
            .expect("MariaDb: canonical temp dir");
        let config = root.join("my.cnf");
        fs::write(&config, CONFIG).expect("MariaDb: writing my.cnf");
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644))
            .expect("MariaDb: chmod my.cnf");
        let run = root.join("run");
        make_dir(&run, 0o755, true);
        let db = MariaDb {
            datadir: root.join("data"),
            config,
            socket: run.join("mysqld.sock"),
            pid_file: run.join("mysqld.pid"),
            log: run.join("error.log"),
            dir,
        };
        // sun_path holds 108 bytes; keep a margin for clients that copy it with a suffix.
        let socket_len = db.socket.as_os_str().len();
        assert!(
            socket_len < 100,
            "MariaDb: socket path {} is {socket_len} bytes, too long for a unix socket; \
             set TMPDIR to a shorter directory",
            db.socket.display()
        );
        db
    }

    /// The datadir (`--datadir`, the agent's `datadir`).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The config file (`--defaults-file`, the agent's `config`).
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The unix socket path (`--socket`, the agent's `socket`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The pid file path (`--pid-file`, the agent's `pid`).
    pub fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    /// The error log path (`--log-error`, the agent's `log`).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The OCF parameters for mysql-agent pointing at this instance: `binary` (mariadbd),
    /// `config`, `datadir`, `user`, `group`, `log`, `pid`, `socket`.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        vec![
            ("binary", MARIADBD.to_string()),
            ("config", path(&self.config)),
            ("datadir", path(&self.datadir)),
            ("user", USER.to_string()),
            ("group", GROUP.to_string()),
            ("log", path(&self.log)),
            ("pid", path(&self.pid_file)),
            ("socket", path(&self.socket)),
        ]
    }

    /// The `mariadbd` command line that starts this instance's server directly (no agent),
    /// as `mysql`, logging to [`MariaDb::log`]: for tests of the fixture and for tests that
    /// need a server the agent did not start. Add `--skip-networking` outside a test host.
    pub fn server_args(&self) -> Vec<String> {
        let opt = |name: &str, p: &Path| format!("--{name}={}", p.display());
        vec![
            opt("defaults-file", &self.config),
            opt("datadir", &self.datadir),
            opt("socket", &self.socket),
            opt("pid-file", &self.pid_file),
            opt("log-error", &self.log),
            format!("--user={USER}"),
        ]
    }

    /// Runs SQL through the `mariadb` client as root over the socket (unix_socket auth), for
    /// test setup and verification only (creating a table, reading rows back). Returns the
    /// result rows tab-separated, one per line, without a header. Panics with the client's
    /// output on failure.
    pub fn sql(&self, statements: &str) -> String {
        self.try_sql(statements).unwrap_or_else(|err| {
            panic!(
                "MariaDb::sql({statements:?}) on {}: {err}",
                self.socket.display()
            )
        })
    }

    /// Like [`MariaDb::sql`] but returns the failure (exit status and stderr) instead of
    /// panicking: for polling until a server answers.
    pub fn try_sql(&self, statements: &str) -> Result<String, String> {
        // --no-defaults: neither /etc/mysql nor ~/.my.cnf, so only these options apply.
        let out = Command::new(CLIENT)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args([
                "--user=root",
                "--batch",
                "--skip-column-names",
                "--connect-timeout=10",
            ])
            .arg(format!("--execute={statements}"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .output()
            .map_err(|err| format!("cannot run {CLIENT}: {err}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{CLIENT} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    /// The pid in the pid file, if there is one (the process may be gone).
    pub fn server_pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// The processes serving or supervising this datadir: those whose working directory is
    /// the datadir (mariadbd chdirs into it) and those with the datadir as a word of their
    /// command line (`mysqld_safe --datadir=...`, the `runuser ... -c "..."` and `sh -c` that
    /// launched it). mysqld_safe must go too, or it restarts the server it sees die.
    pub fn server_processes(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return vec![];
        };
        let me = std::process::id();
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && pid != 1 && serves(pid, &self.datadir))
            .collect()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let deadline = Instant::now() + TEARDOWN_TIMEOUT;
        loop {
            let pids = self.server_processes();
            if pids.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "MariaDb: processes {pids:?} still use {} after {TEARDOWN_TIMEOUT:?}",
                    self.datadir.display()
                );
                return;
            }
            // Kill the whole set at once, so a supervisor has no time to restart a server; a
            // process forked meanwhile is caught by the next round.
            let killed: Vec<OwnedFd> = pids
                .into_iter()
                .filter_map(|pid| kill_if_serving(pid, &self.datadir))
                .collect();
            for pidfd in &killed {
                wait_exit(pidfd, deadline.saturating_duration_since(Instant::now()));
            }
        }
    }
}

/// Whether process `pid` runs in `datadir` or names it as a word of its command line (words
/// split at whitespace and `=`). A zombie matches neither: its cwd and cmdline are gone.
fn serves(pid: u32, datadir: &Path) -> bool {
    if fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == datadir) {
        return true;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let datadir = datadir.as_os_str().as_bytes();
    cmdline
        .split(|&b| b == 0 || b == b'=' || b.is_ascii_whitespace())
        .any(|word| word == datadir)
}

/// SIGKILL `pid` if it (still) serves `datadir`, through a pidfd so that a recycled pid is
/// never hit: the check runs after the pidfd pins the process. Returns the pidfd to wait on.
fn kill_if_serving(pid: u32, datadir: &Path) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if fd < 0 {
        return None; // already gone
    }
    // SAFETY: fd was just returned by pidfd_open and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    if !serves(pid, datadir) {
        return None;
    }
    // SAFETY: plain syscall on a valid pidfd, no siginfo, no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            eprintln!("MariaDb: cannot SIGKILL pid {pid}: {err}");
        }
    }
    Some(pidfd)
}

/// Wait up to `timeout` until the process behind `pidfd` has exited (a pidfd turns readable
/// then; a zombie counts as exited, its reaping is its parent's business).
fn wait_exit(pidfd: &OwnedFd, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// The datadir of the template, built on first use in this process (see the module docs).
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

/// Returns `<target tmp>/mariadb-template-<key>/data`, building it unless a previous run or a
/// concurrent process already did.
fn build_template() -> PathBuf {
    // Tests and benches get CARGO_TARGET_TMPDIR (target/<triple>/tmp); the demo (an example)
    // finds the same directory from its own path (target/<triple>/<profile>/examples/demo).
    let fallback;
    let root = match option_env!("CARGO_TARGET_TMPDIR") {
        Some(dir) => Path::new(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            fallback = exe
                .ancestors()
                .nth(3)
                .expect("target/<triple>/<profile>/examples/<program>")
                .join("tmp");
            fallback.as_path()
        }
    };
    let key = template_key();
    let name = format!("mariadb-template-{key:016x}");
    let done = root.join(&name);
    if done.join("data/mysql").is_dir() {
        return done.join("data");
    }
    fs::create_dir_all(root).expect("MariaDb: creating CARGO_TARGET_TMPDIR");
    remove_stale_templates(root, &name);

    // Initialise where the mysql user can reach the datadir.
    let started = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("ferroha-mariadb-template-")
        .tempdir()
        .expect("MariaDb: temp dir for the template");
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755))
        .expect("MariaDb: chmod template temp dir");
    let config = work.path().join("my.cnf");
    fs::write(&config, CONFIG).expect("MariaDb: writing the template's my.cnf");
    let datadir = work.path().join("data");
    make_dir(&datadir, 0o755, true);
    let out = Command::new(INSTALL_DB)
        .arg(format!("--defaults-file={}", config.display()))
        .arg(format!("--user={USER}"))
        .arg(format!("--datadir={}", datadir.display()))
        .args(INSTALL_ARGS)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|err| {
            panic!("MariaDb: cannot run {INSTALL_DB}: {err} (apt-get install mariadb-server)")
        });
    check(INSTALL_DB, &out);
    let initialised = started.elapsed();

    // Into the target dir under a name of our own, then atomically into place.
    let staging = root.join(format!(".{name}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir(&staging).expect("MariaDb: creating the template staging dir");
    fs::write(staging.join("my.cnf"), CONFIG).expect("MariaDb: writing the template's my.cnf");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(&datadir)
            .arg(staging.join("data")),
    );
    drop(work);
    match fs::rename(&staging, &done) {
        Ok(()) => {}
        // Another process renamed its template in first: use that one.
        Err(_) if done.join("data/mysql").is_dir() => {
            let _ = fs::remove_dir_all(&staging);
        }
        Err(err) => {
            let _ = fs::remove_dir_all(&staging);
            panic!(
                "MariaDb: cannot move the template to {}: {err}",
                done.display()
            );
        }
    }
    eprintln!(
        "MariaDb: template {} built in {:?} ({initialised:?} in mariadb-install-db)",
        done.display(),
        started.elapsed()
    );
    done.join("data")
}

/// Remove templates built from other inputs and staging dirs of processes that are gone
/// (killed while building), so the target dir holds one template.
fn remove_stale_templates(root: &Path, current: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let stale = if let Some(staging) = name.strip_prefix(".mariadb-template-") {
            // .mariadb-template-<key>.<pid>
            staging
                .rsplit_once('.')
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        } else {
            name.starts_with("mariadb-template-") && name != current
        };
        if stale {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A hash (FNV-1a, stable across Rust versions) of everything the template depends on.
fn template_key() -> u64 {
    let mut inputs = Vec::new();
    inputs.extend_from_slice(CONFIG.as_bytes());
    for arg in INSTALL_ARGS {
        inputs.extend_from_slice(arg.as_bytes());
        inputs.push(0);
    }
    for program in [MARIADBD, INSTALL_DB] {
        let meta = fs::metadata(program).unwrap_or_else(|err| {
            panic!("MariaDb: {program}: {err} (apt-get install mariadb-server)")
        });
        inputs.extend_from_slice(
            format!(
                "{program} {} {}.{}\n",
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            )
            .as_bytes(),
        );
    }
    let (uid, gid) = mysql_ids();
    inputs.extend_from_slice(format!("{uid}:{gid}").as_bytes());
    inputs.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The uid and gid of the `mysql` user and group.
fn mysql_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let user = nix::unistd::User::from_name(USER)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("MariaDb: no user {USER} (apt-get install mariadb-server)"));
        let group = nix::unistd::Group::from_name(GROUP)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("MariaDb: no group {GROUP}"));
        (user.uid.as_raw(), group.gid.as_raw())
    })
}

/// mkdir with an exact mode (whatever the umask), owned by mysql:mysql if `mysql_owned`.
fn make_dir(path: &Path, mode: u32, mysql_owned: bool) {
    fs::create_dir(path).unwrap_or_else(|err| panic!("MariaDb: mkdir {}: {err}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("MariaDb: chmod {}: {err}", path.display()));
    if mysql_owned {
        let (uid, gid) = mysql_ids();
        chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|err| panic!("MariaDb: chown {USER} {}: {err}", path.display()));
    }
}

/// Run `cmd` and panic with its output unless it succeeds.
fn run_ok(cmd: &mut Command) {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|err| panic!("MariaDb: cannot run {what}: {err}"));
    check(&what, &out);
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "MariaDb: {what} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// The imports are inside the tests: benches include this file too, and cargo builds them with
// `--cfg test` but without the test harness, so #[test] functions (and what only they use)
// vanish there.
#[cfg(test)]
mod tests {
    const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// Whether `pid` exists and is not a zombie.
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // "<pid> (<comm>) <state> ...": comm may contain anything, so split at the last ')'.
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    }

    /// A copy of the template serves SQL over its socket as root (unix_socket auth), with the
    /// InnoDB sizes of CONFIG, and writes and removes its pid file; an empty datadir is empty.
    #[test]
    #[ignore = "needs root"]
    fn mariadb_fixture_serves_a_copy_and_stops_by_pid() {
        use std::os::unix::process::ExitStatusExt;
        use std::process::Stdio;

        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;

        use super::super::host::{Guarded, Host, wait_for};
        use super::*;

        let empty = MariaDb::empty();
        let (uid, gid) = mysql_ids();
        let meta = fs::metadata(empty.datadir()).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        assert_eq!(fs::read_dir(empty.datadir()).unwrap().count(), 0);

        let db = MariaDb::new();
        let meta = fs::metadata(db.datadir()).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        assert!(db.datadir().join("mysql").is_dir());
        assert_eq!(db.server_pid(), None);
        let params = db.params();
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(param("binary"), Some(MARIADBD));
        assert_eq!(param("config").map(Path::new), Some(db.config()));
        assert_eq!(param("datadir").map(Path::new), Some(db.datadir()));
        assert_eq!(param("pid").map(Path::new), Some(db.pid_file()));
        assert_eq!(param("socket").map(Path::new), Some(db.socket()));
        assert_eq!(param("log").map(Path::new), Some(db.log()));
        assert_eq!((param("user"), param("group")), (Some(USER), Some(GROUP)));

        let host = Host::new("mariadb-fixture");
        let mut server = Guarded {
            child: host
                .command(MARIADBD)
                .args(db.server_args())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn mariadbd"),
        };
        let pid = server.pid();
        wait_for(
            "mariadbd to answer",
            START_TIMEOUT,
            Duration::from_millis(20),
            || db.try_sql("SELECT 1").ok(),
        );
        assert_eq!(db.server_pid(), Some(pid));
        let log = fs::read_to_string(db.log()).unwrap();
        assert!(log.contains("ready for connections"), "{log}");
        assert_eq!(db.server_processes(), vec![pid]);
        assert_eq!(
            db.sql("SELECT @@innodb_log_file_size, @@innodb_buffer_pool_size, CURRENT_USER()"),
            "8388608\t16777216\troot@localhost\n"
        );
        db.sql("CREATE DATABASE t; CREATE TABLE t.kv (k INT PRIMARY KEY, v TEXT); INSERT INTO t.kv VALUES (1, 'one')");
        assert_eq!(db.sql("SELECT k, v FROM t.kv"), "1\tone\n");

        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
        let status = wait_for(
            "mariadbd to exit",
            START_TIMEOUT,
            Duration::from_millis(10),
            || server.child.try_wait().unwrap(),
        );
        assert!(
            status.success(),
            "mariadbd: {status:?} (signal {:?})",
            status.signal()
        );
        assert_eq!(db.server_pid(), None, "pid file left behind");
        assert!(db.server_processes().is_empty());
    }

    /// Dropping the guard kills a server left running (here under mysqld_safe, which would
    /// restart a server it sees die) and removes the directory, while its host still exists.
    #[test]
    #[ignore = "needs root"]
    fn mariadb_fixture_drop_kills_a_running_server() {
        use super::super::host::{Host, wait_for};
        use super::*;

        let host = Host::new("mariadb-drop");
        let db = MariaDb::new();
        // Detached, as an agent leaves it: the server is not the test's child.
        let mut safe_args = db.server_args();
        safe_args.retain(|arg| !arg.starts_with("--user"));
        host.sh_ok(&format!(
            "/usr/bin/mysqld_safe {} --user={USER} >/dev/null 2>&1 </dev/null &",
            safe_args.join(" ")
        ));
        wait_for(
            "mariadbd to answer",
            START_TIMEOUT,
            Duration::from_millis(20),
            || db.try_sql("SELECT 1").ok(),
        );
        let server = db.server_pid().expect("pid file");
        let all = db.server_processes();
        assert!(
            all.contains(&server) && all.len() >= 2,
            "server and mysqld_safe: {all:?}"
        );
        let dir = db.dir.path().to_path_buf();

        drop(db);
        for pid in all {
            assert!(!alive(pid), "pid {pid} survived the drop");
        }
        assert!(!dir.exists(), "{} left behind", dir.display());
        drop(host);
    }
}
