//! The rules of one connection's records, in one place for both of their
//! readers: a worker's `ServerConnection`, which reads a request to serve
//! it, and the `Preamble`, which reads one far enough to hand it to a
//! worker. Each record is judged against the request being read
//! ([`Current`]): management records are answered (`FCGI_GET_VALUES`,
//! `FCGI_UNKNOWN_TYPE`); a `FCGI_BEGIN_REQUEST` starts a request, or is
//! refused (`FCGI_UNKNOWN_ROLE` for a role we do not serve,
//! `FCGI_CANT_MPX_CONN` for a second request id begun while the current
//! one's input is still open); `FCGI_ABORT_REQUEST` ends the current
//! request; records of other ids are skipped; a stream record out of
//! place, or params past their limit, is a protocol error. What the
//! reader keeps of a stream record (the bytes, or just their count) is its
//! own business. Pure: bytes in, a verdict and the answers out.

use super::record::{
    encode_end_request, encode_name_value, encode_record, encode_unknown_type, parse_name_values,
    BeginRequest, Header, ProtocolError, RecordType, CANT_MPX_CONN, FCGI_MAX_CONNS, FCGI_MAX_REQS,
    FCGI_MPXS_CONNS, NULL_REQUEST_ID, REQUEST_COMPLETE, ROLE_AUTHORIZER, ROLE_RESPONDER,
    UNKNOWN_ROLE,
};
use super::request::Limits;

/// What the rules take from the daemon: the params limit and the answers
/// to `FCGI_GET_VALUES`.
pub(super) struct Settings {
    pub(super) limits: Limits,
    pub(super) max_conns: usize,
    pub(super) max_reqs: usize,
}

/// The request being read: what the rules need to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Current {
    pub(super) id: u16,
    pub(super) role: u16,
    pub(super) keep_conn: bool,
    /// `FCGI_PARAMS` bytes so far.
    pub(super) params_len: usize,
    pub(super) params_done: bool,
    /// `FCGI_STDIN` bytes so far.
    pub(super) stdin_len: usize,
    pub(super) stdin_done: bool,
}

impl Current {
    fn new(id: u16, begin: BeginRequest) -> Current {
        Current {
            id,
            role: begin.role,
            keep_conn: begin.keep_conn(),
            params_len: 0,
            params_done: false,
            stdin_len: 0,
            stdin_done: false,
        }
    }

    /// Both streams are there. An authorizer gets no `FCGI_STDIN`
    /// (Apache's `mod_authnz_fcgi` sends none), so its request is complete
    /// with its params.
    pub(super) fn is_complete(&self) -> bool {
        self.params_done && (self.stdin_done || self.role == ROLE_AUTHORIZER)
    }
}

