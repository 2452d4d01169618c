//! Runs one FastCGI request through the embedded Perl (the Rust half of the
//! request runner; the Perl half is `perl/FCGI/Spawn/Runner.pm`).
//!
//! While a script runs, descriptors 0/1/2 *are* the request: 0 reads the body
//! (a pipe holding it, or its spilled temp file), 1 and 2 are the worker's
//! std pipes, drained to the client and the log (`output.rs`). That is what
//! makes `system`, `exec`, `fileno`, IPC::Run and Capture::Tiny behave as
//! under plain CGI: a child inherits the same descriptors and its output
//! reaches the client in order with the script's own, which a PerlIO layer
//! on STDOUT keeps in memory until a flush or the end of the request.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollTimeout};

use crate::config::Isolation;
use crate::fastcgi::connection::{Body, Request, ResponseWriter};
use crate::listen::Stream;
use crate::output::{dup2, Output, SCRIPT_RUNNING};
use crate::path_policy::{PathPolicy, ScriptCheck};
use crate::perl::{Interpreter, Outcome};
use crate::pump::POLLRDHUP;

/// The Perl runner's entry points (perl/FCGI/Spawn/Runner.pm), in call order.
const BEGIN_REQUEST: &str = "FCGI::Spawn::Runner::begin_request";
const RUN_SCRIPT: &str = "FCGI::Spawn::Runner::run_script";
const RUN_END_BLOCKS: &str = "FCGI::Spawn::Runner::run_end_blocks";
const END_REQUEST: &str = "FCGI::Spawn::Runner::end_request";

/// Per-worker request runner.
pub struct Runner<'p> {
    perl: &'p Interpreter,
    policy: PathPolicy,
    stderr_to_client: bool,
    dev_null: OwnedFd,
    output: Output,
    request_timeout: Option<std::time::Duration>,
    isolation: Isolation,
    isolation_for: Vec<(glob::Pattern, Isolation)>,
    /// The roots, as arguments for the Perl side's %INC policy.
    root_args: Vec<Vec<u8>>,
}

/// What the worker needs to know after a request.
pub struct RequestResult {
    /// The script changed %SIG entries that had to be put back; the worker
    /// re-installs its own signal handlers.
    pub signals_touched: bool,
}

