//! One FastCGI connection seen from the application side: reading complete
//! requests from it (the response goes out through `response`).
//!
//! A worker serves one connection and one request at a time
//! (`FCGI_MPXS_CONNS=0`), so the reading side is a small state machine driven
//! by [`ServerConnection::read_request`]. It pulls records out of its own
//! buffer (a whole small request arrives with a single `read`), answers
//! management records and protocol refusals on the spot, and returns a
//! [`Request`] only once the `FCGI_PARAMS` and `FCGI_STDIN` streams have both
//! ended: the script then starts with its whole environment and body at hand
//! and never waits on the network for them. The body is read to the end of
//! `FCGI_STDIN` whatever `CONTENT_LENGTH` says, which keeps the connection in
//! sync even when the two disagree; it is bounded in memory (spilled to an
//! unlinked temp file past [`Limits::spill_threshold`]) and in size
//! ([`Limits::max_body`]). The writing side, [`ResponseWriter`], is a separate
//! type because the response is produced while the script runs, possibly by
//! another thread holding another handle on the same socket; it frames each
//! write into one `writev` and ends the request with one write.

use std::io::{Read, Write};

use super::body::BodyBuilder;
use super::reader::{Record, RecordReader};
use super::record::{
    encode_end_request, encode_name_value, encode_record, encode_unknown_type, parse_name_values,
    BeginRequest, NameValue, ProtocolError, RecordType, CANT_MPX_CONN, FCGI_MAX_CONNS,
    FCGI_MAX_REQS, FCGI_MPXS_CONNS, NULL_REQUEST_ID, REQUEST_COMPLETE, ROLE_AUTHORIZER,
    ROLE_RESPONDER, UNKNOWN_ROLE,
};
use super::request::{ConnectionError, Limits, Request};

/// The application side of one FastCGI connection. Reads requests one at a
/// time and answers what needs no script on its own: `FCGI_GET_VALUES`,
/// unknown management types, refused roles, a second concurrent request,
/// `FCGI_ABORT_REQUEST` of a request still being received.
pub struct ServerConnection<S> {
    reader: RecordReader<S>,
    settings: Settings,
}

pub(super) struct Settings {
    pub(super) limits: Limits,
    pub(super) max_conns: usize,
    pub(super) max_reqs: usize,
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
                            request_id: request.id,
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
    let id = header.request_id;
    if id == NULL_REQUEST_ID {
        answer_management(settings, header.record_type, content, reply)?;
        return Ok(Step::Continue);
    }
    if header.record_type == RecordType::BeginRequest {
        let begin = BeginRequest::parse(id, content)?;
        return match pending {
            Some(current) if current.id == id => Err(ProtocolError::UnexpectedRecord {
                record_type: RecordType::BeginRequest,
                request_id: id,
            }
            .into()),
            Some(_) => {
                encode_end_request(reply, id, 0, CANT_MPX_CONN);
                Ok(Step::Continue)
            }
            None if begin.role == ROLE_RESPONDER || begin.role == ROLE_AUTHORIZER => {
                *pending = Some(PendingRequest::new(id, begin, &settings.limits));
                Ok(Step::Continue)
            }
            None => {
                encode_end_request(reply, id, 0, UNKNOWN_ROLE);
                Ok(if begin.keep_conn() {
                    Step::Continue
                } else {
                    Step::ConnectionDone
                })
            }
        };
    }
    // Records of requests refused above, or already answered (a late
    // FCGI_ABORT_REQUEST), carry another id and are skipped.
    let Some(current) = pending.as_mut().filter(|p| p.id == id) else {
        log::trace!("skipping {} record for request id {id}", header.record_type);
        return Ok(Step::Continue);
    };
    match header.record_type {
        RecordType::Params => current.push_params(content, settings.limits.max_params)?,
        RecordType::Stdin => current.push_stdin(content)?,
        RecordType::AbortRequest => {
            let keep_conn = current.keep_conn;
            *pending = None;
            encode_end_request(reply, id, 0, REQUEST_COMPLETE);
            return Ok(if keep_conn {
                Step::Continue
            } else {
                Step::ConnectionDone
            });
        }
        record_type => {
            return Err(ProtocolError::UnexpectedRecord {
                record_type,
                request_id: id,
            }
            .into())
        }
    }
    if current.is_complete() {
        return Ok(pending.take().map_or(Step::Continue, Step::Complete));
    }
    Ok(Step::Continue)
}

