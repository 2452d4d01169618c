//! The connection layer end to end over in-memory streams: requests read
//! record by record, management records answered, responses framed.

use std::io::{self, IoSlice, Read, Seek, Write};
use std::{env, fs};

use super::body::create_unlinked_named;
use super::record::*;
use super::request::{Body, BodyRefused, ConnectionError, Limits, Request};
use super::response::ResponseWriter;
use super::server::ServerConnection;
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

fn body_bytes(body: Body) -> Vec<u8> {
    match body {
        Body::Empty => Vec::new(),
        Body::Memory(bytes) => bytes,
        Body::File(mut file) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            bytes
        }
    }
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
    assert_eq!(body_bytes(request.body), b"a=1");
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
    assert_eq!(body_bytes(request.body), b"body");
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
    assert_eq!(body_bytes(request.body), body);
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
    assert_eq!(body_bytes(first.body), big_body);
    let second = conn.read_request().unwrap().unwrap();
    assert_eq!(second.id, 2);
    assert_eq!(body_bytes(second.body), b"tail");
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
    assert_eq!(body_bytes(second.body), b"two");
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
    assert_eq!(body_bytes(request.body), b"one");
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
fn empty_body_is_empty() {
    let request = connection(request_bytes(1, false, &[("CONTENT_LENGTH", "0")], b""))
        .read_request()
        .unwrap()
        .unwrap();
    assert!(matches!(request.body, Body::Empty));
    assert_eq!(body_len(&request.body), 0);
}

#[test]
fn body_is_read_to_the_end_of_stdin_whatever_content_length_says() {
    let input = request_bytes(1, false, &[("CONTENT_LENGTH", "3")], b"longer than three");
    let request = connection(input).read_request().unwrap().unwrap();
    assert_eq!(body_bytes(request.body), b"longer than three");
}

#[test]
fn body_up_to_the_spill_threshold_stays_in_memory() {
    let limits = Limits {
        spill_threshold: 16,
        ..Limits::default()
    };
    let request = connection_with(request_bytes(1, false, &[], &[b'x'; 16]), limits)
        .read_request()
        .unwrap()
        .unwrap();
    assert!(matches!(request.body, Body::Memory(ref bytes) if bytes.len() == 16));
}

#[test]
fn body_above_the_spill_threshold_goes_to_an_unlinked_temp_file() {
    let limits = Limits {
        spill_threshold: 1000,
        ..Limits::default()
    };
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut input = begin(1, ROLE_RESPONDER, 0);
    encode_params(&mut input, 1, &[]);
    for chunk in body.chunks(999) {
        input.extend(rec(RecordType::Stdin, 1, chunk));
    }
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    let request = connection_with(input, limits)
        .read_request()
        .unwrap()
        .unwrap();
    assert_eq!(body_len(&request.body), body.len() as u64);
    let Body::File(file) = &request.body else {
        panic!("expected a file body, got {:?}", request.body);
    };
    let link = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
    assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
    assert_eq!(body_bytes(request.body), body);
}

#[test]
fn temp_file_fallback_leaves_nothing_on_disk() {
    let dir = env::temp_dir();
    let mut file = create_unlinked_named(&dir).unwrap();
    let link = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
    assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
    file.write_all(b"spilled").unwrap();
    file.rewind().unwrap();
    let mut back = String::new();
    file.read_to_string(&mut back).unwrap();
    assert_eq!(back, "spilled");
}

#[test]
fn body_over_max_body_is_discarded_and_the_connection_stays_in_sync() {
    let limits = Limits {
        max_body: 10,
        spill_threshold: 4,
        ..Limits::default()
    };
    let mut input = begin(1, ROLE_RESPONDER, KEEP_CONN);
    encode_params(&mut input, 1, &[]);
    for chunk in [&b"12345"[..], b"67890", b"abcdef", b"more"] {
        input.extend(rec(RecordType::Stdin, 1, chunk));
    }
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    input.extend(request_bytes(2, false, &[], b"0123456789"));
    let mut conn = connection_with(input, limits);
    let first = conn.read_request().unwrap().unwrap();
    assert!(matches!(
        first.body_refused,
        Some(BodyRefused::TooLarge { limit: 10, seen }) if seen > 10
    ));
    assert!(body_len(&first.body) == 0);
    let second = conn.read_request().unwrap().unwrap();
    assert_eq!(second.id, 2);
    assert!(second.body_refused.is_none());
    assert_eq!(body_bytes(second.body), b"0123456789");
}

#[test]
fn max_body_zero_means_unlimited() {
    let limits = Limits {
        max_body: 0,
        ..Limits::default()
    };
    let body = vec![1; 300_000];
    let request = connection_with(request_bytes(1, false, &[], &body), limits)
        .read_request()
        .unwrap()
        .unwrap();
    assert!(request.body_refused.is_none());
    assert_eq!(body_len(&request.body), 300_000);
}

