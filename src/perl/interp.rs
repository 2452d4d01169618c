//! Safe wrapper around the embedded interpreter.
//!
//! A process normally has one interpreter; after `fork` the child simply
//! keeps using its copy-on-write image, which is the point of the design.
//! A reload (SIGHUP) builds the next generation's interpreter in the master
//! beside the current one, then drops the one it does not keep
//! ([`Interpreter::discard`]); each call selects its own interpreter first,
//! so two values never mix. The interpreter is not thread-safe, so
//! `Interpreter` is neither `Send` nor `Sync`: only the thread that created
//! it (the main thread of the master, and of each worker after fork) can
//! call into Perl.

use std::ffi::{CStr, CString, NulError};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::ffi;

/// Where the STDOUT layer's flushes go (see [`Interpreter::capture_output`]).
static OUTPUT_SINK: OnceLock<fn(&[u8]) -> bool> = OnceLock::new();

extern "C" fn output_sink_trampoline(data: *const c_char, len: usize) -> c_int {
    let Some(sink) = OUTPUT_SINK.get() else {
        return -1;
    };
    let bytes = if data.is_null() || len == 0 {
        &[][..]
    } else {
        // SAFETY: the glue passes its own buffer, valid for `len` bytes for
        // the duration of this call.
        unsafe { std::slice::from_raw_parts(data as *const u8, len) }
    };
    if sink(bytes) {
        0
    } else {
        -1
    }
}

/// What a `die` that nothing in Perl catches does during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DieMode {
    /// The call ends with [`Outcome::Died`] and the message.
    Trap,
    /// As at the top level of a perl program: the message goes to STDERR
    /// and the call ends with [`Outcome::Exited`]`(255)`. For the script.
    AsProgram,
}

/// How a call into Perl ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sub returned; its scalar result as an integer (0 when undef).
    Returned(i64),
    /// `die` was trapped; the message (`$@`).
    Died(String),
    /// `exit(status)`, or an untrapped `die` (whose message perl has already
    /// written to STDERR, as a plain perl program does).
    Exited(i32),
}

