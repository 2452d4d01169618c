//! What a reload (SIGHUP to the master) changes, decided before anything
//! changes: the configuration is read again from the same `--config` file
//! and command-line flags the daemon started with (flags still override
//! the file), and settings that only a restart can change keep their old
//! values, with a warning naming them. The pool (`pool`) then builds the
//! next generation's interpreter with the new settings (`runner::
//! prepare_perl`) beside the current one, forks the new workers from it
//! and lets the old ones drain; anything failing on the way refuses the
//! reload and leaves the running generation as it was.

use std::path::PathBuf;

use crate::config::{Config, Settings};

/// Where the settings come from again at a reload: `run`'s flags (which
/// name the `--config` file read with them), or a migrated FCGI::Spawn
/// command line, whose `fcgi_spawn.conf` is read again.
pub type SettingsSource = Box<dyn Fn() -> Result<Settings, String>>;

/// What the daemon was started with, to read the configuration again.
pub struct Reloader {
    source: SettingsSource,
    /// The file a reload reads again, if any.
    config_file: Option<PathBuf>,
    /// Relative paths in flags and file (`--config`, `--root`...) mean
    /// what they meant at start.
    cwd: Option<PathBuf>,
}

impl Reloader {
    /// `run`'s flags.
    pub fn new(flags: Settings) -> Reloader {
        let file = flags.config.clone();
        Reloader::from_source(Box::new(move || Ok(flags.clone())), file)
    }

    pub fn from_source(source: SettingsSource, config_file: Option<PathBuf>) -> Reloader {
        Reloader {
            source,
            config_file,
            cwd: std::env::current_dir().ok(),
        }
    }

    /// The configuration file the daemon was started with, if any.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config_file.as_deref()
    }

    /// After the switch to `--user`: a configuration file this process can
    /// no longer read would refuse every reload; say so now (and how to
    /// fix it), not at the first HUP.
    pub fn warn_if_unreadable(&self) {
        if let Some(file) = &self.config_file {
            warn_if_unreadable(file);
        }
    }

    /// The configuration a reload applies, or why there is none: the one
    /// line the log shows.
    pub fn read(&self, running: &Config) -> Result<Config, String> {
        if let Some(cwd) = &self.cwd {
            std::env::set_current_dir(cwd)
                .map_err(|e| format!("cannot go back to {}: {e}", cwd.display()))?;
        }
        let mut next = Config::load((self.source)()?).map_err(|e| e.to_string())?;
        let kept = keep_restart_only(running, &mut next);
        if !kept.is_empty() {
            log::warn!(
                "reload: {} changed; that needs a restart, the running values stay",
                kept.join(", ")
            );
        }
        Ok(next)
    }
}

/// See [`Reloader::warn_if_unreadable`]; also `fcgi-spawn config`'s.
pub fn warn_if_unreadable(file: &std::path::Path) {
    if let Err(e) = std::fs::File::open(file) {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            let user = crate::users::current_name();
            log::warn!(
                "{}: not readable by {user}, whom the daemon runs as: every reload (HUP) \
                 will be refused; make it readable by {user} (e.g. chgrp {user} and chmod g+r \
                 it, and its directories searchable)",
                file.display()
            );
        }
    }
}

/// Settings a running daemon cannot change (the socket it listens on and
/// its file, the user it switched to, its pid file): `next` gets the
/// running values back. Returns the keys that differed.
pub fn keep_restart_only(running: &Config, next: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    fn keep<T: PartialEq + Clone>(
        kept: &mut Vec<&'static str>,
        key: &'static str,
        running: &T,
        next: &mut T,
    ) {
        if running != next {
            kept.push(key);
            *next = running.clone();
        }
    }
    keep(&mut kept, "listen", &running.listen, &mut next.listen);
    keep(
        &mut kept,
        "socket_mode",
        &running.socket.mode,
        &mut next.socket.mode,
    );
    keep(
        &mut kept,
        "socket_owner",
        &running.socket.owner,
        &mut next.socket.owner,
    );
    keep(
        &mut kept,
        "socket_group",
        &running.socket.group,
        &mut next.socket.group,
    );
    keep(
        &mut kept,
        "backlog",
        &running.socket.backlog,
        &mut next.socket.backlog,
    );
    keep(&mut kept, "user", &running.user, &mut next.user);
    keep(&mut kept, "group", &running.group, &mut next.group);
    keep(&mut kept, "pid_file", &running.pid_file, &mut next.pid_file);
    keep(&mut kept, "detach", &running.detach, &mut next.detach);
    // Opened by the master before the switch to --user, like the socket.
    keep(
        &mut kept,
        "access_log",
        &running.access_log,
        &mut next.access_log,
    );
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::resolve(Settings::from_toml(toml).unwrap(), None).unwrap()
    }

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let running = config("listen = \"/run/a.sock\"\nworkers = 2\nbacklog = 10\n");
        let mut next = config(
            "listen = \"/run/b.sock\"\nworkers = 5\nbacklog = 10\nsocket_mode = \"0600\"\n\
             pid_file = \"/run/x.pid\"\nlog = \"/tmp/new.log\"\n",
        );
        let kept = keep_restart_only(&running, &mut next);
        assert_eq!(kept, ["listen", "socket_mode", "pid_file"]);
        assert_eq!(next.listen.as_deref(), Some("/run/a.sock"));
        assert_eq!(next.socket.mode, 0o660);
        assert_eq!(next.pid_file, None);
        // What a reload may change, it changes.
        assert_eq!(next.workers, 5);
        assert_eq!(next.log, Some(PathBuf::from("/tmp/new.log")));
    }

    #[test]
    fn drain_timeout_defaults_to_the_grace_time() {
        assert_eq!(config("grace_time = 7\n").drain_timeout, 7);
        assert_eq!(
            config("grace_time = 7\ndrain_timeout = 2\n").drain_timeout,
            2
        );
        assert_eq!(config("").drain_timeout, 30);
    }
}