#[test]
fn params_over_max_params_are_an_error() {
    let limits = Limits {
        max_params: 100,
        ..Limits::default()
    };
    let value = "v".repeat(200);
    let mut conn = connection_with(request_bytes(1, false, &[("BIG", &value)], b""), limits);
    assert_eq!(
        protocol_error(conn.read_request()),
        ProtocolError::ParamsTooLarge {
            request_id: 1,
            limit: 100
        }
    );
}

#[test]
fn bad_version_is_an_error() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input[0] = 2;
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::BadVersion(2)
    );
}

#[test]
fn input_ending_mid_header_is_an_error() {
    let mut input = request_bytes(1, true, &[], b"");
    input.extend_from_slice(&[1, 1, 0]);
    let mut conn = connection(input);
    assert!(conn.read_request().unwrap().is_some());
    assert_eq!(
        protocol_error(conn.read_request()),
        ProtocolError::TruncatedHeader { got: 3 }
    );
}

#[test]
fn input_ending_mid_content_is_an_error() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input.extend(rec(
        RecordType::Params,
        1,
        &name_values(&[("NAME", "value")]),
    ));
    input.truncate(input.len() - 4);
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::TruncatedRecord {
            record_type: RecordType::Params,
            request_id: 1,
            got: 20,
            expected: 24
        }
    );
}

#[test]
fn input_ending_mid_request_is_an_incomplete_request() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    encode_params(&mut input, 1, &[]);
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::IncompleteRequest {
            request_id: 1,
            missing: "FCGI_STDIN"
        }
    );
}

#[test]
fn unexpected_records_for_the_current_request_are_errors() {
    let cases = [
        rec(RecordType::Stdout, 1, b"x"),
        rec(RecordType::Data, 1, b"x"),
        rec(RecordType::Other(99), 1, b""),
        begin(1, ROLE_RESPONDER, 0),
    ];
    for case in cases {
        let mut input = begin(1, ROLE_RESPONDER, 0);
        input.extend_from_slice(&case);
        let error = protocol_error(connection(input).read_request());
        assert!(
            matches!(error, ProtocolError::UnexpectedRecord { request_id: 1, .. }),
            "{error}"
        );
    }
}

#[test]
fn records_after_the_end_of_their_stream_are_errors() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    encode_params(&mut input, 1, &[]);
    input.extend(rec(RecordType::Params, 1, b"\x01\x01ab"));
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::UnexpectedRecord {
            record_type: RecordType::Params,
            request_id: 1
        }
    );
}

#[test]
fn malformed_begin_request_and_params_are_errors() {
    let input = rec(RecordType::BeginRequest, 1, &[0, 1, 0]);
    assert!(matches!(
        protocol_error(connection(input).read_request()),
        ProtocolError::BadBodyLength { length: 3, .. }
    ));
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input.extend(rec(RecordType::Params, 1, &[5, 5, b'a']));
    input.extend(rec(RecordType::Params, 1, b""));
    input.extend(rec(RecordType::Stdin, 1, b""));
    assert!(matches!(
        protocol_error(connection(input).read_request()),
        ProtocolError::NameValueOverflow { .. }
    ));
}

#[test]
fn garbage_input_is_an_error_never_a_panic() {
    let mut seed: u32 = 0x1234_5678;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 24) as u8
    };
    for round in 0..2000 {
        let len = usize::from(next()) * 4;
        let mut input: Vec<u8> = (0..len).map(|_| next()).collect();
        if round % 2 == 0 {
            // Keep the version byte valid so parsing goes deeper.
            for (i, byte) in input.iter_mut().enumerate() {
                if i % 16 == 0 {
                    *byte = 1;
                }
            }
        }
        let mut conn = connection(input);
        for _ in 0..100 {
            match conn.read_request() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    assert!(connection(b"GET / HTTP/1.0\r\n\r\n".to_vec())
        .read_request()
        .is_err());
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

#[test]
fn small_stdout_is_one_writev_with_padding() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(b"Status: 200\r\n\r\nhi").unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 1);
    assert_eq!(out.data.len(), 8 + 24);
    assert_eq!(&out.data[..8], [1, 6, 0, 1, 0, 17, 7, 0]);
    assert_eq!(&out.data[8..25], b"Status: 200\r\n\r\nhi");
    assert_eq!(writer.bytes_sent(), 17);
}

#[test]
fn output_over_64k_is_split_into_records_sent_in_one_writev() {
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 199) as u8).collect();
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 3);
    writer.write_stdout(&data).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 1);
    let parts = records(&out.data);
    let lengths: Vec<usize> = parts.iter().map(|(_, c)| c.len()).collect();
    assert_eq!(lengths, [65535, 65535, 18930]);
    assert!(parts
        .iter()
        .all(|(h, _)| h.record_type == RecordType::Stdout && h.request_id == 3));
    assert_eq!(
        parts.into_iter().flat_map(|(_, c)| c).collect::<Vec<u8>>(),
        data
    );
    assert_eq!(writer.bytes_sent(), 150_000);
}

