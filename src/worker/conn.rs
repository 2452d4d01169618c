//! A connection a worker holds: while it waits for a request (bytes read
//! without blocking into a [`Preamble`]), and while it serves one (the
//! `ServerConnection` reads the preamble's bytes first, then the socket).
//!
//! The reader and its 66 KiB buffer live as long as the connection stays
//! with this worker, so the next request of a kept connection costs no
//! allocation and no system call beyond the one `recv` that brings it.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::MsgFlags;

use crate::dispatch::channel;
use crate::fastcgi::connection::{ConnectionError, Limits, Request, ServerConnection};
use crate::fastcgi::preamble::{Preamble, PreambleSettings, Scan};
use crate::listen::Stream;

pub struct Conn {
    reader: ServerConnection<Replay>,
    /// The same socket, for the response.
    writer: Stream,
    preamble: Preamble,
    tcp: bool,
    /// Idle (or partial) since; the idle timeout counts from here.
    pub since: Instant,
}

/// What a non-blocking read brought.
pub enum Filled {
    Data,
    Nothing,
    Eof,
}

impl Conn {
    /// `input`: bytes already read from the connection (by the master, or
    /// by this worker before a hand-over); `idle`: how long it has waited.
    pub fn new(
        stream: Stream,
        input: Vec<u8>,
        idle: Duration,
        limits: &Limits,
        max_conns: usize,
    ) -> io::Result<Conn> {
        let tcp = matches!(stream, Stream::Tcp(_));
        let writer = stream.try_clone()?;
        let replay = Replay {
            pending: Vec::new(),
            pos: 0,
            stream,
        };
        Ok(Conn {
            reader: ServerConnection::new(replay, limits.clone(), max_conns, max_conns),
            writer,
            preamble: Preamble::with_bytes(input),
            tcp,
            since: Instant::now()
                .checked_sub(idle)
                .unwrap_or_else(Instant::now),
        })
    }

    /// A connection received over the channel.
    pub fn from_channel(
        conn: channel::Conn,
        limits: &Limits,
        max_conns: usize,
    ) -> io::Result<Conn> {
        let stream = Stream::from_fd(conn.fd, conn.tcp);
        Conn::new(stream, conn.input, conn.idle, limits, max_conns)
    }

    /// What to send over the channel to hand this connection to the master.
    pub fn into_channel(mut self) -> channel::Conn {
        channel::Conn {
            fd: OwnedFd::from(self.writer),
            tcp: self.tcp,
            input: self.preamble.take(),
            idle: self.since.elapsed(),
        }
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.writer.as_fd()
    }

    /// Reads what has arrived, without blocking.
    pub fn fill(&mut self, scratch: &mut [u8]) -> io::Result<Filled> {
        match nix::sys::socket::recv(
            self.writer.as_fd().as_raw_fd(),
            scratch,
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => Ok(Filled::Eof),
            Ok(n) => {
                // The idle timeout now counts how long the request takes
                // to arrive.
                if self.preamble.is_empty() {
                    self.since = Instant::now();
                }
                self.preamble.push(&scratch[..n]);
                Ok(Filled::Data)
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => Ok(Filled::Nothing),
            Err(e) => Err(e.into()),
        }
    }

    /// Is a request ready? Answers what needs no script (management
    /// records, refusals) on the spot.
    pub fn scan(&mut self, settings: &PreambleSettings) -> Result<Scan, ConnectionError> {
        let mut reply = Vec::new();
        let scan = self.preamble.scan(settings, &mut reply);
        if !reply.is_empty() {
            self.writer.write_all(&reply)?;
        }
        Ok(scan?)
    }

    /// Nothing of a next request has arrived.
    pub fn is_idle(&self) -> bool {
        self.preamble.is_empty()
    }

    /// Reads the ready request: its first records from memory, the rest of
    /// its body (if it was not all there) from the socket, which then gets
    /// `idle_timeout` as its read timeout so a stalled body cannot hold the
    /// worker for longer.
    pub fn read_request(
        &mut self,
        idle_timeout: Duration,
    ) -> Result<Option<Request>, ConnectionError> {
        if !self.preamble.is_complete() && !idle_timeout.is_zero() {
            self.writer.set_read_timeout(Some(idle_timeout))?;
        }
        let replay = self.reader.get_mut();
        replay.pending = self.preamble.take();
        replay.pos = 0;
        self.reader.read_request()
    }

    /// The socket the response goes to.
    pub fn writer(&mut self) -> &mut Stream {
        &mut self.writer
    }

    /// After a response on a kept connection: ready to wait for the next
    /// request. Bytes the reader already took beyond the request (rare: the
    /// web server does not pipeline) go back to the preamble, with a new
    /// reader.
    pub fn after_request(mut self, limits: &Limits, max_conns: usize) -> io::Result<Conn> {
        let replay = self.reader.get_ref();
        let leftover = self.reader.has_buffered_input() || replay.pos < replay.pending.len();
        if !leftover {
            self.since = Instant::now();
            return Ok(self);
        }
        let Conn { reader, writer, .. } = self;
        let (replay, mut bytes) = reader.into_parts();
        bytes.extend_from_slice(&replay.pending[replay.pos..]);
        drop(writer);
        Conn::new(replay.stream, bytes, Duration::ZERO, limits, max_conns)
    }
}

/// The reading side of a connection: bytes already taken off the socket
/// first, then the socket. Writes (the reader's answers to management
/// records) go straight to the socket.
struct Replay {
    pending: Vec<u8>,
    pos: usize,
    stream: Stream,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.pending.len() {
            let n = buf.len().min(self.pending.len() - self.pos);
            buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.stream.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
