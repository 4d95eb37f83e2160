//! Writes the man pages and the bash completion of ferroha from their sources (`make man`):
//! `OUT/hb-monitor.8` from hb-monitor's clap command, `OUT/ocf_ferroha_<type>.7` from each
//! `ocf-meta/<type>.xml`, and `OUT/hb-monitor.bash` (clap_complete).
//!
//! Usage: `cargo run --example gen-docs -- OUT`.

mod pages;

use std::path::{Path, PathBuf};

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/man".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    let write = |name: &str, text: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}", path.display());
    };
    write(
        "hb-monitor.8",
        pages::hb_monitor_page(ferroha::hb::cli::command()).as_bytes(),
    );
    let meta = Path::new(env!("CARGO_MANIFEST_DIR")).join("ocf-meta");
    let mut agents: Vec<PathBuf> = std::fs::read_dir(&meta)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    agents.sort();
    for xml in agents {
        let agent = xml.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&xml).unwrap();
        write(
            &format!("ocf_ferroha_{agent}.7"),
            pages::agent_page(&agent, &text, env!("CARGO_PKG_VERSION")).as_bytes(),
        );
    }
    let mut bash = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut ferroha::hb::cli::command(),
        "hb-monitor",
        &mut bash,
    );
    write("hb-monitor.bash", &bash);
}
