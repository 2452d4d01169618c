//! The worker pool, run by the master once Perl is loaded: forks the
//! workers, keeps the pool at its size (replacing workers that exit or
//! crash, with a brake on restart storms), dispatches the requests that
//! arrive on connections no worker holds, and stops the pool.
//!
//! The master has one thread and never starts another (workers are forked
//! from it). Its loop waits in `epoll` on: a signalfd (the signals it
//! handles stay blocked, so no handler ever runs, least of all while it
//! forks), one channel per worker (`dispatch::channel`), and the connections
//! workers handed back (`dispatch::Dispatcher`). Workers are told to stop
//! over their channel and their scoreboard slot, never with a signal a
//! running script would see; only a fast stop, a grace time running out or
//! a worker that does not leave get `SIGKILL`. Workers die with the master
//! (`PR_SET_PDEATHSIG`), see [`Pool::spawn`]. A reload (SIGHUP) replaces
//! the interpreter and the workers by a new generation (`generation`).

mod generation;

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::config::Config;
use crate::dispatch::channel::{Channel, Conn, Message};
use crate::dispatch::dispatcher::{Dispatcher, CONN_TOKEN_BASE};
use crate::dispatch::ready::ReadyQueue;
use crate::fastcgi::preamble::PreambleSettings;
use crate::fastcgi::Limits;
use crate::listen::Listener;
use crate::notify::Notifier;
use crate::perl::Interpreter;
use crate::reload::Reloader;
use crate::scoreboard::{Scoreboard, WorkerState, SLOTS};
use crate::sizing::{Action, Counts, Sizer};
use crate::{signals, worker};