#[test]
fn output_over_1_mib_takes_one_writev_per_16_records() {
    let data = vec![b'o'; 17 * MAX_CONTENT + 10];
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(&data).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 2);
    let parts = records(&out.data);
    assert_eq!(parts.len(), 18);
    assert!(parts[..17].iter().all(|(h, _)| h.content_length == 65535));
    assert_eq!(parts[17].1.len(), 10);
    assert_eq!(out.data.len(), 17 * (8 + 65535 + 1) + 8 + 10 + 6);
}

#[test]
fn empty_write_sends_nothing() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(b"").unwrap();
    writer.write_stderr(b"").unwrap();
    assert_eq!(writer.get_ref().calls, 0);
    writer.finish(0, REQUEST_COMPLETE).unwrap();
    let types: Vec<RecordType> = records(&writer.get_ref().data)
        .iter()
        .map(|(h, _)| h.record_type)
        .collect();
    assert_eq!(types, [RecordType::Stdout, RecordType::EndRequest]);
}

#[test]
fn finish_ends_stdout_and_the_request_in_one_write() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 4);
    writer.write_stdout(b"body").unwrap();
    writer.finish(2, REQUEST_COMPLETE).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 2);
    let parts = records(&out.data);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1].0.record_type, RecordType::Stdout);
    assert_eq!(parts[1].0.content_length, 0);
    assert_eq!(
        end_requests(&out.data),
        [(
            4,
            EndRequest {
                app_status: 2,
                protocol_status: REQUEST_COMPLETE
            }
        )]
    );
}

#[test]
fn finish_also_ends_stderr_when_it_was_used() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(b"out").unwrap();
    writer.write_stderr(b"warning").unwrap();
    writer.write_stdout(b"more").unwrap();
    writer.finish(0, REQUEST_COMPLETE).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 4);
    let types: Vec<(RecordType, u16)> = records(&out.data)
        .iter()
        .map(|(h, _)| (h.record_type, h.content_length))
        .collect();
    assert_eq!(
        types,
        [
            (RecordType::Stdout, 3),
            (RecordType::Stderr, 7),
            (RecordType::Stdout, 4),
            (RecordType::Stdout, 0),
            (RecordType::Stderr, 0),
            (RecordType::EndRequest, 8),
        ]
    );
    assert_eq!(writer.bytes_sent(), 7);
}

#[test]
fn finish_with_sends_a_small_response_whole_in_one_write() {
    let mut separate = ResponseWriter::new(CountingWriter::new(usize::MAX), 9);
    separate.write_stdout(b"Status: 200\r\n\r\nhello").unwrap();
    separate.finish(3, REQUEST_COMPLETE).unwrap();

    let mut whole = ResponseWriter::new(CountingWriter::new(usize::MAX), 9);
    whole
        .finish_with(b"Status: 200\r\n\r\nhello", 3, REQUEST_COMPLETE)
        .unwrap();
    assert_eq!(whole.get_ref().calls, 1);
    assert_eq!(whole.get_ref().data, separate.get_ref().data);
    assert_eq!(whole.bytes_sent(), 20);
    assert!(whole.is_finished());
    assert!(whole.write_stdout(b"late").is_err());
}

#[test]
fn finish_with_large_or_empty_data_frames_as_usual() {
    let big = vec![b'b'; MAX_CONTENT + 10];
    let mut writer = ResponseWriter::new(CountingWriter::new(7), 2);
    writer.finish_with(&big, 0, REQUEST_COMPLETE).unwrap();
    let out = &writer.get_ref().data;
    let types: Vec<(RecordType, u16)> = records(out)
        .iter()
        .map(|(h, _)| (h.record_type, h.content_length))
        .collect();
    assert_eq!(
        types,
        [
            (RecordType::Stdout, MAX_CONTENT as u16),
            (RecordType::Stdout, 10),
            (RecordType::Stdout, 0),
            (RecordType::EndRequest, 8),
        ]
    );

    let mut empty = ResponseWriter::new(CountingWriter::new(3), 2);
    empty.finish_with(b"", 0, REQUEST_COMPLETE).unwrap();
    assert_eq!(records(&empty.get_ref().data).len(), 2);
    assert_eq!(empty.bytes_sent(), 0);
}

#[test]
fn writes_after_finish_fail() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.finish(0, REQUEST_COMPLETE).unwrap();
    assert!(writer.is_finished());
    assert!(writer.write_stdout(b"late").is_err());
    assert!(writer.finish(0, REQUEST_COMPLETE).is_err());
    assert_eq!(end_requests(&writer.get_ref().data).len(), 1);
}

#[test]
fn short_writes_are_resumed() {
    let mut expected = Vec::new();
    encode_stream(&mut expected, RecordType::Stdout, 1, &[b'z'; 100]);
    let mut writer = ResponseWriter::new(CountingWriter::new(5), 1);
    writer.write_stdout(&[b'z'; 100]).unwrap();
    assert_eq!(writer.get_ref().data, expected);
}
