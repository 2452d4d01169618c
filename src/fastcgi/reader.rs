//! Record framing over a byte stream: [`RecordReader`] hands out whole
//! records from its own buffer, refilled with as few `read` calls as
//! possible. Used by the server side and by the client alike.

use std::io::{self, Read};

use crate::page_buf::PageBuf;

use super::record::{Header, ProtocolError, HEADER_LEN, MAX_RECORD_LEN};
use super::request::ConnectionError;

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
    buf: PageBuf,
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
            buf: PageBuf::zeroed(READ_BUF_LEN),
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
