//! A connection between requests: has a request arrived far enough to be
//! handed to a worker?
//!
//! A worker takes a request only when it can serve it at once, so whoever
//! watches a connection that no worker serves (the master's dispatcher, or
//! an idle worker) feeds what arrives into a [`Preamble`] until it says
//! [`Scan::Ready`]: the request's `FCGI_BEGIN_REQUEST` and its whole
//! `FCGI_PARAMS` stream are there, and its `FCGI_STDIN` stream has ended or
//! at least [`HANDOFF_BODY`] bytes of it are there (a larger body then
//! streams to the worker while it reads it; a small one never makes a
//! worker wait on the network). A client that stalls half-way never
//! occupies a worker.
//!
//! Nothing is parsed here beyond the record framing and the few fields that
//! decide readiness: the request's records are kept as they came and handed
//! over with the connection, so the worker's `ServerConnection` reads them
//! as if straight from the socket. What needs no worker is answered here
//! and dropped from the buffer, by the rules `ServerConnection` follows
//! too (`rules`): management records (`FCGI_GET_VALUES`), roles we do not
//! serve, a second request id begun before the current request's input
//! ended (`FCGI_CANT_MPX_CONN`), `FCGI_ABORT_REQUEST` of a request not
//! handed over yet. Bytes past the ready request (the connection's next
//! request, sent before this one is answered) are not looked at, and are
//! handed over with it: they wait their turn. A state machine: bytes in,
//! answers out; its one piece of I/O, [`Preamble::read_from`], is the
//! non-blocking read that feeds it, so that connections are read only in
//! this protocol layer.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::socket::{recv, MsgFlags};

use super::record::{parse_name_values, Header, ProtocolError, RecordType, HEADER_LEN};
use super::rules::{self, Current, Settings};
use super::Limits;

/// Body bytes that make a request ready even before its `FCGI_STDIN`
/// stream ended.
pub const HANDOFF_BODY: usize = 64 * 1024;

/// What one read of a connection brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// The peer closed the connection.
    Eof,
    /// Bytes; `started`: the first of a request (the preamble was empty);
    /// `more`: the read filled the buffer, more may wait.
    Data { started: bool, more: bool },
    /// Nothing waiting.
    Nothing,
}

/// What the bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Nothing to hand over yet; wait for more bytes.
    Incomplete,
    /// A request can go to a worker: hand it [`Preamble::take`] with the
    /// connection.
    Ready,
    /// The web server expects the connection closed (a refused or aborted
    /// request that did not ask for `FCGI_KEEP_CONN`).
    Close,
}

/// The bytes read from one connection that no worker serves, and how far
/// its next request has arrived.
#[derive(Debug, Default)]
pub struct Preamble {
    /// The current request's records (whole ones first, then a partial one).
    buf: Vec<u8>,
    /// `buf[..scanned]` are whole records already looked at.
    scanned: usize,
    current: Option<Progress>,
}

/// The request arriving, as the rules count it, and whether its params
/// were checked for malformed pairs.
#[derive(Debug, Clone, Copy)]
struct Progress {
    request: Current,
    params_checked: bool,
}

impl Progress {
    fn ready(&self) -> bool {
        let r = &self.request;
        r.is_complete() || (r.params_done && r.stdin_len >= HANDOFF_BODY)
    }
}

/// What to do with one whole record.
enum Verdict {
    /// Part of the current request: keep it for the worker.
    Keep,
    /// Answered or skipped: drop it.
    Drop,
    /// The current request was aborted: drop it and its records.
    DropRequest,
    Close,
}

/// The answers to `FCGI_GET_VALUES` and the params limit, as the worker's
/// `ServerConnection` uses them.
pub struct PreambleSettings(Settings);

impl PreambleSettings {
    pub fn new(limits: Limits, max_conns: usize, max_reqs: usize) -> PreambleSettings {
        PreambleSettings(Settings {
            limits,
            max_conns,
            max_reqs,
        })
    }
}

