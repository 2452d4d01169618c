//! A connection a worker holds: while it waits for a request (bytes read
//! without blocking into a [`Preamble`]), and while it serves one (the
//! `ServerConnection` reads the preamble's bytes first, then the socket;
//! the response goes to the same socket).
//!
//! A reader and its 66 KiB buffer outlive the connections they read:
//! [`Readers`] keeps a few spare ones, so taking a connection (accepted,
//! or assigned by the master) costs no allocation and no `dup`.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::dispatch::channel;
use crate::fastcgi::preamble::{Filled, Preamble, PreambleSettings, Scan};
use crate::fastcgi::{ClientSocket, ConnectionError, Limits, Request, ServerConnection};
use crate::listen::Stream;

/// Spare readers kept for the next connections.
const SPARE_READERS: usize = 4;

pub struct Conn {
    reader: ServerConnection<Replay>,
    preamble: Preamble,
    /// Idle (or partial) since; the idle timeout counts from here.
    pub since: Instant,
    /// The id of the last request read from it (see `channel::Conn::kept`).
    kept: Option<u16>,
    /// The worker's last poll found something to read that it has not
    /// read yet.
    pub polled_readable: bool,
}

/// Makes [`Conn`]s, reusing the readers of connections gone.
pub struct Readers {
    spare: Vec<ServerConnection<Replay>>,
    limits: Limits,
    max_conns: usize,
}

impl Readers {
    pub fn new(limits: Limits, max_conns: usize) -> Readers {
        Readers {
            spare: Vec::new(),
            limits,
            max_conns,
        }
    }

    /// `input`: bytes already read from the connection (by the master, or
    /// by this worker before a hand-over); `idle`: how long it has waited.
    pub fn open(&mut self, stream: Stream, input: Vec<u8>, idle: Duration) -> Conn {
        let reader = match self.spare.pop() {
            Some(mut reader) => {
                let replay = reader.get_mut();
                replay.stream = Some(stream);
                replay.pending.clear();
                replay.pos = 0;
                reader
            }
            None => ServerConnection::new(
                Replay {
                    pending: Vec::new(),
                    pos: 0,
                    stream: Some(stream),
                },
                self.limits.clone(),
                self.max_conns,
                self.max_conns,
            ),
        };
        Conn {
            reader,
            preamble: Preamble::with_bytes(input),
            since: Instant::now()
                .checked_sub(idle)
                .unwrap_or_else(Instant::now),
            kept: None,
            polled_readable: false,
        }
    }

    /// A connection received over the channel.
    pub fn open_received(&mut self, conn: channel::Conn) -> Conn {
        let stream = Stream::from_fd(conn.fd, conn.tcp);
        let mut opened = self.open(stream, conn.input, conn.idle);
        opened.kept = conn.kept;
        opened
    }

    /// What to send over the channel to hand `conn` to the master.
    pub fn hand_over(&mut self, conn: Conn) -> channel::Conn {
        let (reader, transit) = conn.split();
        self.keep_spare(reader);
        transit
    }

    /// Closes the connection.
    pub fn close(&mut self, conn: Conn) {
        let (reader, transit) = conn.split();
        drop(transit);
        self.keep_spare(reader);
    }

    /// After a response on a kept connection: ready to wait for the next
    /// request. Bytes the reader already took beyond the request (rare: the
    /// web server does not pipeline) go back to the preamble, with a new
    /// reader, before those read while the script ran ([`Conn::unread`]).
    pub fn after_request(&mut self, mut conn: Conn) -> Conn {
        let replay = conn.reader.get_ref();
        let leftover = conn.reader.has_buffered_input() || replay.pos < replay.pending.len();
        if !leftover {
            conn.since = Instant::now();
            return conn;
        }
        let (mut replay, mut bytes) = conn.reader.into_parts();
        bytes.extend_from_slice(&replay.pending[replay.pos..]);
        bytes.extend_from_slice(&conn.preamble.take());
        let stream = replay.stream.take().expect("a connection's stream");
        let kept = conn.kept;
        let mut reopened = self.open(stream, bytes, Duration::ZERO);
        reopened.kept = kept;
        reopened
    }

