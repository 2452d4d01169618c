//! The master's side of the workers' channels: messages to a worker (a
//! request assigned, told to leave) queued without blocking, the
//! messages workers send (connections handed back, idle, handed back at a
//! stop), and the dispatch of the ready requests the master holds, to the
//! kernel's ready queue first, then to idle workers directly.

use std::os::fd::AsFd;

use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::signal::{kill, Signal};

use super::{Pool, TOKEN_CHANNEL_BASE};
use crate::dispatch::channel::Message;
use crate::scoreboard::WorkerState;

impl Pool<'_> {
    pub(super) fn tell_to_leave(&mut self, slot: usize) {
        self.board.slot(slot).request_stop();
        if let Some(w) = self.workers[slot].as_mut() {
            w.leaving = true;
        }
        self.send(slot, Message::Stop);
    }

    pub(super) fn send(&mut self, slot: usize, msg: Message) {
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
    pub(super) fn watch_channel(&self, slot: usize) {
        if let Some(w) = &self.workers[slot] {
            let mut flags = EpollFlags::EPOLLIN;
            if w.channel.wants_write() {
                flags |= EpollFlags::EPOLLOUT;
            }
            let mut event = EpollEvent::new(flags, TOKEN_CHANNEL_BASE + slot as u64);
            let _ = self.epoll.modify(w.channel.as_fd(), &mut event);
        }
    }

    pub(super) fn on_channel(&mut self, slot: usize, flags: EpollFlags) {
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
    pub(super) fn read_channel(&mut self, slot: usize) {
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

    pub(super) fn on_message(&mut self, slot: usize, msg: Message) {
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
    pub(super) fn dispatch(&mut self) {
        if self.workers_told {
            return;
        }
        while let Some(conn) = self.dispatcher.pop_ready() {
            if let Err(conn) = self.ready.push(conn) {
                self.dispatcher.unpop(conn);
                break;
            }
            self.board.count_ready_pushed();
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
}
