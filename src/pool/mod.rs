//! The worker pool, run by the master once Perl is loaded: forks the
//! workers, keeps the pool at its size (replacing workers that exit or
//! crash, with a brake on restart storms), dispatches the requests that
//! arrive on connections no worker holds, and stops the pool.
//!
//! The master has one thread and never starts another (workers are forked
//! from it). Its loop (here) waits in `epoll` on: a signalfd (the signals
//! it handles stay blocked, so no handler ever runs, least of all while it
//! forks), one channel per worker (`dispatch::channel`), and the
//! connections workers handed back (`dispatch::Dispatcher`). Workers are
//! told to stop over their channel and their scoreboard slot, never with a
//! signal a running script would see; only a fast stop, a grace time
//! running out or a worker that does not leave get `SIGKILL`. Workers die
//! with the master (`PR_SET_PDEATHSIG`), see `children::spawn`.
//!
//! One concern a file, as php-fpm's `fpm_children.c` and
//! `fpm_process_ctl.c`: `children` forks, reaps and replaces workers;
//! `size` keeps the pool at its size (TTIN/TTOU, a dynamic pool's
//! `sizing` policy, the all-busy warning); `channels` the messages to and
//! from workers and the dispatch of ready requests; `stop` the graceful
//! and the fast stop; `generation` a reload (SIGHUP), which replaces the
//! interpreter and the workers by a new generation.

mod channels;
mod children;
mod generation;
mod size;
mod stop;

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::config::Config;
use crate::dispatch::channel::Channel;
use crate::dispatch::dispatcher::{Dispatcher, CONN_TOKEN_BASE};
use crate::dispatch::ready::ReadyQueue;
use crate::fastcgi::preamble::PreambleSettings;
use crate::fastcgi::Limits;
use crate::listen::Listener;
use crate::notify::Notifier;
use crate::perl::Interpreter;
use crate::reload::Reloader;
use crate::scoreboard::{Scoreboard, SLOTS};
use crate::signals;
use crate::sizing::Sizer;

const TOKEN_SIGNALS: u64 = 0;
/// Worker channels: this + the worker's slot.
const TOKEN_CHANNEL_BASE: u64 = 1;

pub struct Pool<'a> {
    /// The current generation's interpreter. Never dropped: global
    /// destruction would run the preloaded modules' END blocks, and the
    /// master has nothing to clean up in Perl.
    perl: ManuallyDrop<Interpreter>,
    listener: &'a Listener,
    cfg: Config,
    reloader: Reloader,
    notifier: Option<Notifier>,
    /// A reload's new workers are starting; the old ones leave once they
    /// serve.
    handover: Option<generation::Handover>,
    board: Scoreboard,
    /// Ready requests, for whichever worker is free first.
    ready: ReadyQueue,
    epoll: Epoll,
    signals: SignalFd,
    dispatcher: Dispatcher,
    /// By scoreboard slot.
    workers: Vec<Option<Worker>>,
    pids: HashMap<Pid, usize>,
    target: usize,
    quick_deaths: u32,
    /// Set once a stop began: the time by which workers must be gone.
    stopping: Option<Instant>,
    /// A graceful stop has served what had arrived (see `begin_stop`) and
    /// told every worker to leave; nothing is dispatched any more.
    workers_told: bool,
    last_busy_warning: Option<Instant>,
    /// The pool's size policy (`sizing`; a static pool's only samples).
    sizer: Sizer,
}

struct Worker {
    pid: Pid,
    born: Instant,
    channel: Channel,
    /// Told to leave (TTOU, reload): not given requests any more.
    leaving: bool,
    /// Of an old generation: killed if still there then.
    drain_by: Option<Instant>,
    /// Told the pool stops, and has not yet handed back what it holds
    /// (`Message::Stopping`).
    owes_hand_back: bool,
}

