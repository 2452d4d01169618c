//! The master process: binds the socket (or takes the inherited one),
//! drops privileges, has the runner set up the interpreter once (its
//! modules, the preloaded code, the `--precompile` scripts:
//! `runner::prepare_perl`), then hands over to the worker pool (`pool`),
//! which forks the workers and dispatches until told to stop.
//!
//! The master never starts a thread: everything that happens before `fork`
//! must be safe to copy into a child. A reload (SIGHUP) runs
//! `runner::prepare_perl` again, in the pool's loop, for the next
//! generation.

use std::time::Instant;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::listen::Listener;
use crate::notify::Notifier;
use crate::pool::Pool;
use crate::reload::Reloader;
use crate::{signals, title, worker};

/// Runs the daemon with `cfg`; a reload reads the settings again from
/// `reloader`.
pub fn run(cfg: Config, reloader: Reloader) -> anyhow::Result<()> {
    ensure_std_fds_open()?;
    // Before Perl records the environment, and while there is no thread.
    title::claim();
    // Signals wait while the daemon starts (the pool reads them from its
    // signalfd, `--workers 0` from its handlers): a TERM or USR1 during a
    // long preload acts once it serves, rather than kill it with its
    // socket file left behind.
    signals::block(&signals::master_set())?;
    // Before Perl copies the environment: no worker or script sees it.
    let notifier = Notifier::from_env();
    let socket = socket_options(&cfg);
    let listener = match &cfg.listen {
        // Socket activation: the unit's socket, also when the shared config
        // file names one for the other recipes and for `status`.
        Some(addr) if Listener::systemd_passed_one() => {
            log::info!("listen = {addr} not bound: systemd passed the socket to serve on");
            Listener::inherited()?
        }
        Some(addr) => Listener::bind(addr, &socket)?,
        None => Listener::inherited()?,
    };
    // From here on, whatever ends the start or the daemon removes the
    // socket file and the pid file (the guard's drop, in this process only).
    let mut leftovers = Leftovers::new(&listener);
    match (reloader.config_file(), &cfg.listen) {
        (Some(file), _) => title::master(&file.display().to_string()),
        (None, Some(listen)) => title::master(listen),
        (None, None) => title::master(&listener.describe()),
    }
    // Idle workers poll the listener beside their channel and the
    // connections they hold; whoever loses the race for a connection gets
    // EAGAIN instead of blocking.
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&listener),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .context("cannot make the listening socket non-blocking")?;
    if let Some(pid_file) = &cfg.pid_file {
        // Before the switch to --user: /run itself is root's.
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid file {}", pid_file.display()))?;
        leftovers.pid_file = Some(pid_file.clone());
        give_to_user(pid_file, &cfg)?;
    }
    if let Some(path) = &cfg.access_log {
        // Before privileges drop, as the log: the workers inherit it.
        crate::access_log::init(path)?;
    }
    drop_privileges(&cfg)?;
    reloader.warn_if_unreadable();
    if let Listener::Unix {
        path: Some(path), ..
    } = &listener
    {
        crate::listen::warn_if_socket_dir_unwritable(path, "");
    }
    if cfg.roots.is_empty() {
        log::warn!("no --root given: scripts may run from any directory");
    }
    let started = Instant::now();
    let perl = crate::runner::prepare_perl(&cfg, &mut || {})?;
    let result = if cfg.workers == 0 {
        log::info!(
            "ready: serving on {} in this process (--workers 0)",
            listener.describe()
        );
        if let Some(n) = &notifier {
            n.ready("serving in one process (--workers 0)");
        }
        crate::detach::ready();
        signals::serve_in_process();
        let served = worker::run(&perl, &listener, &cfg, None).map_err(Into::into);
        log::info!("stopped");
        if let Some(n) = &notifier {
            n.stopping();
        }
        // Global destruction would run the preloaded modules' END blocks;
        // the master has nothing to clean up in Perl.
        std::mem::forget(perl);
        served
    } else {
        Pool::new(perl, &listener, cfg, reloader, notifier).and_then(|pool| pool.run(started))
    };
    drop(leftovers);
    result
}

