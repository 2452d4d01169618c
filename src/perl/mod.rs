//! The embedded Perl interpreter.
//!
//! `ffi` holds the raw declarations of our C glue; `interp` is the one safe
//! type the rest of the crate uses. Perl values never cross into Rust: Rust
//! passes byte strings to named Perl subs and gets back how the call ended.

mod ffi;
mod interp;

pub use interp::{request_backtrace, DieMode, Interpreter, Outcome, Stage, StopReason};
