//! Users and groups by name, as the node's name service sees them.
//!
//! Through getent(1) rather than getpwnam(3): the agents are static executables, and a static
//! glibc reaches any NSS module beyond the built-in `files` (systemd, sss, ldap) only by
//! loading shared modules that must come from exactly the glibc it was linked with. getent is
//! the system's own, dynamically linked program, so every name service the node is configured
//! with answers, whatever glibc update it has had since the agent was built.

use std::process::Command;
use std::time::Duration;

use super::cmd::{self, CmdError};

/// The name-service database to look a name up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// Users: the uid.
    Passwd,
    /// Groups: the gid.
    Group,
}

impl Database {
    fn name(self) -> &'static str {
        match self {
            Database::Passwd => "passwd",
            Database::Group => "group",
        }
    }
}

/// Why a lookup failed (a name that does not exist is `Ok(None)`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// getent could not be run or failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// getent printed something that is not a database entry.
    #[error("getent {db} {name}: unexpected answer '{line}'")]
    Malformed {
        /// The database.
        db: &'static str,
        /// The name looked up.
        name: String,
        /// What getent printed.
        line: String,
    },
}

/// The id (the entry's third field) of `name` in `db`, or `None` when no such entry exists.
pub fn id_of(db: Database, name: &str, timeout: Duration) -> Result<Option<u32>, LookupError> {
    let mut command = Command::new("getent");
    command.arg(db.name()).arg("--").arg(name);
    match cmd::run(&mut command, timeout) {
        Ok(out) => parse_id(&out.stdout)
            .map(Some)
            .ok_or_else(|| LookupError::Malformed {
                db: db.name(),
                name: name.to_string(),
                line: out.stdout.trim().to_string(),
            }),
        // getent(1): "2: One or more supplied key could not be found in the database."
        Err(e) if e.exit_code() == Some(2) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The uid and primary gid of user `name` (the passwd entry's third and fourth fields), or
/// `None` when no such user exists.
pub fn user_ids(name: &str, timeout: Duration) -> Result<Option<(u32, u32)>, LookupError> {
    let mut command = Command::new("getent");
    command.arg("passwd").arg("--").arg(name);
    match cmd::run(&mut command, timeout) {
        Ok(out) => parse_ids(&out.stdout)
            .map(Some)
            .ok_or_else(|| LookupError::Malformed {
                db: "passwd",
                name: name.to_string(),
                line: out.stdout.trim().to_string(),
            }),
        Err(e) if e.exit_code() == Some(2) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The third and fourth fields of the first line (`mysql:x:104:109:…`).
fn parse_ids(stdout: &str) -> Option<(u32, u32)> {
    let mut fields = stdout.lines().next()?.split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// The third field of the first line: `mysql:x:104:109:…` (passwd) or `mysql:x:109:` (group).
fn parse_id(stdout: &str) -> Option<u32> {
    stdout.lines().next()?.split(':').nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_third_field_of_either_database() {
        assert_eq!(
            parse_id("mysql:x:104:109:MySQL Server,,,:/nonexistent:/bin/false\n"),
            Some(104)
        );
        assert_eq!(parse_id("mysql:x:109:\n"), Some(109));
        assert_eq!(parse_id("garbage\n"), None);
        assert_eq!(parse_id(""), None);
        assert_eq!(
            parse_ids("mysql:x:104:109:MySQL Server,,,:/nonexistent:/bin/false\n"),
            Some((104, 109))
        );
        assert_eq!(parse_ids("mysql:x:109:\n"), None);
    }

    #[test]
    fn root_is_found_and_a_missing_name_is_none() {
        let t = Duration::from_secs(5);
        assert_eq!(id_of(Database::Passwd, "root", t).unwrap(), Some(0));
        assert_eq!(id_of(Database::Group, "root", t).unwrap(), Some(0));
        assert_eq!(
            id_of(Database::Passwd, "ferroha-no-such-user", t).unwrap(),
            None
        );
        assert_eq!(user_ids("root", t).unwrap(), Some((0, 0)));
        assert_eq!(user_ids("ferroha-no-such-user", t).unwrap(), None);
    }
}
