//! The FastCGI 1.0 wire format: record headers, padding, name-value pairs and
//! the fixed-size record bodies, as pure functions over byte slices.
//!
//! Nothing here performs I/O. `reader`, `server` and `response` decide
//! *when* bytes are read or written; this module only decides *what* they
//! are, so every framing rule is unit-tested against literal bytes without
//! a socket. Parsers never trust a length they have read: every slice is
//! bounds-checked, and short or inconsistent input becomes a
//! [`ProtocolError`] that names the problem (it ends up as the one log line
//! for a dropped connection), never a panic. Encoders append to a
//! caller-owned `Vec<u8>` so that a whole answer (end of the output streams
//! plus `FCGI_END_REQUEST`, say) is built first and sent with a single
//! write.

use std::fmt;

/// The only version of the protocol that exists.
pub const FCGI_VERSION_1: u8 = 1;
/// Length of a record header.
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (the length field is 16 bits).
pub const MAX_CONTENT: usize = 65535;
/// Largest padding a single record can carry (the length field is 8 bits).
pub const MAX_PADDING: usize = 255;
/// Largest record on the wire: header, content and padding.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CONTENT + MAX_PADDING;
/// Request id of management records (`FCGI_GET_VALUES`, `FCGI_UNKNOWN_TYPE`).
pub const NULL_REQUEST_ID: u16 = 0;

/// Role in `FCGI_BEGIN_REQUEST`: produce the response to an HTTP request.
pub const ROLE_RESPONDER: u16 = 1;
/// Role in `FCGI_BEGIN_REQUEST`: decide whether an HTTP request is allowed.
pub const ROLE_AUTHORIZER: u16 = 2;
/// Role in `FCGI_BEGIN_REQUEST`: filter a file (we answer `FCGI_UNKNOWN_ROLE`,
/// as to any role but the two above; named for the tests).
#[cfg(test)]
pub const ROLE_FILTER: u16 = 3;

/// Flag in `FCGI_BEGIN_REQUEST`: keep the connection open after the request.
pub const KEEP_CONN: u8 = 1;

/// `FCGI_END_REQUEST` protocol status: normal end of request.
pub const REQUEST_COMPLETE: u8 = 0;
/// `FCGI_END_REQUEST` protocol status: a second concurrent request on a connection.
pub const CANT_MPX_CONN: u8 = 1;
/// `FCGI_END_REQUEST` protocol status: out of some resource (never sent: a
/// request waits for a worker instead; named for the tests).
#[cfg(test)]
pub const OVERLOADED: u8 = 2;
/// `FCGI_END_REQUEST` protocol status: the role is not supported.
pub const UNKNOWN_ROLE: u8 = 3;

/// `FCGI_GET_VALUES` name: maximum number of concurrent transport connections.
pub const FCGI_MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
/// `FCGI_GET_VALUES` name: maximum number of concurrent requests.
pub const FCGI_MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
/// `FCGI_GET_VALUES` name: whether connections are multiplexed ("0" here).
pub const FCGI_MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// Largest length a name-value pair can declare (31 bits).
const MAX_NAME_VALUE_LEN: usize = 0x7fff_ffff;

/// The type byte of a record. Values the protocol does not define are kept
/// as [`RecordType::Other`] so they can be answered with `FCGI_UNKNOWN_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    BeginRequest,
    AbortRequest,
    EndRequest,
    Params,
    Stdin,
    Stdout,
    Stderr,
    Data,
    GetValues,
    GetValuesResult,
    UnknownType,
    Other(u8),
}

impl RecordType {
    pub fn from_u8(value: u8) -> RecordType {
        match value {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            other => RecordType::Other(other),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Other(other) => other,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            RecordType::BeginRequest => "FCGI_BEGIN_REQUEST",
            RecordType::AbortRequest => "FCGI_ABORT_REQUEST",
            RecordType::EndRequest => "FCGI_END_REQUEST",
            RecordType::Params => "FCGI_PARAMS",
            RecordType::Stdin => "FCGI_STDIN",
            RecordType::Stdout => "FCGI_STDOUT",
            RecordType::Stderr => "FCGI_STDERR",
            RecordType::Data => "FCGI_DATA",
            RecordType::GetValues => "FCGI_GET_VALUES",
            RecordType::GetValuesResult => "FCGI_GET_VALUES_RESULT",
            RecordType::UnknownType => "FCGI_UNKNOWN_TYPE",
            RecordType::Other(other) => return write!(f, "record type {other}"),
        };
        f.write_str(name)
    }
}

