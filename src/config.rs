//! One model of the daemon's configuration.
//!
//! `Settings` is both the `run` command line (clap) and the TOML config file
//! (serde), so the two cannot drift apart: every key is a flag and every flag
//! is a key (`--max-requests` ⇔ `max_requests`). The file is read first, then
//! flags override it, then `Config::resolve` fills defaults and validates,
//! naming the key (and file) of anything wrong.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::byte_size::ByteSize;
use crate::listen::SocketOptions;
use crate::log::LogFormat;
use crate::scoreboard::SLOTS;
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

#[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Socket to listen on: a path (contains '/') or HOST:PORT. Without it, an
    /// inherited socket is used (systemd LISTEN_FDS, or a socket on fd 0).
    #[arg(long)]
    pub listen: Option<String>,
    /// Mode of the UNIX socket file, octal [default: 0660].
    #[arg(long, value_name = "MODE")]
    pub socket_mode: Option<String>,
    /// Owner of the UNIX socket file.
    #[arg(long, value_name = "USER")]
    pub socket_owner: Option<String>,
    /// Group of the UNIX socket file.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// listen(2) backlog: connections the kernel holds before a worker or
    /// the master accepts them [default: 1024].
    #[arg(
        long,
        visible_alias = "backlog",
        value_name = "N",
        allow_negative_numbers = true
    )]
    #[serde(alias = "backlog")]
    pub listen_backlog: Option<i32>,
    /// Number of worker processes (static pool); 0: no fork, the master
    /// serves one request at a time itself (for debugging a script)
    /// [default: 4].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub workers: Option<usize>,
    /// static: always `workers` workers; dynamic: as many as the load
    /// needs, between `min_spare` and `max_spare` idle, at most
    /// `max_workers` [default: static].
    #[arg(long, value_enum)]
    pub pool: Option<PoolMode>,
    /// dynamic: most workers at once [default: 4 × workers, at most 64].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_workers: Option<usize>,
    /// dynamic: workers started with the pool
    /// [default: min_spare + (max_spare - min_spare) / 2].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub start_workers: Option<usize>,
    /// dynamic: fewer idle workers than this, more are started [default: 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub min_spare: Option<usize>,
    /// dynamic: more idle workers than this, one a second leaves
    /// [default: max(min_spare, workers)].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_spare: Option<usize>,
    /// Directory scripts may run from (repeatable). None: any directory.
    #[arg(long = "root", value_name = "DIR")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub root: Vec<PathBuf>,
    /// Refuse scripts whose resolved path matches this glob with a 403
    /// (repeatable; `*` stays within a directory, `**` crosses them), e.g.
    /// `/srv/www/**/lib/**` for library files under a root.
    #[arg(long, value_name = "GLOB")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub deny: Vec<String>,
    /// Comma-separated extensions scripts may have [default: .pl,.cgi].
    #[arg(long, value_name = "LIST")]
    pub ext: Option<String>,
    /// Run scripts without the exec bit too (a tree that never had it, e.g.
    /// moved from mod_perl). By default a script must be executable, as
    /// under CGI: `chmod -x` switches one off, an uploaded file does not run.
    #[arg(long)]
    #[serde(default)]
    pub ignore_exec_bit: bool,
    /// Module to load in the master before forking (repeatable).
    #[arg(long, value_name = "MODULE")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub preload: Vec<String>,
    /// Perl file to run in the master before forking (repeatable).
    #[arg(long, value_name = "FILE")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub preload_script: Vec<PathBuf>,
    /// Perl file to run in each worker after fork, before its first request
    /// (repeatable): database connections, per-process state (like
    /// FCGI::Spawn's preload_prepared_NN.pl).
    #[arg(long, value_name = "FILE")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub worker_init: Vec<PathBuf>,
    /// Before each request, reload the modules in %INC whose file changed
    /// (FCGI::Spawn's `stats`; one log line per reload).
    #[arg(long)]
    #[serde(default)]
    pub stats: bool,
    /// The stat fields that tell a module changed, for --stats (repeatable;
    /// dev ino mode nlink uid gid rdev size atime mtime ctime blksize
    /// blocks, or `all`: all but atime) [default: mtime].
    #[arg(long, value_name = "FIELD")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub stats_policy: Vec<String>,
    /// Compile the scripts matching this glob in the master before forking
    /// (repeatable; registry and fork isolation), so the workers share them
    /// and no first request waits for a compile; `**` crosses directories.
    #[arg(long, value_name = "GLOB")]
    #[serde(default)]
    pub precompile: Vec<String>,
    /// A script that fails to precompile stops the start (default: logged,
    /// compiled again on its first request).
    #[arg(long)]
    #[serde(default)]
    pub precompile_strict: bool,
    /// Run the precompiled registry scripts matching GLOB once in the
    /// master, a GET with QUERY (or none) whose response is discarded, so
    /// what their run loads is shared too (repeatable; only for scripts
    /// whose GET changes nothing the site would see).
    #[arg(long, value_name = "GLOB[=QUERY]")]
    #[serde(default)]
    pub precompile_warm: Vec<String>,
    /// How requests are isolated [default: perlrun].
    #[arg(long, value_enum)]
    pub isolation: Option<Isolation>,
    /// Isolation for scripts matching a glob, GLOB=MODE (repeatable; first
    /// match wins; `*` stays within a directory, `**` crosses them), e.g.
    /// `/srv/www/app/**=registry`.
    #[arg(long = "isolation-for", value_name = "GLOB=MODE")]
    #[serde(default)]
    pub isolation_for: Vec<String>,
    /// Daemon environment variable scripts see (repeatable; `*` = all)
    /// [default: PATH LANG LC_ALL LC_CTYPE TZ TMPDIR PERL5LIB].
    #[arg(long = "pass-env", value_name = "NAME")]
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// Environment variable set for every script (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    #[serde(default)]
    pub env: Vec<String>,
    /// Recycle a worker after this many requests (0 = never) [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_requests: Option<u64>,
    /// A worker whose resident memory passed this after a request leaves
    /// (bytes, or K, M, G; 0 = no limit) [default: 0].
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub max_rss: Option<ByteSize>,
    /// A worker whose private (unshared) memory passed this after a request
    /// leaves (bytes, or K, M, G; 0 = no limit) [default: 0].
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub max_unshared: Option<ByteSize>,
    /// Largest request body accepted, bytes; 413 past it [default: 104857600].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub max_body: Option<u64>,
    /// Bodies larger than this go to a temp file, bytes [default: 65536].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub body_spill: Option<usize>,
    /// After a request that left the worker's resident memory more than
    /// this many bytes above its figure after the last trim, the worker
    /// gives its free heap back to the system (malloc_trim), once the
    /// response is complete; 0 turns it off [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub heap_trim: Option<usize>,
    /// Seconds a request may run: then the client gets a 504 (if nothing was
    /// sent yet), the script is stopped with a backtrace in the log, and a
    /// worker whose script does not stop is replaced (0 = no limit) [default: 0].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub request_timeout: Option<u64>,
    /// Seconds after which a running request's Perl backtrace is logged
    /// (once; the script runs on), as php-fpm's slowlog (0 = off) [default: 0].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub slowlog_timeout: Option<u64>,
    /// Seconds a connection may stay idle between requests, or take for a
    /// request's header and params (and a body up to 64 KiB) to arrive,
    /// before it is closed; also the longest wait for the rest of a larger
    /// body (0 = no limit) [default: 30].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub idle_timeout: Option<u64>,
    /// Run as this user: the master binds the socket and writes the pid
    /// file as root, then switches (the workers it forks run as the user).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run the workers with this group [default: the user's group].
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Seconds a graceful stop waits for requests in flight [default: 30].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub grace_time: Option<u64>,
    /// Seconds the old workers get to finish their requests after a reload
    /// (SIGHUP) before they are killed [default: grace_time].
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<u64>,
    /// Also send script STDERR to the web server as FCGI_STDERR.
    #[arg(long)]
    #[serde(default)]
    pub stderr_to_client: bool,
    /// Write the master's pid here (before the switch to --user; removed at
    /// the stop, or emptied if the user may not remove it).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Log file (appended; reopened on USR1) [default: stderr].
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Go to the background once serving, for init scripts (needs --log):
    /// the command returns 0 when the pool serves, or 1 with the reason.
    /// Under a supervisor (daemontools, runit, systemd) leave it off.
    #[arg(long)]
    #[serde(default)]
    pub detach: bool,
    /// Log lines with a timestamp, or plain for a collector that adds its
    /// own (multilog, svlogd, journald) [default: timestamped].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Answer requests whose SCRIPT_NAME is this path with the pool's
    /// status (text; `?json`, `?openmetrics`, `?full`), no script run,
    /// like php-fpm's pm.status_path [default: off].
    #[arg(long, value_name = "PATH")]
    pub status_path: Option<String>,
    /// Answer requests whose SCRIPT_NAME is this path with `pong`, like
    /// php-fpm's ping.path [default: off].
    #[arg(long, value_name = "PATH")]
    pub ping_path: Option<String>,
    /// Access log: one line per request (time, pid, method, URI, status,
    /// bytes, ms, RSS, CPU ms); reopened on USR1 [default: none].
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// TOML configuration file; flags override its keys.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// The daemon's environment variables scripts see unless `pass_env` says
/// otherwise; the rest (credentials of the service manager, a sysadmin's
/// shell) stays out of %ENV, as php-fpm's `clear_env`.
const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PERL5LIB",
];

