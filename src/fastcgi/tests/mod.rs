//! The connection layer end to end over in-memory streams: requests read
//! record by record, management records answered (here), bodies kept
//! (`body`), input the protocol forbids refused (`errors`), responses
//! framed (`response`).

mod body;
mod errors;
mod response;

use std::io::{self, IoSlice, Read, Seek, Write};
use std::{env, fs};

use super::body::create_unlinked_named;
use super::record::*;
use super::request::{Body, BodyRefused, ConnectionError, Limits, Request};
use super::server::ServerConnection;
use super::writer::ResponseWriter;
use crate::fastcgi::record::{
    encode_begin_request, encode_params, encode_stream, EndRequest, KEEP_CONN, ROLE_FILTER,
};
use std::os::fd::AsRawFd;

/// The body's length (a file body's from `fstat`).
fn body_len(body: &Body) -> u64 {
    match body {
        Body::Empty => 0,
        Body::Memory(bytes) => bytes.len() as u64,
        Body::File(file) => file.metadata().unwrap().len(),
    }
}

/// An in-memory peer: `read` hands out at most `chunk` bytes per call
/// and counts the calls; writes are collected.
struct MockStream {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    reads: usize,
    output: Vec<u8>,
}

impl MockStream {
    fn new(input: Vec<u8>) -> MockStream {
        MockStream {
            input,
            pos: 0,
            chunk: usize::MAX,
            reads: 0,
            output: Vec::new(),
        }
    }
}

impl Read for MockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let n = buf.len().min(self.chunk).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that accepts at most `limit` bytes per call and counts the
/// calls, vectored or not.
struct CountingWriter {
    data: Vec<u8>,
    calls: usize,
    limit: usize,
}

impl CountingWriter {
    fn new(limit: usize) -> CountingWriter {
        CountingWriter {
            data: Vec::new(),
            calls: 0,
            limit,
        }
    }
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.calls += 1;
        let mut written = 0;
        for buf in bufs {
            let n = buf.len().min(self.limit - written);
            self.data.extend_from_slice(&buf[..n]);
            written += n;
        }
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<NameValue> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn rec(record_type: RecordType, id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(&mut out, record_type, id, content);
    out
}

/// A record with explicit padding filled with junk, which receivers
/// must skip unread.
fn rec_padded(record_type: RecordType, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let header = Header {
        version: 1,
        record_type,
        request_id: id,
        content_length: content.len() as u16,
        padding_length: padding,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xee, usize::from(padding)));
    out
}

fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_begin_request(&mut out, id, role, flags);
    out
}

fn name_values(list: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in list {
        encode_name_value(&mut out, n.as_bytes(), v.as_bytes());
    }
    out
}

fn request_bytes(id: u16, keep_conn: bool, params: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    let mut out = begin(id, ROLE_RESPONDER, flags);
    encode_params(&mut out, id, &pairs(params));
    encode_stream(&mut out, RecordType::Stdin, id, body);
    encode_stream_end(&mut out, RecordType::Stdin, id);
    out
}

fn records(mut bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let header = Header::parse(bytes).expect("valid header");
        let content = &bytes[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
        out.push((header, content.to_vec()));
        bytes = &bytes[header.record_len()..];
    }
    out
}

fn end_requests(bytes: &[u8]) -> Vec<(u16, EndRequest)> {
    records(bytes)
        .into_iter()
        .filter(|(h, _)| h.record_type == RecordType::EndRequest)
        .map(|(h, c)| (h.request_id, EndRequest::parse(h.request_id, &c).unwrap()))
        .collect()
}

fn connection(input: Vec<u8>) -> ServerConnection<MockStream> {
    connection_with(input, Limits::default())
}

fn connection_with(input: Vec<u8>, limits: Limits) -> ServerConnection<MockStream> {
    ServerConnection::new(MockStream::new(input), limits, 7, 3)
}

