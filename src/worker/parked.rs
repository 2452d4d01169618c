//! Connections a busy worker keeps while it serves a request: the kept
//! connections it held when it took the request, whose next request had
//! not come (or not been read) yet.
//!
//! Handing them to the master at every request cost two descriptor passes
//! and the master's epoll work for each request that then arrived on one;
//! with more kept connections than workers, that was every request, and
//! kept connections served less than new ones. Parked instead, a request
//! arriving on one waits for this worker's current request to end, and the
//! worker serves it itself.
//!
//! It must not wait behind a slow script: if the worker's request still
//! runs [`PARKED_FOR`] after it began, the pump thread (see
//! `runner::HeldConnections`) hands every parked connection back to the
//! master, which dispatches them as before. A quick request moves nothing;
//! a request on a parked connection waits at most that long more than it
//! would in the master.
//!
//! A worker killed while it holds parked connections (a crash in the first
//! `PARKED_FOR` of a request) closes them with it: nginx sees a cached
//! connection close, and sends an idempotent request again on another.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::conn::Conn;
use crate::dispatch::channel::{Channel, Message};
use crate::runner::HeldConnections;

/// How long into a request the parked connections go back to the master:
/// above a quick request's time even on a loaded machine (hello world
/// passed it once in 15,000 requests at full load on 2 cores), and below
/// what a person notices.
pub const PARKED_FOR: Duration = Duration::from_millis(2);

/// The parked connections and the means to hand them back.
pub struct Parked {
    conns: Mutex<Vec<Conn>>,
    /// The worker's channel, a second descriptor: the pump thread sends on
    /// it while the worker's own thread runs a script, and the lock on
    /// `conns` keeps the two from sending at once (the worker takes the
    /// connections back under it before it uses the channel again).
    channel: Mutex<Channel>,
    /// While the master builds a reload it dispatches nothing: the
    /// connections are better off waiting here for this worker.
    may_hand_back: AtomicBool,
}

impl Parked {
    pub fn new(channel: &Channel) -> std::io::Result<Parked> {
        Ok(Parked {
            conns: Mutex::new(Vec::new()),
            channel: Mutex::new(channel.sender()?),
            may_hand_back: AtomicBool::new(true),
        })
    }

    fn conns(&self) -> MutexGuard<'_, Vec<Conn>> {
        // The vector is whole whatever panicked while it was held.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `held` for the length of the request about to start (the
    /// vector is emptied, its memory kept). `may_hand_back`: false while
    /// the master cannot dispatch them.
    pub fn park(&self, held: &mut Vec<Conn>, may_hand_back: bool) {
        if held.is_empty() {
            return;
        }
        self.may_hand_back.store(may_hand_back, Ordering::Relaxed);
        self.conns().append(held);
    }

    /// After the request: the parked connections still here go back into
    /// `held`, before the others (they were held first).
    pub fn take_back(&self, held: &mut Vec<Conn>) {
        let mut parked = self.conns();
        if !parked.is_empty() {
            held.splice(0..0, parked.drain(..));
        }
    }
}

impl HeldConnections for Parked {
    fn at_begin(&self, fds: &mut Vec<RawFd>) -> Option<Duration> {
        let parked = self.conns();
        fds.extend(parked.iter().map(|conn| conn.as_fd().as_raw_fd()));
        let release = !parked.is_empty() && self.may_hand_back.load(Ordering::Relaxed);
        release.then_some(PARKED_FOR)
    }

    fn release(&self) {
        let mut parked = self.conns();
        if parked.is_empty() {
            return;
        }
        let mut channel = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        for conn in parked.drain(..) {
            channel.queue(Message::HandBack {
                conn: conn.into_transit(),
            });
        }
        if let Err(e) = channel.flush() {
            log::warn!("cannot hand connections back to the master: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::Limits;
    use crate::listen::Stream;
    use crate::worker::conn::Readers;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Parked connections of a worker, and the master's end of its channel.
    fn worker() -> (Parked, Channel) {
        let (master, worker) = Channel::pair().unwrap();
        (Parked::new(&worker).unwrap(), master)
    }

    /// Kept connections, the first with bytes of a next request already
    /// read; and the web server's ends.
    fn held(readers: &mut Readers, n: usize) -> (Vec<Conn>, Vec<UnixStream>) {
        let (mut conns, mut peers) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let input = if i == 0 { b"next".to_vec() } else { Vec::new() };
            conns.push(readers.open(Stream::Unix(ours), input, Duration::ZERO));
            peers.push(theirs);
        }
        (conns, peers)
    }

    fn fds(conns: &[Conn]) -> Vec<RawFd> {
        conns.iter().map(|c| c.as_fd().as_raw_fd()).collect()
    }

    #[test]
    fn a_quick_request_keeps_them_and_they_come_back_first() {
        let (parked, _master) = worker();
        let mut readers = Readers::new(Limits::default(), 2);
        let (mut conns, _peers) = held(&mut readers, 2);
        let parked_fds = fds(&conns);
        parked.park(&mut conns, true);
        assert!(conns.is_empty());

        let mut listed = Vec::new();
        assert_eq!(parked.at_begin(&mut listed), Some(PARKED_FOR));
        assert_eq!(
            listed, parked_fds,
            "the stray-descriptor check passes them by"
        );

        // The request ends: they come back before what the worker kept since.
        let (mut after, _more) = held(&mut readers, 1);
        let kept_since = fds(&after);
        parked.take_back(&mut after);
        assert_eq!(fds(&after), [parked_fds, kept_since].concat());
    }

    #[test]
    fn a_lasting_request_hands_them_to_the_master_with_their_bytes() {
        let (parked, mut master) = worker();
        let mut readers = Readers::new(Limits::default(), 2);
        let (mut conns, mut peers) = held(&mut readers, 2);
        parked.park(&mut conns, true);
        parked.release();

        let mut handed = Vec::new();
        while handed.len() < 2 {
            assert!(master.receive().unwrap());
            while let Some(Message::HandBack { conn }) = master.next_message().unwrap() {
                handed.push(conn);
            }
        }
        // Every byte read travels with its connection, which is the same
        // socket: what the web server writes reaches the new holder.
        assert_eq!(handed[0].input, b"next");
        assert!(handed[1].input.is_empty());
        peers[1].write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        let n = nix::unistd::read(handed[1].fd.as_raw_fd(), &mut byte).unwrap();
        assert_eq!(&byte[..n], b"x");

        let mut after = Vec::new();
        parked.take_back(&mut after);
        assert!(after.is_empty(), "handed back, not kept");
        assert_eq!(
            parked.at_begin(&mut Vec::new()),
            None,
            "nothing parked, nothing to release"
        );
    }

    #[test]
    fn while_the_master_builds_a_reload_they_stay() {
        let (parked, _master) = worker();
        let mut readers = Readers::new(Limits::default(), 1);
        let (mut conns, _peers) = held(&mut readers, 1);
        parked.park(&mut conns, false);
        assert_eq!(parked.at_begin(&mut Vec::new()), None);
    }
}