/// stat(2) fields `stats_policy` may name, in perl's `stat` order (an
/// FCGI::Spawn policy gives their indexes).
pub const STAT_FIELDS: &[&str] = &[
    "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "atime", "mtime", "ctime",
    "blksize", "blocks",
];

/// The validated, complete configuration of a daemon.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Option<String>,
    pub socket: SocketOptions,
    /// Static pool: the number of workers; dynamic: `max_workers`.
    pub workers: usize,
    /// `Some` for a dynamic pool.
    pub dynamic: Option<Dynamic>,
    pub roots: Vec<PathBuf>,
    /// `deny` globs: resolved script paths refused with a 403.
    pub deny: Vec<glob::Pattern>,
    pub extensions: Vec<String>,
    pub ignore_exec_bit: bool,
    pub preload: Vec<String>,
    pub preload_scripts: Vec<PathBuf>,
    pub worker_init: Vec<PathBuf>,
    pub stats: bool,
    /// Stat field names compared by `stats` (validated, not empty).
    pub stats_policy: Vec<String>,
    /// `precompile` globs, valid patterns.
    pub precompile: Vec<String>,
    pub precompile_strict: bool,
    /// `precompile_warm` rules: the scripts to run once in the master, and
    /// the query string of that GET.
    pub precompile_warm: Vec<(glob::Pattern, String)>,
    pub isolation: Isolation,
    /// Per-path overrides of `isolation`, in order.
    pub isolation_for: Vec<(glob::Pattern, Isolation)>,
    /// Names of the daemon's environment variables scripts see.
    pub pass_env: Vec<String>,
    /// Variables set for every script.
    pub env: Vec<(String, String)>,
    pub max_requests: u64,
    /// Bytes; 0: no limit.
    pub max_rss: u64,
    pub max_unshared: u64,
    pub max_body: u64,
    pub body_spill: usize,
    /// `heap_trim` in bytes (0: off).
    pub heap_trim: usize,
    pub grace_time: u64,
    pub drain_timeout: u64,
    pub request_timeout: u64,
    pub slowlog_timeout: u64,
    pub idle_timeout: u64,
    pub user: Option<String>,
    pub group: Option<String>,
    pub stderr_to_client: bool,
    pub pid_file: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub detach: bool,
    pub log_format: LogFormat,
    pub status_path: Option<String>,
    pub ping_path: Option<String>,
    pub access_log: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{key}: {message}{}", .file.as_ref().map(|f| format!(" (in {} or on the command line)", f.display())).unwrap_or_default())]
    Invalid {
        key: &'static str,
        message: String,
        file: Option<PathBuf>,
    },
}

