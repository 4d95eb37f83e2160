//! What an action knows about its invocation: which action, which resource instance, the
//! monitor depth, whether it is a probe, and the deadline derived from the op timeout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Action;
use super::error::AgentError;

/// A point in time an action must finish by, derived from `OCF_RESKEY_CRM_meta_timeout`.
///
/// The usable budget is the op timeout minus a safety margin, so that an agent that watches
/// its deadline fails with a clear reason before Pacemaker (or hb-monitor) kills it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    budget: Duration,
    margin: Duration,
}

impl Deadline {
    /// A deadline for an op timeout, starting now.
    pub fn for_timeout(timeout: Duration) -> Deadline {
        Deadline::starting_at(Instant::now(), timeout)
    }

    /// A deadline for an op timeout that started at `started`.
    pub fn starting_at(started: Instant, timeout: Duration) -> Deadline {
        // A week is longer than any sane op timeout and keeps `Instant` arithmetic far from
        // overflow (an absurd CRM_meta_timeout must not panic).
        let timeout = timeout.min(Duration::from_secs(7 * 24 * 3600));
        // 5 % of the timeout, at least 100 ms and at most 2 s: enough to print a reason and
        // exit, small enough not to eat short timeouts.
        let margin = (timeout / 20).clamp(Duration::from_millis(100), Duration::from_secs(2));
        let margin = margin.min(timeout / 2);
        Deadline {
            started,
            budget: timeout - margin,
            margin,
        }
    }

    /// The op timeout this deadline was made from.
    pub fn timeout(&self) -> Duration {
        self.budget + self.margin
    }

    /// Time left before the agent must give up.
    pub fn remaining(&self) -> Duration {
        self.budget.saturating_sub(self.started.elapsed())
    }

    /// True once the budget is spent.
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The instant the budget ends.
    pub fn at(&self) -> Instant {
        self.started + self.budget
    }

    /// The instant the op timeout itself ends (the budget plus the safety margin).
    pub fn hard_at(&self) -> Instant {
        self.started + self.budget + self.margin
    }

    /// `d`, or less if the deadline comes first.
    pub fn cap(&self, d: Duration) -> Duration {
        d.min(self.remaining())
    }
}

/// Everything about the invocation except the parameters.
#[derive(Debug, Clone)]
pub struct Context {
    /// The action being run.
    pub action: Action,
    /// `OCF_RESOURCE_INSTANCE` (clones: `id:N`), or `default` at a shell.
    pub instance: String,
    /// `OCF_CHECK_LEVEL`: monitor depth (0, 10, 20).
    pub check_level: u32,
    /// `OCF_RESKEY_CRM_meta_interval` in ms, if given.
    pub interval_ms: Option<u64>,
    /// When this action must be finished by.
    pub deadline: Deadline,
    /// Every `OCF_*`/`HA_*` variable of the call, for agents that read clone or notify meta data.
    pub env: BTreeMap<String, String>,
}

impl Context {
    /// A monitor that Pacemaker runs once to learn the state (no recurring interval).
    /// `ocf_is_probe` tests `CRM_meta_interval = 0`; Pacemaker's executor sends probes with no
    /// interval at all (measured), so an absent interval counts as a probe too.
    pub fn is_probe(&self) -> bool {
        matches!(self.action, Action::Monitor | Action::Status)
            && self.interval_ms.unwrap_or(0) == 0
    }

    /// An `OCF_*` variable of the call.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// Builds the context from the call's environment. `default_timeout` is used when no
    /// `CRM_meta_timeout` was given (an operator at a shell): the meta-data's hint.
    pub fn from_env(
        action: Action,
        env: &dyn Fn(&str) -> Option<String>,
        vars: BTreeMap<String, String>,
        default_timeout: Duration,
        check_level_flag: Option<&str>,
    ) -> Result<Context, AgentError> {
        let started = Instant::now();
        let instance = env("OCF_RESOURCE_INSTANCE")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let ms = |name: &str| -> Result<Option<u64>, AgentError> {
            env(name)
                .filter(|s| !s.is_empty())
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        AgentError::Args(format!("{name} must be milliseconds, not '{v}'"))
                    })
                })
                .transpose()
        };
        let interval_ms = ms("OCF_RESKEY_CRM_meta_interval")?;
        let timeout = match ms("OCF_RESKEY_CRM_meta_timeout")? {
            Some(0) | None => default_timeout,
            Some(t) => Duration::from_millis(t),
        };
        let level = check_level_flag
            .map(str::to_owned)
            .or_else(|| env("OCF_CHECK_LEVEL"))
            .or_else(|| env("OCF_RESKEY_OCF_CHECK_LEVEL"))
            .filter(|s| !s.is_empty());
        let check_level = match level {
            None => 0,
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                AgentError::Args(format!("OCF_CHECK_LEVEL must be a number, not '{v}'"))
            })?,
        };
        Ok(Context {
            action,
            instance,
            check_level,
            interval_ms,
            deadline: Deadline::starting_at(started, timeout),
            env: vars,
        })
    }

    /// A context for unit tests and internal callers.
    pub fn for_test(action: Action) -> Context {
        Context {
            action,
            instance: "test".into(),
            check_level: 0,
            interval_ms: None,
            deadline: Deadline::for_timeout(Duration::from_secs(20)),
            env: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn deadline_keeps_a_margin_inside_the_timeout() {
        let d = Deadline::for_timeout(Duration::from_secs(20));
        assert!(d.remaining() <= Duration::from_secs(19));
        assert!(d.remaining() > Duration::from_millis(18_900));
        assert_eq!(d.timeout(), Duration::from_secs(20));
        let absurd = Deadline::for_timeout(Duration::from_millis(u64::MAX));
        assert!(absurd.hard_at() > Instant::now());
        let short = Deadline::for_timeout(Duration::from_millis(100));
        assert!(short.remaining() <= Duration::from_millis(50));
    }

    #[test]
    fn crm_meta_timeout_is_milliseconds() {
        let env = env_of(&[("OCF_RESKEY_CRM_meta_timeout", "40000")]);
        let ctx = Context::from_env(
            Action::Start,
            &env,
            BTreeMap::new(),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        assert_eq!(ctx.deadline.timeout(), Duration::from_secs(40));
    }

    #[test]
    fn probe_is_monitor_with_zero_or_absent_interval() {
        let probe = |interval: Option<&str>, action| {
            let mut pairs = vec![];
            if let Some(i) = interval {
                pairs.push(("OCF_RESKEY_CRM_meta_interval", i));
            }
            Context::from_env(
                action,
                &env_of(&pairs),
                BTreeMap::new(),
                Duration::from_secs(1),
                None,
            )
            .unwrap()
            .is_probe()
        };
        assert!(probe(Some("0"), Action::Monitor));
        assert!(probe(None, Action::Monitor));
        assert!(!probe(Some("10000"), Action::Monitor));
        assert!(!probe(Some("0"), Action::Start));
    }

    #[test]
    fn check_level_comes_from_flag_then_env() {
        let env = env_of(&[("OCF_CHECK_LEVEL", "10")]);
        let ctx = |flag| {
            Context::from_env(
                Action::Monitor,
                &env,
                BTreeMap::new(),
                Duration::from_secs(1),
                flag,
            )
        };
        assert_eq!(ctx(None).unwrap().check_level, 10);
        assert_eq!(ctx(Some("20")).unwrap().check_level, 20);
        assert_eq!(ctx(Some("deep")).unwrap_err().rc().code(), 2);
    }
}