const TOKEN_SIGNALS: u64 = 0;
/// At a graceful stop, how long a connection whose request has not fully
/// arrived may take to send the rest (a web server sends a request's
/// header and params at once; an idle kept connection is closed then).
const ARRIVAL_AT_STOP: Duration = Duration::from_secs(1);
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

    /// Forks one worker into a free scoreboard slot. The child never
    /// returns from here.
    fn spawn(&mut self) -> anyhow::Result<()> {
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
                // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on
                // this process.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
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

    fn on_signals(&mut self) -> anyhow::Result<()> {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match signal {
                Signal::SIGTERM | Signal::SIGINT if self.stopping.is_none() => {
                    log::info!("{}: stopping gracefully", signal.as_str());
                    self.begin_stop(Duration::from_secs(self.cfg.grace_time));
                }
                Signal::SIGQUIT => {
                    log::info!("SIGQUIT: stopping now");
                    self.begin_stop(Duration::ZERO);
                }
                Signal::SIGTTIN if self.stopping.is_none() && self.target < SLOTS => {
                    self.target += 1;
                    log::info!("SIGTTIN: pool size {}", self.target);
                }
                Signal::SIGTTOU if self.stopping.is_none() && self.target > 1 => {
                    self.target -= 1;
                    log::info!("SIGTTOU: pool size {}", self.target);
                    self.retire_one();
                }
                Signal::SIGUSR1 => {
                    self.board.ask_reopen();
                    crate::log::reopen_on_usr1();
                }
                Signal::SIGHUP if self.stopping.is_none() => self.reload(),
                Signal::SIGCHLD => self.reap(),
                _ => {}
            }
        }
        Ok(())
    }

    /// Stop accepting, serve what already arrived, then ask every worker to
    /// leave once its request (if any) is done; `grace` later, what is
    /// left is killed. A fast stop (`grace` zero) kills at once.
    ///
    /// What already arrived is served, not reset: a web server that sent a
    /// request does not retry it elsewhere unless it is idempotent (nginx
    /// `fastcgi_next_upstream`), so a POST lost here would be an error
    /// page. That is: connections the kernel queued on our socket (the
    /// master accepts them before it closes it), requests queued for the
    /// workers, and connections with part of a request. A connection whose
    /// request has not fully arrived (an idle kept one, a new one, a
    /// stalled one) gets a second more (`Dispatcher::hurry`).
    fn begin_stop(&mut self, grace: Duration) {
        self.stopping = Some(Instant::now() + grace);
        if let Some(n) = &self.notifier {
            n.stopping();
        }
        if grace.is_zero() {
            self.workers_told = true;
            self.dispatcher.close_all(&self.epoll);
            self.board.set_queued(0);
            for w in self.workers.iter().flatten() {
                let _ = kill(w.pid, Signal::SIGKILL);
            }
            return;
        }
        self.dispatcher.hurry(ARRIVAL_AT_STOP);
        // Workers no longer accept: the master takes what is queued, and
        // the kept connections they hold, to say goodbye on them.
        self.board.stop_listening();
        for slot in 0..self.workers.len() {
            if let Some(w) = self.workers[slot].as_mut() {
                w.owes_hand_back = true;
                self.send(slot, Message::Stopping);
            }
        }
        if self.cfg.listen.is_some() {
            // No new connection on a UNIX socket from here (nginx tries
            // the next server); then the ones already queued are taken,
            // and the socket closed for every process.
            self.listener.remove_socket_file();
            self.accept_queued();
            self.listener.stop_listening();
        }
        // An inherited socket stays open (systemd holds what queues on it
        // for the next start).
    }

    /// At a stop: the connections queued on the listening socket, into the
    /// dispatcher, which hands their requests to workers as usual.
    fn accept_queued(&mut self) {
        let tcp = matches!(self.listener, Listener::Tcp(_));
        let mut taken = 0;
        loop {
            match self.listener.accept() {
                Ok(stream) => {
                    taken += 1;
                    let conn = Conn {
                        fd: stream.into(),
                        tcp,
                        input: Vec::new(),
                        idle: Duration::ZERO,
                        kept: None,
                    };
                    self.dispatcher.adopt(&self.epoll, conn);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if taken > 0 {
            log::info!("stopping: serving {taken} connection(s) that were queued on the socket");
        }
    }

    /// Nothing that arrived before the stop waits any more: no connection
    /// in the master or held by a worker, none queued for the workers.
    fn drained(&self) -> bool {
        self.dispatcher.is_empty()
            && !self.workers.iter().flatten().any(|w| w.owes_hand_back)
            && self.board.queued() == 0
            && !readable(self.ready.rx())
            && !self
                .workers
                .iter()
                .flatten()
                .any(|w| w.channel.wants_write())
    }

    fn tell_all_to_leave(&mut self) {
        self.workers_told = true;
        let slots: Vec<usize> = self.pids.values().copied().collect();
        for slot in slots {
            self.tell_to_leave(slot);
        }
    }

    /// One worker fewer (TTOU): an idle one if there is one.
    fn retire_one(&mut self) {
        let candidates: Vec<usize> = (0..self.workers.len())
            .filter(|&slot| self.is_serving(slot))
            .collect();
        let pick = candidates
            .iter()
            .copied()
            .find(|&s| self.board.slot(s).state() == WorkerState::Idle)
            .or(candidates.first().copied());
        if let Some(slot) = pick {
            self.tell_to_leave(slot);
        }
    }

    fn tell_to_leave(&mut self, slot: usize) {
        self.board.slot(slot).request_stop();
        if let Some(w) = self.workers[slot].as_mut() {
            w.leaving = true;
        }
        self.send(slot, Message::Stop);
    }

    fn send(&mut self, slot: usize, msg: Message) {
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        match w.channel.send(msg) {
            Ok(()) => {}
            // The worker is gone; the reaper will say so.
            Err(e) => log::debug!("worker {}: channel: {e}", w.pid),
        }
        self.watch_channel(slot);
    }

    /// Epoll interest of a channel: writable too while messages wait.
    fn watch_channel(&self, slot: usize) {
        if let Some(w) = &self.workers[slot] {
            let mut flags = EpollFlags::EPOLLIN;
            if w.channel.wants_write() {
                flags |= EpollFlags::EPOLLOUT;
            }
            let mut event = EpollEvent::new(flags, TOKEN_CHANNEL_BASE + slot as u64);
            let _ = self.epoll.modify(w.channel.as_fd(), &mut event);
        }
    }

    fn on_channel(&mut self, slot: usize, flags: EpollFlags) {
        let Some(w) = self.workers.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if flags.contains(EpollFlags::EPOLLOUT) {
            let _ = w.channel.flush();
            self.watch_channel(slot);
        }
        if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            self.read_channel(slot);
        }
    }

    /// Takes every message the worker sent. At end of file (the worker
    /// exited) the channel leaves epoll; the reaper forgets the worker.
    fn read_channel(&mut self, slot: usize) {
        loop {
            let Some(w) = self.workers.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let received = w.channel.receive();
            let mut messages = Vec::new();
            loop {
                match w.channel.next_message() {
                    Ok(Some(msg)) => messages.push(msg),
                    Ok(None) => break,
                    Err(e) => {
                        log::error!("worker {}: {e}; stopping it", w.pid);
                        let _ = kill(w.pid, Signal::SIGKILL);
                        break;
                    }
                }
            }
            for msg in messages {
                self.on_message(slot, msg);
            }
            match received {
                Ok(true) => {}
                Ok(false) => {
                    if let Some(w) = &self.workers[slot] {
                        let _ = self.epoll.delete(w.channel.as_fd());
                    }
                    return;
                }
                Err(_) => return,
            }
        }
    }

    fn on_message(&mut self, slot: usize, msg: Message) {
        match msg {
            Message::HandBack { conn } => {
                if !self.workers_told {
                    self.dispatcher.adopt(&self.epoll, conn);
                }
            }
            Message::Idle => {
                let state = self.board.slot(slot);
                if self.workers_told {
                    return;
                }
                if self.dispatcher.ready_len() > 0
                    && state.claim(WorkerState::Idle, WorkerState::Assigned)
                {
                    let conn = self.dispatcher.pop_ready().expect("a ready connection");
                    self.send(slot, Message::Assign { conn });
                } else if state.state() == WorkerState::Idle {
                    self.send(slot, Message::NoWork);
                }
                // Assigned already: that request is the answer.
            }
            Message::HandedBack => {
                if let Some(w) = self.workers[slot].as_mut() {
                    w.owes_hand_back = false;
                }
            }
            other => log::warn!("unexpected message from a worker: {other:?}"),
        }
    }

    /// Ready requests go to the kernel's ready queue, oldest first, for
    /// whichever worker is free first; what does not fit there goes to idle
    /// workers directly. The length of what is left is published before
    /// looking for idle workers (see `scoreboard`).
    fn dispatch(&mut self) {
        if self.workers_told {
            return;
        }
        while let Some(conn) = self.dispatcher.pop_ready() {
            if let Err(conn) = self.ready.push(conn) {
                self.dispatcher.unpop(conn);
                break;
            }
        }
        if self.dispatcher.ready_len() == 0 {
            // A stale count would make every idle worker ask for nothing.
            if self.board.queued() != 0 {
                self.board.set_queued(0);
            }
            return;
        }
        self.board.set_queued(self.dispatcher.ready_len());
        while self.dispatcher.ready_len() > 0 {
            let idle = (0..self.workers.len()).find(|&slot| {
                self.workers[slot].as_ref().is_some_and(|w| !w.leaving)
                    && self
                        .board
                        .slot(slot)
                        .claim(WorkerState::Idle, WorkerState::Assigned)
            });
            let Some(slot) = idle else {
                self.warn_all_busy();
                break;
            };
            let conn = self.dispatcher.pop_ready().expect("a ready connection");
            self.send(slot, Message::Assign { conn });
        }
        self.board.set_queued(self.dispatcher.ready_len());
    }

    fn warn_all_busy(&mut self) {
        let busy = self.counts().busy;
        self.board.record_active(busy);
        let key = match self.sizer.settings() {
            None => "workers",
            // Below max_workers the pool grows (`resize`): nothing to raise.
            Some(dynamic) if busy < dynamic.max_workers => return,
            Some(_) => "max_workers",
        };
        let now = Instant::now();
        if self
            .last_busy_warning
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            return;
        }
        self.last_busy_warning = Some(now);
        let queued = self.dispatcher.ready_len();
        let mut waiting: Vec<String> = Vec::new();
        if queued > 0 {
            waiting.push(format!("{queued} in the master's queue"));
        }
        for (fd, name) in [
            (self.ready.rx(), "the ready queue"),
            (self.listener.as_fd(), "the listen backlog"),
        ] {
            if readable(fd) {
                waiting.push(format!("some in {name}"));
            }
        }
        let waiting = match waiting.is_empty() {
            true => String::new(),
            false => format!("; requests wait: {}", waiting.join(", ")),
        };
        log::warn!("all {busy} workers are busy{waiting} (raise {key} if this lasts)");
    }

    /// Once a second: the busy workers counted (`max_active`) and, for a
    /// dynamic pool, what `sizing` says done. The workers it starts, `fill`
    /// forks; one it retires leaves between requests, told over its
    /// channel.
    fn resize(&mut self) {
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
    fn staying(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.workers.len()).filter(|&s| self.is_serving(s))
    }

    /// The staying workers by what they do.
    fn counts(&self) -> Counts {
        Counts::of(self.staying().map(|s| self.board.slot(s).state()))
    }

    /// Collects exited workers and says why they went.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    if code != 0 && self.pids.contains_key(&pid) {
                        self.board.count_crash();
                    }
                    self.forget(pid, &format!("exited with status {code}"), code == 0)
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    if self.pids.contains_key(&pid) {
                        self.board.count_crash();
                    }
                    self.forget(pid, &format!("killed by {}", sig.as_str()), false)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    }

    fn forget(&mut self, pid: Pid, how: &str, clean: bool) {
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
        if !clean && w.born.elapsed() < Duration::from_secs(1) {
            self.quick_deaths += 1;
        } else {
            self.quick_deaths = 0;
        }
    }

    /// Brings the pool back to its size, slowing down when workers keep
    /// dying right after they start (a broken preload, a crash at init).
    fn fill(&mut self) -> anyhow::Result<()> {
        if self.serving() < self.target && self.quick_deaths >= 3 {
            let pause = Duration::from_millis(200 * u64::from(self.quick_deaths.min(25)));
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

    /// Workers of the current generation not told to leave.
    fn serving(&self) -> usize {
        (0..self.workers.len())
            .filter(|&slot| self.is_serving(slot))
            .count()
    }

    /// The slot holds a worker of the current generation, not told to
    /// leave.
    fn is_serving(&self, slot: usize) -> bool {
        self.workers[slot].as_ref().is_some_and(|w| !w.leaving)
            && self.board.slot(slot).generation() == self.board.generation()
    }

    /// The grace time is over: kill what is left and wait for it.
    fn kill_remaining(&mut self) {
        log::warn!(
            "{} workers still busy after {} s; killing them",
            self.pids.len(),
            self.cfg.grace_time
        );
        for pid in self.pids.keys() {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        while !self.pids.is_empty() {
            match waitpid(None, None) {
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.pids.remove(&pid);
                    }
                }
                Err(_) => break,
            }
        }
    }
}

/// Something waits on `fd` (a listening socket's backlog, a queue's
/// messages); never blocks.
fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0)
}