impl Preamble {
    /// Starts from bytes already read (handed over with a connection).
    pub fn with_bytes(buf: Vec<u8>) -> Preamble {
        Preamble {
            buf,
            scanned: 0,
            current: None,
        }
    }

    /// Appends bytes read from the connection; call [`Self::scan`] next.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// One non-blocking read of `conn` (at most `scratch.len()` bytes)
    /// appended; call [`Self::scan`] next.
    pub fn read_from(&mut self, conn: BorrowedFd<'_>, scratch: &mut [u8]) -> io::Result<Filled> {
        loop {
            return match recv(conn.as_raw_fd(), scratch, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => Ok(Filled::Eof),
                Ok(n) => {
                    let started = self.is_empty();
                    self.push(&scratch[..n]);
                    Ok(Filled::Data {
                        started,
                        more: n == scratch.len(),
                    })
                }
                Err(nix::errno::Errno::EAGAIN) => Ok(Filled::Nothing),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    /// No byte of a next request has arrived: the connection is idle.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The last [`Self::scan`] said [`Scan::Ready`] and the request was
    /// not taken since.
    pub fn is_ready(&self) -> bool {
        self.current.is_some_and(|c| c.ready())
    }

    /// The request's `FCGI_STDIN` stream has ended (or it needs none): the
    /// worker will not wait on the network for any of it.
    pub fn is_complete(&self) -> bool {
        self.current.is_some_and(|c| c.request.is_complete())
    }

    /// The bytes to hand over with the connection; the preamble starts
    /// afresh. Keeps nothing: the worker now owns the request.
    pub fn take(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.current = None;
        std::mem::take(&mut self.buf)
    }

    /// Looks at the whole records not yet looked at. Answers for the web
    /// server are appended to `reply` (the caller sends them, even when an
    /// error follows). An error means the connection is unusable (garbage,
    /// params over the limit, a record out of place): log it and close.
    pub fn scan(
        &mut self,
        settings: &PreambleSettings,
        reply: &mut Vec<u8>,
    ) -> Result<Scan, ProtocolError> {
        loop {
            if self.current.is_some_and(|c| c.ready()) {
                return Ok(Scan::Ready);
            }
            let rest = &self.buf[self.scanned..];
            if rest.len() < HEADER_LEN {
                return self.incomplete();
            }
            let header = Header::parse(rest)?;
            let len = header.record_len();
            if rest.len() < len {
                return self.incomplete();
            }
            let content = &rest[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
            match judge(&mut self.current, &settings.0, header, content, reply)? {
                Verdict::Keep => self.scanned += len,
                Verdict::Drop => {
                    self.buf.drain(self.scanned..self.scanned + len);
                }
                Verdict::DropRequest => {
                    self.buf.drain(..self.scanned + len);
                    self.scanned = 0;
                    self.current = None;
                }
                Verdict::Close => return Ok(Scan::Close),
            }
        }
    }

    /// Waiting for more of a request whose params are all there: malformed
    /// params are reported now, as `ServerConnection` would, not after a
    /// body that may never come. (A request that arrives at once skips
    /// this: its worker parses the params anyway.)
    fn incomplete(&mut self) -> Result<Scan, ProtocolError> {
        let Some(current) = self.current.as_mut() else {
            return Ok(Scan::Incomplete);
        };
        if current.request.params_done && !current.params_checked {
            current.params_checked = true;
            let id = current.request.id;
            let mut params = Vec::with_capacity(current.request.params_len);
            let mut records = &self.buf[..self.scanned];
            while let Ok(header) = Header::parse(records) {
                if header.record_type == RecordType::Params && header.request_id == id {
                    let end = HEADER_LEN + usize::from(header.content_length);
                    params.extend_from_slice(&records[HEADER_LEN..end]);
                }
                records = &records[header.record_len()..];
            }
            parse_name_values(&params)?;
        }
        Ok(Scan::Incomplete)
    }
}

/// The rules' verdict on one record (the same as `ServerConnection`'s), as
/// what to do with its bytes here: the params and the body are kept for
/// the worker, not parsed.
fn judge(
    current: &mut Option<Progress>,
    settings: &Settings,
    header: Header,
    content: &[u8],
    reply: &mut Vec<u8>,
) -> Result<Verdict, ProtocolError> {
    let request = current.as_mut().map(|c| &mut c.request);
    Ok(
        match rules::judge(settings, request, header, content, reply)? {
            rules::Verdict::Skip => Verdict::Drop,
            rules::Verdict::Begin(request) => {
                *current = Some(Progress {
                    request,
                    params_checked: false,
                });
                Verdict::Keep
            }
            rules::Verdict::Params(_) | rules::Verdict::Stdin(_) => Verdict::Keep,
            rules::Verdict::Aborted { close: false } => Verdict::DropRequest,
            rules::Verdict::Aborted { close: true } | rules::Verdict::Close => Verdict::Close,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{
        encode_begin_request, encode_name_value, encode_params, encode_record, encode_stream,
        encode_stream_end, EndRequest, CANT_MPX_CONN, FCGI_MPXS_CONNS, KEEP_CONN, REQUEST_COMPLETE,
        ROLE_AUTHORIZER, ROLE_FILTER, ROLE_RESPONDER, UNKNOWN_ROLE,
    };

    fn settings() -> PreambleSettings {
        PreambleSettings::new(Limits::default(), 7, 3)
    }

    fn request(id: u16, flags: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_begin_request(&mut out, id, ROLE_RESPONDER, flags);
        let params = vec![(b"SCRIPT_FILENAME".to_vec(), b"/srv/a.pl".to_vec())];
        encode_params(&mut out, id, &params);
        encode_stream(&mut out, RecordType::Stdin, id, body);
        encode_stream_end(&mut out, RecordType::Stdin, id);
        out
    }

    /// Feeds `bytes` in pieces of `step`, scanning after each; returns the
    /// first result that is not `Incomplete` (or `Incomplete`) and the
    /// replies.
    fn feed(p: &mut Preamble, bytes: &[u8], step: usize) -> (Scan, Vec<u8>) {
        let mut reply = Vec::new();
        for piece in bytes.chunks(step) {
            p.push(piece);
            match p.scan(&settings(), &mut reply).unwrap() {
                Scan::Incomplete => {}
                done => return (done, reply),
            }
        }
        (Scan::Incomplete, reply)
    }

    fn end_requests(mut bytes: &[u8]) -> Vec<(u16, u8)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let h = Header::parse(bytes).unwrap();
            if h.record_type == RecordType::EndRequest {
                let end = EndRequest::parse(h.request_id, &bytes[HEADER_LEN..HEADER_LEN + 8]);
                out.push((h.request_id, end.unwrap().protocol_status));
            }
            bytes = &bytes[h.record_len()..];
        }
        out
    }

    #[test]
    fn whole_request_is_ready_and_handed_over_unchanged() {
        let bytes = request(1, KEEP_CONN, b"a=1");
        let mut p = Preamble::default();
        assert!(p.is_empty());
        let (scan, reply) = feed(&mut p, &bytes, bytes.len());
        assert_eq!(scan, Scan::Ready);
        assert!(reply.is_empty());
        assert!(p.is_complete());
        assert_eq!(p.take(), bytes);
        assert!(p.is_empty());
    }

    #[test]
    fn byte_by_byte_ready_only_at_the_end_of_stdin() {
        let bytes = request(1, 0, b"body");
        let mut p = Preamble::default();
        let mut reply = Vec::new();
        for (i, byte) in bytes.iter().enumerate() {
            p.push(&[*byte]);
            let scan = p.scan(&settings(), &mut reply).unwrap();
            let last = i == bytes.len() - 1;
            assert_eq!(
                scan,
                if last { Scan::Ready } else { Scan::Incomplete },
                "byte {i}"
            );
        }
        assert_eq!(p.take(), bytes);
    }

    #[test]
    fn half_a_record_is_incomplete() {
        let bytes = request(1, 0, b"");
        let mut p = Preamble::default();
        let (scan, _) = feed(&mut p, &bytes[..13], 13);
        assert_eq!(scan, Scan::Incomplete);
        assert!(!p.is_empty());
    }

    #[test]
    fn large_body_is_handed_over_once_a_share_arrived() {
        let body = vec![b'x'; 3 * HANDOFF_BODY];
        let bytes = request(1, 0, &body);
        let mut p = Preamble::default();
        let (scan, _) = feed(&mut p, &bytes, 4096);
        assert_eq!(scan, Scan::Ready);
        assert!(
            !p.is_complete(),
            "the rest of the body streams to the worker"
        );
        let taken = p.take();
        assert!(taken.len() >= HANDOFF_BODY && taken.len() < bytes.len());
        assert_eq!(taken[..], bytes[..taken.len()]);
    }

    #[test]
    fn authorizer_needs_no_stdin() {
        let mut bytes = Vec::new();
        encode_begin_request(&mut bytes, 1, ROLE_AUTHORIZER, 0);
        encode_params(&mut bytes, 1, &[]);
        let mut p = Preamble::default();
        assert_eq!(feed(&mut p, &bytes, 1).0, Scan::Ready);
        assert!(p.is_complete());
    }

    #[test]
    fn get_values_is_answered_here_and_dropped() {
        let mut query = Vec::new();
        encode_name_value(&mut query, FCGI_MPXS_CONNS, b"");
        let mut bytes = Vec::new();
        encode_record(&mut bytes, RecordType::GetValues, 0, &query);
        let mut p = Preamble::default();
        let (scan, reply) = feed(&mut p, &bytes, bytes.len());
        assert_eq!(scan, Scan::Incomplete);
        assert!(p.is_empty(), "nothing left for a worker");
        let h = Header::parse(&reply).unwrap();
        assert_eq!(h.record_type, RecordType::GetValuesResult);

        // Between the records of a request, too.
        let request = request(2, 0, b"");
        let mut mixed = request[..16].to_vec();
        mixed.extend_from_slice(&bytes);
        mixed.extend_from_slice(&request[16..]);
        let mut p = Preamble::default();
        let (scan, reply) = feed(&mut p, &mixed, 5);
        assert_eq!(scan, Scan::Ready);
        assert!(!reply.is_empty());
        assert_eq!(p.take(), request);
    }

    #[test]
    fn refused_role_is_answered_and_its_records_skipped() {
        let mut bytes = Vec::new();
        encode_begin_request(&mut bytes, 1, ROLE_FILTER, KEEP_CONN);
        encode_params(&mut bytes, 1, &[]);
        bytes.extend(request(2, 0, b""));
        let mut p = Preamble::default();
        let (scan, reply) = feed(&mut p, &bytes, bytes.len());
        assert_eq!(scan, Scan::Ready);
        assert_eq!(end_requests(&reply), vec![(1, UNKNOWN_ROLE)]);
        assert_eq!(p.take(), request(2, 0, b""));

        let mut bytes = Vec::new();
        encode_begin_request(&mut bytes, 1, ROLE_FILTER, 0);
        let mut p = Preamble::default();
        let (scan, reply) = feed(&mut p, &bytes, bytes.len());
        assert_eq!(
            scan,
            Scan::Close,
            "no FCGI_KEEP_CONN: the server expects a close"
        );
        assert_eq!(end_requests(&reply), vec![(1, UNKNOWN_ROLE)]);
    }

    #[test]
    fn second_request_id_gets_cant_mpx_conn() {
        let first = request(1, KEEP_CONN, b"");
        let mut bytes = first[..16].to_vec();
        encode_begin_request(&mut bytes, 2, ROLE_RESPONDER, 0);
        bytes.extend_from_slice(&first[16..]);
        let mut p = Preamble::default();
        let (scan, reply) = feed(&mut p, &bytes, 3);
        assert_eq!(scan, Scan::Ready);
        assert_eq!(end_requests(&reply), vec![(2, CANT_MPX_CONN)]);
        assert_eq!(p.take(), first);
    }

    #[test]
    fn abort_before_handover_is_answered_here() {
        let first = request(1, KEEP_CONN, b"");
        let mut bytes = first[..16].to_vec();
        encode_record(&mut bytes, RecordType::AbortRequest, 1, b"");
        let next = request(3, KEEP_CONN, b"");
        bytes.extend_from_slice(&next);
        let mut p = Preamble::default();
        let (scan, reply) = feed(&mut p, &bytes, bytes.len());
        assert_eq!(scan, Scan::Ready);
        assert_eq!(end_requests(&reply), vec![(1, REQUEST_COMPLETE)]);
        assert_eq!(p.take(), next, "the aborted request's records are gone");

        let mut bytes = request(1, 0, b"")[..16].to_vec();
        encode_record(&mut bytes, RecordType::AbortRequest, 1, b"");
        let mut p = Preamble::default();
        assert_eq!(feed(&mut p, &bytes, 8).0, Scan::Close);
    }

    #[test]
    fn garbage_and_oversized_params_are_errors() {
        let mut p = Preamble::default();
        p.push(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(
            p.scan(&settings(), &mut Vec::new()),
            Err(ProtocolError::BadVersion(b'G'))
        ));

        let limits = Limits {
            max_params: 100,
            ..Limits::default()
        };
        let small = PreambleSettings::new(limits, 1, 1);
        let mut bytes = Vec::new();
        encode_begin_request(&mut bytes, 1, ROLE_RESPONDER, 0);
        encode_record(&mut bytes, RecordType::Params, 1, &[b'x'; 101]);
        let mut p = Preamble::with_bytes(bytes);
        assert!(matches!(
            p.scan(&small, &mut Vec::new()),
            Err(ProtocolError::ParamsTooLarge { .. })
        ));

        // PARAMS after the end of PARAMS: the record is out of place.
        let mut bytes = Vec::new();
        encode_begin_request(&mut bytes, 1, ROLE_RESPONDER, 0);
        encode_stream_end(&mut bytes, RecordType::Params, 1);
        encode_stream_end(&mut bytes, RecordType::Params, 1);
        let mut p = Preamble::with_bytes(bytes);
        assert!(matches!(
            p.scan(&settings(), &mut Vec::new()),
            Err(ProtocolError::UnexpectedRecord { .. })
        ));
    }

    #[test]
    fn malformed_params_are_reported_while_the_body_is_awaited() {
        let mut bytes = Vec::new();
        encode_begin_request(&mut bytes, 1, ROLE_RESPONDER, 0);
        encode_record(&mut bytes, RecordType::Params, 1, &[100, 1, b'a', b'b']);
        encode_stream_end(&mut bytes, RecordType::Params, 1);
        let mut p = Preamble::with_bytes(bytes);
        assert!(matches!(
            p.scan(&settings(), &mut Vec::new()),
            Err(ProtocolError::NameValueOverflow { .. })
        ));
    }

    #[test]
    fn bytes_after_a_ready_request_go_along() {
        let mut bytes = request(1, KEEP_CONN, b"");
        let next = request(2, KEEP_CONN, b"");
        bytes.extend_from_slice(&next[..20]);
        let mut p = Preamble::with_bytes(bytes.clone());
        assert_eq!(p.scan(&settings(), &mut Vec::new()).unwrap(), Scan::Ready);
        assert_eq!(p.take(), bytes);
    }
}
