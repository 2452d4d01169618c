//! The settings: every key the `run` command line and the TOML file take,
//! declared once with its doc (which is its `--help` line), its flag and
//! how it resolves.
//!
//! `Settings` is both the `run` command line (clap) and the config file
//! (serde), so the two cannot drift apart: every key is a flag and every
//! flag is a key (`--max-requests` ⇔ `max_requests`). A new key is one entry
//! below (see `declare.rs` for the three shapes); only a key whose value is
//! parsed or checked against the system also needs its lines in
//! `resolve.rs`.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::declare::settings;
use crate::byte_size::ByteSize;
use crate::listen::SocketOptions;
use crate::log::LogFormat;
use crate::sizing::Dynamic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Compile the script into a fresh package every request (default).
    Perlrun,
    /// Compile each script once per worker and reuse it (recompiled when the
    /// file changes).
    Registry,
    /// Keep each script compiled in the worker and fork a child per
    /// request to run it: exact CGI semantics, at the cost of a fork.
    Fork,
}

/// How the pool is sized (php-fpm's `pm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// Always `workers` workers (default).
    Static,
    /// Between `min_spare` and `max_spare` idle workers, at most
    /// `max_workers` in all.
    Dynamic,
}

/// stat(2) fields `stats_policy` may name, in perl's `stat` order (an
/// FCGI::Spawn policy gives their indexes).
pub const STAT_FIELDS: &[&str] = &[
    "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "atime", "mtime", "ctime",
    "blksize", "blocks",
];

