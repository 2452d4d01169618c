//! State the master and its workers share, in memory mapped before the
//! first fork: one slot per worker saying what it is doing, and how many
//! ready requests wait in the master.
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
//! A future status page reads the same slots (SPEC §5 scoreboard).

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

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
    /// The pool generation the worker was forked in (1, then +1 per
    /// reload).
    generation: AtomicU64,
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

    fn reset(&self, pid: i32) {
        self.stop.store(false, Ordering::SeqCst);
        self.pid.store(pid, Ordering::SeqCst);
        self.requests.store(0, Ordering::Relaxed);
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
    /// The generation now serving (a reload starts the next one).
    generation: AtomicU64,
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
        Ok(Scoreboard { board: ptr.cast() })
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
        self.slot(index).reset(0);
    }

    pub fn queued(&self) -> u32 {
        self.board().queued.load(Ordering::SeqCst)
    }

    pub fn set_queued(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.board().queued.store(n, Ordering::SeqCst);
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
