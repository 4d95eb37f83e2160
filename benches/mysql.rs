//! mysql-agent against resource-agents' mysql in the same test host, in the same run: each
//! manages a copy of the same template datadir with the same config (tests/util/mariadb.rs).
//! `monitor` of a running server at depths 0 and 10 (medians of many runs), `start` on a
//! fresh copy and `stop` (medians of a few cycles), the ratios, and processes forked per
//! monitor (strace).
//!
//! The reference runs `/usr/bin/mysqld_safe` (its default `binary`), which starts mariadbd as
//! `mysql`; ours runs `/usr/sbin/mariadbd` directly. Depth 10 is `SELECT COUNT(*)` from
//! `mysql.user` as root, which unix_socket authentication lets in without a password.
//!
//! While each `start` runs, a probe thread polls the socket every millisecond, speaking just
//! enough of the client protocol to tell *when* the server first accepted a connection (its
//! greeting arrived) and first answered a query (`SELECT 1` as root), and when the pid file
//! appeared (what the reference waits for). Those instants, next to the agent's exit, show how
//! much of `start` is the server's own start-up and how much is the agent's waiting.
//!
//! Run as root: `make bench` (needs resource-agents, mariadb-server and strace). The reference
//! polls its start every 2 s and sleeps 1 s in stop, so its cycles dominate the run (under a minute).
//! `BENCH_RUNS` sets the monitor runs (default 50); start/stop cycles are a tenth (at least 3).

#[path = "../tests/util/host.rs"]
#[allow(dead_code)]
mod host;

#[path = "../tests/util/mariadb.rs"]
#[allow(dead_code)]
mod mariadb;

// start_stop restarts one datadir; every start here gets a fresh copy instead.
#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::Agent;
use ferroha::report::Role;
use host::Host;
use mariadb::MariaDb;

const MYSQL: &str = "/usr/lib/ocf/resource.d/heartbeat/mysql";
const MYSQLD_SAFE: &str = "/usr/bin/mysqld_safe";

/// Depth-10 parameters, given to both agents.
const DEPTH10_PARAMS: [(&str, &str); 2] = [("test_user", "root"), ("test_table", "mysql.user")];

/// The two implementations, in table order.
#[derive(Clone, Copy)]
enum Impl {
    Reference,
    Ours,
}

impl Impl {
    /// The agent managing `db`.
    fn agent(self, db: &MariaDb) -> Agent {
        let mut params = db.params();
        for (name, value) in DEPTH10_PARAMS {
            params.push((name, value.to_string()));
        }
        match self {
            Impl::Reference => {
                for (name, value) in &mut params {
                    if *name == "binary" {
                        *value = MYSQLD_SAFE.to_string();
                    }
                }
                Agent {
                    name: "mysql",
                    path: MYSQL.into(),
                    params,
                }
            }
            Impl::Ours => Agent {
                name: "mysql-agent",
                path: env!("CARGO_BIN_EXE_mysql-agent").into(),
                params,
            },
        }
    }
}

/// Instants of one `start`, from the agent's launch.
#[derive(Clone, Copy, Default)]
struct StartTrace {
    /// The pid file appeared.
    pid_file: Option<Duration>,
    /// The server's greeting arrived on a new connection.
    accepted: Option<Duration>,
    /// `SELECT 1` was answered.
    answered: Option<Duration>,
    /// The agent exited.
    exited: Duration,
}

/// The start/stop times of one implementation, and the median start trace.
struct Cycles {
    starts: Vec<Duration>,
    stops: Vec<Duration>,
    trace: [Option<Duration>; 4],
}

