//! The fuzz targets, one module each with a `run(data)` that panics when
//! the daemon breaks a rule, and what they share: how an input becomes a
//! FastCGI byte stream and a way of cutting it, and the reference reading
//! of a stream that the targets compare the daemon's other paths against.
//!
//! Two drivers run the same targets: libFuzzer (`fuzz_targets/`, through
//! `script/fuzz`), coverage-guided, on demand; and the daemon's
//! `tests/fuzz_smoke.rs`, which includes this file as a module of its own
//! (hence only relative paths here and in the targets, and no libFuzzer),
//! for a few seconds a target within `cargo test`.
//!
//! An input is either raw (the stream is the input's bytes, as captured
//! from nginx and Apache: the seed corpus) or a description of records
//! that [`generate`] encodes, so that small inputs reach large records,
//! long bodies and the odd record in the middle of a request. Either way a
//! [`Schedule`] taken from the input's head decides where the stream is
//! cut and what happens between the pieces; an empty schedule means
//! "all at once".

use std::io::{self, Read, Write};

use arbitrary::{Result, Unstructured};
use fcgi_spawn::fastcgi::record::{
    encode_begin_request, encode_name_value, encode_record, encode_stream, encode_stream_end,
    RecordType, FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, KEEP_CONN, MAX_CONTENT,
    ROLE_AUTHORIZER, ROLE_RESPONDER,
};
use fcgi_spawn::fastcgi::{Body, Limits, Request, ServerConnection};

pub mod handover;
pub mod name_values;
pub mod preamble;
pub mod record;

/// Largest generated stream: enough for several maximal records and a body
/// past `preamble::HANDOFF_BODY`.
const MAX_GENERATED: usize = 512 * 1024;

/// An input taken apart: the stream, and the decisions made while it is fed.
pub struct Input {
    pub stream: Vec<u8>,
    pub schedule: Schedule,
    pub limits: Limits,
}

impl Input {
    /// Layout: a mode byte (even: raw, odd: generated), a limits byte, a
    /// schedule length byte and that many schedule bytes, then the stream
    /// (raw) or its description (generated).
    pub fn parse(data: &[u8]) -> Result<Input> {
        let mut u = Unstructured::new(data);
        let mode: u8 = u.arbitrary()?;
        let limits = limits(u.arbitrary()?);
        let len = usize::from(u.arbitrary::<u8>()?);
        let schedule = Schedule::new(u.bytes(len.min(u.len()))?);
        let stream = if mode.is_multiple_of(2) {
            u.take_rest().to_vec()
        } else {
            generate(&mut u)?
        };
        if std::env::var_os("FUZZ_SHOW").is_some() {
            eprintln!("limits {limits:?}, schedule {:?}", schedule.bytes);
            show(&stream);
        }
        Ok(Input {
            stream,
            schedule,
            limits,
        })
    }
}

/// The stream's records, one line each, for reading a crash.
fn show(mut stream: &[u8]) {
    while let Ok(h) = fcgi_spawn::fastcgi::record::Header::parse(stream) {
        let end = (8 + usize::from(h.content_length)).min(stream.len());
        let content = &stream[8..end];
        eprintln!(
            "{} id {} len {} pad {}: {:02x?}",
            h.record_type,
            h.request_id,
            h.content_length,
            h.padding_length,
            &content[..content.len().min(24)]
        );
        stream = &stream[h.record_len().min(stream.len())..];
    }
    eprintln!(
        "then {} bytes: {:02x?}",
        stream.len(),
        &stream[..stream.len().min(24)]
    );
}

/// Limits as the daemon applies them, small or default, so both sides of
/// every limit are reached. Bodies stay in memory (no temp files).
fn limits(choice: u8) -> Limits {
    Limits {
        max_params: if choice & 1 == 0 { 1024 * 1024 } else { 200 },
        max_body: match choice >> 1 & 3 {
            0 => 0,
            1 => 100,
            _ => 100 * 1024 * 1024,
        },
        spill_threshold: usize::MAX,
    }
}

/// Decisions taken from the input, in turn; when none were given, every
/// piece is as large as possible and every choice is the first.
pub struct Schedule {
    bytes: Vec<u8>,
    next: usize,
}

impl Schedule {
    pub fn new(bytes: &[u8]) -> Schedule {
        Schedule {
            bytes: bytes.to_vec(),
            next: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.next % self.bytes.len().max(1))?;
        self.next += 1;
        Some(byte)
    }

