//! Reload (SIGHUP): a new generation of workers replaces the running one
//! while the listening socket stays open.
//!
//! The master reads the configuration again (`reload::Reloader`), builds
//! a new interpreter beside the running one with the new preloads,
//! preload scripts and `--precompile` (`master::prepare_perl`), forks the
//! new workers from it, then tells the old ones to leave over their
//! channel and scoreboard slot, as a graceful stop does: an idle one goes
//! at once, a busy one after its request, untouched; connections they
//! held come back to the master and go to the new workers. Old workers
//! still there after `drain_timeout` are killed. The old interpreter is
//! freed in the master without its END blocks.
//!
//! Anything failing before the fork (the file, a setting, a preload, a
//! strict precompile) refuses the reload with one log line: the new
//! interpreter is freed, and the running generation serves on, as the
//! master still forks its replacements from the old interpreter.
//!
//! While the new interpreter loads, the master's loop waits: workers
//! keep accepting new connections themselves, only connections handed
//! back to the master wait until it is done.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

use super::Pool;

impl Pool<'_> {
    pub(super) fn reload(&mut self) {
        let started = Instant::now();
        let next = self.board.generation() + 1;
        log::info!("SIGHUP: reloading (generation {next})");
        if let Some(n) = &self.notifier {
            n.reloading();
        }
        if let Err(why) = self.switch_generation() {
            log::error!(
                "reload refused, generation {} serves on: {why}",
                self.board.generation()
            );
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
        let old: Vec<usize> = (0..self.workers.len())
            .filter(|&slot| {
                self.workers[slot].as_ref().is_some_and(|w| !w.leaving)
                    && self.board.slot(slot).generation() != next
            })
            .collect();
        let drain_by = Instant::now() + Duration::from_secs(self.cfg.drain_timeout);
        for &slot in &old {
            self.tell_to_leave(slot);
            if let Some(w) = self.workers[slot].as_mut() {
                w.drain_by = Some(drain_by);
            }
        }
        log::info!(
            "reloaded: generation {} serving ({} workers, ready in {} ms); {} workers of the \
             previous generation finish their requests (drain_timeout {} s)",
            next,
            self.target,
            started.elapsed().as_millis(),
            old.len(),
            self.cfg.drain_timeout
        );
        if let Some(n) = &self.notifier {
            n.ready(&format!(
                "{} workers serving, generation {next}",
                self.target
            ));
        }
    }

    /// Reads the configuration, builds the interpreter and forks the new
    /// workers; nothing changes when it fails before the fork.
    fn switch_generation(&mut self) -> Result<(), String> {
        let cfg = self.reloader.read(&self.cfg)?;
        let perl = crate::master::prepare_perl(&cfg).map_err(|e| format!("{e:#}"))?;
        if let Err(e) = crate::log::switch(cfg.log.as_deref(), cfg.log_format) {
            log::warn!("reload: the log stays where it was: {e}");
        }
        perl.adopt();
        let old = std::mem::replace(&mut *self.perl, perl);
        self.cfg = cfg;
        self.target = self.cfg.workers;
        self.board.set_generation(self.board.generation() + 1);
        self.quick_deaths = 0;
        if let Err(e) = self.fill() {
            // The loop tries again; the old workers leave only once the
            // new ones exist.
            log::error!("reload: cannot fork the new workers: {e:#}");
        }
        // After the fork: it is of no use to the new workers, and the old
        // ones have their own copy.
        old.discard();
        Ok(())
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
