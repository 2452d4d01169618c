//! `fcgi-spawn fcgi_spawn ...`, or this binary called as `fcgi_spawn` (a
//! symlink): FCGI::Spawn's daemon, as a service directory or init script
//! starts it, moved over without rewriting them. Its flags (`-c CONFDIR -p
//! PIDFILE -l LOGFILE -u USER -g GROUP -s SOCKET -e -pl -nd -t SECS`), its
//! `CONFDIR/fcgi_spawn.conf` and, with `-pl`, its `preload_nonprepared_NN.pl`
//! (run in the master, as `preload_script`) and `preload_prepared_NN.pl`
//! (run in each worker after fork, as `worker_init`) scripts become one
//! [`Settings`], which `run` then validates and runs as any other: one model
//! of the configuration, this file only reads another syntax into it.
//!
//! What FCGI::Spawn made optional and fcgi-spawn always does (cleaning what
//! a request loaded, restoring `%ENV`, `$0`, reseeding `rand` per worker,
//! `exit` ending only the script) is accepted with one info line each.
//! Anything after `--` is read as `run`'s own flags (`-- --root /srv/www`).

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::config::{Settings, STAT_FIELDS};

/// FCGI::Spawn's default socket (`FCGI_SOCKET_PATH` overrides it there too).
const DEFAULT_SOCKET: &str = "/tmp/spawner.sock";
/// fcgi_spawn's callout time limit (`-t`) when not given.
const DEFAULT_TIME_LIMIT: u64 = 60;

pub const ABOUT: &str = "Run as FCGI::Spawn's fcgi_spawn daemon would, with its flags: \
    -c CONFDIR (reads CONFDIR/fcgi_spawn.conf), -p PIDFILE, -l LOGFILE, -u USER, -g GROUP, \
    -s SOCKET (a path, HOST:PORT or :PORT), -pl (run CONFDIR/preload_nonprepared_NN.pl in the \
    master and preload_prepared_NN.pl in each worker), -t SECS (request timeout, default 60), \
    -nd (stay in the foreground; without it the daemon goes to the background once serving, \
    and -l is needed), -e (accepted: always so). Flags of `run` may follow `--`. The same runs when this \
    binary is called as `fcgi_spawn` (a symlink).";

/// fcgi_spawn.conf keys for what fcgi-spawn always does (or never
/// needs), and why: accepted with one info line.
const ALWAYS: &[(&str, &str)] = &[
    (
        "x_stats",
        "FCGI::Spawn::xinc always checks the files' mtime (and dependencies)",
    ),
    (
        "x_stats_policy",
        "FCGI::Spawn::xinc always checks the files' mtime (and dependencies)",
    ),
    (
        "clean_inc_hash",
        "fcgi-spawn always cleans what a request loaded and defined (by design)",
    ),
    (
        "clean_main_space",
        "fcgi-spawn always cleans what a request loaded and defined (by design)",
    ),
    (
        "clean_inc_subnamespace",
        "fcgi-spawn always cleans what a request loaded and defined (by design)",
    ),
    ("save_env", "%ENV is always restored after each request"),
    ("procname", "$0 is always the script while it runs"),
    ("seed_rand", "each worker always reseeds rand after fork"),
    ("maxlength", "not used (FCGI::Spawn never used it either)"),
];

/// The settings and the info lines to log once logging is set up.
#[derive(Debug, Default)]
pub struct Legacy {
    pub settings: Settings,
    pub notes: Vec<String>,
}

/// `run`'s flags after `--`.
#[derive(Parser)]
#[command(name = "fcgi_spawn --", no_binary_name = true)]
struct RunFlags {
    #[command(flatten)]
    settings: Settings,
}

pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "-?" || a == "--help") {
        println!("{ABOUT}");
        return 0;
    }
    match legacy(args) {
        Ok(legacy) => {
            // A reload reads fcgi_spawn.conf again, as FCGI::Spawn's HUP did.
            let again = args.to_vec();
            let reloader = crate::reload::Reloader::from_source(
                Box::new(move || legacy_settings(&again)),
                None,
            );
            super::run_with_notes(legacy.settings, false, &legacy.notes, reloader)
        }
        Err(e) => {
            eprintln!("fcgi_spawn: {e}");
            2
        }
    }
}

/// Reads the flags, the config directory and its preload scripts.
/// The settings of an FCGI::Spawn command line, read again at a reload.
fn legacy_settings(args: &[String]) -> Result<Settings, String> {
    legacy(args).map(|l| l.settings)
}

