//! fs-agent as a process against real filesystems on loop devices, each test in its own test
//! host (a private mount namespace), so tests run in parallel and nothing reaches the
//! machine's mount table.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::agent::{AgentCmd, AgentRun};
use crate::util::host::{Guarded, Host, wait_for};
use crate::util::loopdev::LoopDevice;

/// The mount point used in the hosts (under the host's private /run).
const DIR: &str = "/run/ferroha/data";

fn fs() -> AgentCmd<'static> {
    AgentCmd::new("fs")
}

fn fs_on<'h>(host: &'h Host, dev: &LoopDevice) -> AgentCmd<'h> {
    AgentCmd::new("fs")
        .on(host)
        .param("device", &dev.name())
        .param("directory", DIR)
        .param("signal_delay", "0")
}

/// The host's mount table lines for `dir`.
fn mounted(host: &Host, dir: &str) -> Vec<String> {
    host.sh_ok("cat /proc/self/mountinfo")
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(dir))
        .map(str::to_string)
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Starts `script` with /bin/sh in the host, as a process that holds something.
fn holder(host: &Host, script: &str) -> Guarded {
    host.spawn(host.command("/bin/sh").args(["-c", script]))
}

fn wait_until_using(pid: u32, path_part: &str) {
    wait_for(
        "the holder to open its file",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
            let fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                        .collect()
                })
                .unwrap_or_default();
            (maps.contains(path_part)
                || cwd.to_string_lossy().contains(path_part)
                || fds.iter().any(|f| f.to_string_lossy().contains(path_part)))
            .then_some(())
        },
    );
}

// ---- the OCF contract, no privileges needed ------------------------------------------

#[test]
fn meta_data_and_bad_input() {
    fs().run("meta-data").rc(0);
    fs().run("validate-all").rc(6).reason_contains("'device'");
    for (dir, reason) in [
        ("/", "must not be /"),
        ("data", "absolute"),
        ("/srv/../etc", "'..'"),
    ] {
        fs().param("device", "/dev/null")
            .param("directory", dir)
            .run("validate-all")
            .rc(6)
            .reason_contains(reason);
    }
    fs().param("device", "/dev/x")
        .param("directory", "/srv/x")
        .param("options", "remount")
        .run("start")
        .rc(6)
        .reason_contains("remount");
    // stop with an invalid configuration has nothing to stop; a probe reports 7.
    fs().param("directory", "/").run("stop").rc(0);
    fs().env("OCF_RESKEY_CRM_meta_interval", "0")
        .run("monitor")
        .rc(7);
}

#[test]
fn missing_device_is_not_installed_but_probe_and_stop_succeed() {
    let agent = fs()
        .param("device", "/dev/ferroha-no-such-disk")
        .param("directory", "/srv/ferroha-none");
    agent.run("start").rc(5).reason_contains("does not exist");
    agent.run("validate-all").rc(5);
    agent.run("stop").rc(0);
    agent
        .env("OCF_RESKEY_CRM_meta_interval", "0")
        .run("monitor")
        .rc(7);
}

// ---- real filesystems ----------------------------------------------------------------

fn lifecycle(fstype: &str) {
    let dev = LoopDevice::with_fs(fstype, None);
    let host = Host::new("fs-node");
    let agent = fs_on(&host, &dev);
    agent.run("monitor").rc(7);
    agent.run("start").rc(0);
    let lines = mounted(&host, DIR);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!(" - {fstype} {}", dev.name())),
        "{lines:?}"
    );
    agent.run("start").rc(0);
    assert_eq!(mounted(&host, DIR).len(), 1, "double start mounted twice");
    for depth in ["0", "10", "20"] {
        fs_on(&host, &dev)
            .env("OCF_CHECK_LEVEL", depth)
            .run("monitor")
            .rc(0);
    }
    let status = host.sh_ok(&format!(
        "cat {DIR}/.Filesystem_status/default_fs-node | tr -d '\\0'"
    ));
    assert_eq!(status, "default");
    agent.run("stop").rc(0);
    agent.run("stop").rc(0);
    agent.run("monitor").rc(7);
    assert!(mounted(&host, DIR).is_empty());
}

