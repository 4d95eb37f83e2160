//! mysql-agent: a MariaDB/MySQL server, the counterpart of resource-agents' mysql.
//!
//! What differs from the reference, and why:
//! - The server binary is started directly, not through `mysqld_safe`, which restarts a killed
//!   server behind the cluster's back (and kept the reference's stop from succeeding).
//! - Readiness is a working connection and an answered query, polled every 20 ms, not a pid
//!   file polled every 2 s.
//! - The server of a datadir is recognised by its working directory (mariadbd chdirs into its
//!   datadir) and its name; a pid file alone is never trusted, so a recycled pid is never
//!   signalled.
//! - Queries go over the MySQL protocol (the `mysql` crate): monitor forks nothing.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::ocf::{
    AgentError, AgentResult, Context, ParamSpec, ParamType, Params, ResourceAgent, Status, io_error,
};
use crate::sys::proc::ProcessId;
use crate::sys::{cmd, users};

const META: &str = include_str!("../../ocf-meta/mysql.xml");

/// The parameter table (the mysql agent's names where they apply).
pub static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("binary", "server binary (mariadbd or mysqld when empty)"),
    ParamSpec::new("config", "configuration file (--defaults-file)").default("/etc/mysql/my.cnf"),
    ParamSpec::new("datadir", "data directory")
        .default("/var/lib/mysql")
        .unique(),
    ParamSpec::new("user", "user the server runs as").default("mysql"),
    ParamSpec::new("group", "group the server runs as").default("mysql"),
    ParamSpec::new("log", "error log").default("/var/log/mysql/error.log"),
    ParamSpec::new("pid", "pid file").default("/run/mysqld/mysqld.pid"),
    ParamSpec::new("socket", "unix socket").default("/run/mysqld/mysqld.sock"),
    ParamSpec::new("port", "TCP port"),
    ParamSpec::new("bind_address", "address to listen on"),
    ParamSpec::new("additional_parameters", "further server options"),
    ParamSpec::new("enable_creation", "initialise an empty datadir")
        .kind(ParamType::Boolean)
        .default("false"),
    ParamSpec::new("test_user", "user of the monitor's queries").default("root"),
    ParamSpec::new("test_passwd", "password of test_user"),
    ParamSpec::new("test_table", "table counted by the depth-10 monitor"),
];

/// The actions the meta-data advertises.
pub const ACTIONS: &[&str] = &["start", "stop", "monitor", "validate-all", "meta-data"];

/// Server binaries tried when `binary` is empty, in order.
const DEFAULT_BINARIES: &[&str] = &["/usr/sbin/mariadbd", "/usr/sbin/mysqld"];

/// Where a bare `binary` name is looked up when the environment has no PATH.
const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Process names of MySQL-compatible servers (`/proc/<pid>/comm`).
const SERVER_NAMES: &[&str] = &["mariadbd", "mysqld"];

/// How often start polls for readiness and stop for the exit.
const POLL: Duration = Duration::from_millis(20);

/// A validated mysql configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    /// Server binary, if configured.
    pub binary: Option<PathBuf>,
    /// Configuration file.
    pub config: PathBuf,
    /// Data directory.
    pub datadir: PathBuf,
    /// Server user.
    pub user: String,
    /// Server group.
    pub group: String,
    /// Error log.
    pub log: PathBuf,
    /// Pid file.
    pub pid: PathBuf,
    /// Socket.
    pub socket: PathBuf,
    /// TCP port.
    pub port: Option<u16>,
    /// Listen address.
    pub bind_address: Option<String>,
    /// Further options.
    pub additional: Vec<String>,
    /// Initialise an empty datadir.
    pub enable_creation: bool,
    /// Monitor user.
    pub test_user: String,
    /// Monitor password.
    pub test_passwd: Option<String>,
    /// Monitor table (validated identifier).
    pub test_table: Option<String>,
}

/// The mysql resource agent.
#[derive(Default)]
pub struct MysqlAgent;

