//! One FastCGI connection seen from the application side: reading complete
//! requests from it, and writing a response back.
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

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::{
    encode_end_request, encode_name_value, encode_record, encode_stream_end, encode_unknown_type,
    parse_name_values, BeginRequest, Header, NameValue, ProtocolError, RecordType, CANT_MPX_CONN,
    FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, HEADER_LEN, MAX_CONTENT, MAX_RECORD_LEN,
    NULL_REQUEST_ID, REQUEST_COMPLETE, ROLE_AUTHORIZER, ROLE_RESPONDER, UNKNOWN_ROLE,
};

/// Size limits applied while a request is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of the `FCGI_PARAMS` stream; more is a protocol error that
    /// closes the connection.
    pub max_params: usize,
    /// Bytes of request body accepted; past it the body is read and
    /// discarded and [`Request::body_too_large`] is set. 0 means unlimited.
    pub max_body: u64,
    /// Bytes of body kept in memory; a larger body goes to an unlinked temp
    /// file in `std::env::temp_dir()` (`TMPDIR`).
    pub spill_threshold: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_params: 1024 * 1024,
            max_body: 100 * 1024 * 1024,
            spill_threshold: 64 * 1024,
        }
    }
}

/// Why a connection cannot go on. The caller logs it (one line) and closes
/// the connection. A read timeout set on the socket surfaces as
/// [`ConnectionError::Io`] of kind `WouldBlock` or `TimedOut`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("FastCGI connection I/O error: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("cannot spill a request body to a temp file in {}: {source} (point TMPDIR at a writable directory with free space)", dir.display())]
    BodySpill {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The request body (the whole `FCGI_STDIN` stream).
#[derive(Debug)]
pub enum Body {
    Empty,
    Memory(Vec<u8>),
    /// An unlinked temp file positioned at offset 0 (bodies above
    /// [`Limits::spill_threshold`]).
    File(File),
}

impl Body {
    /// Length in bytes. For a file body this asks the kernel (`fstat`),
    /// which cannot fail on a file we hold open; 0 is reported if it did.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Memory(bytes) => bytes.len() as u64,
            Body::File(file) => file.metadata().map_or(0, |m| m.len()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete request: both its `FCGI_PARAMS` and `FCGI_STDIN` streams have
/// ended (an `FCGI_AUTHORIZER` request has no `FCGI_STDIN`).
#[derive(Debug)]
pub struct Request {
    pub id: u16,
    pub role: u16,
    /// The web server wants the connection kept open after the response.
    pub keep_conn: bool,
    /// The params in the order received, duplicates included.
    pub params: Vec<NameValue>,
    pub body: Body,
    /// The body was larger than [`Limits::max_body`] and was discarded: the
    /// caller answers 413.
    pub body_too_large: bool,
}

impl Request {
    /// Value of the param `name`. When the web server sent it more than once
    /// the last one wins, as it does once the params become `%ENV`.
    pub fn param(&self, name: &[u8]) -> Option<&[u8]> {
        self.params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Creates an anonymous read-write file in `dir`: `O_TMPFILE` where the
/// kernel and file system support it, otherwise a file created with a unique
/// name (`O_CREAT|O_EXCL`, mode 0600, as `mkstemp` does) and unlinked at
/// once. Either way nothing is left on disk once the file is closed, even if
/// the process is killed.
pub fn create_temp_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .or_else(|_| create_unlinked_named(dir))
}

fn create_unlinked_named(dir: &Path) -> io::Result<File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ATTEMPTS: u32 = 100;
    for _ in 0..ATTEMPTS {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            ".fcgi-spawn-body-{}-{}-{nanos}",
            process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no unused temp file name after {ATTEMPTS} attempts"),
    ))
}

/// Room for the largest possible record, so a record never has to be split
/// across buffer refills; small enough to stay below malloc's mmap threshold.
const READ_BUF_LEN: usize = 66 * 1024;
const _: () = assert!(READ_BUF_LEN >= MAX_RECORD_LEN);

/// One record as read from the wire; `content` excludes the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub header: Header,
    pub content: &'a [u8],
}

/// Buffered record framing over any byte stream. Each `read` asks for as
/// much as the buffer can hold, so pipelined records cost no extra system
/// calls. Shared by the server side and by the client.
pub struct RecordReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[start..end]`; the first `returned` of them are
    /// the record last handed out, dropped on the next call.
    start: usize,
    end: usize,
    returned: usize,
}

impl<R> RecordReader<R> {
    pub fn new(inner: R) -> RecordReader<R> {
        RecordReader {
            inner,
            buf: vec![0; READ_BUF_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            returned: 0,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Bytes read from the stream but not yet returned as a record.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start + self.returned..self.end]
    }

    /// The stream, and the bytes already read from it that no record has
    /// consumed yet.
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let rest = self.buffered().to_vec();
        (self.inner, rest)
    }
}

impl<R: Read> RecordReader<R> {
    /// The next record, or `None` on end of input at a record boundary.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, ConnectionError> {
        self.start += std::mem::take(&mut self.returned);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if !self.fill(HEADER_LEN)? {
            let got = self.end - self.start;
            if got == 0 {
                return Ok(None);
            }
            return Err(ProtocolError::TruncatedHeader { got }.into());
        }
        let header = Header::parse(&self.buf[self.start..self.end])?;
        let record_len = header.record_len();
        if !self.fill(record_len)? {
            return Err(ProtocolError::TruncatedRecord {
                record_type: header.record_type,
                request_id: header.request_id,
                got: self.end - self.start,
                expected: record_len,
            }
            .into());
        }
        self.returned = record_len;
        let content_start = self.start + HEADER_LEN;
        let content = &self.buf[content_start..content_start + usize::from(header.content_length)];
        Ok(Some(Record { header, content }))
    }

    /// Reads until at least `need` (at most [`MAX_RECORD_LEN`]) bytes are
    /// buffered; `false` if the input ends first.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        while self.end - self.start < need {
            if self.start + need > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

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
                Step::Complete(request) => return request.into_request().map(Some),
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
            Ok(())
        } else {
            self.body.push(content)
        }
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

    fn into_request(self) -> Result<Request, ConnectionError> {
        let (body, body_too_large) = self.body.finish()?;
        Ok(Request {
            id: self.id,
            role: self.role,
            keep_conn: self.keep_conn,
            params: self.parsed_params,
            body,
            body_too_large,
        })
    }
}

/// Accumulates `FCGI_STDIN` in memory, then in a temp file, and discards it
/// once it exceeds `max_body`.
struct BodyBuilder {
    max_body: u64,
    spill_threshold: usize,
    len: u64,
    memory: Vec<u8>,
    file: Option<File>,
    too_large: bool,
}

fn spill_error(source: io::Error) -> ConnectionError {
    ConnectionError::BodySpill {
        dir: env::temp_dir(),
        source,
    }
}

impl BodyBuilder {
    fn new(limits: &Limits) -> BodyBuilder {
        BodyBuilder {
            max_body: limits.max_body,
            spill_threshold: limits.spill_threshold,
            len: 0,
            memory: Vec::new(),
            file: None,
            too_large: false,
        }
    }

    fn push(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        if self.too_large {
            return Ok(());
        }
        let len = self.len + data.len() as u64;
        if self.max_body != 0 && len > self.max_body {
            self.too_large = true;
            self.memory = Vec::new();
            self.file = None;
            return Ok(());
        }
        self.len = len;
        if let Some(file) = &mut self.file {
            return file.write_all(data).map_err(spill_error);
        }
        if self.memory.len() + data.len() <= self.spill_threshold {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let mut file = create_temp_file(&env::temp_dir()).map_err(spill_error)?;
        file.write_all(&self.memory).map_err(spill_error)?;
        file.write_all(data).map_err(spill_error)?;
        self.memory = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    /// The body, and whether it was discarded for exceeding `max_body`.
    fn finish(self) -> Result<(Body, bool), ConnectionError> {
        if self.too_large {
            return Ok((Body::Empty, true));
        }
        let body = match self.file {
            Some(mut file) => {
                file.rewind().map_err(spill_error)?;
                Body::File(file)
            }
            None if self.memory.is_empty() => Body::Empty,
            None => Body::Memory(self.memory),
        };
        Ok((body, false))
    }
}

const ZERO_PADDING: [u8; 8] = [0; 8];

/// Records gathered into one `writev`: 16 records (48 slices, well below
/// `IOV_MAX`) carry up to 1 MiB per system call.
const RECORDS_PER_WRITE: usize = 16;

/// Frames a response into `FCGI_STDOUT` / `FCGI_STDERR` records and ends it
/// with `FCGI_END_REQUEST`. `W` may be a shared reference to the socket
/// (`&UnixStream` is `Write`), so the script's thread can write while the
/// connection stays owned elsewhere.
pub struct ResponseWriter<W: Write> {
    out: W,
    request_id: u16,
    stdout_bytes: u64,
    stderr_sent: bool,
    finished: bool,
}

impl<W: Write> ResponseWriter<W> {
    pub fn new(out: W, request_id: u16) -> ResponseWriter<W> {
        ResponseWriter {
            out,
            request_id,
            stdout_bytes: 0,
            stderr_sent: false,
            finished: false,
        }
    }

    /// Sends `data` on `FCGI_STDOUT`, split into records of at most 65535
    /// bytes, in one `writev` for up to 1 MiB of data (more if the peer's
    /// socket buffer takes it only in parts). Empty `data` sends nothing,
    /// since an empty record would end the stream.
    pub fn write_stdout(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_stream(RecordType::Stdout, data)?;
        self.stdout_bytes += data.len() as u64;
        Ok(())
    }

    /// Sends `data` on `FCGI_STDERR`, framed as [`Self::write_stdout`] does.
    pub fn write_stderr(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_stream(RecordType::Stderr, data)?;
        self.stderr_sent |= !data.is_empty();
        Ok(())
    }

    /// Ends `FCGI_STDOUT` (and `FCGI_STDERR` if anything was sent on it) and
    /// the request, in one write. Further writes fail.
    pub fn finish(&mut self, app_status: u32, protocol_status: u8) -> io::Result<()> {
        self.finish_with(&[], app_status, protocol_status)
    }

    /// Sends the last of the output and ends the request: for up to
    /// [`MAX_CONTENT`] bytes of `data`, record, stream ends and
    /// `FCGI_END_REQUEST` go out in one `writev` (the whole of a small
    /// response, in one system call).
    pub fn finish_with(
        &mut self,
        data: &[u8],
        app_status: u32,
        protocol_status: u8,
    ) -> io::Result<()> {
        if data.len() > MAX_CONTENT {
            self.write_stdout(data)?;
            return self.finish(app_status, protocol_status);
        }
        self.check_open()?;
        let mut end = Vec::with_capacity(3 * HEADER_LEN + 8);
        encode_stream_end(&mut end, RecordType::Stdout, self.request_id);
        if self.stderr_sent {
            encode_stream_end(&mut end, RecordType::Stderr, self.request_id);
        }
        encode_end_request(&mut end, self.request_id, app_status, protocol_status);
        self.finished = true;
        if data.is_empty() {
            self.out.write_all(&end)?;
            return self.out.flush();
        }
        // `data.len() <= MAX_CONTENT` keeps the length within a u16.
        let header = Header::new(RecordType::Stdout, self.request_id, data.len() as u16);
        let encoded = header.encode();
        let padding = &ZERO_PADDING[..usize::from(header.padding_length)];
        let mut slices = [
            IoSlice::new(&encoded),
            IoSlice::new(data),
            IoSlice::new(padding),
            IoSlice::new(&end),
        ];
        write_all_vectored(&mut self.out, &mut slices)?;
        self.stdout_bytes += data.len() as u64;
        self.out.flush()
    }

    /// Payload bytes sent on `FCGI_STDOUT` so far (the response size an
    /// access log reports).
    pub fn bytes_sent(&self) -> u64 {
        self.stdout_bytes
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn request_id(&self) -> u16 {
        self.request_id
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The underlying stream, e.g. to read an FCGI_ABORT_REQUEST while the
    /// response is being written.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn check_open(&self) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other(format!(
                "FastCGI request id {} already ended",
                self.request_id
            )));
        }
        Ok(())
    }

    /// Frames `data` into records of at most [`MAX_CONTENT`] bytes and sends
    /// up to [`RECORDS_PER_WRITE`] of them (header, data, padding each) per
    /// `writev`, without copying the data.
    fn write_stream(&mut self, record_type: RecordType, data: &[u8]) -> io::Result<()> {
        self.check_open()?;
        for batch in data.chunks(MAX_CONTENT * RECORDS_PER_WRITE) {
            let mut headers = [[0; HEADER_LEN]; RECORDS_PER_WRITE];
            let mut paddings = [0; RECORDS_PER_WRITE];
            for ((chunk, header), padding) in batch
                .chunks(MAX_CONTENT)
                .zip(&mut headers)
                .zip(&mut paddings)
            {
                // `chunks(MAX_CONTENT)` keeps every length within a u16.
                let h = Header::new(record_type, self.request_id, chunk.len() as u16);
                *header = h.encode();
                *padding = usize::from(h.padding_length);
            }
            let mut slices = [IoSlice::new(&[]); 3 * RECORDS_PER_WRITE];
            let mut used = 0;
            for ((chunk, header), padding) in batch.chunks(MAX_CONTENT).zip(&headers).zip(paddings)
            {
                slices[used] = IoSlice::new(header);
                slices[used + 1] = IoSlice::new(chunk);
                slices[used + 2] = IoSlice::new(&ZERO_PADDING[..padding]);
                used += 3;
            }
            write_all_vectored(&mut self.out, &mut slices[..used])?;
        }
        Ok(())
    }
}

/// `Write::write_all_vectored` is not stable yet: keep calling `writev`
/// until every slice is written.
fn write_all_vectored<W: Write>(out: &mut W, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{
        encode_begin_request, encode_params, encode_stream, EndRequest, KEEP_CONN, ROLE_FILTER,
    };
    use std::os::fd::AsRawFd;

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
        assert_eq!(request.role, ROLE_RESPONDER);
        assert!(!request.keep_conn);
        assert_eq!(request.param(b"SCRIPT_FILENAME"), Some(&b"/srv/a.pl"[..]));
        assert!(!request.body_too_large);
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
        assert_eq!(request.role, ROLE_AUTHORIZER);
        assert_eq!(request.param(b"REMOTE_USER"), Some(&b"alice"[..]));
        assert!(request.body.is_empty());
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
        assert_eq!(request.body.len(), 0);
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
        assert_eq!(request.body.len(), body.len() as u64);
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
        assert!(first.body_too_large);
        assert!(first.body.is_empty());
        let second = conn.read_request().unwrap().unwrap();
        assert_eq!(second.id, 2);
        assert!(!second.body_too_large);
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
        assert!(!request.body_too_large);
        assert_eq!(request.body.len(), 300_000);
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
}