fn protocol_error(result: Result<Option<Request>, ConnectionError>) -> ProtocolError {
    match result {
        Err(ConnectionError::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn small_request_is_read_with_one_read_call() {
    let input = request_bytes(1, false, &[("SCRIPT_FILENAME", "/srv/a.pl")], b"a=1");
    let mut conn = connection(input);
    let request = conn.read_request().unwrap().unwrap();
    assert_eq!(conn.get_ref().reads, 1);
    assert_eq!(request.id, 1);
    assert!(!request.keep_conn);
    assert_eq!(request.param(b"SCRIPT_FILENAME"), Some(&b"/srv/a.pl"[..]));
    assert!(request.body_refused.is_none());
    assert_eq!(request.body.into_bytes(), b"a=1");
    assert!(conn.get_ref().output.is_empty());
}

#[test]
fn end_of_input_between_requests_is_none() {
    assert!(connection(Vec::new()).read_request().unwrap().is_none());
    let mut conn = connection(request_bytes(1, true, &[], b""));
    assert!(conn.read_request().unwrap().is_some());
    assert!(conn.read_request().unwrap().is_none());
}

#[test]
fn padding_is_skipped_on_every_record_type() {
    let params = name_values(&[("A", "1")]);
    let query = name_values(&[("FCGI_MPXS_CONNS", "")]);
    let mut input = rec_padded(RecordType::BeginRequest, 1, &[0, 1, 0, 0, 0, 0, 0, 0], 255);
    input.extend(rec_padded(RecordType::GetValues, 0, &query, 3));
    input.extend(rec_padded(RecordType::Params, 1, &params, 7));
    input.extend(rec_padded(RecordType::Params, 1, b"", 8));
    input.extend(rec_padded(RecordType::Stdin, 1, b"body", 1));
    input.extend(rec_padded(RecordType::Stdin, 1, b"", 255));
    let mut conn = connection(input);
    let request = conn.read_request().unwrap().unwrap();
    assert_eq!(request.params, pairs(&[("A", "1")]));
    assert_eq!(request.body.into_bytes(), b"body");
    let answer = records(&conn.get_ref().output);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].0.record_type, RecordType::GetValuesResult);
    assert!(conn.read_request().unwrap().is_none());
}

#[test]
fn params_with_one_and_four_byte_lengths() {
    let long_name = "N".repeat(200);
    let long_value = "v".repeat(100_000);
    let list = [
        ("SHORT", "x"),
        (long_name.as_str(), "short value"),
        ("QUERY_STRING", long_value.as_str()),
        ("EMPTY", ""),
    ];
    let mut conn = connection(request_bytes(1, false, &list, b""));
    let request = conn.read_request().unwrap().unwrap();
    assert_eq!(request.params, pairs(&list));
}

#[test]
fn params_split_one_byte_per_record() {
    let list = [("REQUEST_METHOD", "POST"), ("CONTENT_TYPE", "text/plain")];
    let mut input = begin(1, ROLE_RESPONDER, 0);
    for byte in name_values(&list) {
        input.extend(rec(RecordType::Params, 1, &[byte]));
    }
    input.extend(rec(RecordType::Params, 1, b""));
    input.extend(rec(RecordType::Stdin, 1, b""));
    let request = connection(input).read_request().unwrap().unwrap();
    assert_eq!(request.params, pairs(&list));
}

#[test]
fn stdin_split_one_byte_per_record() {
    let body = b"name=value&other=thing";
    let mut input = begin(1, ROLE_RESPONDER, 0);
    encode_params(&mut input, 1, &[]);
    for byte in body {
        input.extend(rec(RecordType::Stdin, 1, &[*byte]));
    }
    input.extend(rec(RecordType::Stdin, 1, b""));
    let request = connection(input).read_request().unwrap().unwrap();
    assert_eq!(request.body.into_bytes(), body);
}

#[test]
fn reads_of_one_byte_at_a_time_assemble_the_same_requests() {
    let big_body: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let mut input = request_bytes(1, true, &[("A", "1"), ("B", "2")], &big_body);
    input.extend(request_bytes(2, false, &[("C", "3")], b"tail"));
    let mut stream = MockStream::new(input);
    stream.chunk = 1;
    let mut conn = ServerConnection::new(stream, Limits::default(), 1, 1);
    let first = conn.read_request().unwrap().unwrap();
    assert_eq!(first.params, pairs(&[("A", "1"), ("B", "2")]));
    assert_eq!(first.body.into_bytes(), big_body);
    let second = conn.read_request().unwrap().unwrap();
    assert_eq!(second.id, 2);
    assert_eq!(second.body.into_bytes(), b"tail");
    assert!(conn.read_request().unwrap().is_none());
}

#[test]
fn keep_conn_serves_sequential_requests() {
    let mut input = request_bytes(1, true, &[("N", "first")], b"one");
    input.extend(request_bytes(1, true, &[("N", "second")], b"two"));
    let mut conn = connection(input);
    let first = conn.read_request().unwrap().unwrap();
    assert!(first.keep_conn);
    assert!(conn.has_buffered_input());
    assert_eq!(first.param(b"N"), Some(&b"first"[..]));
    let second = conn.read_request().unwrap().unwrap();
    assert_eq!(second.param(b"N"), Some(&b"second"[..]));
    assert_eq!(second.body.into_bytes(), b"two");
    assert!(!conn.has_buffered_input());
    assert!(conn.read_request().unwrap().is_none());
}

#[test]
fn get_values_answers_only_the_names_asked_once_each() {
    let query = name_values(&[
        ("FCGI_MAX_CONNS", ""),
        ("FCGI_UNKNOWN_NAME", ""),
        ("FCGI_MPXS_CONNS", ""),
        ("FCGI_MAX_CONNS", ""),
    ]);
    let mut conn = connection(rec(RecordType::GetValues, 0, &query));
    assert!(conn.read_request().unwrap().is_none());
    let answer = records(&conn.get_ref().output);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].0.record_type, RecordType::GetValuesResult);
    assert_eq!(answer[0].0.request_id, 0);
    assert_eq!(
        parse_name_values(&answer[0].1).unwrap(),
        pairs(&[("FCGI_MAX_CONNS", "7"), ("FCGI_MPXS_CONNS", "0")])
    );
}

