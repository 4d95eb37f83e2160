//! Every binary answers `--version` with `NAME VERSION` and exit 0, before reading any
//! configuration or environment: the first thing a bug report asks for.

use std::process::Command;

use crate::util::agent::built_bin;

#[test]
fn every_binary_prints_its_name_and_the_crate_version() {
    for name in [
        "drbd-agent",
        "fs-agent",
        "mysql-agent",
        "vip-agent",
        "hb-monitor",
    ] {
        let out = Command::new(built_bin(name))
            .arg("--version")
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.status.code(), Some(0), "{name} --version: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{name} {}\n", env!("CARGO_PKG_VERSION")),
            "{name} --version"
        );
        assert!(
            out.stderr.is_empty(),
            "{name} --version wrote to stderr: {out:?}"
        );
    }
}
