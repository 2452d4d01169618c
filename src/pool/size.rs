//! The pool's size (php-fpm's `fpm_process_ctl.c`): how many workers
//! serve, one fewer at a TTOU, a dynamic pool resized once a second by the
//! `sizing` policy, and the warning when every worker is busy and
//! requests wait.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::{readable, Pool};
use crate::scoreboard::WorkerState;
use crate::sizing::{Action, Counts, Dynamic};

impl Pool<'_> {
    /// One worker fewer (TTOU): an idle one if there is one.
    pub(super) fn retire_one(&mut self) {
        let states = self.staying().map(|s| (s, self.board.slot(s).state()));
        if let Some(slot) = pick_to_retire(states) {
            self.tell_to_leave(slot);
        }
    }

    /// Every worker is busy and requests wait: one log line (at most one
    /// in 10 s) saying where they wait and which key to raise, unless a
    /// dynamic pool can still grow.
    pub(super) fn warn_all_busy(&mut self) {
        let busy = self.counts().busy;
        self.board.record_active(busy);
        let Some(key) = key_to_raise(self.sizer.settings(), busy) else {
            return;
        };
        let now = Instant::now();
        if self
            .last_busy_warning
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            return;
        }
        let mut waiting = self.waiting();
        if !waiting.anywhere() {
            // A worker that has just taken a request hands back what else
            // it held at the same moment: read what is already sent.
            self.serve_pending();
            waiting = self.waiting();
        }
        // Nothing waits: no key to raise yet; the next look may say more.
        if waiting.anywhere() {
            self.last_busy_warning = Some(now);
            log::warn!("{}", all_busy(busy, key, waiting));
        }
    }

    fn waiting(&self) -> Waiting {
        Waiting {
            in_master: self.dispatcher.ready_len(),
            in_ready_queue: readable(self.ready.rx()),
            in_backlog: readable(self.listener.as_fd()),
        }
    }

    /// Once a second: the busy workers counted (`max_active`) and, for a
    /// dynamic pool, what `sizing` says done. The workers it starts, `fill`
    /// forks; one it retires leaves between requests, told over its
    /// channel.
    pub(super) fn resize(&mut self) {
        if !self.sizer.due(Instant::now()) {
            return;
        }
        let counts = self.counts();
        self.board.record_active(counts.busy);
        // Requests a busy pool leaves in the kernel's queues (the ready
        // queue, the listen backlog) are not in the master's: look there.
        if counts.idle + counts.starting == 0
            && (readable(self.ready.rx()) || readable(self.listener.as_fd()))
        {
            self.warn_all_busy();
        }
        match self.sizer.decide(counts) {
            Action::Start(n) => self.target += n,
            Action::RetireIdle => {
                let idle = self
                    .staying()
                    .find(|&s| self.board.slot(s).state() == WorkerState::Idle);
                if let Some(slot) = idle {
                    self.target = self.target.saturating_sub(1).max(1);
                    self.tell_to_leave(slot);
                }
            }
            Action::AtMax => self.warn_all_busy(),
            Action::Nothing => {}
        }
    }

    /// The slots of the current generation's workers not told to leave.
    pub(super) fn staying(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.workers.len()).filter(|&s| self.is_serving(s))
    }

    /// The staying workers by what they do.
    pub(super) fn counts(&self) -> Counts {
        Counts::of(self.staying().map(|s| self.board.slot(s).state()))
    }

    /// Workers of the current generation not told to leave.
    pub(super) fn serving(&self) -> usize {
        self.staying().count()
    }

    /// The slot holds a worker of the current generation, not told to
    /// leave.
    pub(super) fn is_serving(&self, slot: usize) -> bool {
        self.workers[slot].as_ref().is_some_and(|w| !w.leaving)
            && self.board.slot(slot).generation() == self.board.generation()
    }
}

/// The worker a TTOU retires, from the staying ones and their states: the
/// first idle one, else the first (it leaves after its request).
fn pick_to_retire(staying: impl Iterator<Item = (usize, WorkerState)>) -> Option<usize> {
    let mut first = None;
    for (slot, state) in staying {
        if state == WorkerState::Idle {
            return Some(slot);
        }
        first = first.or(Some(slot));
    }
    first
}

/// The key an all-busy warning tells to raise, or None while a dynamic
/// pool is below `max_workers` (it grows by itself, `resize`).
fn key_to_raise(dynamic: Option<Dynamic>, busy: usize) -> Option<&'static str> {
    match dynamic {
        None => Some("workers"),
        Some(dynamic) if busy < dynamic.max_workers => None,
        Some(_) => Some("max_workers"),
    }
}

/// Where requests wait while every worker is busy.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// Ready requests in the master's own queue.
    in_master: usize,
    in_ready_queue: bool,
    in_backlog: bool,
}

impl Waiting {
    fn anywhere(&self) -> bool {
        self.in_master > 0 || self.in_ready_queue || self.in_backlog
    }
}

/// The all-busy warning, for requests waiting somewhere.
fn all_busy(busy: usize, key: &str, waiting: Waiting) -> String {
    let mut places: Vec<String> = Vec::new();
    if waiting.in_master > 0 {
        places.push(format!("{} in the master's queue", waiting.in_master));
    }
    for (waits, name) in [
        (waiting.in_ready_queue, "the ready queue"),
        (waiting.in_backlog, "the listen backlog"),
    ] {
        if waits {
            places.push(format!("some in {name}"));
        }
    }
    format!(
        "all {busy} workers are busy; requests wait: {} (raise {key} if this lasts)",
        places.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttou_retires_an_idle_worker_before_a_busy_one() {
        use WorkerState::*;
        let pick = |states: &[(usize, WorkerState)]| pick_to_retire(states.iter().copied());
        assert_eq!(pick(&[(0, Busy), (3, Idle), (5, Idle)]), Some(3));
        assert_eq!(
            pick(&[(2, Busy), (4, Starting)]),
            Some(2),
            "none idle: the first"
        );
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn a_dynamic_pool_below_its_maximum_has_nothing_to_raise() {
        let dynamic = Dynamic {
            start_workers: 2,
            min_spare: 1,
            max_spare: 3,
            max_workers: 5,
        };
        assert_eq!(key_to_raise(None, 4), Some("workers"));
        assert_eq!(key_to_raise(Some(dynamic), 4), None);
        assert_eq!(key_to_raise(Some(dynamic), 5), Some("max_workers"));
    }

    #[test]
    fn the_warning_says_where_requests_wait() {
        let backlog = Waiting {
            in_master: 0,
            in_ready_queue: false,
            in_backlog: true,
        };
        assert_eq!(
            all_busy(4, "workers", backlog),
            "all 4 workers are busy; requests wait: some in the listen backlog \
             (raise workers if this lasts)"
        );
        let everywhere = Waiting {
            in_master: 7,
            in_ready_queue: true,
            in_backlog: true,
        };
        assert_eq!(
            all_busy(4, "max_workers", everywhere),
            "all 4 workers are busy; requests wait: 7 in the master's queue, some in the ready \
             queue, some in the listen backlog (raise max_workers if this lasts)"
        );
    }
}
