//! Logging: one line per event, written with a single `write` to the log
//! descriptor (stderr or `--log FILE`, opened O_APPEND) so lines from the
//! master and every worker interleave whole.
//!
//! The descriptor is a private duplicate, not fd 2: while a script runs, fd 2
//! is that request's STDERR pipe, and the daemon's own messages must not end
//! up in it.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

static LOG_FD: AtomicI32 = AtomicI32::new(2);
static LOGGER: Logger = Logger;

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
        let line = format!(
            "{} fcgi-spawn[{}]: {}: {}\n",
            timestamp(),
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

/// Sets up logging to `path` (appending) or to a duplicate of stderr.
pub fn init(path: Option<&Path>, verbose: bool) -> io::Result<()> {
    let fd: RawFd = match path {
        Some(p) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open log file {}: {e}", p.display()),
                    )
                })?;
            crate::fds::above_std_fds(file.into())?.into_raw_fd()
        }
        None => nix::fcntl::fcntl(
            io::stderr().as_raw_fd(),
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3),
        )?,
    };
    let old = LOG_FD.swap(fd, Ordering::Relaxed);
    if old > 2 {
        // Reopen (USR1): the previous descriptor is ours to close.
        let _ = nix::unistd::close(old);
    }
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
    Ok(())
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
fn format_timestamp(secs: i64) -> String {
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