/// What the master's watcher of handed-back connections takes from the
/// configuration.
fn dispatcher_settings(cfg: &Config) -> (PreambleSettings, Duration) {
    let limits = Limits {
        max_body: cfg.max_body,
        spill_threshold: cfg.body_spill,
        ..Limits::default()
    };
    let max_conns = cfg.workers.max(1);
    (
        PreambleSettings::new(limits, max_conns, max_conns),
        cfg.idle_timeout(),
    )
}

impl<'a> Pool<'a> {
    pub fn new(
        perl: Interpreter,
        listener: &'a Listener,
        cfg: Config,
        reloader: Reloader,
        notifier: Option<Notifier>,
    ) -> anyhow::Result<Pool<'a>> {
        let set = signals::master_set();
        signals::block(&set)?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("cannot create a signalfd")?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("cannot create epoll")?;
        epoll.add(
            signals.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNALS),
        )?;
        let (settings, idle_timeout) = dispatcher_settings(&cfg);
        let target = cfg.dynamic.map_or(cfg.workers, |d| d.start_workers);
        let sizer = Sizer::new(cfg.dynamic);
        crate::served::map().context("cannot map the table of scripts served")?;
        Ok(Pool {
            perl: ManuallyDrop::new(perl),
            listener,
            cfg,
            reloader,
            notifier,
            handover: None,
            board: Scoreboard::new().context("cannot map the scoreboard")?,
            ready: ReadyQueue::new().context("cannot create the ready queue")?,
            epoll,
            signals,
            dispatcher: Dispatcher::new(settings, idle_timeout),
            workers: Vec::new(),
            pids: HashMap::new(),
            target,
            quick_deaths: 0,
            stopping: None,
            workers_told: false,
            last_busy_warning: None,
            sizer,
        })
    }

    pub fn run(mut self, started: Instant) -> anyhow::Result<()> {
        self.board.set_generation(1);
        for _ in 0..self.target {
            self.spawn()?;
        }
        log::info!(
            "ready: {} workers serving on {} (started in {} ms, generation {})",
            self.target,
            self.listener.describe(),
            started.elapsed().as_millis(),
            self.board.generation()
        );
        if let Some(n) = &self.notifier {
            n.ready(&format!("{} workers serving, generation 1", self.target));
        }
        crate::detach::ready();
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let now = Instant::now();
            let mut wake = now + Duration::from_secs(1);
            if let Some(deadline) = self.dispatcher.expire(&self.epoll, now) {
                wake = wake.min(deadline);
            }
            if let Some(deadline) = self.hand_over(now, false) {
                wake = wake.min(deadline);
            }
            if let Some(deadline) = self.drain_overdue(now) {
                wake = wake.min(deadline);
            }
            if let Some(deadline) = self.stopping {
                if !self.workers_told && self.drained() {
                    self.tell_all_to_leave();
                }
                if self.pids.is_empty() {
                    break;
                }
                if now >= deadline {
                    self.kill_remaining();
                    break;
                }
                wake = wake.min(deadline);
            }
            let timeout = EpollTimeout::try_from(wake.saturating_duration_since(now))
                .unwrap_or(EpollTimeout::NONE);
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(e).context("epoll_wait failed"),
            };
            for event in &events[..n] {
                match event.data() {
                    TOKEN_SIGNALS => self.on_signals()?,
                    _ => self.on_event(event),
                }
            }
            self.dispatch();
            if self.stopping.is_none() {
                self.resize();
                self.fill()?;
            }
        }
        log::info!(
            "stopped (most workers busy at once: {}; slow requests: {})",
            self.board.max_active(),
            self.board.slow_requests()
        );
        Ok(())
    }

    /// A connection the master watches, or a worker's channel.
    fn on_event(&mut self, event: &EpollEvent) {
        match event.data() {
            token if token >= CONN_TOKEN_BASE => self.dispatcher.readable(&self.epoll, token),
            token => self.on_channel((token - TOKEN_CHANNEL_BASE) as usize, event.events()),
        }
    }

    fn on_signals(&mut self) -> anyhow::Result<()> {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match Command::of(signal, self.stopping.is_some(), self.target) {
                Command::StopGracefully => {
                    log::info!("{}: stopping gracefully", signal.as_str());
                    self.begin_stop(Duration::from_secs(self.cfg.grace_time));
                }
                Command::StopNow => {
                    log::info!("SIGQUIT: stopping now");
                    self.begin_stop(Duration::ZERO);
                }
                Command::Grow => {
                    self.target += 1;
                    log::info!("SIGTTIN: pool size {}", self.target);
                }
                Command::Shrink => {
                    self.target -= 1;
                    log::info!("SIGTTOU: pool size {}", self.target);
                    self.retire_one();
                }
                Command::ReopenLogs => {
                    self.board.ask_reopen();
                    crate::signals::reopen_logs();
                }
                Command::Reload => self.reload(),
                Command::Reap => self.reap(),
                Command::Nothing => {}
            }
        }
        Ok(())
    }
}

