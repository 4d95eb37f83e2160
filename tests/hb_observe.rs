//! hb-monitor as an operator watches it: the Prometheus metrics (`hb-monitor metrics` and
//! `metrics_listen`) read by the Prometheus Python client's own parser during a failover,
//! and `notify_command` hearing the failover's events in order, a hanging or failing hook
//! holding up nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::util::fence::{Fence, fenced_cluster};
use crate::util::hb_cluster::{Cluster, VIP};
use crate::util::host::{Host, wait_for};

/// Debian's python3 (with python3-prometheus-client), not whatever `python3` PATH finds.
const PYTHON: &str = "/usr/bin/python3";

/// Scrapes `url` every 20 ms for `secs` seconds and prints each scrape as one JSON object
/// `{"name{label=value,...}": value}`, parsed by prometheus_client's parser (which raises on
/// text that breaks the exposition format); `-` as the url reads one exposition from stdin.
const SCRAPER: &str = r#"
import json, sys, time, urllib.request
from prometheus_client.parser import text_string_to_metric_families

def flat(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out

url, secs = sys.argv[1], float(sys.argv[2])
if url == "-":
    print(json.dumps(flat(sys.stdin.read())))
    sys.exit(0)
end = time.monotonic() + secs
while time.monotonic() < end:
    with urllib.request.urlopen(url, timeout=2) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        print(json.dumps(flat(r.read().decode())), flush=True)
    time.sleep(0.02)
"#;

type Scrape = BTreeMap<String, f64>;

fn parse_scrapes(stdout: &[u8]) -> Vec<Scrape> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The value of `key` (`name{labels}`); absent samples of a counter count as 0.
fn value(scrape: &Scrape, key: &str) -> f64 {
    scrape.get(key).copied().unwrap_or(0.0)
}

fn log_of(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.dirs[i].path().join("daemon.log")).unwrap_or_default()
}

