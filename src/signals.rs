//! Signal plumbing shared by master and workers.
//!
//! The master blocks the signals it cares about and takes them one at a time
//! with `sigtimedwait`, so its loop is plain sequential code and no handler
//! runs while it forks. Workers install a handler that only sets a flag
//! (without SA_RESTART, so a blocked `accept` returns and sees it); a request
//! in flight is finished first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// The signals the master handles.
pub fn master_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
        Signal::SIGUSR1,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        set.add(s);
    }
    set
}

pub fn block(set: &SigSet) -> nix::Result<()> {
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), None)
}

pub fn unblock(set: &SigSet) -> nix::Result<()> {
    signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(set), None)
}

/// Waits up to `timeout` for one of the (blocked) signals in `set`.
pub fn wait(set: &SigSet, timeout: Duration) -> Option<Signal> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` is a valid sigset_t, `ts` a valid timespec, and a null
    // siginfo pointer is allowed.
    let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    if rc <= 0 {
        return None;
    }
    Signal::try_from(rc).ok()
}

extern "C" fn request_stop(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Worker side: TERM/INT ask for a graceful stop, QUIT and HUP end at once
/// (the master uses TERM for graceful stops and reloads).
pub fn install_worker_handlers() {
    let graceful = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { signal::sigaction(s, &graceful) };
    }
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in [
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGCHLD,
    ] {
        // SAFETY: restoring the default disposition.
        let _ = unsafe { signal::sigaction(s, &default) };
    }
}

pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// In the child of a `fork` isolation request, a plain CGI process: the
/// worker's handlers go, TERM and INT end it as they end a CGI script.
pub fn reset_for_request_child() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: restoring the default disposition.
        let _ = unsafe { signal::sigaction(s, &default) };
    }
}
