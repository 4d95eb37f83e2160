//! The part of std's runtime set-up that the agents keep when they skip it (`#![no_main]`,
//! see [`crate::ocf::main`]).
//!
//! std's `lang_start` runs about twenty system calls before `main`. Most of them serve its
//! stack-overflow message: `pthread_getattr_np` reads and parses `/proc/self/maps` to find the
//! main thread's guard page, then a signal stack is mapped and SIGSEGV/SIGBUS handlers are
//! installed (and all of it undone at exit). An agent that lives for a millisecond pays about
//! 0.1 ms for that. Two of its steps do matter to an agent, and [`prepare`] does them.

/// Opens `/dev/null` on whichever of stdin, stdout and stderr is closed, as std does: a file
/// the agent opens must never become its stdout. Then ignores SIGPIPE, as std does: a closed
/// pipe to the caller makes a write fail (and the agent ignores that), rather than killing the
/// action with a signal. Children still start with SIGPIPE at its default (std's `Command`
/// resets it).
pub fn prepare() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll(2) on a local array of three initialised entries, without waiting.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    if polled > 0 {
        for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // The lowest free descriptor is the closed one: those below it are open (or have
            // just been opened here). The descriptor is kept for the process's life.
            // SAFETY: open(2) of a constant NUL-terminated path.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != p.fd {
                // No /dev/null, or a descriptor raced in: std aborts here too.
                std::process::abort();
            }
        }
    }
    // SAFETY: sets a signal's disposition to ignored; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
