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

/// The CPUs the calling thread may run on (none when the kernel will not say).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return vec![];
    }
    // SAFETY: CPU_ISSET reads the initialised set.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Lets the calling thread run on `cpus` only.
pub fn run_on(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {c} is beyond the kernel's CPU set"),
            ));
        }
        // SAFETY: c < CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a live cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A thread's scheduling policy and priority, to give a new thread the same: with
/// SCHED_RESET_ON_FORK a new thread starts at normal scheduling.
#[derive(Clone, Copy)]
pub struct Scheduling {
    policy: libc::c_int,
    param: libc::sched_param,
}

impl Scheduling {
    /// The calling thread's scheduling, or `None` when the kernel will not say.
    pub fn current() -> Option<Scheduling> {
        // SAFETY: sched_getscheduler on this thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        // SAFETY: a sched_param is plain data; sched_getparam fills it.
        let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
        // SAFETY: as above, into a live local.
        let rc = unsafe { libc::sched_getparam(0, &mut param) };
        (policy >= 0 && rc == 0).then_some(Scheduling { policy, param })
    }

    /// Whether this is a real-time policy (the default policy needs nothing applied).
    pub fn is_realtime(&self) -> bool {
        self.policy & !libc::SCHED_RESET_ON_FORK != libc::SCHED_OTHER
    }

    /// Gives the calling thread this scheduling.
    pub fn apply(&self) -> io::Result<()> {
        // SAFETY: the calling thread, with a sched_param read from a live thread.
        let rc = unsafe { libc::sched_setscheduler(0, self.policy, &self.param) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
