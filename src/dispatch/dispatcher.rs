//! The master's side of dispatch: the connections no worker holds.
//!
//! Workers hand connections back to the master when they start on another
//! request (a kept connection must never wait behind a busy worker), when
//! they hold too many, and when they leave. The master watches them with
//! epoll, reads what arrives into each one's [`Preamble`], and once a
//! request is ready puts the connection in a FIFO queue, from which the pool
//! assigns it to an idle worker. A connection idle or partial for longer
//! than `idle_timeout` is closed. Nothing here blocks: reads use
//! `MSG_DONTWAIT`, and so does the odd management answer, which leaves
//! through the one writer of client sockets (`ClientSocket`, `fastcgi/`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

use super::channel::Conn;
use crate::fastcgi::preamble::{Filled, Preamble, PreambleSettings, Scan};
use crate::fastcgi::record::{encode_stream_end, RecordType};
use crate::fastcgi::ClientSocket;

/// Epoll tokens of connections start here (below: the pool's own).
pub const CONN_TOKEN_BASE: u64 = 1 << 32;

pub struct Dispatcher {
    settings: PreambleSettings,
    idle_timeout: Duration,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    next_generation: u32,
    /// Ready connections, oldest first.
    ready: VecDeque<usize>,
    /// Idle deadlines; an entry whose generation or deadline changed since
    /// is stale and skipped.
    deadlines: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    scratch: Box<[u8]>,
    /// Closed for idle_timeout with part of a request, not logged yet.
    expired_incomplete: usize,
    last_expiry_log: Option<Instant>,
    /// Set at a stop: how long a request may still take to arrive (`hurry`).
    hurry: Option<Duration>,
}

struct Entry {
    fd: OwnedFd,
    tcp: bool,
    preamble: Preamble,
    generation: u32,
    deadline: Instant,
    ready: bool,
    /// A kept connection: its last request's id (see [`goodbye`]).
    kept: Option<u16>,
}

/// What became of a connection after its bytes were read.
enum Outcome {
    Waiting,
    Ready,
    Closed(Option<String>),
}

impl Dispatcher {
    pub fn new(settings: PreambleSettings, idle_timeout: Duration) -> Dispatcher {
        Dispatcher {
            settings,
            idle_timeout,
            entries: Vec::new(),
            free: Vec::new(),
            next_generation: 0,
            ready: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
            expired_incomplete: 0,
            last_expiry_log: None,
            hurry: None,
        }
    }

    /// A reload's settings, for what arrives from now on.
    pub fn reconfigure(&mut self, settings: PreambleSettings, idle_timeout: Duration) {
        self.settings = settings;
        self.idle_timeout = idle_timeout;
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// No connection here at all (none ready, none being read).
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(Option::is_none)
    }

    /// The daemon stops: a connection whose request has not fully arrived
    /// (an idle kept one, a new one, a stalled one) gets `window` to send
    /// it, from now on for those adopted later too, so a stalled client
    /// cannot hold the stop up for `idle_timeout`. An idle kept connection
    /// is told goodbye (see [`goodbye`]), so the web server closes it
    /// rather than send a request on it as it closes.
    pub fn hurry(&mut self, window: Duration) {
        self.hurry = Some(window);
        let by = Instant::now() + window;
        for index in 0..self.entries.len() {
            let Some(entry) = self.entries[index].as_mut() else {
                continue;
            };
            if entry.ready {
                continue;
            }
            goodbye(entry);
            if entry.deadline <= by {
                continue;
            }
            entry.deadline = by;
            self.deadlines.push(Reverse((by, index, entry.generation)));
        }
    }

    /// Takes a connection handed over by a worker.
    pub fn adopt(&mut self, epoll: &Epoll, conn: Conn) {
        let mut deadline = Instant::now() + self.idle_timeout.saturating_sub(conn.idle);
        if let Some(window) = self.hurry {
            deadline = deadline.min(Instant::now() + window);
        }
        let index = self.insert(conn, deadline, false);
        match self.scan(index) {
            Outcome::Ready => self.make_ready(index),
            Outcome::Closed(why) => self.remove(epoll, index, why, false),
            Outcome::Waiting => {
                let entry = self.entries[index].as_mut().expect("just stored");
                if self.hurry.is_some() {
                    goodbye(entry);
                }
                let event = EpollEvent::new(
                    EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
                    CONN_TOKEN_BASE + index as u64,
                );
                if let Err(e) = epoll.add(entry.fd.as_fd(), event) {
                    log::error!("cannot watch a connection handed back by a worker: {e}");
                    self.remove(epoll, index, None, false);
                    return;
                }
                self.deadlines
                    .push(Reverse((deadline, index, self.next_generation)));
            }
        }
    }