pub fn legacy(args: &[String]) -> Result<Legacy, String> {
    let (ours, theirs) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let flags = parse_flags(ours)?;
    let mut legacy = Legacy::default();
    if let Some(dir) = &flags.config_dir {
        let file = dir.join("fcgi_spawn.conf");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("-c {}: cannot read {}: {e}", dir.display(), file.display()))?;
        legacy = read_conf(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        if flags.preload {
            legacy.settings.preload_script = numbered_scripts(dir, "preload_nonprepared_")?;
            legacy.settings.worker_init = numbered_scripts(dir, "preload_prepared_")?;
        }
    } else {
        legacy.settings.stats = true;
    }
    if flags.preload && flags.config_dir.is_none() {
        return Err("-pl needs -c CONFDIR (where the preload scripts are)".into());
    }
    let s = &mut legacy.settings;
    // FCGI::Spawn ran any file it was given: a tree it served may never
    // have had exec bits.
    s.ignore_exec_bit = true;
    s.listen = Some(listen_address(
        flags
            .socket
            .as_deref()
            .or(std::env::var("FCGI_SOCKET_PATH").ok().as_deref()),
    ));
    // As fcgi_spawn: in the background unless -nd, and then -l is needed.
    if !flags.no_detach && flags.log.is_none() {
        return Err(
            "without -nd the daemon goes to the background: give -l LOGFILE \
             (or -nd to stay in the foreground, under a supervisor)"
                .into(),
        );
    }
    s.detach = !flags.no_detach;
    s.pid_file = flags.pid_file;
    s.log = flags.log;
    s.user = flags.user;
    s.group = flags.group;
    s.request_timeout = Some(flags.time_limit.unwrap_or(DEFAULT_TIME_LIMIT));
    legacy.notes.extend(flags.notes);
    if !theirs.is_empty() {
        let run = RunFlags::try_parse_from(theirs).map_err(|e| e.to_string())?;
        legacy.settings = std::mem::take(&mut legacy.settings).overridden_by(run.settings);
    }
    Ok(legacy)
}

#[derive(Debug, Default)]
struct Flags {
    config_dir: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    log: Option<PathBuf>,
    user: Option<String>,
    group: Option<String>,
    socket: Option<String>,
    time_limit: Option<u64>,
    preload: bool,
    no_detach: bool,
    notes: Vec<String>,
}

/// fcgi_spawn's flags: single dash, some of two letters (`-pl`, `-nd`),
/// so not a getopt syntax.
fn parse_flags(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-c" => f.config_dir = Some(value()?.into()),
            "-p" => f.pid_file = Some(value()?.into()),
            "-l" => f.log = Some(value()?.into()),
            "-u" => f.user = Some(value()?),
            "-g" => f.group = Some(value()?),
            "-s" => f.socket = Some(value()?),
            "-t" => {
                let v = value()?;
                f.time_limit = Some(
                    v.parse()
                        .map_err(|_| format!("-t {v}: not a number of seconds"))?,
                );
            }
            "-pl" => f.preload = true,
            "-e" => f.notes.push(
                "-e: exit() always ends only the script, never the worker (nothing to redefine)"
                    .into(),
            ),
            "-nd" => f.no_detach = true,
            "-stl" | "-mmf" | "-mms" => {
                let v = value()?;
                f.notes.push(format!(
                    "{flag} {v}: not needed (a timed-out script is stopped in-process, see --request-timeout)"
                ));
            }
            "-cm" => f
                .notes
                .push("-cm: the config file is always validated".into()),
            other => {
                return Err(format!(
                    "unknown flag {other:?} (fcgi_spawn's: -c -p -l -u -g -s -t -e -pl -nd; \
                     fcgi-spawn's own flags go after --)"
                ))
            }
        }
    }
    Ok(f)
}

/// `-s`: a socket path, `HOST:PORT`, or `:PORT` (every address, as
/// FCGI.pm binds it).
fn listen_address(socket: Option<&str>) -> String {
    match socket {
        None => DEFAULT_SOCKET.to_string(),
        Some(s) if s.starts_with(':') => format!("0.0.0.0{s}"),
        Some(s) => s.to_string(),
    }
}

/// fcgi_spawn.conf: one `key value [value...]` per line, blank lines and
/// `#` comments skipped. Unknown keys are errors naming key and line.
pub fn read_conf(text: &str) -> Result<Legacy, String> {
    // FCGI::Spawn's default; `stats 0` turns it off.
    let mut legacy = Legacy {
        settings: Settings {
            stats: true,
            ..Default::default()
        },
        notes: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let key = words.next().unwrap_or_default();
        let values: Vec<&str> = words.collect();
        let at = |what: String| format!("line {}: {key}: {what}", n + 1);
        let one = || match values.as_slice() {
            [v] => Ok(*v),
            _ => Err(at(format!("one value expected, not {}", values.len()))),
        };
        let number = || {
            one().and_then(|v| {
                v.parse::<u64>()
                    .map_err(|_| at(format!("{v:?} is not a number")))
            })
        };
        let s = &mut legacy.settings;
        match key {
            "n_processes" => {
                s.workers = Some(number()? as usize);
            }
            "max_requests" => s.max_requests = Some(number()?),
            "sock_chmod" => s.socket_mode = Some(one()?.to_string()),
            "sock_chown" => {
                let id = |v: Option<&&str>| v.filter(|v| **v != "-1").map(|v| v.to_string());
                if values.is_empty() || values.len() > 2 {
                    return Err(at("UID [GID] expected".into()));
                }
                s.socket_owner = id(values.first());
                s.socket_group = id(values.get(1));
            }
            "stats" => s.stats = number()? != 0,
            "stats_policy" => {
                s.stats_policy = values
                    .iter()
                    .map(|v| stat_field(v).ok_or_else(|| at(format!("{v:?} is not a stat field"))))
                    .collect::<Result<_, _>>()?;
            }
            _ => {
                match ALWAYS.iter().find(|(k, _)| *k == key) {
                    Some((_, why)) => legacy
                        .notes
                        .push(format!("{key} {}: {why}", values.join(" "))),
                    None => return Err(at(
                        "unknown key (fcgi_spawn.conf keys: n_processes max_requests sock_chmod \
                         sock_chown stats stats_policy x_stats x_stats_policy clean_inc_hash \
                         clean_main_space clean_inc_subnamespace save_env procname seed_rand)"
                            .into(),
                    )),
                }
            }
        }
    }
    Ok(legacy)
}

