//! Reload (SIGHUP): a new generation of workers replaces the running one
//! while the listening socket stays open.
//!
//! The master reads the configuration again (`reload::Reloader`), builds
//! a new interpreter beside the running one with the new preloads,
//! preload scripts and `--precompile` (`runner::prepare_perl`), forks the
//! new workers from it and frees the old interpreter (without its END
//! blocks). Once every new worker is idle (ready to take a request; at
//! most [`HANDOVER_WAIT`]), the old ones are told to leave over their
//! channel and scoreboard slot, as a graceful stop does: an idle one goes
//! at once, a busy one after its request, untouched; connections they
//! held come back to the master and go to the new workers. Old workers
//! still there after `drain_timeout` are killed.
//!
//! Anything failing before the fork (the file, a setting, a preload, a
//! strict precompile) refuses the reload with one log line: the new
//! interpreter is freed, and the running generation serves on, as the
//! master still forks its replacements from the old interpreter.
//!
//! While the new interpreter loads, the master's loop runs between the
//! steps (each module, preload script, precompiled script): connections
//! handed back to the master and workers' messages are served between
//! them, signals after the build.

use std::time::{Duration, Instant};

use nix::sys::epoll::{EpollEvent, EpollTimeout};
use nix::sys::signal::{kill, Signal};

use super::{Pool, TOKEN_SIGNALS};
use crate::scoreboard::WorkerState;

/// The longest the old generation serves on while the new one starts.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// A reload whose new workers are starting.
pub struct Handover {
    /// The HUP.
    began: Instant,
    /// The old workers leave then at the latest.
    by: Instant,
}

