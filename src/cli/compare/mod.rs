//! `fcgi-spawn compare`: does a script give the same bytes on a warm
//! persistent worker as under plain CGI? The first thing a site owner runs
//! before switching, and it needs no running daemon.
//!
//! The request runs as plain CGI (`cgi`), then on a daemon of `compare`'s
//! own (`daemon`: this binary's `run` with the user's settings, one worker)
//! after the warm-up requests, several times in a row on that one worker,
//! so state a run leaves shows in the next: most scripts that break when
//! persistent work on a fresh worker and fail from the second request on,
//! which is why the verdict names the first run that differs and whether
//! its worker was fresh or warm. Then the request runs as plain CGI once
//! more. Each persistent run is compared with the first plain CGI run
//! (`diff`); the second plain CGI run tells volatile output (a time, a pid,
//! random data) from a real difference: whatever a persistent run shows
//! lies, in time, between the two plain CGI runs, so where those two agree
//! a difference is not the clock's; `report` writes the verdicts. Nothing
//! outlives the command (`cleanup`), also on Ctrl-C.

mod cgi;
mod cleanup;
mod daemon;
mod diff;
mod report;

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use self::cgi::{base_env, CgiRunner, RunAs, EMBEDDED_PERL};
use self::cleanup::TempDir;
use self::daemon::{settings_for_compare, TempDaemon};
use self::diff::{changed_lines, persistent_text, plain_cgi_text, unified, Masks};
use self::report::{note_reordered, report_mode, same_lines_in_another_order, show_lines};
use super::request::{CgiRequest, RequestFlags};
use crate::config::{Config, Isolation, Settings};
use crate::fastcgi::client::ClientError;
use crate::path_policy::{PathPolicy, ScriptCheck};

/// `fcgi-spawn compare --help`.
pub const ABOUT: &str = "\
Run a request as plain CGI and on a warm persistent worker, and show the \
difference or say \"identical\". No running daemon is needed.

The request (SCRIPT, QUERY, --param, --data) runs:
  1. as plain CGI: the script run by perl as a CGI process, in its
     directory, with the daemon's base environment (--pass-env, --env)
     plus the CGI params, and the body on stdin;
  2. on a daemon compare starts with your settings (--config and the run
     flags; its own temp socket, one worker, --user ignored): the --warm-up
     pages, then the request --repeat times (default 3) on that one worker:
     the first run warms it, the later ones show state a run leaves behind
     (a module setting a script switched, a loop that ran once);
  3. as plain CGI again, which tells volatile output (a time, a pid,
     random data) from a real difference.
Each persistent response (headers and body, as bytes) is compared with the
first plain CGI one; a unified diff shows each difference, and the verdict
names the first run that differs and whether its worker was fresh or warm
(\"different from plain CGI on a warm worker (run 2)\": the script breaks
only once a worker has served it). --mask REGEX hides volatile parts on
both sides. Nothing is left running.

Exit status: 0 identical; 1 different (also when two plain CGI runs
differ); 2 usage or start error (no such script, a script the settings
refuse, bad settings, the daemon did not start); 128+N when stopped by
signal N.

Examples:
  fcgi-spawn compare /srv/www/cgi-bin/news.pl 'id=3' --config /etc/fcgi-spawn.toml
  fcgi-spawn compare --mode all --mask 'process \\d+' examples/counter.pl
  fcgi-spawn compare --data form.txt --param HTTP_COOKIE=s=1 /srv/www/login.pl
  fcgi-spawn compare --warm-up /srv/www/login.pl?user=ann /srv/www/index.pl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Perlrun,
    Registry,
    Fork,
    /// perlrun, registry and fork, one daemon each.
    All,
}