impl<'p> Runner<'p> {
    pub fn new(
        perl: &'p Interpreter,
        policy: PathPolicy,
        stderr_to_client: bool,
        request_timeout: Option<std::time::Duration>,
        isolation: Isolation,
        isolation_for: Vec<(glob::Pattern, Isolation)>,
    ) -> io::Result<Runner<'p>> {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        // Kept above the std descriptors, which the runner dup2()s over.
        let dev_null = above_std_fds(opened.into())?;
        perl.capture_output(crate::output::send_flushed_output);
        let root_args = policy
            .roots()
            .iter()
            .map(|r| {
                let mut b = r.as_os_str().as_bytes().to_vec();
                b.push(b'/');
                b
            })
            .collect();
        Ok(Runner {
            perl,
            policy,
            stderr_to_client,
            dev_null,
            output: Output::start()?,
            request_timeout,
            isolation,
            isolation_for,
            root_args,
        })
    }

    /// Descriptor 0 on /dev/null, 1 and 2 on the worker's std pipes: the
    /// state between requests (a request with a body points 0 at it).
    pub fn park_std_fds(&self) -> io::Result<()> {
        dup2(self.dev_null.as_raw_fd(), 0)?;
        self.output.install_std_fds()
    }

    /// Answers one request on `conn`.
    pub fn handle(&self, mut req: Request, conn: &mut Stream) -> io::Result<RequestResult> {
        let mut result = RequestResult {
            signals_touched: false,
        };
        let script_filename = req.param(b"SCRIPT_FILENAME").unwrap_or_default().to_vec();
        let (script, path_info) = match self.policy.check(&script_filename) {
            ScriptCheck::Run { script, path_info } => (script, path_info),
            ScriptCheck::NotFound => {
                log::info!(
                    "404: {} not found",
                    String::from_utf8_lossy(&script_filename)
                );
                simple_response(conn, req.id, 404, "Not Found")?;
                return Ok(result);
            }
            ScriptCheck::Forbidden(why) => {
                log::warn!("403: {why}");
                simple_response(conn, req.id, 403, "Forbidden")?;
                return Ok(result);
            }
        };
        if req.body_too_large {
            log::warn!(
                "413: request body for {} is larger than --max-body",
                script.display()
            );
            simple_response(conn, req.id, 413, "Request Entity Too Large")?;
            return Ok(result);
        }

        if peer_closed(conn) {
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

        let script_bytes = script.as_os_str().as_bytes();
        let mut args: Vec<&[u8]> = Vec::with_capacity(2 + req.params.len() * 2);
        args.push(script_bytes);
        let isolation = Isolation::for_script(self.isolation, &self.isolation_for, &script);
        args.push(isolation.as_str().as_bytes());
        for (name, value) in &req.params {
            args.push(name);
            args.push(value);
        }
        if let Some(info) = &path_info {
            if req.param(b"PATH_INFO").is_none() {
                args.push(b"PATH_INFO");
                args.push(info);
            }
        }

        self.output.begin(
            conn,
            req.id,
            &script,
            self.stderr_to_client,
            self.request_timeout,
        );
        let forks_before = self.perl.fork_count();
        let steps = self.run_steps(&args);
        let forked = self.perl.fork_count() != forks_before;
        let finished = self.perl.take_pending_output(|pending| {
            self.output.finish(
                pending,
                forked,
                steps.exit_status,
                self.dev_null.as_raw_fd(),
            )
        });
        // Back to the between-requests state: Perl may have closed fds 0 and
        // 1 (with STDIN/STDOUT), a script may have reopened any of 0/1/2.
        let parked = self.park_std_fds();
        let finished = finished?;
        parked?;
        result.signals_touched = steps.signals_touched;
        if finished.empty {
            log::warn!(
                "500: {} produced no output (exit status {})",
                script.display(),
                steps.exit_status
            );
        }
        if finished.client_gone {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
        Ok(result)
    }

    /// The Perl steps of a request, in order. Any of them may end with
    /// `exit`; only the script's own exit status matters to the client.
    fn run_steps(&self, args: &[&[u8]]) -> StepsResult {
        let mut result = StepsResult {
            exit_status: 0,
            signals_touched: false,
        };
        if let Some(status) = self.step(BEGIN_REQUEST, args, true) {
            result.exit_status = status;
        } else {
            self.perl.set_output_streaming(true);
            SCRIPT_RUNNING.store(true, Ordering::SeqCst);
            let outcome = self.perl.call(RUN_SCRIPT, &[], false);
            SCRIPT_RUNNING.store(false, Ordering::SeqCst);
            match outcome {
                Ok(Outcome::Exited(code)) => result.exit_status = code,
                Ok(Outcome::Died(msg)) => {
                    log::error!("{msg}");
                    result.exit_status = 255;
                }
                Ok(Outcome::Returned(_)) => {}
                Err(e) => log::error!("{e}"),
            }
            self.step(RUN_END_BLOCKS, &[], true);
            self.perl.set_output_streaming(false);
        }
        let roots: Vec<&[u8]> = self.root_args.iter().map(Vec::as_slice).collect();
        match self.perl.call(END_REQUEST, &roots, true) {
            Ok(Outcome::Returned(restored)) => result.signals_touched = restored > 0,
            Ok(other) => {
                log::error!("restoring interpreter state after a request failed: {other:?}")
            }
            Err(e) => log::error!("{e}"),
        }
        result
    }

    /// Calls one internal step; Some(status) when it did not return normally.
    fn step(&self, name: &str, args: &[&[u8]], trap_die: bool) -> Option<i32> {
        match self.perl.call(name, args, trap_die) {
            Ok(Outcome::Returned(_)) => None,
            Ok(Outcome::Exited(code)) => Some(code),
            Ok(Outcome::Died(msg)) => {
                log::error!("{name}: {msg}");
                Some(255)
            }
            Err(e) => {
                log::error!("{name}: {e}");
                Some(255)
            }
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

/// What the master's warm-up runs (see [`warm_up`]): CGI.pm's usual calls
/// when it is preloaded, plain prints otherwise.
const WARM_UP_SCRIPT: &str = "use strict;\nuse warnings;\n\
my $q = $INC{'CGI.pm'} ? CGI->new : undef;\n\
print $q ? $q->header('text/plain') : \"Content-Type: text/plain\\r\\n\\r\\n\";\n\
print 'warm-up ', ($q ? $q->param('x') // '' : ''), \"\\n\";\n";

/// In the master, after the preload and before any fork: runs the request
/// cycle twice in each isolation mode on a small script, output discarded.
/// The first request in a fresh process does lazy work (method caches,
/// the runner's own caches) that writes to pages shared with the master;
/// done here, every worker shares it instead of copying those pages
/// (about 0.6 MB less private memory per worker for a CGI.pm hello world).
pub fn warm_up(perl: &Interpreter) -> io::Result<()> {
    let dir = std::env::temp_dir().join(format!("fcgi-spawn-warm-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = warm_up_in(perl, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn warm_up_in(perl: &Interpreter, dir: &std::path::Path) -> io::Result<()> {
    let script = dir.join("warm-up.pl");
    std::fs::write(&script, WARM_UP_SCRIPT)?;
    let script = script.as_os_str().as_bytes();
    let mut root = dir.as_os_str().as_bytes().to_vec();
    root.push(b'/');
    let dev_null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // The steps bind and close fds 0 and 1; the master's own come back after.
    let saved: Vec<OwnedFd> = [0, 1]
        .iter()
        .map(|&fd| {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor we own.
                .map(|d| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(d) })
        })
        .collect::<Result<_, _>>()?;
    let call = |name: &str, args: &[&[u8]]| match perl.call(name, args, true) {
        Ok(Outcome::Returned(_)) | Ok(Outcome::Exited(_)) => Ok(()),
        Ok(Outcome::Died(msg)) => Err(io::Error::other(format!("{name}: {msg}"))),
        Err(e) => Err(io::Error::other(e.to_string())),
    };
    call("FCGI::Spawn::Runner::warm_up_begin", &[])?;
    let mut outcome = Ok(());
    for isolation in [Isolation::Perlrun, Isolation::Registry] {
        for _ in 0..2 {
            dup2(dev_null.as_raw_fd(), 0)?;
            dup2(dev_null.as_raw_fd(), 1)?;
            let args: [&[u8]; 8] = [
                script,
                isolation.as_str().as_bytes(),
                b"REQUEST_METHOD",
                b"GET",
                b"QUERY_STRING",
                b"x=1",
                b"SCRIPT_FILENAME",
                script,
            ];
            outcome = outcome
                .and_then(|()| call(BEGIN_REQUEST, &args))
                .and_then(|()| call(RUN_SCRIPT, &[]))
                .and_then(|()| call(RUN_END_BLOCKS, &[]));
            let ended = call(END_REQUEST, &[&root]);
            perl.take_pending_output(|_| ());
            outcome = outcome.and(ended);
        }
    }
    let ended = call("FCGI::Spawn::Runner::warm_up_end", &[script]);
    dup2(saved[0].as_raw_fd(), 0)?;
    dup2(saved[1].as_raw_fd(), 1)?;
    outcome.and(ended)
}

struct StepsResult {
    exit_status: i32,
    signals_touched: bool,
}

/// True when the web server already closed the connection (a request
/// queued while every worker was busy, whose client gave up).
fn peer_closed(conn: &Stream) -> bool {
    let mut fds = [PollFd::new(conn.as_fd(), POLLRDHUP)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Moves `fd` to a number ≥ 3 (close-on-exec), so no dup2 onto 0/1/2 can
/// ever close it.
pub fn above_std_fds(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(moved) })
}

pub fn error_page(status: u16, reason: &str) -> Vec<u8> {
    format!(
        "Status: {status} {reason}\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n\
         <!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\
         <body><h1>{reason}</h1></body></html>\n"
    )
    .into_bytes()
}

/// A complete response the daemon answers itself (404, 403, 413…).
pub fn simple_response(
    conn: &mut Stream,
    request_id: u16,
    status: u16,
    reason: &str,
) -> io::Result<()> {
    let mut response = ResponseWriter::new(&mut *conn, request_id);
    response.write_stdout(&error_page(status, reason))?;
    response.finish(0, 0)
}
