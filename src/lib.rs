//! fcgi-spawn: runs legacy Perl CGI scripts persistently over FastCGI, with
//! an embedded libperl — what php-fpm is for PHP.
//!
//! Layout: `fastcgi/` is the protocol (pure codec, connection, request
//! preamble, client); `listen` the socket; `master` the start-up (`detach`
//! the background start init scripts want), `pool/` the worker pool and its
//! event loop (`reload` what a SIGHUP reads again, `notify` systemd's
//! readiness messages), `dispatch/` how requests reach workers,
//! `scoreboard` the state they share (`title` what `ps` shows of it),
//! `worker/` a worker's life, `runner/` one request (with
//! `perl/FCGI/Spawn/`, its Perl half: Runner.pm the entry points) and its
//! write path:
//! `runner/output` the script's std pipes, `runner/pump` the thread that
//! drains them and watches the client, `runner/response` what is sent of a
//! script's response and when sending stops (through `fastcgi/writer`, the
//! one writer of client sockets), `runner/stop` how a running script is
//! stopped; `cgi` what a CGI response's header block says; `perl/` the
//! embedded interpreter behind one safe type; `config/` the settings (each
//! key declared once, in `config/schema.rs`); `cli/` the subcommands. Arrows
//! point one way: runner → pump → output → response → stop, and every
//! writer of a client (runner/response, status, worker, dispatch) →
//! fastcgi/writer → fastcgi/record.
//!
//! The daemon is the binary (`main.rs`); this library holds all of it so
//! that the fuzz targets under `fuzz/` can drive the protocol layer and the
//! connection hand-over directly. Only what they and `main` need is public.

mod access_log;
mod byte_size;
mod cgi;
pub mod cli;
mod config;
mod detach;
pub mod dispatch;
pub mod fastcgi;
mod fds;
pub mod listen;
mod log;
mod master;
mod notify;
pub mod page_buf;
mod path_policy;
mod perl;
mod pool;
mod reload;
mod runner;
mod scoreboard;
mod served;
mod signals;
mod sizing;
mod status;
mod title;
mod users;
pub mod worker;