#[test]
fn get_values_mid_request_is_answered_before_the_request_completes() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input.extend(rec(
        RecordType::GetValues,
        0,
        &name_values(&[("FCGI_MAX_REQS", "")]),
    ));
    encode_params(&mut input, 1, &[]);
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    let mut conn = connection(input);
    conn.read_request().unwrap().unwrap();
    let answer = records(&conn.get_ref().output);
    assert_eq!(
        parse_name_values(&answer[0].1).unwrap(),
        pairs(&[("FCGI_MAX_REQS", "3")])
    );
}

#[test]
fn unknown_management_types_get_unknown_type() {
    let mut input = rec(RecordType::Other(42), 0, b"whatever");
    input.extend(begin(0, ROLE_RESPONDER, 0));
    let mut conn = connection(input);
    assert!(conn.read_request().unwrap().is_none());
    let answer = records(&conn.get_ref().output);
    assert_eq!(answer.len(), 2);
    assert!(answer
        .iter()
        .all(|(h, _)| h.record_type == RecordType::UnknownType && h.request_id == 0));
    assert_eq!(answer[0].1, [42, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(answer[1].1[0], RecordType::BeginRequest.as_u8());
}

#[test]
fn second_request_id_gets_cant_mpx_conn() {
    let mut input = begin(1, ROLE_RESPONDER, KEEP_CONN);
    input.extend(begin(2, ROLE_RESPONDER, KEEP_CONN));
    encode_params(&mut input, 2, &pairs(&[("FROM", "two")]));
    encode_params(&mut input, 1, &pairs(&[("FROM", "one")]));
    encode_stream(&mut input, RecordType::Stdin, 2, b"two");
    encode_stream_end(&mut input, RecordType::Stdin, 2);
    encode_stream(&mut input, RecordType::Stdin, 1, b"one");
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    let mut conn = connection(input);
    let request = conn.read_request().unwrap().unwrap();
    assert_eq!(request.id, 1);
    assert_eq!(request.param(b"FROM"), Some(&b"one"[..]));
    assert_eq!(request.body.into_bytes(), b"one");
    assert_eq!(
        end_requests(&conn.get_ref().output),
        [(
            2,
            EndRequest {
                app_status: 0,
                protocol_status: CANT_MPX_CONN
            }
        )]
    );
}

#[test]
fn filter_role_gets_unknown_role_and_reading_continues() {
    let mut input = begin(1, ROLE_FILTER, KEEP_CONN);
    encode_params(&mut input, 1, &pairs(&[("IGNORED", "yes")]));
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    encode_stream_end(&mut input, RecordType::Data, 1);
    input.extend(request_bytes(1, true, &[("SERVED", "yes")], b""));
    let mut conn = connection(input);
    let request = conn.read_request().unwrap().unwrap();
    assert_eq!(request.params, pairs(&[("SERVED", "yes")]));
    assert_eq!(
        end_requests(&conn.get_ref().output),
        [(
            1,
            EndRequest {
                app_status: 0,
                protocol_status: UNKNOWN_ROLE
            }
        )]
    );
}

#[test]
fn unknown_role_without_keep_conn_ends_the_connection() {
    let mut input = begin(1, 99, 0);
    input.extend(request_bytes(2, false, &[], b""));
    let mut conn = connection(input);
    assert!(conn.read_request().unwrap().is_none());
    assert_eq!(
        end_requests(&conn.get_ref().output)[0].1.protocol_status,
        UNKNOWN_ROLE
    );
}

#[test]
fn authorizer_request_is_complete_with_its_params() {
    let mut input = begin(1, ROLE_AUTHORIZER, KEEP_CONN);
    encode_params(&mut input, 1, &pairs(&[("REMOTE_USER", "alice")]));
    input.extend(request_bytes(2, false, &[], b"x"));
    let mut conn = connection(input);
    let request = conn.read_request().unwrap().unwrap();
    assert_eq!(request.param(b"REMOTE_USER"), Some(&b"alice"[..]));
    assert!(body_len(&request.body) == 0);
    assert_eq!(conn.read_request().unwrap().unwrap().id, 2);
}

#[test]
fn abort_request_drops_the_request_and_reading_continues() {
    let mut input = begin(1, ROLE_RESPONDER, KEEP_CONN);
    input.extend(rec(RecordType::Params, 1, &name_values(&[("A", "1")])));
    input.extend(rec(RecordType::AbortRequest, 1, b""));
    input.extend(request_bytes(2, true, &[("B", "2")], b""));
    let mut conn = connection(input);
    let request = conn.read_request().unwrap().unwrap();
    assert_eq!(request.id, 2);
    assert_eq!(request.params, pairs(&[("B", "2")]));
    assert_eq!(
        end_requests(&conn.get_ref().output),
        [(
            1,
            EndRequest {
                app_status: 0,
                protocol_status: REQUEST_COMPLETE
            }
        )]
    );
}

#[test]
fn abort_without_keep_conn_ends_the_connection() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input.extend(rec(RecordType::AbortRequest, 1, b""));
    let mut conn = connection(input);
    assert!(conn.read_request().unwrap().is_none());
    assert_eq!(end_requests(&conn.get_ref().output).len(), 1);
}

#[test]
fn abort_of_another_request_id_is_ignored() {
    let mut input = rec(RecordType::AbortRequest, 5, b"");
    input.extend(begin(1, ROLE_RESPONDER, 0));
    input.extend(rec(RecordType::AbortRequest, 2, b""));
    encode_params(&mut input, 1, &[]);
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    let mut conn = connection(input);
    assert_eq!(conn.read_request().unwrap().unwrap().id, 1);
    assert!(conn.get_ref().output.is_empty());
}

#[test]
fn param_returns_the_last_value_sent() {
    let input = request_bytes(1, false, &[("X", "first"), ("X", "last")], b"");
    let request = connection(input).read_request().unwrap().unwrap();
    assert_eq!(request.param(b"X"), Some(&b"last"[..]));
    assert_eq!(request.param(b"MISSING"), None);
}

#[test]
fn into_parts_hands_back_unread_bytes() {
    let mut input = request_bytes(1, true, &[], b"");
    let next = request_bytes(2, false, &[], b"");
    input.extend_from_slice(&next);
    let mut conn = connection(input);
    conn.read_request().unwrap().unwrap();
    let (_, rest) = conn.into_parts();
    assert_eq!(rest, next);
}
