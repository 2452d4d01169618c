//! Where a running script's output goes.
//!
//! Descriptors 1 and 2 are always real: two pipes per worker, made once,
//! whose read ends the pump thread (`pump.rs`) watches. What the script
//! prints through Perl's STDOUT does not take that road: a PerlIO layer keeps
//! it in the worker's memory and the runner sends it with FCGI_END_REQUEST in
//! one write, so a usual request wakes no other thread. What reaches fd 1
//! directly (children, `system`, `syswrite`) is moved to the client by
//! whichever thread gets there first, always under one lock and after
//! draining the pipe, so bytes reach the client in the order they were
//! written. Stderr lines are logged, tagged with the worker and script.
//!
//! A request that forked gets CGI's rule for the end of a response: it ends
//! when every holder of the stdout pipe has closed it (a child left running
//! in the background keeps the response open). Those pipes are then retired
//! and the worker makes new ones.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::response::{Finished, Response};
use crate::fds::{above_std_fds, dup2};
use crate::listen::Stream;
use crate::page_buf::PageBuf;

/// The worker's output state, for the STDOUT layer's sink (a plain function
/// pointer handed to C, so it cannot carry it).
static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

/// The request being answered.
pub struct Active {
    pub response: Response,
    pub started: Instant,
    pub timeouts: Timeouts,
}

/// Connections the worker keeps open while it serves a request (besides
/// the request's own): the kept connections it parked (`worker::parked`).
/// The runner knows them only by this trait.
pub trait HeldConnections: Send + Sync {
    /// As a request begins, on the worker's thread: their descriptors go
    /// into `fds` (the check for descriptors a script left open passes
    /// them by), and the answer says how long into the request to call
    /// [`Self::release`] (None: not for this request).
    fn at_begin(&self, fds: &mut Vec<RawFd>) -> Option<Duration>;
    /// On the pump thread, once, if the request still runs then: lets go
    /// of them (they should not wait for it any longer).
    fn release(&self);
}

/// What the pump does to a request that runs long (None: nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// `request_timeout`: stop it.
    pub request: Option<Duration>,
    /// `slowlog_timeout`: log its backtrace, once.
    pub slowlog: Option<Duration>,
}

pub struct State {
    pub active: Option<Active>,
    /// Bumped at the end of every request: the pump's watch of a connection
    /// belongs to one generation.
    pub generation: u64,
    /// The pump watches the current request's connection (holds a dup).
    pub watched: bool,
    /// The pump holds a copy of the connection for its watch (cleared
    /// once that copy is closed, with `watch_closed` signalled).
    pub watch_copy: bool,
    /// What the pump's watch read of the connection after the request's
    /// own records (the web server's next request): the worker's once the
    /// request ends.
    pub next_input: Vec<u8>,
    /// Read ends of the std pipes (non-blocking); None once at EOF.
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// When the pump releases the worker's [`HeldConnections`] (None: not
    /// for this request, or done).
    pub held_due: Option<Instant>,
    /// Script path, for stderr log lines.
    tag: String,
    partial_line: Vec<u8>,
    buf: PageBuf,
}

pub struct Shared {
    pub state: Mutex<State>,
    /// Signalled when a pipe reaches EOF.
    pub pipe_closed: Condvar,
    /// Signalled when the pump has closed its copy of a connection.
    pub watch_closed: Condvar,
    /// Wakes the pump thread to look at the state again.
    pub wake: EventFd,
    /// Fires WATCH_AFTER into each request (first at the release of the
    /// held connections, when that comes sooner): the pump then watches
    /// it.
    pub watch_timer: TimerFd,
    /// The connections the worker holds while it serves (set once).
    pub held: OnceLock<Arc<dyn HeldConnections>>,
}

/// A request still running after this long gets its connection watched.
pub const WATCH_AFTER: Duration = Duration::from_millis(50);

