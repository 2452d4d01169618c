//! The output pump: a thread of each worker that moves a running script's
//! stdout pipe into FCGI_STDOUT records (as the bytes come: streaming) and
//! its stderr lines into the log, while watching the connection for an
//! FCGI_ABORT_REQUEST or a client that went away.
//!
//! It is one long-lived thread per worker, started after fork, fed one job
//! per request over a channel (no thread creation per request). The thread
//! blocks every signal, so SIGPIPE from a vanished client
//! is an EPIPE here and TERM/CHLD reach the main thread, which runs Perl.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::fastcgi::connection::ResponseWriter;
use crate::listen::Stream;

/// Peer closed its end (Linux); nix has no name for it.
pub const POLLRDHUP: PollFlags = PollFlags::from_bits_retain(libc::POLLRDHUP);

/// One request's output to move.
pub struct Job {
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// A duplicate of the connection, handed back with the result.
    pub conn: Stream,
    pub request_id: u16,
    /// Script path, for log lines.
    pub tag: String,
    pub stderr_to_client: bool,
    /// `--request-timeout`.
    pub timeout: Option<Duration>,
}

/// How long a timed-out script gets to stop before its worker is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct Pump {
    jobs: Sender<Job>,
    done: Receiver<(Stream, PumpResult)>,
}

impl Pump {
    /// Starts the thread. Call in a worker only: the master must not have
    /// threads when it forks.
    pub fn start() -> io::Result<Pump> {
        let (jobs, job_rx) = channel::<Job>();
        let (done_tx, done) = channel();
        std::thread::Builder::new()
            .name("output-pump".into())
            .spawn(move || {
                block_all_signals();
                let pid = std::process::id();
                let mut buf = vec![0u8; 65536];
                for mut job in job_rx {
                    let result = pump_output(&mut job, &mut buf, pid);
                    if done_tx.send((job.conn, result)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Pump { jobs, done })
    }

    /// Hands a request's pipes to the pump.
    pub fn begin(&self, job: Job) -> io::Result<()> {
        self.jobs
            .send(job)
            .map_err(|_| io::Error::other("the output pump thread is gone"))
    }

    /// Waits until every holder of the script's stdout and stderr closed
    /// them and everything was sent.
    pub fn finish(&self) -> io::Result<(Stream, PumpResult)> {
        self.done
            .recv()
            .map_err(|_| io::Error::other("the output pump thread is gone"))
    }
}

const GATEWAY_TIMEOUT: &[u8] = b"Status: 504 Gateway Timeout\r\nContent-Type: text/html\r\n\r\n\
<!DOCTYPE html>\n<html><head><title>504 Gateway Timeout</title></head>\
<body><h1>Gateway Timeout</h1></body></html>\n";

pub struct PumpResult {
    pub bytes_sent: u64,
    pub error: Option<io::Error>,
    /// The connection is unusable: no END_REQUEST can be sent.
    pub writer_failed: bool,
    /// `--request-timeout` struck.
    pub timed_out: bool,
}

/// Moves the script's output to the client and its stderr to the log until
/// both pipes reach EOF, watching the connection meanwhile. If the client
/// goes away or sends FCGI_ABORT_REQUEST, the script is stopped: the stdout
/// pipe is closed (its next write raises SIGPIPE) and SIGPIPE is sent at
/// once, which interrupts a sleep; the runner's handler then exits the
/// script. Stderr is still logged to the end. Past `--request-timeout` the
/// client gets a 504 (when nothing was sent yet) and the script is stopped
/// the same way; if it ignores that for STOP_GRACE, the worker kills itself
/// and the master replaces it.
fn pump_output(job: &mut Job, buf: &mut [u8], pid: u32) -> PumpResult {
    let (request_id, stderr_to_client) = (job.request_id, job.stderr_to_client);
    let tag = job.tag.as_str();
    let mut out = ResponseWriter::new(&mut job.conn, request_id);
    let mut result = PumpResult {
        bytes_sent: 0,
        error: None,
        writer_failed: false,
        timed_out: false,
    };
    let mut stdout = job.stdout.take().map(std::fs::File::from);
    let mut stderr = job.stderr.take().map(std::fs::File::from);
    let mut watching_client = true;
    let mut deadline = job.timeout.map(|t| Instant::now() + t);
    let mut stopping_since: Option<Instant> = None;
    let mut line_buf: Vec<u8> = Vec::new();
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
            let wait = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let ms = d.saturating_duration_since(Instant::now()).as_millis();
                    PollTimeout::from(ms.min(60_000) as u16)
                }
            };
            match nix::poll::poll(&mut fds, wait) {
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
        if deadline.is_some_and(|d| Instant::now() >= d) {
            if let Some(since) = stopping_since {
                log::error!(
                    "{tag}: the script did not stop within {} s of its timeout; replacing this worker",
                    since.elapsed().as_secs()
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::getpid(),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            log::warn!(
                "{tag}: request timeout after {} s; stopping the script",
                job.timeout.unwrap_or_default().as_secs()
            );
            if result.bytes_sent == 0
                && !result.writer_failed
                && out.write_stdout(GATEWAY_TIMEOUT).is_ok()
            {
                result.bytes_sent = GATEWAY_TIMEOUT.len() as u64;
            }
            result.timed_out = true;
            stdout = None;
            stopping_since = Some(Instant::now());
            deadline = Some(Instant::now() + STOP_GRACE);
            stop_script();
            continue;
        }
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
                let n = read_retry(f, buf);
                if n == 0 || result.writer_failed {
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
                let n = read_retry(f, buf);
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

/// Set by the main thread while the script itself runs (not the runner's
/// set-up and clean-up steps around it).
pub static SCRIPT_RUNNING: AtomicBool = AtomicBool::new(false);

/// Interrupts the script: the runner's SIGPIPE handler exits it. Only while
/// it runs; the handler itself also ignores a signal that arrives late, so
/// a stop meant for one request never ends the next one.
fn stop_script() {
    if SCRIPT_RUNNING.load(Ordering::SeqCst) {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGPIPE);
    }
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
