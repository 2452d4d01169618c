//! The response to one script request: what is sent of it, and when
//! sending stops.
//!
//! Every byte a client gets for a script goes through a [`Response`]: what
//! the script prints (from whichever thread moves it, see `output.rs`), the
//! pages the daemon answers itself (404, 403, 413, the 500 of a script that
//! printed nothing, the 504 of `--request-timeout`) and the final
//! `FCGI_END_REQUEST`. Its [`Delivery`] says whether more can be sent, so
//! that a client that went away, or a response the timeout already ended,
//! is never written to again. Framing and the socket's system calls are the
//! protocol layer's, the one writer of client sockets ([`ResponseWriter`]
//! over a [`ClientSocket`]); what to send, and when to stop, is decided
//! here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::stop::stop_script;

use crate::cgi::{self, error_page, NO_OUTPUT};
use crate::fastcgi::{ClientSocket, ResponseWriter};
use crate::perl::{Stage, StopReason};

const GATEWAY_TIMEOUT: (u16, &str) = (504, "Gateway Timeout");

/// A write a stop interrupted is the client's end, as far as the script
/// is concerned: it is not retried.
fn stopping() -> bool {
    Stage::now() == Stage::Stopping
}

/// Whether the client can still be sent anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The response is going out.
    Open,
    /// `--request-timeout` struck: the 504 (or what was sent before) is the
    /// response; what the script still writes is dropped.
    TimedOut,
    /// The connection failed or the client left: nothing more is sent, and
    /// the connection cannot be used again.
    ClientGone,
}

/// How the response ended.
pub struct Finished {
    /// The script sent nothing at all: the client got a 500 page.
    pub empty: bool,
    /// The connection failed; it cannot be used again.
    pub client_gone: bool,
    /// The HTTP status the client got (from the CGI headers, see
    /// [`cgi::status`]) and the bytes of the response (headers included).
    pub status: u16,
    pub bytes: u64,
}

/// How much of a response's start is kept to read its status from.
const HEAD_KEPT: usize = 1024;

/// The response of the running request.
pub struct Response {
    writer: ResponseWriter<ClientSocket<'static>>,
    delivery: Delivery,
    stderr_to_client: bool,
    /// The first bytes sent (the CGI headers, for the status).
    head: Vec<u8>,
}

impl Response {
    /// A response on `conn`, which the caller keeps open until [`finish`].
    ///
    /// [`finish`]: Response::finish
    pub fn new(conn: RawFd, request_id: u16, stderr_to_client: bool) -> Response {
        Response {
            // SAFETY: `conn` stays open until `finish` (the caller's
            // promise above), after which nothing is written through it.
            writer: ResponseWriter::new(
                ClientSocket::new(unsafe { BorrowedFd::borrow_raw(conn) })
                    .interrupted_when(stopping),
                request_id,
            ),
            delivery: Delivery::Open,
            stderr_to_client,
            head: Vec::new(),
        }
    }

    fn keep_head(&mut self, data: &[u8]) {
        let room = HEAD_KEPT - self.head.len();
        self.head.extend_from_slice(&data[..room.min(data.len())]);
    }

    pub fn conn_fd(&self) -> RawFd {
        self.writer.get_ref().as_raw_fd()
    }

    pub fn request_id(&self) -> u16 {
        self.writer.request_id()
    }

    fn can_send(&self) -> bool {
        self.delivery == Delivery::Open && !self.writer.is_finished()
    }

    /// Sends `data` on FCGI_STDOUT unless the response can take no more; a
    /// failed write means the client is gone, and the script is stopped.
    pub fn send_stdout(&mut self, data: &[u8], tag: &str) -> bool {
        if !self.can_send() {
            return false;
        }
        self.keep_head(data);
        match self.writer.write_stdout(data) {
            Ok(()) => true,
            Err(e) => {
                log::info!("{tag}: client went away ({e}); stopping the script");
                self.delivery = Delivery::ClientGone;
                let _ = stop_script(StopReason::Client);
                false
            }
        }
    }

    /// Passes script stderr on as FCGI_STDERR when `--stderr-to-client`.
    pub fn send_stderr(&mut self, data: &[u8]) {
        if self.stderr_to_client && self.can_send() {
            let _ = self.writer.write_stderr(data);
        }
    }

    /// The web server went away (seen by the watch of its connection).
    pub fn client_gone(&mut self) {
        self.delivery = Delivery::ClientGone;
    }

    /// `--request-timeout`: a 504 page if nothing was sent yet; the
    /// response takes nothing more but its end.
    pub fn time_out(&mut self) {
        if self.can_send() && self.writer.bytes_sent() == 0 {
            let page = error_page(GATEWAY_TIMEOUT);
            self.keep_head(&page);
            let _ = self.writer.write_stdout(&page);
        }
        if self.delivery == Delivery::Open {
            self.delivery = Delivery::TimedOut;
        }
    }

    /// Ends the response after the script: `pending` (what it printed last)
    /// or, when it sent nothing at all, a 500 page; then FCGI_END_REQUEST
    /// with `exit_status`.
    pub fn finish(mut self, pending: &[u8], exit_status: i32, tag: &str) -> Finished {
        let empty = self.writer.bytes_sent() == 0 && pending.is_empty();
        if self.delivery == Delivery::ClientGone {
            return Finished {
                empty,
                client_gone: true,
                status: cgi::status(&self.head),
                bytes: self.writer.bytes_sent(),
            };
        }
        let page;
        let data = match self.delivery {
            Delivery::TimedOut => &[][..],
            _ if empty => {
                page = error_page(NO_OUTPUT);
                &page[..]
            }
            _ => pending,
        };
        self.keep_head(data);
        let client_gone = match self.writer.finish_with(data, exit_status as u32, 0) {
            Ok(()) => false,
            Err(e) => {
                log::info!("{tag}: client went away while the response was sent: {e}");
                true
            }
        };
        Finished {
            empty,
            client_gone,
            status: cgi::status(&self.head),
            bytes: self.writer.bytes_sent(),
        }
    }
}

/// A whole response the daemon answers itself, no script run (404, 403,
/// 413).
pub fn answer(conn: BorrowedFd<'_>, request_id: u16, status: u16, reason: &str) -> io::Result<()> {
    let mut writer = ResponseWriter::new(ClientSocket::new(conn), request_id);
    writer.write_stdout(&error_page((status, reason)))?;
    writer.finish(0, 0)
}
