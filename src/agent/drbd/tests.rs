//! drbd-agent's decisions against a fake DRBD that answers with what real DRBD 8.4 printed in
//! each state (tests/fixtures/drbd/8.4) and moves between those states on drbdadm commands.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::ocf::{Action, OcfRc, meta};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/drbd/8.4");

#[derive(Default)]
struct World {
    /// The fixture state events2 currently prints.
    state: String,
    /// drbdadm calls, in order.
    calls: Vec<String>,
    /// Scores published (None = removed).
    scores: Vec<Option<u32>>,
    /// Exit code to fail the next `drbdadm <verb>` with.
    fail: Vec<(String, i32, String)>,
    /// events2 text that replaces the fixture's until the next drbdadm command.
    text: Option<String>,
    /// What `drbdadm dump` prints.
    dump: String,
    /// What `drbdadm --version` prints (None: it fails, as the simulator's does).
    version: Option<String>,
}

#[derive(Clone, Default)]
struct FakeDrbd(Rc<RefCell<World>>);

fn recorded(state: &str) -> String {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{state}/drbdsetup-events2-now.txt"))
        .unwrap_or_else(|e| panic!("{state}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

impl DrbdCtl for FakeDrbd {
    fn events2(&self, _: &Path, _: &str, _: Duration) -> Result<String, DrbdFailure> {
        let w = self.0.borrow();
        Ok(w.text.clone().unwrap_or_else(|| recorded(&w.state)))
    }
    fn setup_down(&self, _: &Path, _: &str, _: Duration) -> Result<(), DrbdFailure> {
        let mut w = self.0.borrow_mut();
        w.calls.push("drbdsetup down".into());
        w.state = "down".into();
        Ok(())
    }
    fn setup_outdate(&self, _: &Path, minor: u32, _: Duration) -> Result<(), DrbdFailure> {
        let mut w = self.0.borrow_mut();
        w.calls.push(format!("drbdsetup outdate {minor}"));
        w.state = "secondary-outdated".into();
        Ok(())
    }
    fn drbdadm(&self, _: &DrbdConfig, args: &[&str], _: Duration) -> Result<String, DrbdFailure> {
        let mut w = self.0.borrow_mut();
        w.calls.push(args.join(" "));
        if args[0] == "dump" && w.fail.is_empty() {
            return Ok(w.dump.clone());
        }
        if let Some(i) = w.fail.iter().position(|(verb, _, _)| verb == args[0]) {
            let (_, code, message) = w.fail.remove(i);
            return Err(DrbdFailure {
                code: Some(code),
                message,
                not_found: false,
            });
        }
        let next = match args[0] {
            "up" => Some("secondary-secondary-uptodate"),
            "primary" => Some("primary-uptodate-connected"),
            "secondary" => Some("secondary-secondary-uptodate"),
            "down" => Some("down"),
            "adjust" => Some("secondary-secondary-uptodate"),
            _ => None,
        };
        if let Some(n) = next {
            w.text = None;
            w.state = n.to_string();
        }
        Ok(String::new())
    }
    fn drbdadm_version(&self, _: &Path, _: Duration) -> Result<String, DrbdFailure> {
        self.0.borrow().version.clone().ok_or(DrbdFailure {
            code: Some(20),
            message: "unknown option --version".into(),
            not_found: false,
        })
    }
    fn set_score(&self, _: &str, score: Option<u32>) {
        self.0.borrow_mut().scores.push(score);
    }
}

fn setup(state: &str, pairs: &[(&str, &str)]) -> (DrbdAgent, FakeDrbd, DrbdConfig) {
    let fake = FakeDrbd::default();
    fake.0.borrow_mut().state = state.to_string();
    let mut all = vec![("drbd_resource", "r0")];
    all.extend_from_slice(pairs);
    let cfg = DrbdAgent::default()
        .configure(&Params::from_pairs(PARAMS, &all).unwrap())
        .unwrap();
    (DrbdAgent::with(Box::new(fake.clone())), fake, cfg)
}

fn ctx(action: Action, clone: bool) -> Context {
    let mut c = Context::for_test(action);
    if clone {
        c.env
            .insert("OCF_RESKEY_CRM_meta_promotable".into(), "true".into());
        c.env
            .insert("OCF_RESKEY_CRM_meta_clone_max".into(), "2".into());
    }
    c.interval_ms = Some(10_000);
    c
}

fn calls(fake: &FakeDrbd) -> Vec<String> {
    fake.0.borrow().calls.clone()
}

#[test]
fn meta_data_matches_the_parameter_table() {
    meta::check::assert_meta_matches(META, "drbd", PARAMS, ACTIONS);
}

#[test]
fn as_a_primitive_start_brings_it_up_and_makes_it_primary() {
    let (agent, fake, cfg) = setup("down", &[]);
    let c = ctx(Action::Start, false);
    assert_eq!(agent.monitor(&cfg, &c).unwrap(), Status::Stopped);
    // Start without validate (no drbdadm binary here): the part after validation.
    let state = agent.up(&cfg, &c).unwrap();
    agent.become_primary(&cfg, &c, &state).unwrap();
    assert_eq!(calls(&fake), ["up", "primary"]);
    assert_eq!(agent.monitor(&cfg, &c).unwrap(), Status::Running);
    // stop leaves it up and replicating, as Secondary: for the group, "not running".
    agent.stop(&cfg, &c).unwrap();
    assert_eq!(calls(&fake), ["up", "primary", "secondary"]);
    assert_eq!(agent.monitor(&cfg, &c).unwrap(), Status::Stopped);
    assert!(
        fake.0.borrow().scores.is_empty(),
        "a primitive publishes no scores"
    );
}

#[test]
fn as_a_clone_monitor_reports_roles_and_publishes_scores() {
    let (agent, fake, cfg) = setup("primary-uptodate-connected", &[]);
    let c = ctx(Action::Monitor, true);
    assert_eq!(agent.monitor(&cfg, &c).unwrap(), Status::Promoted);
    fake.0.borrow_mut().state = "secondary-peer-gone".into();
    assert_eq!(agent.monitor(&cfg, &c).unwrap(), Status::Running);
    fake.0.borrow_mut().state = "secondary-outdated".into();
    assert_eq!(agent.monitor(&cfg, &c).unwrap(), Status::Running);
    fake.0.borrow_mut().state = "down".into();
    assert_eq!(agent.monitor(&cfg, &c).unwrap(), Status::Stopped);
    assert_eq!(
        fake.0.borrow().scores,
        vec![Some(10000), Some(1000), None, None]
    );
}

#[test]
fn promotion_is_refused_without_up_to_date_data_or_with_a_primary_peer() {
    for (state, why) in [
        ("secondary-outdated", "Outdated"),
        ("secondary-inconsistent-connected", "Inconsistent"),
        ("secondary-uptodate-connected", "peer of r0 is Primary"),
    ] {
        let (agent, fake, cfg) = setup(state, &[]);
        let err = agent
            .promote(&cfg, &ctx(Action::Promote, true))
            .unwrap_err();
        assert_eq!(err.rc(), OcfRc::ErrGeneric, "{state}");
        assert!(
            err.reason().contains("refusing to promote") && err.reason().contains(why),
            "{state}: {err}"
        );
        assert!(
            calls(&fake).is_empty(),
            "{state}: drbdadm called: {:?}",
            calls(&fake)
        );
    }
}

#[test]
fn force_promote_overrides_the_checks_explicitly() {
    let (agent, fake, cfg) = setup("secondary-outdated", &[("force_promote", "true")]);
    agent.promote(&cfg, &ctx(Action::Promote, true)).unwrap();
    assert_eq!(calls(&fake), ["primary --force"]);
}

#[test]
fn the_survivor_of_a_crash_is_promoted() {
    let (agent, fake, cfg) = setup("secondary-peer-gone", &[]);
    agent.promote(&cfg, &ctx(Action::Promote, true)).unwrap();
    assert_eq!(calls(&fake), ["primary"]);
}

#[test]
fn demotion_refused_while_mounted_names_the_cause() {
    let (agent, fake, cfg) = setup("primary-uptodate-connected", &[]);
    fake.0.borrow_mut().fail.push((
        "secondary".into(),
        11,
        "0: State change failed: (-12) Device is held open by someone".into(),
    ));
    let err = agent.demote(&cfg, &ctx(Action::Demote, true)).unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrGeneric);
    assert!(
        err.reason().contains("held open") && err.reason().contains("still open"),
        "{err}"
    );
    // Once unmounted, it succeeds.
    agent.demote(&cfg, &ctx(Action::Demote, true)).unwrap();
    assert_eq!(
        agent.monitor(&cfg, &ctx(Action::Monitor, true)).unwrap(),
        Status::Running
    );
}

#[test]
fn clone_stop_of_a_primary_demotes_first_then_takes_it_down() {
    let (agent, fake, cfg) = setup("primary-uptodate-connected", &[]);
    agent.stop(&cfg, &ctx(Action::Stop, true)).unwrap();
    assert_eq!(calls(&fake), ["secondary", "down"]);
    assert_eq!(fake.0.borrow().scores.last(), Some(&None));
    agent.stop(&cfg, &ctx(Action::Stop, true)).unwrap();
    assert_eq!(
        calls(&fake),
        ["secondary", "down"],
        "stop of a stopped resource does nothing"
    );
}

#[test]
fn a_failed_disk_on_the_primary_is_failed_promoted() {
    let (agent, fake, cfg) = setup("primary-uptodate-connected", &[]);
    let text = "exists resource name:r0 role:Primary suspended:no\n\
                exists device name:r0 volume:0 minor:0 disk:Diskless\nexists -\n";
    fake.0.borrow_mut().text = Some(text.into());
    let err = agent
        .monitor(&cfg, &ctx(Action::Monitor, true))
        .unwrap_err();
    assert_eq!(err.rc(), OcfRc::FailedPromoted);
}

#[test]
fn configuration_that_drbdadm_rejects_is_err_installed_with_its_message() {
    let (agent, fake, mut cfg) = setup("down", &[]);
    cfg.drbdadm = PathBuf::from("/bin/true");
    cfg.drbdsetup = PathBuf::from("/bin/true");
    cfg.drbdconf = PathBuf::from("/etc/hostname");
    fake.0.borrow_mut().fail.push((
        "dump".into(),
        10,
        "'r9' not defined in your config (for this host).".into(),
    ));
    let err = agent
        .validate(&cfg, &ctx(Action::ValidateAll, false))
        .unwrap_err();
    assert_eq!(err.rc(), OcfRc::ErrInstalled);
    assert!(err.reason().contains("not defined in your config"), "{err}");
    cfg.drbdadm = PathBuf::from("/nonexistent/drbdadm");
    assert_eq!(
        agent
            .validate(&cfg, &ctx(Action::ValidateAll, false))
            .unwrap_err()
            .rc(),
        OcfRc::ErrInstalled
    );
}

#[test]
fn bad_parameters_are_err_configured() {
    for pairs in [
        &[("drbd_resource", "r 0")][..],
        &[("drbd_resource", "r0"), ("adjust_master_score", "1 2 3")],
        &[("drbd_resource", "r0"), ("adjust_master_score", "10 5 3 1")],
        &[("drbd_resource", "r0"), ("drbdadm", "drbdadm")],
        &[],
    ] {
        let err = Params::from_pairs(PARAMS, pairs)
            .and_then(|p| DrbdAgent::default().configure(&p))
            .unwrap_err();
        assert_eq!(err.rc(), OcfRc::ErrConfigured, "{pairs:?}");
    }
}

#[test]
fn stop_and_probe_with_unusable_parameters_still_ask_drbd_through_the_trait() {
    let (agent, fake, _) = setup("primary-uptodate-connected", &[]);
    let params = Params::from_pairs(PARAMS, &[("drbd_resource", "r0")]).unwrap();
    let err = AgentError::Configured("adjust_master_score: not four numbers".into());
    assert!(agent.active_unconfigured(&params, &ctx(Action::Monitor, true)));
    agent
        .stop_unconfigured(&params, &ctx(Action::Stop, true), &err)
        .unwrap();
    assert_eq!(fake.0.borrow().calls, ["drbdsetup down"]);
    assert!(!agent.active_unconfigured(&params, &ctx(Action::Monitor, true)));
}

/// `drbdadm --version` as drbd-utils prints it.
fn version_text(kernel: &str, utils: &str) -> String {
    format!(
        "DRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE={kernel}\nDRBDADM_VERSION_CODE={utils}\n"
    )
}

/// A validatable configuration: tools and file exist (the fake answers for them).
fn validatable(state: &str) -> (DrbdAgent, FakeDrbd, DrbdConfig) {
    let (agent, fake, mut cfg) = setup(state, &[]);
    cfg.drbdadm = PathBuf::from("/bin/true");
    cfg.drbdsetup = PathBuf::from("/bin/true");
    cfg.drbdconf = PathBuf::from("/etc/hostname");
    (agent, fake, cfg)
}

#[test]
fn validate_checks_the_module_and_tools_pair() {
    let (agent, fake, cfg) = validatable("down");
    let c = ctx(Action::ValidateAll, false);
    // Tools that do not report versions: nothing to check.
    agent.validate(&cfg, &c).unwrap();
    for (kernel, utils, rc, why) in [
        ("0x090212", "0x091600", None, ""),
        ("0x08040b", "0x091600", None, ""),
        // No module: a warning (start says 5 then); the configuration is still checked.
        ("0x000000", "0x091600", None, ""),
        (
            "0x090212",
            "0x080913",
            Some(OcfRc::ErrInstalled),
            "needs drbd-utils 9",
        ),
        (
            "0x080304",
            "0x080913",
            Some(OcfRc::ErrInstalled),
            "older than 8.4",
        ),
    ] {
        fake.0.borrow_mut().version = Some(version_text(kernel, utils));
        match (agent.validate(&cfg, &c), rc) {
            (Ok(()), None) => {}
            (Err(e), Some(rc)) => {
                assert_eq!(e.rc(), rc, "{kernel} {utils}: {e}");
                assert!(e.reason().contains(why), "{kernel} {utils}: {e}");
            }
            (got, _) => panic!("{kernel} {utils}: {got:?}"),
        }
    }
}

#[test]
fn validate_checks_clone_options_against_the_module_and_the_nodes() {
    let (agent, fake, cfg) = validatable("down");
    let three =
        "resource r0 {\n    on alpha {\n    }\n    on beta {\n    }\n    on gamma {\n    }\n}\n";
    fake.0.borrow_mut().dump = three.to_string();
    let check = |kernel: &str, meta: &[(&str, &str)]| {
        fake.0.borrow_mut().version = Some(version_text(kernel, "0x091600"));
        let mut c = ctx(Action::ValidateAll, true);
        for (k, v) in meta {
            c.env
                .insert(format!("OCF_RESKEY_CRM_meta_{k}"), (*v).to_string());
        }
        agent.validate(&cfg, &c).map_err(|e| {
            assert_eq!(e.rc(), OcfRc::ErrConfigured, "{kernel} {meta:?}: {e}");
            e.reason().to_string()
        })
    };
    let v9 = "0x090212";
    let v84 = "0x08040b";
    check(v9, &[("clone_max", "3")]).unwrap();
    check(v84, &[("clone_max", "2")]).unwrap();
    check(v9, &[("clone_max", "2"), ("master_max", "2")]).unwrap();
    /// A module, the clone options set, and what the refusal must say.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let refused: [Case; 8] = [
        (v9, &[("clone_max", "4")], "names 3 nodes"),
        (v84, &[("clone_max", "3")], "8.4"),
        // Two Primaries: two nodes, whatever the module.
        (
            v9,
            &[("clone_max", "3"), ("promoted_max", "2")],
            "two Primaries",
        ),
        (v9, &[("promoted_max", "3")], "more than two"),
        (v9, &[("clone_node_max", "2")], "per node"),
        (v9, &[("master_node_max", "2")], "per node"),
        (v9, &[("clone_max", "many")], "not a number"),
        (v84, &[("promoted_node_max", "2")], "per node"),
    ];
    for (kernel, meta, why) in refused {
        let reason = check(kernel, meta).unwrap_err();
        assert!(reason.contains(why), "{kernel} {meta:?}: {reason}");
    }
}

#[test]
fn start_adjusts_a_half_configured_resource_and_a_clone_instance() {
    let detached = "exists resource name:r0 role:Secondary suspended:no\n\
                    exists connection name:r0 peer-node-id:0 conn-name:peer connection:Connected role:Secondary\n\
                    exists device name:r0 volume:0 minor:0 disk:Diskless\n\
                    exists peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 replication:Established peer-disk:UpToDate resync-suspended:no\n\
                    exists -\n";
    // A primitive's start on a complete resource is a takeover: nothing to adjust.
    let (agent, fake, cfg) = setup("secondary-secondary-uptodate", &[]);
    agent.up(&cfg, &ctx(Action::Start, false)).unwrap();
    assert_eq!(calls(&fake), Vec::<String>::new());
    // A volume without its disk is re-attached by adjust, in both modes.
    for clone in [false, true] {
        let (agent, fake, cfg) = setup("secondary-secondary-uptodate", &[]);
        fake.0.borrow_mut().text = Some(detached.to_string());
        let s = agent.up(&cfg, &ctx(Action::Start, clone)).unwrap();
        assert_eq!(calls(&fake), ["adjust"]);
        assert!(s.half_configured().is_none());
    }
    // A clone instance's start applies a changed configuration.
    let (agent, fake, cfg) = setup("secondary-secondary-uptodate", &[]);
    agent.up(&cfg, &ctx(Action::Start, true)).unwrap();
    assert_eq!(calls(&fake), ["adjust"]);
    // A failed adjust leaves it as it was, and a primitive then refuses to promote it.
    let (agent, fake, cfg) = setup("secondary-secondary-uptodate", &[]);
    {
        let mut w = fake.0.borrow_mut();
        w.fail.push((
            "adjust".into(),
            10,
            "(127) Device minor not allocated".into(),
        ));
    }
    fake.0.borrow_mut().text = Some(detached.to_string());
    let c = ctx(Action::Start, false);
    let s = agent.up(&cfg, &c).unwrap();
    assert!(s.half_configured().unwrap().contains("no disk"));
    let err = agent.become_primary(&cfg, &c, &s).unwrap_err();
    assert!(err.reason().contains("Diskless"), "{err}");
    assert_eq!(calls(&fake), ["adjust"]);
}
