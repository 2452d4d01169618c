//! Process titles, as php-fpm and nginx show theirs: `ps` says
//! `fcgi-spawn: master (/etc/fcgi-spawn/fcgi-spawn.toml)` for the master
//! and `fcgi-spawn: worker idle` or `fcgi-spawn: worker running
//! /srv/www/app.pl` for each worker, so an operator tells them apart and
//! sees what a busy worker runs without asking the status page.
//!
//! Linux shows as a process's command line (`/proc/PID/cmdline`, `ps`'s
//! args) the memory its `argv` strings were given at exec, and the
//! environment strings right after them when the last byte of argv was
//! overwritten. A title is written over that area ([`claim`] finds it: the
//! argv strings from `argv[0]` on, and the environment strings contiguous
//! with them, whose contents first move to copies `environ` points to, so
//! nothing reads them there again). `std::env::args` reads the same
//! memory: it is read once, by the CLI, before the claim.
//!
//! Perl never writes there: the interpreter is given an argv of its own
//! (`perl::Interpreter::start`), and the glue sets its `PL_origalen` to 1,
//! so that `$0 = ...`, done by the runner twice a request and by scripts at
//! will, changes the variable only, with no `prctl` system call; a script
//! setting `$0` leaves the title as it was. A title change is a copy into
//! the area: no system call, a few dozen instructions, twice a request.

use std::ffi::{c_char, CStr};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Start of the area (null: not claimed, titles are not shown).
static AREA: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// Its length in bytes; a title keeps the last one for its NUL.
static AREA_LEN: AtomicUsize = AtomicUsize::new(0);
/// Bytes of the title now in the area (what the next one must clear).
static WRITTEN: AtomicUsize = AtomicUsize::new(0);
/// The master's title, which `--workers 0` extends while it serves.
static MASTER: OnceLock<Vec<u8>> = OnceLock::new();

extern "C" {
    /// glibc (and musl): `argv[0]` as the process got it.
    static program_invocation_name: *mut c_char;
    static mut environ: *mut *mut c_char;
}

/// Takes the argv and environment strings as the space for titles. Once,
/// in the master, before Perl starts (it records `environ` then) and
/// before any thread. Without it (or if the area cannot be found) [`set`]
/// does nothing.
pub fn claim() {
    if !AREA.load(Ordering::Relaxed).is_null() {
        return;
    }
    // SAFETY: glibc sets it before main to argv[0], a NUL-terminated
    // string of the exec area, and nothing changes it afterwards.
    let start = unsafe { program_invocation_name };
    if start.is_null() {
        return;
    }
    // The argv strings, as std recorded them, must lie one after the
    // other from argv[0]: each is compared where it should be.
    let mut end = start;
    for arg in std::env::args_os() {
        // SAFETY: `end` is argv[0], or one past the NUL of the argv
        // string this loop just matched: on Linux the kernel lays the
        // argv strings out one after the other, then the environment
        // strings, all NUL-terminated on the stack, so a NUL-terminated
        // string starts there; if it is not this argument, the loop stops.
        let here = unsafe { CStr::from_ptr(end) };
        if here.to_bytes() != arg.as_bytes() {
            break;
        }
        // SAFETY: one past the NUL of the string read above: within the
        // exec area, or its end.
        end = unsafe { end.add(here.to_bytes().len() + 1) };
    }
    if end == start {
        return;
    }
    // SAFETY: single-threaded (see above); `environ` and its strings are
    // the process's own. The strings in the area are copied to leaked
    // allocations and `environ` points to a new array of them, so the
    // area's environment strings are read no more.
    unsafe {
        let mut copied: Vec<*mut c_char> = Vec::new();
        let mut i = 0;
        while !environ.is_null() && !(*environ.add(i)).is_null() {
            let entry = *environ.add(i);
            let string = CStr::from_ptr(entry);
            if entry == end {
                end = end.add(string.to_bytes().len() + 1);
            }
            copied.push(string.to_owned().into_raw());
            i += 1;
        }
        copied.push(std::ptr::null_mut());
        environ = Box::leak(copied.into_boxed_slice()).as_mut_ptr();
    }
    let len = end as usize - start as usize;
    AREA_LEN.store(len, Ordering::Relaxed);
    WRITTEN.store(len, Ordering::Relaxed);
    AREA.store(start.cast(), Ordering::Relaxed);
}