impl Pool<'_> {
    pub(super) fn reload(&mut self) {
        let started = Instant::now();
        // A generation still starting is replaced before it took over:
        // the ones before it leave now.
        self.hand_over(started, true);
        let next = self.board.generation() + 1;
        log::info!("SIGHUP: reloading (generation {next})");
        if let Some(n) = &self.notifier {
            n.reloading();
        }
        if let Err(why) = self.switch_generation() {
            // One log line per problem, each with its time and pid.
            let mut problems = problems_of(&why).into_iter();
            log::error!(
                "reload refused, generation {} serves on: {}",
                self.board.generation(),
                problems.next().unwrap_or_default()
            );
            for problem in problems {
                log::error!("reload refused: {problem}");
            }
            if let Some(n) = &self.notifier {
                n.status(&format!("reload refused: {why}"));
                n.ready(&format!(
                    "{} workers serving, generation {}; last reload refused",
                    self.target,
                    self.board.generation()
                ));
            }
            return;
        }
        let now = Instant::now();
        self.handover = Some(Handover {
            began: started,
            by: now + HANDOVER_WAIT,
        });
    }

    /// Once the new generation's workers are all idle (or after
    /// [`HANDOVER_WAIT`], or at once with `now_anyway`), tells the older
    /// ones to leave. Returns when to look again.
    pub(super) fn hand_over(&mut self, now: Instant, now_anyway: bool) -> Option<Instant> {
        let handover = self.handover.as_ref()?;
        let current = self.board.generation();
        let starting = (0..self.workers.len()).any(|slot| {
            self.is_serving(slot) && self.board.slot(slot).state() == WorkerState::Starting
        });
        if starting && now < handover.by && self.stopping.is_none() && !now_anyway {
            // Workers turning idle do not wake the master.
            return Some(now + Duration::from_millis(5));
        }
        let began = handover.began;
        self.handover = None;
        if self.stopping.is_some() {
            return None;
        }
        let old: Vec<usize> = (0..self.workers.len())
            .filter(|&slot| {
                self.workers[slot].as_ref().is_some_and(|w| !w.leaving)
                    && self.board.slot(slot).generation() != current
            })
            .collect();
        let drain_by = now + Duration::from_secs(self.cfg.drain_timeout);
        for &slot in &old {
            self.tell_to_leave(slot);
            if let Some(w) = self.workers[slot].as_mut() {
                w.drain_by = Some(drain_by);
            }
        }
        log::info!(
            "reloaded: generation {current} serving ({} workers, ready in {} ms); {} workers of \
             older generations finish their requests (drain_timeout {} s)",
            self.target,
            began.elapsed().as_millis(),
            old.len(),
            self.cfg.drain_timeout
        );
        if let Some(n) = &self.notifier {
            n.ready(&format!(
                "{} workers serving, generation {current}",
                self.target
            ));
        }
        None
    }

    /// Reads the configuration, builds the interpreter and forks the new
    /// workers; nothing changes when it fails before the fork.
    fn switch_generation(&mut self) -> Result<(), String> {
        let cfg = self.reloader.read(&self.cfg)?;
        let building = Instant::now();
        let mut longest_step = Duration::ZERO;
        let mut step = Instant::now();
        // Within one step (a big module's `require`) the master answers
        // nothing: workers keep their kept connections meanwhile, so a
        // request on one waits for its worker's current request at most,
        // not for the build.
        self.board.set_master_busy(true);
        let built = crate::runner::prepare_perl(&cfg, &mut || {
            longest_step = longest_step.max(step.elapsed());
            self.serve_pending();
            step = Instant::now();
        });
        self.board.set_master_busy(false);
        let perl = built.map_err(|e| format!("{e:#}"))?;
        log::debug!(
            "reload: the new interpreter built in {} ms (longest step {} ms)",
            building.elapsed().as_millis(),
            longest_step.as_millis()
        );
        if let Err(e) = crate::log::switch(cfg.log.as_deref(), cfg.log_format) {
            log::warn!("reload: the log stays where it was: {e}");
        }
        perl.adopt();
        let old = std::mem::replace(&mut *self.perl, perl);
        self.cfg = cfg;
        self.target = self
            .cfg
            .dynamic
            .map_or(self.cfg.workers, |d| d.start_workers);
        self.sizer = crate::sizing::Sizer::new(self.cfg.dynamic);
        let (settings, idle_timeout) = super::dispatcher_settings(&self.cfg);
        self.dispatcher.reconfigure(settings, idle_timeout);
        self.board.set_generation(self.board.generation() + 1);
        self.quick_deaths = 0;
        if let Err(e) = self.fill() {
            // The loop tries again; the old workers leave only once the
            // new ones exist.
            log::error!("reload: cannot fork the new workers: {e:#}");
        }
        // After the fork: it is of no use to the new workers, and the old
        // ones have their own copy.
        let freeing = Instant::now();
        old.discard();
        log::debug!(
            "reload: the previous interpreter freed in {} ms",
            freeing.elapsed().as_millis()
        );
        Ok(())
    }

    /// Between the steps of a reload's build: what the loop does for the
    /// connections the master holds and the workers' messages, without
    /// waiting (signals stay pending until the build is over).
    pub(super) fn serve_pending(&mut self) {
        let mut events = [EpollEvent::empty(); 64];
        let Ok(n) = self.epoll.wait(&mut events, EpollTimeout::ZERO) else {
            return;
        };
        for event in events[..n].iter().filter(|e| e.data() != TOKEN_SIGNALS) {
            self.on_event(event);
        }
        self.dispatch();
    }

    /// Kills the old generation's workers still busy past their
    /// `drain_timeout`; returns the next such deadline.
    pub(super) fn drain_overdue(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (slot, w) in self.workers.iter_mut().enumerate() {
            let Some(w) = w else { continue };
            let Some(by) = w.drain_by else { continue };
            if now >= by {
                log::warn!(
                    "worker {} of generation {} still busy {} s after the reload \
                     (drain_timeout); killing it",
                    w.pid,
                    self.board.slot(slot).generation(),
                    self.cfg.drain_timeout
                );
                let _ = kill(w.pid, Signal::SIGKILL);
                w.drain_by = None;
            } else {
                next = Some(next.map_or(by, |n| n.min(by)));
            }
        }
        next
    }
}

/// A refusal's message as one line per problem: a config file's problems
/// each start with "line N:"; the lines of a TOML syntax error (its
/// snippet and caret dropped) join the problem they explain.
fn problems_of(why: &str) -> Vec<String> {
    let snippet = |l: &str| {
        let t = l.trim_start();
        t.starts_with('|')
            || t.split_once(" |")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
    };
    let mut problems: Vec<String> = Vec::new();
    for line in why.lines().filter(|l| !l.trim().is_empty() && !snippet(l)) {
        match problems.last_mut() {
            Some(last) if !line.starts_with("line ") => {
                last.push_str("; ");
                last.push_str(line.trim());
            }
            _ => problems.push(line.to_string()),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::problems_of;

    #[test]
    fn a_refusal_is_one_line_per_problem() {
        let syntax = "/etc/f.toml: TOML parse error at line 2, column 8\n  |\n2 | root = [\n  |        ^\ninvalid array\nexpected `]`";
        assert_eq!(
            problems_of(syntax),
            ["/etc/f.toml: TOML parse error at line 2, column 8; invalid array; expected `]`"]
        );
        let keys = "/etc/f.toml: line 1: unknown key `wokers`; did you mean `workers`?\nline 4: unknown key `zzz`";
        assert_eq!(problems_of(keys).len(), 2);
        assert_eq!(
            problems_of("--preload X: Can't locate X.pm"),
            ["--preload X: Can't locate X.pm"]
        );
    }
}