    /// Epoll said the connection behind `token` has something.
    pub fn readable(&mut self, epoll: &Epoll, token: u64) {
        let index = (token - CONN_TOKEN_BASE) as usize;
        if !matches!(self.entries.get(index), Some(Some(e)) if !e.ready) {
            return;
        }
        match self.read(index) {
            Outcome::Waiting => {}
            Outcome::Ready => {
                let entry = self.entries[index].as_ref().expect("present");
                let _ = epoll.delete(entry.fd.as_fd());
                self.make_ready(index);
            }
            Outcome::Closed(why) => self.remove(epoll, index, why, true),
        }
    }

    /// The oldest ready connection, for a worker.
    pub fn pop_ready(&mut self) -> Option<Conn> {
        let index = self.ready.pop_front()?;
        let mut entry = self.entries[index].take().expect("queued entry exists");
        self.free.push(index);
        Some(Conn {
            fd: entry.fd,
            tcp: entry.tcp,
            input: entry.preamble.take(),
            idle: Duration::ZERO,
            kept: entry.kept,
        })
    }

    /// Puts back, first in line, a connection [`Self::pop_ready`] gave out
    /// that could not be passed on.
    pub fn unpop(&mut self, conn: Conn) {
        let index = self.insert(conn, Instant::now(), true);
        self.ready.push_front(index);
    }

    /// Stores `conn` in a free place, a new generation; its index.
    fn insert(&mut self, conn: Conn, deadline: Instant, ready: bool) -> usize {
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = Entry {
            fd: conn.fd,
            tcp: conn.tcp,
            preamble: Preamble::with_bytes(conn.input),
            generation: self.next_generation,
            deadline,
            ready,
            kept: conn.kept,
        };
        match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(entry);
                i
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        }
    }

    /// Closes connections idle or partial past their deadline; returns the
    /// next deadline. Those whose request never fully arrived are counted
    /// in one log line a second at most, however many there are.
    pub fn expire(&mut self, epoll: &Epoll, now: Instant) -> Option<Instant> {
        let mut next = None;
        while let Some(&Reverse((deadline, index, generation))) = self.deadlines.peek() {
            let current = matches!(&self.entries[index],
                Some(e) if e.generation == generation && e.deadline == deadline && !e.ready);
            if current && deadline > now {
                next = Some(deadline);
                break;
            }
            self.deadlines.pop();
            if current {
                if self.entries[index]
                    .as_ref()
                    .is_some_and(|e| !e.preamble.is_empty())
                {
                    self.expired_incomplete += 1;
                }
                self.remove(epoll, index, None, true);
            }
        }
        let log_due = self
            .last_expiry_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if self.expired_incomplete > 0 && log_due {
            log::info!(
                "closed {} connection(s) whose request did not arrive within {} s (idle_timeout)",
                std::mem::take(&mut self.expired_incomplete),
                self.idle_timeout.as_secs()
            );
            self.last_expiry_log = Some(now);
        }
        next
    }

    /// Closes everything (the daemon stops).
    pub fn close_all(&mut self, epoll: &Epoll) {
        for index in 0..self.entries.len() {
            if self.entries[index].is_some() {
                let watched = !self.entries[index].as_ref().is_some_and(|e| e.ready);
                self.remove(epoll, index, None, watched);
            }
        }
        self.ready.clear();
        self.deadlines.clear();
    }

    fn make_ready(&mut self, index: usize) {
        if let Some(entry) = self.entries[index].as_mut() {
            entry.ready = true;
            self.ready.push_back(index);
        }
    }

    fn remove(&mut self, epoll: &Epoll, index: usize, why: Option<String>, watched: bool) {
        if let Some(entry) = self.entries[index].take() {
            if watched {
                let _ = epoll.delete(entry.fd.as_fd());
            }
            if let Some(why) = why {
                log::info!("{why}");
            }
            self.free.push(index);
        }
    }

    /// Reads what the connection has (without blocking) and scans it.
    fn read(&mut self, index: usize) -> Outcome {
        let entry = self.entries[index].as_mut().expect("present");
        loop {
            match entry
                .preamble
                .read_from(entry.fd.as_fd(), &mut self.scratch)
            {
                Ok(Filled::Eof) => {
                    return Outcome::Closed((!entry.preamble.is_empty()).then(|| {
                        "the web server closed a connection in the middle of a request".to_string()
                    }))
                }
                Ok(Filled::Data { started, more }) => {
                    // From idle to partial: the timeout now counts how long
                    // the request takes to arrive.
                    if started {
                        let mut timeout = self.idle_timeout;
                        if let Some(window) = self.hurry {
                            timeout = timeout.min(window);
                        }
                        entry.deadline = Instant::now() + timeout;
                        self.deadlines
                            .push(Reverse((entry.deadline, index, entry.generation)));
                    }
                    if !more {
                        break;
                    }
                }
                Ok(Filled::Nothing) => break,
                Err(e) => return Outcome::Closed(Some(format!("closing a connection: {e}"))),
            }
        }
        self.scan(index)
    }

    fn scan(&mut self, index: usize) -> Outcome {
        let entry = self.entries[index].as_mut().expect("present");
        let mut reply = Vec::new();
        let scan = entry.preamble.scan(&self.settings, &mut reply);
        if !reply.is_empty()
            && !ClientSocket::without_waiting(entry.fd.as_fd()).send_at_once(&reply)
        {
            return Outcome::Closed(Some(
                "closing a connection that does not take our answers".to_string(),
            ));
        }
        match scan {
            Ok(Scan::Incomplete) => Outcome::Waiting,
            Ok(Scan::Ready) => Outcome::Ready,
            Ok(Scan::Close) => Outcome::Closed(None),
            Err(e) => Outcome::Closed(Some(format!("closing connection: {e}"))),
        }
    }
}