    /// Keeps a reader for the next connection if it holds nothing of the
    /// last one.
    fn keep_spare(&mut self, reader: ServerConnection<Replay>) {
        let replay = reader.get_ref();
        let clean = replay.pos >= replay.pending.len() && !reader.has_buffered_input();
        if clean && self.spare.len() < SPARE_READERS {
            self.spare.push(reader);
        }
    }
}

impl Conn {
    /// What travels over the channel to hand the connection to the master
    /// (its reader is dropped: see [`Readers::hand_over`] to keep it).
    pub fn into_transit(self) -> channel::Conn {
        self.split().1
    }

    /// The reader, and the connection as it travels: its descriptor, the
    /// bytes read and not served, how long it has waited.
    fn split(self) -> (ServerConnection<Replay>, channel::Conn) {
        let Conn {
            mut reader,
            mut preamble,
            since,
            kept,
            ..
        } = self;
        let stream = reader
            .get_mut()
            .stream
            .take()
            .expect("a connection's stream");
        let transit = channel::Conn {
            tcp: matches!(stream, Stream::Tcp(_)),
            fd: OwnedFd::from(stream),
            input: preamble.take(),
            idle: since.elapsed(),
            kept,
        };
        (reader, transit)
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream().as_fd()
    }

    /// The connection, for the runner (its descriptor; writes go through
    /// [`Self::writer`]).
    pub fn stream(&self) -> &Stream {
        self.reader
            .get_ref()
            .stream
            .as_ref()
            .expect("a connection's stream")
    }

    /// Reads what has arrived, without blocking.
    pub fn fill(&mut self, scratch: &mut [u8]) -> io::Result<Filled> {
        let stream = self.reader.get_ref().stream.as_ref();
        let stream = stream.expect("a connection's stream");
        let filled = self.preamble.read_from(stream.as_fd(), scratch)?;
        // The idle timeout now counts how long the request takes to arrive.
        if let Filled::Data { started: true, .. } = filled {
            self.since = Instant::now();
        }
        Ok(filled)
    }

    /// Is a request ready? Answers what needs no script (management
    /// records, refusals) on the spot.
    pub fn scan(&mut self, settings: &PreambleSettings) -> Result<Scan, ConnectionError> {
        let mut reply = Vec::new();
        let scan = self.preamble.scan(settings, &mut reply);
        if !reply.is_empty() {
            self.writer().write_all(&reply)?;
        }
        Ok(scan?)
    }

    /// Nothing of a next request has arrived.
    pub fn is_idle(&self) -> bool {
        self.preamble.is_empty()
    }

    /// The last [`Self::scan`] found a request ready, not read yet.
    pub fn is_ready(&self) -> bool {
        self.preamble.is_ready()
    }

    /// The ready request is all in memory: reading it will not wait on
    /// the socket.
    pub fn is_complete(&self) -> bool {
        self.preamble.is_complete()
    }

    /// Bytes of the connection read while its request's script ran (the
    /// web server's next request, sent before this one was answered):
    /// they come before anything still in the socket.
    pub fn unread(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.preamble.push(&bytes);
        }
    }

    /// Reads the ready request: its first records from memory, the rest of
    /// its body (if it was not all there) from the socket, which then gets
    /// `idle_timeout` as its read timeout so a stalled body cannot hold the
    /// worker for longer.
    pub fn read_request(
        &mut self,
        idle_timeout: Duration,
    ) -> Result<Option<Request>, ConnectionError> {
        if !self.is_complete() && !idle_timeout.is_zero() {
            self.stream().set_read_timeout(Some(idle_timeout))?;
        }
        let input = self.preamble.take();
        let replay = self.reader.get_mut();
        replay.pending = input;
        replay.pos = 0;
        let request = self.reader.read_request()?;
        if let Some(req) = &request {
            self.kept = Some(req.id);
        }
        Ok(request)
    }

    /// The socket the answers go to.
    pub fn writer(&self) -> ClientSocket<'_> {
        ClientSocket::new(self.as_fd())
    }
}