/// The user and group the server runs as.
#[derive(Debug, Clone, Copy)]
struct Identity {
    uid: u32,
    gid: u32,
}

fn absolute(name: &str, value: &str) -> AgentResult<PathBuf> {
    let path = PathBuf::from(value);
    if path.is_absolute() && !value.contains('\0') {
        Ok(path)
    } else {
        Err(AgentError::Configured(format!(
            "{name} '{value}' must be an absolute path"
        )))
    }
}

/// `binary`: an absolute path, or a bare name looked up in PATH when used.
fn parse_binary(value: &str) -> AgentResult<PathBuf> {
    if value.contains('/') {
        absolute("binary", value)
    } else if value.is_empty() || value.contains('\0') || value == "." || value == ".." {
        Err(AgentError::Configured(format!(
            "binary '{value}' is neither a path nor a program name"
        )))
    } else {
        Ok(PathBuf::from(value))
    }
}

/// `db.table` or `table`, letters, digits, `_` and `$` only: it is put into SQL.
fn check_table(name: &str) -> AgentResult<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        });
    if ok {
        Ok(parts
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join("."))
    } else {
        Err(AgentError::Configured(format!(
            "test_table '{name}' must be table or db.table (letters, digits, _ and $)"
        )))
    }
}

/// The last few lines of the error log, on one line, for an exit reason.
fn log_tail(log: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(log) else {
        return format!("(no log at {})", log.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    text.push_str(&String::from_utf8_lossy(&bytes));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = &lines[lines.len().saturating_sub(5)..];
    if last.is_empty() {
        format!("(log {} is empty)", log.display())
    } else {
        last.join(" | ")
    }
}

/// Field 3 (state) of `/proc/<pid>/stat`.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// True once the process has exited: gone from /proc, replaced by another one with its pid,
/// or a zombie waiting to be reaped (it holds nothing any more).
fn has_exited(server: &ProcessId) -> bool {
    !server.is_alive() || matches!(process_state(server.pid), Some('Z' | 'X') | None)
}

/// Is `pid` a MySQL-compatible server working in `datadir`?
fn serves(pid: i32, datadir: &Path) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    SERVER_NAMES.contains(&comm.trim())
        && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == datadir)
        && same_mount_namespace(pid)
}

/// Whether `pid` sees the same mounts as this agent. A server in another mount namespace (a
/// container, or another node of a cluster test on one machine) may show the same datadir
/// path, even the same filesystem, but it is not this node's server: never stop it.
fn same_mount_namespace(pid: i32) -> bool {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok();
    let theirs = ns(&pid.to_string());
    theirs.is_some() && theirs == ns("self")
}

impl MysqlConfig {
    /// The datadir as the kernel shows it in /proc/<pid>/cwd (symlinks resolved).
    fn datadir_canonical(&self) -> PathBuf {
        std::fs::canonicalize(&self.datadir).unwrap_or_else(|_| self.datadir.clone())
    }