/// The title becomes the concatenation of `parts` (cut to the area's
/// length). Called by the process's main thread only.
pub fn set(parts: &[&[u8]]) {
    let area = AREA.load(Ordering::Relaxed);
    if area.is_null() {
        return;
    }
    let room = AREA_LEN.load(Ordering::Relaxed) - 1;
    let mut at = 0;
    for part in parts {
        let n = part.len().min(room - at);
        // SAFETY: `area` is the claimed area, `AREA_LEN` bytes of the
        // process's exec strings that nothing else reads or writes
        // (`claim`); `at + n <= room` < its length, and `part` is a
        // separate allocation.
        unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), area.add(at), n) };
        at += n;
    }
    let before = WRITTEN.swap(at, Ordering::Relaxed);
    // SAFETY: as above; clears what the previous title wrote beyond this
    // one, and at least this one's terminating NUL (`at <= room`).
    unsafe { std::ptr::write_bytes(area.add(at), 0, before.max(at + 1) - at) };
}

/// The master's title: `fcgi-spawn: master (WHAT)`, WHAT its config file
/// or its socket.
pub fn master(what: &str) {
    let title = format!("fcgi-spawn: master ({what})").into_bytes();
    set(&[&title]);
    let _ = MASTER.set(title);
}

const WORKER_IDLE: &[u8] = b"fcgi-spawn: worker idle";
const WORKER_RUNNING: &[u8] = b"fcgi-spawn: worker running ";

/// A `fork` isolation request's child, as its worker while it runs `script`.
pub fn worker_running(script: &[u8]) {
    set(&[WORKER_RUNNING, script]);
}

/// The titles of a process that serves requests: between two, and while
/// one runs (followed by its script).
pub struct Titles {
    idle: Vec<u8>,
    running: Vec<u8>,
}

impl Titles {
    /// A pooled worker's.
    pub fn worker() -> Titles {
        Titles {
            idle: WORKER_IDLE.to_vec(),
            running: WORKER_RUNNING.to_vec(),
        }
    }

    /// `--workers 0`'s, where the master serves: its own title, and what
    /// it runs.
    pub fn master_alone() -> Titles {
        let master = MASTER.get().cloned().unwrap_or_default();
        let mut running = master.clone();
        running.extend_from_slice(b" running ");
        Titles {
            idle: master,
            running,
        }
    }

    pub fn idle(&self) {
        set(&[&self.idle]);
    }

    pub fn running(&self, script: &[u8]) {
        set(&[&self.running, script]);
    }
}

/// A `fork` isolation worker's child forked ahead of its request, waiting
/// for it (then it takes the worker's running title).
pub fn spare_child() {
    set(&[b"fcgi-spawn: spare child"]);
}

/// A worker between its fork and its first request (`worker_init` runs).
pub fn worker_starting() {
    set(&[b"fcgi-spawn: worker starting"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checks run in a process of their own (this test binary run
    /// again for this test alone): a claim replaces `environ`, which
    /// other tests' threads may be reading.
    #[test]
    fn titles_are_written_over_the_command_line_and_cut_to_it() {
        if std::env::var_os("FCGI_SPAWN_TITLE_TEST").is_none() {
            let run = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--exact",
                    "title::tests::titles_are_written_over_the_command_line_and_cut_to_it",
                ])
                .args(["--test-threads", "1"])
                .env("FCGI_SPAWN_TITLE_TEST", "1")
                .output()
                .expect("run the test binary");
            assert!(
                run.status.success(),
                "the checks failed ({}):\n{}{}",
                run.status,
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
            return;
        }
        let path_before = std::env::var_os("PATH");
        claim();
        assert!(!AREA.load(Ordering::Relaxed).is_null(), "area found");
        assert_eq!(std::env::var_os("PATH"), path_before, "environment copied");
        let len = AREA_LEN.load(Ordering::Relaxed);
        let shown = || {
            let raw = std::fs::read("/proc/self/cmdline").expect("cmdline");
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            raw[..end].to_vec()
        };
        set(&[b"fcgi-spawn: worker running ", b"/srv/www/a.pl"]);
        assert_eq!(shown(), b"fcgi-spawn: worker running /srv/www/a.pl");
        set(&[b"fcgi-spawn: worker idle"]);
        assert_eq!(
            shown(),
            b"fcgi-spawn: worker idle",
            "the longer title cleared"
        );
        let long = vec![b'x'; len * 2];
        set(&[b"fcgi-spawn: ", &long]);
        let cut = shown();
        assert_eq!(cut.len(), len - 1, "cut to the area, its NUL kept");
        assert!(cut.starts_with(b"fcgi-spawn: xx"));
        set(&[b"fcgi-spawn: worker idle"]);
        assert_eq!(shown(), b"fcgi-spawn: worker idle");
        assert_eq!(std::env::var_os("PATH"), path_before, "environment intact");
    }
}
