//! `max_rss` and `max_unshared`: after each request a worker looks at its
//! memory and leaves when it passed a limit (the master starts a fresh one
//! from the master's clean copy), as `max_requests` recycles it.
//!
//! Resident memory comes from `/proc/self/statm` (one short read: 3 µs in
//! this crate's tests, 7 µs read from Perl in a worker with CGI.pm
//! preloaded). Private memory — what this worker does not share with the
//! master and its siblings, `Private_Clean + Private_Dirty` — needs
//! `/proc/self/smaps_rollup`, which walks every mapping (38 µs in the
//! tests, 100 µs in that worker), so it is read only when it can matter:
//! private memory is part of the resident set, so while the resident set
//! is below `max_unshared` the private part is too.

use crate::status::usage::{self, Statm};

pub struct MemoryLimits {
    max_rss: u64,
    max_unshared: u64,
}

impl MemoryLimits {
    /// None when neither limit is set.
    pub fn new(max_rss: u64, max_unshared: u64) -> Option<MemoryLimits> {
        (max_rss > 0 || max_unshared > 0).then_some(MemoryLimits {
            max_rss,
            max_unshared,
        })
    }

    /// After a request: why this worker should leave now, if it should.
    /// `reading`: `/proc/self/statm` as it is now (None: read it here).
    pub fn exceeded(&self, reading: Option<Statm>) -> Option<String> {
        let rss = reading.or_else(usage::statm)?.resident;
        if self.max_rss > 0 && rss > self.max_rss {
            return Some(over("resident memory", rss, "max_rss", self.max_rss));
        }
        if self.max_unshared > 0 && rss > self.max_unshared {
            let private = usage::private_bytes()?;
            if private > self.max_unshared {
                return Some(over(
                    "private memory",
                    private,
                    "max_unshared",
                    self.max_unshared,
                ));
            }
        }
        None
    }
}

fn over(what: &str, bytes: u64, key: &str, limit: u64) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    format!(
        "{what} {:.1} MiB is over {key} ({:.1} MiB)",
        mib(bytes),
        mib(limit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Instant;

    #[test]
    fn limits_of_this_process() {
        assert!(MemoryLimits::new(0, 0).is_none());
        let tiny = MemoryLimits::new(4096, 0).unwrap();
        let why = tiny
            .exceeded(None)
            .expect("this test is bigger than a page");
        assert!(
            why.starts_with("resident memory ") && why.contains("max_rss"),
            "{why}"
        );
        let tiny = MemoryLimits::new(0, 4096).unwrap();
        assert!(tiny.exceeded(None).unwrap().contains("over max_unshared"));
        assert!(MemoryLimits::new(1 << 50, 1 << 50)
            .unwrap()
            .exceeded(None)
            .is_none());
    }

    /// A measurement, not a check: the figures in the module's doc come
    /// from `cargo test --release -- --ignored --nocapture memory::tests::cost`.
    #[test]
    #[ignore]
    fn cost() {
        let time = |path: &str| {
            let t = Instant::now();
            for _ in 0..200 {
                let _ = fs::read_to_string(path).unwrap();
            }
            t.elapsed().as_micros() as f64 / 200.0
        };
        println!(
            "statm {:.1} µs, smaps_rollup {:.1} µs",
            time("/proc/self/statm"),
            time("/proc/self/smaps_rollup")
        );
    }
}