#[test]
#[ignore = "needs root"]
fn ext4_double_start_monitor_depths_double_stop() {
    lifecycle("ext4");
}

#[test]
#[ignore = "needs root"]
fn xfs_double_start_monitor_depths_double_stop() {
    lifecycle("xfs");
}

#[test]
#[ignore = "needs root"]
fn btrfs_double_start_monitor_depths_double_stop() {
    lifecycle("btrfs");
}

#[test]
#[ignore = "needs root"]
fn device_by_uuid_and_label() {
    let dev = LoopDevice::with_fs("ext4", Some("ferroha-lbl"));
    let host = Host::new("fs-node");
    let uuid = String::from_utf8(
        std::process::Command::new("blkid")
            .args(["-p", "-s", "UUID", "-o", "value", &dev.name()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for device in [
        format!("-U {}", uuid.trim()),
        format!("UUID={}", uuid.trim()),
        "-L ferroha-lbl".to_string(),
    ] {
        let agent = AgentCmd::new("fs")
            .on(&host)
            .param("device", &device)
            .param("directory", DIR);
        agent.run("start").rc(0);
        assert!(mounted(&host, DIR)[0].contains(&dev.name()));
        agent.run("monitor").rc(0);
        agent.run("stop").rc(0);
    }
    AgentCmd::new("fs")
        .on(&host)
        .param("device", "-L no-such-label")
        .param("directory", DIR)
        .run("start")
        .rc(5);
}

#[test]
#[ignore = "needs root"]
fn stop_kills_exactly_the_holders_of_this_filesystem() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    fs_on(&host, &dev).run("start").rc(0);
    host.sh_ok(&format!(
        "head -c 8192 /dev/zero > {DIR}/mapped; echo x > {DIR}/open"
    ));
    let cwd = holder(&host, &format!("cd {DIR} && exec sleep 1000"));
    let file = holder(&host, &format!("exec 3<{DIR}/open; cd /; exec sleep 1000"));
    let map = host.spawn(host.command("python3").args([
        "-c",
        &format!(
            "import mmap,time,os; f=open('{DIR}/mapped','r+b'); m=mmap.mmap(f.fileno(),0); f.close(); os.chdir('/'); time.sleep(1000)"
        ),
    ]));
    // A user of the parent directory (another filesystem) must survive the stop.
    let bystander = holder(&host, "cd /run/ferroha && exec sleep 1000");
    wait_until_using(cwd.pid(), DIR);
    wait_until_using(file.pid(), "/open");
    wait_until_using(map.pid(), "/mapped");
    fs_on(&host, &dev).run("stop").rc(0);
    assert!(mounted(&host, DIR).is_empty());
    for (name, p) in [("cwd", &cwd), ("open file", &file), ("memory map", &map)] {
        wait_for(
            &format!("the {name} holder to die"),
            Duration::from_secs(5),
            Duration::from_millis(10),
            || (!alive(p.pid())).then_some(()),
        );
    }
    assert!(
        alive(bystander.pid()),
        "a user of the parent filesystem was killed"
    );
}

#[test]
#[ignore = "needs root"]
fn safe_mode_finds_holders_without_stat() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let agent = fs_on(&host, &dev).param("force_unmount", "safe");
    agent.run("start").rc(0);
    let cwd = holder(&host, &format!("cd {DIR} && exec sleep 1000"));
    let bystander = holder(&host, "cd /run/ferroha && exec sleep 1000");
    wait_until_using(cwd.pid(), DIR);
    agent.run("stop").rc(0);
    assert!(mounted(&host, DIR).is_empty());
    assert!(alive(bystander.pid()));
}

#[test]
#[ignore = "needs root"]
fn a_term_ignoring_holder_gets_kill() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    stop_kills_a_term_ignoring_holder(&host, &fs_on(&host, &dev).param("signal_delay", "1"));
}