/// Appends to `reply` the answer to a management record (request id 0).
pub(super) fn answer_management(
    settings: &Settings,
    record_type: RecordType,
    content: &[u8],
    reply: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    if record_type != RecordType::GetValues {
        encode_unknown_type(reply, record_type.as_u8());
        return Ok(());
    }
    let mut result = Vec::new();
    let mut answered: Vec<&[u8]> = Vec::new();
    for (name, _) in parse_name_values(content)? {
        let (known, value) = match name.as_slice() {
            FCGI_MAX_CONNS => (FCGI_MAX_CONNS, settings.max_conns.to_string()),
            FCGI_MAX_REQS => (FCGI_MAX_REQS, settings.max_reqs.to_string()),
            FCGI_MPXS_CONNS => (FCGI_MPXS_CONNS, "0".to_owned()),
            _ => continue,
        };
        // Answering each name once keeps the result within one record
        // however often the query repeats it.
        if !answered.contains(&known) {
            answered.push(known);
            encode_name_value(&mut result, known, value.as_bytes());
        }
    }
    encode_record(reply, RecordType::GetValuesResult, NULL_REQUEST_ID, &result);
    Ok(())
}

/// A request whose streams are still arriving.
struct PendingRequest {
    id: u16,
    role: u16,
    keep_conn: bool,
    params: Vec<u8>,
    /// Parsed as soon as the PARAMS stream ends, so a malformed pair is
    /// reported then, not after a body that may never come.
    parsed_params: Vec<NameValue>,
    params_done: bool,
    body: BodyBuilder,
    stdin_done: bool,
}

impl PendingRequest {
    fn new(id: u16, begin: BeginRequest, limits: &Limits) -> PendingRequest {
        PendingRequest {
            id,
            role: begin.role,
            keep_conn: begin.keep_conn(),
            params: Vec::new(),
            parsed_params: Vec::new(),
            params_done: false,
            body: BodyBuilder::new(limits),
            stdin_done: false,
        }
    }

    fn push_params(&mut self, content: &[u8], max_params: usize) -> Result<(), ProtocolError> {
        if self.params_done {
            return Err(self.unexpected(RecordType::Params));
        }
        if content.is_empty() {
            self.parsed_params = parse_name_values(&std::mem::take(&mut self.params))?;
            self.params_done = true;
        } else if self.params.len() + content.len() > max_params {
            return Err(ProtocolError::ParamsTooLarge {
                request_id: self.id,
                limit: max_params,
            });
        } else {
            self.params.extend_from_slice(content);
        }
        Ok(())
    }

    fn push_stdin(&mut self, content: &[u8]) -> Result<(), ConnectionError> {
        if self.stdin_done {
            return Err(self.unexpected(RecordType::Stdin).into());
        }
        if content.is_empty() {
            self.stdin_done = true;
        } else {
            self.body.push(content);
        }
        Ok(())
    }

    fn unexpected(&self, record_type: RecordType) -> ProtocolError {
        ProtocolError::UnexpectedRecord {
            record_type,
            request_id: self.id,
        }
    }

    /// An authorizer gets no `FCGI_STDIN` (Apache's `mod_authnz_fcgi` sends
    /// none), so its request is complete with its params.
    fn is_complete(&self) -> bool {
        self.params_done && (self.stdin_done || self.role == ROLE_AUTHORIZER)
    }

    fn missing_stream(&self) -> &'static str {
        if self.params_done {
            "FCGI_STDIN"
        } else {
            "FCGI_PARAMS"
        }
    }

    fn into_request(self) -> Request {
        let (body, body_refused) = self.body.finish();
        Request {
            id: self.id,
            keep_conn: self.keep_conn,
            params: self.parsed_params,
            body,
            body_refused,
        }
    }
}
