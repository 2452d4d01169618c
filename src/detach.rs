//! `--detach`: the classic daemon start that init scripts (and FCGI::Spawn's
//! `fcgi_spawn` without `-nd`) expect. The command forks; the child becomes
//! the master in a session of its own, with stdin on /dev/null and
//! stdout/stderr on the log file; the parent waits until the pool serves,
//! then exits 0, or prints why the start failed and exits 1. So
//! `fcgi-spawn run --detach ... && echo started` means started, and the pid
//! file (written by the child) names the master.
//!
//! The child tells the parent over a pipe: `R` when ready, or `E` and the
//! error, then a NUL. The pipe's write end is closed in every worker, so a
//! master that dies during the start shows as end of file.

use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, setsid, ForkResult};

/// The write end of the pipe to the waiting parent (-1: none, or told).
static TO_PARENT: AtomicI32 = AtomicI32::new(-1);
/// This process detached: stdout and stderr follow the log file.
static DETACHED: AtomicBool = AtomicBool::new(false);

/// Forks. In the parent, waits for the child's word and exits (never
/// returns); in the child, returns once it is detached. `log` is where its
/// stdout and stderr go. Call before any thread exists.
pub fn detach(log: &Path) -> io::Result<()> {
    let (from_child, to_parent) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the process has one thread (the master starts none, and this
    // runs before the interpreter), so the child may run anything.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            drop(to_parent);
            std::process::exit(wait_for_child(from_child, child, log));
        }
        ForkResult::Child => {
            drop(from_child);
            setsid()?;
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            nix::unistd::dup2(null.as_raw_fd(), 0)?;
            DETACHED.store(true, Ordering::Relaxed);
            crate::log::std_streams_to_log()?;
            TO_PARENT.store(to_parent.into_raw_fd(), Ordering::Relaxed);
            Ok(())
        }
    }
}

/// The parent's side: 0 once the child serves; 1 with the reason printed.
fn wait_for_child(from_child: OwnedFd, child: nix::unistd::Pid, log: &Path) -> i32 {
    // Up to the NUL that ends the word, not to end of file: a process the
    // master's preload scripts started may hold the pipe for long.
    let mut said = Vec::new();
    let _ = io::BufReader::new(std::fs::File::from(from_child)).read_until(0, &mut said);
    if said.last() == Some(&0) {
        said.pop();
    }
    match said.split_first() {
        Some((b'R', _)) => 0,
        Some((b'E', message)) => {
            let _ = waitpid(child, None);
            eprintln!("fcgi-spawn: {}", String::from_utf8_lossy(message));
            1
        }
        _ => {
            let how = match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
                Ok(WaitStatus::Signaled(_, signal, _)) => format!("was killed by {signal}"),
                _ => "ended".to_string(),
            };
            eprintln!(
                "fcgi-spawn: the daemon {how} while starting; see {}",
                log.display()
            );
            1
        }
    }
}

/// This process is a detached master (its stderr is the log file).
pub fn detached() -> bool {
    DETACHED.load(Ordering::Relaxed)
}

/// The pool serves: the waiting parent exits 0.
pub fn ready() {
    tell_parent(b"R");
}

/// The start failed with `message`: the waiting parent prints it and exits
/// 1. False when no parent is waiting (not detached, or already told).
pub fn failed(message: &str) -> bool {
    tell_parent(format!("E{message}").as_bytes())
}

/// Sends `word` and a NUL, and closes the pipe.
fn tell_parent(word: &[u8]) -> bool {
    let fd = TO_PARENT.swap(-1, Ordering::Relaxed);
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` was the pipe's write end, owned here alone since the
    // swap above took it out of TO_PARENT.
    let mut pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let _ = pipe.write_all(&[word, b"\0"].concat());
    true
}

/// In a newly forked worker: the pipe stays the master's, so that a
/// master that dies while starting is seen by the parent.
pub fn close_in_child() {
    let fd = TO_PARENT.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        let _ = nix::unistd::close(fd);
    }
}

/// The log file was reopened (USR1): a detached master's stdout and
/// stderr (what Perl warns while a reload loads code) follow it.
pub fn log_reopened() -> io::Result<()> {
    if detached() {
        crate::log::std_streams_to_log()?;
    }
    Ok(())
}