/// What was wrong with the bytes a peer sent. Each variant renders as one
/// self-contained log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("bad FastCGI version {0} in record header (only version 1 exists): the peer does not speak FastCGI")]
    BadVersion(u8),
    #[error("truncated record header: {got} of {HEADER_LEN} bytes before end of input")]
    TruncatedHeader { got: usize },
    #[error("truncated {record_type} record for request id {request_id}: {got} of {expected} bytes before end of input")]
    TruncatedRecord {
        record_type: RecordType,
        request_id: u16,
        got: usize,
        expected: usize,
    },
    #[error("name-value pair at offset {offset}: length field truncated")]
    NameValueTruncated { offset: usize },
    #[error("name-value pair at offset {offset}: name length {name_len} + value length {value_len} overflow the {remaining} bytes left")]
    NameValueOverflow {
        offset: usize,
        name_len: u32,
        value_len: u32,
        remaining: usize,
    },
    #[error(
        "FCGI_PARAMS of request id {request_id} exceed the limit of {limit} bytes (max_params)"
    )]
    ParamsTooLarge { request_id: u16, limit: usize },
    #[error("unexpected {record_type} record for request id {request_id}")]
    UnexpectedRecord {
        record_type: RecordType,
        request_id: u16,
    },
    #[error("{record_type} record for request id {request_id} has a {length}-byte body, expected {expected}")]
    BadBodyLength {
        record_type: RecordType,
        request_id: u16,
        length: usize,
        expected: usize,
    },
    #[error(
        "connection closed before request id {request_id} was complete ({missing} had not ended)"
    )]
    IncompleteRequest {
        request_id: u16,
        missing: &'static str,
    },
}

/// A record header. `version` is always [`FCGI_VERSION_1`] once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub record_type: RecordType,
    pub request_id: u16,
    pub content_length: u16,
    pub padding_length: u8,
}

impl Header {
    /// Header for `content_length` bytes of content, padded to a multiple of 8.
    pub fn new(record_type: RecordType, request_id: u16, content_length: u16) -> Header {
        Header {
            version: FCGI_VERSION_1,
            record_type,
            request_id,
            content_length,
            padding_length: padding_for(usize::from(content_length)),
        }
    }

    /// Parses the first [`HEADER_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Header, ProtocolError> {
        let Some(&[version, record_type, id_hi, id_lo, len_hi, len_lo, padding_length, _reserved]) =
            buf.first_chunk::<HEADER_LEN>()
        else {
            return Err(ProtocolError::TruncatedHeader { got: buf.len() });
        };
        if version != FCGI_VERSION_1 {
            return Err(ProtocolError::BadVersion(version));
        }
        Ok(Header {
            version,
            record_type: RecordType::from_u8(record_type),
            request_id: u16::from_be_bytes([id_hi, id_lo]),
            content_length: u16::from_be_bytes([len_hi, len_lo]),
            padding_length,
        })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type.as_u8(),
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_length,
            0,
        ]
    }

    /// Length of the whole record on the wire: header, content and padding.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + usize::from(self.content_length) + usize::from(self.padding_length)
    }
}

/// Padding that brings `content_len` to a multiple of 8, as the spec recommends.
pub fn padding_for(content_len: usize) -> u8 {
    // Always in 0..8, so the narrowing is exact.
    ((8 - content_len % 8) % 8) as u8
}

const ZERO_PADDING: [u8; 8] = [0; 8];

/// Appends one record carrying `content`, padded to a multiple of 8.
///
/// `content` must fit in one record ([`MAX_CONTENT`]); a longer one is a
/// caller bug that panics in debug builds and is split into several records
/// in release builds, so the output is always well-formed.
pub fn encode_record(out: &mut Vec<u8>, record_type: RecordType, request_id: u16, content: &[u8]) {
    debug_assert!(
        content.len() <= MAX_CONTENT,
        "{record_type} content of {} bytes does not fit one record",
        content.len()
    );
    if content.len() > MAX_CONTENT {
        encode_stream(out, record_type, request_id, content);
    } else {
        push_record(out, record_type, request_id, content);
    }
}

/// `content.len()` must be at most [`MAX_CONTENT`].
fn push_record(out: &mut Vec<u8>, record_type: RecordType, request_id: u16, content: &[u8]) {
    let header = Header::new(record_type, request_id, content.len() as u16);
    out.reserve(header.record_len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(content);
    out.extend_from_slice(&ZERO_PADDING[..usize::from(header.padding_length)]);
}

/// Appends `data` as records of at most [`MAX_CONTENT`] bytes each. Empty
/// `data` appends nothing: the empty record that ends a stream is written
/// only by [`encode_stream_end`].
pub fn encode_stream(out: &mut Vec<u8>, record_type: RecordType, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        push_record(out, record_type, request_id, chunk);
    }
}

/// Appends the empty record that ends a stream (`FCGI_PARAMS`, `FCGI_STDIN`,
/// `FCGI_STDOUT`, `FCGI_STDERR`, `FCGI_DATA`).
pub fn encode_stream_end(out: &mut Vec<u8>, record_type: RecordType, request_id: u16) {
    push_record(out, record_type, request_id, &[]);
}

/// A name-value pair as carried by `FCGI_PARAMS` and `FCGI_GET_VALUES`:
/// raw bytes, since params need not be UTF-8.
pub type NameValue = (Vec<u8>, Vec<u8>);

/// Splits a 1-byte or 4-byte name-value length off the front of `buf`.
fn split_length(buf: &[u8]) -> Option<(u32, &[u8])> {
    match buf {
        [b0, rest @ ..] if b0 & 0x80 == 0 => Some((u32::from(*b0), rest)),
        [b0, b1, b2, b3, rest @ ..] => Some((u32::from_be_bytes([b0 & 0x7f, *b1, *b2, *b3]), rest)),
        _ => None,
    }
}