settings! {
    /// The daemon's settings as the command line and the config file give
    /// them: `None`, `false` or empty where neither said anything.
    keys {
        /// Socket to listen on: a path (contains '/') or HOST:PORT. Without it, an
        /// inherited socket is used (systemd LISTEN_FDS, or a socket on fd 0).
        #[arg(long)]
        listen: Option<String>;
        /// Mode of the UNIX socket file, octal [default: 0660].
        #[arg(long, value_name = "MODE")]
        socket_mode: Option<String> => derived;
        /// Owner of the UNIX socket file.
        #[arg(long, value_name = "USER")]
        socket_owner: Option<String> => derived;
        /// Group of the UNIX socket file.
        #[arg(long, value_name = "GROUP")]
        socket_group: Option<String> => derived;
        /// listen(2) backlog: connections the kernel holds before a worker or
        /// the master accepts them [default: 1024].
        #[arg(
            long,
            visible_alias = "backlog",
            value_name = "N",
            allow_negative_numbers = true
        )]
        #[serde(alias = "backlog")]
        listen_backlog: Option<i32> => derived;
        /// Number of worker processes (static pool); 0: no fork, the master
        /// serves one request at a time itself (for debugging a script)
        /// [default: 4].
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        workers: Option<usize> => derived;
        /// static: always `workers` workers; dynamic: as many as the load
        /// needs, between `min_spare` and `max_spare` idle, at most
        /// `max_workers` [default: static].
        #[arg(long, value_enum)]
        pool: Option<PoolMode> => derived;
        /// dynamic: most workers at once [default: 4 × workers, at most 64].
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        max_workers: Option<usize> => derived;
        /// dynamic: workers started with the pool
        /// [default: min_spare + (max_spare - min_spare) / 2].
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        start_workers: Option<usize> => derived;
        /// dynamic: fewer idle workers than this, more are started [default: 1].
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        min_spare: Option<usize> => derived;
        /// dynamic: more idle workers than this, one a second leaves
        /// [default: max(min_spare, workers)].
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        max_spare: Option<usize> => derived;
        /// Directory scripts may run from (repeatable). None: any directory.
        #[arg(long = "root", value_name = "DIR")]
        #[serde(deserialize_with = "one_or_many")]
        root: Vec<PathBuf> => derived;
        /// Refuse scripts whose resolved path matches this glob with a 403
        /// (repeatable; `*` stays within a directory, `**` crosses them), e.g.
        /// `/srv/www/**/lib/**` for library files under a root.
        #[arg(long, value_name = "GLOB")]
        #[serde(deserialize_with = "one_or_many")]
        deny: Vec<String> => derived;
        /// Comma-separated extensions scripts may have [default: .pl,.cgi].
        #[arg(long, value_name = "LIST")]
        ext: Option<String> => derived;
        /// Run scripts without the exec bit too (a tree that never had it, e.g.
        /// moved from mod_perl). By default a script must be executable, as
        /// under CGI: `chmod -x` switches one off, an uploaded file does not run.
        #[arg(long)]
        ignore_exec_bit: bool;
        /// Module to load in the master before forking (repeatable).
        #[arg(long, value_name = "MODULE")]
        #[serde(deserialize_with = "one_or_many")]
        preload: Vec<String>;
        /// Perl file to run in the master before forking (repeatable).
        #[arg(long, value_name = "FILE")]
        #[serde(deserialize_with = "one_or_many")]
        preload_script: Vec<PathBuf>;
        /// Perl file to run in each worker after fork, before its first request
        /// (repeatable): database connections, per-process state (like
        /// FCGI::Spawn's preload_prepared_NN.pl).
        #[arg(long, value_name = "FILE")]
        #[serde(deserialize_with = "one_or_many")]
        worker_init: Vec<PathBuf>;
        /// Before each request, reload the modules in %INC whose file changed
        /// (FCGI::Spawn's `stats`; one log line per reload).
        #[arg(long)]
        stats: bool;
        /// The stat fields that tell a module changed, for --stats (repeatable;
        /// dev ino mode nlink uid gid rdev size atime mtime ctime blksize
        /// blocks, or `all`: all but atime) [default: mtime].
        #[arg(long, value_name = "FIELD")]
        #[serde(deserialize_with = "one_or_many")]
        stats_policy: Vec<String> => derived;
        /// Compile the scripts matching this glob in the master before forking
        /// (repeatable; registry and fork isolation), so the workers share them
        /// and no first request waits for a compile; `**` crosses directories.
        #[arg(long, value_name = "GLOB")]
        precompile: Vec<String>;
        /// A script that fails to precompile stops the start (default: logged,
        /// compiled again on its first request).
        #[arg(long)]
        precompile_strict: bool;
        /// Run the precompiled registry scripts matching GLOB once in the
        /// master, a GET with QUERY (or none) whose response is discarded, so
        /// what their run loads is shared too (repeatable; only for scripts
        /// whose GET changes nothing the site would see).
        #[arg(long, value_name = "GLOB[=QUERY]")]
        precompile_warm: Vec<String> => derived;
        /// How requests are isolated [default: perlrun].
        #[arg(long, value_enum)]
        isolation: Isolation = Isolation::Perlrun;
        /// Isolation for scripts matching a glob, GLOB=MODE (repeatable; first
        /// match wins; `*` stays within a directory, `**` crosses them), e.g.
        /// `/srv/www/app/**=registry`.
        #[arg(long = "isolation-for", value_name = "GLOB=MODE")]
        isolation_for: Vec<String> => derived;
        /// Daemon environment variable scripts see (repeatable; `*` = all)
        /// [default: PATH LANG LC_ALL LC_CTYPE TZ TMPDIR PERL5LIB].
        #[arg(long = "pass-env", value_name = "NAME")]
        pass_env: Vec<String> => derived;
        /// Environment variable set for every script (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String> => derived;
        /// Recycle a worker after this many requests (0 = never) [default: 0].
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        max_requests: u64 = 0;
        /// A worker whose resident memory passed this after a request leaves
        /// (bytes, or K, M, G; 0 = no limit) [default: 0].
        #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
        max_rss: ByteSize = ByteSize(0);
        /// A worker whose private (unshared) memory passed this after a request
        /// leaves (bytes, or K, M, G; 0 = no limit) [default: 0].
        #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
        max_unshared: ByteSize = ByteSize(0);
        /// Largest request body accepted, bytes; 413 past it [default: 104857600].
        #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
        max_body: u64 = 100 << 20;
        /// Bodies larger than this go to a temp file, bytes [default: 65536].
        #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
        body_spill: usize = 64 << 10;
        /// After a request that left the worker's resident memory more than
        /// this many bytes above its figure after the last trim, the worker
        /// gives its free heap back to the system (malloc_trim), once the
        /// response is complete; 0 turns it off [default: 1048576].
        #[arg(long, value_name = "BYTES")]
        heap_trim: usize = 1 << 20;
        /// Seconds a request may run: then the client gets a 504 (if nothing was
        /// sent yet), the script is stopped with a backtrace in the log, and a
        /// worker whose script does not stop is replaced (0 = no limit) [default: 0].
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        request_timeout: u64 = 0;
        /// Seconds after which a running request's Perl backtrace is logged
        /// (once; the script runs on), as php-fpm's slowlog (0 = off) [default: 0].
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        slowlog_timeout: u64 = 0;
        /// Seconds a connection may stay idle between requests, or take for a
        /// request's header and params (and a body up to 64 KiB) to arrive,
        /// before it is closed; also the longest wait for the rest of a larger
        /// body (0 = no limit) [default: 30].
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        idle_timeout: u64 = 30;
        /// Run as this user: the master binds the socket and writes the pid
        /// file as root, then switches (the workers it forks run as the user).
        #[arg(long, value_name = "USER")]
        user: Option<String>;
        /// Run the workers with this group [default: the user's group].
        #[arg(long, value_name = "GROUP")]
        group: Option<String>;
        /// Seconds a graceful stop waits for requests in flight [default: 30].
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        grace_time: u64 = 30;
        /// Seconds the old workers get to finish their requests after a reload
        /// (SIGHUP) before they are killed [default: grace_time].
        #[arg(long, value_name = "SECS")]
        drain_timeout: Option<u64> => derived;
        /// Also send script STDERR to the web server as FCGI_STDERR.
        #[arg(long)]
        stderr_to_client: bool;
        /// Write the master's pid here (before the switch to --user; removed at
        /// the stop, or emptied if the user may not remove it).
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>;
        /// Log file (appended; reopened on USR1) [default: stderr].
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>;
        /// Go to the background once serving, for init scripts (needs --log):
        /// the command returns 0 when the pool serves, or 1 with the reason.
        /// Under a supervisor (daemontools, runit, systemd) leave it off.
        #[arg(long)]
        detach: bool;
        /// Log lines with a timestamp, or plain for a collector that adds its
        /// own (multilog, svlogd, journald) [default: timestamped].
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: LogFormat = LogFormat::Timestamped;
        /// Answer requests whose SCRIPT_NAME is this path with the pool's
        /// status (text; `?json`, `?openmetrics`, `?full`), no script run,
        /// like php-fpm's pm.status_path [default: off].
        #[arg(long, value_name = "PATH")]
        status_path: Option<String>;
        /// Answer requests whose SCRIPT_NAME is this path with `pong`, like
        /// php-fpm's ping.path [default: off].
        #[arg(long, value_name = "PATH")]
        ping_path: Option<String>;
        /// Access log: one line per request (time, pid, method, URI, status,
        /// bytes, ms, RSS, CPU ms); reopened on USR1 [default: none].
        #[arg(long, value_name = "FILE")]
        access_log: Option<PathBuf>;
    }
    derived {
        pub socket: SocketOptions,
        /// Static pool: the number of workers; dynamic: `max_workers`.
        pub workers: usize,
        /// `Some` for a dynamic pool.
        pub dynamic: Option<Dynamic>,
        /// `root`, each directory resolved.
        pub roots: Vec<PathBuf>,
        /// `deny` globs: resolved script paths refused with a 403.
        pub deny: Vec<glob::Pattern>,
        /// `ext`, split.
        pub extensions: Vec<String>,
        /// Stat field names compared by `stats` (validated, not empty).
        pub stats_policy: Vec<String>,
        /// `precompile_warm` rules: the scripts to run once in the master,
        /// and the query string of that GET.
        pub precompile_warm: Vec<(glob::Pattern, String)>,
        /// Per-path overrides of `isolation`, in order.
        pub isolation_for: Vec<(glob::Pattern, Isolation)>,
        /// Names of the daemon's environment variables scripts see.
        pub pass_env: Vec<String>,
        /// Variables set for every script.
        pub env: Vec<(String, String)>,
        /// Seconds; `grace_time` unless set.
        pub drain_timeout: u64,
    }
}

impl Isolation {
    /// The mode for `script`: the first matching `isolation_for` rule, else
    /// the daemon's default.
    pub fn for_script(
        default: Isolation,
        rules: &[(glob::Pattern, Isolation)],
        script: &Path,
    ) -> Isolation {
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        rules
            .iter()
            .find(|(pattern, _)| pattern.matches_path_with(script, options))
            .map(|(_, mode)| *mode)
            .unwrap_or(default)
    }

    /// The name the Perl runner knows the mode by.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Perlrun => "perlrun",
            Isolation::Registry => "registry",
            Isolation::Fork => "fork",
        }
    }
}

/// A TOML key that takes a list also takes one value: `root = "/srv/www"`
/// is `root = ["/srv/www"]`.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