/// What a record means for the request being read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict<'c> {
    /// Answered (a management record, a refused request that keeps the
    /// connection, a second request), or another request's: nothing more
    /// to do with it.
    Skip,
    /// A request begins: it is the current one from now on.
    Begin(Current),
    /// The current request's `FCGI_PARAMS` bytes (counted; empty: the
    /// stream's end).
    Params(&'c [u8]),
    /// The current request's `FCGI_STDIN` bytes (counted; empty: the
    /// stream's end).
    Stdin(&'c [u8]),
    /// The current request was aborted and answered: forget it, and close
    /// the connection when it did not ask to keep it.
    Aborted { close: bool },
    /// A request was refused that did not ask to keep the connection: the
    /// web server expects it closed.
    Close,
}

/// Judges one whole record against `current` (updating its counts), with
/// the answers for the web server appended to `reply`.
pub(super) fn judge<'c>(
    settings: &Settings,
    current: Option<&mut Current>,
    header: Header,
    content: &'c [u8],
    reply: &mut Vec<u8>,
) -> Result<Verdict<'c>, ProtocolError> {
    let id = header.request_id;
    if id == NULL_REQUEST_ID {
        answer_management(settings, header.record_type, content, reply)?;
        return Ok(Verdict::Skip);
    }
    if header.record_type == RecordType::BeginRequest {
        let begin = BeginRequest::parse(id, content)?;
        return match current {
            Some(current) if current.id == id => Err(ProtocolError::UnexpectedRecord {
                record_type: RecordType::BeginRequest,
                request_id: id,
            }),
            Some(_) => {
                encode_end_request(reply, id, 0, CANT_MPX_CONN);
                Ok(Verdict::Skip)
            }
            None if begin.role == ROLE_RESPONDER || begin.role == ROLE_AUTHORIZER => {
                Ok(Verdict::Begin(Current::new(id, begin)))
            }
            None => {
                encode_end_request(reply, id, 0, UNKNOWN_ROLE);
                Ok(if begin.keep_conn() {
                    Verdict::Skip
                } else {
                    Verdict::Close
                })
            }
        };
    }
    // Records of requests refused above, or already answered (a late
    // FCGI_ABORT_REQUEST), carry another id and are skipped.
    let Some(current) = current.filter(|c| c.id == id) else {
        log::trace!("skipping {} record for request id {id}", header.record_type);
        return Ok(Verdict::Skip);
    };
    let unexpected = ProtocolError::UnexpectedRecord {
        record_type: header.record_type,
        request_id: id,
    };
    match header.record_type {
        RecordType::Params if current.params_done => Err(unexpected),
        RecordType::Params => {
            current.params_len += content.len();
            current.params_done = content.is_empty();
            if current.params_len > settings.limits.max_params {
                return Err(ProtocolError::ParamsTooLarge {
                    request_id: id,
                    limit: settings.limits.max_params,
                });
            }
            Ok(Verdict::Params(content))
        }
        RecordType::Stdin if current.stdin_done => Err(unexpected),
        RecordType::Stdin => {
            current.stdin_len += content.len();
            current.stdin_done = content.is_empty();
            Ok(Verdict::Stdin(content))
        }
        RecordType::AbortRequest => {
            encode_end_request(reply, id, 0, REQUEST_COMPLETE);
            Ok(Verdict::Aborted {
                close: !current.keep_conn,
            })
        }
        _ => Err(unexpected),
    }
}