/// Parses a complete sequence of name-value pairs (the concatenated content
/// of a `FCGI_PARAMS` stream, or of a `FCGI_GET_VALUES[_RESULT]` record).
pub fn parse_name_values(buf: &[u8]) -> Result<Vec<NameValue>, ProtocolError> {
    let mut pairs = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let offset = buf.len() - rest.len();
        let truncated = ProtocolError::NameValueTruncated { offset };
        let (name_len, after) = split_length(rest).ok_or(truncated.clone())?;
        let (value_len, after) = split_length(after).ok_or(truncated)?;
        // Each length is below 2^31, so the sum cannot overflow a u64.
        if u64::from(name_len) + u64::from(value_len) > after.len() as u64 {
            return Err(ProtocolError::NameValueOverflow {
                offset,
                name_len,
                value_len,
                remaining: after.len(),
            });
        }
        let (name, after) = after.split_at(name_len as usize);
        let (value, after) = after.split_at(value_len as usize);
        pairs.push((name.to_vec(), value.to_vec()));
        rest = after;
    }
    Ok(pairs)
}

fn encode_length(out: &mut Vec<u8>, len: usize) {
    assert!(
        len <= MAX_NAME_VALUE_LEN,
        "a FastCGI name or value cannot exceed 2^31-1 bytes ({len} given)"
    );
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one name-value pair, using 1-byte lengths below 128 and 4-byte
/// lengths from 128 on.
///
/// # Panics
/// If `name` or `value` is 2 GiB or longer, which the format cannot express.
pub fn encode_name_value(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    encode_length(out, name.len());
    encode_length(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Appends `params` as a complete `FCGI_PARAMS` stream: the pairs, split over
/// as many records as needed, then the empty record that ends the stream.
pub fn encode_params(out: &mut Vec<u8>, request_id: u16, params: &[NameValue]) {
    let mut pairs = Vec::new();
    for (name, value) in params {
        encode_name_value(&mut pairs, name, value);
    }
    encode_stream(out, RecordType::Params, request_id, &pairs);
    encode_stream_end(out, RecordType::Params, request_id);
}

/// Body of `FCGI_BEGIN_REQUEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    pub role: u16,
    pub flags: u8,
}

impl BeginRequest {
    /// Parses the 8-byte body of a `FCGI_BEGIN_REQUEST` record; `request_id`
    /// only serves the error message.
    pub fn parse(request_id: u16, content: &[u8]) -> Result<BeginRequest, ProtocolError> {
        match content {
            &[role_hi, role_lo, flags, _, _, _, _, _] => Ok(BeginRequest {
                role: u16::from_be_bytes([role_hi, role_lo]),
                flags,
            }),
            _ => Err(ProtocolError::BadBodyLength {
                record_type: RecordType::BeginRequest,
                request_id,
                length: content.len(),
                expected: 8,
            }),
        }
    }

    pub fn keep_conn(&self) -> bool {
        self.flags & KEEP_CONN != 0
    }
}

/// Appends a `FCGI_BEGIN_REQUEST` record.
pub fn encode_begin_request(out: &mut Vec<u8>, request_id: u16, role: u16, flags: u8) {
    let [role_hi, role_lo] = role.to_be_bytes();
    let body = [role_hi, role_lo, flags, 0, 0, 0, 0, 0];
    push_record(out, RecordType::BeginRequest, request_id, &body);
}

/// Body of `FCGI_END_REQUEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    pub app_status: u32,
    pub protocol_status: u8,
}

impl EndRequest {
    /// Parses the 8-byte body of a `FCGI_END_REQUEST` record; `request_id`
    /// only serves the error message.
    pub fn parse(request_id: u16, content: &[u8]) -> Result<EndRequest, ProtocolError> {
        match content {
            &[s0, s1, s2, s3, protocol_status, _, _, _] => Ok(EndRequest {
                app_status: u32::from_be_bytes([s0, s1, s2, s3]),
                protocol_status,
            }),
            _ => Err(ProtocolError::BadBodyLength {
                record_type: RecordType::EndRequest,
                request_id,
                length: content.len(),
                expected: 8,
            }),
        }
    }
}

/// Appends a `FCGI_END_REQUEST` record.
pub fn encode_end_request(
    out: &mut Vec<u8>,
    request_id: u16,
    app_status: u32,
    protocol_status: u8,
) {
    let [s0, s1, s2, s3] = app_status.to_be_bytes();
    let body = [s0, s1, s2, s3, protocol_status, 0, 0, 0];
    push_record(out, RecordType::EndRequest, request_id, &body);
}

/// Appends the `FCGI_UNKNOWN_TYPE` answer to a management record of type
/// `type_byte`.
pub fn encode_unknown_type(out: &mut Vec<u8>, type_byte: u8) {
    let body = [type_byte, 0, 0, 0, 0, 0, 0, 0];
    push_record(out, RecordType::UnknownType, NULL_REQUEST_ID, &body);
}

#[cfg(test)]
mod tests;
