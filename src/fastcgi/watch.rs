//! What the web server says on a connection while its request's script
//! runs: nothing, `FCGI_ABORT_REQUEST`, or that it went away.
//!
//! FastCGI without multiplexing leaves the web server nothing else to send
//! on a busy connection, so the only bytes that can arrive are an abort
//! (possibly split over reads) or, harmlessly, something we ignore. This is
//! the only place that reads the client socket once the request has been
//! read: the worker's pump thread owns a [`ClientWatch`] and polls
//! [`ClientWatch::fd`] for [`ClientWatch::POLL`]; a poll that fires is
//! answered by [`ClientWatch::on_readable`]. A hung-up socket stays
//! readable for ever (poll is level-triggered), so once `Gone` or `Aborted`
//! is returned the watch has nothing more to say and the caller drops it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};

use super::record::{Header, RecordType, HEADER_LEN};

/// What a readable connection meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// Nothing decisive yet (part of a record, or a record we ignore).
    Quiet,
    /// `FCGI_ABORT_REQUEST` for the running request: stop it, then end the
    /// request normally (the connection is still good).
    Aborted,
    /// The web server closed the connection or it failed.
    Gone,
    /// The web server sent `n` bytes that are no abort (dropped).
    Unexpected(usize),
}

/// One running request's connection, as watched by a thread that does not
/// own it (a duplicate of the descriptor).
pub struct ClientWatch {
    conn: OwnedFd,
    request_id: u16,
    /// The start of a record not yet complete.
    partial: Vec<u8>,
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
            partial: Vec::new(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }

    /// Reads what is there (never blocks) and says what it meant.
    pub fn on_readable(&mut self) -> ClientEvent {
        let mut buf = [0u8; 512];
        let n = match recv(self.conn.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return ClientEvent::Gone,
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return ClientEvent::Quiet,
            Err(_) => return ClientEvent::Gone,
        };
        self.partial.extend_from_slice(&buf[..n]);
        let mut unexpected = 0;
        loop {
            let Ok(header) = Header::parse(&self.partial) else {
                // Not a header yet (or garbage: a header is 8 bytes, so
                // garbage is dropped 8 bytes at a time).
                if self.partial.len() >= HEADER_LEN {
                    unexpected += self.partial.len();
                    self.partial.clear();
                }
                break;
            };
            let len = header.record_len();
            if self.partial.len() < len {
                break;
            }
            self.partial.drain(..len);
            if header.record_type == RecordType::AbortRequest
                && header.request_id == self.request_id
            {
                return ClientEvent::Aborted;
            }
            unexpected += len;
        }
        if unexpected > 0 {
            ClientEvent::Unexpected(unexpected)
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
    use crate::fastcgi::record::encode_record;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn watch() -> (ClientWatch, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (ClientWatch::new(OwnedFd::from(ours), 1), theirs)
    }

    #[test]
    fn abort_split_over_reads() {
        let (mut w, mut peer) = watch();
        let mut rec = Vec::new();
        encode_record(&mut rec, RecordType::AbortRequest, 1, b"");
        peer.write_all(&rec[..3]).unwrap();
        assert_eq!(w.on_readable(), ClientEvent::Quiet);
        peer.write_all(&rec[3..]).unwrap();
        assert_eq!(w.on_readable(), ClientEvent::Aborted);
    }

    #[test]
    fn abort_of_another_request_is_unexpected() {
        let (mut w, mut peer) = watch();
        let mut rec = Vec::new();
        encode_record(&mut rec, RecordType::AbortRequest, 2, b"");
        peer.write_all(&rec).unwrap();
        assert_eq!(w.on_readable(), ClientEvent::Unexpected(8));
    }

    #[test]
    fn closed_peer_is_gone_and_nothing_is_quiet() {
        let (mut w, peer) = watch();
        assert_eq!(w.on_readable(), ClientEvent::Quiet);
        assert!(!peer_closed(w.fd()).unwrap());
        drop(peer);
        assert!(peer_closed(w.fd()).unwrap());
        assert_eq!(w.on_readable(), ClientEvent::Gone);
    }
}