/// The reading side of a connection: bytes already taken off the socket
/// first, then the socket. Writes (the reader's answers to management
/// records) go straight to the socket, through the one writer.
pub struct Replay {
    pending: Vec<u8>,
    pos: usize,
    /// None only while the reader waits, spare, for its next connection.
    stream: Option<Stream>,
}

impl Replay {
    fn stream(&mut self) -> io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.pending.len() {
            let n = buf.len().min(self.pending.len() - self.pos);
            buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.stream()?.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        ClientSocket::new(self.stream()?.as_fd()).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{
        encode_begin_request, encode_params, encode_stream_end, RecordType, KEEP_CONN,
        ROLE_RESPONDER,
    };
    use std::os::unix::net::UnixStream;

    fn request(id: u16) -> Vec<u8> {
        let mut out = Vec::new();
        encode_begin_request(&mut out, id, ROLE_RESPONDER, KEEP_CONN);
        encode_params(&mut out, id, &[(b"N".to_vec(), vec![b'0' + id as u8])]);
        encode_stream_end(&mut out, RecordType::Stdin, id);
        out
    }

    fn settings() -> PreambleSettings {
        PreambleSettings::new(Limits::default(), 1, 1)
    }

    fn next_id(conn: &mut Conn) -> u16 {
        let req = conn
            .read_request(Duration::ZERO)
            .unwrap()
            .expect("a request");
        req.id
    }

    #[test]
    fn pipelined_requests_come_in_order_whoever_read_them() {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let mut readers = Readers::new(Limits::default(), 1);
        let third = request(3);
        // Requests 1 and 2 read at once; the start of 3 read while request
        // 2's script ran; its end still in the socket.
        let mut first = request(1);
        first.extend(request(2));
        let mut conn = readers.open(Stream::Unix(ours), first, Duration::ZERO);
        assert_eq!(conn.scan(&settings()).unwrap(), Scan::Ready);
        assert_eq!(next_id(&mut conn), 1);

        let mut conn = readers.after_request(conn);
        assert!(!conn.is_idle(), "request 2 is kept");
        assert_eq!(conn.scan(&settings()).unwrap(), Scan::Ready);
        assert!(conn.is_ready());
        assert_eq!(next_id(&mut conn), 2);
        conn.unread(third[..20].to_vec());

        let mut conn = readers.after_request(conn);
        assert_eq!(conn.scan(&settings()).unwrap(), Scan::Incomplete);
        assert!(!conn.is_ready());
        peer.write_all(&third[20..]).unwrap();
        let mut scratch = [0; 1024];
        conn.fill(&mut scratch).unwrap();
        assert_eq!(conn.scan(&settings()).unwrap(), Scan::Ready);
        assert_eq!(next_id(&mut conn), 3);
        let conn = readers.after_request(conn);
        assert!(conn.is_idle());
    }

    #[test]
    fn a_connection_handed_over_takes_every_byte_read() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        let mut readers = Readers::new(Limits::default(), 1);
        let mut input = request(1);
        input.extend(request(2));
        input.extend_from_slice(&request(3)[..9]);
        let mut conn = readers.open(Stream::Unix(ours), input, Duration::ZERO);
        conn.scan(&settings()).unwrap();
        assert_eq!(next_id(&mut conn), 1);
        conn.unread(request(3)[9..].to_vec());
        let conn = readers.after_request(conn);
        let mut rest = request(2);
        rest.extend(request(3));
        assert_eq!(readers.hand_over(conn).input, rest);
    }
}
