//! What the web server says on a connection while its request's script
//! runs: nothing, `FCGI_ABORT_REQUEST`, that it went away, or already its
//! next request.
//!
//! FastCGI without multiplexing leaves the web server little to send on a
//! busy connection: an abort (possibly split over reads) or, from a client
//! that does not wait for the answer, the connection's next request. That
//! one waits its turn: its bytes are kept, in order, in a buffer the caller
//! owns, and go back to the connection when the request ends (a second
//! request id whose records come before the first one's input ended is
//! refused with `FCGI_CANT_MPX_CONN` by `preamble` and `server` instead).
//! This is the only place that reads the client socket once the request has
//! been read: the worker's pump thread owns a [`ClientWatch`] and polls
//! [`ClientWatch::fd`] for [`ClientWatch::POLL`]; a poll that fires is
//! answered by [`ClientWatch::on_readable`]. A hung-up socket stays
//! readable for ever (poll is level-triggered), so once `Gone`, `Aborted`
//! or `Unfollowed` is returned the watch has nothing more to say and the
//! caller drops it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};

use super::record::{Header, RecordType, HEADER_LEN};

/// Bytes of what follows the request that a watch keeps at most; past
/// them it stops reading, and the rest waits in the socket.
pub const KEEP_AFTER: usize = 64 * 1024;

/// What a readable connection meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// Nothing decisive yet: part of a record, or records of what follows
    /// the request (kept).
    Quiet,
    /// `FCGI_ABORT_REQUEST` for the running request: stop it, then end the
    /// request normally (the connection is still good).
    Aborted,
    /// The web server closed the connection or it failed.
    Gone,
    /// The watch cannot follow the connection further: what arrived is no
    /// record (kept, and reported when the request has ended), or
    /// [`KEEP_AFTER`] bytes are kept. The script runs on unwatched.
    Unfollowed,
}

/// One running request's connection, as watched by a thread that does not
/// own it (a duplicate of the descriptor).
pub struct ClientWatch {
    conn: OwnedFd,
    request_id: u16,
    /// The first `framed` bytes of the caller's buffer are whole records
    /// looked at; the rest is the start of one.
    framed: usize,
    /// The next request reuses the running one's id (nginx numbers every
    /// request 1) and has begun: an abort of that id is now the next
    /// request's, kept for it.
    id_reused: bool,
}

impl ClientWatch {
    /// The events to poll for. `POLLIN` alone: end of stream and errors
    /// make a socket readable too, and flags nix does not know (POLLRDHUP)
    /// would make its `revents()` report nothing.
    pub const POLL: PollFlags = PollFlags::POLLIN;