/// Appends to `reply` the answer to a management record (request id 0).
fn answer_management(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{EndRequest, HEADER_LEN, KEEP_CONN, ROLE_FILTER};

    fn settings() -> Settings {
        Settings {
            limits: Limits {
                max_params: 10,
                ..Limits::default()
            },
            max_conns: 7,
            max_reqs: 3,
        }
    }

    fn header(record_type: RecordType, request_id: u16, content: &[u8]) -> Header {
        Header {
            version: 1,
            record_type,
            request_id,
            content_length: content.len() as u16,
            padding_length: 0,
        }
    }

    fn begin(role: u16, flags: u8) -> Vec<u8> {
        let [hi, lo] = role.to_be_bytes();
        vec![hi, lo, flags, 0, 0, 0, 0, 0]
    }

    /// `content` as a record of `record_type` for `id`, judged against
    /// `current`: the verdict (as text, it borrows the content) and the
    /// (request id, protocol status) of each FCGI_END_REQUEST answered.
    fn judged(
        current: Option<&mut Current>,
        record_type: RecordType,
        id: u16,
        content: &[u8],
    ) -> (Result<String, ProtocolError>, Vec<(u16, u8)>) {
        let mut reply = Vec::new();
        let verdict = judge(
            &settings(),
            current,
            header(record_type, id, content),
            content,
            &mut reply,
        )
        .map(|v| format!("{v:?}"));
        let mut ends = Vec::new();
        let mut rest = &reply[..];
        while let Ok(h) = Header::parse(rest) {
            if h.record_type == RecordType::EndRequest {
                let end = EndRequest::parse(h.request_id, &rest[HEADER_LEN..HEADER_LEN + 8]);
                ends.push((h.request_id, end.unwrap().protocol_status));
            }
            rest = &rest[h.record_len()..];
        }
        (verdict, ends)
    }

    fn started(id: u16, flags: u8) -> Current {
        match judge(
            &settings(),
            None,
            header(RecordType::BeginRequest, id, &begin(ROLE_RESPONDER, flags)),
            &begin(ROLE_RESPONDER, flags),
            &mut Vec::new(),
        ) {
            Ok(Verdict::Begin(current)) => current,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_responder_or_an_authorizer_begins_other_roles_are_refused() {
        let c = started(1, KEEP_CONN);
        assert_eq!((c.id, c.role, c.keep_conn), (1, ROLE_RESPONDER, true));
        let (v, _) = judged(
            None,
            RecordType::BeginRequest,
            2,
            &begin(ROLE_AUTHORIZER, 0),
        );
        assert!(v.unwrap().starts_with("Begin("));
        let refused = judged(
            None,
            RecordType::BeginRequest,
            3,
            &begin(ROLE_FILTER, KEEP_CONN),
        );
        assert_eq!(refused, (Ok("Skip".into()), vec![(3, UNKNOWN_ROLE)]));
        let closed = judged(None, RecordType::BeginRequest, 3, &begin(ROLE_FILTER, 0));
        assert_eq!(closed, (Ok("Close".into()), vec![(3, UNKNOWN_ROLE)]));
    }

    #[test]
    fn a_second_request_id_is_refused_and_the_same_one_twice_is_an_error() {
        let mut c = started(1, KEEP_CONN);
        let second = judged(
            Some(&mut c),
            RecordType::BeginRequest,
            2,
            &begin(ROLE_RESPONDER, 0),
        );
        assert_eq!(second, (Ok("Skip".into()), vec![(2, CANT_MPX_CONN)]));
        let (again, _) = judged(
            Some(&mut c),
            RecordType::BeginRequest,
            1,
            &begin(ROLE_RESPONDER, 0),
        );
        assert!(matches!(again, Err(ProtocolError::UnexpectedRecord { .. })));
    }

    #[test]
    fn streams_are_counted_limited_and_end_once() {
        let mut c = started(1, 0);
        let (v, _) = judged(Some(&mut c), RecordType::Params, 1, b"abcdef");
        assert_eq!(v.unwrap(), "Params([97, 98, 99, 100, 101, 102])");
        let (v, _) = judged(Some(&mut c), RecordType::Params, 1, b"");
        assert_eq!(v.unwrap(), "Params([])");
        assert!(c.params_done && !c.is_complete());
        let (late, _) = judged(Some(&mut c), RecordType::Params, 1, b"x");
        assert!(late.is_err(), "params after their end");
        judged(Some(&mut c), RecordType::Stdin, 1, b"body")
            .0
            .unwrap();
        judged(Some(&mut c), RecordType::Stdin, 1, b"").0.unwrap();
        assert_eq!(c.stdin_len, 4);
        assert!(c.is_complete());
        assert!(judged(Some(&mut c), RecordType::Stdin, 1, b"").0.is_err());
        let mut big = started(2, 0);
        let (v, _) = judged(Some(&mut big), RecordType::Params, 2, b"0123456789x");
        assert!(matches!(
            v,
            Err(ProtocolError::ParamsTooLarge { limit: 10, .. })
        ));
    }

    #[test]
    fn an_abort_is_answered_and_closes_only_without_keep_conn() {
        let mut kept = started(1, KEEP_CONN);
        let abort = judged(Some(&mut kept), RecordType::AbortRequest, 1, b"");
        assert_eq!(
            abort,
            (
                Ok("Aborted { close: false }".into()),
                vec![(1, REQUEST_COMPLETE)]
            )
        );
        let mut once = started(1, 0);
        let (v, _) = judged(Some(&mut once), RecordType::AbortRequest, 1, b"");
        assert_eq!(v.unwrap(), "Aborted { close: true }");
    }

    #[test]
    fn other_ids_are_skipped_and_management_is_answered() {
        let mut c = started(1, 0);
        assert_eq!(
            judged(Some(&mut c), RecordType::Stdin, 9, b"x"),
            (Ok("Skip".into()), vec![])
        );
        assert_eq!(c.stdin_len, 0, "another request's bytes are not counted");
        let (v, _) = judged(Some(&mut c), RecordType::Stdout, 1, b"x");
        assert!(v.is_err(), "a record only the application sends");
        let mut query = Vec::new();
        encode_name_value(&mut query, FCGI_MAX_CONNS, b"");
        let mut reply = Vec::new();
        let v = judge(
            &settings(),
            None,
            header(RecordType::GetValues, NULL_REQUEST_ID, &query),
            &query,
            &mut reply,
        );
        assert_eq!(v, Ok(Verdict::Skip));
        let answer = Header::parse(&reply).unwrap();
        assert_eq!(answer.record_type, RecordType::GetValuesResult);
        let end = HEADER_LEN + usize::from(answer.content_length);
        let pairs = parse_name_values(&reply[HEADER_LEN..end]).unwrap();
        assert_eq!(pairs, vec![(FCGI_MAX_CONNS.to_vec(), b"7".to_vec())]);
    }
}
