//! The pump: one thread per worker that moves what arrives on the std pipes
//! (fd 1 and 2 of the script and its children) to the client and the log,
//! and watches a request that runs for a while: FCGI_ABORT_REQUEST, a client
//! that went away, `--request-timeout`, `--slowlog-timeout`.
//!
//! A quick request never wakes it: the script's own prints travel in the
//! worker's memory (see `output.rs`), and the watch starts only when a timer
//! armed at the start of the request fires, WATCH_AFTER later. The thread
//! blocks every signal, so SIGPIPE from a vanished client is an EPIPE here
//! and TERM/CHLD reach the main thread, which runs Perl.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::output::{Shared, WATCH_AFTER};
use super::stop::{kill_stubborn_script, log_backtrace, stop_script};
use crate::fastcgi::watch::{ClientEvent, ClientWatch};
use crate::perl::StopReason;

/// How long a timed-out script gets to stop before its worker is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a script whose client left or aborted gets to stop: the stop
/// reaches a script in Perl at its next op, so one that is still running
/// after this ignores it (`$SIG{PIPE}` of its own, a long XS call).
const GONE_GRACE: Duration = Duration::from_millis(800);

/// Requests that ran past `slowlog_timeout` since the worker last asked.
static SLOW_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The worker, after a request: how many were slow since it last asked
/// (for the scoreboard's count).
pub fn take_slow_requests() -> u64 {
    SLOW_REQUESTS.swap(0, Ordering::Relaxed)
}

/// Starts the thread. Call in a worker only: the master must not have
/// threads when it forks.
pub fn start(shared: Arc<Shared>) -> io::Result<()> {
    let thread = PumpThread {
        shared,
        watch: None,
    };
    std::thread::Builder::new()
        .name("output-pump".into())
        .spawn(move || {
            block_all_signals();
            thread.run();
        })?;
    Ok(())
}

/// A connection being watched, for one request (generation).
struct Watch {
    /// None once the client went away or aborted: a hung-up socket stays
    /// readable, so polling it on would spin.
    client: Option<ClientWatch>,
    generation: u64,
    deadline: Option<Deadline>,
    /// `--slowlog-timeout`: when its backtrace is logged (once).
    slow_at: Option<Instant>,
}

