//! fcgi-spawn: runs legacy Perl CGI scripts persistently over FastCGI, with
//! an embedded libperl — what php-fpm is for PHP.
//!
//! Layout: `fastcgi/` is the protocol (pure codec, connection, client);
//! `listen` the socket; `master` the process pool, `worker` a worker's accept
//! loop, `runner` one request (with `perl/FCGI/Spawn/Runner.pm`, its Perl
//! half); `perl/` the embedded interpreter behind one safe type; `config` the
//! settings; `cli/` the subcommands.

mod cli;
mod config;
mod fastcgi;
mod fds;
mod listen;
mod log;
mod master;
mod output;
mod path_policy;
mod perl;
mod pump;
mod runner;
mod signals;
mod worker;

fn main() {
    std::process::exit(cli::main());
}