    /// The server of this datadir, if one runs: the pid file's process when it really is that
    /// server, else any server process working in the datadir.
    fn find_server(&self) -> Option<ProcessId> {
        let datadir = self.datadir_canonical();
        let from_pidfile = std::fs::read_to_string(&self.pid)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|pid| *pid > 0 && serves(*pid, &datadir))
            .and_then(ProcessId::of);
        from_pidfile.or_else(|| {
            std::fs::read_dir("/proc")
                .ok()?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .find(|pid| serves(*pid, &datadir))
                .and_then(ProcessId::of)
        })
    }

    /// The pid file names this process.
    fn pidfile_names(&self, server: &ProcessId) -> bool {
        std::fs::read_to_string(&self.pid)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            == Some(server.pid)
    }

    fn binary(&self) -> AgentResult<PathBuf> {
        let executable = |b: &Path| {
            b.metadata()
                .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        };
        // A bare name is looked up in PATH, as the mysql agent's `which` does: present on one
        // node and not another is "not installed here" (5).
        if let Some(name) = self.binary.as_ref().filter(|b| b.components().count() == 1)
            && !name.is_absolute()
        {
            let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
            let found = std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|b| b.is_absolute() && executable(b));
            return match found {
                Some(b) => {
                    log::info!("binary '{}' is {}", name.display(), b.display());
                    Ok(b)
                }
                None => Err(AgentError::Installed(format!(
                    "server binary '{}' not found in PATH ({path})",
                    name.display()
                ))),
            };
        }
        let candidates: Vec<PathBuf> = match &self.binary {
            Some(b) => vec![b.clone()],
            None => DEFAULT_BINARIES.iter().map(PathBuf::from).collect(),
        };
        candidates
            .into_iter()
            .find(|b| executable(b))
            .ok_or_else(|| {
                AgentError::Installed(match &self.binary {
                    Some(b) => format!("server binary {} is not installed", b.display()),
                    None => format!("no server binary: none of {}", DEFAULT_BINARIES.join(", ")),
                })
            })
    }

    fn identity(&self, timeout: Duration) -> AgentResult<Identity> {
        let lookup = |db, name: &str, what: &str| {
            users::id_of(db, name, timeout)
                .map_err(|e| AgentError::Generic(format!("looking up {what} {name}: {e}")))?
                .ok_or_else(|| AgentError::Installed(format!("{what} '{name}' does not exist")))
        };
        Ok(Identity {
            uid: lookup(users::Database::Passwd, &self.user, "user")?,
            gid: lookup(users::Database::Group, &self.group, "group")?,
        })
    }

    /// Connection options for test_user over the socket, bounded by `timeout`.
    fn connection(&self, timeout: Duration) -> mysql::Opts {
        let timeout = timeout.max(Duration::from_millis(10));
        mysql::OptsBuilder::new()
            .socket(Some(self.socket.to_string_lossy()))
            .user(Some(self.test_user.clone()))
            .pass(self.test_passwd.clone())
            // Already on the socket: no `SELECT @@socket` to look for a better transport, and
            // a given packet limit spares a `SELECT @@max_allowed_packet` (the agent's own
            // queries and results are tiny).
            .prefer_socket(false)
            .max_allowed_packet(Some(1 << 20))
            .read_timeout(Some(timeout))
            .write_timeout(Some(timeout))
            .stmt_cache_size(0)
            .into()
    }

    /// The depth-10 query.
    fn probe_query(&self) -> String {
        match &self.test_table {
            Some(t) => format!("SELECT COUNT(*) FROM {t}"),
            None => "SELECT 1".to_string(),
        }
    }
}

/// What a readiness or monitor query found.
enum Answer {
    /// Connected and answered.
    Answered,
    /// Nothing listens yet (no socket, connection refused).
    NotListening(String),
    /// The server is up but refused the query or the login.
    Refused(String),
}

fn ask(cfg: &MysqlConfig, timeout: Duration) -> Answer {
    let mut conn = match mysql::Conn::new(cfg.connection(timeout)) {
        Ok(c) => c,
        Err(mysql::Error::IoError(e)) => return Answer::NotListening(e.to_string()),
        Err(mysql::Error::DriverError(e)) => return Answer::NotListening(e.to_string()),
        Err(e) => return Answer::Refused(e.to_string()),
    };
    match conn.query_drop(cfg.probe_query()) {
        Ok(()) => Answer::Answered,
        Err(e) => Answer::Refused(e.to_string()),
    }
}

