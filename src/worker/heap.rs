//! Giving a worker's freed heap back to the system after a request that
//! grew it (`--heap-trim`).
//!
//! glibc's `free` returns memory to the system only from the top of the
//! heap: what a request allocated and freed below a chunk still in use
//! stays in the worker, counted as its private memory though nothing uses
//! it. `malloc_trim(0)` gives back every whole free page, wherever it
//! lies; it walks malloc's free lists (about 5 ms after a request that
//! freed 100 MB, 0.2-0.5 ms after an AWStats page), so the worker calls it
//! only after a request whose resident memory grew past the threshold, and
//! only once the response is complete: the client never waits for it.

use std::time::Instant;

use crate::status::usage::{self, Statm};

/// The worker's resident memory between requests, and when to trim.
pub struct HeapTrim {
    /// Trim when resident anonymous memory exceeds the figure after the
    /// last trim (or at start) by more than this (bytes); 0: never.
    threshold: u64,
    /// Resident anonymous memory after the last trim, bytes.
    baseline: u64,
}

impl HeapTrim {
    pub fn new(threshold: usize) -> HeapTrim {
        let threshold = threshold as u64;
        HeapTrim {
            threshold,
            baseline: if threshold > 0 { anonymous(None) } else { 0 },
        }
    }

    /// Between requests: trims the heap if the last request left the
    /// worker's resident memory more than the threshold above the baseline.
    /// `reading`: `/proc/self/statm` as the request's end read it (None:
    /// read it here). Returns the reading that holds now: after a trim, a
    /// new one.
    pub fn after_request(&mut self, reading: Option<Statm>) -> Option<Statm> {
        if self.threshold == 0 {
            return reading;
        }
        let reading = reading.or_else(usage::statm);
        let before = anonymous(reading);
        if before <= self.baseline.saturating_add(self.threshold) {
            return reading;
        }
        let started = Instant::now();
        // SAFETY: malloc_trim only walks and releases malloc's own free
        // chunks under its arena locks; no pointer of ours is involved.
        unsafe { libc::malloc_trim(0) };
        let after = usage::statm();
        self.baseline = anonymous(after);
        log::debug!(
            "heap trimmed: resident {} kB before, {} kB after, in {} µs",
            before / 1024,
            self.baseline / 1024,
            started.elapsed().as_micros()
        );
        after
    }
}

/// Resident anonymous memory, bytes, of `reading` or read now; 0 if
/// unreadable.
fn anonymous(reading: Option<Statm>) -> u64 {
    reading.or_else(usage::statm).map_or(0, |m| m.anonymous())
}