/// The keys a config file may set, as serde knows them (from its own
/// "unknown field `x`, expected one of `a`, `b`" for a key no file has):
/// the list is written once, by the `Settings` struct.
fn known_keys() -> Vec<String> {
    let mut probe = toml::Table::new();
    probe.insert("\u{1}".into(), toml::Value::Integer(0));
    let Err(e) = toml::Value::Table(probe).try_into::<Settings>() else {
        return Vec::new();
    };
    let message = e.to_string();
    let Some((_, list)) = message.split_once("expected one of") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The known key nearest to `key` (a typo, a dash for an underscore), if
/// one is near enough to be what was meant.
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    let key = key.replace('-', "_").to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The line (1-based) where `key = ...` is set at the top level.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// A TOML error as a user reads it, on one line: its line (and the key
/// set there), and what it wants in words, not in Rust's type names.
fn plain_error(error: &toml::de::Error, text: &str) -> String {
    let message = error
        .message()
        .trim_end()
        .replace('\n', "; ")
        .replace("expected usize", "expected a whole number (0 or more)")
        .replace("expected u64", "expected a whole number (0 or more)")
        .replace("expected u32", "expected a whole number (0 or more)")
        .replace("expected u16", "expected a whole number (0 or more)")
        .replace("expected i64", "expected a whole number")
        .replace(
            "expected a sequence",
            "expected a list, e.g. [\"a\", \"b\"]",
        )
        .replace("expected a boolean", "expected true or false");
    let Some(span) = error.span() else {
        return message;
    };
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace));
    match key {
        Some(key) => format!("line {line}: {key}: {message}"),
        None => format!("line {line}: {message}"),
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

impl Settings {
    /// Reads a TOML config file; unknown keys are errors naming key and line.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            file: path.to_path_buf(),
            message,
        })
    }

    /// Every problem at once, one line each: unknown keys (with the key
    /// they were probably meant to be), then a value of the wrong type
    /// named by its key and line.
    pub fn from_toml(text: &str) -> Result<Settings, String> {
        // A syntax error keeps toml's own message: its line, the line's
        // text and a caret under the spot.
        let table: toml::Table =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let known = known_keys();
        let mut problems = Vec::new();
        for key in table.keys().filter(|k| !known.contains(k)) {
            let hint = closest(key, &known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            problems.push((line_of_key(text, key), format!("unknown key `{key}`{hint}")));
        }
        if !problems.is_empty() {
            problems.sort();
            let lines: Vec<String> = problems
                .into_iter()
                .map(|(line, p)| match line {
                    Some(n) => format!("line {n}: {p}"),
                    None => p,
                })
                .collect();
            return Err(lines.join("\n"));
        }
        toml::from_str(text).map_err(|e| plain_error(&e, text))
    }

    /// The file named by `--config` (if any) overridden by these flags:
    /// the settings `run` would use, before defaults and validation.
    pub fn with_config_file(self) -> Result<Settings, ConfigError> {
        match &self.config {
            Some(path) => Ok(Settings::from_file(path)?.overridden_by(self)),
            None => Ok(self),
        }
    }

    /// `self` (from the file) overridden by `flags`.
    pub fn overridden_by(self, flags: Settings) -> Settings {
        fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
            flag.or(file)
        }
        fn list<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
            if flag.is_empty() {
                file
            } else {
                flag
            }
        }
        Settings {
            listen: pick(flags.listen, self.listen),
            socket_mode: pick(flags.socket_mode, self.socket_mode),
            socket_owner: pick(flags.socket_owner, self.socket_owner),
            socket_group: pick(flags.socket_group, self.socket_group),
            listen_backlog: pick(flags.listen_backlog, self.listen_backlog),
            workers: pick(flags.workers, self.workers),
            pool: pick(flags.pool, self.pool),
            max_workers: pick(flags.max_workers, self.max_workers),
            start_workers: pick(flags.start_workers, self.start_workers),
            min_spare: pick(flags.min_spare, self.min_spare),
            max_spare: pick(flags.max_spare, self.max_spare),
            root: list(flags.root, self.root),
            deny: list(flags.deny, self.deny),
            ext: pick(flags.ext, self.ext),
            ignore_exec_bit: flags.ignore_exec_bit || self.ignore_exec_bit,
            preload: list(flags.preload, self.preload),
            preload_script: list(flags.preload_script, self.preload_script),
            worker_init: list(flags.worker_init, self.worker_init),
            stats: flags.stats || self.stats,
            stats_policy: list(flags.stats_policy, self.stats_policy),
            precompile: list(flags.precompile, self.precompile),
            precompile_strict: flags.precompile_strict || self.precompile_strict,
            precompile_warm: list(flags.precompile_warm, self.precompile_warm),
            isolation: pick(flags.isolation, self.isolation),
            isolation_for: list(flags.isolation_for, self.isolation_for),
            pass_env: list(flags.pass_env, self.pass_env),
            env: list(flags.env, self.env),
            max_requests: pick(flags.max_requests, self.max_requests),
            max_rss: pick(flags.max_rss, self.max_rss),
            max_unshared: pick(flags.max_unshared, self.max_unshared),
            max_body: pick(flags.max_body, self.max_body),
            body_spill: pick(flags.body_spill, self.body_spill),
            heap_trim: pick(flags.heap_trim, self.heap_trim),
            grace_time: pick(flags.grace_time, self.grace_time),
            drain_timeout: pick(flags.drain_timeout, self.drain_timeout),
            request_timeout: pick(flags.request_timeout, self.request_timeout),
            slowlog_timeout: pick(flags.slowlog_timeout, self.slowlog_timeout),
            idle_timeout: pick(flags.idle_timeout, self.idle_timeout),
            user: pick(flags.user, self.user),
            group: pick(flags.group, self.group),
            stderr_to_client: flags.stderr_to_client || self.stderr_to_client,
            pid_file: pick(flags.pid_file, self.pid_file),
            log: pick(flags.log, self.log),
            detach: flags.detach || self.detach,
            log_format: pick(flags.log_format, self.log_format),
            status_path: pick(flags.status_path, self.status_path),
            ping_path: pick(flags.ping_path, self.ping_path),
            access_log: pick(flags.access_log, self.access_log),
            config: flags.config,
        }
    }
}

