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
