//! A worker between requests: what it watches, and how it takes its next
//! request without ever keeping one waiting.
//!
//! An idle worker polls its channel from the master, the shared listening
//! socket, the master's ready queue (`dispatch::ready`), and the few
//! connections it holds (its last request's kept
//! connection, new ones whose request has not fully arrived). It reads
//! those without blocking until a request is ready (see
//! `fastcgi::preamble`), then claims it by moving its scoreboard slot from
//! `Idle` to `Busy`. The other connections it holds wait, parked, for the
//! end of that request (`parked`), except a request already there while
//! another worker is idle, which goes to the ready queue; if the request
//! lasts, the pump thread hands them all back to the master, so no request
//! waits long behind it. If the master moved the slot to `Assigned` first,
//! the master's request (arriving on the channel) is served instead and
//! the ready connection goes back with the others.
//!
//! A worker that turns idle first takes the oldest request from the ready
//! queue, if there is one (one non-blocking `recvmsg`, no round trip), and
//! accepts what waits in the listen backlog, to serve it in turn with the
//! connections it holds: new connections first, then the held ones in the
//! order it took them back. Requests that did not
//! fit in the kernel's queue stay in the master's; a worker that sees some
//! there asks for one (`Idle`) and waits for the answer. A kept connection
//! whose next request was read with its last one (a client that did not
//! wait for the answer) is ready without a poll saying so: the worker
//! serves it next, unless the ready queue had a request for it first.
//!
//! ARCHITECTURE.md tells the whole story.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::conn::{Conn, Readers};
use super::parked::Parked;
use crate::dispatch::channel::{Channel, Message};
use crate::dispatch::ready::ReadyQueue;
use crate::fastcgi::preamble::Filled;
use crate::fastcgi::preamble::{PreambleSettings, Scan};
use crate::fastcgi::Limits;
use crate::listen::{Listener, Stream};
use crate::page_buf::PageBuf;
use crate::scoreboard::{Scoreboard, Slot, WorkerState};
use crate::signals;

/// Connections an idle worker holds at most (kept or partial); beyond,
/// the oldest goes to the master, which can watch any number.
const MAX_HELD: usize = 8;

/// What an idle worker needs: the master's channel and scoreboard, the
/// listener, the limits requests are read with.
pub struct Idle<'a> {
    listener: &'a Listener,
    board: &'a Scoreboard,
    slot: usize,
    channel: Channel,
    ready: &'a ReadyQueue,
    ready_buf: PageBuf,
    held: Vec<Conn>,
    /// Where `held` waits while this worker serves a request.
    parked: Arc<Parked>,
    readers: Readers,
    settings: PreambleSettings,
    idle_timeout: Duration,
    allowed_peers: Option<Vec<std::net::IpAddr>>,
    scratch: PageBuf,
    /// The pool stops (`Message::Stopping`): kept connections go back to
    /// the master as soon as their response is done.
    pool_stopping: bool,
}

/// Why a worker stops taking requests.
#[derive(Debug, PartialEq, Eq)]
pub enum Leave {
    /// The master asked (graceful stop, fewer workers).
    Stop,
    /// The master is gone.
    MasterGone,
}