/// A `stats_policy` entry: a stat field's name, `all`, or its index in
/// perl's `stat` list (as FCGI::Spawn stores a policy).
fn stat_field(v: &str) -> Option<String> {
    if v == "all" || STAT_FIELDS.contains(&v) {
        return Some(v.to_string());
    }
    v.parse::<usize>()
        .ok()
        .and_then(|i| STAT_FIELDS.get(i))
        .map(|f| f.to_string())
}

/// `DIR/PREFIXNN.pl`, in NN order.
fn numbered_scripts(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("-c {}: {e}", dir.display()))?;
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let number = name.strip_prefix(prefix)?.strip_suffix(".pl")?;
            let n = number.parse::<u64>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn conf_keys_map_to_settings() {
        let l = read_conf(
            "  n_processes  5\n  sock_chown -1 80\n# clean_inc_hash  2\n  sock_chmod  0660\n\
             max_requests  50\nstats_policy mtime 10\nclean_inc_subnamespace Bugzilla::Config\n",
        )
        .unwrap();
        let s = &l.settings;
        assert_eq!(s.workers, Some(5));
        assert_eq!(s.max_requests, Some(50));
        assert_eq!(s.socket_mode.as_deref(), Some("0660"));
        assert_eq!(s.socket_owner, None);
        assert_eq!(s.socket_group.as_deref(), Some("80"));
        assert!(s.stats, "FCGI::Spawn's default");
        assert_eq!(
            s.stats_policy,
            vec!["mtime".to_string(), "ctime".to_string()]
        );
        assert_eq!(l.notes.len(), 1, "{:?}", l.notes);
        assert!(l.notes[0].starts_with("clean_inc_subnamespace Bugzilla::Config: "));
        assert!(!read_conf("stats 0\n").unwrap().settings.stats);
    }

    #[test]
    fn bad_conf_lines_are_named() {
        let e = read_conf("n_processes 2\nchroot_path /var/www\n").unwrap_err();
        assert!(e.starts_with("line 2: chroot_path: unknown key"), "{e}");
        let e = read_conf("n_processes two\n").unwrap_err();
        assert!(
            e.starts_with("line 1: n_processes: \"two\" is not a number"),
            "{e}"
        );
        let e = read_conf("stats_policy mtime shape\n").unwrap_err();
        assert!(e.contains("\"shape\" is not a stat field"), "{e}");
    }

    #[test]
    fn flags_and_run_flags_after_the_double_dash() {
        let l = legacy(&args(
            "-p /run/x.pid -l /var/log/x.log -u www -g www -s :9000 -e -nd -t 0 -- --workers 2 --root /srv",
        ))
        .unwrap();
        let s = &l.settings;
        assert_eq!(s.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(s.pid_file, Some(PathBuf::from("/run/x.pid")));
        assert_eq!(s.log, Some(PathBuf::from("/var/log/x.log")));
        assert_eq!(s.user.as_deref(), Some("www"));
        assert_eq!(s.group.as_deref(), Some("www"));
        assert_eq!(s.request_timeout, Some(0));
        assert_eq!(s.workers, Some(2));
        assert_eq!(s.root, vec![PathBuf::from("/srv")]);
        assert!(!s.detach, "-nd: in the foreground");
        assert_eq!(l.notes.len(), 1, "{:?}", l.notes);
        let l = legacy(&args("-s /tmp/a.sock -nd")).unwrap();
        assert_eq!(l.settings.request_timeout, Some(DEFAULT_TIME_LIMIT));
        let l = legacy(&args("-s /tmp/a.sock -l /tmp/a.log")).unwrap();
        assert!(l.settings.detach, "fcgi_spawn's default: detached");
        assert!(legacy(&args("-s /tmp/a.sock"))
            .unwrap_err()
            .contains("give -l LOGFILE (or -nd"));
        assert!(legacy(&args("-x"))
            .unwrap_err()
            .contains("unknown flag \"-x\""));
        assert!(legacy(&args("-pl")).unwrap_err().contains("-pl needs -c"));
        assert!(legacy(&args("-c"))
            .unwrap_err()
            .contains("-c needs a value"));
    }
}
