//! One worker's slot in the scoreboard: what it is doing (the state
//! dispatch claims with a compare-and-swap), its stop flag, and what the
//! status page shows of it (its request, script, memory), each written by
//! the worker alone. The script name sits behind a seqlock (see the
//! scoreboard's doc).

use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

/// What a worker is doing; the value of [`Slot::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum WorkerState {
    /// No worker in this slot.
    Free = 0,
    /// Forked, initialising.
    Starting = 1,
    /// Between requests: may take one.
    Idle = 2,
    /// Serving a request it claimed itself.
    Busy = 3,
    /// The master picked it for a queued request (on its way over the
    /// channel).
    Assigned = 4,
    /// Leaving (stop, recycle): takes nothing more.
    Exiting = 5,
}

impl WorkerState {
    /// The name the status page shows.
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Free => "free",
            WorkerState::Starting => "starting",
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Assigned => "assigned",
            WorkerState::Exiting => "exiting",
        }
    }

    fn from_u32(v: u32) -> WorkerState {
        match v {
            1 => WorkerState::Starting,
            2 => WorkerState::Idle,
            3 => WorkerState::Busy,
            4 => WorkerState::Assigned,
            5 => WorkerState::Exiting,
            _ => WorkerState::Free,
        }
    }
}

/// One worker's shared state. A cache line each, so workers do not slow
/// each other down writing their own.
#[repr(C, align(64))]
pub struct Slot {
    state: AtomicU32,
    stop: AtomicBool,
    pid: AtomicI32,
    requests: AtomicU64,
    /// The worker's start, microseconds since the epoch.
    started_us: AtomicU64,
    /// The running request's start (µs since the epoch); 0 between requests.
    request_start_us: AtomicU64,
    /// How long the last finished request took, µs.
    last_duration_us: AtomicU64,
    /// Resident and private memory after the last request, bytes.
    rss: AtomicU64,
    private: AtomicU64,
    /// Seqlock of `script`: odd while the worker writes it.
    script_seq: AtomicU32,
    /// The running (or last) request's script, NUL-padded, truncated.
    script: [AtomicU64; SCRIPT_WORDS],
    /// How that script ran (`RanAs`), set when its request ends.
    ran_as: AtomicU32,
    /// The pool generation the worker was forked in (1, then +1 per
    /// reload).
    generation: AtomicU64,
}

/// Bytes of a script name the scoreboard keeps.
pub const SCRIPT_BYTES: usize = 256;
const SCRIPT_WORDS: usize = SCRIPT_BYTES / 8;

/// How a worker ran its last script: the isolation mode, and for a
/// registry script that keeps file lexicals in named subs, the child it
/// runs in. The status page shows it beside the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RanAs {
    /// No script ran (the pool's own pages, 404, 403).
    Nothing = 0,
    Perlrun = 1,
    Registry = 2,
    Fork = 3,
    /// Registry isolation, compiled once in the worker, run in a child.
    RegistryInChild = 4,
}

impl RanAs {
    /// The name the status page shows.
    pub fn name(self) -> &'static str {
        match self {
            RanAs::Nothing => "-",
            RanAs::Perlrun => "perlrun",
            RanAs::Registry => "registry",
            RanAs::Fork => "fork",
            RanAs::RegistryInChild => "registry-in-child",
        }
    }

    fn from_u32(v: u32) -> RanAs {
        match v {
            1 => RanAs::Perlrun,
            2 => RanAs::Registry,
            3 => RanAs::Fork,
            4 => RanAs::RegistryInChild,
            _ => RanAs::Nothing,
        }
    }
}

/// A slot as the status page shows it, read at one moment.
#[derive(Debug, Clone)]
pub struct SlotView {
    pub slot: usize,
    pub pid: i32,
    pub state: WorkerState,
    pub requests: u64,
    pub started_us: u64,
    /// 0: no request running.
    pub request_start_us: u64,
    pub last_duration_us: u64,
    pub rss: u64,
    pub private: u64,
    pub script: String,
    pub ran_as: RanAs,
}