/// What a signal to the master asks of the pool (the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// TERM, INT: serve what arrived, then leave (`stop`).
    StopGracefully,
    /// QUIT: kill the workers now.
    StopNow,
    /// TTIN: one worker more.
    Grow,
    /// TTOU: one worker fewer.
    Shrink,
    /// USR1: the logs are opened again (after logrotate).
    ReopenLogs,
    /// HUP: a new generation (`generation`).
    Reload,
    /// CHLD: a worker exited.
    Reap,
    Nothing,
}

impl Command {
    /// `signal`'s command for a pool of `target` workers: once a stop has
    /// begun only QUIT, USR1 and CHLD still do something; the pool's size
    /// stays between 1 and the scoreboard's slots.
    fn of(signal: Signal, stopping: bool, target: usize) -> Command {
        match signal {
            Signal::SIGTERM | Signal::SIGINT if !stopping => Command::StopGracefully,
            Signal::SIGQUIT => Command::StopNow,
            Signal::SIGTTIN if !stopping && target < SLOTS => Command::Grow,
            Signal::SIGTTOU if !stopping && target > 1 => Command::Shrink,
            Signal::SIGUSR1 => Command::ReopenLogs,
            Signal::SIGHUP if !stopping => Command::Reload,
            Signal::SIGCHLD => Command::Reap,
            _ => Command::Nothing,
        }
    }
}

/// Something waits on `fd` (a listening socket's backlog, a queue's
/// messages); never blocks.
fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_that_began_ignores_all_but_quit_usr1_and_chld() {
        use Signal::*;
        let running: Vec<Command> = [SIGTERM, SIGINT, SIGQUIT, SIGTTIN, SIGTTOU, SIGUSR1, SIGHUP]
            .into_iter()
            .map(|s| Command::of(s, false, 4))
            .collect();
        assert_eq!(
            running,
            [
                Command::StopGracefully,
                Command::StopGracefully,
                Command::StopNow,
                Command::Grow,
                Command::Shrink,
                Command::ReopenLogs,
                Command::Reload
            ]
        );
        for (signal, command) in [
            (SIGTERM, Command::Nothing),
            (SIGINT, Command::Nothing),
            (SIGHUP, Command::Nothing),
            (SIGTTIN, Command::Nothing),
            (SIGTTOU, Command::Nothing),
            (SIGQUIT, Command::StopNow),
            (SIGUSR1, Command::ReopenLogs),
            (SIGCHLD, Command::Reap),
        ] {
            assert_eq!(
                Command::of(signal, true, 4),
                command,
                "{signal} while stopping"
            );
        }
        assert_eq!(Command::of(SIGPIPE, false, 4), Command::Nothing);
    }

    #[test]
    fn the_size_stays_between_one_and_the_slots() {
        assert_eq!(Command::of(Signal::SIGTTOU, false, 1), Command::Nothing);
        assert_eq!(Command::of(Signal::SIGTTOU, false, 2), Command::Shrink);
        assert_eq!(Command::of(Signal::SIGTTIN, false, SLOTS), Command::Nothing);
        assert_eq!(
            Command::of(Signal::SIGTTIN, false, SLOTS - 1),
            Command::Grow
        );
    }
}