/// `hb-monitor metrics` on `host`, parsed: its exit code and samples.
fn metrics_command(host: &Host) -> (Option<i32>, Scrape) {
    let out = host
        .command(crate::util::agent::built_bin("hb-monitor"))
        .arg("metrics")
        .output()
        .unwrap();
    let mut parser = host
        .command(PYTHON)
        .args(["-c", SCRAPER, "-", "0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    parser.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let parsed = parser.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "the Prometheus parser refused `hb-monitor metrics`:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code(), parse_scrapes(&parsed.stdout).remove(0))
}

#[test]
#[ignore = "needs root"]
fn the_metrics_follow_a_failover_as_prometheus_parses_them() {
    let fence = Fence::new();
    let mut c = fenced_cluster(
        &fence,
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        "metrics_listen 127.0.0.1:9664\n",
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    c.wait_ready(1);
    let group = c.status(1)["groups"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // n2 scrapes itself over HTTP for 4 s; n1 is killed 1 s in.
    let scraper = c.hosts[1]
        .command(PYTHON)
        .args(["-c", SCRAPER, "http://127.0.0.1:9664/metrics", "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    c.kill(0);
    c.wait_vip_on(1, Duration::from_secs(10));
    let out = scraper.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "scraper: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scrapes = parse_scrapes(&out.stdout);
    // 4 s at one scrape per 20 ms and its round trip: far more than the few asserted on.
    assert!(scrapes.len() >= 20, "only {} scrapes", scrapes.len());

    let holder = |node: &str| format!("ha_cluster_hb_group_holder{{group={group},node={node}}}");
    let held = format!("ha_cluster_hb_group_state{{group={group},state=held}}");
    let failovers = format!("ha_cluster_hb_failovers_total{{group={group}}}");
    let fenced_ok = "ha_cluster_hb_fences_total{peer=n1,result=success}";
    let n1_up = "ha_cluster_hb_node_up{node=n1}";

    let first = &scrapes[0];
    assert_eq!(value(first, "ha_cluster_hb_up{}"), 1.0);
    assert_eq!(value(first, n1_up), 1.0, "{first:?}");
    assert_eq!(value(first, &holder("n1")), 1.0, "{first:?}");
    assert_eq!(value(first, &holder("n2")), 0.0);
    assert_eq!(value(first, &held), 0.0);
    assert_eq!(value(first, &failovers), 0.0);
    assert_eq!(value(first, fenced_ok), 0.0);
    assert!(
        first.contains_key("ha_cluster_hb_peer_last_heartbeat_seconds{medium=eth0:694,peer=n1}"),
        "no heartbeat age of n1 on its medium: {:?}",
        first.keys().collect::<Vec<_>>()
    );

    let last = scrapes.last().unwrap();
    assert_eq!(value(last, n1_up), 0.0, "{last:?}");
    assert_eq!(value(last, &holder("n1")), 0.0);
    assert_eq!(value(last, &holder("n2")), 1.0, "{last:?}");
    assert_eq!(value(last, &held), 1.0);
    assert_eq!(value(last, &failovers), 1.0);
    assert_eq!(value(last, fenced_ok), 1.0, "{last:?}");
    assert_eq!(
        value(last, "ha_cluster_hb_fences_total{peer=n1,result=failure}"),
        0.0
    );
    let started = last
        .iter()
        .find(|(k, _)| {
            k.starts_with("ha_cluster_hb_resource_last_operation_seconds{")
                && k.contains("operation=start,")
                && k.contains("result=ok")
        })
        .unwrap_or_else(|| panic!("no start of the VIP in {last:?}"));
    assert!(*started.1 > 0.0 && *started.1 < 10.0, "{started:?}");

    // Counters never go down between scrapes, and the holder moved once: n1 up to the
    // kill, then n2 (with none between, while the fence runs).
    for pair in scrapes.windows(2) {
        for (k, v) in &pair[0] {
            if k.contains("_total{") {
                assert!(
                    value(&pair[1], k) >= *v,
                    "{k} went down: {v} then {}",
                    pair[1][k]
                );
            }
        }
    }
    let holders: Vec<&str> = scrapes
        .iter()
        .map(
            |s| match (value(s, &holder("n1")), value(s, &holder("n2"))) {
                (1.0, 0.0) => "n1",
                (0.0, 1.0) => "n2",
                (0.0, 0.0) => "none",
                _ => "both",
            },
        )
        .collect();
    let mut changes = holders.clone();
    changes.dedup();
    assert!(
        changes == ["n1", "n2"] || changes == ["n1", "none", "n2"],
        "holder over the scrapes: {changes:?}"
    );

    // The command line says the same as the scrape; with no daemon, up 0 and exit 3.
    let (code, by_command) = metrics_command(&c.hosts[1]);
    assert_eq!(code, Some(0));
    assert_eq!(value(&by_command, &failovers), 1.0);
    assert_eq!(value(&by_command, &holder("n2")), 1.0);
    let (code, dead) = metrics_command(&c.hosts[0]);
    assert_eq!(code, Some(3), "metrics of a node whose daemon is gone");
    assert_eq!(dead.get("ha_cluster_hb_up{}"), Some(&0.0), "{dead:?}");

    // Read-only, /metrics only.
    let other = c.hosts[1].sh_ok(
        "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9664/ \
         ; echo; curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:9664/metrics",
    );
    assert_eq!(other.split_whitespace().collect::<Vec<_>>(), ["404", "405"]);
}

/// A hook recording every call as `NODE ARG... [HB_PEER or HB_GROUP]` in `dir/events`; it hangs at
/// `peer-dead` and fails (exit 3, a message on stderr) at `fence-started`.
fn hook(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("hook");
    std::fs::write(
        &path,
        format!(
            r#"#!/bin/sh
echo "$HB_NODE $* [$HB_PEER$HB_GROUP]" >> {events}
case "$HB_EVENT" in
  peer-dead) exec sleep 60 ;;
  fence-started) echo "hook: no mail relay" >&2; exit 3 ;;
esac
"#,
            events = dir.join("events").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Pids of processes in `host` whose command line is `argv` (words joined by spaces).
fn processes_running(host: &Host, argv: &str) -> Vec<u32> {
    host.pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let words: Vec<&[u8]> = c.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
                words.join(&b' ') == argv.as_bytes()
            })
        })
        .collect()
}

#[test]
#[ignore = "needs root"]
fn the_hook_hears_a_failover_in_order_and_a_hanging_hook_holds_up_nothing() {
    let fence = Fence::new();
    let hooks = crate::util::agent::world_readable_tempdir();
    let hook = hook(hooks.path());
    let mut c = fenced_cluster(
        &fence,
        &format!("n1 IPaddr2::{VIP}/24/eth0\n"),
        &format!(
            "notify_command {} --to ops\nnotify_timeout 3\n",
            hook.display()
        ),
    );
    c.wait_vip_on(0, Duration::from_secs(15));
    let events = || std::fs::read_to_string(hooks.path().join("events")).unwrap_or_default();
    let group = c.status(0)["groups"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        "n1's group-acquired hook",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            events()
                .contains(&format!("n1 --to ops group-acquired {group} [{group}]"))
                .then_some(())
        },
    );

    let t0 = Instant::now();
    c.kill(0);
    c.wait_vip_on(1, Duration::from_secs(10));
    let took = t0.elapsed();
    // Deadtime 400 ms, the fence and the VIP's start take well under a second even on a
    // loaded 2-core machine; a loop waiting for the hanging peer-dead hook would take 3 s
    // (its timeout) more.
    assert!(
        took < Duration::from_millis(2500),
        "takeover took {took:?} with a hanging hook"
    );
    assert_eq!(
        processes_running(&c.hosts[1], "sleep 60").len(),
        1,
        "the peer-dead hook hangs while the group is taken over"
    );

    wait_for(
        "n2's group-acquired hook",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            events()
                .contains("n2 --to ops group-acquired")
                .then_some(())
        },
    );
    let n2: Vec<String> = events()
        .lines()
        .filter(|l| l.starts_with("n2 ") && !l.contains("medium-"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        n2,
        [
            "n2 --to ops peer-up n1 [n1]".to_string(),
            "n2 --to ops peer-dead n1 [n1]".to_string(),
            "n2 --to ops fence-started n1 [n1]".to_string(),
            "n2 --to ops fence-succeeded n1 [n1]".to_string(),
            format!("n2 --to ops group-acquired {group} [{group}]"),
        ],
        "n2's hook calls:\n{}",
        events()
    );
    assert!(
        events().contains("n2 --to ops medium-down n1 eth0:694"),
        "no medium-down:\n{}",
        events()
    );
    assert!(
        processes_running(&c.hosts[1], "sleep 60").is_empty(),
        "the hanging hook was not killed at notify_timeout"
    );
    let log = log_of(&c, 1);
    assert!(log.contains("notify_command peer-dead: "), "{log}");
    assert!(
        log.contains("notify_command fence-started: ")
            && log.contains("exit code 3: hook: no mail relay"),
        "the failing hook is not logged:\n{log}"
    );
}
