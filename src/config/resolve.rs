//! Resolution: the keys whose `Config` value is more than a default —
//! parsed (`GLOB=MODE` rules, `NAME=VALUE` pairs), checked against the
//! system (users, directories, files), or made of several keys (the socket,
//! the dynamic pool) — and the checks of keys taken as given. Pure but for
//! the look-ups in `check_system`; every error is the key and a message,
//! which `Config::resolve` turns into a `ConfigError` naming the file too.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::schema::{Config, Derived, Isolation, PoolMode, Settings, STAT_FIELDS};
use super::ConfigError;
use crate::listen::SocketOptions;
use crate::scoreboard::SLOTS;
use crate::sizing::Dynamic;

/// A key and what is wrong with its value.
type Invalid = (&'static str, String);

/// The daemon's environment variables scripts see unless `pass_env` says
/// otherwise; the rest (credentials of the service manager, a sysadmin's
/// shell) stays out of %ENV, as php-fpm's `clear_env`.
const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PERL5LIB",
];

impl Config {
    /// Fills in the defaults and validates; an error names the key (and
    /// `file`, where the settings came from one).
    pub fn resolve(s: Settings, file: Option<PathBuf>) -> Result<Config, ConfigError> {
        let derived =
            derive(&s).map_err(|(key, message)| ConfigError::Invalid { key, message, file })?;
        Ok(Config::assemble(s, derived))
    }

    /// Every setting with its effective value (defaults filled in), as
    /// `fcgi-spawn config --print` shows it.
    pub fn effective_settings(&self) -> Settings {
        let mut s = self.plain_settings();
        show_derived(self, &mut s);
        s
    }
}

/// The `Config` values of the keys declared `=> derived`, and the checks
/// of the others, in the order a user meets them: the first error wins.
fn derive(s: &Settings) -> Result<Derived, Invalid> {
    let mode = match &s.socket_mode {
        None => 0o660,
        Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                (
                    "socket_mode",
                    format!("{m:?} is not an octal mode like 0660"),
                )
            })?,
    };
    if s.detach && s.log.is_none() {
        return Err((
            "detach",
            "needs log (--log FILE): a detached daemon has no terminal to log to".into(),
        ));
    }
    let workers = s.workers.unwrap_or(4);
    if workers > 4096 {
        return Err(("workers", format!("{workers} is more than 4096")));
    }
    let dynamic = resolve_pool(s, workers)?;
    let mut isolation_for = Vec::new();
    for rule in &s.isolation_for {
        let (pattern, mode) = rule
            .rsplit_once('=')
            .ok_or_else(|| ("isolation_for", format!("{rule:?} is not GLOB=MODE")))?;
        let pattern = glob::Pattern::new(pattern)
            .map_err(|e| ("isolation_for", format!("{pattern:?}: {e}")))?;
        let mode = Isolation::from_str(mode, true).map_err(|_| {
            (
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
            _ => return Err(("env", format!("{pair:?} is not NAME=VALUE"))),
        }
    }
    let mut roots = Vec::new();
    for r in &s.root {
        let resolved =
            std::fs::canonicalize(r).map_err(|e| ("root", format!("{}: {e}", r.display())))?;
        if !resolved.is_dir() {
            return Err(("root", format!("{} is not a directory", r.display())));
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
            return Err(("ext", format!("{e:?} is not a file extension")));
        }
    }
    for m in &s.preload {
        if m.is_empty()
            || !m
                .split("::")
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            return Err(("preload", format!("{m:?} is not a Perl module name")));
        }
    }
    for g in &s.precompile {
        glob::Pattern::new(g).map_err(|e| ("precompile", format!("{g:?}: {e}")))?;
    }
    let deny = s
        .deny
        .iter()
        .map(|g| glob::Pattern::new(g).map_err(|e| ("deny", format!("{g:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let stats_policy = if s.stats_policy.is_empty() {
        vec!["mtime".to_string()]
    } else {
        s.stats_policy.clone()
    };
    for field in &stats_policy {
        if !STAT_FIELDS.contains(&field.as_str()) && field != "all" {
            return Err((
                "stats_policy",
                format!(
                    "{field:?} is not a stat field ({} or all)",
                    STAT_FIELDS.join(" ")
                ),
            ));
        }
    }
    check_system(s)?;
    for (key, path) in [("status_path", &s.status_path), ("ping_path", &s.ping_path)] {
        if let Some(p) = path.as_deref().filter(|p| !p.starts_with('/')) {
            return Err((
                key,
                format!("{p:?} is not a URL path (it starts with '/', like /fcgi-status)"),
            ));
        }
    }
    let mut precompile_warm = Vec::new();
    for rule in &s.precompile_warm {
        let (pattern, query) = rule.split_once('=').unwrap_or((rule, ""));
        let pattern = glob::Pattern::new(pattern)
            .map_err(|e| ("precompile_warm", format!("{pattern:?}: {e}")))?;
        precompile_warm.push((pattern, query.to_string()));
    }
    Ok(Derived {
        socket: SocketOptions {
            mode,
            owner: s.socket_owner.clone(),
            group: s.socket_group.clone(),
            backlog: s.listen_backlog.unwrap_or(1024),
        },
        workers: dynamic.map_or(workers, |d| d.max_workers),
        dynamic,
        roots,
        deny,
        extensions,
        stats_policy,
        precompile_warm,
        isolation_for,
        pass_env,
        env,
        drain_timeout: s.drain_timeout.or(s.grace_time).unwrap_or(30),
    })
}

/// The derived keys as `config --print` shows them: each value as a user
/// would write it to get the same `Config`.
fn show_derived(c: &Config, s: &mut Settings) {
    s.socket_mode = Some(format!("{:04o}", c.socket.mode));
    s.socket_owner = c.socket.owner.clone();
    s.socket_group = c.socket.group.clone();
    s.listen_backlog = Some(c.socket.backlog);
    s.workers = Some(c.workers);
    s.pool = Some(if c.dynamic.is_some() {
        PoolMode::Dynamic
    } else {
        PoolMode::Static
    });
    s.max_workers = c.dynamic.map(|d| d.max_workers);
    s.start_workers = c.dynamic.map(|d| d.start_workers);
    s.min_spare = c.dynamic.map(|d| d.min_spare);
    s.max_spare = c.dynamic.map(|d| d.max_spare);
    s.root = c.roots.clone();
    s.deny = c.deny.iter().map(|p| p.as_str().to_string()).collect();
    s.ext = Some(c.extensions.join(","));
    s.stats_policy = c.stats_policy.clone();
    s.precompile_warm = c
        .precompile_warm
        .iter()
        .map(|(pattern, query)| match query.as_str() {
            "" => pattern.as_str().to_string(),
            q => format!("{}={q}", pattern.as_str()),
        })
        .collect();
    s.isolation_for = c
        .isolation_for
        .iter()
        .map(|(pattern, mode)| format!("{}={}", pattern.as_str(), mode.as_str()))
        .collect();
    s.pass_env = c.pass_env.clone();
    s.env = c.env.iter().map(|(n, v)| format!("{n}={v}")).collect();
    s.drain_timeout = Some(c.drain_timeout);
}

/// What `run` would stumble on in the system before serving, checked
/// without binding anything: users and groups that do not exist, a
/// directory that is not there for the socket, the pid file or the log, a
/// preload script that cannot be read. Returns the key and the message.
fn check_system(s: &Settings) -> Result<(), Invalid> {
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
fn resolve_pool(s: &Settings, workers: usize) -> Result<Option<Dynamic>, Invalid> {
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
        assert_eq!((c.socket.backlog, c.max_rss.0), (7, 80 << 20));
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
