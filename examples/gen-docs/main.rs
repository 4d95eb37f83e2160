//! Writes the man pages and the bash completion of ferroha from their sources (`make man`):
//! `OUT/hb-monitor.8` from hb-monitor's clap command, `OUT/ocf_ferroha_<type>.7` from each
//! `ocf-meta/<type>.xml`, and `OUT/hb-monitor.bash` (clap_complete).
//!
//! Usage: `cargo run --example gen-docs -- OUT`.

mod pages;

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/man".into()),
    );
    for path in pages::write_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display())) {
        println!("{}", path.display());
    }
}
