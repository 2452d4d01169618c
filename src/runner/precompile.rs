//! Scripts compiled before their first request: in the master before the
//! workers are forked (`--precompile`), and by `fcgi-spawn check`.
//!
//! In `registry` and `fork` isolation a worker compiles a script on its
//! first request for it: every worker pays the compile once, and keeps a
//! private copy of the result. A precompile does that work in the master,
//! through the same request steps a worker's first request goes through
//! (`begin_request`, `finish_request`, `end_request`) with a run step that
//! compiles without running, so every worker starts with the registry
//! entry it would have built itself, shared copy-on-write. A script that
//! changes on disk later is compiled again by the worker that notices, as
//! always (the entry keeps the file's stamp).
//!
//! There is no request to compile for. What the compile sees (BEGIN
//! blocks, `use FindBin`): the workers' base environment (`--pass-env`,
//! `--env`) plus `GATEWAY_INTERFACE`, `REQUEST_METHOD=GET`, an empty
//! `QUERY_STRING`, `SCRIPT_FILENAME` (the resolved path), `SCRIPT_NAME`
//! (the path under its `--root`) and `FCGI_SPAWN_PRECOMPILE=1`; the cwd is
//! the script's directory and `$0` the script.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::steps::{Compiled, PerlSteps, Restored, WorkerSettings};
use super::warm_up::MasterStdFds;
use crate::config::{Config, Isolation};
use crate::path_policy::{PathPolicy, ScriptCheck};
use crate::perl::Interpreter;

/// A script to compile, the isolation its requests run in, and the query
/// string of its warm run (`--precompile-warm`), if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    script: PathBuf,
    isolation: Isolation,
    warm: Option<String>,
}