/// Now, in microseconds since the epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Slot {
    pub fn state(&self) -> WorkerState {
        WorkerState::from_u32(self.state.load(Ordering::SeqCst))
    }

    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state as u32, Ordering::SeqCst);
    }

    /// Moves the slot from `from` to `to` if nobody changed it meanwhile.
    pub fn claim(&self, from: WorkerState, to: WorkerState) -> bool {
        self.state
            .compare_exchange(from as u32, to as u32, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The master wants this worker gone once its request (if any) is done.
    /// The worker learns it here between requests, never from a signal.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn count_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Worker side: a request for `script` starts now.
    pub fn begin_request(&self, script: &[u8]) {
        self.ran_as.store(RanAs::Nothing as u32, Ordering::Relaxed);
        self.set_script(script);
        self.request_start_us.store(now_us(), Ordering::Release);
    }

    /// Worker side: the request is over, its script ran `ran_as`; `rss`
    /// and `private` as measured after it (`None`: not measured this time,
    /// the last value stays).
    pub fn end_request(&self, ran_as: RanAs, rss: Option<u64>, private: Option<u64>) {
        self.ran_as.store(ran_as as u32, Ordering::Relaxed);
        let start = self.request_start_us.swap(0, Ordering::AcqRel);
        if start != 0 {
            let took = now_us().saturating_sub(start);
            self.last_duration_us.store(took, Ordering::Relaxed);
        }
        if let Some(rss) = rss {
            self.rss.store(rss, Ordering::Relaxed);
        }
        if let Some(private) = private {
            self.private.store(private, Ordering::Relaxed);
        }
    }

    /// Was a request running (a worker that died in it)?
    pub(super) fn in_request(&self) -> bool {
        self.request_start_us.load(Ordering::Acquire) != 0
    }

    fn set_script(&self, script: &[u8]) {
        // Even again even if a writer died half-way (the master resets
        // the slot of a worker killed in here).
        let seq = self.script_seq.load(Ordering::Relaxed) & !1;
        self.script_seq
            .store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let mut word = [0u8; 8];
        for (i, cell) in self.script.iter().enumerate() {
            word.fill(0);
            let from = (i * 8).min(script.len());
            let to = (from + 8).min(script.len());
            word[..to - from].copy_from_slice(&script[from..to]);
            cell.store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        self.script_seq
            .store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The script name, never torn: retried while the worker writes it.
    pub fn script(&self) -> String {
        let mut bytes = [0u8; SCRIPT_BYTES];
        // A worker stopped (SIGSTOP) or killed half-way through a write
        // must not hang the status page: once the same write has been in
        // progress for 100 ms, what was read last is shown. A writer that
        // keeps finishing writes is only waited out (a worker writes the
        // name once a request).
        let mut stuck: Option<(u32, std::time::Instant)> = None;
        loop {
            let before = self.script_seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                match stuck {
                    Some((seq, since)) if seq == before => {
                        if since.elapsed() > std::time::Duration::from_millis(100) {
                            break;
                        }
                    }
                    _ => stuck = Some((before, std::time::Instant::now())),
                }
                std::hint::spin_loop();
                continue;
            }
            for (i, cell) in self.script.iter().enumerate() {
                bytes[i * 8..i * 8 + 8]
                    .copy_from_slice(&cell.load(Ordering::Relaxed).to_ne_bytes());
            }
            fence(Ordering::Acquire);
            if self.script_seq.load(Ordering::Relaxed) == before {
                break;
            }
        }
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(SCRIPT_BYTES);
        String::from_utf8_lossy(&bytes[..len]).into_owned()
    }

    pub(super) fn view(&self, slot: usize) -> SlotView {
        SlotView {
            slot,
            pid: self.pid.load(Ordering::Relaxed),
            state: self.state(),
            requests: self.requests.load(Ordering::Relaxed),
            started_us: self.started_us.load(Ordering::Relaxed),
            request_start_us: self.request_start_us.load(Ordering::Acquire),
            last_duration_us: self.last_duration_us.load(Ordering::Relaxed),
            rss: self.rss.load(Ordering::Relaxed),
            private: self.private.load(Ordering::Relaxed),
            script: self.script(),
            ran_as: RanAs::from_u32(self.ran_as.load(Ordering::Relaxed)),
        }
    }

    /// The master's record of the worker it forked into this slot.
    pub(super) fn set_pid(&self, pid: i32, generation: u64) {
        self.generation.store(generation, Ordering::Relaxed);
        self.pid.store(pid, Ordering::SeqCst);
    }

    pub(super) fn reset(&self, pid: i32) {
        self.stop.store(false, Ordering::SeqCst);
        self.pid.store(pid, Ordering::SeqCst);
        self.requests.store(0, Ordering::Relaxed);
        self.started_us
            .store(if pid == 0 { 0 } else { now_us() }, Ordering::Relaxed);
        self.request_start_us.store(0, Ordering::Release);
        self.last_duration_us.store(0, Ordering::Relaxed);
        self.rss.store(0, Ordering::Relaxed);
        self.private.store(0, Ordering::Relaxed);
        self.set_script(b"");
        self.ran_as.store(RanAs::Nothing as u32, Ordering::Relaxed);
        self.generation.store(0, Ordering::Relaxed);
        self.set_state(if pid == 0 {
            WorkerState::Free
        } else {
            WorkerState::Starting
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    #[test]
    fn a_script_name_is_never_read_torn() {
        let board = Scoreboard::new().unwrap();
        let (a, done) = (
            board.take_free_slot().unwrap(),
            board.take_free_slot().unwrap(),
        );
        // Two names as long as the field: a torn read mixes their letters.
        let (x, y) = ([b'x'; SCRIPT_BYTES + 10], [b'y'; SCRIPT_BYTES]);
        let names: [&[u8]; 2] = [&x, &y];
        // SAFETY: the child only writes the shared mapping and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut i = 0;
                while !board.slot(done).stop_requested() {
                    board.slot(a).set_script(names[i % 2]);
                    i += 1;
                }
                // SAFETY: leaving the forked test process without unwinding.
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let (x, y) = ("x".repeat(SCRIPT_BYTES), "y".repeat(SCRIPT_BYTES));
                while board.slot(a).script().is_empty() {
                    std::hint::spin_loop();
                }
                let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
                let mut torn = None;
                while torn.is_none() && std::time::Instant::now() < until {
                    let seen = board.slot(a).script();
                    // "": the writer was descheduled mid-write for over
                    // 100 ms (a loaded machine) before anything was read:
                    // the reader gave up waiting, by design, and read none.
                    if seen != x && seen != y && !seen.is_empty() {
                        torn = Some(seen);
                    }
                }
                board.slot(done).request_stop();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(torn, None, "a torn name was read");
            }
        }
    }

    #[test]
    fn a_writer_gone_half_way_does_not_hang_readers() {
        let board = Scoreboard::new().unwrap();
        let slot = board.slot(board.take_free_slot().unwrap());
        slot.set_script(b"/a.pl");
        // A worker killed (or stopped) in the middle of set_script.
        slot.script_seq.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let _ = slot.script();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // The next write (the master's reset, a new worker) mends it.
        slot.set_script(b"/b.pl");
        let started = std::time::Instant::now();
        assert_eq!(slot.script(), "/b.pl");
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }
}
