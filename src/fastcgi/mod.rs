//! The FastCGI 1.0 protocol, application (responder and authorizer) side,
//! plus the small client the CLI and the tests use to talk to it.
//!
//! It is split the way the protocol is layered, so each layer is tested on
//! its own: `record` is the wire format as pure functions over byte slices
//! (headers, padding, name-value pairs), unit-tested against literal bytes;
//! `connection` turns a byte stream into complete requests (answering
//! management records and refusals itself) and frames responses with as few
//! system calls as possible; `client` is the web server's side, built on the
//! same two layers so the two ends cannot disagree. Nothing here knows about
//! Perl, workers or sockets' origins: the worker hands a connected stream in
//! and gets `Request`s out.

// The binary uses part of this API; tests use all of it. Test builds keep
// the dead-code lint, so code that nothing at all uses is still reported.
#![cfg_attr(not(test), allow(dead_code))]

pub mod client;
pub mod connection;
pub mod preamble;
pub mod record;
pub mod watch;

// The module's public face. Callers in this crate may equally import
// through the submodules, so these need not all be used.
#[allow(unused_imports)]
pub use client::{get_values, send_request, ClientError, Response};
#[allow(unused_imports)]
pub use connection::{Body, ConnectionError, Limits, Request, ResponseWriter, ServerConnection};
#[allow(unused_imports)]
pub use record::{NameValue, ProtocolError, RecordType};
