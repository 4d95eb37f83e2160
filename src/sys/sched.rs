//! Scheduling of this process: real-time priority and locked memory for the heartbeat loop.

use std::io;

/// SCHED_RR at `priority` for the whole process, with SCHED_RESET_ON_FORK so that children
/// (the agents) start with normal scheduling.
pub fn set_realtime_round_robin(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler on this process with a valid sched_param.
    let rc = unsafe {
        libc::sched_setscheduler(
            0,
            libc::SCHED_RR | libc::SCHED_RESET_ON_FORK,
            &raw const param,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Locks this process's memory as it is touched (MCL_ONFAULT: not every mapping at once),
/// now and in the future. Children do not inherit the lock.
pub fn lock_memory_on_fault() -> io::Result<()> {
    // SAFETY: mlockall with constant flags.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
