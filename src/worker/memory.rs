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

use std::fs;

pub struct MemoryLimits {
    max_rss: u64,
    max_unshared: u64,
    page: u64,
}

impl MemoryLimits {
    /// None when neither limit is set.
    pub fn new(max_rss: u64, max_unshared: u64) -> Option<MemoryLimits> {
        // SAFETY: sysconf only reads a system constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        (max_rss > 0 || max_unshared > 0).then_some(MemoryLimits {
            max_rss,
            max_unshared,
            page: u64::try_from(page).unwrap_or(4096),
        })
    }

    /// After a request: why this worker should leave now, if it should.
    pub fn exceeded(&self) -> Option<String> {
        let rss = resident_pages(&fs::read_to_string("/proc/self/statm").ok()?)? * self.page;
        if self.max_rss > 0 && rss > self.max_rss {
            return Some(over("resident memory", rss, "max_rss", self.max_rss));
        }
        if self.max_unshared > 0 && rss > self.max_unshared {
            let private = private_bytes(&fs::read_to_string("/proc/self/smaps_rollup").ok()?)?;
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

/// The resident set, in pages, from `/proc/self/statm` ("size resident
/// shared text lib data dt").
fn resident_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// `Private_Clean + Private_Dirty` of `/proc/self/smaps_rollup`, in bytes.
fn private_bytes(rollup: &str) -> Option<u64> {
    let mut total = None;
    for line in rollup.lines() {
        let Some(rest) = line
            .strip_prefix("Private_Clean:")
            .or_else(|| line.strip_prefix("Private_Dirty:"))
        else {
            continue;
        };
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        total = Some(total.unwrap_or(0) + kb * 1024);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn parses_statm_and_smaps_rollup() {
        assert_eq!(resident_pages("5000 1200 300 10 0 900 0\n"), Some(1200));
        let rollup = "00400000-7fff [rollup]\nRss:  9000 kB\nShared_Clean:  3000 kB\n\
                      Private_Clean:  100 kB\nPrivate_Dirty:  2000 kB\nSwap: 0 kB\n";
        assert_eq!(private_bytes(rollup), Some(2100 * 1024));
        assert_eq!(private_bytes("Rss: 1 kB\n"), None);
    }

    #[test]
    fn limits_of_this_process() {
        assert!(MemoryLimits::new(0, 0).is_none());
        let tiny = MemoryLimits::new(4096, 0).unwrap();
        let why = tiny.exceeded().expect("this test is bigger than a page");
        assert!(
            why.starts_with("resident memory ") && why.contains("max_rss"),
            "{why}"
        );
        let tiny = MemoryLimits::new(0, 4096).unwrap();
        assert!(tiny.exceeded().unwrap().contains("over max_unshared"));
        assert!(MemoryLimits::new(1 << 50, 1 << 50)
            .unwrap()
            .exceeded()
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