/// In the master, after the warm-up and before the fork: compiles the
/// scripts the `--precompile` globs match. A failure is logged and left
/// for the first request (which answers 500 as for any compile error);
/// with `--precompile-strict` it stops the start. `between` runs after
/// each script (a reload lets the master's loop work meanwhile).
pub fn precompile(
    perl: &Interpreter,
    cfg: &Config,
    between: &mut dyn FnMut(),
) -> anyhow::Result<()> {
    let served = crate::served::list();
    if cfg.precompile.is_empty() && served.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let policy = PathPolicy::of(cfg);
    let mut targets = daemon_targets(cfg, &policy);
    let globbed = targets.len();
    targets.extend(served_targets(cfg, &policy, &targets, served));
    let from_served = targets.len() - globbed;
    let worker = WorkerSettings::new(&cfg.pass_env, &cfg.env, &policy);
    let (mut cached, mut in_children, mut failed) = (0, 0, Vec::new());
    for (script, outcome) in compile_all(perl, &worker, &policy, &targets, between)? {
        match outcome {
            Ok(Compiled::Cached) => cached += 1,
            Ok(Compiled::RunsInChild) => in_children += 1,
            Err(why) => {
                log::error!(
                    "--precompile: {} does not compile (its requests will compile it \
                     again and fail with a 500 until it is fixed): {}",
                    script.display(),
                    why.trim_end()
                );
                failed.push(script);
            }
        }
    }
    log::info!(
        "precompiled {} script(s) in {} ms{}{}{}",
        cached + in_children,
        started.elapsed().as_millis(),
        if from_served > 0 {
            format!(" ({from_served} of them served by the previous generation)")
        } else {
            String::new()
        },
        if in_children > 0 {
            format!(
                ", {in_children} of them to run in a child per request (named subs keep file \
                 lexicals; the log says which)"
            )
        } else {
            String::new()
        },
        if failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", failed.len())
        }
    );
    if cfg.precompile_strict && !failed.is_empty() {
        anyhow::bail!(
            "--precompile-strict: {} script(s) did not compile ({}); fix them or drop \
             --precompile-strict",
            failed.len(),
            failed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// `fcgi-spawn check`: compiles each script as the daemon would (same
/// preloads, environment, roots and isolation rules), prints one line per
/// script on stdout, perl's messages for those that fail on stderr.
/// Returns the exit code: 0 when all compile, 1 otherwise.
pub fn check_scripts(perl: &Interpreter, cfg: &Config, scripts: &[PathBuf]) -> io::Result<i32> {
    let policy = PathPolicy::of(cfg);
    let mut targets = Vec::new();
    let mut failed = 0;
    for given in scripts {
        let absolute = std::path::absolute(given)?;
        match policy.check(absolute.as_os_str().as_bytes()) {
            ScriptCheck::Run {
                script,
                path_info: None,
            } => {
                let isolation = Isolation::for_script(cfg.isolation, &cfg.isolation_for, &script);
                targets.push(Target {
                    script,
                    isolation,
                    warm: None,
                });
            }
            ScriptCheck::Run { .. } | ScriptCheck::NotFound => {
                eprintln!("{}: no such file", given.display());
                failed += 1;
            }
            ScriptCheck::Forbidden(why) => {
                eprintln!(
                    "{}: the daemon would not run it (403): {why}",
                    given.display()
                );
                failed += 1;
            }
        }
    }
    let worker = WorkerSettings::new(&cfg.pass_env, &cfg.env, &policy);
    for (script, outcome) in compile_all(perl, &worker, &policy, &targets, &mut || {})? {
        match outcome {
            Ok(Compiled::Cached) => println!("{}: OK", script.display()),
            Ok(Compiled::RunsInChild) => println!(
                "{}: OK (in registry isolation, runs in a child per request, compiled once: its \
                 named subs keep file-scoped lexicals)",
                script.display()
            ),
            Err(why) => {
                failed += 1;
                eprintln!("{}: FAILED\n{}", script.display(), why.trim_end());
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// A reload precompiles on its own what the previous generation served in
/// `registry` or `fork` isolation (the scripts still there and still
/// allowed), besides the `--precompile` globs: its workers then start with
/// them compiled, shared with the master. No warm run: that needs a query
/// the operator chose (`--precompile-warm`).
fn served_targets(
    cfg: &Config,
    policy: &PathPolicy,
    already: &[Target],
    served: Vec<PathBuf>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for script in served {
        let ScriptCheck::Run { script, .. } = policy.check(script.as_os_str().as_bytes()) else {
            continue;
        };
        let isolation = Isolation::for_script(cfg.isolation, &cfg.isolation_for, &script);
        if isolation == Isolation::Perlrun
            || already
                .iter()
                .chain(targets.iter())
                .any(|t: &Target| t.script == script)
        {
            continue;
        }
        targets.push(Target {
            script,
            isolation,
            warm: None,
        });
    }
    targets
}

/// The scripts the daemon's `--precompile` globs name, each once, in glob
/// order: files with an allowed extension that the path policy lets run,
/// whose isolation compiles them once (registry, fork). What is left out
/// is logged.
fn daemon_targets(cfg: &Config, policy: &PathPolicy) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    let mut perlrun = 0;
    for pattern in &cfg.precompile {
        let mut matched = 0;
        for script in expand(pattern, policy) {
            matched += 1;
            let script = match policy.check(script.as_os_str().as_bytes()) {
                ScriptCheck::Run { script, .. } => script,
                ScriptCheck::NotFound => continue,
                ScriptCheck::Forbidden(why) => {
                    log::warn!("--precompile {pattern}: skipped, {why}");
                    continue;
                }
            };
            let isolation = Isolation::for_script(cfg.isolation, &cfg.isolation_for, &script);
            if isolation == Isolation::Perlrun {
                perlrun += 1;
                log::debug!(
                    "--precompile: {} runs in perlrun isolation (compiled every request); skipped",
                    script.display()
                );
                continue;
            }
            if !targets.iter().any(|t| t.script == script) {
                let warm = warm_query(cfg, &script);
                targets.push(Target {
                    script,
                    isolation,
                    warm,
                });
            }
        }
        if matched == 0 {
            log::warn!("--precompile {pattern}: matches no script");
        }
    }
    if perlrun > 0 {
        log::warn!(
            "--precompile: {perlrun} matching script(s) run in perlrun isolation, which compiles \
             every request: not precompiled (see --isolation, --isolation-for)"
        );
    }
    targets
}

/// The query string of the script's warm run: the first `--precompile-warm`
/// rule that matches it (`*` within a directory, `**` across them).
fn warm_query(cfg: &Config, script: &Path) -> Option<String> {
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    cfg.precompile_warm
        .iter()
        .find(|(pattern, _)| pattern.matches_path_with(script, options))
        .map(|(_, query)| query.clone())
}

/// The regular files a glob matches that have an allowed extension, sorted.
/// `*` stays within a directory, `**` crosses them (as `--isolation-for`);
/// a glob ending in `/**` names every file below.
fn expand(pattern: &str, policy: &PathPolicy) -> Vec<PathBuf> {
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    // `dir/**` means every file below dir (glob's own `**` alone matches
    // the directories).
    let pattern = match pattern.strip_suffix("**") {
        Some(dir) if dir.is_empty() || dir.ends_with('/') => format!("{pattern}/*"),
        _ => pattern.to_string(),
    };
    let Ok(paths) = glob::glob_with(&pattern, options) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file() && policy.extension_allowed(p))
        .collect();
    files.sort();
    files
}

/// Compiles each target as a worker's first request for it would; the
/// outcome of each (perl's message when it does not compile). An error is
/// the master's own (its descriptors, or a state it cannot put back after
/// a compile).
fn compile_all(
    perl: &Interpreter,
    worker: &WorkerSettings,
    policy: &PathPolicy,
    targets: &[Target],
    between: &mut dyn FnMut(),
) -> io::Result<Vec<(PathBuf, Result<Compiled, String>)>> {
    let mut outcomes = Vec::with_capacity(targets.len());
    if targets.is_empty() {
        return Ok(outcomes);
    }
    let steps = PerlSteps::new(perl);
    let fds = MasterStdFds::save()?;
    steps.precompile_begin(worker).map_err(io::Error::other)?;
    let mut result = Ok(());
    for target in targets {
        fds.park()?;
        let started = Instant::now();
        let outcome = compile_one(&steps, policy, target);
        if let (Ok(Compiled::Cached), Some(query)) = (&outcome, &target.warm) {
            warm_run(&steps, target, query);
        }
        steps.finish_request();
        perl.take_pending_output(|_| ());
        if let Restored::Unclean(reason) = steps.end_request() {
            result = Err(io::Error::other(format!(
                "the interpreter's state after {} {} could not be put back: {reason}{}",
                if target.warm.is_some() {
                    "precompiling and the warm run of"
                } else {
                    "precompiling"
                },
                target.script.display(),
                if target.warm.is_some() {
                    " (a worker would be replaced after such a request: leave this script \
                     out of --precompile-warm)"
                } else {
                    ""
                }
            )));
            break;
        }
        log::debug!(
            "precompile: {} ({}) in {} ms",
            target.script.display(),
            target.isolation.as_str(),
            started.elapsed().as_millis()
        );
        outcomes.push((target.script.clone(), outcome));
        between();
    }
    let ended = steps.precompile_end().map_err(io::Error::other);
    fds.restore()?;
    result.and(ended).map(|()| outcomes)
}

fn compile_one(
    steps: &PerlSteps,
    policy: &PathPolicy,
    target: &Target,
) -> Result<Compiled, String> {
    let script = target.script.as_os_str().as_bytes();
    let name = script_name(policy, &target.script);
    let params: [&[u8]; 12] = [
        b"GATEWAY_INTERFACE",
        b"CGI/1.1",
        b"REQUEST_METHOD",
        b"GET",
        b"QUERY_STRING",
        target.warm.as_deref().unwrap_or("").as_bytes(),
        b"SCRIPT_FILENAME",
        script,
        b"SCRIPT_NAME",
        name.as_os_str().as_bytes(),
        b"FCGI_SPAWN_PRECOMPILE",
        b"1",
    ];
    // The request set-up a worker's first request makes (registry: no
    // SIGPIPE change, which `fork` makes only in the request's child).
    steps
        .begin_request(script, Isolation::Registry, &params)
        .map_err(|ended| format!("setting up its environment ended with status {}", ended.0))?;
    steps.precompile_script(target.isolation)
}

/// The warm run of a script just compiled: run once as a registry
/// request, in the environment of its compile, with no body; its output
/// is discarded, and `finish_request`/`end_request` put the interpreter
/// back as after any request. `registry` and `fork` scripts alike: what
/// the run loads (modules, their caches) is then shared by every worker,
/// and for `fork` by every request's child. Not `perlrun`, compiled per
/// request; nor a script whose named subs keep file-scoped lexicals (the
/// Perl side refuses it), which a run here would change for every later
/// request.
fn warm_run(steps: &PerlSteps, target: &Target, query: &str) {
    let script = target.script.display();
    if target.isolation == Isolation::Perlrun {
        log::warn!(
            "--precompile-warm: {script} runs in perlrun isolation: not warmed (it is \
             compiled per request)"
        );
        return;
    }
    if let Err(why) = steps.precompile_warm() {
        log::warn!("--precompile-warm: {}", why.trim_end());
        return;
    }
    let started = Instant::now();
    let status = steps.run_script();
    steps.run_end_blocks();
    log::info!(
        "--precompile-warm: ran {script} once (GET ?{query}, response discarded): exit status \
         {status}, {} ms",
        started.elapsed().as_millis()
    );
}

/// `SCRIPT_NAME` of a precompile: the script's path under the --root that
/// holds it (`/app/index.cgi`), or its full path without roots.
fn script_name(policy: &PathPolicy, script: &Path) -> PathBuf {
    policy
        .roots()
        .iter()
        .find_map(|root| script.strip_prefix(root).ok())
        .map(|rel| Path::new("/").join(rel))
        .unwrap_or_else(|| script.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: crate::config::Settings) -> Config {
        Config::resolve(settings, None).unwrap()
    }

    #[test]
    fn targets_are_the_allowed_compiled_once_scripts() {
        let dir =
            std::env::temp_dir().join(format!("fcgi-spawn-precompile-{}", std::process::id()));
        let root = dir.join("www");
        std::fs::create_dir_all(root.join("app/deep")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let script = |path: PathBuf| {
            std::fs::write(&path, "1;\n").unwrap();
            // Executable, as scripts are (unless ignore_exec_bit).
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        for f in ["a.pl", "b.cgi", "notes.txt", "app/c.pl", "app/deep/d.pl"] {
            script(root.join(f));
        }
        script(dir.join("outside/e.pl"));
        let root = root.canonicalize().unwrap();
        let dir = dir.canonicalize().unwrap();
        let cfg = config(crate::config::Settings {
            root: vec![root.clone()],
            isolation: Some(Isolation::Registry),
            isolation_for: vec![format!("{}/app/deep/*=perlrun", root.display())],
            precompile: vec![
                format!("{}/**", root.display()),
                format!("{}/a.pl", root.display()),
                format!("{}/outside/*.pl", dir.display()),
            ],
            ..Default::default()
        });
        let policy = PathPolicy::of(&cfg);
        let got: Vec<PathBuf> = daemon_targets(&cfg, &policy)
            .into_iter()
            .map(|t| t.script.strip_prefix(&root).unwrap().to_path_buf())
            .collect();
        // notes.txt: no allowed extension; d.pl: perlrun; a.pl once;
        // e.pl: outside the roots.
        assert_eq!(
            got,
            vec![
                PathBuf::from("a.pl"),
                PathBuf::from("app/c.pl"),
                PathBuf::from("b.cgi")
            ]
        );
        assert_eq!(
            script_name(&policy, &root.join("app/c.pl")),
            PathBuf::from("/app/c.pl")
        );
        let no_roots = PathPolicy::new(Vec::new(), &cfg.extensions);
        assert_eq!(
            script_name(&no_roots, &root.join("a.pl")),
            root.join("a.pl")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
