//! Stopping the running script from another thread (the pump: client gone,
//! `--request-timeout`): in-process, through the request stage, so a stop
//! meant for one request never reaches the next; and, when the script does
//! not stop, the end of its process. Also the stop's harmless sibling for
//! `--slowlog-timeout`: the script logs its backtrace and runs on.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};

use crate::perl::{request_backtrace, Stage, StopReason};

/// The child of a `fork` isolation request, while it runs: a stop goes to
/// it instead of to this process. 0: none.
static REQUEST_CHILD: AtomicI32 = AtomicI32::new(0);

pub fn set_request_child(child: Option<Pid>) {
    REQUEST_CHILD.store(child.map_or(0, Pid::as_raw), Ordering::SeqCst);
}

/// Stops the running script: the request's child in `fork` mode gets
/// SIGTERM (as a CGI server stops a CGI process); a script in this process
/// is interrupted and the runner's SIGPIPE handler exits it. Only while it
/// runs: a stop meant for one request never ends the next one. True when
/// this call stopped it.
pub fn stop_script(why: StopReason) -> bool {
    if !Stage::request_stop(why) {
        return false;
    }
    let child = REQUEST_CHILD.load(Ordering::SeqCst);
    if child != 0 {
        let _ = kill(Pid::from_raw(child), Signal::SIGTERM);
    } else {
        let _ = kill(getpid(), Signal::SIGPIPE);
    }
    true
}

/// `--slowlog-timeout`: the running script logs where it is, and runs on.
/// In `fork` isolation the script runs in the request's child, out of the
/// worker's reach without a signal it would see: no backtrace. `log` is
/// told which first.
pub fn log_backtrace(log: impl FnOnce(&str)) {
    if REQUEST_CHILD.load(Ordering::SeqCst) != 0 {
        log("no backtrace in fork isolation");
    } else {
        log("its backtrace follows");
        request_backtrace();
    }
}

/// The script ignored its stop: the request's child is killed, or, for a
/// script in this process, the worker itself (the master replaces it).
/// `log` is told which first (a worker that kills itself says it before).
pub fn kill_stubborn_script(log: impl FnOnce(&str)) {
    let child = REQUEST_CHILD.load(Ordering::SeqCst);
    let (target, what) = if child != 0 {
        (Pid::from_raw(child), "killing the request's process")
    } else {
        (getpid(), "replacing this worker")
    };
    log(what);
    let _ = kill(target, Signal::SIGKILL);
}