impl Config {
    /// `idle_timeout` as a duration; 0 (no limit) as a century.
    pub fn idle_timeout(&self) -> std::time::Duration {
        const NEVER: u64 = 100 * 365 * 24 * 3600;
        std::time::Duration::from_secs(match self.idle_timeout {
            0 => NEVER,
            secs => secs.min(NEVER),
        })
    }

    /// Loads `--config` if given, applies the flags, validates.
    pub fn load(flags: Settings) -> Result<Config, ConfigError> {
        let file = flags.config.clone();
        Self::resolve(flags.with_config_file()?, file)
    }

    /// Every setting with its effective value (defaults filled in), as
    /// `fcgi-spawn config --print` shows it.
    pub fn effective_settings(&self) -> Settings {
        Settings {
            listen: self.listen.clone(),
            socket_mode: Some(format!("{:04o}", self.socket.mode)),
            socket_owner: self.socket.owner.clone(),
            socket_group: self.socket.group.clone(),
            listen_backlog: Some(self.socket.backlog),
            workers: Some(self.workers),
            pool: Some(if self.dynamic.is_some() {
                PoolMode::Dynamic
            } else {
                PoolMode::Static
            }),
            max_workers: self.dynamic.map(|d| d.max_workers),
            start_workers: self.dynamic.map(|d| d.start_workers),
            min_spare: self.dynamic.map(|d| d.min_spare),
            max_spare: self.dynamic.map(|d| d.max_spare),
            root: self.roots.clone(),
            deny: self.deny.iter().map(|p| p.as_str().to_string()).collect(),
            ext: Some(self.extensions.join(",")),
            ignore_exec_bit: self.ignore_exec_bit,
            preload: self.preload.clone(),
            preload_script: self.preload_scripts.clone(),
            worker_init: self.worker_init.clone(),
            stats: self.stats,
            stats_policy: self.stats_policy.clone(),
            precompile: self.precompile.clone(),
            precompile_strict: self.precompile_strict,
            precompile_warm: self
                .precompile_warm
                .iter()
                .map(|(pattern, query)| match query.as_str() {
                    "" => pattern.as_str().to_string(),
                    q => format!("{}={q}", pattern.as_str()),
                })
                .collect(),
            isolation: Some(self.isolation),
            isolation_for: self
                .isolation_for
                .iter()
                .map(|(pattern, mode)| format!("{}={}", pattern.as_str(), mode.as_str()))
                .collect(),
            pass_env: self.pass_env.clone(),
            env: self.env.iter().map(|(n, v)| format!("{n}={v}")).collect(),
            max_requests: Some(self.max_requests),
            max_rss: Some(ByteSize(self.max_rss)),
            max_unshared: Some(ByteSize(self.max_unshared)),
            max_body: Some(self.max_body),
            body_spill: Some(self.body_spill),
            heap_trim: Some(self.heap_trim),
            request_timeout: Some(self.request_timeout),
            slowlog_timeout: Some(self.slowlog_timeout),
            idle_timeout: Some(self.idle_timeout),
            user: self.user.clone(),
            group: self.group.clone(),
            grace_time: Some(self.grace_time),
            drain_timeout: Some(self.drain_timeout),
            stderr_to_client: self.stderr_to_client,
            pid_file: self.pid_file.clone(),
            log: self.log.clone(),
            detach: self.detach,
            log_format: Some(self.log_format),
            status_path: self.status_path.clone(),
            ping_path: self.ping_path.clone(),
            access_log: self.access_log.clone(),
            config: None,
        }
    }