#[derive(Debug, thiserror::Error)]
pub enum PerlError {
    #[error("libperl failed to start (perl_parse/perl_run returned {0})")]
    StartFailed(i32),
    #[error("a name passed to Perl contains a NUL byte: {0}")]
    Nul(#[from] NulError),
}

/// A Perl interpreter of this process. Dropping it runs END blocks and
/// frees it; [`Interpreter::discard`] frees it without END blocks.
pub struct Interpreter {
    // A raw pointer: keeps the type !Send and !Sync.
    raw: NonNull<c_void>,
}

impl Interpreter {
    /// Constructs an interpreter as `perl -e0` with DynaLoader booted, so
    /// XS modules load. It becomes the current one; another interpreter
    /// of the process stays as it is until one of its calls.
    pub fn start() -> Result<Interpreter, PerlError> {
        // perl keeps argv for the life of the interpreter, so these
        // strings are never freed (they are not the process's: its title
        // is src/title.rs's, and the glue keeps $0 from writing here). Only the
        // strings and the array perl holds are allocated (a box of the
        // CStrings beside them was lost at once: valgrind's "definitely
        // lost", script/memcheck).
        let argv: &'static mut [*mut c_char] = Box::leak(Box::new([
            CString::new("fcgi-spawn").expect("static arg").into_raw(),
            CString::new("-e0").expect("static arg").into_raw(),
            std::ptr::null_mut(),
        ]));
        let argc = argv.len() - 1;
        extern "C" {
            static mut environ: *mut *mut c_char;
        }
        // SAFETY: reading the process's environ pointer; nothing else in this
        // single-threaded start-up modifies it concurrently.
        let envp = unsafe { environ };
        let mut raw: *mut c_void = std::ptr::null_mut();
        // SAFETY: argv is a NULL-terminated array of NUL-terminated strings
        // that lives for the rest of the process, envp is the process's own
        // environment (perl builds %ENV from it). The glue sets the other
        // interpreters' statics aside before it constructs this one.
        let rc = unsafe { ffi::fs_interp_start(argc as i32, argv.as_mut_ptr(), envp, &mut raw) };
        let Some(raw) = NonNull::new(raw) else {
            return Err(PerlError::StartFailed(rc));
        };
        let perl = Interpreter { raw };
        if rc != 0 {
            perl.discard();
            return Err(PerlError::StartFailed(rc));
        }
        Ok(perl)
    }

    /// Makes this interpreter the one the glue's calls go to (a no-op when
    /// it is already: the common case, one interpreter per process).
    fn select(&self) {
        // SAFETY: `raw` is a live interpreter of this process (freed only
        // by consuming `self`), and this thread is the one it runs on.
        unsafe { ffi::fs_interp_select(self.raw.as_ptr()) }
    }

    /// This interpreter becomes the process's main one, whose `%ENV` is
    /// the process's environment (after a reload: the new generation's).
    pub fn adopt(&self) {
        self.select();
        // SAFETY: as in `select`; only sets perl's global pointer.
        unsafe { ffi::fs_interp_adopt(self.raw.as_ptr()) }
    }

    /// Frees the interpreter without running END blocks (objects are
    /// still destroyed): what the master does with the one a reload
    /// replaced, or with a new one that failed to load.
    pub fn discard(self) {
        let raw = self.raw;
        std::mem::forget(self);
        // SAFETY: `raw` is live and owned by the value just forgotten, so
        // nothing calls into it afterwards; the glue puts the previously
        // current interpreter back.
        unsafe { ffi::fs_interp_discard(raw.as_ptr()) }
    }

    /// Marks the current process as the one running the request loop. A
    /// child forked by a script that leaves Perl through exit, die or by
    /// returning is then ended inside the glue instead of coming back here.
    pub fn set_owner_pid(&self, pid: i32) {
        self.select();
        // SAFETY: plain store of an int in the glue's static.
        unsafe { ffi::fs_set_owner_pid(pid) }
    }

    /// In a worker just forked from the master: %ENV still holds the
    /// master's whole environment. The first request's environment is
    /// made in a new hash instead of by deleting from that one, which
    /// would write to the pages the worker shares with the master.
    pub fn worker_forked(&self) {
        self.select();
        // SAFETY: plain store of an int in the glue's static.
        unsafe { ffi::fs_worker_forked() }
    }

    /// Makes the output layer available (the runner's `enter_request` and
    /// `std_handles_bound` push it on STDOUT): it keeps the script's
    /// output in this process until
    /// [`Self::take_pending_output`], except that while the request stage is
    /// [`Stage::Running`] a flush hands it to `sink` (which returns false
    /// when the client is gone: the script's print then fails with EPIPE).
    pub fn capture_output(&self, sink: fn(&[u8]) -> bool) {
        self.select();
        let _ = OUTPUT_SINK.set(sink);
        // SAFETY: registers a C-ABI function that only reads the bytes it is
        // given; the interpreter runs on this thread (!Send type).
        unsafe { ffi::fs_output_init(Some(output_sink_trampoline)) }
    }

    /// Hands the output printed but not yet sent to `f`, then forgets it.
    pub fn take_pending_output<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.select();
        let mut len = 0usize;
        // SAFETY: the glue's buffer is valid for `len` bytes until the next
        // call into Perl; no Perl code runs while `f` looks at it.
        let result = unsafe {
            let p = ffi::fs_output_pending(&mut len);
            if p.is_null() || len == 0 {
                f(&[])
            } else {
                f(std::slice::from_raw_parts(p as *const u8, len))
            }
        };
        // SAFETY: resets the glue's buffer; nothing borrows it any more.
        unsafe { ffi::fs_output_clear() };
        result
    }

    /// In the master, right before forking workers: the workers' new
    /// values go to fresh arenas, not into free slots of the pages they
    /// share copy-on-write with the master.
    pub fn prepare_to_fork_workers(&self) {
        self.select();
        // SAFETY: resets two interpreter free-list heads on this thread;
        // the slots they held are simply never reused.
        unsafe { ffi::fs_before_fork_workers() }
    }

    /// How many times this process has forked (any fork(): the script's,
    /// system, backticks, piped open…).
    pub fn fork_count(&self) -> u64 {
        // SAFETY: plain read of the glue's counter.
        unsafe { ffi::fs_fork_count() as u64 }
    }

    /// In the child of a `fork` isolation request: this process is now a
    /// throwaway CGI process (output straight to fd 1, a real `exec`), and
    /// its own request loop owner.
    pub fn become_request_child(&self) {
        self.select();
        self.set_owner_pid(std::process::id() as i32);
        // SAFETY: sets two flags in the glue; the interpreter runs on this
        // thread (!Send type).
        unsafe { ffi::fs_become_request_child() }
    }

    /// In the child of a `fork` isolation request: [`Self::exit_process`]
    /// writes the exit status (a native-endian i32) to `fd` and closes
    /// every other descriptor, then, `with_pages`, the heap pages the
    /// process wrote since its fork (a u64 count, then (start, length)
    /// pairs of u64), before it exits; its own children do not.
    pub fn report_exit_on(&self, fd: std::os::fd::RawFd, with_pages: bool) {
        // SAFETY: plain stores of two ints in the glue's statics.
        unsafe { ffi::fs_report_exit_on(fd, i32::from(with_pages)) }
    }

    /// Ends this process as perl ends a program (END blocks, global
    /// destruction, handles flushed), with `status` or what the END blocks
    /// made of `$?`. For the child of a `fork` isolation request only.
    pub fn exit_process(&self, status: i32) -> ! {
        self.select();
        // SAFETY: the glue destructs the interpreter and calls _exit; no
        // Rust destructor or other thread depends on it in this child.
        unsafe { ffi::fs_exit_process(status) };
        unreachable!("fs_exit_process returned")
    }

    /// Names the runner's subs the glue itself calls (see
    /// `fs_set_glue_callbacks` in glue.h).
    pub fn set_glue_callbacks(
        &self,
        end_forked_child: &'static CStr,
        end_request_child: &'static CStr,
        slow_request: &'static CStr,
    ) {
        // SAFETY: the three names are NUL-terminated and live for the
        // program; the glue keeps the pointers and only reads them.
        unsafe {
            ffi::fs_set_glue_callbacks(
                end_forked_child.as_ptr(),
                end_request_child.as_ptr(),
                slow_request.as_ptr(),
            )
        }
    }

    /// Evaluates Perl source at file scope; `die` is trapped.
    pub fn eval(&self, code: &str) -> Outcome {
        self.select();
        // SAFETY: `code` is valid for `len` bytes during the call; perl copies
        // it into an SV before compiling.
        let out = unsafe { ffi::fs_eval(code.as_ptr() as *const c_char, code.len()) };
        self.outcome(out)
    }

    /// Sets the request's `%ENV` (and so `environ`): the worker's base
    /// variables, then `pairs` (NAME, VALUE, ...; a later pair wins).
    /// Only what differs from the last request is written.
    pub fn set_request_env(&self, pairs: &[&[u8]]) {
        self.select();
        let ptrs: Vec<*const c_char> = pairs.iter().map(|a| a.as_ptr() as *const c_char).collect();
        let lens: Vec<usize> = pairs.iter().map(|a| a.len()).collect();
        // SAFETY: `ptrs[i]` is valid for `lens[i]` bytes for the whole call
        // (borrowed from `pairs`); the glue copies what it stores. The
        // interpreter was started by `start` on this thread (!Send type).
        unsafe { ffi::fs_request_env(ptrs.as_ptr(), lens.as_ptr(), pairs.len() & !1) }
    }

    /// Calls the Perl sub `name` (fully qualified) with byte-string
    /// arguments in scalar context; `die` is handled as `die_mode` says.
    /// `name` is a static string: the glue finds the sub once and keeps it
    /// by the string's address.
    pub fn call(&self, name: &'static CStr, args: &[&[u8]], die_mode: DieMode) -> Outcome {
        self.select();
        let ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr() as *const c_char).collect();
        let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
        // SAFETY: `name` is NUL-terminated and lives for the program;
        // `ptrs[i]` is valid for `lens[i]` bytes for the whole call
        // (borrowed from `args`); the glue copies each into a mortal SV. The
        // interpreter was started by `start` on this thread (!Send type).
        let out = unsafe {
            ffi::fs_call(
                name.as_ptr(),
                ptrs.as_ptr(),
                lens.as_ptr(),
                args.len(),
                i32::from(die_mode == DieMode::Trap),
            )
        };
        self.outcome(out)
    }

    fn outcome(&self, out: ffi::fs_outcome) -> Outcome {
        match out.kind as u32 {
            x if x == ffi::fs_outcome_kind_FS_RETURNED => Outcome::Returned(out.value),
            x if x == ffi::fs_outcome_kind_FS_DIED => Outcome::Died(self.error_message()),
            _ => Outcome::Exited(out.exit_status),
        }
    }

    fn error_message(&self) -> String {
        let mut len = 0usize;
        // SAFETY: the glue returns a pointer into $@'s buffer valid for `len`
        // bytes until the next call into Perl; we copy it at once.
        let bytes = unsafe {
            let p = ffi::fs_error(&mut len);
            if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p as *const u8, len)
            }
        };
        String::from_utf8_lossy(bytes).trim_end().to_string()
    }
}