/// Depth 20: a write and a read back in a database of the agent's own.
fn write_check(cfg: &MysqlConfig, instance: &str, timeout: Duration) -> Result<(), String> {
    let mut conn = mysql::Conn::new(cfg.connection(timeout)).map_err(|e| e.to_string())?;
    let node = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    conn.query_drop("CREATE DATABASE IF NOT EXISTS ferroha_monitor")
        .and_then(|()| {
            conn.query_drop(
                "CREATE TABLE IF NOT EXISTS ferroha_monitor.heartbeat (node VARCHAR(255) \
                 PRIMARY KEY, instance VARCHAR(255), stamp BIGINT UNSIGNED) ENGINE=InnoDB",
            )
        })
        .and_then(|()| {
            conn.exec_drop(
                "REPLACE INTO ferroha_monitor.heartbeat VALUES (?, ?, ?)",
                (&node, instance, stamp),
            )
        })
        .map_err(|e| e.to_string())?;
    let back: Option<u64> = conn
        .exec_first(
            "SELECT stamp FROM ferroha_monitor.heartbeat WHERE node = ?",
            (&node,),
        )
        .map_err(|e| e.to_string())?;
    if back == Some(stamp) {
        Ok(())
    } else {
        Err(format!("wrote {stamp}, read back {back:?}"))
    }
}

/// Can `id` write into `dir`, judged by its mode bits (the agent runs as root, so access(2)
/// would not tell).
fn writable_by(dir: &Path, id: Identity) -> bool {
    let Ok(meta) = dir.metadata() else {
        return false;
    };
    let mode = meta.permissions().mode();
    if id.uid == 0 {
        return true;
    }
    if meta.uid() == id.uid {
        mode & 0o300 == 0o300
    } else if meta.gid() == id.gid {
        mode & 0o030 == 0o030
    } else {
        mode & 0o003 == 0o003
    }
}

impl MysqlAgent {
    fn check_node(&self, cfg: &MysqlConfig, ctx: &Context) -> AgentResult<(PathBuf, Identity)> {
        let binary = cfg.binary()?;
        let id = cfg.identity(ctx.deadline.remaining())?;
        if !cfg.config.exists() {
            return Err(AgentError::Installed(format!(
                "configuration file {} does not exist",
                cfg.config.display()
            )));
        }
        if cfg.datadir.exists() {
            if !writable_by(&cfg.datadir, id) {
                return Err(AgentError::Perm(format!(
                    "datadir {} is not writable by user {}",
                    cfg.datadir.display(),
                    cfg.user
                )));
            }
        } else if !cfg.enable_creation {
            // Storage not mounted on this node, typically: another node may have it.
            return Err(AgentError::Installed(format!(
                "datadir {} does not exist (set enable_creation to initialise it)",
                cfg.datadir.display()
            )));
        }
        // The server creates its pid file and socket itself, as its user (missing
        // directories are created for it on start).
        for (what, path) in [("pid file", &cfg.pid), ("socket", &cfg.socket)] {
            if let Some(dir) = path.parent().filter(|d| d.exists())
                && !writable_by(dir, id)
            {
                return Err(AgentError::Perm(format!(
                    "user {} cannot create the {what} in {}",
                    cfg.user,
                    dir.display()
                )));
            }
        }
        Ok((binary, id))
    }

    /// Creates a directory the server writes into (pid file's, socket's) owned by its user.
    fn prepare_dir(dir: &Path, id: Identity) -> AgentResult<()> {
        if dir.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
        std::os::unix::fs::chown(dir, Some(id.uid), Some(id.gid))
            .map_err(io_error(format!("chown {}", dir.display())))
    }

