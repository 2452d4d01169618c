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

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::fastcgi::connection::{Body, Request, ResponseWriter};
use crate::listen::Stream;
use crate::path_policy::{PathPolicy, ScriptCheck};
use crate::perl::{Interpreter, Outcome};

/// Peer closed its end (Linux); nix has no name for it.
const POLLRDHUP: PollFlags = PollFlags::from_bits_retain(libc::POLLRDHUP);

const RUNNER: &str = "FCGI::Spawn::Runner";

/// Per-worker request runner.
pub struct Runner<'p> {
    perl: &'p Interpreter,
    policy: PathPolicy,
    stderr_to_client: bool,
    dev_null: OwnedFd,
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
        let mut untouched = RequestResult {
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
                return Ok(untouched);
            }
            ScriptCheck::Forbidden(why) => {
                log::warn!("403: {why}");
                simple_response(conn, req.id, 403, "Forbidden")?;
                return Ok(untouched);
            }
        };
        if req.body_too_large {
            log::warn!(
                "413: request body for {} is larger than --max-body",
                script.display()
            );
            simple_response(conn, req.id, 413, "Request Entity Too Large")?;
            return Ok(untouched);
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

        let tag = format!("{}", script.display());
        let stderr_to_client = self.stderr_to_client;
        let outcome = std::thread::scope(|scope| -> io::Result<_> {
            let pump = scope.spawn(|| {
                pump_output(
                    stdout_r,
                    stderr_r,
                    &mut *conn,
                    req.id,
                    &tag,
                    stderr_to_client,
                )
            });
            let outcome = self.run_steps(&args);
            // Our own holds on the pipes go; the pump ends when the script's
            // children have let go too.
            let parked = self.park_std_fds();
            let pumped = pump.join().unwrap_or(PumpResult {
                bytes_sent: 0,
                error: Some(io::Error::other("output pump panicked")),
                writer_failed: true,
            });
            parked?;
            Ok((outcome, pumped))
        })?;
        let (steps, pumped) = outcome;
        untouched.signals_touched = steps.signals_touched;

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
        Ok(untouched)
    }

    /// The Perl steps of a request, in order. Any of them may end with
    /// `exit`; only the script's own exit status matters to the client.
    fn run_steps(&self, args: &[&[u8]]) -> StepsResult {
        let mut result = StepsResult {
            exit_status: 0,
            signals_touched: false,
        };
        if let Some(status) = self.step("begin_request", args, true) {
            result.exit_status = status;
        } else {
            match self.perl.call(&format!("{RUNNER}::run_script"), &[], false) {
                Ok(Outcome::Exited(code)) => result.exit_status = code,
                Ok(Outcome::Died(msg)) => {
                    log::error!("{msg}");
                    result.exit_status = 255;
                }
                Ok(Outcome::Returned(_)) => {}
                Err(e) => log::error!("{e}"),
            }
            self.step("run_end_blocks", &[], true);
        }
        let roots: Vec<&[u8]> = self.root_args.iter().map(Vec::as_slice).collect();
        match self
            .perl
            .call(&format!("{RUNNER}::end_request"), &roots, true)
        {
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
        match self.perl.call(&format!("{RUNNER}::{name}"), args, trap_die) {
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

struct PumpResult {
    bytes_sent: u64,
    error: Option<io::Error>,
    /// The connection is unusable: no END_REQUEST can be sent.
    writer_failed: bool,
}

/// Moves the script's output to the client and its stderr to the log until
/// both pipes reach EOF, watching the connection meanwhile. If the client
/// goes away or sends FCGI_ABORT_REQUEST, the script is stopped: the stdout
/// pipe is closed (its next write raises SIGPIPE) and SIGPIPE is sent at
/// once, which interrupts a sleep; the runner's handler then exits the
/// script. Stderr is still logged to the end.
fn pump_output(
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    conn: &mut Stream,
    request_id: u16,
    tag: &str,
    stderr_to_client: bool,
) -> PumpResult {
    block_all_signals();
    let mut out = ResponseWriter::new(&mut *conn, request_id);
    let mut result = PumpResult {
        bytes_sent: 0,
        error: None,
        writer_failed: false,
    };
    let mut stdout = Some(std::fs::File::from(stdout_r));
    let mut stderr = Some(std::fs::File::from(stderr_r));
    let mut watching_client = true;
    let mut line_buf: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let pid = std::process::id();
    while stdout.is_some() || stderr.is_some() {
        let (out_ready, err_ready, client_event) = {
            let mut fds = Vec::with_capacity(3);
            let mut slots = [None; 3];
            if let Some(f) = &stdout {
                slots[0] = Some(fds.len());
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            if let Some(f) = &stderr {
                slots[1] = Some(fds.len());
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            let conn_fd = out.get_ref().as_fd();
            if watching_client {
                slots[2] = Some(fds.len());
                fds.push(PollFd::new(conn_fd, PollFlags::POLLIN | POLLRDHUP));
            }
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    result.error = Some(e.into());
                    break;
                }
            }
            let fired = |slot: Option<usize>| {
                slot.map(|i| !fds[i].revents().unwrap_or(PollFlags::empty()).is_empty())
                    .unwrap_or(false)
            };
            (fired(slots[0]), fired(slots[1]), fired(slots[2]))
        };
        if client_event {
            let why = match client_message(out.get_mut(), request_id) {
                ClientMessage::Gone => {
                    result.writer_failed = true;
                    Some("client went away")
                }
                ClientMessage::Abort => Some("FCGI_ABORT_REQUEST received"),
                ClientMessage::Nothing => None,
            };
            if let Some(why) = why {
                log::info!("{tag}: {why}; stopping the script");
                watching_client = false;
                stdout = None;
                stop_script();
            }
        }
        if out_ready {
            if let Some(f) = stdout.as_mut() {
                let n = read_retry(f, &mut buf);
                if n == 0 {
                    stdout = None;
                } else if result.writer_failed {
                    stdout = None;
                } else if let Err(e) = out.write_stdout(&buf[..n]) {
                    log::info!("{tag}: client went away ({e}); stopping the script");
                    result.writer_failed = true;
                    watching_client = false;
                    stdout = None;
                    stop_script();
                } else {
                    result.bytes_sent += n as u64;
                }
            }
        }
        if err_ready {
            if let Some(f) = stderr.as_mut() {
                let n = read_retry(f, &mut buf);
                if n == 0 {
                    stderr = None;
                } else {
                    if stderr_to_client && !result.writer_failed {
                        let _ = out.write_stderr(&buf[..n]);
                    }
                    line_buf.extend_from_slice(&buf[..n]);
                    log_complete_lines(&mut line_buf, pid, tag);
                }
            }
        }
    }
    if !line_buf.is_empty() {
        line_buf.push(b'\n');
        log_complete_lines(&mut line_buf, pid, tag);
    }
    result
}

enum ClientMessage {
    Gone,
    Abort,
    Nothing,
}

/// What the web server sent while the script runs: only FCGI_ABORT_REQUEST
/// is meaningful (no multiplexing); EOF or an error means it went away.
fn client_message(conn: &mut Stream, request_id: u16) -> ClientMessage {
    let mut buf = [0u8; 512];
    match conn.read(&mut buf) {
        Ok(0) | Err(_) => ClientMessage::Gone,
        Ok(n) => {
            let mut rest = &buf[..n];
            while let Ok(header) = crate::fastcgi::record::Header::parse(rest) {
                if header.record_type == crate::fastcgi::record::RecordType::AbortRequest
                    && header.request_id == request_id
                {
                    return ClientMessage::Abort;
                }
                let len = header.record_len().min(rest.len());
                rest = &rest[len..];
            }
            log::warn!("ignoring {n} unexpected bytes from the web server while a script runs");
            ClientMessage::Nothing
        }
    }
}

/// Interrupts the script: the runner's SIGPIPE handler exits it.
fn stop_script() {
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGPIPE);
}

/// True when the web server already closed the connection (a request
/// queued while every worker was busy, whose client gave up).
fn peer_closed(conn: &Stream) -> bool {
    let mut fds = [PollFd::new(conn.as_fd(), POLLRDHUP)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

fn read_retry(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    loop {
        match f.read(buf) {
            Ok(n) => return n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return 0,
        }
    }
}

/// Logs each complete line of script stderr as one log line, tagged.
fn log_complete_lines(buf: &mut Vec<u8>, pid: u32, tag: &str) {
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + pos];
        let mut msg = format!("[worker {pid}] {tag}: ").into_bytes();
        msg.extend_from_slice(line);
        log::warn!("{}", String::from_utf8_lossy(&msg));
        start += pos + 1;
    }
    buf.drain(..start);
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
