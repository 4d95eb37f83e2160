//! Loop devices backed by sparse files, for filesystem tests: created with `losetup`, given a
//! filesystem with the real `mkfs`, and always detached when the guard drops (pass or fail).
//!
//! Loop devices are global to the machine, so each test gets its own; mount them only inside
//! a test [`Host`](super::host::Host) (its private mount namespace) so that nothing appears in
//! the machine's mount table. Declare the device before the host: the host drops first, its
//! mounts vanish with its namespace, and then the device can be detached.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A loop device over a sparse file in a temporary directory.
pub struct LoopDevice {
    path: PathBuf,
    /// The backing file, as the kernel reports it (canonical).
    file: PathBuf,
    _backing: tempfile::TempDir,
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl LoopDevice {
    /// A device of `size_mib` MiB (sparse: costs only what is written).
    pub fn new(size_mib: u64) -> LoopDevice {
        let backing = tempfile::Builder::new()
            .prefix("ferroha-loop-")
            .tempdir()
            .unwrap();
        let file = backing.path().join("disk.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(size_mib << 20))
            .expect("backing file");
        let path = run(
            "losetup",
            &["--find", "--show", &file.display().to_string()],
        );
        LoopDevice {
            path: PathBuf::from(path.trim()),
            file: file.canonicalize().unwrap_or(file),
            _backing: backing,
        }
    }

    /// A device with a fresh filesystem of `fstype` (ext2/3/4: 64 MiB, btrfs 256, xfs 320),
    /// optionally labelled.
    pub fn with_fs(fstype: &str, label: Option<&str>) -> LoopDevice {
        let size = match fstype {
            "xfs" => 320,
            "btrfs" => 256,
            _ => 64,
        };
        let dev = LoopDevice::new(size);
        dev.mkfs(fstype, label);
        dev
    }

    /// Makes a filesystem on the device.
    pub fn mkfs(&self, fstype: &str, label: Option<&str>) {
        let path = self.path.display().to_string();
        let mut args: Vec<&str> = match fstype {
            "xfs" | "btrfs" => vec!["-q", "-f"],
            _ => vec!["-q", "-F"],
        };
        if let Some(l) = label {
            args.extend(["-L", l]);
        }
        args.push(&path);
        run(&format!("mkfs.{fstype}"), &args);
    }

    /// The device node as a string.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Whether the device is still attached to our file. A detach while it is mounted only
    /// sets autoclear and the kernel detaches it later; its number may then be reused by
    /// another test, whose device a retried `losetup -d` must not detach.
    fn attached(&self) -> bool {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"))
            .is_ok_and(|f| std::path::Path::new(f.trim()) == self.file)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // Detaching fails while a mount still holds the device (a host being torn down):
        // retry briefly, then leave it to autoclear (set by losetup -d on a busy device).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if !self.attached() {
                return;
            }
            let ok = Command::new("losetup")
                .arg("-d")
                .arg(&self.path)
                .status()
                .is_ok_and(|s| s.success());
            if ok || Instant::now() >= deadline {
                if !ok {
                    eprintln!("loop device {} could not be detached", self.path.display());
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
