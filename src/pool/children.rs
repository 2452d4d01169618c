//! The workers' lives as the master sees them (php-fpm's
//! `fpm_children.c`): a worker forked into a free scoreboard slot, reaped
//! when it exits (why it went, logged; a crash counted), and replaced,
//! with a brake when workers keep dying right after they start.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::{Pool, Worker, TOKEN_CHANNEL_BASE};
use crate::dispatch::channel::Channel;
use crate::dispatch::dispatcher::Dispatcher;
use crate::fastcgi::preamble::PreambleSettings;
use crate::fastcgi::Limits;
use crate::{signals, worker};

impl Pool<'_> {
    /// Forks one worker into a free scoreboard slot. The child never
    /// returns from here.
    pub(super) fn spawn(&mut self) -> anyhow::Result<()> {
        let slot = self
            .board
            .take_free_slot()
            .context("no free scoreboard slot for another worker")?;
        let (ours, theirs) = Channel::pair().context("cannot create a worker channel")?;
        let master = nix::unistd::getpid();
        self.perl.prepare_to_fork_workers();
        // SAFETY: the master is single-threaded (it never starts threads),
        // so the child may run arbitrary code after fork.
        match unsafe { fork() }.context("fork failed")? {
            ForkResult::Parent { child } => {
                drop(theirs);
                self.board
                    .set_pid(slot, child.as_raw(), self.board.generation());
                self.epoll.add(
                    ours.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_CHANNEL_BASE + slot as u64),
                )?;
                if self.workers.len() <= slot {
                    self.workers.resize_with(slot + 1, || None);
                }
                self.workers[slot] = Some(Worker {
                    pid: child,
                    born: Instant::now(),
                    channel: ours,
                    leaving: false,
                    drain_by: None,
                    owes_hand_back: false,
                });
                self.pids.insert(child, slot);
                Ok(())
            }
            ForkResult::Child => {
                // Until a script can be stopped in-process (issue 9, item 3),
                // a worker whose master died is killed outright: no orphan
                // ever keeps running a script or holding the socket.
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if nix::unistd::getppid() != master {
                    // SAFETY: exiting a forked child without running
                    // the parent's destructors or Perl END blocks.
                    unsafe { libc::_exit(0) };
                }
                let _ = signals::unblock(&signals::master_set());
                drop(ours);
                self.close_in_child();
                let link = worker::Link {
                    board: &self.board,
                    slot,
                    channel: theirs,
                    ready: &self.ready,
                };
                let code = match worker::run(&self.perl, self.listener, &self.cfg, Some(link)) {
                    Ok(()) => 0,
                    Err(e) => {
                        log::error!("worker failed: {e}");
                        1
                    }
                };
                // SAFETY: as above; the worker's state dies with it.
                unsafe { libc::_exit(code) };
            }
        }
    }

    /// In a new worker: closes the master's descriptors it inherited (the
    /// other workers' channels, the connections the master watches, epoll,
    /// signalfd, the systemd notification socket, a detached start's pipe). A copy left open here would keep a connection open after
    /// the master closed it, or hide a worker's exit from the master.
    fn close_in_child(&mut self) {
        drop(std::mem::take(&mut self.workers));
        drop(self.notifier.take());
        crate::detach::close_in_child();
        let settings = PreambleSettings::new(Limits::default(), 1, 1);
        drop(std::mem::replace(
            &mut self.dispatcher,
            Dispatcher::new(settings, Duration::ZERO),
        ));
        // The child leaves with _exit, so these owners are never dropped.
        let _ = nix::unistd::close(self.epoll.0.as_raw_fd());
        let _ = nix::unistd::close(self.signals.as_fd().as_raw_fd());
    }

    /// Collects exited workers and says why they went.
    pub(super) fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(exit) = Exit::of(status) else {
                continue;
            };
            if !exit.clean && self.pids.contains_key(&exit.pid) {
                self.board.count_crash();
            }
            self.forget(exit);
        }
    }

    /// The worker that went, out of the pool: what it still said read,
    /// the connections still queued for it taken back, its slot freed.
    fn forget(&mut self, exit: Exit) {
        let Exit { pid, how, clean } = exit;
        let Some(slot) = self.pids.remove(&pid) else {
            return;
        };
        // What it said before it went (a connection handed back on its way
        // out) still counts.
        self.read_channel(slot);
        let Some(mut w) = self.workers[slot].take() else {
            return;
        };
        let _ = self.epoll.delete(w.channel.as_fd());
        if !self.workers_told {
            for conn in w.channel.take_unsent() {
                self.dispatcher.adopt(&self.epoll, conn);
            }
        }
        let generation = self.board.slot(slot).generation();
        self.board.free_slot(slot);
        if self.stopping.is_some() {
            log::debug!("worker {pid} {how}");
            return;
        }
        if generation != self.board.generation() {
            log::info!("worker {pid} of generation {generation} {how}");
            return;
        }
        if clean {
            log::info!("worker {pid} {how}");
        } else {
            log::warn!("worker {pid} {how}; replacing it");
        }
        self.quick_deaths = quick_deaths_after(self.quick_deaths, clean, w.born.elapsed());
    }

    /// Brings the pool back to its size, slowing down when workers keep
    /// dying right after they start (a broken preload, a crash at init).
    pub(super) fn fill(&mut self) -> anyhow::Result<()> {
        if let Some(pause) =
            restart_pause(self.quick_deaths).filter(|_| self.serving() < self.target)
        {
            log::warn!(
                "workers keep dying at start; waiting {} ms before the next one",
                pause.as_millis()
            );
            std::thread::sleep(pause);
        }
        while self.serving() < self.target {
            self.spawn()?;
        }
        Ok(())
    }
}

