//! Stopping the pool. Graceful (TERM, INT): what already arrived is
//! served, kept connections are handed back and said goodbye on, then
//! every worker is told to leave after its request, and what is left
//! after `grace_time` is killed. Fast (QUIT): every worker killed at once.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;

use super::{readable, Pool};
use crate::dispatch::channel::{Conn, Message};
use crate::listen::Listener;

/// At a graceful stop, how long a connection whose request has not fully
/// arrived may take to send the rest (a web server sends a request's
/// header and params at once; an idle kept connection is closed then).
const ARRIVAL_AT_STOP: Duration = Duration::from_secs(1);

impl Pool<'_> {
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
    pub(super) fn begin_stop(&mut self, grace: Duration) {
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
    pub(super) fn accept_queued(&mut self) {
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
    pub(super) fn drained(&self) -> bool {
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

    pub(super) fn tell_all_to_leave(&mut self) {
        self.workers_told = true;
        let slots: Vec<usize> = self.pids.values().copied().collect();
        for slot in slots {
            self.tell_to_leave(slot);
        }
    }

    /// The grace time is over: kill what is left and wait for it.
    pub(super) fn kill_remaining(&mut self) {
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
