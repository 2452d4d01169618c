//! Logging: one line per event, written with a single `write` to the log
//! descriptor (stderr or `--log FILE`, opened O_APPEND) so lines from the
//! master and every worker interleave whole.
//!
//! The descriptor is a private duplicate, not fd 2: while a script runs, fd 2
//! is that request's STDERR pipe, and the daemon's own messages must not end
//! up in it.
//!
//! A log file moved away by logrotate is followed by every process: before
//! a line is written the path is compared with the open file, and the file
//! is reopened in place (`dup2` onto the same descriptor number, so another
//! thread never writes to a closed one). The master does it at once on
//! USR1; workers, which never see that signal, at their next line.
//!
//! `plain` lines carry no timestamp, for collectors that add their own
//! (multilog, svlogd, journald); `timestamped` (the default) starts each
//! line with the UTC time.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{PoisonError, RwLock};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

static LOG_FD: AtomicI32 = AtomicI32::new(2);
/// The log file's path (None: stderr). Written at start and by a reload,
/// both in the master, which has one thread and does not fork meanwhile:
/// no process is forked with it write-locked, and the readers (each line
/// checks for a rotation, from any thread) never wait for each other.
static LOG_PATH: RwLock<Option<PathBuf>> = RwLock::new(None);
static PLAIN: AtomicBool = AtomicBool::new(false);
static LOGGER: Logger = Logger;

/// How a log line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-01-31T12:00:00Z fcgi-spawn[PID]: LEVEL: message` (default).
    Timestamped,
    /// `fcgi-spawn[PID]: LEVEL: message`, for a collector that stamps lines
    /// itself (multilog, svlogd, journald).
    Plain,
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let stamp = if PLAIN.load(Ordering::Relaxed) {
            String::new()
        } else {
            timestamp() + " "
        };
        let line = format!(
            "{stamp}fcgi-spawn[{}]: {}: {}\n",
            std::process::id(),
            level,
            record.args()
        );
        write_line(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Writes one already formatted line to the log descriptor.
pub fn write_line(line: &[u8]) {
    if rotated() {
        let _ = reopen();
    }
    let fd = LOG_FD.load(Ordering::Relaxed);
    let mut rest = line;
    while !rest.is_empty() {
        match nix::unistd::write(
            // SAFETY: LOG_FD is an open descriptor owned by this module for
            // the life of the process.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            rest,
        ) {
            Ok(0) => return,
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Sets up logging, once per process: to `path` (appending) or to a
/// duplicate of stderr, lines in `format`.
pub fn init(path: Option<&Path>, format: LogFormat, verbose: bool) -> io::Result<()> {
    PLAIN.store(format == LogFormat::Plain, Ordering::Relaxed);
    let fd: RawFd = match path {
        Some(p) => {
            let fd = open(p)?.into_raw_fd();
            set_path(Some(p));
            fd
        }
        None => nix::fcntl::fcntl(
            io::stderr().as_raw_fd(),
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3),
        )?,
    };
    LOG_FD.store(fd, Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
    Ok(())
}

fn set_path(path: Option<&Path>) {
    *LOG_PATH.write().unwrap_or_else(PoisonError::into_inner) = path.map(Path::to_path_buf);
}

fn path() -> Option<PathBuf> {
    LOG_PATH
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// A reload's log settings: lines go to `to` (None: stderr) from now on,
/// in `format`.
pub fn switch(to: Option<&Path>, format: LogFormat) -> io::Result<()> {
    PLAIN.store(format == LogFormat::Plain, Ordering::Relaxed);
    if to == path().as_deref() {
        return Ok(());
    }
    let target = match to {
        Some(p) => open(p)?,
        None => crate::fds::dup_above_std(2)?,
    };
    nix::unistd::dup3(
        target.as_raw_fd(),
        LOG_FD.load(Ordering::Relaxed),
        nix::fcntl::OFlag::O_CLOEXEC,
    )?;
    set_path(to);
    Ok(())
}

/// Gives the open log file to `uid` (the master switches to `--user`
/// next): a USR1 reopen, or a worker's, opens the same path again as that
/// user. Logging to stderr: nothing to do.
pub fn give_to(uid: nix::unistd::Uid) -> io::Result<()> {
    if path().is_none() {
        return Ok(());
    }
    nix::unistd::fchown(LOG_FD.load(Ordering::Relaxed), Some(uid), None)?;
    Ok(())
}

/// Reopens the log file (USR1, or a rotation noticed before a line) on the
/// descriptor number already in use. Logging to stderr: nothing to do.
pub fn reopen() -> io::Result<()> {
    let Some(path) = path() else {
        return Ok(());
    };
    let file = open(&path)?;
    // dup3 replaces what LOG_FD refers to atomically: a writer in another
    // thread gets the old file or the new one, never a closed descriptor.
    nix::unistd::dup3(
        file.as_raw_fd(),
        LOG_FD.load(Ordering::Relaxed),
        nix::fcntl::OFlag::O_CLOEXEC,
    )?;
    Ok(())
}

/// Points stdout and stderr at the log (a detached master's: what Perl
/// or a library prints outside any request lands there). Logging to
/// stderr: nothing to do.
pub fn std_streams_to_log() -> io::Result<()> {
    if path().is_none() {
        return Ok(());
    }
    let fd = LOG_FD.load(Ordering::Relaxed);
    nix::unistd::dup2(fd, 1)?;
    nix::unistd::dup2(fd, 2)?;
    Ok(())
}

fn open(path: &Path) -> io::Result<OwnedFd> {
    open_append(path, "log file")
}

/// Opens `path` (`what`, for the error) for appending, above fd 2.
pub fn open_append(path: &Path, what: &str) -> io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open {what} {}: {e}", path.display()),
            )
        })?;
    crate::fds::above_std_fds(file.into())
}

/// The log file's path now names another file than the one open (moved
/// away by logrotate, a new one created in its place).
fn rotated() -> bool {
    let Some(path) = path() else {
        return false;
    };
    let Ok(on_disk) = std::fs::metadata(&path) else {
        return false;
    };
    match nix::sys::stat::fstat(LOG_FD.load(Ordering::Relaxed)) {
        Ok(open) => open.st_ino != on_disk.ino() || open.st_dev != on_disk.dev(),
        Err(_) => false,
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`, UTC.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_timestamp(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, UTC, without pulling
/// in a date crate.
pub fn format_timestamp(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_timestamp;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(86_399), "1970-01-01T23:59:59Z");
        // A leap day, a century leap year, and the day after.
        assert_eq!(format_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_timestamp(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(format_timestamp(1_234_567_890), "2009-02-13T23:31:30Z");
        assert_eq!(format_timestamp(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