#[derive(Args)]
pub struct CompareArgs {
    /// The script to check (a file path).
    script: PathBuf,
    /// Query string (without '?').
    query: Option<String>,
    /// Isolation mode to check the script in [default: the one the
    /// configuration gives it: --isolation, --isolation-for, the config file].
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<ModeArg>,
    #[command(flatten)]
    request: RequestFlags,
    /// Times the request runs on the one worker, one after another: the
    /// first run warms it (unless a warm-up page did), the later ones show
    /// what a run leaves behind; 1 checks a single run.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeat: usize,
    /// Page the worker serves before the runs, SCRIPT[?QUERY], a GET
    /// (repeatable, in order) [default: the script itself, GET without a
    /// query, unless that is the request].
    #[arg(long = "warm-up", value_name = "SCRIPT[?QUERY]")]
    warm_up: Vec<String>,
    /// Regular expression for volatile output (a date, a pid): its matches
    /// become <masked> on both sides (repeatable).
    #[arg(long = "mask", value_name = "REGEX")]
    masks: Vec<String>,
    /// Seconds each run may take, on each side.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// The perl that runs the plain CGI side [default: the perl fcgi-spawn
    /// embeds].
    #[arg(long, value_name = "PATH")]
    perl: Option<PathBuf>,
    /// Also show the daemon's log and plain CGI's stderr when identical.
    #[arg(long, short)]
    verbose: bool,
    /// The daemon's settings, as for `run`.
    #[command(
        flatten,
        next_help_heading = "Daemon settings, as for `run` (compare uses its own socket, \
            one worker and its own log; run as root, it runs scripts as --user, as `run` does)"
    )]
    settings: Settings,
}