/// What happens at the watch's deadline.
enum Deadline {
    /// `--request-timeout`.
    Timeout(Instant),
    /// The script was told to stop (the reason, when) and has until then.
    Stop(Instant, &'static str, Instant),
}

impl Deadline {
    fn at(&self) -> Instant {
        match *self {
            Deadline::Timeout(at) | Deadline::Stop(at, ..) => at,
        }
    }
}

struct PumpThread {
    shared: Arc<Shared>,
    watch: Option<Watch>,
}

impl PumpThread {
    fn run(mut self) {
        loop {
            let (stdout_fd, stderr_fd) = {
                let state = self.shared.lock();
                (
                    state.stdout.as_ref().map(|f| f.as_raw_fd()),
                    state.stderr.as_ref().map(|f| f.as_raw_fd()),
                )
            };
            let events = match self.wait(stdout_fd, stderr_fd) {
                Ok(events) => events,
                Err(e) => {
                    log::error!("output pump: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if events.wake {
                let _ = self.shared.wake.read();
            }
            if events.stdout || events.stderr {
                let shared = &*self.shared;
                let mut state = shared.lock();
                if events.stdout {
                    state.drain_stdout(shared);
                }
                if events.stderr {
                    state.drain_stderr(shared);
                }
            }
            if events.timer {
                let _ = self.shared.watch_timer.wait();
                self.release_held();
                self.start_watch();
            }
            if events.conn {
                self.client_event();
            }
            self.check_slow();
            self.check_deadline();
            self.drop_stale_watch();
        }
    }

    fn wait(&self, stdout: Option<i32>, stderr: Option<i32>) -> nix::Result<Events> {
        // SAFETY: the pipe descriptors come from the shared state and are
        // only closed by the worker after EOF was seen; if one is closed and
        // its number reused meanwhile, the poll wakes spuriously and every
        // read goes through the state's own File under the lock.
        let borrow = |fd: i32| unsafe { BorrowedFd::borrow_raw(fd) };
        let mut fds = vec![
            PollFd::new(self.shared.wake.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.shared.watch_timer.as_fd(), PollFlags::POLLIN),
        ];
        let mut slots = [None; 3];
        if let Some(fd) = stdout {
            slots[0] = Some(fds.len());
            fds.push(PollFd::new(borrow(fd), PollFlags::POLLIN));
        }
        if let Some(fd) = stderr {
            slots[1] = Some(fds.len());
            fds.push(PollFd::new(borrow(fd), PollFlags::POLLIN));
        }
        if let Some(client) = self.watch.as_ref().and_then(|w| w.client.as_ref()) {
            slots[2] = Some(fds.len());
            fds.push(PollFd::new(client.fd(), ClientWatch::POLL));
        }
        let next = self.watch.as_ref().and_then(|w| {
            let deadline = w.deadline.as_ref().map(Deadline::at);
            deadline.into_iter().chain(w.slow_at).min()
        });
        let timeout = match next {
            None => PollTimeout::NONE,
            Some(at) => {
                // Rounded up: a poll that ends just before the deadline
                // would come straight back with 0 ms.
                let left = at.saturating_duration_since(Instant::now());
                PollTimeout::from((left.as_millis() + 1).min(60_000) as u16)
            }
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        // revents() is None when the kernel set a flag nix has no name for:
        // that is an event too.
        let fired =
            |i: Option<usize>| i.is_some_and(|i| fds[i].revents().is_none_or(|r| !r.is_empty()));
        Ok(Events {
            wake: fired(Some(0)),
            timer: fired(Some(1)),
            stdout: fired(slots[0]),
            stderr: fired(slots[1]),
            conn: fired(slots[2]),
        })
    }

    /// The watch timer fired: the worker lets go of the connections it
    /// holds, if it is time; then the timer again for the watch, if it is
    /// to come. Done under the state's lock, so for this request and no
    /// other (the lock orders it before the request's end).
    fn release_held(&self) {
        let mut state = self.shared.lock();
        let Some(due) = state.held_due else {
            return;
        };
        let Some(started) = state.active.as_ref().map(|a| a.started) else {
            return;
        };
        let now = Instant::now();
        if now < due {
            return;
        }
        state.held_due = None;
        if let Some(held) = self.shared.held.get() {
            held.release();
        }
        let watch_at = started + WATCH_AFTER;
        if now < watch_at {
            self.shared.arm_timer(watch_at - now);
        }
    }

    /// The watch timer fired: if a request has been running for WATCH_AFTER,
    /// watch its connection (and its timeout) from now on.
    fn start_watch(&mut self) {
        let mut state = self.shared.lock();
        let Some(active) = state.active.as_ref() else {
            return;
        };
        if self
            .watch
            .as_ref()
            .is_some_and(|w| w.generation == state.generation)
            || active.started.elapsed() < WATCH_AFTER
        {
            return;
        }
        // SAFETY: the worker keeps the connection open while the request is
        // active, and we hold the lock it must take to end the request.
        let conn = unsafe { BorrowedFd::borrow_raw(active.response.conn_fd()) };
        let Ok(conn) = conn.try_clone_to_owned() else {
            return;
        };
        self.watch = Some(Watch {
            client: Some(ClientWatch::new(conn, active.response.request_id())),
            generation: state.generation,
            deadline: active
                .timeouts
                .request
                .map(|t| Deadline::Timeout(active.started + t)),
            slow_at: active.timeouts.slowlog.map(|t| active.started + t),
        });
        state.watched = true;
        state.watch_copy = true;
    }

    /// What the web server sent while the script runs (see
    /// `fastcgi::watch`): an abort or its going away stops the script.
    fn client_event(&mut self) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        let Some(client) = watch.client.as_mut() else {
            return;
        };
        // Read under the lock, and only for the watched request: once it
        // ended, what arrives is the next request on a kept connection,
        // which the worker reads (the watch goes at the next wake-up). What
        // the web server sends after the request (its next one, when it
        // does not wait for the answer) is kept for the worker.
        let mut state = self.shared.lock();
        if state.generation != watch.generation {
            return;
        }
        let event = client.on_readable(&mut state.next_input);
        let (why, stop_why) = match event {
            ClientEvent::Quiet => return,
            ClientEvent::Unfollowed => {
                log::debug!("{}: connection no longer watched", state.tag());
                drop(state);
                watch.client = None;
                watch_copy_closed(&self.shared);
                return;
            }
            ClientEvent::Gone => {
                if let Some(active) = state.active.as_mut() {
                    active.response.client_gone();
                }
                ("client went away", "its client going away")
            }
            ClientEvent::Aborted => ("FCGI_ABORT_REQUEST received", "FCGI_ABORT_REQUEST"),
        };
        let tag = state.tag().to_string();
        drop(state);
        // Nothing more to learn from the connection.
        watch.client = None;
        watch_copy_closed(&self.shared);
        if stop_script(StopReason::Client) {
            log::info!("{tag}: {why}; stopping the script");
            let now = Instant::now();
            let stop = Deadline::Stop(now + GONE_GRACE, stop_why, now);
            // A timeout due sooner still comes first.
            if watch
                .deadline
                .as_ref()
                .is_none_or(|d| d.at() > now + GONE_GRACE)
            {
                watch.deadline = Some(stop);
            }
        } else {
            log::info!("{tag}: {why}");
        }
    }

    /// `--request-timeout`: the client gets a 504 (when nothing was sent
    /// yet) and the script is stopped. A script that ignores a stop for
    /// its grace time costs its process: the request's child, or this
    /// worker (the master replaces it).
    fn check_deadline(&mut self) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        let now = Instant::now();
        match watch.deadline {
            Some(Deadline::Timeout(at)) if now >= at => {}
            Some(Deadline::Stop(at, why, since)) if now >= at => {
                watch.deadline = None;
                // "5 s", "0.8 s"
                let secs = format!("{:.1}", since.elapsed().as_secs_f32());
                let secs = secs.trim_end_matches(".0");
                kill_stubborn_script(|what| {
                    log::error!("the script did not stop within {secs} s of {why}; {what}")
                });
                return;
            }
            _ => return,
        }
        // The 504 goes out before the stop, or the stopped script could end
        // the request first. A worker holding the lock is writing to the
        // client (so no 504 is due): stop it first, which makes that write
        // give up (stage Stopping, then SIGPIPE), then take the lock.
        let mut state = match self.shared.try_lock() {
            Some(state) => state,
            None => {
                let _ = stop_script(StopReason::Timeout);
                self.shared.lock()
            }
        };
        if state.generation != watch.generation {
            return;
        }
        let tag = state.tag().to_string();
        if let Some(active) = state.active.as_mut() {
            log::warn!(
                "{tag}: request timeout after {} s; stopping the script",
                active.timeouts.request.unwrap_or_default().as_secs()
            );
            active.response.time_out();
        }
        drop(state);
        let _ = stop_script(StopReason::Timeout);
        watch.deadline = Some(Deadline::Stop(now + STOP_GRACE, "its timeout", now));
    }

    /// `--slowlog-timeout`: a request still running then is counted and
    /// its script's backtrace logged, once; it runs on.
    fn check_slow(&mut self) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        if watch.slow_at.is_none_or(|at| Instant::now() < at) {
            return;
        }
        watch.slow_at = None;
        let state = self.shared.lock();
        if state.generation != watch.generation {
            return;
        }
        let Some(active) = state.active.as_ref() else {
            return;
        };
        SLOW_REQUESTS.fetch_add(1, Ordering::Relaxed);
        let secs = active.timeouts.slowlog.unwrap_or_default().as_secs();
        let tag = state.tag().to_string();
        drop(state);
        log_backtrace(|how| log::warn!("{tag}: slow request: running for {secs} s; {how}"));
    }

    /// The watched request ended: let go of its connection.
    fn drop_stale_watch(&mut self) {
        if let Some(w) = &self.watch {
            if self.shared.lock().generation != w.generation {
                self.watch = None;
                watch_copy_closed(&self.shared);
            }
        }
    }
}

/// The watch's copy of the connection is closed: a fork may come.
fn watch_copy_closed(shared: &Shared) {
    let mut state = shared.lock();
    if std::mem::take(&mut state.watch_copy) {
        shared.watch_closed.notify_all();
    }
}

struct Events {
    wake: bool,
    timer: bool,
    stdout: bool,
    stderr: bool,
    conn: bool,
}

/// The pump thread takes no signals: SIGPIPE from a vanished client becomes
/// EPIPE, and TERM/CHLD go to the main thread, which runs Perl.
fn block_all_signals() {
    let all = nix::sys::signal::SigSet::all();
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&all),
        None,
    );
}
