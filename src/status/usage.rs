//! What a worker measures of itself after each request, for the status
//! page and the access log: resident memory (`/proc/self/statm`, one short
//! read), private memory (`Private_Clean + Private_Dirty` of
//! `/proc/self/smaps_rollup`, which walks every mapping and so costs more:
//! about 90 µs against 2 µs for `statm` in a small process, more with
//! libperl's mappings: 7 % of a worker's time on a small page when read
//! every 16 requests; so read only when the resident size moved by
//! [`PRIVATE_MOVE`] since, or [`PRIVATE_EVERY`] after the last reading)
//! and CPU time (`getrusage` of the worker and of the children it waited
//! for: a `fork`-isolation request's child, `system`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Time between two readings of `smaps_rollup` while RSS stays put: the
/// status page's private figure is at most this old.
pub const PRIVATE_EVERY: Duration = Duration::from_secs(1);
/// A move of the resident size that makes `smaps_rollup` be read again.
pub const PRIVATE_MOVE: u64 = 256 << 10;

/// `/proc/self/statm`'s resident set and the part of it that is shared
/// (file-backed), bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statm {
    pub resident: u64,
    pub shared: u64,
}

impl Statm {
    /// Resident memory that is not file-backed: the heap and the stacks.
    pub fn anonymous(&self) -> u64 {
        self.resident.saturating_sub(self.shared)
    }
}

/// Forks that made this process (a worker: 1; its `fork` request's child:
/// 2), counted in each child by a `pthread_atfork` handler: whether a
/// descriptor was opened by this very process, without a `getpid` system
/// call per request.
fn fork_generation() -> u32 {
    static FORKS: AtomicU32 = AtomicU32::new(0);
    static COUNTING: Once = Once::new();
    extern "C" fn count_in_child() {
        FORKS.fetch_add(1, Ordering::Relaxed);
    }
    COUNTING.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic; it runs
        // in the child of every later fork, before anything else there.
        unsafe { libc::pthread_atfork(None, None, Some(count_in_child)) };
    });
    FORKS.load(Ordering::Relaxed)
}

/// This process's `/proc/self/statm`, one short read: the file is kept
/// open (per process: a forked child opens its own, `/proc/self` having
/// named the opener) and read again from its start.
pub fn statm() -> Option<Statm> {
    thread_local! {
        static STATM: std::cell::RefCell<Option<(u32, std::fs::File)>> = const { std::cell::RefCell::new(None) };
    }
    let mut buf = [0u8; 128];
    let generation = fork_generation();
    let n = STATM.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached
            .as_ref()
            .is_none_or(|(opened_in, _)| *opened_in != generation)
        {
            *cached = Some((generation, std::fs::File::open("/proc/self/statm").ok()?));
        }
        let (_, file) = cached.as_ref()?;
        std::os::unix::fs::FileExt::read_at(file, &mut buf, 0).ok()
    })?;
    parse_statm(std::str::from_utf8(&buf[..n]).ok()?, page_size())
}

/// "size resident shared text lib data dt", in pages.
fn parse_statm(text: &str, page: u64) -> Option<Statm> {
    let mut pages = text.split_whitespace().skip(1).map(|f| f.parse::<u64>());
    let resident = pages.next()?.ok()?;
    let shared = pages.next()?.ok()?;
    Some(Statm {
        resident: resident * page,
        shared: shared * page,
    })
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
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096)
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
    /// When it was (None: never).
    read_at: Option<Instant>,
}

impl MemoryProbe {
    /// `statm` now, and private memory when it was read this time.
    pub fn measure(&mut self) -> (Option<Statm>, Option<u64>) {
        let now = statm();
        let rss = now.map_or(0, |m| m.resident);
        let due = self.read_at.is_none_or(|at| at.elapsed() >= PRIVATE_EVERY);
        if !due && rss.abs_diff(self.rss_then) < PRIVATE_MOVE {
            return (now, None);
        }
        self.read_at = Some(Instant::now());
        self.rss_then = rss;
        (now, private_bytes())
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
    fn statm_gives_resident_and_shared_bytes() {
        let m = parse_statm("5000 1200 300 10 0 900 0\n", 4096).unwrap();
        assert_eq!(m.resident, 1200 * 4096);
        assert_eq!(m.anonymous(), 900 * 4096);
        assert_eq!(parse_statm("5000\n", 4096), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let rss = statm().unwrap().resident;
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