pub fn main(args: CompareArgs) -> i32 {
    match compare(args) {
        Ok(Verdict::Identical) => 0,
        Ok(Verdict::Different) => 1,
        Err(e) => {
            eprintln!("fcgi-spawn compare: {e:#}");
            2
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Identical,
    Different,
}

/// One mode's persistent side: the runs' responses as compared (masked),
/// and what the daemon logged meanwhile.
struct ModeRuns {
    mode: Isolation,
    /// As many as asked for, unless one got no response in time.
    runs: Vec<Vec<u8>>,
    /// One per run asked for: whether it met a fresh worker (see
    /// `on_fresh_worker`).
    fresh: Vec<bool>,
    log: String,
}

fn compare(args: CompareArgs) -> anyhow::Result<Verdict> {
    let config_file = args.settings.config.clone();
    let settings = args.settings.clone().with_config_file()?;
    let config = Config::resolve(settings.clone(), config_file)?;
    let policy = PathPolicy::of(&config);
    let script = runnable_script(&args.script, &policy)?;
    let masks = Masks::new(&args.masks)?;
    if args.repeat == 0 {
        anyhow::bail!("--repeat must be at least 1");
    }
    let request = args
        .request
        .request(utf8_path(&script)?, args.query.clone().unwrap_or_default())?;
    request.params()?;
    let warm_ups = warm_up_requests(&args.warm_up, &request, &policy)?;
    let modes: Vec<(Isolation, bool)> = match args.mode {
        None => vec![(
            Isolation::for_script(config.isolation, &config.isolation_for, &script),
            false,
        )],
        Some(ModeArg::Perlrun) => vec![(Isolation::Perlrun, true)],
        Some(ModeArg::Registry) => vec![(Isolation::Registry, true)],
        Some(ModeArg::Fork) => vec![(Isolation::Fork, true)],
        Some(ModeArg::All) => [Isolation::Perlrun, Isolation::Registry, Isolation::Fork]
            .into_iter()
            .map(|m| (m, true))
            .collect(),
    };
    let timeout = Duration::from_secs(args.timeout.max(1));

    // As the daemon: scripts run as the configured user.
    let run_as = match &config.user {
        Some(user) if nix::unistd::geteuid().is_root() => {
            Some(RunAs::lookup(user, config.group.as_deref())?)
        }
        // Started as that user already: both sides run as it.
        Some(user) if is_current_user(user) => None,
        Some(user) => anyhow::bail!(
            "the configuration runs scripts as user {user:?}: start compare as root, so that \
             both plain CGI and the daemon run them as that user (as the daemon would), or \
             leave user out to compare as yourself"
        ),
        None => None,
    };

    cleanup::catch_signals()?;
    let dir = TempDir::new()?;
    if let Some(user) = &run_as {
        // The daemon, once that user, removes its socket there at the stop.
        nix::unistd::chown(
            dir.path(),
            Some(nix::unistd::Uid::from_raw(user.uid)),
            Some(nix::unistd::Gid::from_raw(user.gid)),
        )?;
    }
    let body_file = match &request.body {
        Some(body) => {
            let f = dir.path().join("body");
            std::fs::write(&f, body)?;
            Some(f)
        }
        None => None,
    };
    let cgi = CgiRunner {
        perl: args.perl.clone().unwrap_or_else(|| EMBEDDED_PERL.into()),
        base_env: base_env(&config.pass_env, &config.env),
        body_file,
        timeout,
        run_as: run_as.clone(),
    };

    let sequence = Sequence {
        warm_ups: &warm_ups,
        request: &request,
        repeat: args.repeat,
        max_requests: config.max_requests,
        timeout,
        masks: &masks,
    };
    let first = cgi.run(&script, &request)?;
    let mut persistent = Vec::new();
    for (mode, forced) in &modes {
        let socket = dir.path().join(format!("{}.sock", mode.as_str()));
        let mut daemon_settings = settings_for_compare(&settings, &socket, forced.then_some(*mode));
        if run_as.is_some() {
            daemon_settings.user = settings.user.clone();
            daemon_settings.group = settings.group.clone();
        }
        persistent.push(sequence.run(dir.path(), *mode, &daemon_settings)?);
    }
    let second = cgi.run(&script, &request)?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "compare: {} {}{}",
        request.method(),
        request.script_filename,
        if request.query.is_empty() {
            String::new()
        } else {
            format!("?{}", request.query)
        }
    );
    let _ = writeln!(
        out,
        "plain CGI: {} in {}{}, run before and after the persistent runs",
        cgi.perl.display(),
        script.parent().unwrap_or(Path::new("/")).display(),
        match &run_as {
            Some(user) => format!(", as user {} (the daemon's too)", user.name),
            None => String::new(),
        }
    );
    let warm_up_text = if warm_ups.is_empty() {
        "no warm-up request".to_string()
    } else {
        let pages: Vec<String> = warm_ups.iter().map(page).collect();
        format!("warm-up {}", pages.join(", "))
    };
    let _ = writeln!(
        out,
        "persistent: one worker, {warm_up_text}, then the request {} time{}",
        args.repeat,
        if args.repeat == 1 { "" } else { "s" }
    );
    if args.repeat == 1 && warm_ups.is_empty() {
        let _ = writeln!(
            out,
            "note: one run and no warm-up page: the request meets a fresh worker only, so \
             what a run leaves for the next cannot show (leave --repeat at 2 or more)"
        );
    }

    let cgi_text = plain_cgi_text(&first.stdout, &masks);
    let cgi_again = plain_cgi_text(&second.stdout, &masks);
    let reordered = cgi_text != cgi_again && same_lines_in_another_order(&cgi_text, &cgi_again);
    if reordered {
        note_reordered(&mut out, "plain CGI run 2");
    }
    let volatile =
        (cgi_text != cgi_again && !reordered).then(|| changed_lines(&cgi_text, &cgi_again));
    if volatile.is_some() {
        let _ = writeln!(
            out,
            "note: two plain CGI runs of the script differ from each other, so part of its \
             output is volatile (a time, a process id, random data, data the script \
             changes); mask it with --mask REGEX:"
        );
        out.push_str(&unified(
            &cgi_text,
            &cgi_again,
            "plain CGI, run 1",
            "plain CGI, run 2",
        ));
    }
    let mut verdict = Verdict::Identical;
    for runs in &persistent {
        let same = report_mode(&mut out, runs, &cgi_text, volatile.as_ref());
        if !same {
            verdict = Verdict::Different;
        }
        if !same || args.verbose {
            show_lines(
                &mut out,
                &format!("{} daemon's log", runs.mode.as_str()),
                &runs.log,
            );
        }
    }
    if verdict == Verdict::Different || args.verbose {
        show_lines(
            &mut out,
            "plain CGI stderr",
            &String::from_utf8_lossy(&first.stderr),
        );
    }
    if args.verbose {
        let _ = writeln!(out, "plain CGI exit status: {}", first.exit);
    }
    if volatile.is_some() {
        verdict = Verdict::Different;
    }
    out.push_str(match verdict {
        Verdict::Identical => "identical\n",
        Verdict::Different => "different\n",
    });
    print!("{out}");
    Ok(verdict)
}

fn is_current_user(name: &str) -> bool {
    crate::users::current_name() == name
}

/// The script as both sides run it: resolved (as the daemon resolves
/// SCRIPT_FILENAME), a file the daemon's roots and extensions allow.
fn runnable_script(path: &Path, policy: &PathPolicy) -> anyhow::Result<PathBuf> {
    let resolved =
        std::fs::canonicalize(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if !resolved.is_file() {
        anyhow::bail!("{}: not a file", path.display());
    }
    match policy.check(resolved.as_os_str().as_bytes()) {
        ScriptCheck::Run { .. } => Ok(resolved),
        ScriptCheck::NotFound => anyhow::bail!("{}: not found", resolved.display()),
        ScriptCheck::Forbidden(reason) => anyhow::bail!(
            "the daemon would refuse {} with 403: {reason} (see --root and --ext)",
            path.display()
        ),
    }
}

fn utf8_path(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{}: the path is not UTF-8", path.display()))
}

/// `--warm-up` pages as requests, or the default: the script as a GET
/// without a query, unless that is the request itself.
fn warm_up_requests(
    pages: &[String],
    request: &CgiRequest,
    policy: &PathPolicy,
) -> anyhow::Result<Vec<CgiRequest>> {
    if pages.is_empty() {
        let plain_get = CgiRequest {
            script_filename: request.script_filename.clone(),
            ..Default::default()
        };
        let is_plain_get = request.query.is_empty()
            && request.body.is_none()
            && request.method() == "GET"
            && request.extra_params.is_empty();
        return Ok(if is_plain_get {
            vec![]
        } else {
            vec![plain_get]
        });
    }
    pages
        .iter()
        .map(|p| {
            let (file, query) = p.split_once('?').unwrap_or((p, ""));
            let script = runnable_script(Path::new(file), policy)
                .map_err(|e| anyhow::anyhow!("--warm-up {p:?}: {e}"))?;
            Ok(CgiRequest {
                script_filename: utf8_path(&script)?,
                query: query.to_string(),
                ..Default::default()
            })
        })
        .collect()
}

fn page(r: &CgiRequest) -> String {
    if r.query.is_empty() {
        r.script_filename.clone()
    } else {
        format!("{}?{}", r.script_filename, r.query)
    }
}

/// What the persistent side sends, the same in every mode, and how its
/// answers are read.
struct Sequence<'a> {
    warm_ups: &'a [CgiRequest],
    request: &'a CgiRequest,
    repeat: usize,
    /// The user's setting, kept: it may hand a run a fresh worker.
    max_requests: u64,
    timeout: Duration,
    masks: &'a Masks,
}

impl Sequence<'_> {
    /// Starts a daemon for `mode`, sends the warm-up requests and then the
    /// request `repeat` times, and stops it.
    fn run(&self, dir: &Path, mode: Isolation, settings: &Settings) -> anyhow::Result<ModeRuns> {
        let Sequence {
            warm_ups,
            request,
            repeat,
            max_requests,
            timeout,
            masks,
        } = *self;
        let mut daemon = TempDaemon::start(dir, mode.as_str(), settings)?;
        for w in warm_ups {
            w.send(daemon.socket(), Some(timeout))
                .map_err(|e| anyhow::anyhow!("{mode:?} warm-up request {}: {e:#}", page(w)))?;
        }
        let mut runs = Vec::new();
        for _ in 0..repeat {
            match request.send(daemon.socket(), Some(timeout)) {
                Ok(r) if r.protocol_status != 0 => runs.push(
                    format!(
                        "[the daemon refused the request: protocol status {}]\n",
                        r.protocol_status
                    )
                    .into_bytes(),
                ),
                Ok(r) => runs.push(persistent_text(&r.stdout, masks)),
                Err(e) if timed_out(&e) => {
                    // The worker is still busy with it: no further run.
                    runs.push(
                        format!("[no response within {} s]\n", timeout.as_secs()).into_bytes(),
                    );
                    break;
                }
                Err(e) => runs.push(format!("[request failed: {e:#}]\n").into_bytes()),
            }
        }
        daemon.stop();
        let log = daemon.log();
        let fresh = (1..=repeat)
            .map(|run| on_fresh_worker(warm_ups.len(), run, max_requests))
            .collect();
        Ok(ModeRuns {
            mode,
            runs,
            fresh,
            log,
        })
    }
}

/// Whether run `run` (from 1) of the request meets a worker that has served
/// nothing yet: the daemon's one worker serves the `warm_ups` pages, then
/// the runs, and `max_requests` (0: never) replaces it after that many.
fn on_fresh_worker(warm_ups: usize, run: usize, max_requests: u64) -> bool {
    let served_before = (warm_ups + run - 1) as u64;
    match max_requests {
        0 => served_before == 0,
        m => served_before.is_multiple_of(m),
    }
}

fn timed_out(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ClientError>(),
        Some(ClientError::Io(io)) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
    )
}

#[cfg(test)]
mod tests;