impl<'a> Idle<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        listener: &'a Listener,
        board: &'a Scoreboard,
        slot: usize,
        channel: Channel,
        ready: &'a ReadyQueue,
        limits: Limits,
        max_conns: usize,
        idle_timeout: Duration,
        allowed_peers: Option<Vec<std::net::IpAddr>>,
    ) -> io::Result<Idle<'a>> {
        Ok(Idle {
            parked: Arc::new(Parked::new(&channel)?),
            listener,
            board,
            slot,
            channel,
            ready,
            ready_buf: ReadyQueue::buffer(),
            held: Vec::new(),
            settings: PreambleSettings::new(limits.clone(), max_conns, max_conns),
            readers: Readers::new(limits, max_conns),
            idle_timeout,
            allowed_peers,
            scratch: PageBuf::zeroed(64 * 1024),
            pool_stopping: false,
        })
    }

    /// What the pump thread hands back when a request lasts (see
    /// `parked`).
    pub fn parked(&self) -> Arc<Parked> {
        Arc::clone(&self.parked)
    }

    fn slot(&self) -> &Slot {
        self.board.slot(self.slot)
    }

    fn stopping(&self) -> bool {
        self.slot().stop_requested() || signals::stop_requested()
    }

    /// Keeps a connection whose response is done (`FCGI_KEEP_CONN`). Bytes
    /// of its next request may have come before the answer (a client that
    /// does not wait for it): no poll will tell of them, so they are
    /// looked at now, and a request found ready is served in turn.
    pub fn keep(&mut self, conn: Conn) {
        self.parked.take_back(&mut self.held);
        let mut conn = self.readers.after_request(conn);
        if self.pool_stopping {
            // The master says goodbye on it, and serves what comes first.
            return self.hand_back(conn);
        }
        if !conn.is_idle() {
            match conn.scan(&self.settings) {
                Ok(Scan::Ready | Scan::Incomplete) => {}
                Ok(Scan::Close) => return self.readers.close(conn),
                Err(e) => {
                    log::warn!("closing connection: {e}");
                    return self.readers.close(conn);
                }
            }
        }
        self.held.push(conn);
    }

    /// The connections held between requests.
    pub fn held_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.held
            .iter()
            .map(|conn| std::os::fd::AsRawFd::as_raw_fd(&conn.as_fd()))
            .collect()
    }

    /// Closes a connection whose response is done.
    pub fn close(&mut self, conn: Conn) {
        self.parked.take_back(&mut self.held);
        self.readers.close(conn);
    }

    /// Waits for the next request this worker may serve, and claims it;
    /// Err(Leave) when the worker should exit instead.
    pub fn next_request(&mut self) -> Result<Conn, Leave> {
        if self.stopping() {
            return Err(Leave::Stop);
        }
        self.slot().set_state(WorkerState::Idle);
        // The counts say when there is nothing to take; the poll below
        // watches the queue in any case.
        let queued = (!self.board.ready_queue_empty())
            .then(|| self.pop_ready())
            .flatten();
        if let Some(conn) = queued {
            return self.take_queued(conn);
        }
        if self.board.queued() > 0 {
            if let Some(conn) = self.ask_for_queued()? {
                return Ok(conn);
            }
        }
        loop {
            if self.channel.has_message() {
                if let Some(conn) = self.on_message()? {
                    return Ok(conn);
                }
                continue;
            }
            if self.stopping() {
                return Err(Leave::Stop);
            }
            // A kept connection whose next request came with its last one.
            if let Some(index) = self.held.iter().position(Conn::is_ready) {
                let conn = self.held.remove(index);
                return self.claim(conn);
            }
            self.expire();
            let ready = self.poll()?;
            for &index in &ready.held {
                self.held[index].polled_readable = true;
            }
            if ready.queue {
                if let Some(conn) = self.pop_ready() {
                    return self.take_queued(conn);
                }
            }
            if ready.channel {
                match self.channel.receive() {
                    Ok(true) => {}
                    Ok(false) => return Err(Leave::MasterGone),
                    Err(e) => {
                        log::error!("reading from the master: {e}");
                        return Err(Leave::MasterGone);
                    }
                }
                continue;
            }
            // A new connection first: it has waited in the backlog since
            // its connect. Then those it holds in the order it took them
            // back (a connection served goes last): a worker kept busy by
            // the connections it holds (parked while it serves, see
            // `parked`) serves them in turn and gets to new ones, where
            // taking the newest first would serve one client for ever.
            if ready.listener {
                if let Some(conn) = self.accept() {
                    self.held.push(conn);
                    if let Some(conn) = self.check_held(self.held.len() - 1) {
                        return self.claim(conn);
                    }
                }
            }
            let mut closed = 0;
            for index in ready.held {
                let before = self.held.len();
                if let Some(conn) = self.check_held(index - closed) {
                    return self.claim(conn);
                }
                closed += before - self.held.len();
            }
            while self.held.len() > MAX_HELD {
                let oldest = self.held.remove(0);
                self.hand_back(oldest);
            }
        }
    }

    /// The worker leaves: nothing more is assigned to it, and the
    /// connections it holds go back to the master (a kept connection
    /// survives its worker's recycling).
    pub fn leave(&mut self) {
        self.parked.take_back(&mut self.held);
        if !self.slot().claim(WorkerState::Idle, WorkerState::Exiting) {
            // Assigned meanwhile: take that connection to hand it back.
            if self.slot().state() == WorkerState::Assigned {
                loop {
                    match self.channel.wait_message() {
                        Ok(Some(Message::Assign { conn })) => {
                            let conn = self.readers.open_received(conn);
                            self.held.push(conn);
                            break;
                        }
                        Ok(Some(Message::Stopping)) => self.answer_stopping(),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            self.slot().set_state(WorkerState::Exiting);
        }
        self.hand_back_all();
    }

    /// Requests wait in the master: ask for the oldest and wait for the
    /// answer (Ok(None): they were taken meanwhile).
    ///
    /// Connections waiting in the listen backlog go to the master's queue
    /// first: while requests are queued, idle workers ask the master rather
    /// than poll the listener, and a new connection (a web server opening
    /// one more, or replacing one after its `keepalive_requests`) would
    /// otherwise wait until the queue runs dry.
    fn ask_for_queued(&mut self) -> Result<Option<Conn>, Leave> {
        while self.held.len() < MAX_HELD {
            match self.accept() {
                Some(conn) => self.held.push(conn),
                None => break,
            }
        }
        // What it holds would go back anyway once it has the answer; it
        // goes in the same system call as the question.
        for conn in std::mem::take(&mut self.held) {
            let conn = self.readers.hand_over(conn);
            self.channel.queue(Message::HandBack { conn });
        }
        if let Err(e) = self.channel.send(Message::Idle) {
            log::error!("writing to the master: {e}");
            return Err(Leave::MasterGone);
        }
        loop {
            match self.channel.wait_message() {
                Ok(Some(Message::Assign { conn })) => return Ok(Some(self.start_assigned(conn)?)),
                Ok(Some(Message::NoWork)) => return Ok(None),
                Ok(Some(Message::Stop)) => return Err(Leave::Stop),
                Ok(Some(Message::Stopping)) => self.answer_stopping(),
                Ok(Some(other)) => log::warn!("unexpected message from the master: {other:?}"),
                Ok(None) => return Err(Leave::MasterGone),
                Err(e) => {
                    log::error!("reading from the master: {e}");
                    return Err(Leave::MasterGone);
                }
            }
        }
    }

    /// The oldest request in the master's ready queue, if any.
    fn pop_ready(&mut self) -> Option<crate::dispatch::channel::Conn> {
        match self.ready.pop(&mut self.ready_buf) {
            Ok(conn) => {
                if conn.is_some() {
                    self.board.count_ready_taken();
                }
                conn
            }
            Err(e) => {
                // A message was taken, unusable.
                self.board.count_ready_taken();
                log::warn!("{e}");
                None
            }
        }
    }

    /// A request from the ready queue: take it (as `claim` does, so an
    /// assignment from the master still comes first). Connections waiting
    /// in the listen backlog are accepted first and held with the others:
    /// while requests are queued, a worker finishing one takes from the
    /// queue and polls no listener, and new connections would otherwise
    /// wait until it runs dry. Parked with the others, a request on one
    /// goes to an idle worker, or to the master if this request lasts.
    fn take_queued(&mut self, conn: crate::dispatch::channel::Conn) -> Result<Conn, Leave> {
        while self.held.len() < MAX_HELD {
            match self.accept() {
                Some(conn) => self.held.push(conn),
                None => break,
            }
        }
        let mut conn = self.readers.open_received(conn);
        if let Err(e) = conn.scan(&self.settings) {
            log::warn!("closing connection: {e}");
        }
        self.claim(conn)
    }

    /// A message is buffered: act on it. Some(conn): serve it.
    fn on_message(&mut self) -> Result<Option<Conn>, Leave> {
        match self.channel.next_message() {
            Ok(Some(Message::Assign { conn })) => Ok(Some(self.start_assigned(conn)?)),
            Ok(Some(Message::Stop)) => Err(Leave::Stop),
            Ok(Some(Message::Stopping)) => {
                self.answer_stopping();
                Ok(None)
            }
            Ok(Some(Message::NoWork)) | Ok(None) => Ok(None),
            Ok(Some(other)) => {
                log::warn!("unexpected message from the master: {other:?}");
                Ok(None)
            }
            Err(e) => {
                log::error!("reading from the master: {e}");
                Err(Leave::MasterGone)
            }
        }
    }

    /// The master assigned a request: hand back what this worker holds and
    /// serve it.
    fn start_assigned(&mut self, conn: crate::dispatch::channel::Conn) -> Result<Conn, Leave> {
        self.slot().set_state(WorkerState::Busy);
        self.hand_back_all();
        let mut conn = self.readers.open_received(conn);
        // The master found it ready; this sets what the worker needs to
        // know of it (is its body all there?).
        if let Err(e) = conn.scan(&self.settings) {
            log::warn!("closing connection: {e}");
        }
        Ok(conn)
    }

    /// `conn` has a ready request: take it if the master did not pick this
    /// worker first.
    fn claim(&mut self, conn: Conn) -> Result<Conn, Leave> {
        if self.stopping() {
            self.held.push(conn);
            return Err(Leave::Stop);
        }
        if self.slot().claim(WorkerState::Idle, WorkerState::Busy) {
            self.park_held(&conn);
            return Ok(conn);
        }
        // Assigned: the master's request is on its way and comes first.
        self.held.push(conn);
        loop {
            match self.channel.wait_message() {
                Ok(Some(Message::Assign { conn })) => return self.start_assigned(conn),
                Ok(Some(Message::Stop)) => return Err(Leave::Stop),
                Ok(Some(Message::Stopping)) => self.answer_stopping(),
                Ok(Some(_)) => {}
                Ok(None) => return Err(Leave::MasterGone),
                Err(e) => {
                    log::error!("reading from the master: {e}");
                    return Err(Leave::MasterGone);
                }
            }
        }
    }

    fn hand_back(&mut self, conn: Conn) {
        let conn = self.readers.hand_over(conn);
        if let Err(e) = self.channel.send(Message::HandBack { conn }) {
            log::warn!("cannot hand a connection back to the master: {e}");
        }
    }

    /// Busy from now on (with `taken`): what it holds waits for the end of
    /// the request, parked, rather than move to the master and back (see
    /// `parked`). Requests already there go to a worker that is idle now,
    /// through the ready queue. A request whose body is still coming may
    /// take long before its script starts: what this worker holds goes
    /// back to the master at once, as it always went before parking.
    fn park_held(&mut self, taken: &Conn) {
        if self.held.is_empty() {
            return;
        }
        let master_busy = self.board.master_busy();
        if !taken.is_complete() && !master_busy {
            return self.hand_back_all();
        }
        if master_busy {
            self.pass_on_ready(usize::MAX, true);
        } else {
            let idle = self.board.idle_besides(self.slot);
            if idle > 0 {
                self.pass_on_ready(idle, false);
            }
        }
        self.parked.park(&mut self.held, !master_busy);
    }

    /// Held connections whose request has arrived (at most `limit`) go
    /// straight to the ready queue, for whichever worker is free first
    /// (while the master builds a reload it dispatches nothing, and every
    /// held connection is read; otherwise `limit` workers are idle, and
    /// only those the last poll found readable are read, with no poll of
    /// its own); the others stay here.
    fn pass_on_ready(&mut self, limit: usize, read_all: bool) {
        let mut passed = 0;
        let mut index = self.held.len();
        while index > 0 && passed < limit {
            index -= 1;
            let conn = &self.held[index];
            if !read_all && !conn.polled_readable && !conn.is_ready() {
                continue;
            }
            match self.check(index) {
                Check::Waiting => {}
                Check::Closed => {
                    let conn = self.held.remove(index);
                    self.readers.close(conn);
                }
                Check::Ready => {
                    passed += 1;
                    let conn = self.held.remove(index);
                    let conn = self.readers.hand_over(conn);
                    match self.ready.push(conn) {
                        Ok(()) => self.board.count_ready_pushed(),
                        // Full, or too large for one message: the master's
                        // way, once it is back.
                        Err(conn) => self.channel.queue(Message::HandBack { conn }),
                    }
                }
            }
        }
        if let Err(e) = self.channel.flush() {
            log::warn!("cannot hand a connection back to the master: {e}");
        }
    }

    /// The pool stops: what this worker holds goes back to the master,
    /// which says goodbye on the kept connections (see
    /// `Dispatcher::hurry`), and so will each kept one from now on. The
    /// answer tells the master it has them all.
    fn answer_stopping(&mut self) {
        self.pool_stopping = true;
        self.hand_back_all();
        if let Err(e) = self.channel.send(Message::HandedBack) {
            log::warn!("cannot answer the master's stop: {e}");
        }
    }

    /// Every connection it holds goes back to the master, in one system
    /// call.
    fn hand_back_all(&mut self) {
        if self.held.is_empty() {
            return;
        }
        for conn in std::mem::take(&mut self.held) {
            let conn = self.readers.hand_over(conn);
            self.channel.queue(Message::HandBack { conn });
        }
        if let Err(e) = self.channel.flush() {
            log::warn!("cannot hand connections back to the master: {e}");
        }
    }

    fn accept(&mut self) -> Option<Conn> {
        if self.board.listening_stopped() {
            return None;
        }
        let stream = match self.listener.accept() {
            Ok(stream) => stream,
            // Another worker took it, or a signal came.
            Err(e) if crate::dispatch::dispatcher::would_block(&e) => return None,
            Err(e) => {
                log::error!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                return None;
            }
        };
        if let (Some(allowed), Some(ip)) = (&self.allowed_peers, stream.peer_ip()) {
            if !allowed.contains(&ip) {
                log::warn!("refused connection from {ip}: not in FCGI_WEB_SERVER_ADDRS");
                return None;
            }
        }
        Some(self.readers.open(stream, Vec::new(), Duration::ZERO))
    }

    /// Reads what `held[index]` has; takes it out of the held ones when a
    /// request is ready (returned) or it closed.
    fn check_held(&mut self, index: usize) -> Option<Conn> {
        match self.check(index) {
            Check::Waiting => None,
            Check::Closed => {
                let conn = self.held.remove(index);
                self.readers.close(conn);
                None
            }
            Check::Ready => Some(self.held.remove(index)),
        }
    }

    /// Reads what `held[index]` has and says whether a request is ready.
    fn check(&mut self, index: usize) -> Check {
        let conn = &mut self.held[index];
        conn.polled_readable = false;
        if conn.is_ready() {
            return Check::Ready;
        }
        match conn.fill(&mut self.scratch) {
            Ok(Filled::Data { .. }) => {}
            Ok(Filled::Nothing) => return Check::Waiting,
            Ok(Filled::Eof) => {
                if !conn.is_idle() {
                    log::info!("the web server closed a connection in the middle of a request");
                }
                return Check::Closed;
            }
            Err(e) => {
                log::info!("closing connection: {e}");
                return Check::Closed;
            }
        }
        match conn.scan(&self.settings) {
            Ok(Scan::Incomplete) => Check::Waiting,
            Ok(Scan::Ready) => Check::Ready,
            Ok(Scan::Close) => Check::Closed,
            Err(e) => {
                log::warn!("closing connection: {e}");
                Check::Closed
            }
        }
    }

    /// Closes held connections idle or partial past `idle_timeout`.
    fn expire(&mut self) {
        let timeout = self.idle_timeout;
        let mut incomplete = 0;
        let mut index = 0;
        while index < self.held.len() {
            if self.held[index].since.elapsed() < timeout {
                index += 1;
                continue;
            }
            let conn = self.held.remove(index);
            incomplete += usize::from(!conn.is_idle());
            self.readers.close(conn);
        }
        if incomplete > 0 {
            log::info!(
                "closed {incomplete} connection(s) whose request did not arrive within {} s (idle_timeout)",
                timeout.as_secs()
            );
        }
    }

    fn poll(&mut self) -> Result<Ready, Leave> {
        let timeout = self
            .held
            .iter()
            .map(|c| (c.since + self.idle_timeout).saturating_duration_since(Instant::now()))
            .min()
            .map(|d| {
                PollTimeout::try_from(d.as_millis().min(60_000) as u32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            })
            .unwrap_or(PollTimeout::NONE);
        let mut fds = Vec::with_capacity(self.held.len() + 3);
        fds.push(PollFd::new(self.channel.as_fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(self.ready.rx(), PollFlags::POLLIN));
        // At a graceful stop the master takes what is queued on the socket
        // and closes it; a closed listener would poll ready for ever.
        let listening = !self.board.listening_stopped();
        if listening {
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        }
        let first_held = fds.len();
        for conn in &self.held {
            fds.push(PollFd::new(conn.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Ready::default()),
            Err(e) => {
                log::error!("poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                return Ok(Ready::default());
            }
        }
        // None: a flag nix has no name for, an event too.
        let fired = |p: &PollFd| p.revents().is_none_or(|r| !r.is_empty());
        Ok(Ready {
            channel: fired(&fds[0]),
            queue: fired(&fds[1]),
            listener: listening && fired(&fds[2]),
            held: (first_held..fds.len())
                .filter(|&i| fired(&fds[i]))
                .map(|i| i - first_held)
                .collect(),
        })
    }
}

#[derive(Default)]
struct Ready {
    channel: bool,
    listener: bool,
    /// The master's ready queue has a request.
    queue: bool,
    held: Vec<usize>,
}

enum Check {
    Waiting,
    Ready,
    Closed,
}

/// A connection the worker accepted itself in `--workers 0` mode.
pub fn accept_blocking(listener: &Listener) -> io::Result<Stream> {
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        if signals::pending() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        match listener.accept() {
            Ok(stream) => return Ok(stream),
            Err(e) if crate::dispatch::dispatcher::would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
}
