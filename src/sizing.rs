//! How many workers a `pool = "dynamic"` pool should have: php-fpm's
//! `pm = dynamic` policy as a pure value the master asks once a second.
//!
//! Once a second ([`Sizer::due`]) the master counts its workers by what
//! the scoreboard says they do and calls [`Sizer::decide`]; the answer is
//! a number of workers to start or one idle worker to retire. Kept apart from the pool so the policy can be
//! read, and tested, without processes: the pool only acts on the answer
//! (forks, or tells an idle worker to leave over its channel).
//!
//! The rules, as php-fpm's `fpm_pctl_perform_idle_server_maintenance`:
//! more than `max_spare` idle workers: retire one (one a second, so a
//! short lull does not empty the pool); fewer than `min_spare`: start the
//! missing ones, but at most 1 this second, 2 the next, then 4 … 32 while
//! the shortage lasts, and never past `max_workers` in all. A worker that
//! is starting counts as idle: it is about to take requests.

use std::time::{Duration, Instant};

use crate::scoreboard::WorkerState;

/// The most workers started in one second (php-fpm's
/// `FPM_MAX_SPAWN_RATE`).
pub const MAX_SPAWN_RATE: usize = 32;

/// `pool = "dynamic"`'s settings, validated (`Config::resolve`):
/// `min_spare <= max_spare <= max_workers <= SLOTS` and `start_workers`
/// in `min_spare..=max_spare` (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dynamic {
    pub start_workers: usize,
    pub min_spare: usize,
    pub max_spare: usize,
    pub max_workers: usize,
}

/// The pool's workers by what they do (workers already told to leave are
/// not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub idle: usize,
    pub busy: usize,
    pub starting: usize,
}

impl Counts {
    /// Counted from the scoreboard states of the workers still staying.
    pub fn of(states: impl Iterator<Item = WorkerState>) -> Counts {
        let mut c = Counts::default();
        for state in states {
            match state {
                WorkerState::Idle => c.idle += 1,
                WorkerState::Busy | WorkerState::Assigned => c.busy += 1,
                WorkerState::Starting => c.starting += 1,
                WorkerState::Free | WorkerState::Exiting => {}
            }
        }
        c
    }

    fn total(&self) -> usize {
        self.idle + self.busy + self.starting
    }
}

/// What the pool should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Start this many workers.
    Start(usize),
    /// Tell one idle worker to leave.
    RetireIdle,
    /// Short of idle workers, but `max_workers` are running: say so.
    AtMax,
}

/// The policy's state between ticks: the spawn rate, and when it last ran.
/// A static pool has one too, for the once-a-second tick (its answer is
/// always `Nothing`).
#[derive(Debug)]
pub struct Sizer {
    settings: Option<Dynamic>,
    spawn_rate: usize,
    last: Option<Instant>,
}

impl Sizer {
    /// None: a static pool.
    pub fn new(settings: Option<Dynamic>) -> Sizer {
        Sizer {
            settings,
            spawn_rate: 1,
            last: None,
        }
    }

    pub fn settings(&self) -> Option<Dynamic> {
        self.settings
    }

    /// True once a second: then count the workers and [`Sizer::decide`].
    pub fn due(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// What to do about the pool as `counts` describes it.
    pub fn decide(&mut self, counts: Counts) -> Action {
        let Some(s) = self.settings else {
            return Action::Nothing;
        };
        let spare = counts.idle + counts.starting;
        if spare > s.max_spare {
            self.spawn_rate = 1;
            return Action::RetireIdle;
        }
        if spare >= s.min_spare {
            self.spawn_rate = 1;
            return Action::Nothing;
        }
        let room = s.max_workers.saturating_sub(counts.total());
        if room == 0 {
            self.spawn_rate = 1;
            return Action::AtMax;
        }
        let n = (s.min_spare - spare).min(self.spawn_rate).min(room);
        self.spawn_rate = (self.spawn_rate * 2).min(MAX_SPAWN_RATE);
        Action::Start(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizer(min_spare: usize, max_spare: usize, max_workers: usize) -> Sizer {
        Sizer::new(Some(Dynamic {
            start_workers: min_spare,
            min_spare,
            max_spare,
            max_workers,
        }))
    }

    /// `s`'s answer `ms` after `t` to `idle` idle and `busy` busy workers.
    fn at(s: &mut Sizer, t: Instant, ms: u64, idle: usize, busy: usize) -> Action {
        let counts = Counts {
            idle,
            busy,
            starting: 0,
        };
        if !s.due(t + Duration::from_millis(ms)) {
            return Action::Nothing;
        }
        s.decide(counts)
    }

    #[test]
    fn one_decision_a_second() {
        let mut s = sizer(2, 4, 10);
        let t = Instant::now();
        assert_eq!(at(&mut s, t, 0, 0, 2), Action::Start(1));
        assert_eq!(at(&mut s, t, 500, 0, 2), Action::Nothing);
        assert_eq!(at(&mut s, t, 1000, 0, 3), Action::Start(2));
    }

    #[test]
    fn spawn_rate_doubles_up_to_32_while_short_and_resets() {
        let mut s = sizer(100, 100, 1000);
        let t = Instant::now();
        let started: Vec<Action> = (0..8).map(|i| at(&mut s, t, i * 1000, 0, 50)).collect();
        let want = [1, 2, 4, 8, 16, 32, 32, 32].map(Action::Start);
        assert_eq!(started, want);
        // Enough spare: the rate starts again from 1.
        assert_eq!(at(&mut s, t, 8000, 100, 0), Action::Nothing);
        assert_eq!(at(&mut s, t, 9000, 0, 50), Action::Start(1));
    }

    #[test]
    fn never_past_max_workers() {
        let mut s = sizer(3, 5, 5);
        let t = Instant::now();
        assert_eq!(at(&mut s, t, 0, 0, 4), Action::Start(1));
        // Rate 2 now, 3 short, but only 1 place left.
        assert_eq!(at(&mut s, t, 1000, 0, 4), Action::Start(1));
        assert_eq!(at(&mut s, t, 2000, 0, 5), Action::AtMax);
    }

    #[test]
    fn a_static_pool_is_left_alone() {
        let mut s = Sizer::new(None);
        assert!(s.due(Instant::now()));
        assert_eq!(s.decide(Counts::default()), Action::Nothing);
    }

    #[test]
    fn starting_workers_count_as_spare() {
        let mut s = sizer(2, 3, 10);
        let t = Instant::now();
        let counts = Counts {
            idle: 1,
            busy: 4,
            starting: 1,
        };
        assert!(s.due(t));
        assert_eq!(s.decide(counts), Action::Nothing);
    }

    #[test]
    fn retires_one_idle_a_second_above_max_spare() {
        let mut s = sizer(1, 2, 10);
        let t = Instant::now();
        assert_eq!(at(&mut s, t, 0, 5, 0), Action::RetireIdle);
        assert_eq!(at(&mut s, t, 10, 4, 0), Action::Nothing);
        assert_eq!(at(&mut s, t, 1000, 4, 0), Action::RetireIdle);
        assert_eq!(at(&mut s, t, 2000, 2, 3), Action::Nothing);
    }
}
