//! A minimal blocking FastCGI client, speaking to the daemon exactly as a
//! web server does.
//!
//! `fcgi-spawn request`, `ping` and `status` use it, and so do the tests: one
//! client, so what the command line shows is what the tests check. It is
//! built on the same codec and [`RecordReader`] as the server side, so the
//! two cannot disagree about framing. It is deliberately sequential (one
//! request in flight, the whole request sent before the response is read),
//! which suits a server that, like ours, reads a request completely before
//! answering it. Records for other request ids are skipped, so a connection
//! kept open with `keep_conn` can carry further requests.

use std::io::{self, Read, Write};

use super::reader::{Record, RecordReader};
use super::record::{
    encode_begin_request, encode_params, encode_record, encode_stream_end, EndRequest, NameValue,
    ProtocolError, RecordType, KEEP_CONN, MAX_CONTENT, NULL_REQUEST_ID,
};
use super::request::ConnectionError;

/// What the application sent back for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("FastCGI request id 0 is reserved for management records; use an id from 1 to 65535")]
    ReservedRequestId,
    #[error("FCGI_GET_VALUES query of {len} bytes does not fit one record ({MAX_CONTENT} bytes); ask for fewer names")]
    #[cfg(test)]
    QueryTooLarge { len: usize },
    #[error("cannot read the request body: {0}")]
    Body(#[source] io::Error),
    #[error("I/O error talking to the FastCGI server: {0}")]
    Io(#[from] io::Error),
    #[error("FastCGI server broke the protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the FastCGI server closed the connection before answering ({what})")]
    ConnectionClosed { what: String },
}

impl From<ConnectionError> for ClientError {
    fn from(error: ConnectionError) -> ClientError {
        match error {
            ConnectionError::Io(e) => ClientError::Io(e),
            ConnectionError::Protocol(e) => ClientError::Protocol(e),
        }
    }
}

/// Bytes of encoded request gathered before they are written out.
const SEND_BATCH: usize = 256 * 1024;

/// Sends one request and reads its response up to `FCGI_END_REQUEST`.
///
/// `params` are sent as given (split over several records when large), then
/// `body` as `FCGI_STDIN` until it reports end of file. A small request goes
/// out in a single write. A response refused by the server (unknown role,
/// busy connection) is an `Ok` whose `protocol_status` says so.
pub fn send_request<S: Read + Write>(
    stream: &mut S,
    request_id: u16,
    role: u16,
    keep_conn: bool,
    params: &[NameValue],
    body: &mut dyn Read,
) -> Result<Response, ClientError> {
    if request_id == NULL_REQUEST_ID {
        return Err(ClientError::ReservedRequestId);
    }
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    let mut out = Vec::new();
    encode_begin_request(&mut out, request_id, role, flags);
    encode_params(&mut out, request_id, params);
    let mut chunk = vec![0; MAX_CONTENT];
    loop {
        let n = read_full(body, &mut chunk).map_err(ClientError::Body)?;
        if n == 0 {
            break;
        }
        encode_record(&mut out, RecordType::Stdin, request_id, &chunk[..n]);
        if out.len() >= SEND_BATCH {
            stream.write_all(&out)?;
            out.clear();
        }
    }
    encode_stream_end(&mut out, RecordType::Stdin, request_id);
    stream.write_all(&out)?;
    stream.flush()?;
    read_response(stream, request_id)
}

/// Fills `buf` from `reader` unless it ends first; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_response<S: Read>(stream: &mut S, request_id: u16) -> Result<Response, ClientError> {
    let mut reader = RecordReader::new(stream);
    let mut response = Response::default();
    loop {
        let Some(Record { header, content }) = reader.next_record()? else {
            return Err(ClientError::ConnectionClosed {
                what: format!("no FCGI_END_REQUEST for request id {request_id}"),
            });
        };
        if header.request_id != request_id {
            continue;
        }
        match header.record_type {
            RecordType::Stdout => response.stdout.extend_from_slice(content),
            RecordType::Stderr => response.stderr.extend_from_slice(content),
            RecordType::EndRequest => {
                let end = EndRequest::parse(request_id, content)?;
                response.app_status = end.app_status;
                response.protocol_status = end.protocol_status;
                return Ok(response);
            }
            record_type => {
                return Err(ProtocolError::UnexpectedRecord {
                    record_type,
                    request_id,
                }
                .into())
            }
        }
    }
}