/// Starts `agent`, holds the mount with a process that ignores TERM, and checks that stop
/// succeeds after TERM and KILL and unmounts. Returns how long the stop took.
fn stop_kills_a_term_ignoring_holder(host: &Host, agent: &AgentCmd<'_>) -> Duration {
    agent.run("start").rc(0);
    let stubborn = holder(
        host,
        &format!("trap '' TERM; cd {DIR}; while :; do sleep 1; done"),
    );
    wait_until_using(stubborn.pid(), DIR);
    let started = Instant::now();
    let run = agent.run("stop");
    let took = started.elapsed();
    run.rc(0);
    assert!(
        run.stderr.contains("signal 15") && run.stderr.contains("signal 9"),
        "{}",
        run.stderr
    );
    assert!(mounted(host, DIR).is_empty());
    took
}

#[test]
#[ignore = "needs root"]
fn force_unmount_false_fails_and_names_the_holder() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let agent = fs_on(&host, &dev).param("force_unmount", "false");
    agent.run("start").rc(0);
    let cwd = holder(&host, &format!("cd {DIR} && exec sleep 1000"));
    wait_until_using(cwd.pid(), DIR);
    agent
        .run("stop")
        .rc(1)
        .reason_contains(&format!("{} (sleep", cwd.pid()));
    assert!(alive(cwd.pid()), "force_unmount=false must not signal");
    assert_eq!(mounted(&host, DIR).len(), 1);
    drop(cwd);
    agent.run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn stop_removes_copies_in_other_mount_namespaces() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let agent = fs_on(&host, &dev);
    agent.run("start").rc(0);
    // A process that unshared its mount namespace while the filesystem was mounted keeps a
    // copy of the mount (as `ip netns exec` or a container would), without using it.
    let copy = host.spawn(host.command("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sleep",
        "1000",
    ]));
    wait_for(
        "the copy",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            std::fs::read_to_string(format!("/proc/{}/mountinfo", copy.pid()))
                .ok()
                .filter(|m| m.contains(DIR))
                .map(|_| ())
        },
    );
    // The unshare'd process is `sleep` itself (unshare execs it).
    agent.run("stop").rc(0);
    let copies = std::fs::read_to_string(format!("/proc/{}/mountinfo", copy.pid())).unwrap();
    assert!(!copies.contains(DIR), "copy left:\n{copies}");
    assert!(
        alive(copy.pid()),
        "the namespace's process did not use the filesystem"
    );
}

#[test]
#[ignore = "needs root"]
fn depth_20_monitor_fails_on_a_read_only_remount() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let agent = fs_on(&host, &dev);
    agent.run("start").rc(0);
    host.sh_ok(&format!("mount -o remount,ro {DIR}"));
    fs_on(&host, &dev).run("monitor").rc(0);
    fs_on(&host, &dev)
        .env("OCF_CHECK_LEVEL", "20")
        .run("monitor")
        .rc(1)
        .reason_contains("status file");
    agent.run("stop").rc(0);
}

/// `action` by fs-agent on `host` with `params`, asserting exit code `rc`; and by
/// resource-agents' Filesystem (when installed) with the same parameters, asserting
/// `original_rc`. None where the original would change the host (it would mount).
fn expect_codes(
    host: &Host,
    params: &[(&str, &str)],
    action: &str,
    rc: i32,
    original_rc: Option<i32>,
) -> AgentRun {
    let build = |mut cmd: AgentCmd<'_>| {
        for (k, v) in params {
            cmd = cmd.param(k, v);
        }
        cmd.run(action)
    };
    let ours = build(AgentCmd::new("fs").on(host));
    ours.rc(rc);
    let theirs = original_rc
        .and_then(|want| Some((want, AgentCmd::original("heartbeat/Filesystem")?)))
        .map(|(want, cmd)| (want, build(cmd.on(host))));
    if let Some((want, theirs)) = theirs {
        assert_eq!(
            theirs.rc, want,
            "Filesystem {action} {params:?}: stderr:\n{}",
            theirs.stderr
        );
    }
    ours
}

