//! The master process: binds the socket, starts the interpreter, loads the
//! runner and the preloaded code once, then forks the workers and keeps the
//! pool at its size (replacing workers that exit or crash, with a brake on
//! restart storms) until it is told to stop.
//!
//! The master never starts a thread: everything that happens before `fork`
//! must be safe to copy into a child.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::config::Config;
use crate::listen::Listener;
use crate::perl::{Interpreter, Outcome};
use crate::{signals, worker};

/// Perl code compiled into the binary, so the daemon needs no files besides
/// itself: (path under perl/ — also its %INC key —, source).
const PERL_MODULES: &[(&str, &str)] = &[
    (
        "FCGI/Spawn/Symbols.pm",
        include_str!("../perl/FCGI/Spawn/Symbols.pm"),
    ),
    (
        "FCGI/Spawn/Loader.pm",
        include_str!("../perl/FCGI/Spawn/Loader.pm"),
    ),
    (
        "FCGI/Spawn/Runner.pm",
        include_str!("../perl/FCGI/Spawn/Runner.pm"),
    ),
    ("FCGI/Spawn.pm", include_str!("../perl/FCGI/Spawn.pm")),
];

pub fn run(cfg: Config) -> anyhow::Result<()> {
    ensure_std_fds_open()?;
    let listener = match &cfg.listen {
        Some(addr) => Listener::bind(addr, &cfg.socket)?,
        None => Listener::inherited()?,
    };
    // Workers poll the listener beside their kept connections; whoever
    // loses the race for a connection gets EAGAIN instead of blocking.
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&listener),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .context("cannot make the listening socket non-blocking")?;
    drop_privileges(&cfg)?;
    if cfg.roots.is_empty() {
        log::warn!("no --root given: scripts may run from any directory");
    }
    let started = Instant::now();
    let perl = Interpreter::start()?;
    load_embedded_modules(&perl)?;
    preload(&perl, &cfg)?;
    if let Err(e) = crate::runner::warm_up(&perl) {
        log::warn!("warm-up request before forking the workers failed (workers will do that work themselves): {e}");
    }
    if let Some(pid_file) = &cfg.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid file {}", pid_file.display()))?;
    }
    let result = if cfg.workers == 0 {
        log::info!(
            "ready: serving on {} in this process (--workers 0)",
            listener.describe()
        );
        worker::run(&perl, &listener, &cfg).map_err(Into::into)
    } else {
        Pool::new(&perl, &listener, &cfg).run(started)
    };
    listener.remove_socket_file();
    if let Some(pid_file) = &cfg.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    // Global destruction would run the preloaded modules' END blocks; the
    // master has nothing to clean up in Perl.
    std::mem::forget(perl);
    result
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
fn drop_privileges(cfg: &Config) -> anyhow::Result<()> {
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
    let cname = std::ffi::CString::new(name.as_str())?;
    nix::unistd::initgroups(&cname, gid)
        .with_context(|| format!("--user {name}: cannot set its groups (run as root)"))?;
    nix::unistd::setgid(gid).with_context(|| format!("cannot switch to group {gid}"))?;
    nix::unistd::setuid(user.uid)
        .with_context(|| format!("--user {name}: cannot switch to uid {}", user.uid))?;
    log::info!("running as user {name} (uid {}, gid {gid})", user.uid);
    Ok(())
}

fn load_embedded_modules(perl: &Interpreter) -> anyhow::Result<()> {
    for (path, source) in PERL_MODULES {
        let code = format!("#line 1 \"{path}\"\n{source}");
        if let Outcome::Died(msg) = perl.eval(&code) {
            bail!("cannot load the embedded {path}: {msg}");
        }
        perl.eval(&format!(
            "$INC{{'{path}'}} = '(embedded in fcgi-spawn)/{path}'; 1"
        ));
    }
    Ok(())
}

fn preload(perl: &Interpreter, cfg: &Config) -> anyhow::Result<()> {
    for module in &cfg.preload {
        // Names were validated in config (no code can ride along).
        if let Outcome::Died(msg) = perl.eval(&format!("require {module}; 1")) {
            bail!("--preload {module}: {msg}");
        }
    }
    let steps = crate::runner::PerlSteps::new(perl);
    for script in &cfg.preload_scripts {
        let path = script.display().to_string();
        if let Err(why) = steps.preload_script(&path) {
            bail!("--preload-script {path}: {why}");
        }
    }
    Ok(())
}

struct Pool<'a> {
    perl: &'a Interpreter,
    listener: &'a Listener,
    cfg: &'a Config,
    target: usize,
    workers: HashMap<Pid, Instant>,
    quick_deaths: u32,
}

