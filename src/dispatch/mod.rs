//! How requests find workers (SPEC §5 "Dispatch"): a worker takes a request
//! only when it can serve it at once, no request waits while a worker is
//! idle, and a connection never stays pinned to a busy worker.
//!
//! Idle workers accept new connections themselves and keep their last
//! request's connection while idle (`worker::idle`), so the usual request
//! costs no hop through the master; a worker that starts on a request hands
//! every other connection it holds back to the master, which watches them
//! with epoll (`dispatcher`) and puts each ready request in a queue in the
//! kernel that every worker takes from (`ready`). Connections and stop
//! requests travel over one UNIX socket pair per worker (`channel`); who
//! may take a request the master gives directly is settled in shared
//! memory (`crate::scoreboard`). ARCHITECTURE.md describes the processes, the life
//! of a request and who owns which descriptor.

pub mod channel;
pub mod dispatcher;
pub mod ready;
