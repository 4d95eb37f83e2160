//! Decisions of the fs agent against a fake kernel: what it mounts, unmounts and signals.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::ocf::{Action, OcfRc, meta};

#[derive(Default)]
struct Kernel {
    table: Vec<MountEntry>,
    /// Mount points that answer EBUSY until their holders get this many signals.
    busy_until_signals: Vec<(PathBuf, usize)>,
    holders: Vec<Holder>,
    umounts: Vec<PathBuf>,
    signals: Vec<(u32, i32)>,
    foreign: Vec<ForeignMounts>,
    foreign_umounts: Vec<(u32, PathBuf)>,
}

#[derive(Clone, Default)]
struct FakeFs(Rc<RefCell<Kernel>>);

impl FsOps for FakeFs {
    fn mounts(&self) -> io::Result<Vec<MountEntry>> {
        Ok(self.0.borrow().table.clone())
    }
    fn mount(&self, req: &MountRequest) -> io::Result<()> {
        self.0
            .borrow_mut()
            .table
            .push(entry(&req.target, &req.source.to_string_lossy(), 7, 0));
        Ok(())
    }
    fn umount(&self, target: &Path) -> io::Result<()> {
        let mut k = self.0.borrow_mut();
        k.umounts.push(target.to_path_buf());
        let sent = k.signals.len();
        if k.busy_until_signals
            .iter()
            .any(|(p, n)| p == target && sent < *n)
        {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let before = k.table.len();
        k.table.retain(|m| m.mount_point != target);
        if k.table.len() == before {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(())
    }
    fn holders(&self, _: &Path, _: u64, _: HolderScan) -> Vec<Holder> {
        self.0.borrow().holders.clone()
    }
    fn signal(&self, pid: u32, signal: i32) -> bool {
        self.0.borrow_mut().signals.push((pid, signal));
        true
    }
    fn foreign_mounts(&self, _: u64) -> io::Result<Vec<ForeignMounts>> {
        Ok(std::mem::take(&mut self.0.borrow_mut().foreign))
    }
    fn umount_foreign(&self, pid: u32, mp: &Path, _: Duration) -> io::Result<()> {
        self.0
            .borrow_mut()
            .foreign_umounts
            .push((pid, mp.to_path_buf()));
        Ok(())
    }
}

fn entry(mount_point: &Path, source: &str, major: u32, minor: u32) -> MountEntry {
    MountEntry {
        mount_id: 100,
        parent_id: 1,
        major,
        minor,
        root: "/".into(),
        mount_point: mount_point.to_path_buf(),
        mount_options: "rw".into(),
        fstype: "ext4".into(),
        source: source.into(),
        super_options: "rw".into(),
    }
}

fn config(pairs: &[(&str, &str)]) -> AgentResult<FsConfig> {
    let params = Params::from_pairs(PARAMS, pairs)?;
    FsAgent::default().configure(&params)
}

fn busy_setup(policy: &str, fast: bool) -> (FsAgent, FakeFs, FsConfig) {
    let fake = FakeFs::default();
    {
        let mut k = fake.0.borrow_mut();
        k.table
            .push(entry(Path::new("/srv/data"), "/dev/loop9", 7, 9));
        k.busy_until_signals.push(("/srv/data".into(), 2));
        k.holders.push(Holder {
            pid: 4242,
            command: "sleep".into(),
            uses: vec!["cwd".into()],
        });
    }
    let cfg = config(&[
        ("device", "/dev/loop9"),
        ("directory", "/srv/data"),
        ("force_unmount", policy),
        ("signal_delay", "0"),
        ("fast_stop", if fast { "yes" } else { "no" }),
    ])
    .unwrap();
    (FsAgent::with(Box::new(fake.clone())), fake, cfg)
}

#[test]
fn meta_data_matches_the_parameter_table() {
    meta::check::assert_meta_matches(META, "fs", PARAMS, ACTIONS);
}

#[test]
fn stop_of_an_unmounted_filesystem_unmounts_nothing() {
    let fake = FakeFs::default();
    let agent = FsAgent::with(Box::new(fake.clone()));
    let cfg = config(&[
        ("device", "/dev/nonexistent-ferroha"),
        ("directory", "/srv/data"),
    ])
    .unwrap();
    agent.stop(&cfg, &Context::for_test(Action::Stop)).unwrap();
    agent.stop(&cfg, &Context::for_test(Action::Stop)).unwrap();
    assert!(fake.0.borrow().umounts.is_empty());
    assert_eq!(
        agent
            .monitor(&cfg, &Context::for_test(Action::Monitor))
            .unwrap(),
        Status::Stopped
    );
}

#[test]
fn busy_stop_sends_term_then_kill_until_it_unmounts() {
    let (agent, fake, cfg) = busy_setup("true", false);
    agent.stop(&cfg, &Context::for_test(Action::Stop)).unwrap();
    let k = fake.0.borrow();
    assert_eq!(
        k.signals,
        vec![(4242, libc::SIGTERM), (4242, libc::SIGKILL)]
    );
    assert!(k.table.is_empty());
}

#[test]
fn custom_term_signals_come_before_kill() {
    let (_, fake, _) = busy_setup("true", false);
    fake.0.borrow_mut().busy_until_signals[0].1 = 3;
    let agent = FsAgent::with(Box::new(fake.clone()));
    let cfg = config(&[
        ("device", "/dev/loop9"),
        ("directory", "/srv/data"),
        ("signal_delay", "0"),
        ("term_signals", "HUP, SIGINT"),
    ])
    .unwrap();
    agent.stop(&cfg, &Context::for_test(Action::Stop)).unwrap();
    let signals: Vec<i32> = fake.0.borrow().signals.iter().map(|s| s.1).collect();
    assert_eq!(signals, vec![libc::SIGHUP, libc::SIGINT, libc::SIGKILL]);
}

#[test]
fn force_unmount_false_never_signals_and_names_the_holder() {
    let (agent, fake, cfg) = busy_setup("false", false);
    let err = agent
        .stop(&cfg, &Context::for_test(Action::Stop))
        .unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
    assert!(
        err.reason().contains("4242") && err.reason().contains("sleep"),
        "{err}"
    );
    assert!(fake.0.borrow().signals.is_empty());
}

#[test]
fn fast_stop_kills_after_one_round() {
    let (_, fake, _) = busy_setup("true", true);
    fake.0.borrow_mut().busy_until_signals[0].1 = 3;
    let agent = FsAgent::with(Box::new(fake.clone()));
    let cfg = config(&[
        ("device", "/dev/loop9"),
        ("directory", "/srv/data"),
        ("signal_delay", "0"),
        ("term_signals", "HUP INT"),
        ("fast_stop", "true"),
    ])
    .unwrap();
    agent.stop(&cfg, &Context::for_test(Action::Stop)).unwrap();
    let signals: Vec<i32> = fake.0.borrow().signals.iter().map(|s| s.1).collect();
    assert_eq!(signals, vec![libc::SIGHUP, libc::SIGKILL, libc::SIGKILL]);
}

#[test]
fn submounts_are_unmounted_first_and_copies_elsewhere_too() {
    let fake = FakeFs::default();
    {
        let mut k = fake.0.borrow_mut();
        k.table
            .push(entry(Path::new("/srv/data"), "/dev/loop9", 7, 9));
        k.table
            .push(entry(Path::new("/srv/data/sub"), "tmpfs", 0, 50));
        k.table
            .push(entry(Path::new("/srv/database"), "/dev/loop8", 7, 8));
        k.foreign.push(ForeignMounts {
            ns: "mnt:[1]".into(),
            pid: 77,
            mount_points: vec!["/srv/data".into()],
        });
    }
    let agent = FsAgent::with(Box::new(fake.clone()));
    let cfg = config(&[
        ("device", "/dev/nonexistent-ferroha"),
        ("directory", "/srv/data/"),
    ])
    .unwrap();
    agent.stop(&cfg, &Context::for_test(Action::Stop)).unwrap();
    let k = fake.0.borrow();
    assert_eq!(
        k.umounts,
        vec![PathBuf::from("/srv/data/sub"), PathBuf::from("/srv/data")]
    );
    assert_eq!(
        k.table.len(),
        1,
        "/srv/database is another filesystem: {:?}",
        k.table
    );
    assert_eq!(k.foreign_umounts, vec![(77, PathBuf::from("/srv/data"))]);
}

#[test]
fn bad_input_is_err_configured() {
    let cases: &[&[(&str, &str)]] = &[
        &[("device", "/dev/x"), ("directory", "/")],
        &[("device", "/dev/x"), ("directory", "relative/dir")],
        &[("device", "/dev/x"), ("directory", "/srv/../etc")],
        &[("device", "/dev/x"), ("directory", "//")],
        &[("device", "sdb1"), ("directory", "/srv")],
        &[("device", "-U"), ("directory", "/srv")],
        &[
            ("device", "/dev/x"),
            ("directory", "/srv"),
            ("fstype", "ext4;rm"),
        ],
        &[
            ("device", "/dev/x"),
            ("directory", "/srv"),
            ("options", "bind"),
        ],
        &[
            ("device", "/dev/x"),
            ("directory", "/srv"),
            ("run_fsck", "sometimes"),
        ],
        &[
            ("device", "/dev/x"),
            ("directory", "/srv"),
            ("force_unmount", "maybe"),
        ],
        &[
            ("device", "/dev/x"),
            ("directory", "/srv"),
            ("term_signals", "TERM FOO"),
        ],
        &[
            ("device", "/dev/x"),
            ("directory", "/srv"),
            ("statusfile_prefix", "../x"),
        ],
        &[("directory", "/srv")],
        &[("device", "/dev/x")],
    ];
    for pairs in cases {
        let err = config(pairs).unwrap_err();
        assert_eq!(err.rc(), OcfRc::ErrConfigured, "{pairs:?}: {err}");
    }
}

#[test]
fn device_forms() {
    assert_eq!(
        parse_device("-U 1234-ABCD").unwrap(),
        DeviceSpec::Uuid("1234-abcd".into())
    );
    assert_eq!(
        parse_device("UUID=1234").unwrap(),
        DeviceSpec::Uuid("1234".into())
    );
    assert_eq!(
        parse_device("-L data").unwrap(),
        DeviceSpec::Label("data".into())
    );
    assert_eq!(
        parse_device("LABEL=data").unwrap(),
        DeviceSpec::Label("data".into())
    );
    assert_eq!(
        parse_device("nas:/export").unwrap(),
        DeviceSpec::Remote("nas:/export".into())
    );
    assert_eq!(
        parse_device("//srv/share").unwrap(),
        DeviceSpec::Remote("//srv/share".into())
    );
    assert_eq!(
        parse_device("/dev/drbd0").unwrap(),
        DeviceSpec::Path("/dev/drbd0".into())
    );
}

#[test]
fn options_split_into_flags_and_data() {
    let o =
        parse_options("ro,noatime,nosuid,data=ordered,defaults,x-systemd.foo,errors=remount-ro")
            .unwrap();
    assert_eq!(
        o.flags,
        MsFlags::MS_RDONLY | MsFlags::MS_NOATIME | MsFlags::MS_NOSUID
    );
    assert_eq!(o.data, "data=ordered,errors=remount-ro");
    assert_eq!(
        parse_options("nosuid,suid").unwrap().flags,
        MsFlags::empty()
    );
    assert_eq!(parse_options("").unwrap(), MountOptions::default());
}