impl Shared {
    /// Arms the watch timer to fire `after` from now. Called with the state
    /// locked, by the request's begin and by the pump, so a re-arm for one
    /// request cannot replace the next one's (re-arming replaces the
    /// previous countdown; a late expiry finds no request or a young one
    /// and is ignored).
    pub fn arm_timer(&self, after: Duration) {
        let _ = self.watch_timer.set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        );
    }

    /// Makes the pump look again: a watched request ended (its duplicate of
    /// the connection must go), or the std pipes were replaced.
    fn kick(&self) {
        let _ = self.wake.write(1);
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the worker unable to answer;
        // the state itself is still consistent enough to finish with.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state, unless another thread holds it now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

impl State {
    /// The script of the current (or last) request.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Moves what waits in the stdout pipe to the client (or drops it when
    /// there is no request to send it to).
    pub fn drain_stdout(&mut self, shared: &Shared) {
        loop {
            match read_pipe(&mut self.stdout, &mut self.buf) {
                PipeRead::Data(n) => self.send_stdout_chunk(n),
                PipeRead::Closed => {
                    shared.pipe_closed.notify_all();
                    return;
                }
                PipeRead::Drained => return,
            }
        }
    }

    fn send_stdout_chunk(&mut self, n: usize) {
        match self.active.as_mut() {
            Some(active) => {
                active.response.send_stdout(&self.buf[..n], &self.tag);
            }
            None => log::warn!(
                "[worker {}] {n} bytes written to stdout between requests dropped",
                std::process::id()
            ),
        }
    }

    /// Logs the complete lines waiting in the stderr pipe.
    pub fn drain_stderr(&mut self, shared: &Shared) {
        loop {
            match read_pipe(&mut self.stderr, &mut self.buf) {
                PipeRead::Data(n) => {
                    if let Some(active) = self.active.as_mut() {
                        active.response.send_stderr(&self.buf[..n]);
                    }
                    self.partial_line.extend_from_slice(&self.buf[..n]);
                    log_complete_lines(&mut self.partial_line, &self.tag);
                }
                PipeRead::Closed => {
                    self.log_partial_line();
                    shared.pipe_closed.notify_all();
                    return;
                }
                PipeRead::Drained => return,
            }
        }
    }

    /// Drains both pipes, reading only those one `poll` finds with
    /// something (or closed): a request that wrote nothing to fd 1 or 2
    /// costs one system call, not two reads that find nothing.
    pub fn drain_both(&mut self, shared: &Shared) {
        let [out, err] = [&self.stdout, &self.stderr].map(|p| p.as_ref().map(|f| f.as_raw_fd()));
        let mut fds: Vec<libc::pollfd> = [out, err]
            .into_iter()
            .flatten()
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd structs over descriptors
        // this state owns; a zero timeout returns at once and only
        // `revents` is written.
        let polled = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        let has = |fd: Option<RawFd>| {
            polled < 0 || fds.iter().any(|p| Some(p.fd) == fd && p.revents != 0)
        };
        let (out_has, err_has) = (has(out), has(err));
        if out_has {
            self.drain_stdout(shared);
        }
        if err_has {
            self.drain_stderr(shared);
        }
    }

    fn log_partial_line(&mut self) {
        if !self.partial_line.is_empty() {
            self.partial_line.push(b'\n');
            log_complete_lines(&mut self.partial_line, &self.tag);
        }
    }
}

enum PipeRead {
    Data(usize),
    /// EOF: every write end is closed; the pipe is gone from the state.
    Closed,
    /// Nothing waiting (EAGAIN), or no pipe.
    Drained,
}

fn read_pipe(pipe: &mut Option<File>, buf: &mut [u8]) -> PipeRead {
    loop {
        let Some(file) = pipe.as_mut() else {
            return PipeRead::Drained;
        };
        match file.read(buf) {
            Ok(0) => {
                *pipe = None;
                return PipeRead::Closed;
            }
            Ok(n) => return PipeRead::Data(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return PipeRead::Drained,
        }
    }
}

/// Logs each complete line of script stderr as one log line, tagged.
fn log_complete_lines(buf: &mut Vec<u8>, tag: &str) {
    let pid = std::process::id();
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&buf[start..start + pos]);
        log::warn!("[worker {pid}] {tag}: {line}");
        start += pos + 1;
    }
    buf.drain(..start);
}

