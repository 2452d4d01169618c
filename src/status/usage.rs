//! What a worker measures of itself after each request, for the status
//! page and the access log: resident memory (`/proc/self/statm`, one short
//! read), private memory (`Private_Clean + Private_Dirty` of
//! `/proc/self/smaps_rollup`, which walks every mapping and so costs more:
//! about 90 µs against 2 µs for `statm` in a small process, more with
//! libperl's mappings; read only when the resident size moved by
//! [`PRIVATE_MOVE`] since, or every [`PRIVATE_EVERY`] requests) and CPU time (`getrusage` of the worker and of the children
//! it waited for: a `fork`-isolation request's child, `system`).

use std::io::Read;

/// Requests between two readings of `smaps_rollup` while RSS stays put.
pub const PRIVATE_EVERY: u64 = 16;
/// A move of the resident size that makes `smaps_rollup` be read again.
pub const PRIVATE_MOVE: u64 = 256 << 10;

/// Resident set size, bytes.
pub fn rss_bytes() -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = std::fs::File::open("/proc/self/statm")
        .and_then(|mut f| f.read(&mut buf))
        .ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// Private (unshared) memory, bytes.
pub fn private_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    Some(private_from_smaps(&text)? * 1024)
}

/// `Private_Clean + Private_Dirty` of a smaps(_rollup) text, kB.
fn private_from_smaps(text: &str) -> Option<u64> {
    let mut found = false;
    let mut kb = 0;
    for line in text.lines() {
        let Some(rest) = line
            .strip_prefix("Private_Clean:")
            .or_else(|| line.strip_prefix("Private_Dirty:"))
        else {
            continue;
        };
        kb += rest
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        found = true;
    }
    found.then_some(kb)
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// CPU time (user + system) of this process and of its waited-for
/// children so far, microseconds.
pub fn cpu_us() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(|who| getrusage(who).ok())
        .map(|u| {
            let us =
                |t: nix::sys::time::TimeVal| (t.tv_sec() as u64) * 1_000_000 + t.tv_usec() as u64;
            us(u.user_time()) + us(u.system_time())
        })
        .sum()
}

/// Memory readings after each request, `smaps_rollup` only when needed.
#[derive(Default)]
pub struct MemoryProbe {
    /// RSS when private memory was last read.
    rss_then: u64,
    since_private: u64,
}

impl MemoryProbe {
    /// RSS now, and private memory when it was read this time.
    pub fn measure(&mut self) -> (Option<u64>, Option<u64>) {
        let rss = rss_bytes();
        self.since_private += 1;
        let now = rss.unwrap_or(0);
        let moved = self.rss_then == 0 || now.abs_diff(self.rss_then) >= PRIVATE_MOVE;
        if !moved && self.since_private < PRIVATE_EVERY {
            return (rss, None);
        }
        self.since_private = 0;
        self.rss_then = now;
        (rss, private_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_memory_adds_clean_and_dirty() {
        let text = "Rss:  100 kB\nPss: 50 kB\nShared_Clean: 10 kB\n\
                    Private_Clean:    12 kB\nPrivate_Dirty:   30 kB\n";
        assert_eq!(private_from_smaps(text), Some(42));
        assert_eq!(private_from_smaps("Rss: 1 kB\n"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let rss = rss_bytes().unwrap();
        let private = private_bytes().unwrap();
        assert!(
            rss > 0 && private > 0 && private <= rss * 2,
            "{rss} {private}"
        );
        let before = cpu_us();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_us() > before);
    }
}
