//! Artefacts built once by a script and cached under `target/` (the QEMU guest, the Debian
//! chroot): each script hashes its own inputs into the name of what it builds, reuses that
//! when present, and prints its path as its last line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How long a cache build may take (debootstrap over the network, on two cores).
const BUILD_TIMEOUT_SECS: &str = "900";

/// Runs `script` (relative to the crate) with the cache directory `cache` (relative to the
/// crate) and `args` after it, and returns the path it printed last. Panics with the script's
/// stderr and `host_packages` (what it needs on the machine) when it fails.
pub fn build(script: &str, cache: &str, args: &[&str], host_packages: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join(script);
    let start = Instant::now();
    let out = Command::new("timeout")
        .arg(BUILD_TIMEOUT_SECS)
        .arg(&script)
        .arg(root.join(cache))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stderr}\n(host packages: {host_packages})",
        script.display(),
        out.status
    );
    eprint!("{stderr}");
    eprintln!("{} done in {:.1?}", script.display(), start.elapsed());
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}