/// The sink of the STDOUT layer: sends what the script flushed, after what
/// was written to fd 1 before it. False when it cannot be sent.
pub fn send_flushed_output(data: &[u8]) -> bool {
    let Some(shared) = SHARED.get() else {
        return false;
    };
    let mut guard = shared.lock();
    guard.drain_stdout(shared);
    let state = &mut *guard;
    match state.active.as_mut() {
        Some(active) => active.response.send_stdout(data, &state.tag),
        None => false,
    }
}

/// The write ends this worker holds, for fd 1 and fd 2.
struct StdPipes {
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// One worker's output channel: the std pipes and the state the pump
/// thread (`pump.rs`, started by the runner) shares.
pub struct Output {
    shared: Arc<Shared>,
    /// Replaced after a request that forked.
    pipes: RefCell<StdPipes>,
    /// The lowest free descriptor number when the request began: if it
    /// moved, the script may have left a descriptor open.
    free_fd_at_begin: Cell<RawFd>,
    /// The last request's [`State::next_input`], taken when it ended.
    next_input: RefCell<Vec<u8>>,
    /// The worker's connections as the request began: its own and those
    /// of [`HeldConnections`].
    held_fds: RefCell<Vec<RawFd>>,
    /// The pump was to release the held connections during the request.
    held_release_due: Cell<bool>,
}

impl Output {
    /// Makes the pipes and the pump's wake-ups.
    pub fn start() -> io::Result<Output> {
        let (pipes, stdout, stderr) = make_pipes()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                active: None,
                generation: 0,
                watched: false,
                watch_copy: false,
                next_input: Vec::new(),
                stdout: Some(stdout),
                stderr: Some(stderr),
                held_due: None,
                tag: "fcgi-spawn".into(),
                partial_line: Vec::new(),
                buf: PageBuf::zeroed(65536),
            }),
            pipe_closed: Condvar::new(),
            watch_closed: Condvar::new(),
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
            watch_timer: TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK,
            )?,
            held: OnceLock::new(),
        });
        if SHARED.set(Arc::clone(&shared)).is_err() {
            return Err(io::Error::other(
                "the worker's output channel exists already",
            ));
        }
        Ok(Output {
            shared,
            pipes: RefCell::new(pipes),
            free_fd_at_begin: Cell::new(-1),
            next_input: RefCell::new(Vec::new()),
            held_fds: RefCell::new(Vec::new()),
            held_release_due: Cell::new(false),
        })
    }

    /// The state the pump thread works on.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Points fds 1 and 2 at the pipes (Perl closes fd 1 with STDOUT after
    /// each request; a script may have reopened either).
    pub fn install_std_fds(&self) -> io::Result<()> {
        let pipes = self.pipes.borrow();
        dup2(pipes.stdout.as_raw_fd(), 1)?;
        dup2(pipes.stderr.as_raw_fd(), 2)
    }

    /// A request starts: output goes to `conn` from now on.
    pub fn begin(
        &self,
        conn: &Stream,
        request_id: u16,
        script: &Path,
        stderr_to_client: bool,
        timeouts: Timeouts,
    ) {
        let conn_fd = conn.as_fd().as_raw_fd();
        self.free_fd_at_begin.set(self.lowest_free_fd());
        let held_after = {
            let mut fds = self.held_fds.borrow_mut();
            fds.clear();
            // The request's own connection is the worker's too.
            fds.push(conn_fd);
            self.shared
                .held
                .get()
                .and_then(|held| held.at_begin(&mut fds))
        };
        let mut state = self.shared.lock();
        state.tag.clear();
        state.tag.push_str(&script.to_string_lossy());
        let started = Instant::now();
        state.active = Some(Active {
            response: Response::new(conn_fd, request_id, stderr_to_client),
            started,
            timeouts,
        });
        state.held_due = held_after.map(|after| started + after);
        self.held_release_due.set(held_after.is_some());
        self.shared
            .arm_timer(held_after.map_or(WATCH_AFTER, |after| after.min(WATCH_AFTER)));
    }

    /// Between requests, before a fork: waits until the pump has closed its
    /// copy of the last request's connection (it drops it at its next
    /// wake-up), so the new process does not inherit one that would keep
    /// the connection open after the worker closed it.
    pub fn wait_watch_closed(&self) {
        let mut state = self.shared.lock();
        if state.watch_copy {
            self.shared.kick();
        }
        while state.watch_copy {
            state = self
                .shared
                .watch_closed
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The connections the worker holds while it serves (once a worker).
    pub fn hold_connections(&self, held: Arc<dyn HeldConnections>) {
        if self.shared.held.set(held).is_err() {
            log::warn!("the worker's held connections are known already");
        }
    }

    /// The script is done: sends `pending` (what it printed and did not
    /// flush) after everything written to fd 1, waits for the children of
    /// a request that forked to close their stdout, and ends the request.
    pub fn finish(
        &self,
        pending: &[u8],
        forked: bool,
        exit_status: i32,
        dev_null: RawFd,
    ) -> io::Result<Finished> {
        self.close_stray_holders(dev_null, forked);
        if forked {
            self.wait_for_children(pending, dev_null)?;
        }
        let shared = &*self.shared;
        let mut state = shared.lock();
        state.drain_both(shared);
        state.log_partial_line();
        *self.next_input.borrow_mut() = std::mem::take(&mut state.next_input);
        let Some(active) = state.active.take() else {
            return Err(io::Error::other("no request to finish"));
        };
        state.held_due = None;
        state.generation += 1;
        let watched = std::mem::take(&mut state.watched);
        let pending = if forked { &[][..] } else { pending };
        let finished = active.response.finish(pending, exit_status, &state.tag);
        drop(state);
        if watched {
            self.shared.kick();
        }
        Ok(finished)
    }

    /// What the web server sent on the connection after the last request
    /// while its script ran (its next request): it goes back to the
    /// connection, before anything still in the socket.
    pub fn take_next_input(&self) -> Vec<u8> {
        self.next_input.take()
    }

    /// The lowest descriptor number ≥ 3 that is free (-1 if unknown).
    fn lowest_free_fd(&self) -> RawFd {
        let probe = self.pipes.borrow().stdout.as_raw_fd();
        match nix::fcntl::fcntl(probe, FcntlArg::F_DUPFD_CLOEXEC(3)) {
            Ok(fd) => {
                let _ = nix::unistd::close(fd);
                fd
            }
            Err(_) => -1,
        }
    }

    /// A process's exit closes every descriptor it has: a copy of stdout
    /// or stderr the script made and left open in the worker
    /// (`POSIX::dup(1)` held by a tied handle) is pointed at /dev/null,
    /// so it neither keeps the response open nor writes into the next
    /// one. The number stays taken: a Perl handle still on it writes
    /// nowhere instead of into whatever opens next.
    ///
    /// After a fork every descriptor is checked (the wait for the
    /// children's EOF depends on it); otherwise, to stay cheap, those from
    /// the lowest one free when the request began (or the lowest of the
    /// worker's connections then, if lower) up to a run of `FREE_RUN` free
    /// numbers: a script's descriptors take the lowest free numbers.
    fn close_stray_holders(&self, dev_null: RawFd, forked: bool) {
        const FREE_RUN: RawFd = 16;
        let pipes = self.pipes.borrow();
        let ours = [pipes.stdout.as_raw_fd(), pipes.stderr.as_raw_fd()];
        let candidates: Vec<RawFd> = if forked {
            let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
                return;
            };
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
                .collect()
        } else {
            let held = self.held_fds.borrow();
            // Parked connections handed to the master while the script ran
            // freed their numbers, maybe below the first free one at the
            // begin: a copy the script made since may be on one. Only the
            // request's own connection (the first) is still the worker's.
            let released = self.held_release_due.get() && self.shared.lock().held_due.is_none();
            let ours = if released {
                held.get(..1).unwrap_or(&[])
            } else {
                &held[..]
            };
            let first = held
                .iter()
                .copied()
                .fold(self.free_fd_at_begin.get(), RawFd::min);
            open_fds_from(first.max(3), FREE_RUN, ours)
        };
        if candidates.is_empty() {
            return;
        }
        let read_ends: Vec<RawFd> = {
            let state = self.shared.lock();
            [&state.stdout, &state.stderr]
                .into_iter()
                .flatten()
                .map(|f| f.as_raw_fd())
                .collect()
        };
        let pipe_ids: Vec<(u64, u64)> = ours.iter().filter_map(|&fd| file_id(fd)).collect();
        for fd in candidates {
            if fd <= 2 || fd == dev_null || ours.contains(&fd) || read_ends.contains(&fd) {
                continue;
            }
            if file_id(fd).is_some_and(|id| pipe_ids.contains(&id)) {
                log::info!(
                    "{}: descriptor {fd} left open on the script's stdout or stderr; closed, as the end of a CGI process would",
                    self.shared.lock().tag
                );
                let _ = dup2(dev_null, fd);
            }
        }
    }

    /// CGI's end of a response for a request that forked: once our own
    /// write ends are gone, EOF on the pipes means every child closed them.
    fn wait_for_children(&self, pending: &[u8], dev_null: RawFd) -> io::Result<()> {
        dup2(dev_null, 1)?;
        dup2(dev_null, 2)?;
        let (fresh, stdout, stderr) = make_pipes()?;
        drop(self.pipes.replace(fresh));
        let shared = &*self.shared;
        let mut state = shared.lock();
        // What the finished children wrote comes before what the script
        // printed after them.
        state.drain_stdout(shared);
        if !pending.is_empty() {
            let state = &mut *state;
            if let Some(active) = state.active.as_mut() {
                active.response.send_stdout(pending, &state.tag);
            }
        }
        loop {
            state.drain_stdout(shared);
            state.drain_stderr(shared);
            if state.stdout.is_none() && state.stderr.is_none() {
                break;
            }
            state = shared
                .pipe_closed
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        state.stdout = Some(stdout);
        state.stderr = Some(stderr);
        drop(state);
        self.shared.kick();
        self.install_std_fds()
    }
}

/// The open descriptors from `first` up to a run of `free_run` free
/// numbers, asked of the kernel in windows of `free_run` with one `poll`
/// each (an invalid descriptor answers POLLNVAL) rather than one `fcntl`
/// per number: a request that left nothing open costs one `poll` of 16
/// (0.4 µs here, against 1 µs for 64). The worker's own descriptors in
/// `ours` count as free.
fn open_fds_from(first: RawFd, free_run: RawFd, ours: &[RawFd]) -> Vec<RawFd> {
    let window = free_run.max(1) as usize;
    let mut open = Vec::new();
    let (mut start, mut free) = (first, 0);
    loop {
        let mut fds: Vec<libc::pollfd> = (0..window as RawFd)
            .map(|i| libc::pollfd {
                fd: start + i,
                events: 0,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `window` pollfd structs; a zero
        // timeout returns at once, and only `revents` is written.
        if unsafe { libc::poll(fds.as_mut_ptr(), window as libc::nfds_t, 0) } < 0 {
            return open;
        }
        for p in &fds {
            if p.revents & libc::POLLNVAL != 0 || ours.contains(&p.fd) {
                free += 1;
                if free >= free_run {
                    return open;
                }
            } else {
                open.push(p.fd);
                free = 0;
            }
        }
        start += window as RawFd;
    }
}

/// (device, inode) of what `fd` is open on.
fn file_id(fd: RawFd) -> Option<(u64, u64)> {
    let st = nix::sys::stat::fstat(fd).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// A new pair of std pipes: the write ends (kept by the worker, above the
/// std fds, close-on-exec) and the non-blocking read ends.
fn make_pipes() -> io::Result<(StdPipes, File, File)> {
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    for r in [&out_r, &err_r] {
        nix::fcntl::fcntl(r.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    }
    let pipes = StdPipes {
        stdout: above_std_fds(out_w)?,
        stderr: above_std_fds(err_w)?,
    };
    Ok((
        pipes,
        File::from(above_std_fds(out_r)?),
        File::from(above_std_fds(err_r)?),
    ))
}