/// What is in the way on this node only (a mount already on the mount point or below it,
/// the device mounted elsewhere) is 5, not 6: 6 would stop the filesystem on every node
/// over one node's leftover mount. Filesystem mounts over the first (0, hiding what was
/// there), says 6 for the second and does not check the third; fs-agent deliberately
/// differs.
#[test]
#[ignore = "needs root"]
fn refuses_to_mount_over_another_mount_or_a_device_mounted_elsewhere() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let name = dev.name();
    let params = [
        ("device", name.as_str()),
        ("directory", DIR),
        ("fstype", "ext4"),
    ];
    host.sh_ok(&format!("mkdir -p {DIR} && mount -t tmpfs tmpfs {DIR}"));
    expect_codes(&host, &params, "start", 5, Some(0)).reason_contains("another mount");
    // Whatever the original stacked on top, and the tmpfs below it.
    host.sh_ok(&format!(
        "while mountpoint -q {DIR}; do umount {DIR}; done; \
         mkdir -p {DIR}/below && mount -t tmpfs tmpfs {DIR}/below"
    ));
    expect_codes(&host, &params, "start", 5, Some(6)).reason_contains("mounted below");
    host.sh_ok(&format!(
        "umount {DIR}/below; mkdir -p /run/elsewhere && mount {} /run/elsewhere",
        dev.name()
    ));
    expect_codes(&host, &params, "start", 5, None)
        .reason_contains("already mounted read-write on /run/elsewhere");
    assert!(mounted(&host, DIR).is_empty());
}

/// The device path is not a block device here (a regular file left where the device node
/// should be, as `dd of=/dev/sdX` creates when the disk is absent): 5, as Filesystem says
/// ("Couldn't find device"). A device holding no filesystem fs-agent knows: 1, as
/// Filesystem's failing mount. A directory is a bind mount, which fs-agent does not do:
/// wrong on every node, 6.
#[test]
#[ignore = "needs root"]
fn a_device_that_is_not_one_here_is_not_err_configured() {
    let host = Host::new("fs-node");
    host.sh_ok("mkdir -p /run/not-a-disk/dir && touch /run/not-a-disk/file");
    let file = [
        ("device", "/run/not-a-disk/file"),
        ("directory", DIR),
        ("fstype", "ext4"),
    ];
    expect_codes(&host, &file, "start", 5, Some(5)).reason_contains("not a block device");
    expect_codes(&host, &file, "validate-all", 5, None);
    let blank = LoopDevice::new(16);
    let name = blank.name();
    let unformatted = [("device", name.as_str()), ("directory", DIR)];
    expect_codes(&host, &unformatted, "start", 1, Some(1)).reason_contains("set fstype");
    AgentCmd::new("fs")
        .on(&host)
        .param("device", "/run/not-a-disk/dir")
        .param("directory", DIR)
        .run("start")
        .rc(6)
        .reason_contains("bind");
    assert!(mounted(&host, DIR).is_empty());
}