    pub fn resolve(s: Settings, file: Option<PathBuf>) -> Result<Config, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            key,
            message,
            file: file.clone(),
        };
        let mode = match &s.socket_mode {
            None => 0o660,
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    invalid(
                        "socket_mode",
                        format!("{m:?} is not an octal mode like 0660"),
                    )
                })?,
        };
        if s.detach && s.log.is_none() {
            return Err(invalid(
                "detach",
                "needs log (--log FILE): a detached daemon has no terminal to log to".into(),
            ));
        }
        let workers = s.workers.unwrap_or(4);
        if workers > 4096 {
            return Err(invalid("workers", format!("{workers} is more than 4096")));
        }
        let dynamic = resolve_pool(&s, workers).map_err(|(key, m)| invalid(key, m))?;
        let isolation = s.isolation.unwrap_or(Isolation::Perlrun);
        let mut isolation_for = Vec::new();
        for rule in &s.isolation_for {
            let (pattern, mode) = rule
                .rsplit_once('=')
                .ok_or_else(|| invalid("isolation_for", format!("{rule:?} is not GLOB=MODE")))?;
            let pattern = glob::Pattern::new(pattern)
                .map_err(|e| invalid("isolation_for", format!("{pattern:?}: {e}")))?;
            let mode = Isolation::from_str(mode, true).map_err(|_| {
                invalid(
                    "isolation_for",
                    format!("{mode:?} is not perlrun, registry or fork"),
                )
            })?;
            isolation_for.push((pattern, mode));
        }
        let pass_env = if s.pass_env.iter().any(|n| n == "*") {
            std::env::vars_os()
                .filter_map(|(name, _)| name.into_string().ok())
                .collect()
        } else if s.pass_env.is_empty() {
            DEFAULT_PASS_ENV.iter().map(|n| n.to_string()).collect()
        } else {
            s.pass_env.clone()
        };
        let mut env = Vec::new();
        for pair in &s.env {
            match pair.split_once('=') {
                Some((name, value)) if !name.is_empty() => {
                    env.push((name.to_string(), value.to_string()))
                }
                _ => return Err(invalid("env", format!("{pair:?} is not NAME=VALUE"))),
            }
        }
        let mut roots = Vec::new();
        for r in &s.root {
            let resolved = std::fs::canonicalize(r)
                .map_err(|e| invalid("root", format!("{}: {e}", r.display())))?;
            if !resolved.is_dir() {
                return Err(invalid(
                    "root",
                    format!("{} is not a directory", r.display()),
                ));
            }
            roots.push(resolved);
        }
        let extensions: Vec<String> = s
            .ext
            .as_deref()
            .unwrap_or(".pl,.cgi")
            .split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        for e in &extensions {
            if e.trim_start_matches('.').contains(['/', '.']) {
                return Err(invalid("ext", format!("{e:?} is not a file extension")));
            }
        }
        for m in &s.preload {
            if m.is_empty()
                || !m
                    .split("::")
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
            {
                return Err(invalid(
                    "preload",
                    format!("{m:?} is not a Perl module name"),
                ));
            }
        }
        for g in &s.precompile {
            glob::Pattern::new(g).map_err(|e| invalid("precompile", format!("{g:?}: {e}")))?;
        }
        let deny = s
            .deny
            .iter()
            .map(|g| glob::Pattern::new(g).map_err(|e| invalid("deny", format!("{g:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let stats_policy = if s.stats_policy.is_empty() {
            vec!["mtime".to_string()]
        } else {
            s.stats_policy.clone()
        };
        for field in &stats_policy {
            if !STAT_FIELDS.contains(&field.as_str()) && field != "all" {
                return Err(invalid(
                    "stats_policy",
                    format!(
                        "{field:?} is not a stat field ({} or all)",
                        STAT_FIELDS.join(" ")
                    ),
                ));
            }
        }
        check_system(&s).map_err(|(key, message)| invalid(key, message))?;
        for (key, path) in [("status_path", &s.status_path), ("ping_path", &s.ping_path)] {
            if let Some(p) = path.as_deref().filter(|p| !p.starts_with('/')) {
                return Err(invalid(
                    key,
                    format!("{p:?} is not a URL path (it starts with '/', like /fcgi-status)"),
                ));
            }
        }
        let mut precompile_warm = Vec::new();
        for rule in &s.precompile_warm {
            let (pattern, query) = rule.split_once('=').unwrap_or((rule, ""));
            let pattern = glob::Pattern::new(pattern)
                .map_err(|e| invalid("precompile_warm", format!("{pattern:?}: {e}")))?;
            precompile_warm.push((pattern, query.to_string()));
        }
        Ok(Config {
            listen: s.listen,
            socket: SocketOptions {
                mode,
                owner: s.socket_owner,
                group: s.socket_group,
                backlog: s.listen_backlog.unwrap_or(1024),
            },
            workers: dynamic.map_or(workers, |d| d.max_workers),
            dynamic,
            roots,
            deny,
            extensions,
            ignore_exec_bit: s.ignore_exec_bit,
            preload: s.preload,
            preload_scripts: s.preload_script,
            worker_init: s.worker_init,
            stats: s.stats,
            stats_policy,
            precompile: s.precompile,
            precompile_strict: s.precompile_strict,
            precompile_warm,
            isolation,
            isolation_for,
            pass_env,
            env,
            max_requests: s.max_requests.unwrap_or(0),
            max_rss: s.max_rss.map_or(0, |b| b.0),
            max_unshared: s.max_unshared.map_or(0, |b| b.0),
            max_body: s.max_body.unwrap_or(100 << 20),
            body_spill: s.body_spill.unwrap_or(64 << 10),
            heap_trim: s.heap_trim.unwrap_or(1 << 20),
            grace_time: s.grace_time.unwrap_or(30),
            drain_timeout: s.drain_timeout.or(s.grace_time).unwrap_or(30),
            request_timeout: s.request_timeout.unwrap_or(0),
            slowlog_timeout: s.slowlog_timeout.unwrap_or(0),
            idle_timeout: s.idle_timeout.unwrap_or(30),
            user: s.user,
            group: s.group,
            stderr_to_client: s.stderr_to_client,
            pid_file: s.pid_file,
            log: s.log,
            detach: s.detach,
            log_format: s.log_format.unwrap_or(LogFormat::Timestamped),
            status_path: s.status_path,
            ping_path: s.ping_path,
            access_log: s.access_log,
        })
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

/// What `run` would stumble on in the system before serving, checked
/// without binding anything: users and groups that do not exist, a
/// directory that is not there for the socket, the pid file or the log, a
/// preload script that cannot be read. Returns the key and the message.
fn check_system(s: &Settings) -> Result<(), (&'static str, String)> {
    use nix::unistd::{Group, User};
    if let Some(name) = &s.user {
        if !matches!(User::from_name(name), Ok(Some(_))) {
            return Err(("user", format!("{name}: no such user")));
        }
    }
    if let Some(name) = &s.group {
        if s.user.is_none() {
            return Err(("group", "needs user (--user)".into()));
        }
        if !matches!(Group::from_name(name), Ok(Some(_))) {
            return Err(("group", format!("{name}: no such group")));
        }
    }
    if let Some(name) = &s.socket_owner {
        crate::listen::lookup_user(name).map_err(|e| ("socket_owner", e.to_string()))?;
    }
    if let Some(name) = &s.socket_group {
        crate::listen::lookup_group(name).map_err(|e| ("socket_group", e.to_string()))?;
    }
    let dirs = [
        (
            "listen",
            s.listen
                .as_deref()
                .filter(|l| l.contains('/'))
                .map(Path::new),
        ),
        ("pid_file", s.pid_file.as_deref()),
        ("log", s.log.as_deref()),
    ];
    for (key, path) in dirs {
        let Some(dir) = path.and_then(Path::parent) else {
            continue;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if !dir.is_dir() {
            return Err((
                key,
                format!(
                    "{}: directory {} does not exist",
                    path.unwrap_or(dir).display(),
                    dir.display()
                ),
            ));
        }
    }
    for script in &s.preload_script {
        std::fs::File::open(script)
            .map_err(|e| ("preload_script", format!("{}: {e}", script.display())))?;
    }
    for script in &s.worker_init {
        std::fs::File::open(script)
            .map_err(|e| ("worker_init", format!("{}: {e}", script.display())))?;
    }
    Ok(())
}

/// `pool = "dynamic"`'s settings with their defaults, checked; None for a
/// static pool. An error names the key.
fn resolve_pool(s: &Settings, workers: usize) -> Result<Option<Dynamic>, (&'static str, String)> {
    if s.pool != Some(PoolMode::Dynamic) {
        let dynamic_only = [
            ("max_workers", s.max_workers),
            ("start_workers", s.start_workers),
            ("min_spare", s.min_spare),
            ("max_spare", s.max_spare),
        ];
        if let Some((key, _)) = dynamic_only.iter().find(|(_, v)| v.is_some()) {
            return Err((key, "only applies with pool = \"dynamic\"".into()));
        }
        return Ok(None);
    }
    let max_workers = s.max_workers.unwrap_or((workers * 4).clamp(1, 64));
    if max_workers == 0 || max_workers > SLOTS {
        return Err((
            "max_workers",
            format!("{max_workers} is not between 1 and {SLOTS}"),
        ));
    }
    let min_spare = s.min_spare.unwrap_or(1);
    let max_spare = s
        .max_spare
        .unwrap_or(min_spare.max(workers).min(max_workers));
    if min_spare > max_spare {
        return Err((
            "min_spare",
            format!("{min_spare} is more than max_spare ({max_spare})"),
        ));
    }
    if max_spare > max_workers {
        return Err((
            "max_spare",
            format!("{max_spare} is more than max_workers ({max_workers})"),
        ));
    }
    // php-fpm's range for pm.start_servers.
    let start_workers = s
        .start_workers
        .unwrap_or(min_spare + (max_spare - min_spare) / 2)
        .max(1);
    if start_workers < min_spare || start_workers > max_spare {
        return Err((
            "start_workers",
            format!("{start_workers} is not between min_spare ({min_spare}) and max_spare ({max_spare})"),
        ));
    }
    Ok(Some(Dynamic {
        start_workers,
        min_spare,
        max_spare,
        max_workers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `settings` are refused, and the error starts with `key`.
    fn assert_refused(settings: Settings, key: &str) {
        let err = Config::resolve(settings, None).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{key}:")), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Settings::from_toml("workers = 2\nmax_request = 5\n").unwrap_err();
        assert!(err.contains("max_request"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn every_unknown_key_at_once_with_a_guess_and_no_rust_types() {
        let err = Settings::from_toml("wokers = 4\nroot = \"/srv\"\nmax-requests = 5\nzzz = 1\n")
            .unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines[0], "line 1: unknown key `wokers`; did you mean `workers`?",
            "{err}"
        );
        assert_eq!(
            lines[1], "line 3: unknown key `max-requests`; did you mean `max_requests`?",
            "{err}"
        );
        assert_eq!(lines[2], "line 4: unknown key `zzz`", "{err}");
        assert!(
            !err.contains("expected one of"),
            "the key list only on request: {err}"
        );
        let err = Settings::from_toml("root = \"/srv\"\nworkers = \"x\"\n").unwrap_err();
        assert_eq!(
            err, "line 2: workers: invalid type: string \"x\", expected a whole number (0 or more)",
            "{err}"
        );
    }

    #[test]
    fn toml_errors_keep_their_lines_and_one_root_is_a_list() {
        let err = Settings::from_toml("workers = 2\nworkers = [\n").unwrap_err();
        assert!(err.contains('\n') && err.contains('^'), "{err}");
        let one = Settings::from_toml("root = \"/srv/www\"\npreload = \"CGI\"\n").unwrap();
        assert_eq!(one.root, vec![PathBuf::from("/srv/www")]);
        assert_eq!(one.preload, vec!["CGI".to_string()]);
        let many = Settings::from_toml("root = [\"/a\", \"/b\"]\n").unwrap();
        assert_eq!(many.root.len(), 2);
    }

    #[test]
    fn what_run_would_stumble_on_is_refused() {
        let cases = [
            ("user", "user = \"no-such-user-xyz\"\n"),
            ("group", "group = \"root\"\n"),
            ("listen", "listen = \"/no/such/dir/s.sock\"\n"),
            ("pid_file", "pid_file = \"/no/such/dir/p.pid\"\n"),
            ("preload_script", "preload_script = \"/no/such/file.pl\"\n"),
            ("socket_group", "socket_group = \"no-such-group-xyz\"\n"),
            ("detach", "detach = true\n"),
        ];
        for (key, toml) in cases {
            let e = Config::resolve(Settings::from_toml(toml).unwrap(), None)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("{key}:")), "{toml}: {e}");
        }
        let e = Config::resolve(
            Settings::from_toml("stats_policy = \"shape\"\n").unwrap(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("stats_policy:") && e.contains("mtime"), "{e}");
        let c = Config::resolve(Settings::from_toml("stats = true\n").unwrap(), None).unwrap();
        assert_eq!(
            c.stats_policy,
            vec!["mtime".to_string()],
            "the default policy"
        );
        let ok = Settings::from_toml("listen = \"/tmp/s.sock\"\nuser = \"root\"\n").unwrap();
        assert!(Config::resolve(ok, None).is_ok());
        let detached = Settings::from_toml("detach = true\nlog = \"/tmp/x.log\"\n").unwrap();
        assert!(Config::resolve(detached, None).unwrap().detach);
    }

    #[test]
    fn flags_override_file_and_defaults_fill_in() {
        let file =
            Settings::from_toml("workers = 2\nmax_requests = 10\npreload = [\"CGI\"]\n").unwrap();
        let flags = Settings {
            workers: Some(3),
            ..Default::default()
        };
        let c = Config::resolve(file.overridden_by(flags), None).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.max_requests, 10);
        assert_eq!(c.preload, vec!["CGI".to_string()]);
        assert_eq!(c.socket.mode, 0o660);
        assert_eq!(c.extensions, vec![".pl".to_string(), ".cgi".to_string()]);
        assert_eq!(c.idle_timeout(), std::time::Duration::from_secs(30));
        let never = Settings::from_toml("idle_timeout = 0\n").unwrap();
        let c = Config::resolve(never, None).unwrap();
        assert!(c.idle_timeout() > std::time::Duration::from_secs(86400 * 365));
    }

    #[test]
    fn status_and_ping_paths_are_url_paths() {
        let s =
            Settings::from_toml("status_path = \"/fcgi-status\"\nping_path = \"/ping\"\n").unwrap();
        let c = Config::resolve(s, None).unwrap();
        assert_eq!(c.status_path.as_deref(), Some("/fcgi-status"));
        assert_eq!(c.ping_path.as_deref(), Some("/ping"));
        let bad = Settings::from_toml("ping_path = \"ping\"\n").unwrap();
        let e = Config::resolve(bad, None).unwrap_err().to_string();
        assert!(
            e.starts_with("ping_path: \"ping\" is not a URL path"),
            "{e}"
        );
    }

    #[test]
    fn isolation_rules_first_match_wins() {
        // /srv/app/a.pl matches both rules: the first one's mode applies.
        let s = Settings {
            isolation_for: vec!["/srv/app/*.pl=fork".into(), "/srv/**=registry".into()],
            ..Default::default()
        };
        let c = Config::resolve(s, None).unwrap();
        let mode = |p: &str| Isolation::for_script(c.isolation, &c.isolation_for, Path::new(p));
        assert_eq!(mode("/srv/app/a.pl"), Isolation::Fork);
        assert_eq!(mode("/srv/app/deeper/a.pl"), Isolation::Registry);
        assert_eq!(mode("/srv/x.pl"), Isolation::Registry);
        assert_eq!(mode("/elsewhere/x.pl"), Isolation::Perlrun);
        let reversed = Settings {
            isolation_for: vec!["/srv/**=registry".into(), "/srv/app/*.pl=fork".into()],
            ..Default::default()
        };
        let c = Config::resolve(reversed, None).unwrap();
        assert_eq!(
            Isolation::for_script(c.isolation, &c.isolation_for, Path::new("/srv/app/a.pl")),
            Isolation::Registry
        );
        let bad = Settings {
            isolation_for: vec!["/srv/*.pl".into()],
            ..Default::default()
        };
        assert!(Config::resolve(bad, None)
            .unwrap_err()
            .to_string()
            .starts_with("isolation_for:"));
    }

    #[test]
    fn precompile_warm_rules_split_glob_and_query() {
        let file = Settings::from_toml(
            "precompile_warm = [\"/srv/a.pl=config=x&y=1\", \"/srv/b/*.pl\"]\nheap_trim = 0\n",
        )
        .unwrap();
        let c = Config::resolve(file, None).unwrap();
        let rules: Vec<(&str, &str)> = c
            .precompile_warm
            .iter()
            .map(|(p, q)| (p.as_str(), q.as_str()))
            .collect();
        assert_eq!(
            rules,
            vec![("/srv/a.pl", "config=x&y=1"), ("/srv/b/*.pl", "")]
        );
        assert_eq!(c.heap_trim, 0);
        let shown = c.effective_settings().precompile_warm;
        assert_eq!(shown, vec!["/srv/a.pl=config=x&y=1", "/srv/b/*.pl"]);
        assert_eq!(
            Config::resolve(Settings::default(), None)
                .unwrap()
                .heap_trim,
            1 << 20
        );
        let bad_glob = Settings::from_toml("precompile_warm = [\"/srv/[a.pl=x=1\"]\n").unwrap();
        assert_refused(bad_glob, "precompile_warm");
    }

    #[test]
    fn precompile_globs_are_checked_and_listed() {
        let file =
            Settings::from_toml("precompile = [\"/srv/www/**/*.cgi\"]\nprecompile_strict = true\n")
                .unwrap();
        let c = Config::resolve(file.clone(), None).unwrap();
        assert_eq!(c.precompile, vec!["/srv/www/**/*.cgi".to_string()]);
        assert!(c.precompile_strict);
        let flags = Settings {
            precompile: vec!["/a/*.pl".into(), "/b/*.pl".into()],
            ..Default::default()
        };
        let c = Config::resolve(file.overridden_by(flags), None).unwrap();
        assert_eq!(c.precompile.len(), 2, "flags replace the file's list");
        let bad = Settings {
            precompile: vec!["/srv/[a.pl".into()],
            ..Default::default()
        };
        assert!(Config::resolve(bad, None)
            .unwrap_err()
            .to_string()
            .starts_with("precompile:"));
    }

    #[test]
    fn dynamic_pool_defaults_and_checks_name_the_key() {
        let c =
            Config::resolve(Settings::from_toml("pool = \"dynamic\"\n").unwrap(), None).unwrap();
        let d = c.dynamic.unwrap();
        assert_eq!((d.min_spare, d.max_spare, d.max_workers), (1, 4, 16));
        assert_eq!(d.start_workers, 2, "php-fpm: min + (max - min) / 2");
        assert_eq!(c.workers, 16, "connections are sized for max_workers");
        let file = "pool = \"dynamic\"\nmax_workers = 5\nmin_spare = 1\nmax_spare = 2\n\
                    start_workers = 2\nlisten_backlog = 7\nmax_rss = \"80M\"\n";
        let c = Config::resolve(Settings::from_toml(file).unwrap(), None).unwrap();
        assert_eq!(
            c.dynamic.map(|d| (d.start_workers, d.max_workers)),
            Some((2, 5))
        );
        assert_eq!((c.socket.backlog, c.max_rss), (7, 80 << 20));
        let alias = Settings::from_toml("backlog = 9\n").unwrap();
        assert_eq!(Config::resolve(alias, None).unwrap().socket.backlog, 9);
        let err = |toml: &str| {
            Config::resolve(Settings::from_toml(toml).unwrap(), None)
                .unwrap_err()
                .to_string()
        };
        let dynamic = "pool = \"dynamic\"\n";
        assert!(err(&format!("{dynamic}min_spare = 3\nmax_spare = 2\n")).starts_with("min_spare:"));
        assert!(
            err(&format!("{dynamic}max_spare = 6\nmax_workers = 5\n")).starts_with("max_spare:")
        );
        assert!(err(&format!("{dynamic}max_workers = 99999\n")).starts_with("max_workers:"));
        assert!(err(&format!(
            "{dynamic}min_spare = 2\nmax_spare = 3\nstart_workers = 5\n"
        ))
        .starts_with("start_workers:"));
        assert!(err("max_spare = 3\n").starts_with("max_spare: only applies"));
        assert!(Settings::from_toml("max_rss = \"lots\"\n").is_err());
    }

    #[test]
    fn bad_values_name_the_key() {
        let bad_mode = Settings {
            socket_mode: Some("rw-rw".into()),
            ..Default::default()
        };
        let e = Config::resolve(bad_mode, Some("/etc/x.toml".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("socket_mode:") && e.contains("/etc/x.toml"),
            "{e}"
        );
        let bad_module = Settings {
            preload: vec!["CGI; system('x')".into()],
            ..Default::default()
        };
        assert!(Config::resolve(bad_module, None)
            .unwrap_err()
            .to_string()
            .starts_with("preload:"));
        let bad_root = Settings {
            root: vec!["/nonexistent/dir".into()],
            ..Default::default()
        };
        assert!(Config::resolve(bad_root, None)
            .unwrap_err()
            .to_string()
            .starts_with("root:"));
    }
}
