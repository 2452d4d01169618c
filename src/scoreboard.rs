//! State the master and its workers share, in memory mapped before the
//! first fork: one slot per worker saying what it is doing, how many ready
//! requests wait in the master, and the pool's counters a status page
//! shows.
//!
//! Dispatch rests on it: a worker between requests is `Idle`; whoever first
//! moves it out of `Idle` with a compare-and-swap decides what it does next.
//! The worker itself moves to `Busy` when a request it watches is ready; the
//! master moves it to `Assigned` when it has a queued request for it, and
//! then sends the request over the worker's channel. Both are plain atomics
//! on a shared page, so the common case (a worker serving the next request
//! of its kept connection) costs no system call and wakes no one.
//!
//! Ordering: the master publishes the queue length *before* it looks for
//! an idle worker, and a worker publishes `Idle` *before* it reads the queue
//! length (all `SeqCst`), so at least one of them sees the other: a request
//! never stays queued while a worker sits idle.
//!
//! The status page (`status/`) reads the same slots and the pool's
//! counters beside them (SPEC §5 scoreboard). Each is written by one
//! process with a plain atomic store or add; the script name, too long for
//! one atomic, sits behind a per-slot sequence number (a seqlock: the
//! worker makes it odd while it writes), so a reader retries instead of
//! showing half of one name and half of the next.

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

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