fn main() {
    if !host::is_root() {
        eprintln!("make bench needs root (namespaces, a MariaDB server run as mysql)");
        std::process::exit(1);
    }
    for (path, package) in [
        (MYSQL, "resource-agents"),
        (MYSQLD_SAFE, "mariadb-server"),
        (mariadb::MARIADBD, "mariadb-server"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} missing: apt-get install {package}"
        );
    }
    let runs = common::runs(50);
    let cycles = (runs / 10).max(3);
    let node = Host::new("bench-mysql");
    node.sh_ok("mkdir -p /run/resource-agents");

    println!(
        "mysql-agent vs mysql (resource-agents): {runs} monitor runs per depth, \
         {cycles} start/stop cycles on fresh datadir copies"
    );
    println!("MariaDB on a private datadir, inside a test host; medians of wall time\n");
    let depth0 = [
        ("OCF_RESKEY_CRM_meta_interval", "20000"),
        ("OCF_CHECK_LEVEL", "0"),
    ];
    let depth10 = [
        ("OCF_RESKEY_CRM_meta_interval", "60000"),
        ("OCF_CHECK_LEVEL", "10"),
    ];

    let mut figures = Vec::new();
    let mut forks = Vec::new();
    for which in [Impl::Reference, Impl::Ours] {
        let cycle = start_stop_cycles(&node, which, cycles);

        let db = MariaDb::new();
        let agent = which.agent(&db);
        let (_, out) = common::run(&node, &agent, "start", &[]);
        common::expect_rc(&agent, "start", &out, 0);
        let monitor0 = common::samples_of(&node, &agent, "monitor", &depth0, 0, runs);
        let monitor10 = common::samples_of(&node, &agent, "monitor", &depth10, 0, runs);
        forks.push([
            common::forks(&node, &agent, "monitor", &depth0),
            common::forks(&node, &agent, "monitor", &depth10),
        ]);
        let (_, out) = common::run(&node, &agent, "stop", &[]);
        common::expect_rc(&agent, "stop", &out, 0);
        figures.push((monitor0, monitor10, cycle));
    }

    let (r, o) = (&figures[0], &figures[1]);
    let m = common::median;
    common::print_table(
        "mysql",
        &[
            ("monitor (0)", m(&r.0), m(&o.0)),
            ("monitor (10)", m(&r.1), m(&o.1)),
            ("start", m(&r.2.starts), m(&o.2.starts)),
            ("stop", m(&r.2.stops), m(&o.2.stops)),
        ],
    );

    println!("\nstart, ms from the agent's launch (medians; - = not observed):");
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "agent", "pid file", "accepts", "answers", "exits", "exit - answer"
    );
    for (name, cycle) in [("mysql", &r.2), ("mysql-agent", &o.2)] {
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
        };
        let [pid_file, accepted, answered, exited] = cycle.trace;
        let slack = answered.zip(exited).map(|(a, e)| e.saturating_sub(a));
        println!(
            "{name:<14} {:>10} {:>10} {:>10} {:>10} {:>14}",
            ms(pid_file),
            ms(accepted),
            ms(answered),
            ms(exited),
            ms(slack)
        );
    }

    let show = |f: Option<usize>| f.map_or("n/a".to_string(), |n| n.to_string());
    println!(
        "\nprocesses forked per monitor: depth 0: mysql {}, ferroha {}; depth 10: mysql {}, ferroha {}",
        show(forks[0][0]),
        show(forks[1][0]),
        show(forks[0][1]),
        show(forks[1][1])
    );

    let pair = |id, label, ours: &[Duration], reference: &[Duration]| {
        common::results::figure(
            id,
            label,
            "ms",
            &[
                ("mysql-agent", Role::Ferroha, ours),
                ("mysql", Role::Peer, reference),
            ],
        )
    };
    common::results::save(vec![
        pair("monitor-0", "MariaDB monitor, depth 0", &o.0, &r.0),
        pair(
            "monitor-10",
            "MariaDB monitor, depth 10 (SELECT 1 over the socket)",
            &o.1,
            &r.1,
        ),
        pair(
            "start",
            "MariaDB start, to return (fresh datadir copy)",
            &o.2.starts,
            &r.2.starts,
        ),
        pair("stop", "MariaDB stop", &o.2.stops, &r.2.stops),
    ]);
}

/// `cycles` times: a fresh datadir copy, `start` (traced by a probe), `stop`. Medians.
fn start_stop_cycles(node: &Host, which: Impl, cycles: usize) -> Cycles {
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    let mut traces = Vec::new();
    for _ in 0..cycles {
        let db = MariaDb::new();
        let agent = which.agent(&db);
        let probe = Probe::spawn(&db);
        let (start, out) = common::run(node, &agent, "start", &[]);
        let exited = probe.launched.elapsed();
        common::expect_rc(&agent, "start", &out, 0);
        let mut trace = probe.finish();
        trace.exited = exited;
        let (stop, out) = common::run(node, &agent, "stop", &[]);
        common::expect_rc(&agent, "stop", &out, 0);
        starts.push(start);
        stops.push(stop);
        traces.push(trace);
    }
    let trace = [
        median(traces.iter().map(|t| t.pid_file)),
        median(traces.iter().map(|t| t.accepted)),
        median(traces.iter().map(|t| t.answered)),
        median(traces.iter().map(|t| Some(t.exited))),
    ];
    Cycles {
        starts,
        stops,
        trace,
    }
}