/// At a stop, on an idle kept connection: an empty `FCGI_STDERR` record
/// for its last request. A web server reads data on a connection it keeps
/// idle as the end of it and closes it (nginx's keepalive close handler,
/// Apache's check before reuse); one that has just sent a request on it
/// reads an empty stderr record (with the request id it uses, the last
/// one's), which says nothing, then the answer to its request. Without it
/// the pool would close the connection as the web server sends a request
/// on it, which is lost if it is not idempotent (a POST). Sent at most
/// once: what it says stays said.
fn goodbye(entry: &mut Entry) {
    let Some(id) = entry.kept.take() else {
        return;
    };
    if !entry.preamble.is_empty() {
        // Its next request is arriving: serving it is the answer.
        return;
    }
    let mut record = Vec::with_capacity(8);
    encode_stream_end(&mut record, RecordType::Stderr, id);
    // Eight bytes on an idle connection fit; one that cannot take them is
    // gone, which its end of file says.
    ClientSocket::without_waiting(entry.fd.as_fd()).send_at_once(&record);
}

/// True when `error` says only that nothing is there yet.
pub fn would_block(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{encode_begin_request, encode_params, KEEP_CONN, ROLE_RESPONDER};
    use crate::fastcgi::Limits;
    use nix::sys::epoll::EpollCreateFlags;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn request() -> Vec<u8> {
        let mut out = Vec::new();
        encode_begin_request(&mut out, 1, ROLE_RESPONDER, KEEP_CONN);
        encode_params(&mut out, 1, &[(b"A".to_vec(), b"1".to_vec())]);
        encode_stream_end(&mut out, RecordType::Stdin, 1);
        out
    }

    fn conn(stream: UnixStream, input: &[u8]) -> Conn {
        Conn {
            fd: stream.into(),
            tcp: false,
            input: input.to_vec(),
            idle: Duration::ZERO,
            kept: None,
        }
    }

    #[test]
    fn partial_request_waits_then_queues_whole() {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let settings = PreambleSettings::new(Limits::default(), 2, 2);
        let mut d = Dispatcher::new(settings, Duration::from_secs(30));
        let bytes = request();

        // Handed back with half the request read already.
        let (ours, mut peer) = UnixStream::pair().unwrap();
        d.adopt(&epoll, conn(ours, &bytes[..10]));
        assert_eq!(d.ready_len(), 0);
        peer.write_all(&bytes[10..]).unwrap();
        let mut events = [EpollEvent::empty(); 4];
        let n = epoll.wait(&mut events, 1000u16).unwrap();
        assert_eq!(n, 1);
        d.readable(&epoll, events[0].data());
        assert_eq!(d.ready_len(), 1);

        // Handed back with a whole request: queued at once, behind the first.
        let (ours2, _peer2) = UnixStream::pair().unwrap();
        d.adopt(&epoll, conn(ours2, &bytes));
        assert_eq!(d.ready_len(), 2);
        let first = d.pop_ready().unwrap();
        assert_eq!(first.input, bytes, "the request as received, in one piece");
        // The same connection: the worker answers on it.
        let mut stream = UnixStream::from(first.fd);
        stream.write_all(b"answer").unwrap();
        let mut got = [0; 6];
        peer.read_exact(&mut got).unwrap();
        assert!(d.pop_ready().is_some());
        assert!(d.pop_ready().is_none());
    }

    #[test]
    fn idle_and_partial_connections_close_at_their_deadline() {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let settings = PreambleSettings::new(Limits::default(), 2, 2);
        let mut d = Dispatcher::new(settings, Duration::from_millis(300));
        let (idle, mut idle_peer) = UnixStream::pair().unwrap();
        let (partial, mut partial_peer) = UnixStream::pair().unwrap();
        d.adopt(&epoll, conn(idle, b""));
        d.adopt(&epoll, conn(partial, &request()[..5]));
        let deadline = d.expire(&epoll, Instant::now()).expect("a deadline");
        assert!(deadline > Instant::now());
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(d.expire(&epoll, Instant::now()), None);
        let mut buf = [0; 1];
        assert_eq!(idle_peer.read(&mut buf).unwrap(), 0, "closed");
        assert_eq!(partial_peer.read(&mut buf).unwrap(), 0, "closed");
    }

    /// What arrived on the web server's end, without waiting.
    fn pending(peer: &mut UnixStream) -> Vec<u8> {
        peer.set_nonblocking(true).unwrap();
        let mut buf = [0; 64];
        match peer.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_stop_says_goodbye_once_on_idle_kept_connections_only() {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let settings = PreambleSettings::new(Limits::default(), 2, 2);
        let mut d = Dispatcher::new(settings, Duration::from_secs(30));
        let (kept, mut kept_peer) = UnixStream::pair().unwrap();
        let (new, mut new_peer) = UnixStream::pair().unwrap();
        let (partial, mut partial_peer) = UnixStream::pair().unwrap();
        d.adopt(
            &epoll,
            Conn {
                kept: Some(1),
                ..conn(kept, b"")
            },
        );
        d.adopt(&epoll, conn(new, b""));
        d.adopt(
            &epoll,
            Conn {
                kept: Some(1),
                ..conn(partial, &request()[..5])
            },
        );
        assert!(
            pending(&mut kept_peer).is_empty(),
            "nothing before the stop"
        );

        d.hurry(Duration::from_secs(1));
        let mut goodbye = Vec::new();
        encode_stream_end(&mut goodbye, RecordType::Stderr, 1);
        assert_eq!(
            pending(&mut kept_peer),
            goodbye,
            "an empty stderr record, id 1"
        );
        assert!(
            pending(&mut new_peer).is_empty(),
            "no request yet: no id to say it with"
        );
        assert!(
            pending(&mut partial_peer).is_empty(),
            "its request is arriving"
        );
        d.hurry(Duration::from_secs(1));
        assert!(pending(&mut kept_peer).is_empty(), "said once");

        // Handed back after a response during the stop: at once, with the
        // id that connection uses.
        let (late, mut late_peer) = UnixStream::pair().unwrap();
        d.adopt(
            &epoll,
            Conn {
                kept: Some(7),
                ..conn(late, b"")
            },
        );
        let mut goodbye7 = Vec::new();
        encode_stream_end(&mut goodbye7, RecordType::Stderr, 7);
        assert_eq!(pending(&mut late_peer), goodbye7);
    }

    #[test]
    fn garbage_is_closed_and_get_values_answered() {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let settings = PreambleSettings::new(Limits::default(), 2, 2);
        let mut d = Dispatcher::new(settings, Duration::from_secs(30));
        let (ours, mut peer) = UnixStream::pair().unwrap();
        d.adopt(&epoll, conn(ours, b"GET / HTTP/1.0\r\n\r\n"));
        let mut buf = [0; 16];
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "closed");

        let mut query = Vec::new();
        crate::fastcgi::record::encode_record(&mut query, RecordType::GetValues, 0, b"");
        let (ours, mut peer) = UnixStream::pair().unwrap();
        d.adopt(&epoll, conn(ours, &query));
        let n = peer.read(&mut buf).unwrap();
        assert_eq!(
            buf[1],
            RecordType::GetValuesResult.as_u8(),
            "{n} bytes answered"
        );
        assert_eq!(d.ready_len(), 0);
    }
}