impl<'a> Pool<'a> {
    fn new(perl: &'a Interpreter, listener: &'a Listener, cfg: &'a Config) -> Pool<'a> {
        Pool {
            perl,
            listener,
            cfg,
            target: cfg.workers,
            workers: HashMap::new(),
            quick_deaths: 0,
        }
    }

    fn run(mut self, started: Instant) -> anyhow::Result<()> {
        let set = signals::master_set();
        signals::block(&set)?;
        for _ in 0..self.target {
            self.spawn()?;
        }
        log::info!(
            "ready: {} workers serving on {} (started in {} ms)",
            self.target,
            self.listener.describe(),
            started.elapsed().as_millis()
        );
        loop {
            let signal = signals::wait(&set, Duration::from_secs(1));
            match signal {
                Some(Signal::SIGTERM) | Some(Signal::SIGINT) => {
                    log::info!(
                        "{}: stopping gracefully",
                        signal.map(|s| s.as_str()).unwrap_or("")
                    );
                    self.stop(Duration::from_secs(self.cfg.grace_time), &set);
                    return Ok(());
                }
                Some(Signal::SIGQUIT) => {
                    log::info!("SIGQUIT: stopping now");
                    self.stop(Duration::ZERO, &set);
                    return Ok(());
                }
                Some(Signal::SIGTTIN) => {
                    self.target += 1;
                    log::info!("SIGTTIN: pool size {}", self.target);
                }
                Some(Signal::SIGTTOU) if self.target > 1 => {
                    self.target -= 1;
                    log::info!("SIGTTOU: pool size {}", self.target);
                    if let Some(pid) = self.workers.keys().next().copied() {
                        let _ = kill(pid, Signal::SIGTERM);
                    }
                }
                Some(Signal::SIGUSR1) => {
                    if let Err(e) = crate::log::init(self.cfg.log.as_deref(), false) {
                        log::error!("SIGUSR1: cannot reopen the log: {e}");
                    } else {
                        log::info!("SIGUSR1: log reopened");
                    }
                }
                Some(Signal::SIGHUP) => {
                    log::warn!(
                        "SIGHUP: reload is not supported yet; restart the daemon to apply changes"
                    );
                }
                _ => {}
            }
            self.reap();
            self.fill()?;
        }
    }

    /// Forks one worker. The child never returns from here.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let master = nix::unistd::getpid();
        self.perl.prepare_to_fork_workers();
        // SAFETY: the master is single-threaded (it never starts threads),
        // so the child may run arbitrary code after fork.
        match unsafe { fork() }.context("fork failed")? {
            ForkResult::Parent { child } => {
                self.workers.insert(child, Instant::now());
                Ok(())
            }
            ForkResult::Child => {
                let _ = signals::unblock(&signals::master_set());
                // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on
                // this process: we get SIGTERM when the master dies.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
                if nix::unistd::getppid() != master {
                    // SAFETY: exiting a forked child without running
                    // the parent's destructors or Perl END blocks.
                    unsafe { libc::_exit(0) };
                }
                let code = match worker::run(self.perl, self.listener, self.cfg) {
                    Ok(()) => 0,
                    Err(e) => {
                        log::error!("worker failed: {e}");
                        1
                    }
                };
                // SAFETY: as above; the worker's state dies with it.
                unsafe { libc::_exit(code) };
            }
        }
    }

    /// Collects exited workers and says why they went.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.forget(pid, &format!("exited with status {code}"), code == 0)
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.forget(pid, &format!("killed by {}", sig.as_str()), false)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    }

    fn forget(&mut self, pid: Pid, how: &str, clean: bool) {
        let Some(born) = self.workers.remove(&pid) else {
            return;
        };
        if clean {
            log::info!("worker {pid} {how}");
        } else {
            log::warn!("worker {pid} {how}; replacing it");
        }
        if !clean && born.elapsed() < Duration::from_secs(1) {
            self.quick_deaths += 1;
        } else {
            self.quick_deaths = 0;
        }
    }

    /// Brings the pool back to its size, slowing down when workers keep
    /// dying right after they start (a broken preload, a crash at init).
    fn fill(&mut self) -> anyhow::Result<()> {
        if self.workers.len() < self.target && self.quick_deaths >= 3 {
            let pause = Duration::from_millis(200 * u64::from(self.quick_deaths.min(25)));
            log::warn!(
                "workers keep dying at start; waiting {} ms before the next one",
                pause.as_millis()
            );
            std::thread::sleep(pause);
        }
        while self.workers.len() < self.target {
            self.spawn()?;
        }
        Ok(())
    }

    /// Asks every worker to stop and waits up to `grace` for them (they
    /// finish the request in hand); then kills what is left.
    fn stop(&mut self, grace: Duration, set: &nix::sys::signal::SigSet) {
        let signal = if grace.is_zero() {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        for pid in self.workers.keys() {
            let _ = kill(*pid, signal);
        }
        let deadline = Instant::now() + grace;
        while !self.workers.is_empty() {
            self.reap_quietly();
            if self.workers.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                log::warn!(
                    "{} workers still busy after {} s; killing them",
                    self.workers.len(),
                    grace.as_secs()
                );
                for pid in self.workers.keys() {
                    let _ = kill(*pid, Signal::SIGKILL);
                }
                while !self.workers.is_empty() {
                    match waitpid(None, None) {
                        Ok(status) => {
                            if let Some(pid) = status.pid() {
                                self.workers.remove(&pid);
                            }
                        }
                        Err(_) => break,
                    }
                }
                break;
            }
            signals::wait(set, (deadline - now).min(Duration::from_millis(200)));
        }
        log::info!("stopped");
    }

    fn reap_quietly(&mut self) {
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            match status.pid() {
                Some(pid) => {
                    self.workers.remove(&pid);
                }
                None => return,
            }
        }
    }
}
