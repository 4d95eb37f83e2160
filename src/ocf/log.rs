//! The agents' logger: one line per message on stderr (which Pacemaker captures and logs as
//! the operation's output), naming the agent, the resource instance and the action; also to
//! syslog when `HA_LOGFACILITY` names a facility; debug lines only when `HA_debug=1`.
//!
//! A ~100-line logger behind the `log` facade, as ripgrep does, rather than a framework: agents
//! live for milliseconds and must not pay for more.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where and how agent log lines go.
struct AgentLogger {
    /// `vip(my_vip)[1234]: start` — what every line starts with.
    prefix: String,
    /// Syslog facility code (already shifted) and the connected `/dev/log` socket.
    syslog: Option<(u8, Mutex<UnixDatagram>)>,
    debug: bool,
}

/// Syslog facility numbers (RFC 5424), by the names `ha.cf`/`HA_LOGFACILITY` use.
pub fn facility_code(name: &str) -> Option<u8> {
    let code = match name.to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    };
    Some(code)
}

fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

impl Log for AgentLogger {
    fn enabled(&self, meta: &Metadata) -> bool {
        meta.level() <= Level::Info || self.debug
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{}: {}: {}", self.prefix, record.level(), record.args());
        // A closed stderr must not turn into a failed action.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        if let Some((facility, socket)) = &self.syslog {
            let pri = (facility << 3) | severity(record.level());
            if let Ok(socket) = socket.lock() {
                let _ = socket.send(format!("<{pri}>{line}").as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger for one agent invocation. `env` is the call's environment.
pub fn init(agent: &str, instance: &str, action: &str, env: &dyn Fn(&str) -> Option<String>) {
    let debug = env("HA_debug").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    // Pacemaker exports HA_logfacility=none; resource-agents read HA_LOGFACILITY.
    let syslog = env("HA_LOGFACILITY")
        .or_else(|| env("HA_logfacility"))
        .and_then(|name| facility_code(&name))
        .and_then(|facility| {
            let socket = UnixDatagram::unbound().ok()?;
            socket.connect("/dev/log").ok()?;
            Some((facility, Mutex::new(socket)))
        });
    let logger = AgentLogger {
        prefix: format!("{agent}({instance})[{}]: {action}", std::process::id()),
        syslog,
        debug,
    };
    // Fails only if a logger is already installed (a second init in one process): keep the first.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
    }
}

/// Prints the one `ocf-exit-reason:` line Pacemaker shows for a failed action. The prefix
/// honours `OCF_EXIT_REASON_PREFIX`; newlines in the reason are flattened so it stays one line.
pub fn exit_reason(reason: &str, env: &dyn Fn(&str) -> Option<String>) {
    let prefix = env("OCF_EXIT_REASON_PREFIX").unwrap_or_else(|| "ocf-exit-reason:".to_string());
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}",
        format_reason(&prefix, reason)
    );
}

fn format_reason(prefix: &str, reason: &str) -> String {
    let flat: Vec<&str> = reason
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("{prefix}{}", flat.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reason_is_one_line_with_the_prefix() {
        assert_eq!(
            format_reason("ocf-exit-reason:", "mount failed:\n  busy\n"),
            "ocf-exit-reason:mount failed: busy"
        );
        assert_eq!(format_reason("X:", "r"), "X:r");
    }

    #[test]
    fn facilities_have_syslog_numbers() {
        assert_eq!(facility_code("daemon"), Some(3));
        assert_eq!(facility_code("LOCAL7"), Some(23));
        assert_eq!(facility_code("none"), None);
    }
}