/// The median of the observed values; None when none was observed.
fn median(values: impl Iterator<Item = Option<Duration>>) -> Option<Duration> {
    let mut seen: Vec<Duration> = values.flatten().collect();
    seen.sort();
    seen.get(seen.len() / 2).copied()
}

/// A thread watching one instance while its agent starts it.
struct Probe {
    launched: Instant,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<StartTrace>,
}

impl Probe {
    /// Starts polling `db`'s pid file and socket now; call just before launching the agent.
    fn spawn(db: &MariaDb) -> Probe {
        let (pid_file, socket) = (db.pid_file().to_path_buf(), db.socket().to_path_buf());
        let stop = Arc::new(AtomicBool::new(false));
        let launched = Instant::now();
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || watch(launched, &pid_file, &socket, &stop))
        };
        Probe {
            launched,
            stop,
            thread,
        }
    }

    /// Stops polling (the agent has returned) and collects what was seen: an agent that
    /// returns before its server answers shows no answer.
    fn finish(self) -> StartTrace {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("probe thread")
    }
}

/// Polls every millisecond until `stop` is set: the pid file, and the socket until a query is
/// answered.
fn watch(launched: Instant, pid_file: &Path, socket: &Path, stop: &AtomicBool) -> StartTrace {
    let mut trace = StartTrace::default();
    while !stop.load(Ordering::Relaxed) {
        if trace.pid_file.is_none() && pid_file.exists() {
            trace.pid_file = Some(launched.elapsed());
        }
        if trace.answered.is_none()
            && let Ok(stream) = UnixStream::connect(socket)
        {
            let (accepted, answered) = select_one(stream);
            if let Some(at) = accepted {
                trace.accepted.get_or_insert(at - launched);
            }
            trace.answered = answered.map(|at| at - launched);
        }
        thread::sleep(Duration::from_millis(1));
    }
    trace
}

/// One client session on a connected socket: read the greeting, log in as root with no
/// password (unix_socket lets root in), `SELECT 1`, quit. Returns when the greeting arrived
/// and when the query's first response packet (not an error) arrived.
fn select_one(mut stream: UnixStream) -> (Option<Instant>, Option<Instant>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    // Protocol version 10; 0xff would be an error packet (e.g. too many connections).
    let greeting = match read_packet(&mut stream) {
        Some((_, payload)) if payload.first() == Some(&10) => Instant::now(),
        _ => return (None, None),
    };
    // HandshakeResponse41: CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION
    // | CLIENT_PLUGIN_AUTH, 16 MiB max packet, utf8mb4, 23 bytes filler, user, empty auth data,
    // the plugin the auth data is for.
    let caps: u32 = 0x0000_0001 | 0x0000_0200 | 0x0000_8000 | 0x0008_0000;
    let mut login = Vec::new();
    login.extend_from_slice(&caps.to_le_bytes());
    login.extend_from_slice(&(16u32 << 20).to_le_bytes());
    login.push(45);
    login.extend_from_slice(&[0; 23]);
    login.extend_from_slice(b"root\0");
    login.push(0);
    login.extend_from_slice(b"mysql_native_password\0");
    let mut seq = 1;
    if !write_packet(&mut stream, seq, &login) {
        return (Some(greeting), None);
    }
    // OK (0x00), or an auth switch (0xfe) answered with empty auth data; anything else fails.
    for _ in 0..3 {
        match read_packet(&mut stream) {
            Some((_, payload)) if payload.first() == Some(&0x00) => break,
            Some((got, payload)) if payload.first() == Some(&0xfe) => {
                seq = got.wrapping_add(1);
                if !write_packet(&mut stream, seq, &[]) {
                    return (Some(greeting), None);
                }
            }
            _ => return (Some(greeting), None),
        }
    }
    if !write_packet(&mut stream, 0, b"\x03SELECT 1") {
        return (Some(greeting), None);
    }
    let answered = match read_packet(&mut stream) {
        Some((_, payload)) if !payload.is_empty() && payload[0] != 0xff => Some(Instant::now()),
        _ => None,
    };
    // COM_QUIT, so the server logs no aborted connection.
    let _ = write_packet(&mut stream, 0, b"\x01");
    (Some(greeting), answered)
}

/// One packet: 3-byte little-endian length, sequence number, payload.
fn read_packet(stream: &mut UnixStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).ok()?;
    Some((header[3], payload))
}

fn write_packet(stream: &mut UnixStream, seq: u8, payload: &[u8]) -> bool {
    let len = (payload.len() as u32).to_le_bytes();
    let mut packet = vec![len[0], len[1], len[2], seq];
    packet.extend_from_slice(payload);
    stream.write_all(&packet).is_ok()
}
