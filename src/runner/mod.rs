//! Runs one FastCGI request through the embedded Perl (the Rust half of the
//! request runner; the Perl half is `perl/FCGI/Spawn/Runner.pm` and the
//! modules it runs the steps with, reached only through [`steps`]).
//!
//! While a script runs, descriptors 0/1/2 *are* the request: 0 reads the body
//! (a pipe holding it, or its spilled temp file), 1 and 2 are the worker's
//! std pipes, drained to the client and the log (`output.rs`). That is what
//! makes `system`, `exec`, `fileno`, IPC::Run and Capture::Tiny behave as
//! under plain CGI: a child inherits the same descriptors and its output
//! reaches the client in order with the script's own, which a PerlIO layer
//! on STDOUT keeps in memory until a flush or the end of the request.
//!
//! A request goes through the stages of [`Stage`]: the script runs in the
//! worker (`perlrun`, `registry`) or in a child forked for it (`fork`),
//! then the worker finishes what process exit would, ends the response,
//! and puts the interpreter back — or, when it cannot vouch for it, says so
//! and is replaced.
//!
//! Before any request, `interpreter` sets up the interpreter the workers
//! are forked from: the daemon's modules, the preloads, the precompiled
//! scripts.

mod interpreter;
mod output;
mod precompile;
mod pump;
mod response;
mod spare;
mod steps;
mod stop;
mod warm_up;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use crate::config::Isolation;
use crate::fastcgi::watch::peer_closed;
use crate::fastcgi::{Body, BodyRefused, Request};
use crate::fds::{above_std_fds, dup2};
use crate::listen::Stream;
use crate::path_policy::{PathPolicy, ScriptCheck};
use crate::perl::{Interpreter, Stage};
use crate::scoreboard::RanAs;
use output::Output;
use spare::Spare;

pub use interpreter::{prepare_perl, start_perl};
pub use output::{HeldConnections, Timeouts};
pub use precompile::{check_scripts, precompile};
pub use pump::take_slow_requests;
pub use steps::{PerlSteps, Restored, WorkerSettings};
pub use warm_up::warm_up;

/// Per-worker request runner.
pub struct Runner<'p> {
    steps: PerlSteps<'p>,
    policy: PathPolicy,
    stderr_to_client: bool,
    dev_null: OwnedFd,
    output: Output,
    timeouts: Timeouts,
    isolation: Isolation,
    isolation_for: Vec<(glob::Pattern, Isolation)>,
    /// `stats`: changed modules are reloaded before each request, in the
    /// worker (fork mode: before the fork).
    stats: bool,
    /// fork mode: the scripts compiled in this worker, with their file's
    /// stamp then. One unchanged since is forked at once, with no call
    /// into Perl in the worker: what the worker does not touch, its next
    /// request does not fault in again after the fork.
    compiled_for_fork: RefCell<HashMap<PathBuf, FileStamp>>,
    /// registry: the scripts whose named subs keep file-scoped lexicals
    /// (they cannot run twice in one process), with their stamp when
    /// found: each request runs in a child, as in fork isolation.
    run_in_children: RefCell<HashMap<PathBuf, FileStamp>>,
    /// What this worker served, for a reload to precompile (`served`).
    served: RefCell<crate::served::Reporter>,
    /// fork mode: the child forked for the next request (`spare.rs`),
    /// while no Perl ran in the worker since.
    spare: RefCell<Option<Spare>>,
    /// The last request ran in a child: fork the next one's ahead.
    fork_ahead: Cell<bool>,
    /// The last request's child, which reported its end and is still to
    /// be reaped (once its response is sent).
    unreaped: RefCell<Option<spare::Reported>>,
    /// The heap pages a request's child wrote (one in `PAGES_ASKED_EVERY`
    /// is asked, reading the kernel's page map costs): each spare forked
    /// ahead writes them before its request comes.
    written_pages: RefCell<Vec<(usize, usize)>>,
    /// Children forked since one was asked for its pages.
    since_pages_asked: Cell<u32>,
}

/// fork mode: one request's child in this many reports the heap pages it
/// wrote (reading the page map costs about what the faults it saves do);
/// the spares in between write the last report's pages.
const PAGES_ASKED_EVERY: u32 = 32;

/// What says a script file changed (mtime, size, inode), as the Perl
/// runner's registry compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp(i64, u64, u64);

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp(m.mtime(), m.size(), m.ino()))
    }
}

