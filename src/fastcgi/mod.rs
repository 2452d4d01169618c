//! The FastCGI 1.0 protocol, application (responder and authorizer) side,
//! plus the small client the CLI and the tests use to talk to it.
//!
//! It is split the way the protocol is layered, so each layer is tested on
//! its own: `record` is the wire format as pure functions over byte slices
//! (headers, padding, name-value pairs), unit-tested against literal bytes;
//! `reader` frames records out of a byte stream; `rules` judges each
//! record against the request being read (management records and refusals
//! answered there); `server` turns them into complete requests
//! ([`Request`], `request`), with the body kept by `body`; `preamble` says,
//! by the same rules, when a request no worker serves yet is ready for one;
//! `writer` is the one writer of client sockets: it frames a response with
//! as few system calls as possible, and every other byte the daemon sends
//! a web server (management replies, refusals) leaves through it too;
//! `watch` reads what the web server sends while a script runs (an abort,
//! its going away). `client` is the web server's side, built on the same
//! layers so the two ends cannot disagree. Nothing here knows about Perl,
//! workers or sockets' origins: the worker hands a connected stream in and
//! gets `Request`s out; no other module reads a client socket, and none
//! but `writer` writes one.

mod body;
pub mod client;
pub mod preamble;
pub mod reader;
pub mod record;
mod request;
mod rules;
mod server;
pub mod watch;
mod writer;

#[cfg(test)]
mod tests;

pub use request::{Body, BodyRefused, ConnectionError, Limits, Request};
pub use server::ServerConnection;
pub use writer::{ClientSocket, ResponseWriter};
