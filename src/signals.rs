//! Signal plumbing shared by master and workers.
//!
//! The master blocks the signals it cares about and reads them from a
//! signalfd in its event loop (`pool`), so no handler ever runs, least of
//! all while it forks. The master never signals a worker to stop (that
//! goes over the worker's channel, see `dispatch`); a TERM or INT sent to a
//! worker directly (a terminal's Ctrl-C, a service manager killing the
//! whole group) only sets a flag, with `SA_RESTART` so a running script's
//! reads and writes go on, and the worker leaves after its request.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// `--workers 0`: the process serving is the daemon itself, and HUP (a
/// reload, for a pool) must not end it.
static IN_PROCESS: AtomicBool = AtomicBool::new(false);
/// `--workers 0`: signals received and not yet acted on, one bit each.
static PENDING: AtomicU32 = AtomicU32::new(0);

/// What `--workers 0` acts on between requests (the master's signals but
/// SIGCHLD: a script's children are its own business).
const IN_PROCESS_SIGNALS: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

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

extern "C" fn note_pending(signal: libc::c_int) {
    if (1..32).contains(&signal) {
        PENDING.fetch_or(1 << signal, Ordering::SeqCst);
    }
    if signal == libc::SIGTERM || signal == libc::SIGINT || signal == libc::SIGQUIT {
        STOP_REQUESTED.store(true, Ordering::SeqCst);
    }
}

/// `--workers 0`: the process serving is the daemon itself. Every signal
/// the README's table lists is noted ([`take_pending`]) and acted on
/// between requests: the stops end the loop, HUP and TTIN/TTOU are
/// answered with a warning (no pool to reload or resize), USR1 reopens the
/// logs. `SA_RESTART`: a running script's reads and writes go on.
pub fn serve_in_process() {
    IN_PROCESS.store(true, Ordering::SeqCst);
    let noted = SigAction::new(
        SigHandler::Handler(note_pending),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in IN_PROCESS_SIGNALS {
        // SAFETY: the handler only stores to atomics (async-signal-safe).
        let _ = unsafe { signal::sigaction(s, &noted) };
    }
    // Blocked since the start (`master::run`); a script's children inherit
    // the mask, so all of the master's set goes, SIGCHLD too.
    let _ = unblock(&master_set());
}

/// `--workers 0`: the signals received since the last call, in the
/// table's order.
pub fn take_pending() -> Vec<Signal> {
    let bits = PENDING.swap(0, Ordering::SeqCst);
    IN_PROCESS_SIGNALS
        .into_iter()
        .filter(|s| bits & (1 << (*s as i32)) != 0)
        .collect()
}

/// `--workers 0`: a signal is waiting to be acted on.
pub fn pending() -> bool {
    PENDING.load(Ordering::SeqCst) != 0
}

/// Worker side: TERM/INT sent to the worker itself ask it to leave after
/// its request; QUIT and HUP end it at once.
pub fn install_worker_handlers() {
    if IN_PROCESS.load(Ordering::SeqCst) {
        // The daemon itself: its handlers stay (a script touched %SIG).
        return serve_in_process();
    }
    let graceful = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { signal::sigaction(s, &graceful) };
    }
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in [
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGCHLD,
        Signal::SIGHUP,
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
/// Never inlined: `bench/cost` zeroes a child's instruction counts where
/// it is called.
#[inline(never)]
pub fn reset_for_request_child() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: restoring the default disposition.
        let _ = unsafe { signal::sigaction(s, &default) };
    }
}

/// USR1, in the master and with `--workers 0`: the access log and the
/// daemon's log are opened again (logrotate moved them), each failure
/// logged; a detached master's stdout and stderr follow the log.
pub fn reopen_logs() {
    if let Err(e) = crate::access_log::reopen() {
        log::error!("SIGUSR1: {e}");
    }
    if let Err(e) = crate::log::reopen().and_then(|()| crate::detach::log_reopened()) {
        log::error!("SIGUSR1: cannot reopen the log: {e}");
    } else {
        log::info!("SIGUSR1: log reopened");
    }
}
