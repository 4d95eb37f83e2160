//! Parameter handling of the mysql agent; the server itself is exercised by the integration
//! tests against a real MariaDB.

use super::*;
use crate::ocf::{OcfRc, meta};

fn config(pairs: &[(&str, &str)]) -> AgentResult<MysqlConfig> {
    let params = Params::from_pairs(PARAMS, pairs)?;
    MysqlAgent.configure(&params)
}

#[test]
fn meta_data_matches_the_parameter_table() {
    meta::check::assert_meta_matches(META, "mysql", PARAMS, ACTIONS);
}

#[test]
fn defaults_follow_the_reference_agent() {
    let cfg = config(&[]).unwrap();
    assert_eq!(cfg.datadir, PathBuf::from("/var/lib/mysql"));
    assert_eq!(cfg.user, "mysql");
    assert_eq!(cfg.test_user, "root");
    assert_eq!(cfg.probe_query(), "SELECT 1");
    assert_eq!(cfg.binary, None);
}

#[test]
fn test_table_is_quoted_and_checked() {
    let cfg = config(&[("test_table", "mysql.user")]).unwrap();
    assert_eq!(cfg.probe_query(), "SELECT COUNT(*) FROM `mysql`.`user`");
    for bad in ["users; DROP TABLE x", "a.b.c", "`x`", "a..b", "x y"] {
        assert_eq!(
            config(&[("test_table", bad)]).unwrap_err().rc(),
            OcfRc::ErrConfigured,
            "{bad}"
        );
    }
}

#[test]
fn bad_input_is_err_configured() {
    let cases: &[&[(&str, &str)]] = &[
        &[("datadir", "relative")],
        &[("datadir", "/")],
        &[("pid", "x.pid")],
        &[("port", "0")],
        &[("port", "70000")],
        &[("port", "http")],
        &[("bind_address", "a b")],
        &[("additional_parameters", "--ok not-an-option")],
        &[("binary", "sbin/mariadbd")],
        &[("binary", "..")],
        &[("enable_creation", "perhaps")],
    ];
    for pairs in cases {
        assert_eq!(
            config(pairs).unwrap_err().rc(),
            OcfRc::ErrConfigured,
            "{pairs:?}"
        );
    }
}

#[test]
fn a_bare_binary_name_is_kept_for_the_path_lookup() {
    let cfg = config(&[("binary", "mariadbd")]).unwrap();
    assert_eq!(cfg.binary, Some(PathBuf::from("mariadbd")));
}

#[test]
fn log_tail_keeps_the_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&log, text).unwrap();
    assert_eq!(
        log_tail(&log),
        "line 16 | line 17 | line 18 | line 19 | line 20"
    );
    assert!(log_tail(&dir.path().join("none")).contains("no log"));
}
