//! Runs one FastCGI request through the embedded Perl (the Rust half of the
//! request runner; the Perl half is `perl/FCGI/Spawn/Runner.pm`).
//!
//! While a script runs, descriptors 0/1/2 *are* the request: 0 reads the body
//! (a pipe holding it, or its spilled temp file), 1 and 2 are pipes. That is
//! what makes `system`, `exec`, `fileno`, IPC::Run and Capture::Tiny behave
//! as under plain CGI: a child inherits the same descriptors and its output
//! reaches the client in order with the script's own. A pump thread frames
//! what arrives on the stdout pipe into FCGI_STDOUT records as it comes
//! (streaming) and turns stderr lines into tagged log lines. The response
//! ends when every holder of the stdout pipe has closed it, as with CGI.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollTimeout};

use crate::config::Isolation;
use crate::fastcgi::connection::{Body, Request, ResponseWriter};
use crate::listen::Stream;
use crate::path_policy::{PathPolicy, ScriptCheck};
use crate::perl::{Interpreter, Outcome};
use crate::pump::{Job, Pump, POLLRDHUP, SCRIPT_RUNNING};

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
    pump: Pump,
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
            pump: Pump::start()?,
            request_timeout,
            isolation,
            isolation_for,
            root_args,
        })
    }

    /// Points descriptors 0 and 1 at /dev/null and 2 at the log, the state
    /// between requests (so a stray write never reaches an old client).
    pub fn park_std_fds(&self) -> io::Result<()> {
        dup2(self.dev_null.as_raw_fd(), 0)?;
        dup2(self.dev_null.as_raw_fd(), 1)?;
        dup2(crate::log::fd(), 2)?;
        Ok(())
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
        let stdin = self.stdin_for(std::mem::replace(&mut req.body, Body::Empty))?;
        let (stdout_r, stdout_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (stderr_r, stderr_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        dup2(stdin.as_raw_fd(), 0)?;
        dup2(stdout_w.as_raw_fd(), 1)?;
        dup2(stderr_w.as_raw_fd(), 2)?;
        // From here the only write ends are fds 1 and 2 (and whatever the
        // script's children inherit), so EOF on the pipes means "all closed".
        drop((stdin, stdout_w, stderr_w));

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

        self.pump.begin(Job {
            stdout: Some(stdout_r),
            stderr: Some(stderr_r),
            conn: conn.try_clone()?,
            request_id: req.id,
            tag: script.display().to_string(),
            stderr_to_client: self.stderr_to_client,
            timeout: self.request_timeout,
        })?;
        let steps = self.run_steps(&args);
        // Our own holds on the pipes go; the pump finishes when the script's
        // children have let go too.
        let parked = self.park_std_fds();
        let (_dup, pumped) = self.pump.finish()?;
        parked?;
        result.signals_touched = steps.signals_touched;

        if let Some(e) = &pumped.error {
            log::warn!(
                "{}: client connection failed while sending the response: {e}",
                script.display()
            );
        }
        if pumped.writer_failed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
        let mut response = ResponseWriter::new(&mut *conn, req.id);
        if pumped.bytes_sent == 0 {
            log::warn!(
                "500: {} produced no output (exit status {})",
                script.display(),
                steps.exit_status
            );
            response.write_stdout(&error_page(500, "Internal Server Error"))?;
        }
        response.finish(steps.exit_status as u32, 0)?;
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

fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    if from == to {
        return Ok(());
    }
    // SAFETY: both are descriptor numbers; dup2 atomically replaces `to`.
    // fds 0/1/2 are owned by the runner, never by Rust objects.
    let rc = unsafe { libc::dup2(from, to) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn error_page(status: u16, reason: &str) -> Vec<u8> {
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
