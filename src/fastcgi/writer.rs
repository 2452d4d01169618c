//! The one writer of client sockets: every byte the daemon sends on a web
//! server's connection, from the master or a worker, leaves through a
//! [`ClientSocket`] here, and nowhere else makes a system call that
//! writes to one.
//!
//! Two types, one per job. [`ClientSocket`] is the descriptor and the two
//! system calls (`send`, `sendmsg`), always with `MSG_NOSIGNAL`: a client
//! gone is an `EPIPE` for the caller to handle, never a SIGPIPE, which in
//! a worker is the script's stop (and in fork isolation would wait,
//! pending, for the next request's child). [`ResponseWriter`] frames a
//! response into `FCGI_STDOUT` / `FCGI_STDERR` records and ends it with
//! `FCGI_END_REQUEST`, each write one `writev` without copying the data;
//! the records' bytes are the codec's (`record`). Whole answers no
//! response frames (management replies, refusals, the stop's goodbye) are
//! the codec's bytes sent as they are. Who writes is the caller's to say:
//! the script's response (`runner/response.rs`, which decides what may
//! still be sent), the pool's own pages (`status/`), the reader's answers
//! to management records and refusals (`server`, `preamble`, through the
//! worker's connection or the master's dispatcher).
//!
//! The framing stays generic over `Write`, so it is tested over memory
//! (and over a socket pair in `client`'s tests).

use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::sys::socket::{send, sendmsg, MsgFlags};

use super::record::{
    encode_end_request, encode_stream_end, Header, RecordType, HEADER_LEN, MAX_CONTENT,
};

/// The writing side of a client connection, borrowed from whoever owns
/// the connection (a worker's `Conn`, the master's dispatcher, the
/// response of a running script).
#[derive(Clone, Copy)]
pub struct ClientSocket<'fd> {
    fd: BorrowedFd<'fd>,
    flags: MsgFlags,
    /// Asked when a signal interrupts a send: true ends the send (the
    /// runner's stop), false retries it.
    interrupt_ends: fn() -> bool,
}

impl<'fd> ClientSocket<'fd> {
    /// Sends that wait for room in the socket: a worker's, whose connection
    /// is its own for the request.
    pub fn new(fd: BorrowedFd<'fd>) -> ClientSocket<'fd> {
        ClientSocket {
            fd,
            flags: MsgFlags::MSG_NOSIGNAL,
            interrupt_ends: || false,
        }
    }

    /// Sends that never wait: the master's, whose loop one client slow to
    /// read must not hold.
    pub fn without_waiting(fd: BorrowedFd<'fd>) -> ClientSocket<'fd> {
        ClientSocket {
            flags: MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ..ClientSocket::new(fd)
        }
    }

    /// A send a signal interrupts while `ends()` is true fails as if the
    /// client had gone (`BrokenPipe`) instead of being retried.
    pub fn interrupted_when(self, ends: fn() -> bool) -> ClientSocket<'fd> {
        ClientSocket {
            interrupt_ends: ends,
            ..self
        }
    }

    /// Sends `bytes` in one system call (a few bytes the master answers on
    /// a connection); true when all of them went.
    pub fn send_at_once(&self, bytes: &[u8]) -> bool {
        send(self.fd.as_raw_fd(), bytes, self.flags) == Ok(bytes.len())
    }

    fn result(&self, sent: nix::Result<usize>) -> io::Result<usize> {
        match sent {
            Err(nix::errno::Errno::EINTR) if (self.interrupt_ends)() => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the request is being stopped",
            )),
            sent => sent.map_err(io::Error::from),
        }
    }
}

impl Write for ClientSocket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.result(send(self.fd.as_raw_fd(), buf, self.flags))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // At most IOV_MAX slices in one call; the caller sends the rest next.
        let bufs = &bufs[..bufs.len().min(1024)];
        let fd = self.fd.as_raw_fd();
        self.result(sendmsg::<()>(fd, bufs, &[], self.flags, None))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for ClientSocket<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
    }
}

impl AsRawFd for ClientSocket<'_> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

const ZERO_PADDING: [u8; 8] = [0; 8];

/// Records gathered into one `writev`: 16 records (48 slices, well below
/// `IOV_MAX`) carry up to 1 MiB per system call.
const RECORDS_PER_WRITE: usize = 16;

/// Frames a response into `FCGI_STDOUT` / `FCGI_STDERR` records and ends it
/// with `FCGI_END_REQUEST`. `W` is a [`ClientSocket`] in the daemon (a
/// borrowed descriptor, so the script's thread can write while the
/// connection stays owned elsewhere), memory in the tests.
pub struct ResponseWriter<W: Write> {
    out: W,
    request_id: u16,
    stdout_bytes: u64,
    stderr_sent: bool,
    finished: bool,
}

