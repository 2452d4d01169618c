//! The writing side of a connection: [`ResponseWriter`] frames a
//! response into `FCGI_STDOUT` / `FCGI_STDERR` records and ends it with
//! `FCGI_END_REQUEST`, each write one `writev` without copying the data. A
//! separate type from the reader because the response is produced while
//! the script runs, possibly by another thread, on a descriptor the
//! connection's owner keeps.

use std::io::{self, IoSlice, Write};

use super::record::{
    encode_end_request, encode_stream_end, Header, RecordType, HEADER_LEN, MAX_CONTENT,
};

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