/// Options this node's kernel rejects fail the start with 1, as Filesystem's failing mount
/// does (another node's kernel may accept them, as during a rolling upgrade); a filesystem
/// type this kernel does not know is 5, as Filesystem says: neither is 6.
#[test]
#[ignore = "needs root"]
fn options_or_a_type_the_kernel_rejects_fail_here_only_and_leave_nothing() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let name = dev.name();
    let bogus = [
        ("device", name.as_str()),
        ("directory", DIR),
        ("fstype", "ext4"),
        ("options", "data=bogus"),
    ];
    expect_codes(&host, &bogus, "start", 1, None).reason_contains("data=bogus");
    assert!(mounted(&host, DIR).is_empty());
    assert!(
        !host.sh("test -e /run/ferroha").status.success(),
        "a failed start left the directories it created"
    );
    // (Filesystem leaves the mount point it created.)
    expect_codes(&host, &bogus, "start", 1, Some(1));
    assert!(mounted(&host, DIR).is_empty());
    let unknown = [
        ("device", name.as_str()),
        ("directory", DIR),
        ("fstype", "nosuchfs"),
    ];
    expect_codes(&host, &unknown, "start", 5, Some(5)).reason_contains("unknown filesystem type");
    assert!(mounted(&host, DIR).is_empty());
    fs_on(&host, &dev)
        .param("options", "ro,noatime")
        .run("start")
        .rc(0);
    assert!(
        mounted(&host, DIR)[0].contains(" ro,noatime"),
        "{:?}",
        mounted(&host, DIR)
    );
    fs_on(&host, &dev).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn fsck_repairs_a_dirty_ext2_and_a_broken_one_fails_start() {
    let dev = LoopDevice::with_fs("ext2", None);
    let host = Host::new("fs-node");
    // A wrong free-blocks count and a "not clean" state: fsck -p repairs both (exit 1).
    let out = std::process::Command::new("debugfs")
        .args(["-w", "-R", "ssv free_blocks_count 12", &dev.name()])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::process::Command::new("debugfs")
        .args(["-w", "-R", "ssv state 0", &dev.name()])
        .output()
        .unwrap();
    let run = fs_on(&host, &dev).run("start");
    run.rc(0);
    assert!(run.stderr.contains("repaired"), "{}", run.stderr);
    fs_on(&host, &dev).run("stop").rc(0);
    let state = std::process::Command::new("dumpe2fs")
        .args(["-h", &dev.name()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&state.stdout).contains("Filesystem state:         clean"));
    // A cleared root inode is beyond what -p may fix: the check fails and start with it. (A
    // clean superblock would make fsck -p skip the check, so mark it dirty too.)
    for request in ["clri <2>", "ssv state 0"] {
        std::process::Command::new("debugfs")
            .args(["-w", "-R", request, &dev.name()])
            .output()
            .unwrap();
    }
    fs_on(&host, &dev)
        .run("start")
        .rc(1)
        .reason_contains("filesystem check failed");
    assert!(mounted(&host, DIR).is_empty());
    // run_fsck=no mounts without checking (and the kernel then refuses the broken root dir
    // or mounts it; either way the agent must not report a check).
    let _ = fs_on(&host, &dev).param("run_fsck", "no").run("start");
    fs_on(&host, &dev).run("stop").rc(0);
}

#[test]
#[ignore = "needs root"]
fn directory_is_created_when_missing() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    assert!(!host.sh(&format!("test -e {DIR}")).status.success());
    fs_on(&host, &dev).run("start").rc(0);
    fs_on(&host, &dev).run("stop").rc(0);
    assert!(host.sh(&format!("test -d {DIR}")).status.success());
    let _ = Path::new(DIR);
}

/// `fast_stop` caps the signal rounds at 6 s, KILL after the first round: with a
/// `signal_delay` far above the cap and a holder that ignores TERM, stop sends TERM, waits
/// no longer than the cap and KILLs, well inside a 60 s op timeout.
#[test]
#[ignore = "needs root"]
fn fast_stop_kills_a_term_ignoring_holder_within_6_s() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let agent = fs_on(&host, &dev)
        .param("fast_stop", "yes")
        .param("signal_delay", "30")
        .env("OCF_RESKEY_CRM_meta_timeout", "60000");
    let took = stop_kills_a_term_ignoring_holder(&host, &agent);
    // TERM's round lasts until 1 s before the cap ends (the agent keeps that second for
    // KILL): about 5 s, so at least 4 s shows TERM was given its time, not skipped. At most
    // the cap plus 2 s for the agent's start, the KILL's effect (50 ms polls) and the unmount
    // on a loaded 2-core machine; without the cap the pause would be signal_delay (30 s).
    assert!(
        took >= Duration::from_secs(4) && took <= Duration::from_secs(8),
        "stop took {took:?}"
    );
}

/// In a clone (`CRM_meta_clone_max` above 1) a non-cluster filesystem would be mounted on
/// several nodes at once, which destroys it: 6 unless `force_clones`. A cluster or network
/// filesystem, and a clone of one instance, are fine.
#[test]
#[ignore = "needs root"]
fn a_clone_of_a_non_cluster_filesystem_needs_force_clones() {
    let dev = LoopDevice::with_fs("ext4", None);
    let host = Host::new("fs-node");
    let clone_of = |max: &str| fs_on(&host, &dev).env("OCF_RESKEY_CRM_meta_clone_max", max);
    clone_of("2")
        .run("validate-all")
        .rc(6)
        .reason_contains("force_clones");
    clone_of("2").run("start").rc(6);
    assert!(mounted(&host, DIR).is_empty());
    clone_of("2")
        .param("force_clones", "true")
        .run("validate-all")
        .rc(0);
    clone_of("1").run("validate-all").rc(0);
    AgentCmd::new("fs")
        .on(&host)
        .param("device", "198.18.10.1:/export")
        .param("fstype", "nfs")
        .param("directory", DIR)
        .env("OCF_RESKEY_CRM_meta_clone_max", "2")
        .run("validate-all")
        .rc(0);
}