/// Asks the server for the `FCGI_GET_VALUES` variables in `names` and returns
/// the ones it answered, as (name, value) pairs. (The daemon's own tests;
/// `fcgi-spawn ping` asks the status page.)
#[cfg(test)]
pub fn get_values<S: Read + Write>(
    stream: &mut S,
    names: &[&[u8]],
) -> Result<Vec<NameValue>, ClientError> {
    let mut query = Vec::new();
    for name in names {
        super::record::encode_name_value(&mut query, name, b"");
    }
    if query.len() > MAX_CONTENT {
        return Err(ClientError::QueryTooLarge { len: query.len() });
    }
    let mut out = Vec::new();
    encode_record(&mut out, RecordType::GetValues, NULL_REQUEST_ID, &query);
    stream.write_all(&out)?;
    stream.flush()?;

    let mut reader = RecordReader::new(stream);
    loop {
        let Some(Record { header, content }) = reader.next_record()? else {
            return Err(ClientError::ConnectionClosed {
                what: "no FCGI_GET_VALUES_RESULT".to_owned(),
            });
        };
        if header.request_id != NULL_REQUEST_ID {
            continue;
        }
        if header.record_type == RecordType::GetValuesResult {
            return Ok(super::record::parse_name_values(content)?);
        }
        return Err(ProtocolError::UnexpectedRecord {
            record_type: header.record_type,
            request_id: NULL_REQUEST_ID,
        }
        .into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{
        FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, REQUEST_COMPLETE, ROLE_AUTHORIZER,
        ROLE_FILTER, ROLE_RESPONDER, UNKNOWN_ROLE,
    };
    use crate::fastcgi::{Limits, Request, ResponseWriter, ServerConnection};
    use std::os::unix::net::UnixStream;
    use std::thread::{self, JoinHandle};

    fn pairs(list: &[(&str, &str)]) -> Vec<NameValue> {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    /// A server that answers each request with its SCRIPT_FILENAME, a blank
    /// line and its body on stdout, "seen <id>" on stderr and app status =
    /// body length, until the client goes away. Returns how many requests
    /// it served.
    fn echo_server(stream: UnixStream) -> JoinHandle<usize> {
        thread::spawn(move || {
            let limits = Limits {
                spill_threshold: 1024,
                ..Limits::default()
            };
            let mut conn = ServerConnection::new(stream, limits, 10, 10);
            let mut served = 0;
            while let Some(request) = conn.read_request().unwrap() {
                served += 1;
                let Request {
                    id, params, body, ..
                } = request;
                let script = params
                    .iter()
                    .find(|(n, _)| n == b"SCRIPT_FILENAME")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let body = body.into_bytes();
                let mut writer = ResponseWriter::new(conn.get_mut(), id);
                writer.write_stdout(&script).unwrap();
                writer.write_stdout(b"\r\n\r\n").unwrap();
                writer.write_stdout(&body).unwrap();
                writer
                    .write_stderr(format!("seen {id}").as_bytes())
                    .unwrap();
                writer.finish(body.len() as u32, REQUEST_COMPLETE).unwrap();
            }
            served
        })
    }

    #[test]
    fn request_round_trip_over_a_socket() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let handle = echo_server(server);
        let params = pairs(&[("SCRIPT_FILENAME", "/srv/hello.pl")]);
        let response = send_request(
            &mut client,
            1,
            ROLE_RESPONDER,
            false,
            &params,
            &mut &b"a=1&b=2"[..],
        )
        .unwrap();
        assert_eq!(response.stdout, b"/srv/hello.pl\r\n\r\na=1&b=2");
        assert_eq!(response.stderr, b"seen 1");
        assert_eq!(response.app_status, 7);
        assert_eq!(response.protocol_status, REQUEST_COMPLETE);
        drop(client);
        assert_eq!(handle.join().unwrap(), 1);
    }

    #[test]
    fn large_params_body_and_output_survive_splitting() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let handle = echo_server(server);
        let script = "/srv/".to_owned() + &"x".repeat(150_000);
        let params = pairs(&[("SCRIPT_FILENAME", &script), ("HTTP_COOKIE", "c=1")]);
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let response = send_request(
            &mut client,
            9,
            ROLE_RESPONDER,
            false,
            &params,
            &mut body.as_slice(),
        )
        .unwrap();
        let mut expected = script.into_bytes();
        expected.extend_from_slice(b"\r\n\r\n");
        expected.extend_from_slice(&body);
        assert_eq!(response.stdout, expected);
        assert_eq!(response.app_status, 300_000);
        drop(client);
        assert_eq!(handle.join().unwrap(), 1);
    }

    #[test]
    fn keep_conn_carries_sequential_requests() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let handle = echo_server(server);
        for (id, script) in [(1, "/a.pl"), (1, "/b.pl"), (2, "/c.pl")] {
            let params = pairs(&[("SCRIPT_FILENAME", script)]);
            let response = send_request(
                &mut client,
                id,
                ROLE_RESPONDER,
                true,
                &params,
                &mut io::empty(),
            )
            .unwrap();
            assert_eq!(response.stdout, format!("{script}\r\n\r\n").as_bytes());
        }
        drop(client);
        assert_eq!(handle.join().unwrap(), 3);
    }

    #[test]
    fn authorizer_requests_are_served() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let handle = echo_server(server);
        let params = pairs(&[("SCRIPT_FILENAME", "/auth.pl")]);
        // The client always ends FCGI_STDIN; the server has completed the
        // authorizer request already and skips that record.
        let response = send_request(
            &mut client,
            1,
            ROLE_AUTHORIZER,
            true,
            &params,
            &mut io::empty(),
        )
        .unwrap();
        assert_eq!(response.stdout, b"/auth.pl\r\n\r\n");
        let response = send_request(
            &mut client,
            2,
            ROLE_RESPONDER,
            true,
            &params,
            &mut io::empty(),
        )
        .unwrap();
        assert_eq!(response.stderr, b"seen 2");
        drop(client);
        assert_eq!(handle.join().unwrap(), 2);
    }

    #[test]
    fn get_values_through_the_client() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let handle = echo_server(server);
        let values = get_values(
            &mut client,
            &[FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, b"OTHER"],
        )
        .unwrap();
        assert_eq!(
            values,
            pairs(&[
                ("FCGI_MAX_CONNS", "10"),
                ("FCGI_MAX_REQS", "10"),
                ("FCGI_MPXS_CONNS", "0")
            ])
        );
        drop(client);
        assert_eq!(handle.join().unwrap(), 0);
    }

    #[test]
    fn refused_role_is_reported_in_protocol_status() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let handle = echo_server(server);
        let response =
            send_request(&mut client, 1, ROLE_FILTER, false, &[], &mut io::empty()).unwrap();
        assert_eq!(response.protocol_status, UNKNOWN_ROLE);
        assert!(response.stdout.is_empty());
        assert_eq!(handle.join().unwrap(), 0);
    }

    #[test]
    fn server_closing_early_is_reported() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let handle = thread::spawn(move || {
            let mut conn = ServerConnection::new(server, Limits::default(), 1, 1);
            conn.read_request().unwrap().unwrap();
        });
        let error =
            send_request(&mut client, 1, ROLE_RESPONDER, false, &[], &mut io::empty()).unwrap_err();
        assert!(
            matches!(error, ClientError::ConnectionClosed { .. }),
            "{error}"
        );
        handle.join().unwrap();
    }

    #[test]
    fn request_id_zero_is_refused_before_sending() {
        let mut sink = io::Cursor::new(Vec::new());
        let error =
            send_request(&mut sink, 0, ROLE_RESPONDER, false, &[], &mut io::empty()).unwrap_err();
        assert!(matches!(error, ClientError::ReservedRequestId));
        assert!(sink.get_ref().is_empty());
    }

    #[test]
    fn body_read_errors_are_named() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut sink = io::Cursor::new(Vec::new());
        let error =
            send_request(&mut sink, 1, ROLE_RESPONDER, false, &[], &mut Failing).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read the request body: disk on fire"
        );
    }
}