/// The pool's counters, read at one moment.
#[derive(Debug, Clone, Default)]
pub struct PoolView {
    pub started_us: u64,
    pub generation: u64,
    pub accepted: u64,
    pub active: u32,
    pub max_active: u32,
    pub queued: u32,
    pub slow: u64,
    pub recycled: u64,
    pub crashed: u64,
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
    fn in_request(&self) -> bool {
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

    fn view(&self, slot: usize) -> SlotView {
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

    fn reset(&self, pid: i32) {
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

#[repr(C)]
struct Board {
    /// Ready requests waiting in the master for a worker.
    queued: AtomicU32,
    /// Set by the master at a graceful stop: workers no longer accept
    /// connections (the master takes those queued on the socket).
    listening_stopped: AtomicBool,
    /// Set by the master while it builds a reload's interpreter and cannot
    /// dispatch: workers keep their kept connections instead of handing
    /// them back (see `worker::idle`).
    master_busy: AtomicBool,
    /// Requests being served now, and the most there ever were at once.
    active: AtomicU32,
    max_active: AtomicU32,
    /// The master's start, µs since the epoch.
    started_us: AtomicU64,
    /// The pool's generation (1 until a reload makes a new one).
    generation: AtomicU64,
    /// Requests started.
    accepted: AtomicU64,
    /// Requests that ran past `slowlog_timeout`.
    slow: AtomicU64,
    /// Workers that left to be replaced after a request: `max_requests`,
    /// an interpreter that could not be put back, a memory limit.
    recycled: AtomicU64,
    /// Workers that died: killed by a signal, or a non-zero exit.
    crashed: AtomicU64,
    /// Bumped by the master on USR1: workers reopen their access log.
    reopen: AtomicU64,
    /// One past the highest slot ever taken: readers scan no further.
    slots_used: AtomicU32,
    slots: [Slot; SLOTS],
}

/// Most workers one daemon can have at once (`workers` is at most 4096;
/// `TTIN` adds to it).
pub const SLOTS: usize = 4096 + 256;

/// The shared mapping. Created by the master before it forks; each worker
/// inherits it at the same address.
pub struct Scoreboard {
    board: NonNull<Board>,
}

impl Scoreboard {
    pub fn new() -> io::Result<Scoreboard> {
        let len = NonZeroUsize::new(std::mem::size_of::<Board>()).expect("non-empty board");
        // SAFETY: a fresh anonymous shared mapping, not aliased by anything;
        // the kernel zero-fills it, which is a valid Board (all atomics 0,
        // every slot Free).
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        let board = Scoreboard { board: ptr.cast() };
        board.board().started_us.store(now_us(), Ordering::Relaxed);
        board.board().generation.store(1, Ordering::Relaxed);
        Ok(board)
    }

    fn board(&self) -> &Board {
        // SAFETY: the mapping lives as long as `self` and holds a Board
        // (see `new`); it is only ever accessed through atomics.
        unsafe { self.board.as_ref() }
    }

    pub fn slot(&self, index: usize) -> &Slot {
        &self.board().slots[index]
    }

    /// A free slot, reserved for a worker about to be forked.
    pub fn take_free_slot(&self) -> Option<usize> {
        let slots = &self.board().slots;
        let index = slots
            .iter()
            .position(|s| s.claim(WorkerState::Free, WorkerState::Starting))?;
        slots[index].reset(-1);
        self.board()
            .slots_used
            .fetch_max(index as u32 + 1, Ordering::Relaxed);
        Some(index)
    }

    /// Records the pid and generation of the worker in `index` (master
    /// side, after fork).
    pub fn set_pid(&self, index: usize, pid: i32, generation: u64) {
        let slot = self.slot(index);
        slot.generation.store(generation, Ordering::Relaxed);
        slot.pid.store(pid, Ordering::SeqCst);
    }

    pub fn generation(&self) -> u64 {
        self.board().generation.load(Ordering::Relaxed)
    }

    pub fn set_generation(&self, generation: u64) {
        self.board().generation.store(generation, Ordering::Relaxed);
    }

    /// The slot's worker is gone.
    pub fn free_slot(&self, index: usize) {
        if self.slot(index).in_request() {
            // It died in a request it will never end.
            self.board().active.fetch_sub(1, Ordering::AcqRel);
        }
        self.slot(index).reset(0);
    }

    /// Worker side: the request on `index`, for `script`, starts.
    pub fn begin_request(&self, index: usize, script: &[u8]) {
        let board = self.board();
        board.accepted.fetch_add(1, Ordering::Relaxed);
        let active = board.active.fetch_add(1, Ordering::AcqRel) + 1;
        board.max_active.fetch_max(active, Ordering::Relaxed);
        self.slot(index).begin_request(script);
    }

    /// Worker side: the request on `index` is over (see [`Slot::end_request`]).
    pub fn end_request(&self, index: usize, ran_as: RanAs, rss: Option<u64>, private: Option<u64>) {
        let slot = self.slot(index);
        if slot.in_request() {
            self.board().active.fetch_sub(1, Ordering::AcqRel);
        }
        slot.end_request(ran_as, rss, private);
    }

    /// A request ran past `slowlog_timeout`.
    pub fn count_slow(&self) {
        self.board().slow.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker leaves to be replaced (see `Board::recycled`).
    pub fn count_recycle(&self) {
        self.board().recycled.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker died (see `Board::crashed`).
    pub fn count_crash(&self) {
        self.board().crashed.fetch_add(1, Ordering::Relaxed);
    }

    /// Master side, on USR1: every worker reopens its access log.
    pub fn ask_reopen(&self) {
        self.board().reopen.fetch_add(1, Ordering::Release);
    }

    /// How many reopens were asked for so far.
    pub fn reopens(&self) -> u64 {
        self.board().reopen.load(Ordering::Acquire)
    }

    /// The pool's counters now.
    pub fn pool_view(&self) -> PoolView {
        let b = self.board();
        PoolView {
            started_us: b.started_us.load(Ordering::Relaxed),
            generation: b.generation.load(Ordering::Relaxed),
            accepted: b.accepted.load(Ordering::Relaxed),
            active: b.active.load(Ordering::Acquire),
            max_active: b.max_active.load(Ordering::Relaxed),
            queued: b.queued.load(Ordering::Relaxed),
            slow: b.slow.load(Ordering::Relaxed),
            recycled: b.recycled.load(Ordering::Relaxed),
            crashed: b.crashed.load(Ordering::Relaxed),
        }
    }

    /// Every slot with a worker in it, in slot order.
    pub fn worker_views(&self) -> Vec<SlotView> {
        let used = self.board().slots_used.load(Ordering::Relaxed) as usize;
        self.board().slots[..used.min(SLOTS)]
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state() != WorkerState::Free)
            .map(|(i, s)| s.view(i))
            .collect()
    }

    pub fn queued(&self) -> u32 {
        self.board().queued.load(Ordering::SeqCst)
    }

    /// `busy` workers are busy now (the master's count, sampled): the most
    /// at once so far, if more. Workers also count it exactly as requests
    /// begin (`begin_request`); this catches a pool with no scoreboard-
    /// tracked requests yet, such as `--workers 0` before its first.
    pub fn record_active(&self, busy: usize) {
        let busy = u32::try_from(busy).unwrap_or(u32::MAX);
        self.board().max_active.fetch_max(busy, Ordering::Relaxed);
    }

    pub fn max_active(&self) -> u64 {
        u64::from(self.board().max_active.load(Ordering::Relaxed))
    }

    pub fn slow_requests(&self) -> u64 {
        self.board().slow.load(Ordering::Relaxed)
    }

    pub fn set_queued(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.board().queued.store(n, Ordering::SeqCst);
    }

    /// Master side, at a graceful stop: workers accept no more.
    pub fn stop_listening(&self) {
        self.board().listening_stopped.store(true, Ordering::SeqCst);
    }

    /// Master side: it is (or no longer is) too busy to dispatch.
    pub fn set_master_busy(&self, busy: bool) {
        self.board().master_busy.store(busy, Ordering::SeqCst);
    }

    pub fn master_busy(&self) -> bool {
        self.board().master_busy.load(Ordering::SeqCst)
    }

    pub fn listening_stopped(&self) -> bool {
        self.board().listening_stopped.load(Ordering::SeqCst)
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped; no reference outlives self.
        let _ = unsafe { munmap(self.board.cast(), std::mem::size_of::<Board>()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_exclusive_and_shared_across_fork() {
        let board = Scoreboard::new().unwrap();
        let a = board.take_free_slot().unwrap();
        let b = board.take_free_slot().unwrap();
        assert_ne!(a, b);
        let slot = board.slot(a);
        assert_eq!(slot.state(), WorkerState::Starting);
        slot.set_state(WorkerState::Idle);
        assert!(slot.claim(WorkerState::Idle, WorkerState::Assigned));
        assert!(
            !slot.claim(WorkerState::Idle, WorkerState::Busy),
            "taken already"
        );
        board.set_queued(3);

        // SAFETY: the child only touches the shared mapping and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = board.queued() == 3 && board.slot(a).state() == WorkerState::Assigned;
                board.slot(b).set_state(WorkerState::Busy);
                // SAFETY: leaving the forked test process without unwinding.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
                assert_eq!(board.slot(b).state(), WorkerState::Busy);
            }
        }
        board.free_slot(a);
        assert_eq!(board.slot(a).state(), WorkerState::Free);
    }

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
