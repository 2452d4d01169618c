//! The optional access log (`access_log = FILE`): one line per request,
//! written by the worker that served it with one `write` to a descriptor
//! opened `O_APPEND`, so the workers' lines interleave whole:
//!
//! ```text
//! 2026-12-01T04:00:00Z 4242 "GET /app/hello.pl?x=1" 200 1532 12.403 25100 10.000
//! TIME                 PID  "METHOD URI"            STATUS BYTES MS RSS_KB CPU_MS
//! ```
//!
//! TIME is the request's end (UTC); URI is `REQUEST_URI` (else
//! `SCRIPT_NAME`), with `"` and control characters escaped; BYTES counts
//! the response sent (CGI headers and body); MS is the time from the
//! request read to its end; RSS_KB the worker's resident memory after it;
//! CPU_MS the user + system time of the request, its children included
//! (the child of a `fork`-isolation request, `system`).
//!
//! The master opens the file before it drops privileges, as it does the
//! log, and the workers inherit it. On USR1 the master reopens it and bumps
//! a counter in the scoreboard; each worker reopens the file by its path
//! before its next line (as its user: keep the file writable by it, as for
//! `log`).

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;

static FD: AtomicI32 = AtomicI32::new(-1);
static PATH: OnceLock<PathBuf> = OnceLock::new();
/// The scoreboard's reopen count this process's descriptor is from.
static OPENED_AT: AtomicU64 = AtomicU64::new(0);

/// One request, as its line says it.
pub struct Entry<'a> {
    pub end_secs: i64,
    pub pid: u32,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub status: u16,
    pub bytes: u64,
    pub duration_us: u64,
    pub rss: u64,
    pub cpu_us: u64,
}

/// Opens the access log (master side, once, before privileges drop).
pub fn init(path: &Path) -> io::Result<()> {
    let fd = open(path)?;
    FD.store(fd, Ordering::Relaxed);
    let _ = PATH.set(path.to_path_buf());
    Ok(())
}

/// Gives the open file to `uid` (the master switches to `--user` next), as
/// the log: a reopen after USR1 then opens the same path as that user.
pub fn give_to(uid: nix::unistd::Uid) -> io::Result<()> {
    let fd = FD.load(Ordering::Relaxed);
    if fd < 0 {
        return Ok(());
    }
    nix::unistd::fchown(fd, Some(uid), None)?;
    Ok(())
}

/// Whether lines are written at all.
pub fn enabled() -> bool {
    FD.load(Ordering::Relaxed) >= 0
}

fn open(path: &Path) -> io::Result<RawFd> {
    Ok(crate::log::open_append(path, "access log")?.into_raw_fd())
}

/// Reopens the file by its path on the descriptor in use (the master on
/// USR1, so that workers forked later start on the new file; a worker
/// before its first line after a USR1).
pub fn reopen() -> io::Result<()> {
    let (fd, Some(path)) = (FD.load(Ordering::Relaxed), PATH.get()) else {
        return Ok(());
    };
    let new = open(path)?;
    let moved = nix::unistd::dup3(new, fd, nix::fcntl::OFlag::O_CLOEXEC);
    let _ = nix::unistd::close(new);
    moved?;
    Ok(())
}

/// Writes `entry`'s line; reopens the file first if a USR1 asked for it
/// (`reopens`: the scoreboard's count) since it was opened.
pub fn write(entry: &Entry<'_>, reopens: u64) {
    let fd = FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    if OPENED_AT.swap(reopens, Ordering::Relaxed) != reopens {
        if let Err(e) = reopen() {
            log::error!("{e}");
        }
    }
    let line = format_line(entry);
    // SAFETY: FD is an open descriptor this module owns for the life of
    // the process.
    let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = nix::unistd::write(file, line.as_bytes());
}

/// `bytes` with `"`, `\` and control characters escaped as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '"' || c == '\\' || c.is_control() {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

pub fn format_line(e: &Entry<'_>) -> String {
    format!(
        "{} {} \"{} {}\" {} {} {}.{:03} {} {}.{:03}\n",
        crate::log::format_timestamp(e.end_secs),
        e.pid,
        escaped(e.method),
        escaped(e.uri),
        e.status,
        e.bytes,
        e.duration_us / 1000,
        e.duration_us % 1000,
        e.rss / 1024,
        e.cpu_us / 1000,
        e.cpu_us % 1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_every_field_in_order() {
        let e = Entry {
            end_secs: 1_234_567_890,
            pid: 42,
            method: b"GET",
            uri: b"/a b/\"x\".pl?q=\x01",
            status: 404,
            bytes: 171,
            duration_us: 12_403,
            rss: 25_100 * 1024,
            cpu_us: 10_000,
        };
        assert_eq!(
            format_line(&e),
            "2009-02-13T23:31:30Z 42 \"GET /a b/\\x22x\\x22.pl?q=\\x01\" 404 171 12.403 25100 10.000\n"
        );
    }
}
