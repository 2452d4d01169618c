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
//! showing half of one name and half of the next. A slot is `slot`; this
//! file is the mapping, the pool's counters and who may take a slot.

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

mod slot;

pub use slot::{now_us, RanAs, Slot, SlotView, WorkerState};

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

#[repr(C)]
struct Board {
    /// Ready requests waiting in the master for a worker.
    queued: AtomicU32,
    /// Messages in the ready queue, counted by who sends and who takes
    /// them (`dispatch::ready`): a hint, see [`Scoreboard::ready_queue_empty`].
    ready_messages: AtomicU32,
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
        self.slot(index).set_pid(pid, generation);
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

    /// How many workers besides the one in `slot` are idle now (sampled).
    pub fn idle_besides(&self, slot: usize) -> usize {
        let used = self.board().slots_used.load(Ordering::Relaxed) as usize;
        self.board().slots[..used.min(SLOTS)]
            .iter()
            .enumerate()
            .filter(|&(i, s)| i != slot && s.state() == WorkerState::Idle)
            .count()
    }

    /// A message went into the ready queue (after its `sendmsg`).
    pub fn count_ready_pushed(&self) {
        self.board().ready_messages.fetch_add(1, Ordering::SeqCst);
    }

    /// A message was taken from the ready queue (after its `recvmsg`).
    pub fn count_ready_taken(&self) {
        let _ = self
            .board()
            .ready_messages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// The ready queue is empty, as far as the counts say: a worker turning
    /// idle then skips the `recvmsg` that would find nothing. A message
    /// sent but not counted yet is not lost: the worker's poll watches the
    /// queue. A count left high (a worker killed between taking a message
    /// and counting it) only costs that `recvmsg` again.
    pub fn ready_queue_empty(&self) -> bool {
        self.board().ready_messages.load(Ordering::SeqCst) == 0
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
}