    /// Initialises an empty datadir (enable_creation).
    fn create_datadir(
        &self,
        cfg: &MysqlConfig,
        binary: &Path,
        id: Identity,
        ctx: &Context,
    ) -> AgentResult<()> {
        Self::prepare_dir(&cfg.datadir, id)?;
        let mut command = if Path::new("/usr/bin/mariadb-install-db").exists() {
            let mut c = Command::new("/usr/bin/mariadb-install-db");
            c.arg(format!("--defaults-file={}", cfg.config.display()))
                .arg(format!("--datadir={}", cfg.datadir.display()))
                .arg(format!("--user={}", cfg.user))
                .arg("--auth-root-authentication-method=socket")
                .arg("--skip-test-db");
            c
        } else {
            let mut c = Command::new(binary);
            c.arg(format!("--defaults-file={}", cfg.config.display()))
                .arg("--initialize-insecure")
                .arg(format!("--datadir={}", cfg.datadir.display()))
                .arg(format!("--user={}", cfg.user));
            c
        };
        log::info!("initialising datadir {}", cfg.datadir.display());
        cmd::run(&mut command, ctx.deadline.remaining())
            .map(|_| ())
            .map_err(|e| {
                AgentError::Generic(format!("initialising {}: {e}", cfg.datadir.display()))
            })
    }