impl<W: Write> ResponseWriter<W> {
    pub fn new(out: W, request_id: u16) -> ResponseWriter<W> {
        ResponseWriter {
            out,
            request_id,
            stdout_bytes: 0,
            stderr_sent: false,
            finished: false,
        }
    }

    /// Sends `data` on `FCGI_STDOUT`, split into records of at most 65535
    /// bytes, in one `writev` for up to 1 MiB of data (more if the peer's
    /// socket buffer takes it only in parts). Empty `data` sends nothing,
    /// since an empty record would end the stream.
    pub fn write_stdout(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_stream(RecordType::Stdout, data)?;
        self.stdout_bytes += data.len() as u64;
        Ok(())
    }

    /// Sends `data` on `FCGI_STDERR`, framed as [`Self::write_stdout`] does.
    pub fn write_stderr(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_stream(RecordType::Stderr, data)?;
        self.stderr_sent |= !data.is_empty();
        Ok(())
    }

    /// Ends `FCGI_STDOUT` (and `FCGI_STDERR` if anything was sent on it) and
    /// the request, in one write. Further writes fail.
    pub fn finish(&mut self, app_status: u32, protocol_status: u8) -> io::Result<()> {
        self.finish_with(&[], app_status, protocol_status)
    }

    /// Sends the last of the output and ends the request: for up to
    /// [`MAX_CONTENT`] bytes of `data`, record, stream ends and
    /// `FCGI_END_REQUEST` go out in one `writev` (the whole of a small
    /// response, in one system call).
    pub fn finish_with(
        &mut self,
        data: &[u8],
        app_status: u32,
        protocol_status: u8,
    ) -> io::Result<()> {
        if data.len() > MAX_CONTENT {
            self.write_stdout(data)?;
            return self.finish(app_status, protocol_status);
        }
        self.check_open()?;
        let mut end = Vec::with_capacity(3 * HEADER_LEN + 8);
        encode_stream_end(&mut end, RecordType::Stdout, self.request_id);
        if self.stderr_sent {
            encode_stream_end(&mut end, RecordType::Stderr, self.request_id);
        }
        encode_end_request(&mut end, self.request_id, app_status, protocol_status);
        self.finished = true;
        if data.is_empty() {
            self.out.write_all(&end)?;
            return self.out.flush();
        }
        // `data.len() <= MAX_CONTENT` keeps the length within a u16.
        let header = Header::new(RecordType::Stdout, self.request_id, data.len() as u16);
        let encoded = header.encode();
        let padding = &ZERO_PADDING[..usize::from(header.padding_length)];
        let mut slices = [
            IoSlice::new(&encoded),
            IoSlice::new(data),
            IoSlice::new(padding),
            IoSlice::new(&end),
        ];
        write_all_vectored(&mut self.out, &mut slices)?;
        self.stdout_bytes += data.len() as u64;
        self.out.flush()
    }

    /// Payload bytes sent on `FCGI_STDOUT` so far (the response size an
    /// access log reports).
    pub fn bytes_sent(&self) -> u64 {
        self.stdout_bytes
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn request_id(&self) -> u16 {
        self.request_id
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    fn check_open(&self) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other(format!(
                "FastCGI request id {} already ended",
                self.request_id
            )));
        }
        Ok(())
    }

    /// Frames `data` into records of at most [`MAX_CONTENT`] bytes and sends
    /// up to [`RECORDS_PER_WRITE`] of them (header, data, padding each) per
    /// `writev`, without copying the data.
    fn write_stream(&mut self, record_type: RecordType, data: &[u8]) -> io::Result<()> {
        self.check_open()?;
        for batch in data.chunks(MAX_CONTENT * RECORDS_PER_WRITE) {
            let mut headers = [[0; HEADER_LEN]; RECORDS_PER_WRITE];
            let mut paddings = [0; RECORDS_PER_WRITE];
            for ((chunk, header), padding) in batch
                .chunks(MAX_CONTENT)
                .zip(&mut headers)
                .zip(&mut paddings)
            {
                // `chunks(MAX_CONTENT)` keeps every length within a u16.
                let h = Header::new(record_type, self.request_id, chunk.len() as u16);
                *header = h.encode();
                *padding = usize::from(h.padding_length);
            }
            let mut slices = [IoSlice::new(&[]); 3 * RECORDS_PER_WRITE];
            let mut used = 0;
            for ((chunk, header), padding) in batch.chunks(MAX_CONTENT).zip(&headers).zip(paddings)
            {
                slices[used] = IoSlice::new(header);
                slices[used + 1] = IoSlice::new(chunk);
                slices[used + 2] = IoSlice::new(&ZERO_PADDING[..padding]);
                used += 3;
            }
            write_all_vectored(&mut self.out, &mut slices[..used])?;
        }
        Ok(())
    }
}

/// `Write::write_all_vectored` is not stable yet: keep calling `writev`
/// until every slice is written.
fn write_all_vectored<W: Write>(out: &mut W, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