    /// A number below `n`.
    pub fn choose(&mut self, n: usize) -> usize {
        self.byte().map_or(0, |b| usize::from(b) % n.max(1))
    }

    /// The length of the next piece of a stream: 1 to 128 bytes, or a
    /// multiple of 512 up to 64 KiB.
    pub fn chunk(&mut self) -> usize {
        match self.byte() {
            None => usize::MAX,
            Some(b) if b < 128 => usize::from(b) + 1,
            Some(b) => usize::from(b - 127) * 512,
        }
    }
}

/// A byte stream described by the fuzzer: whole requests (their streams
/// split over several records), single records of any type and id, and raw
/// bytes.
pub fn generate(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while !u.is_empty() && out.len() < MAX_GENERATED {
        match u.int_in_range(0..=9u8)? {
            0..=3 => request(u, &mut out)?,
            4 | 5 => {
                let record_type = RecordType::from_u8(u.int_in_range(0..=12)?);
                let content = content(u)?;
                encode_record(&mut out, record_type, id(u)?, &content);
            }
            6 => {
                let mut query = Vec::new();
                for _ in 0..u.int_in_range(0..=4)? {
                    let name: &[u8] =
                        u.choose(&[FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, b"OTHER"])?;
                    encode_name_value(&mut query, name, b"");
                }
                encode_record(&mut out, RecordType::GetValues, 0, &query);
            }
            7 => {
                // A record with padding other than the encoder's.
                let content = content(u)?;
                let padding: u8 = u.arbitrary()?;
                out.extend_from_slice(&[1, u.int_in_range(1..=11)?]);
                out.extend_from_slice(&id(u)?.to_be_bytes());
                out.extend_from_slice(&(content.len() as u16).to_be_bytes());
                out.extend_from_slice(&[padding, 0]);
                out.extend_from_slice(&content);
                out.extend(std::iter::repeat_n(0, usize::from(padding)));
            }
            8 => {
                let len = u.int_in_range(0..=16)?;
                out.extend_from_slice(u.bytes(len.min(u.len()))?);
            }
            _ => {
                let id = id(u)?;
                encode_record(&mut out, RecordType::AbortRequest, id, b"");
            }
        }
    }
    Ok(out)
}

fn id(u: &mut Unstructured) -> Result<u16> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=4 => 1,
        5 => 2,
        6 => 0,
        _ => u.arbitrary()?,
    })
}

/// Record content: a few literal bytes, or a long run of one byte.
fn content(u: &mut Unstructured) -> Result<Vec<u8>> {
    if u.ratio(1, 8)? {
        let len = u.int_in_range(0..=MAX_CONTENT)?;
        return Ok(vec![u.arbitrary()?; len]);
    }
    let len = u.int_in_range(0..=32)?;
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

/// One request, mostly well-formed: BEGIN_REQUEST, its PARAMS and STDIN
/// streams in pieces, sometimes cut short, aborted, or with a record of
/// another request in between.
fn request(u: &mut Unstructured, out: &mut Vec<u8>) -> Result<()> {
    let id = id(u)?;
    let role = match u.int_in_range(0..=7u8)? {
        0..=5 => ROLE_RESPONDER,
        6 => ROLE_AUTHORIZER,
        _ => u.arbitrary()?,
    };
    let flags = if u.arbitrary()? { KEEP_CONN } else { 0 };
    encode_begin_request(out, id, role, flags);
    let mut params = Vec::new();
    for _ in 0..u.int_in_range(0..=6)? {
        let len = u.int_in_range(0..=20)?;
        let name = u.bytes(len.min(u.len()))?;
        let value = if u.ratio(1, 10)? {
            vec![b'v'; u.int_in_range(128..=3000)?]
        } else {
            let len = u.int_in_range(0..=20)?;
            u.bytes(len.min(u.len()))?.to_vec()
        };
        encode_name_value(&mut params, name, &value);
    }
    if u.ratio(1, 10)? {
        params.truncate(u.int_in_range(0..=params.len())?);
    }
    stream(u, out, RecordType::Params, id, &params)?;
    if u.ratio(1, 10)? {
        let other = u.arbitrary()?;
        encode_begin_request(out, other, ROLE_RESPONDER, 0);
    }
    if u.ratio(1, 12)? {
        encode_record(out, RecordType::AbortRequest, id, b"");
        return Ok(());
    }
    let body = if u.ratio(1, 10)? {
        vec![b'b'; u.int_in_range(0..=200_000)?]
    } else {
        let len = u.int_in_range(0..=64)?;
        u.bytes(len.min(u.len()))?.to_vec()
    };
    if role != ROLE_AUTHORIZER || u.ratio(1, 4)? {
        stream(u, out, RecordType::Stdin, id, &body)?;
    }
    Ok(())
}

/// `data` as a stream of records of sizes the fuzzer picks, usually ended.
fn stream(
    u: &mut Unstructured,
    out: &mut Vec<u8>,
    record_type: RecordType,
    id: u16,
    data: &[u8],
) -> Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        let len = if u.arbitrary()? {
            rest.len()
        } else {
            u.int_in_range(1..=rest.len())?
        };
        let (piece, after) = rest.split_at(len);
        encode_stream(out, record_type, id, piece);
        rest = after;
    }
    if !u.ratio(1, 16)? {
        encode_stream_end(out, record_type, id);
    }
    Ok(())
}