    pub fn new(conn: OwnedFd, request_id: u16) -> ClientWatch {
        ClientWatch {
            conn,
            request_id,
            framed: 0,
            id_reused: false,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }

    /// Reads what is there (never blocks) and says what it meant. `after`
    /// collects the bytes that follow the request, the running request's
    /// abort left out; pass the same buffer, empty at first, for the whole
    /// watch.
    pub fn on_readable(&mut self, after: &mut Vec<u8>) -> ClientEvent {
        let mut buf = [0u8; 4096];
        let room = KEEP_AFTER.saturating_sub(after.len()).min(buf.len());
        if room == 0 {
            return ClientEvent::Unfollowed;
        }
        let n = match recv(
            self.conn.as_raw_fd(),
            &mut buf[..room],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => return ClientEvent::Gone,
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return ClientEvent::Quiet,
            Err(_) => return ClientEvent::Gone,
        };
        after.extend_from_slice(&buf[..n]);
        loop {
            let rest = &after[self.framed..];
            if rest.len() < HEADER_LEN {
                break;
            }
            let Ok(header) = Header::parse(rest) else {
                return ClientEvent::Unfollowed;
            };
            let len = header.record_len();
            if rest.len() < len {
                break;
            }
            if header.request_id == self.request_id {
                match header.record_type {
                    RecordType::AbortRequest if !self.id_reused => {
                        after.drain(self.framed..self.framed + len);
                        return ClientEvent::Aborted;
                    }
                    RecordType::BeginRequest => self.id_reused = true,
                    _ => {}
                }
            }
            self.framed += len;
        }
        if after.len() >= KEEP_AFTER {
            ClientEvent::Unfollowed
        } else {
            ClientEvent::Quiet
        }
    }
}

/// True when the web server already closed `conn` (a request queued while
/// every worker was busy, whose client gave up): its end of stream is
/// there, after anything it sent.
pub fn peer_closed(conn: BorrowedFd<'_>) -> io::Result<bool> {
    let rdhup = PollFlags::from_bits_retain(libc::POLLRDHUP);
    let mut fds = [PollFd::new(conn, rdhup)];
    Ok(nix::poll::poll(&mut fds, PollTimeout::ZERO)? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{encode_begin_request, encode_record, KEEP_CONN, ROLE_RESPONDER};
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn watch() -> (ClientWatch, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (ClientWatch::new(OwnedFd::from(ours), 1), theirs)
    }

    fn abort(id: u16) -> Vec<u8> {
        let mut rec = Vec::new();
        encode_record(&mut rec, RecordType::AbortRequest, id, b"");
        rec
    }

    #[test]
    fn abort_split_over_reads() {
        let (mut w, mut peer) = watch();
        let mut after = Vec::new();
        let rec = abort(1);
        peer.write_all(&rec[..3]).unwrap();
        assert_eq!(w.on_readable(&mut after), ClientEvent::Quiet);
        peer.write_all(&rec[3..]).unwrap();
        assert_eq!(w.on_readable(&mut after), ClientEvent::Aborted);
        assert!(after.is_empty(), "the abort is not kept");
    }

    #[test]
    fn the_next_request_is_kept_in_order_around_an_abort() {
        let (mut w, mut peer) = watch();
        let mut after = Vec::new();
        let mut next = Vec::new();
        encode_begin_request(&mut next, 2, ROLE_RESPONDER, KEEP_CONN);
        encode_record(&mut next, RecordType::Params, 2, b"\x01\x01ab");
        // An abort of another request is the next request's business.
        next.extend(abort(2));
        peer.write_all(&next[..5]).unwrap();
        assert_eq!(w.on_readable(&mut after), ClientEvent::Quiet);
        // Between two records of the next request.
        let mut rest = next[5..32].to_vec();
        rest.extend(abort(1));
        rest.extend_from_slice(&next[32..]);
        peer.write_all(&rest).unwrap();
        assert_eq!(w.on_readable(&mut after), ClientEvent::Aborted);
        while after.len() < next.len() {
            assert_eq!(w.on_readable(&mut after), ClientEvent::Quiet);
        }
        assert_eq!(after, next, "everything but the running request's abort");
    }

    /// Found by fuzzing (`fuzz/`, target `handover`): the running request's
    /// abort was taken from the next request when both have id 1, and the
    /// next request, read without it, ended the connection on an error.
    #[test]
    fn an_abort_after_the_next_request_began_with_the_same_id_is_its_own() {
        let (mut w, mut peer) = watch();
        let mut after = Vec::new();
        let mut next = Vec::new();
        encode_begin_request(&mut next, 1, ROLE_RESPONDER, 0);
        next.extend(abort(1));
        peer.write_all(&next).unwrap();
        assert_eq!(w.on_readable(&mut after), ClientEvent::Quiet);
        assert_eq!(after, next, "the abort stays with the request it ends");
    }

    #[test]
    fn garbage_and_too_much_are_kept_unfollowed() {
        let (mut w, mut peer) = watch();
        let mut after = Vec::new();
        peer.write_all(b"GET / HTTP/1.0\r\n").unwrap();
        assert_eq!(w.on_readable(&mut after), ClientEvent::Unfollowed);
        assert_eq!(after, b"GET / HTTP/1.0\r\n");

        let (mut w, mut peer) = watch();
        let mut after = Vec::new();
        let mut big = Vec::new();
        while big.len() < KEEP_AFTER + 100 {
            encode_record(&mut big, RecordType::Stdin, 2, &[b'x'; 1000]);
        }
        std::thread::spawn(move || peer.write_all(&big));
        let mut event = ClientEvent::Quiet;
        while event == ClientEvent::Quiet {
            event = w.on_readable(&mut after);
        }
        assert_eq!(event, ClientEvent::Unfollowed);
        assert_eq!(after.len(), KEEP_AFTER, "no byte more than it keeps");
    }

    #[test]
    fn closed_peer_is_gone_and_nothing_is_quiet() {
        let (mut w, peer) = watch();
        let mut after = Vec::new();
        assert_eq!(w.on_readable(&mut after), ClientEvent::Quiet);
        assert!(!peer_closed(w.fd()).unwrap());
        drop(peer);
        assert!(peer_closed(w.fd()).unwrap());
        assert_eq!(w.on_readable(&mut after), ClientEvent::Gone);
    }
}
