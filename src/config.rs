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

use crate::listen::SocketOptions;
use crate::log::LogFormat;

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
    /// listen(2) backlog [default: 1024].
    #[arg(long, value_name = "N")]
    pub backlog: Option<i32>,
    /// Number of worker processes [default: 4].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Directory scripts may run from (repeatable). None: any directory.
    #[arg(long = "root", value_name = "DIR")]
    #[serde(default)]
    pub root: Vec<PathBuf>,
    /// Comma-separated extensions scripts may have [default: .pl,.cgi].
    #[arg(long, value_name = "LIST")]
    pub ext: Option<String>,
    /// Module to load in the master before forking (repeatable).
    #[arg(long, value_name = "MODULE")]
    #[serde(default)]
    pub preload: Vec<String>,
    /// Perl file to run in the master before forking (repeatable).
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub preload_script: Vec<PathBuf>,
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
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// Largest request body accepted, bytes; 413 past it [default: 104857600].
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Bodies larger than this go to a temp file, bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
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
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<u64>,
    /// Seconds a connection may stay idle between requests, or take for a
    /// request's header and params (and a body up to 64 KiB) to arrive,
    /// before it is closed; also the longest wait for the rest of a larger
    /// body (0 = no limit) [default: 30].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Run the workers as this user (the master binds the socket first).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run the workers with this group [default: the user's group].
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Seconds a graceful stop waits for requests in flight [default: 30].
    #[arg(long, value_name = "SECS")]
    pub grace_time: Option<u64>,
    /// Also send script STDERR to the web server as FCGI_STDERR.
    #[arg(long)]
    #[serde(default)]
    pub stderr_to_client: bool,
    /// Write the master's pid here.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Log file (appended; reopened on USR1) [default: stderr].
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log lines with a timestamp, or plain for a collector that adds its
    /// own (multilog, svlogd, journald) [default: timestamped].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
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

/// The validated, complete configuration of a daemon.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Option<String>,
    pub socket: SocketOptions,
    pub workers: usize,
    pub roots: Vec<PathBuf>,
    pub extensions: Vec<String>,
    pub preload: Vec<String>,
    pub preload_scripts: Vec<PathBuf>,
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
    pub max_body: u64,
    pub body_spill: usize,
    /// `heap_trim` in bytes (0: off).
    pub heap_trim: usize,
    pub grace_time: u64,
    pub request_timeout: u64,
    pub idle_timeout: u64,
    pub user: Option<String>,
    pub group: Option<String>,
    pub stderr_to_client: bool,
    pub pid_file: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
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

    pub fn from_toml(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
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
            backlog: pick(flags.backlog, self.backlog),
            workers: pick(flags.workers, self.workers),
            root: list(flags.root, self.root),
            ext: pick(flags.ext, self.ext),
            preload: list(flags.preload, self.preload),
            preload_script: list(flags.preload_script, self.preload_script),
            precompile: list(flags.precompile, self.precompile),
            precompile_strict: flags.precompile_strict || self.precompile_strict,
            precompile_warm: list(flags.precompile_warm, self.precompile_warm),
            isolation: pick(flags.isolation, self.isolation),
            isolation_for: list(flags.isolation_for, self.isolation_for),
            pass_env: list(flags.pass_env, self.pass_env),
            env: list(flags.env, self.env),
            max_requests: pick(flags.max_requests, self.max_requests),
            max_body: pick(flags.max_body, self.max_body),
            body_spill: pick(flags.body_spill, self.body_spill),
            heap_trim: pick(flags.heap_trim, self.heap_trim),
            grace_time: pick(flags.grace_time, self.grace_time),
            request_timeout: pick(flags.request_timeout, self.request_timeout),
            idle_timeout: pick(flags.idle_timeout, self.idle_timeout),
            user: pick(flags.user, self.user),
            group: pick(flags.group, self.group),
            stderr_to_client: flags.stderr_to_client || self.stderr_to_client,
            pid_file: pick(flags.pid_file, self.pid_file),
            log: pick(flags.log, self.log),
            log_format: pick(flags.log_format, self.log_format),
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
            backlog: Some(self.socket.backlog),
            workers: Some(self.workers),
            root: self.roots.clone(),
            ext: Some(self.extensions.join(",")),
            preload: self.preload.clone(),
            preload_script: self.preload_scripts.clone(),
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
            max_body: Some(self.max_body),
            body_spill: Some(self.body_spill),
            heap_trim: Some(self.heap_trim),
            request_timeout: Some(self.request_timeout),
            idle_timeout: Some(self.idle_timeout),
            user: self.user.clone(),
            group: self.group.clone(),
            grace_time: Some(self.grace_time),
            stderr_to_client: self.stderr_to_client,
            pid_file: self.pid_file.clone(),
            log: self.log.clone(),
            log_format: Some(self.log_format),
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
        let workers = s.workers.unwrap_or(4);
        if workers > 4096 {
            return Err(invalid("workers", format!("{workers} is more than 4096")));
        }
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
                backlog: s.backlog.unwrap_or(1024),
            },
            workers,
            roots,
            extensions,
            preload: s.preload,
            preload_scripts: s.preload_script,
            precompile: s.precompile,
            precompile_strict: s.precompile_strict,
            precompile_warm,
            isolation,
            isolation_for,
            pass_env,
            env,
            max_requests: s.max_requests.unwrap_or(0),
            max_body: s.max_body.unwrap_or(100 << 20),
            body_spill: s.body_spill.unwrap_or(64 << 10),
            heap_trim: s.heap_trim.unwrap_or(1 << 20),
            grace_time: s.grace_time.unwrap_or(30),
            request_timeout: s.request_timeout.unwrap_or(0),
            idle_timeout: s.idle_timeout.unwrap_or(30),
            user: s.user,
            group: s.group,
            stderr_to_client: s.stderr_to_client,
            pid_file: s.pid_file,
            log: s.log,
            log_format: s.log_format.unwrap_or(LogFormat::Timestamped),
        })
    }
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