/// A worker that exited: its pid, how it went (for the log), and whether
/// it left cleanly (status 0); any other end counts as a crash.
#[derive(Debug, PartialEq, Eq)]
struct Exit {
    pid: Pid,
    how: String,
    clean: bool,
}

impl Exit {
    /// None for a status that is not an end (stopped, continued).
    fn of(status: WaitStatus) -> Option<Exit> {
        match status {
            WaitStatus::Exited(pid, code) => Some(Exit {
                pid,
                how: format!("exited with status {code}"),
                clean: code == 0,
            }),
            WaitStatus::Signaled(pid, signal, _) => Some(Exit {
                pid,
                how: format!("killed by {}", signal.as_str()),
                clean: false,
            }),
            _ => None,
        }
    }
}

/// Workers in a row that died within a second of their start, once one
/// more went after `lived`: a clean exit or a longer life starts again
/// from 0.
fn quick_deaths_after(count: u32, clean: bool, lived: Duration) -> u32 {
    if !clean && lived < Duration::from_secs(1) {
        count + 1
    } else {
        0
    }
}

/// The brake on a restart storm: after three quick deaths in a row, the
/// next fork waits 200 ms a death, 5 s at most.
fn restart_pause(quick_deaths: u32) -> Option<Duration> {
    (quick_deaths >= 3).then(|| Duration::from_millis(200 * u64::from(quick_deaths.min(25))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_says_how_and_only_status_zero_is_clean() {
        let pid = Pid::from_raw(42);
        let exit = |status| Exit::of(status).map(|e| (e.how, e.clean));
        assert_eq!(
            exit(WaitStatus::Exited(pid, 0)),
            Some(("exited with status 0".to_string(), true))
        );
        assert_eq!(
            exit(WaitStatus::Exited(pid, 3)),
            Some(("exited with status 3".to_string(), false))
        );
        assert_eq!(
            exit(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(("killed by SIGKILL".to_string(), false))
        );
        assert_eq!(exit(WaitStatus::Stopped(pid, Signal::SIGSTOP)), None);
        assert_eq!(exit(WaitStatus::Continued(pid)), None);
    }

    #[test]
    fn only_crashes_right_after_the_start_add_up() {
        let young = Duration::from_millis(300);
        let old = Duration::from_secs(2);
        assert_eq!(quick_deaths_after(2, false, young), 3);
        assert_eq!(quick_deaths_after(2, true, young), 0, "a clean exit");
        assert_eq!(quick_deaths_after(2, false, old), 0, "it served a while");
    }

    #[test]
    fn the_brake_starts_at_the_third_quick_death_and_stops_growing_at_5_s() {
        assert_eq!(restart_pause(0), None);
        assert_eq!(restart_pause(2), None);
        assert_eq!(restart_pause(3), Some(Duration::from_millis(600)));
        assert_eq!(restart_pause(25), Some(Duration::from_secs(5)));
        assert_eq!(restart_pause(1000), Some(Duration::from_secs(5)));
    }
}
