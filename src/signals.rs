//! Signal plumbing shared by master and workers.
//!
//! The master blocks the signals it cares about and reads them from a
//! signalfd in its event loop (`pool`), so no handler ever runs, least of
//! all while it forks. The master never signals a worker to stop (that
//! goes over the worker's channel, see `dispatch`); a TERM or INT sent to a
//! worker directly (a terminal's Ctrl-C, a service manager killing the
//! whole group) only sets a flag, with `SA_RESTART` so a running script's
//! reads and writes go on, and the worker leaves after its request.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// `--workers 0`: the process serving is the daemon itself, and HUP (a
/// reload, for a pool) must not end it.
static IN_PROCESS: AtomicBool = AtomicBool::new(false);
static HUP_RECEIVED: AtomicBool = AtomicBool::new(false);

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

extern "C" fn request_stop(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

extern "C" fn note_hup(_: libc::c_int) {
    HUP_RECEIVED.store(true, Ordering::SeqCst);
}

/// `--workers 0`: from now on HUP is only noted ([`take_hup`]); there is
/// no pool to reload.
pub fn serve_in_process() {
    IN_PROCESS.store(true, Ordering::SeqCst);
    install_worker_handlers();
}

/// A HUP arrived since the last call.
pub fn take_hup() -> bool {
    HUP_RECEIVED.swap(false, Ordering::SeqCst)
}

/// Worker side: TERM/INT sent to the worker itself ask it to leave after
/// its request; QUIT and HUP end it at once.
pub fn install_worker_handlers() {
    let graceful = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { signal::sigaction(s, &graceful) };
    }
    if IN_PROCESS.load(Ordering::SeqCst) {
        let hup = SigAction::new(
            SigHandler::Handler(note_hup),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { signal::sigaction(Signal::SIGHUP, &hup) };
    }
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in [
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGCHLD,
    ]
    .into_iter()
    .chain((!IN_PROCESS.load(Ordering::SeqCst)).then_some(Signal::SIGHUP))
    {
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
