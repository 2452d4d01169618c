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
            baseline: if threshold > 0 { resident_anon() } else { 0 },
        }
    }

    /// Between requests: trims the heap if the last request left the
    /// worker's resident memory more than the threshold above the baseline.
    pub fn after_request(&mut self) {
        if self.threshold == 0 {
            return;
        }
        let before = resident_anon();
        if before <= self.baseline.saturating_add(self.threshold) {
            return;
        }
        let started = Instant::now();
        // SAFETY: malloc_trim only walks and releases malloc's own free
        // chunks under its arena locks; no pointer of ours is involved.
        unsafe { libc::malloc_trim(0) };
        self.baseline = resident_anon();
        log::debug!(
            "heap trimmed: resident {} kB before, {} kB after, in {} µs",
            before / 1024,
            self.baseline / 1024,
            started.elapsed().as_micros()
        );
    }
}

/// Resident anonymous memory of this process, bytes (`/proc/self/statm`:
/// resident minus file-backed and shared pages); 0 if unreadable.
fn resident_anon() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let mut fields = statm.split_whitespace().skip(1).map(|f| f.parse::<u64>());
    match (fields.next(), fields.next()) {
        (Some(Ok(resident)), Some(Ok(shared))) => resident.saturating_sub(shared) * page_size(),
        _ => 0,
    }
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |n| n as u64)
}