/// A request as the script would see it.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub id: u16,
    pub keep_conn: bool,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Why the body was refused (413 or 500), by name.
    pub body_refused: Option<String>,
}

impl Seen {
    pub fn new(request: Request) -> Seen {
        let body = match request.body {
            Body::Empty => Vec::new(),
            Body::Memory(bytes) => bytes,
            Body::File(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).expect("read a spilled body");
                bytes
            }
        };
        Seen {
            id: request.id,
            keep_conn: request.keep_conn,
            params: request.params,
            body,
            body_refused: request.body_refused.as_ref().map(|r| r.to_string()),
        }
    }
}

/// What a connection came to: the requests read, in order, what was
/// written back to the web server, and the error it ended on, if any (a
/// protocol error, or the web server closing it mid-request).
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: Vec<Seen>,
    pub replies: Vec<u8>,
    pub error: Option<String>,
}

impl Outcome {
    /// The two readings agree: the same requests; an error where the
    /// reference errs; the same answers when neither failed.
    ///
    /// One difference is by design: the preamble does not parse the params
    /// of a request that arrived whole (the worker does), so a request with
    /// malformed params that is then aborted or refused is dropped without
    /// an error there, and the connection goes on (to requests the
    /// reference, stopped by the error, never reads).
    pub fn assert_agrees(&self, reference: &Outcome, what: &str) {
        let malformed_params = reference
            .error
            .as_ref()
            .is_some_and(|e| e.contains("name-value pair"));
        if malformed_params {
            let common = reference.requests.len().min(self.requests.len());
            assert_eq!(
                self.requests[..common],
                reference.requests[..common],
                "{what}: requests differ"
            );
            return;
        }
        assert_eq!(self.requests, reference.requests, "{what}: requests differ");
        assert_eq!(
            self.error.is_some(),
            reference.error.is_some(),
            "{what}: error differs: {:?} against the reference's {:?}",
            self.error,
            reference.error
        );
        if self.error.is_none() {
            assert_eq!(self.replies, reference.replies, "{what}: answers differ");
        }
    }
}

/// The reference: one `ServerConnection` reads the whole stream, request
/// after request, as a worker serving the connection alone would, until
/// the connection ends (a request without `FCGI_KEEP_CONN` ends it).
pub fn reference(stream: &[u8], limits: &Limits) -> Outcome {
    let mut conn = ServerConnection::new(Pipe::new(stream.to_vec()), limits.clone(), 1, 1);
    let mut outcome = Outcome::default();
    loop {
        match conn.read_request() {
            Ok(Some(request)) => {
                let keep_conn = request.keep_conn;
                outcome.requests.push(Seen::new(request));
                if !keep_conn {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                outcome.error = Some(e.to_string());
                break;
            }
        }
    }
    outcome.replies = std::mem::take(&mut conn.get_mut().written);
    outcome
}

/// An in-memory connection: reads hand out `input` in pieces no larger
/// than the schedule allows; writes are collected.
pub struct Pipe {
    input: Vec<u8>,
    pos: usize,
    pieces: Option<Schedule>,
    pub written: Vec<u8>,
}

impl Pipe {
    pub fn new(input: Vec<u8>) -> Pipe {
        Pipe {
            input,
            pos: 0,
            pieces: None,
            written: Vec::new(),
        }
    }

    pub fn chunked(input: Vec<u8>, pieces: Schedule) -> Pipe {
        Pipe {
            pieces: Some(pieces),
            ..Pipe::new(input)
        }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &[u8] {
        &self.input[self.pos..]
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self.pieces.as_mut().map_or(usize::MAX, Schedule::chunk);
        let n = buf.len().min(self.input.len() - self.pos).min(limit);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
