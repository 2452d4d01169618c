//! What reading a FastCGI connection produces: a complete [`Request`]
//! (params and body), the [`Limits`] applied while reading it, and the
//! [`ConnectionError`] that ends a connection. Plain data; the reading is
//! in `server`, the body's storage in `body`.

use std::io;
use std::path::PathBuf;

use super::record::{NameValue, ProtocolError};
use std::fs::File;

/// Size limits applied while a request is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of the `FCGI_PARAMS` stream; more is a protocol error that
    /// closes the connection.
    pub max_params: usize,
    /// Bytes of request body accepted; past it the body is read and
    /// discarded and [`Request::body_refused`] says so. 0 means unlimited.
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
}

/// Why a request's body was read to its end but not kept: the request is
/// answered without running its script, and the connection stays in step
/// for its next request.
#[derive(Debug, thiserror::Error)]
pub enum BodyRefused {
    /// Larger than [`Limits::max_body`]: answered 413. `seen`: the bytes
    /// that had arrived when it went past the limit.
    #[error("larger than max_body ({limit} bytes): {seen} bytes or more")]
    TooLarge { limit: u64, seen: u64 },
    /// Its temp file could not be written (a full disk, a missing
    /// `TMPDIR`): answered 500.
    #[error("cannot spill it to a temp file in {}: {source} (point TMPDIR at a writable directory with free space)", dir.display())]
    NotStored {
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

#[cfg(test)]
impl Body {
    /// The whole body, read back.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self {
            Body::Empty => Vec::new(),
            Body::Memory(bytes) => bytes,
            Body::File(mut file) => {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut file, &mut bytes).unwrap();
                bytes
            }
        }
    }
}

/// A complete request: both its `FCGI_PARAMS` and `FCGI_STDIN` streams have
/// ended (an `FCGI_AUTHORIZER` request has no `FCGI_STDIN`).
#[derive(Debug)]
pub struct Request {
    pub id: u16,
    /// The web server wants the connection kept open after the response.
    pub keep_conn: bool,
    /// The params in the order received, duplicates included.
    pub params: Vec<NameValue>,
    pub body: Body,
    /// The body was discarded (too large, or its temp file could not be
    /// written): the caller answers with an error page, not the script.
    pub body_refused: Option<BodyRefused>,
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