impl Drop for Interpreter {
    fn drop(&mut self) {
        // SAFETY: the interpreter was started by this value and no Perl call
        // can be in progress (calls borrow &self).
        unsafe { ffi::fs_interp_stop(self.raw.as_ptr()) }
    }
}

/// What the worker is doing with the current request: the one value the
/// runner, the output layer, the exec hook and the watcher thread share
/// (it lives in the glue, so C code sees it without a call into Rust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No request, or one being set up or cleaned up.
    Idle,
    /// The script or its END blocks run; a stop may come.
    Running,
    /// A stop was asked for (client gone, timeout): writes give up.
    Stopping,
    /// The script is over; its handles close and the response ends.
    Ending,
}

impl Stage {
    fn raw(self) -> i32 {
        (match self {
            Stage::Idle => ffi::fs_stage_FS_STAGE_IDLE,
            Stage::Running => ffi::fs_stage_FS_STAGE_RUNNING,
            Stage::Stopping => ffi::fs_stage_FS_STAGE_STOPPING,
            Stage::Ending => ffi::fs_stage_FS_STAGE_ENDING,
        }) as i32
    }

    /// The current stage. Any thread.
    pub fn now() -> Stage {
        // SAFETY: an atomic load in the glue.
        let raw = unsafe { ffi::fs_stage_get() } as u32;
        match raw {
            ffi::fs_stage_FS_STAGE_RUNNING => Stage::Running,
            ffi::fs_stage_FS_STAGE_STOPPING => Stage::Stopping,
            ffi::fs_stage_FS_STAGE_ENDING => Stage::Ending,
            _ => Stage::Idle,
        }
    }

    /// Enters `self`. The request loop's thread.
    pub fn enter(self) {
        // SAFETY: an atomic store in the glue.
        unsafe { ffi::fs_stage_set(self.raw()) }
    }

    /// Running -> Stopping, for `why`; true when it moved (a stop for a
    /// script that is not running is nobody's). Any thread.
    pub fn request_stop(why: StopReason) -> bool {
        let why = match why {
            StopReason::Client => ffi::fs_stop_FS_STOP_CLIENT,
            StopReason::Timeout => ffi::fs_stop_FS_STOP_TIMEOUT,
        };
        // SAFETY: atomic stores and a compare-and-swap in the glue.
        unsafe { ffi::fs_stage_request_stop(why as i32) != 0 }
    }
}

/// Any thread: the running script logs its backtrace at its next op (the
/// runner's `slow_request`, for `slowlog_timeout`) and runs on; nothing
/// happens when no script runs by then.
pub fn request_backtrace() {
    // SAFETY: atomic stores in the glue, on the interpreter it registered.
    unsafe { ffi::fs_request_backtrace() }
}

/// Why a running script is stopped (what the script's stop handler logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The client went away or sent FCGI_ABORT_REQUEST.
    Client,
    /// `--request-timeout`.
    Timeout,
}