/// "No modprobe, fuser, lsof, blkid or mount is needed for block devices": with none of them
/// (nor anything else) on PATH, start (device by label), every monitor depth and a stop that
/// must find and kill a holder all succeed, and strace sees no program executed.
#[test]
#[ignore = "needs root"]
fn block_devices_need_no_helper_program() {
    let dev = LoopDevice::with_fs("ext4", Some("fh-nohelpers"));
    let host = Host::new("fs-node");
    let empty_path = tempfile::tempdir().unwrap();
    let agent = || {
        AgentCmd::new("fs")
            .on(&host)
            .param("device", "-L fh-nohelpers")
            .param("directory", DIR)
            .param("signal_delay", "0")
            .env("PATH", &empty_path.path().display().to_string())
    };
    let expect_no_exec = |traced: crate::util::agent::Traced, what: &str, rc: i32| {
        traced.run.rc(rc);
        assert_eq!(traced.execs, 0, "{what} executed a program");
    };
    expect_no_exec(agent().run_traced("start"), "start", 0);
    assert!(mounted(&host, DIR)[0].contains(&dev.name()));
    for depth in ["0", "10", "20"] {
        let traced = agent().env("OCF_CHECK_LEVEL", depth).run_traced("monitor");
        expect_no_exec(traced, &format!("monitor depth {depth}"), 0);
    }
    let cwd = holder(&host, &format!("cd {DIR} && exec sleep 1000"));
    wait_until_using(cwd.pid(), DIR);
    expect_no_exec(agent().run_traced("stop"), "stop", 0);
    assert!(!alive(cwd.pid()), "the holder survived the stop");
    assert!(mounted(&host, DIR).is_empty());
}

/// nfs, cifs and fuse go through `mount -t TYPE -o OPTIONS SHARE DIR`. A stand-in `mount`
/// on PATH records its argv and fails as mount.cifs does without a server (exit 32): start
/// is 1 with mount's complaint, and leaves nothing, not even the mount point it created.
#[test]
#[ignore = "needs root"]
fn network_and_fuse_filesystems_go_through_mount_and_fail_cleanly_without_a_server() {
    let host = Host::new("fs-node");
    let bin = tempfile::tempdir().unwrap();
    let argv_file = bin.path().join("argv");
    let mount = bin.path().join("mount");
    std::fs::write(
        &mount,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"${0%/*}/argv\"\n\
         echo 'mount error(112): Host is down' >&2\nexit 32\n",
    )
    .unwrap();
    std::fs::set_permissions(&mount, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        ("//198.18.10.1/share", "cifs", "username=ha,vers=3.0"),
        ("198.18.10.1:/export", "nfs4", "soft,timeo=10"),
        ("sshfs#ha@198.18.10.1:/srv", "fuse", "ro"),
    ];
    for (device, fstype, options) in cases {
        let _ = std::fs::remove_file(&argv_file);
        AgentCmd::new("fs")
            .on(&host)
            .param("device", device)
            .param("fstype", fstype)
            .param("options", options)
            .param("directory", DIR)
            .env("PATH", &bin.path().display().to_string())
            .run("start")
            .rc(1)
            .reason_contains("Host is down");
        let argv = std::fs::read_to_string(&argv_file)
            .unwrap_or_else(|e| panic!("{fstype}: mount was not run: {e}"));
        let argv: Vec<&str> = argv.lines().collect();
        assert_eq!(argv, ["-t", fstype, "-o", options, device, DIR], "{fstype}");
        assert!(mounted(&host, DIR).is_empty(), "{fstype}");
        let left = host.sh("test -e /run/ferroha");
        assert!(!left.status.success(), "{fstype}: /run/ferroha left behind");
    }
}