/// The socket options, with the socket file given to `--user` when no
/// `--socket-owner` says otherwise (php-fpm's `listen.owner` default): the
/// master, once that user, can then remove it at the stop (in a sticky
/// directory such as /tmp too).
fn socket_options(cfg: &Config) -> crate::listen::SocketOptions {
    let mut socket = cfg.socket.clone();
    if socket.owner.is_none()
        && nix::unistd::geteuid().is_root()
        && cfg.listen.as_deref().is_some_and(|l| l.contains('/'))
    {
        socket.owner = cfg.user.clone();
    }
    socket
}

/// The pid file, written by the starting user, goes to `--user`, so that
/// the master, once switched, can empty it at the stop when it cannot
/// remove it (a directory only root may write to).
fn give_to_user(path: &std::path::Path, cfg: &Config) -> anyhow::Result<()> {
    if let Some(uid) = target_uid(cfg) {
        nix::unistd::chown(path, Some(uid), None)
            .with_context(|| format!("cannot give pid file {} to --user", path.display()))?;
    }
    Ok(())
}

/// The uid `--user` names, when the daemon switches to it.
fn target_uid(cfg: &Config) -> Option<nix::unistd::Uid> {
    let name = cfg.user.as_ref()?;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid)
}

/// What the daemon leaves on disk: the socket file it bound and its pid
/// file, removed when this is dropped in the master (a forked child never
/// gets here: workers leave with `_exit`). A pid file the master, now
/// `--user`, may not remove is emptied instead (logrotate's and the
/// recipes' `[ -s PIDFILE ]` then see no daemon).
struct Leftovers<'a> {
    listener: &'a Listener,
    pid_file: Option<std::path::PathBuf>,
    master: nix::unistd::Pid,
}

impl<'a> Leftovers<'a> {
    fn new(listener: &'a Listener) -> Self {
        Leftovers {
            listener,
            pid_file: None,
            master: nix::unistd::getpid(),
        }
    }
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        if nix::unistd::getpid() != self.master {
            return;
        }
        self.listener.remove_socket_file();
        let Some(path) = &self.pid_file else { return };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let emptied = std::fs::write(path, "");
                log::info!(
                    "cannot remove pid file {} ({e}); {}",
                    path.display(),
                    if emptied.is_ok() {
                        "emptied it"
                    } else {
                        "left it"
                    }
                );
            }
        }
    }
}

/// Supervisors sometimes start daemons with 0/1/2 closed; the next open
/// would take those numbers and a worker's dup2 would then close it.
fn ensure_std_fds_open() -> anyhow::Result<()> {
    for fd in 0..3 {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            // Lowest free number: this fills the hole at `fd`.
            std::mem::forget(null);
        }
    }
    Ok(())
}

/// `--user`/`--group`: after the socket exists (and got its owner and
/// mode), before any Perl runs. Supplementary groups are the user's.
pub fn drop_privileges(cfg: &Config) -> anyhow::Result<()> {
    use nix::unistd::{Group, User};
    let Some(name) = &cfg.user else {
        if nix::unistd::geteuid().is_root() {
            log::warn!("running scripts as root; give --user to run them as an unprivileged user");
        }
        if cfg.group.is_some() {
            bail!("--group needs --user");
        }
        return Ok(());
    };
    let user = User::from_name(name)
        .ok()
        .flatten()
        .with_context(|| format!("--user {name}: no such user"))?;
    let gid = match &cfg.group {
        Some(g) => {
            Group::from_name(g)
                .ok()
                .flatten()
                .with_context(|| format!("--group {g}: no such group"))?
                .gid
        }
        None => user.gid,
    };
    crate::log::give_to(user.uid)
        .with_context(|| format!("--user {name}: cannot give it the log file (run as root)"))?;
    crate::access_log::give_to(user.uid).with_context(|| {
        format!("--user {name}: cannot give it the access log file (run as root)")
    })?;
    let cname = std::ffi::CString::new(name.as_str())?;
    nix::unistd::initgroups(&cname, gid)
        .with_context(|| format!("--user {name}: cannot set its groups (run as root)"))?;
    nix::unistd::setgid(gid).with_context(|| format!("cannot switch to group {gid}"))?;
    nix::unistd::setuid(user.uid)
        .with_context(|| format!("--user {name}: cannot switch to uid {}", user.uid))?;
    log::info!("running as user {name} (uid {}, gid {gid})", user.uid);
    Ok(())
}
