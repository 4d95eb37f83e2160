//! `notify_command`: the operator's hook, run on each transition the controller reports as
//! an [`Action::Notify`](super::controller::Action::Notify) (a peer dead or back, a medium
//! down or up, a group acquired, released or failed, a fence started, succeeded or failed,
//! a local restart), like keepalived's notify scripts.
//!
//! The hook never holds up heartbeats: the loop only queues the event (a bounded queue;
//! when it is full the event is dropped and said so) and one thread of its own runs the
//! hook, one event at a time in the order they happened, each run killed at
//! `notify_timeout` with everything it started (its own process group). A hook that fails
//! or hangs is logged and the next event runs.
//!
//! The hook is run as `PROGRAM [ARG...] EVENT SUBJECT...` (`group-acquired GROUP`,
//! `fence-failed PEER REASON`, see [`Notice::subjects`]), with `HB_EVENT`, `HB_NODE` (this
//! node), `HB_TIME` (seconds since the epoch) and the subjects by name (`HB_PEER`,
//! `HB_MEDIUM`, `HB_GROUP`, `HB_REASON`) in its environment.

use std::process::Command;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use super::controller::Notice;
use crate::sys::cmd;

/// Events waiting for the hook beyond this are dropped (a hook that hangs until its
/// timeout at every event must not grow the daemon without bound).
const QUEUE: usize = 64;

/// One event for the hook.
struct Event {
    notice: Notice,
    at: SystemTime,
}

/// The queue to the hook's thread.
pub struct Notifier {
    queue: SyncSender<Event>,
}

impl Notifier {
    /// Starts the thread that runs `command` (empty: no hook, `None`) for this `node`, each
    /// run within `timeout`.
    pub fn start(
        command: &[String],
        timeout: Duration,
        node: &str,
    ) -> std::io::Result<Option<Notifier>> {
        if command.is_empty() {
            return Ok(None);
        }
        let (queue, events) = mpsc::sync_channel::<Event>(QUEUE);
        let (command, node) = (command.to_vec(), node.to_string());
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                for event in events {
                    run(&command, &node, &event, timeout);
                }
            })?;
        Ok(Some(Notifier { queue }))
    }

    /// Queues `notice` for the hook; never waits.
    pub fn notify(&self, notice: Notice) {
        let event = Event {
            notice,
            at: SystemTime::now(),
        };
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => log::warn!(
                "notify_command: {} events wait for the hook already (it is slow or hangs): {} not notified",
                QUEUE,
                event.notice.word()
            ),
            Err(TrySendError::Disconnected(event)) => log::warn!(
                "notify_command: the hook's thread has ended: {} not notified",
                event.notice.word()
            ),
        }
    }
}

/// The hook's command line for `event` on `node`.
fn command_for(command: &[String], node: &str, event: &Event) -> Option<Command> {
    let (program, args) = command.split_first()?;
    let mut c = Command::new(program);
    let word = event.notice.word();
    let subjects = event.notice.subjects();
    let secs = event
        .at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    c.args(args)
        .arg(word)
        .args(subjects.iter().map(|(_, v)| v))
        .env("HB_EVENT", word)
        .env("HB_NODE", node)
        .env("HB_TIME", secs.to_string());
    for (name, value) in &subjects {
        c.env(name, value);
    }
    Some(c)
}

fn run(command: &[String], node: &str, event: &Event, timeout: Duration) {
    let Some(mut c) = command_for(command, node, event) else {
        return;
    };
    let word = event.notice.word();
    match cmd::run(&mut c, timeout) {
        Ok(_) => log::debug!("notify_command {word}: done"),
        Err(e) => log::warn!("notify_command {word}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_is_in_the_arguments_and_the_environment() {
        let event = Event {
            notice: Notice::FenceFailed {
                peer: "n1".into(),
                reason: "exit 1: no power switch".into(),
            },
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        let c = command_for(
            &["/bin/hook".into(), "--to".into(), "ops".into()],
            "n2",
            &event,
        )
        .unwrap();
        assert_eq!(c.get_program(), "/bin/hook");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            [
                "--to",
                "ops",
                "fence-failed",
                "n1",
                "exit 1: no power switch"
            ]
        );
        let env: std::collections::BTreeMap<_, _> = c
            .get_envs()
            .map(|(k, v)| (k.to_str().unwrap(), v.unwrap().to_str().unwrap()))
            .collect();
        assert_eq!(env["HB_EVENT"], "fence-failed");
        assert_eq!(env["HB_NODE"], "n2");
        assert_eq!(env["HB_PEER"], "n1");
        assert_eq!(env["HB_REASON"], "exit 1: no power switch");
        assert_eq!(env["HB_TIME"], "1700000000");
        assert!(!env.contains_key("HB_GROUP"));
    }

    #[test]
    fn a_hook_that_hangs_does_not_hold_up_the_caller_and_events_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "[ \"$1\" = peer-dead ] && exec sleep 60; echo \"$HB_EVENT $HB_GROUP\" >> {}",
            out.display()
        );
        let command = ["/bin/sh".into(), "-c".into(), script, "hook".into()];
        let notifier = Notifier::start(&command, Duration::from_millis(300), "n2")
            .unwrap()
            .unwrap();
        let queued = std::time::Instant::now();
        notifier.notify(Notice::PeerDead { peer: "n1".into() });
        notifier.notify(Notice::GroupAcquired { group: "g1".into() });
        notifier.notify(Notice::GroupReleased { group: "g1".into() });
        assert!(queued.elapsed() < Duration::from_millis(50));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.lines().count() == 2 {
                assert_eq!(text, "group-acquired g1\ngroup-released g1\n");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The hanging run was killed at its timeout, not waited for.
        assert!(queued.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn no_command_no_thread() {
        assert!(
            Notifier::start(&[], Duration::from_secs(1), "n1")
                .unwrap()
                .is_none()
        );
    }
}
