//! One FastCGI connection seen from the application side: reading complete
//! requests from it (the response goes out through `writer`).
//!
//! A worker serves one connection and one request at a time
//! (`FCGI_MPXS_CONNS=0`), so the reading side is a small state machine driven
//! by [`ServerConnection::read_request`]. It pulls records out of its own
//! buffer (a whole small request arrives with a single `read`), answers
//! management records and protocol refusals on the spot (written to the
//! stream, whose writing side in the daemon is the one writer of client
//! sockets, `writer::ClientSocket`), and returns a
//! [`Request`] only once the `FCGI_PARAMS` and `FCGI_STDIN` streams have both
//! ended: the script then starts with its whole environment and body at hand
//! and never waits on the network for them. The body is read to the end of
//! `FCGI_STDIN` whatever `CONTENT_LENGTH` says, which keeps the connection in
//! sync even when the two disagree; it is bounded in memory (spilled to an
//! unlinked temp file past [`Limits::spill_threshold`]) and in size
//! ([`Limits::max_body`]). The response's writing side, [`ResponseWriter`],
//! is a separate type because the response is produced while the script
//! runs, possibly by another thread holding another handle on the same
//! socket; it frames each write into one `writev` and ends the request with
//! one write.

use std::io::{Read, Write};

use super::body::BodyBuilder;
use super::reader::{Record, RecordReader};
use super::record::{parse_name_values, NameValue, ProtocolError};
use super::request::{ConnectionError, Limits, Request};
use super::rules::{judge, Current, Settings, Verdict};

/// The application side of one FastCGI connection. Reads requests one at a
/// time and answers what needs no script on its own: `FCGI_GET_VALUES`,
/// unknown management types, refused roles, a second concurrent request,
/// `FCGI_ABORT_REQUEST` of a request still being received.
pub struct ServerConnection<S> {
    reader: RecordReader<S>,
    settings: Settings,
}

/// What one record did to the request being read.
enum Step {
    Continue,
    Complete(PendingRequest),
    /// A request was ended without `FCGI_KEEP_CONN`: the web server expects
    /// the connection to be closed.
    ConnectionDone,
}

impl<S: Read + Write> ServerConnection<S> {
    /// `max_conns` and `max_reqs` are the values reported to
    /// `FCGI_GET_VALUES`.
    pub fn new(
        stream: S,
        limits: Limits,
        max_conns: usize,
        max_reqs: usize,
    ) -> ServerConnection<S> {
        ServerConnection {
            reader: RecordReader::new(stream),
            settings: Settings {
                limits,
                max_conns,
                max_reqs,
            },
        }
    }

    /// Reads the next complete request.
    ///
    /// Returns `Ok(None)` when no further request will come on this
    /// connection: the peer closed it between requests, or a request that
    /// did not ask for `FCGI_KEEP_CONN` was refused (`FCGI_UNKNOWN_ROLE`) or
    /// aborted, after which the spec has the application close the
    /// connection. An aborted request is answered with `FCGI_END_REQUEST`,
    /// app status 0 and `FCGI_REQUEST_COMPLETE`: no script ran, so there is
    /// no exit code to report. After a request without `keep_conn`, the
    /// caller closes the connection once the response is written.
    pub fn read_request(&mut self) -> Result<Option<Request>, ConnectionError> {
        let mut pending: Option<PendingRequest> = None;
        let mut reply = Vec::new();
        loop {
            let step = match self.reader.next_record()? {
                Some(record) => handle_record(&self.settings, record, &mut pending, &mut reply)?,
                None => {
                    return match pending {
                        None => Ok(None),
                        Some(request) => Err(ProtocolError::IncompleteRequest {
                            request_id: request.current.id,
                            missing: request.missing_stream(),
                        }
                        .into()),
                    }
                }
            };
            if !reply.is_empty() {
                let stream = self.reader.get_mut();
                stream.write_all(&reply)?;
                stream.flush()?;
                reply.clear();
            }
            match step {
                Step::Continue => {}
                Step::Complete(request) => return Ok(Some(request.into_request())),
                Step::ConnectionDone => return Ok(None),
            }
        }
    }
}

impl<S> ServerConnection<S> {
    pub fn get_ref(&self) -> &S {
        self.reader.get_ref()
    }

    pub fn get_mut(&mut self) -> &mut S {
        self.reader.get_mut()
    }

    /// Whether bytes of a further record were already read from the stream
    /// (a pipelined request, an `FCGI_ABORT_REQUEST`). Polling the socket
    /// alone would miss them.
    pub fn has_buffered_input(&self) -> bool {
        !self.reader.buffered().is_empty()
    }

    /// The stream, and the bytes already read from it that belong to
    /// records not yet processed.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        self.reader.into_parts()
    }
}

fn handle_record(
    settings: &Settings,
    record: Record<'_>,
    pending: &mut Option<PendingRequest>,
    reply: &mut Vec<u8>,
) -> Result<Step, ConnectionError> {
    let Record { header, content } = record;
    let current = pending.as_mut().map(|p| &mut p.current);
    match judge(settings, current, header, content, reply)? {
        Verdict::Skip => return Ok(Step::Continue),
        Verdict::Begin(current) => {
            *pending = Some(PendingRequest::new(current, &settings.limits));
            return Ok(Step::Continue);
        }
        Verdict::Aborted { close } => {
            *pending = None;
            return Ok(if close {
                Step::ConnectionDone
            } else {
                Step::Continue
            });
        }
        Verdict::Close => return Ok(Step::ConnectionDone),
        Verdict::Params(content) => {
            if let Some(request) = pending.as_mut() {
                request.take_params(content)?;
            }
        }
        Verdict::Stdin(content) => {
            if let Some(request) = pending.as_mut().filter(|_| !content.is_empty()) {
                request.body.push(content);
            }
        }
    }
    if pending.as_ref().is_some_and(|p| p.current.is_complete()) {
        return Ok(pending.take().map_or(Step::Continue, Step::Complete));
    }
    Ok(Step::Continue)
}

/// A request whose streams are still arriving.
struct PendingRequest {
    /// Its id, role and how far its streams are (`rules`).
    current: Current,
    params: Vec<u8>,
    /// Parsed as soon as the PARAMS stream ends, so a malformed pair is
    /// reported then, not after a body that may never come.
    parsed_params: Vec<NameValue>,
    body: BodyBuilder,
}

impl PendingRequest {
    fn new(current: Current, limits: &Limits) -> PendingRequest {
        PendingRequest {
            current,
            params: Vec::new(),
            parsed_params: Vec::new(),
            body: BodyBuilder::new(limits),
        }
    }

    /// FCGI_PARAMS bytes the rules accepted; at the stream's end (empty),
    /// the params parsed.
    fn take_params(&mut self, content: &[u8]) -> Result<(), ProtocolError> {
        if content.is_empty() {
            self.parsed_params = parse_name_values(&std::mem::take(&mut self.params))?;
        } else {
            self.params.extend_from_slice(content);
        }
        Ok(())
    }

    fn missing_stream(&self) -> &'static str {
        if self.current.params_done {
            "FCGI_STDIN"
        } else {
            "FCGI_PARAMS"
        }
    }

    fn into_request(self) -> Request {
        let (body, body_refused) = self.body.finish();
        Request {
            id: self.current.id,
            keep_conn: self.current.keep_conn,
            params: self.parsed_params,
            body,
            body_refused,
        }
    }
}