    /// Starts the server binary, detached, as the server user.
    fn launch(&self, cfg: &MysqlConfig, binary: &Path, id: Identity) -> AgentResult<Child> {
        if let Some(dir) = cfg.log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(io_error(format!("creating {}", dir.display())))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&cfg.log)
            .map_err(io_error(format!("opening {}", cfg.log.display())))?;
        let _ = std::os::unix::fs::chown(&cfg.log, Some(id.uid), Some(id.gid));
        let log2 = log
            .try_clone()
            .map_err(io_error(format!("opening {}", cfg.log.display())))?;
        let mut command = Command::new(binary);
        // --defaults-file must come first.
        command
            .arg(format!("--defaults-file={}", cfg.config.display()))
            .arg(format!("--datadir={}", cfg.datadir.display()))
            .arg(format!("--pid-file={}", cfg.pid.display()))
            .arg(format!("--socket={}", cfg.socket.display()))
            .arg(format!("--log-error={}", cfg.log.display()));
        if let Some(port) = cfg.port {
            command.arg(format!("--port={port}"));
        }
        if let Some(address) = &cfg.bind_address {
            command.arg(format!("--bind-address={address}"));
        }
        command
            .args(&cfg.additional)
            .current_dir(&cfg.datadir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let as_root = nix::unistd::geteuid().is_root();
        // Not sys::proc::spawn_detached: the server must switch user and write to its log.
        // SAFETY: only async-signal-safe calls between fork and exec: setsid, then the switch
        // to the server's user and group (supplementary groups: just its group).
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if as_root {
                    let groups = [id.gid];
                    if libc::setgroups(1, groups.as_ptr()) != 0
                        || libc::setgid(id.gid) != 0
                        || libc::setuid(id.uid) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        log::info!(
            "starting {} for {}",
            binary.display(),
            cfg.datadir.display()
        );
        command
            .spawn()
            .map_err(io_error(format!("starting {}", binary.display())))
    }

    /// Polls until the server answers a query, exits, or the deadline comes.
    fn wait_until_ready(
        &self,
        cfg: &MysqlConfig,
        mut child: Option<Child>,
        ctx: &Context,
    ) -> AgentResult<()> {
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                return Err(AgentError::Generic(format!(
                    "the server exited during start ({status}): {}",
                    log_tail(&cfg.log)
                )));
            }
            let left = ctx.deadline.remaining();
            match ask(cfg, left.min(Duration::from_secs(5))) {
                Answer::Answered => {
                    log::info!(
                        "server answers on {} after {} ms",
                        cfg.socket.display(),
                        started.elapsed().as_millis()
                    );
                    return Ok(());
                }
                Answer::Refused(why) => {
                    return Err(AgentError::Generic(format!(
                        "the server is up but does not answer {}'s query: {why}",
                        cfg.test_user
                    )));
                }
                Answer::NotListening(why) if ctx.deadline.remaining() <= POLL => {
                    return Err(AgentError::Generic(format!(
                        "the server did not answer within the start timeout ({why}); \
                         server log: {}",
                        log_tail(&cfg.log)
                    )));
                }
                Answer::NotListening(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Stops `server`: TERM, a clean shutdown until shortly before the deadline, then KILL.
    fn stop_server(&self, cfg: &MysqlConfig, server: ProcessId, ctx: &Context) -> AgentResult<()> {
        log::info!("stopping server pid {} (TERM)", server.pid);
        server.signal(libc::SIGTERM);
        // Keep a slice of the budget for KILL and the process's teardown.
        let kill_reserve = (ctx.deadline.remaining() / 5).min(Duration::from_secs(2));
        let kill_at = ctx.deadline.at() - kill_reserve;
        let mut killed = false;
        loop {
            if has_exited(&server) {
                if killed {
                    log::warn!("server pid {} ended by KILL", server.pid);
                }
                break;
            }
            let now = Instant::now();
            if !killed && now >= kill_at {
                log::warn!(
                    "server pid {} still running after TERM; sending KILL",
                    server.pid
                );
                server.signal(libc::SIGKILL);
                killed = true;
            }
            if now >= ctx.deadline.at() {
                return Err(AgentError::Generic(format!(
                    "server pid {} still exists after KILL",
                    server.pid
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.remove_leftovers(cfg);
        Ok(())
    }

    /// Removes a pid file and socket no server owns any more.
    fn remove_leftovers(&self, cfg: &MysqlConfig) {
        for path in [&cfg.pid, &cfg.socket] {
            if path.exists() {
                log::info!("removing stale {}", path.display());
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn parse_config(p: &Params) -> AgentResult<MysqlConfig> {
    let path = |name: &str| absolute(name, p.required_str(name)?);
    let port = p
        .get("port")
        .map(|v| {
            v.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| AgentError::Configured(format!("port '{v}' is not a TCP port")))
        })
        .transpose()?;
    let bind_address = p.get("bind_address").map(str::to_string);
    if let Some(a) = &bind_address {
        let valid = a.parse::<std::net::IpAddr>().is_ok()
            || (!a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | ':')));
        if !valid {
            return Err(AgentError::Configured(format!(
                "bind_address '{a}' is not an address"
            )));
        }
    }
    let additional: Vec<String> = p
        .get("additional_parameters")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(bad) = additional.iter().find(|a| !a.starts_with("--")) {
        return Err(AgentError::Configured(format!(
            "additional_parameters: '{bad}' is not a --option"
        )));
    }
    let datadir = path("datadir")?;
    if datadir == Path::new("/") {
        return Err(AgentError::Configured("datadir must not be /".into()));
    }
    Ok(MysqlConfig {
        binary: p.get("binary").map(parse_binary).transpose()?,
        config: path("config")?,
        datadir,
        user: p.required_str("user")?.to_string(),
        group: p.required_str("group")?.to_string(),
        log: path("log")?,
        pid: path("pid")?,
        socket: path("socket")?,
        port,
        bind_address,
        additional,
        enable_creation: p.bool("enable_creation")?,
        test_user: p.required_str("test_user")?.to_string(),
        test_passwd: p.get("test_passwd").map(str::to_string),
        test_table: p.get("test_table").map(check_table).transpose()?,
    })
}

impl ResourceAgent for MysqlAgent {
    type Config = MysqlConfig;

    fn type_name(&self) -> &'static str {
        "mysql"
    }

    fn meta_data(&self) -> &'static str {
        META
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn configure(&self, p: &Params) -> AgentResult<MysqlConfig> {
        parse_config(p)
    }

    fn validate(&self, cfg: &MysqlConfig, ctx: &Context) -> AgentResult<()> {
        self.check_node(cfg, ctx).map(|_| ())
    }

    fn start(&self, cfg: &MysqlConfig, ctx: &Context) -> AgentResult<()> {
        let (binary, id) = self.check_node(cfg, ctx)?;
        if let Some(server) = cfg.find_server() {
            if !cfg.pidfile_names(&server) {
                return Err(AgentError::Generic(format!(
                    "another server (pid {}) already uses datadir {}; refusing to start a second",
                    server.pid,
                    cfg.datadir.display()
                )));
            }
            log::info!("server pid {} already runs for this datadir", server.pid);
            return self.wait_until_ready(cfg, None, ctx);
        }
        self.remove_leftovers(cfg);
        let initialised = cfg.datadir.join("mysql").is_dir();
        if !initialised {
            if !cfg.enable_creation {
                // An empty mount point where this node's storage should be: node-local.
                return Err(AgentError::Installed(format!(
                    "datadir {} holds no system database (set enable_creation to initialise it)",
                    cfg.datadir.display()
                )));
            }
            self.create_datadir(cfg, &binary, id, ctx)?;
        }
        for path in [&cfg.pid, &cfg.socket] {
            if let Some(dir) = path.parent() {
                Self::prepare_dir(dir, id)?;
            }
        }
        let child = self.launch(cfg, &binary, id)?;
        self.wait_until_ready(cfg, Some(child), ctx)
    }

    fn stop(&self, cfg: &MysqlConfig, ctx: &Context) -> AgentResult<()> {
        match cfg.find_server() {
            Some(server) => self.stop_server(cfg, server, ctx),
            None => {
                self.remove_leftovers(cfg);
                Ok(())
            }
        }
    }

    fn monitor(&self, cfg: &MysqlConfig, ctx: &Context) -> AgentResult<Status> {
        let Some(server) = cfg.find_server() else {
            return Ok(Status::Stopped);
        };
        if !cfg.pidfile_names(&server) {
            log::warn!(
                "server pid {} serves {} but the pid file {} does not name it",
                server.pid,
                cfg.datadir.display(),
                cfg.pid.display()
            );
        }
        if ctx.check_level >= 10 {
            match ask(cfg, ctx.deadline.cap(Duration::from_secs(10))) {
                Answer::Answered => {}
                Answer::NotListening(why) | Answer::Refused(why) => {
                    return Err(AgentError::Generic(format!(
                        "server pid {} runs but does not answer {} ({}): {why}",
                        server.pid,
                        cfg.probe_query(),
                        cfg.test_user
                    )));
                }
            }
        }
        if ctx.check_level >= 20 {
            write_check(
                cfg,
                &ctx.instance,
                ctx.deadline.cap(Duration::from_secs(10)),
            )
            .map_err(|why| {
                AgentError::Generic(format!("write check in ferroha_monitor failed: {why}"))
            })?;
        }
        Ok(Status::Running)
    }

    fn stop_unconfigured(
        &self,
        params: &Params,
        ctx: &Context,
        _err: &AgentError,
    ) -> AgentResult<()> {
        // The datadir (and pid file) identify the server; what else is wrong does not matter
        // for stopping it.
        let Some(Ok(datadir)) = params.get("datadir").map(|d| absolute("datadir", d)) else {
            return Ok(());
        };
        let pid = params
            .get("pid")
            .and_then(|p| absolute("pid", p).ok())
            .unwrap_or_else(|| PathBuf::from("/nonexistent"));
        let cfg = MysqlConfig {
            binary: None,
            config: PathBuf::new(),
            datadir,
            user: String::new(),
            group: String::new(),
            log: PathBuf::new(),
            pid,
            socket: PathBuf::from("/nonexistent"),
            port: None,
            bind_address: None,
            additional: vec![],
            enable_creation: false,
            test_user: String::new(),
            test_passwd: None,
            test_table: None,
        };
        match cfg.find_server() {
            Some(server) => self.stop_server(&cfg, server, ctx),
            None => Ok(()),
        }
    }

    fn active_unconfigured(&self, params: &Params, _ctx: &Context) -> bool {
        let Some(Ok(datadir)) = params.get("datadir").map(|d| absolute("datadir", d)) else {
            return false;
        };
        let datadir = std::fs::canonicalize(&datadir).unwrap_or(datadir);
        std::fs::read_dir("/proc")
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                    .any(|pid| serves(pid, &datadir))
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests;