/// What the worker needs to know after a request.
pub struct RequestResult {
    /// The script changed %SIG entries that had to be put back; the worker
    /// re-installs its own signal handlers.
    pub signals_touched: bool,
    /// The interpreter's state could not be put back (the reason): the
    /// worker must not serve again.
    pub retire: Option<String>,
    /// How the script ran (the status page shows it).
    pub ran_as: RanAs,
    /// The HTTP status the client got, and the response's bytes.
    pub status: u16,
    pub bytes: u64,
    /// Bytes read from the connection while the script ran, after the
    /// request's own records (the web server's next request): they belong
    /// to the connection, before what is still in the socket.
    pub next_input: Vec<u8>,
}

impl RequestResult {
    fn clean() -> RequestResult {
        RequestResult {
            signals_touched: false,
            retire: None,
            ran_as: RanAs::Nothing,
            status: 200,
            bytes: 0,
            next_input: Vec::new(),
        }
    }

    /// A page the daemon answered itself, no script run.
    fn page(status: u16, reason: &str) -> RequestResult {
        RequestResult {
            status,
            bytes: crate::cgi::error_page((status, reason)).len() as u64,
            ..RequestResult::clean()
        }
    }
}

impl<'p> Runner<'p> {
    pub fn new(
        perl: &'p Interpreter,
        policy: PathPolicy,
        stderr_to_client: bool,
        timeouts: Timeouts,
        isolation: Isolation,
        isolation_for: Vec<(glob::Pattern, Isolation)>,
        stats: bool,
    ) -> io::Result<Runner<'p>> {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        // Kept above the std descriptors, which the runner dup2()s over.
        let dev_null = above_std_fds(opened.into())?;
        perl.capture_output(output::send_flushed_output);
        let output = Output::start()?;
        pump::start(output.shared())?;
        Ok(Runner {
            steps: PerlSteps::new(perl),
            policy,
            stderr_to_client,
            dev_null,
            output,
            timeouts,
            isolation,
            isolation_for,
            stats,
            compiled_for_fork: RefCell::new(HashMap::new()),
            run_in_children: RefCell::new(HashMap::new()),
            served: RefCell::new(crate::served::Reporter::default()),
            spare: RefCell::new(None),
            fork_ahead: Cell::new(false),
            unreaped: RefCell::new(None),
            written_pages: RefCell::new(Vec::new()),
            since_pages_asked: Cell::new(0),
        })
    }

    /// The Perl side's per-worker set-up: the `worker_init` files first
    /// (what they leave in `main::` is the worker's, as a preload's is),
    /// then the runner's own.
    pub fn init_worker(
        &self,
        pass_env: &[String],
        env: &[(String, String)],
        worker_init: &[std::path::PathBuf],
    ) -> io::Result<()> {
        for file in worker_init {
            let path = file.display().to_string();
            self.steps
                .preload_script(&path)
                .map_err(|why| io::Error::other(format!("--worker-init {path}: {why}")))?;
        }
        let worker = WorkerSettings::new(pass_env, env, &self.policy);
        self.steps
            .init_worker(&worker)
            .map_err(|e| io::Error::other(format!("worker initialisation failed: {e}")))
    }

    /// The connections the worker holds while it serves (see
    /// [`HeldConnections`]).
    pub fn hold_connections(&self, held: std::sync::Arc<dyn HeldConnections>) {
        self.output.hold_connections(held);
    }

    /// Descriptor 0 on /dev/null, 1 and 2 on the worker's std pipes: the
    /// state between requests (a request with a body points 0 at it).
    pub fn park_std_fds(&self) -> io::Result<()> {
        dup2(self.dev_null.as_raw_fd(), 0)?;
        self.output.install_std_fds()
    }

    /// Answers one request on `conn`.
    pub fn handle(&self, mut req: Request, conn: &Stream) -> io::Result<RequestResult> {
        let script_filename = req.param(b"SCRIPT_FILENAME").unwrap_or_default().to_vec();
        let (script, path_info) = match self.policy.check(&script_filename) {
            ScriptCheck::Run { script, path_info } => (script, path_info),
            ScriptCheck::NotFound => {
                log::info!(
                    "404: {} not found",
                    String::from_utf8_lossy(&script_filename)
                );
                response::answer(conn.as_fd(), req.id, 404, "Not Found")?;
                return Ok(RequestResult::page(404, "Not Found"));
            }
            ScriptCheck::Forbidden(why) => {
                log::warn!("403: {why}");
                response::answer(conn.as_fd(), req.id, 403, "Forbidden")?;
                return Ok(RequestResult::page(403, "Forbidden"));
            }
        };
        match &req.body_refused {
            None => {}
            Some(too_large @ BodyRefused::TooLarge { .. }) => {
                let declared = req
                    .params
                    .iter()
                    .find(|(k, _)| k == b"CONTENT_LENGTH")
                    .map(|(_, v)| format!(", CONTENT_LENGTH {}", String::from_utf8_lossy(v)))
                    .unwrap_or_default();
                log::warn!(
                    "413: request body for {} is {too_large}{declared}; raise max_body (--max-body) if it should pass",
                    script.display()
                );
                response::answer(conn.as_fd(), req.id, 413, "Request Entity Too Large")?;
                return Ok(RequestResult::page(413, "Request Entity Too Large"));
            }
            Some(refused @ BodyRefused::NotStored { .. }) => {
                log::error!("500: request body for {}: {refused}", script.display());
                response::answer(conn.as_fd(), req.id, 500, "Internal Server Error")?;
                return Ok(RequestResult::page(500, "Internal Server Error"));
            }
        }

        if peer_closed(conn.as_fd()).unwrap_or(false) {
            log::info!(
                "{}: the client went away before the script started; skipped",
                script.display()
            );
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
        if !matches!(req.body, Body::Empty) {
            let stdin = self.stdin_for(std::mem::replace(&mut req.body, Body::Empty))?;
            dup2(stdin.as_raw_fd(), 0)?;
        }

        let mut params: Vec<&[u8]> = Vec::with_capacity(req.params.len() * 2 + 2);
        for (name, value) in &req.params {
            params.push(name);
            params.push(value);
        }
        if let Some(info) = &path_info {
            if req.param(b"PATH_INFO").is_none() {
                params.push(b"PATH_INFO");
                params.push(info);
            }
        }
        let mut isolation = Isolation::for_script(self.isolation, &self.isolation_for, &script);
        if isolation != Isolation::Perlrun {
            self.served.borrow_mut().served(&script);
        }
        let mut ran_as = match isolation {
            Isolation::Perlrun => RanAs::Perlrun,
            Isolation::Registry => RanAs::Registry,
            Isolation::Fork => RanAs::Fork,
        };
        if isolation == Isolation::Registry && self.runs_in_children(&script) {
            isolation = Isolation::Fork;
            ran_as = RanAs::RegistryInChild;
        }

        self.output
            .begin(conn, req.id, &script, self.stderr_to_client, self.timeouts);
        let perl = self.steps.perl();
        let forks_before = perl.fork_count();
        // Whether Perl ran in this process (in a child: only to compile),
        // and whether the script ran here (then the worker finishes it).
        let (exit_status, perl_ran, ran_here) = match isolation {
            Isolation::Fork => {
                let (status, compiled) = self.run_in_child(&script, &params, conn);
                (status, compiled, false)
            }
            _ => match self.run_in_worker(&script, isolation, &params) {
                Some(status) => (status, true, true),
                None => {
                    // Compiled as registry, it cannot run twice here.
                    ran_as = RanAs::RegistryInChild;
                    if let Some(stamp) = FileStamp::of(&script) {
                        self.run_in_children
                            .borrow_mut()
                            .insert(script.clone(), stamp);
                    }
                    (self.run_in_child(&script, &params, conn).0, true, false)
                }
            },
        };
        Stage::Ending.enter();
        stop::request_over();
        if ran_here {
            self.steps.finish_request();
        }
        // A request's child is a fork too, and may have left children.
        let forked = !ran_here || perl.fork_count() != forks_before;
        let finished = perl.take_pending_output(|pending| {
            self.output
                .finish(pending, forked, exit_status, self.dev_null.as_raw_fd())
        });
        if let Some(child) = self.unreaped.take() {
            if let Some(pages) = child.written_pages_and_reap() {
                *self.written_pages.borrow_mut() = pages;
            }
        }
        // Back to the between-requests state: Perl may have closed fds 0 and
        // 1 (with STDIN/STDOUT), a script may have reopened any of 0/1/2.
        let parked = self.park_std_fds();
        Stage::Idle.enter();
        let mut result = RequestResult::clean();
        result.ran_as = ran_as;
        result.next_input = self.output.take_next_input();
        let restored = if perl_ran {
            self.steps.end_request()
        } else {
            Restored::Clean {
                signals_touched: false,
            }
        };
        match restored {
            Restored::Clean { signals_touched } => result.signals_touched = signals_touched,
            Restored::Unclean(reason) => {
                log::error!(
                    "{}: {reason}; this worker will be replaced",
                    script.display()
                );
                result.retire = Some(reason);
            }
        }
        let finished = finished?;
        parked?;
        result.status = finished.status;
        result.bytes = finished.bytes;
        if finished.empty {
            log::warn!(
                "500: {} produced no output (exit status {exit_status})",
                script.display(),
            );
        }
        if finished.client_gone && result.retire.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
        Ok(result)
    }

    /// perlrun, registry: the script runs in this process. Returns its exit
    /// status; None when it did not run, for a child to run it (a registry
    /// script that cannot run twice in one process).
    fn run_in_worker(&self, script: &Path, isolation: Isolation, params: &[&[u8]]) -> Option<i32> {
        self.fork_ahead.set(false);
        self.discard_spare();
        Stage::Running.enter();
        self.run_and_end(script.as_os_str().as_bytes(), isolation, params)
    }

    /// The request's set-up, the script and its END blocks (when it has
    /// any, or did not return normally). Returns its exit status, or None
    /// when the script is for a child to run.
    fn run_and_end(&self, script: &[u8], isolation: Isolation, params: &[&[u8]]) -> Option<i32> {
        let mut ran = self.steps.run_request(script, isolation, params, false);
        if ran.compile_first {
            if let Err(e) = self.steps.compile_script(script, isolation, params) {
                log::debug!(
                    "{}: its run compiles it again: {e}",
                    String::from_utf8_lossy(script)
                );
            }
            ran = self.steps.run_request(script, isolation, params, true);
        }
        if ran.in_child {
            return None;
        }
        if ran.end_blocks_due {
            self.steps.run_end_blocks();
        }
        Some(ran.status)
    }

    /// A registry script found to keep file lexicals in named subs, and
    /// unchanged since.
    fn runs_in_children(&self, script: &Path) -> bool {
        let known = self.run_in_children.borrow().get(script).copied();
        match known {
            Some(stamp) if FileStamp::of(script) == Some(stamp) => true,
            Some(_) => {
                self.run_in_children.borrow_mut().remove(script);
                false
            }
            None => false,
        }
    }

    /// fork: the worker keeps the compiled script and forks a child for the
    /// request, whose fds 0/1/2 are the request's streams: a CGI process
    /// that starts with everything compiled. Returns the child's exit
    /// status, and whether Perl ran in the worker (to compile the script).
    fn run_in_child(&self, script: &Path, params: &[&[u8]], conn: &Stream) -> (i32, bool) {
        let script_bytes = script.as_os_str().as_bytes();
        let stamp = FileStamp::of(script);
        let compile = self.stats
            || stamp.is_none()
            || self.compiled_for_fork.borrow().get(script) != stamp.as_ref();
        if compile {
            // The spare is a copy of the worker without this compile, and
            // the pages another script's run wrote are not this one's.
            self.discard_spare();
            self.written_pages.borrow_mut().clear();
            match self
                .steps
                .compile_script(script_bytes, Isolation::Fork, params)
            {
                Ok(()) => {
                    if let Some(stamp) = stamp {
                        self.compiled_for_fork
                            .borrow_mut()
                            .insert(script.to_path_buf(), stamp);
                    }
                }
                // The child compiles it again and fails as the script would.
                Err(e) => log::debug!("{}: not compiled in the worker: {e}", script.display()),
            }
        }
        (self.fork_and_wait(script, params, conn), compile)
    }

    /// Hands the request to the spare child (forked now if there is
    /// none) and waits for the script's end; returns its exit status.
    fn fork_and_wait(&self, script: &Path, params: &[&[u8]], conn: &Stream) -> i32 {
        let script_bytes = script.as_os_str().as_bytes();
        stop::child_starting();
        Stage::Running.enter();
        self.fork_ahead.set(!self.stats);
        let mut handed = None;
        // A spare that died while it waited (killed by hand) gets one
        // successor, forked now.
        for _ in 0..2 {
            let child = match self.spare.take() {
                Some(child) => child,
                // Forked now, it closes the request's connection; the
                // parked ones may have gone to the master since the request
                // began, their numbers taken again (as this child's socket).
                None => match self.fork_spare(&[conn.as_fd().as_raw_fd()], false) {
                    Ok(child) => child,
                    Err(e) => {
                        log::error!("{}: cannot fork the request's child: {e}", script.display());
                        return 255;
                    }
                },
            };
            match child.hand(script_bytes, params) {
                Ok(()) => {
                    handed = Some(child);
                    break;
                }
                Err(e) => {
                    log::warn!(
                        "{}: the spare child did not take the request ({e}); forking another",
                        script.display()
                    );
                    child.discard();
                }
            }
        }
        let Some(child) = handed else {
            log::error!("{}: no child took the request", script.display());
            return 255;
        };
        stop::child_started(child.pid());
        let (status, unreaped) = child.wait();
        stop::child_ended();
        *self.unreaped.borrow_mut() = unreaped;
        status
    }

    /// Between requests, in a worker whose last request ran in a child:
    /// forks the next request's child now, so that request does not wait
    /// for the fork. `held`: the connections the worker holds (asked only
    /// then: most requests fork nothing).
    pub fn fork_ahead(&self, held: impl FnOnce() -> Vec<std::os::fd::RawFd>) {
        if !self.fork_ahead.get() || self.spare.borrow().is_some() {
            return;
        }
        self.output.wait_watch_closed();
        match self.fork_spare(&held(), true) {
            Ok(child) => *self.spare.borrow_mut() = Some(child),
            Err(e) => log::warn!("cannot fork a child ahead of the next request: {e}"),
        }
    }

    /// `ahead`: forked before its request (not with it).
    fn fork_spare(&self, held: &[std::os::fd::RawFd], ahead: bool) -> io::Result<Spare> {
        // Only a worker that forks ahead uses the pages (not with `stats`,
        // which compiles before every request and clears them).
        let since = self.since_pages_asked.get();
        let ask_pages = self.fork_ahead.get()
            && (since + 1 >= PAGES_ASKED_EVERY || self.written_pages.borrow().is_empty());
        self.since_pages_asked
            .set(if ask_pages { 0 } else { since + 1 });
        match Spare::fork(held)? {
            spare::Forked::Spare(child) => Ok(child),
            spare::Forked::InSpare(sock) => self.spare_main(sock, ahead, ask_pages),
        }
    }

    /// The spare child: waits for its request, then is that request's
    /// process, a CGI process that starts with everything compiled.
    /// `ahead`: forked before its request, it writes the pages the last
    /// report named while it waits. `ask_pages`: it reports the pages it
    /// writes itself.
    fn spare_main(&self, sock: std::os::unix::net::UnixStream, ahead: bool, ask_pages: bool) -> ! {
        crate::signals::reset_for_request_child();
        crate::title::spare_child();
        if ahead {
            spare::prefault(&self.written_pages.borrow(), &sock);
        }
        let Some(request) = spare::receive(&sock) else {
            // The worker is gone, or discarded this child. SAFETY: nothing
            // of this copy of the worker is to be flushed or destructed.
            unsafe { libc::_exit(0) }
        };
        let mut fields = request.fields();
        let script = fields.next().unwrap_or_default();
        let params: Vec<&[u8]> = fields.collect();
        crate::title::worker_running(script);
        Stage::Running.enter();
        let perl = self.steps.perl();
        perl.become_request_child();
        perl.report_exit_on(std::os::fd::IntoRawFd::into_raw_fd(sock), ask_pages);
        let status = self
            .run_and_end(script, Isolation::Fork, &params)
            .unwrap_or(255);
        perl.exit_process(status)
    }

    /// The worker leaves: its spare child goes, reaped here rather than
    /// left to whoever adopts it (a container's init may never reap).
    pub fn leave(&self) {
        self.discard_spare();
    }

    /// Ends the spare child, if any: Perl is about to run in the worker.
    fn discard_spare(&self) {
        if let Some(child) = self.spare.take() {
            child.discard();
        }
    }

    /// Descriptor the script reads its body from.
    fn stdin_for(&self, body: Body) -> io::Result<OwnedFd> {
        match body {
            Body::Empty => Ok(self.dev_null.try_clone()?),
            Body::File(file) => Ok(file.into()),
            Body::Memory(bytes) => {
                let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
                if bytes.len() > 65536 {
                    // Default pipe capacity is 64 KiB; make room for the
                    // whole in-memory body so this write cannot block.
                    nix::fcntl::fcntl(
                        r.as_raw_fd(),
                        nix::fcntl::FcntlArg::F_SETPIPE_SZ(bytes.len() as i32),
                    )?;
                }
                let mut file = std::fs::File::from(w);
                file.write_all(&bytes)?;
                Ok(r)
            }
        }
    }
}
