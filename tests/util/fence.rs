//! A fence command for test clusters, powering a test host off as far as it goes here.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::hb_cluster::Cluster;

/// A fence command for the test world: "powers off" the named node as far as it goes here
/// (flushes its addresses, takes its link down, SIGKILLs every process in its network
/// namespace but the host's anchor), found by the anchor pid the test wrote to `map`; logs
/// each call to `log`. `fail` existing makes it fail instead (after the seconds written in
/// it, if any).
pub struct Fence {
    dir: tempfile::TempDir,
}

impl Fence {
    pub fn new() -> Fence {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            r#"#!/bin/sh
set -u
dir={dir}
[ -e "$dir/fail" ] && {{ s=$(cat "$dir/fail"); sleep "${{s:-0}}"; echo "fence: told to fail" >&2; exit 1; }}
pid=$(awk -v n="$1" '$1 == n {{ print $2 }}' "$dir/map")
[ -n "$pid" ] || {{ echo "fence: unknown node $1" >&2; exit 1; }}
nsenter -t "$pid" -n sh -c 'ip addr flush dev eth0; ip link set eth0 down'
netns=$(readlink "/proc/$pid/ns/net")
for p in /proc/[0-9]*; do
  q=${{p#/proc/}}
  [ "$q" = "$pid" ] && continue
  [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$netns" ] && kill -9 "$q" 2>/dev/null
done
echo "$1 $HB_FENCE_NODE" >> "$dir/log"
exit 0
"#,
            dir = dir.path().display()
        );
        let path = dir.path().join("fence");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fence { dir }
    }

    pub fn command(&self) -> PathBuf {
        self.dir.path().join("fence")
    }

    pub fn map(&self, cluster: &Cluster) {
        let map: String = cluster
            .hosts
            .iter()
            .map(|h| format!("{} {}\n", h.name(), h.pid()))
            .collect();
        std::fs::write(self.dir.path().join("map"), map).unwrap();
    }

    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn set_failing(&self, failing: bool) {
        self.set_failing_after(failing.then_some(0));
    }

    /// Fail after this many seconds (`None`: work again).
    pub fn set_failing_after(&self, secs: Option<u32>) {
        let flag = self.dir.path().join("fail");
        match secs {
            Some(0) => std::fs::write(flag, "").unwrap(),
            Some(s) => std::fs::write(flag, s.to_string()).unwrap(),
            None => {
                let _ = std::fs::remove_file(flag);
            }
        }
    }
}

/// Two nodes with `haresources`, fenced by `fence`, deadtime 400 ms, no auto failback;
/// `extra` goes into both ha.cf.
pub fn fenced_cluster(fence: &Fence, haresources: &str, extra: &str) -> Cluster {
    let c = Cluster::new(
        haresources,
        &format!(
            "auto_failback off\nfence_command {}\nfence_timeout 10\n{extra}",
            fence.command().display()
        ),
        "400ms",
        |_| {},
    );
    fence.map(&c);
    c
}
