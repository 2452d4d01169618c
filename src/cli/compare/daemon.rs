//! The daemon `compare` runs the persistent side on: this very binary's
//! `run`, with the user's settings (config file and flags, merged as `run`
//! merges them) written to a config file in compare's temp dir, except
//! what makes it compare's own: a socket in that dir, one worker in a
//! static pool (so every request lands on the same, warm, worker: a dynamic
//! pool would start a second one while the first is busy), the log in that
//! dir, no pid file, no user switch, in the foreground. It runs in a process group of its own (a Ctrl-C
//! at the terminal reaches `compare`, which stops it by pid) and gets TERM
//! if `compare` dies without stopping it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::cleanup::DaemonGuard;
use crate::config::{Isolation, Settings};

/// How long the daemon may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct TempDaemon {
    guard: DaemonGuard,
    socket: String,
    log: PathBuf,
}

/// `settings` as the daemon of `compare` runs them; with `mode`, that mode
/// for every script (the `isolation_for` rules dropped).
pub fn settings_for_compare(
    settings: &Settings,
    socket: &Path,
    mode: Option<Isolation>,
) -> Settings {
    let mut s = settings.clone();
    s.listen = Some(socket.display().to_string());
    s.workers = Some(1);
    s.pool = None;
    s.max_workers = None;
    s.start_workers = None;
    s.min_spare = None;
    s.max_spare = None;
    s.detach = false;
    s.log = None;
    s.pid_file = None;
    s.user = None;
    s.group = None;
    s.socket_owner = None;
    s.socket_group = None;
    s.socket_mode = None;
    s.grace_time = Some(2);
    s.config = None;
    if let Some(mode) = mode {
        s.isolation = Some(mode);
        s.isolation_for.clear();
    }
    s
}

impl TempDaemon {
    /// Starts `fcgi-spawn run` with `settings` (already made compare's own)
    /// and waits until it says it is ready. `name` names its files in `dir`.
    pub fn start(dir: &Path, name: &str, settings: &Settings) -> anyhow::Result<TempDaemon> {
        let socket = settings
            .listen
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no socket for the daemon"))?;
        let config = dir.join(format!("{name}.toml"));
        let log = dir.join(format!("{name}.log"));
        std::fs::write(&config, toml::to_string(settings)?)?;
        let log_file = File::create(&log)?;
        let exe = std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find the fcgi-spawn binary to start: {e}"))?;
        let mut command = Command::new(&exe);
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the prctl system call, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", exe.display()))?;
        let pid = Pid::from_raw(child.id() as i32);
        // Waited for by pid from here on (see cleanup).
        drop(child);
        let daemon = TempDaemon {
            guard: DaemonGuard::new(pid),
            socket,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) =
                waitpid(pid, Some(WaitPidFlag::WNOHANG))
            {
                anyhow::bail!(
                    "fcgi-spawn run did not start ({}); its log:\n{}",
                    describe(status),
                    indent(&daemon.log())
                );
            }
            if daemon.log().contains(" ready: ") {
                return Ok(daemon);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "fcgi-spawn run did not get ready within {} s; its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    indent(&daemon.log())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Stops the daemon and its worker (TERM, KILL after a grace time).
    pub fn stop(&mut self) {
        self.guard.stop();
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("killed by {signal}"),
        other => format!("{other:?}"),
    }
}

pub fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_settings_with_compares_own_socket_worker_and_log() {
        let user = Settings::from_toml(
            "listen = \"/run/fcgi.sock\"\nworkers = 8\nlog = \"/var/log/f.log\"\n\
             pid_file = \"/run/f.pid\"\nuser = \"www-data\"\npreload = [\"CGI\"]\n\
             isolation = \"registry\"\nisolation_for = [\"/srv/a/**=fork\"]\n\
             env = [\"SITE=1\"]\nmax_requests = 500\npool = \"dynamic\"\nmin_spare = 2\n\
             max_spare = 3\ndetach = true\n",
        )
        .unwrap();
        let s = settings_for_compare(&user, Path::new("/tmp/x/perlrun.sock"), None);
        assert_eq!(s.listen.as_deref(), Some("/tmp/x/perlrun.sock"));
        assert_eq!(s.workers, Some(1));
        // One worker for good: no dynamic pool to start a second one.
        assert!(s.pool.is_none() && s.min_spare.is_none() && s.max_spare.is_none());
        assert!(!s.detach);
        assert!(s.log.is_none() && s.pid_file.is_none() && s.user.is_none());
        assert_eq!(s.preload, ["CGI"]);
        assert_eq!(s.env, ["SITE=1"]);
        assert_eq!(s.max_requests, Some(500));
        assert_eq!(s.isolation, Some(Isolation::Registry));
        assert_eq!(s.isolation_for, ["/srv/a/**=fork"]);
        // It is a valid config file for `run`.
        let text = toml::to_string(&s).unwrap();
        let back = Settings::from_toml(&text).unwrap();
        assert_eq!(back.listen, s.listen);
        // And `run` resolves it to one worker in a static pool.
        let in_temp = settings_for_compare(&user, &std::env::temp_dir().join("x.sock"), None);
        let config = crate::config::Config::resolve(in_temp, None).unwrap();
        assert_eq!(config.workers, 1);
        assert!(config.dynamic.is_none());

        let forced =
            settings_for_compare(&user, Path::new("/tmp/x/fork.sock"), Some(Isolation::Fork));
        assert_eq!(forced.isolation, Some(Isolation::Fork));
        assert!(forced.isolation_for.is_empty());
    }
}
