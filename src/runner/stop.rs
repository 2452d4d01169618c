//! Stopping the running script from another thread (the pump: client gone,
//! `--request-timeout`): in-process, through the request stage, so a stop
//! meant for one request never reaches the next; and, when the script does
//! not stop, the end of its process. Also the stop's harmless sibling for
//! `--slowlog-timeout`: the script logs its backtrace and runs on.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};

use crate::perl::{request_backtrace, Stage, StopReason};

/// Where the running script is: in this process (0), in the request's
/// child (its pid), or in a child not forked yet or already gone
/// ([`NO_CHILD_YET`]). A stop goes to the child instead of this process;
/// never to this process while the request is a child's: a worker in fork
/// isolation runs no Perl between requests, so a SIGPIPE it sent itself
/// would wait in perl's pending signals and end the next child at its
/// first op (every later request a 500).
static REQUEST_CHILD: AtomicI32 = AtomicI32::new(0);
const NO_CHILD_YET: i32 = -1;

/// The request is about to run in a child (before its stage is Running).
pub fn child_starting() {
    REQUEST_CHILD.store(NO_CHILD_YET, Ordering::SeqCst);
}

/// The request's child is forked: a stop that came while it was being
/// forked reaches it now.
pub fn child_started(child: Pid) {
    REQUEST_CHILD.store(child.as_raw(), Ordering::SeqCst);
    if Stage::now() == Stage::Stopping {
        let _ = kill(child, Signal::SIGTERM);
    }
}

/// The request's child has been reaped; its stage is still Running until
/// the runner ends the request, and nothing is left to stop.
pub fn child_ended() {
    REQUEST_CHILD.store(NO_CHILD_YET, Ordering::SeqCst);
}

/// The request is over (its stage left Running): the next one runs here
/// unless it says otherwise.
pub fn request_over() {
    REQUEST_CHILD.store(0, Ordering::SeqCst);
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
    match REQUEST_CHILD.load(Ordering::SeqCst) {
        0 => {
            let _ = kill(getpid(), Signal::SIGPIPE);
        }
        NO_CHILD_YET => {} // child_started delivers it
        child => {
            let _ = kill(Pid::from_raw(child), Signal::SIGTERM);
        }
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
    let (target, what) = match REQUEST_CHILD.load(Ordering::SeqCst) {
        0 => (getpid(), "replacing this worker"),
        NO_CHILD_YET => {
            log("the request's process is gone");
            return;
        }
        child => (Pid::from_raw(child), "killing the request's process"),
    };
    log(what);
    let _ = kill(target, Signal::SIGKILL);
}
