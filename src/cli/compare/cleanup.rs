//! Nothing `compare` starts outlives it: its daemons, the process groups of
//! its plain CGI runs and its temp directory are registered here while
//! they exist. The normal path ends each one itself (a guard's `Drop`);
//! INT, TERM, HUP and QUIT are taken by a thread of their own
//! (`sigwait`), which ends whatever is still registered and exits. The
//! registry's lock is held while a guard ends its process, so the two
//! paths never both act on one pid.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

struct Registered {
    daemons: Vec<Pid>,
    groups: Vec<Pid>,
    dirs: Vec<PathBuf>,
}

static REGISTERED: Mutex<Registered> = Mutex::new(Registered {
    daemons: Vec::new(),
    groups: Vec::new(),
    dirs: Vec::new(),
});

fn registered() -> MutexGuard<'static, Registered> {
    REGISTERED.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a daemon may take to stop after TERM before it gets KILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long its workers may outlive it before they get KILL.
const WORKERS_GRACE: Duration = Duration::from_secs(3);

/// Blocks INT, TERM, HUP and QUIT in the calling thread and starts the
/// thread that takes them. Call it before any other thread starts (they
/// inherit the mask); children get a clean mask from `Command`.
pub fn catch_signals() -> anyhow::Result<()> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set.thread_block()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(signal) = set.wait() {
                interrupted(signal)
            }
        })?;
    Ok(())
}

fn interrupted(signal: Signal) -> ! {
    let r = registered();
    for group in &r.groups {
        let _ = killpg(*group, Signal::SIGKILL);
    }
    for pid in &r.daemons {
        stop_daemon(*pid, Duration::from_secs(2));
    }
    for dir in &r.dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    eprintln!("fcgi-spawn compare: {signal}: stopped");
    std::process::exit(128 + signal as i32);
}

/// A daemon `compare` started; `stop` or `Drop` ends it.
pub struct DaemonGuard(Option<Pid>);

impl DaemonGuard {
    pub fn new(pid: Pid) -> DaemonGuard {
        registered().daemons.push(pid);
        DaemonGuard(Some(pid))
    }

    /// TERM, then KILL after a grace time; its workers likewise.
    pub fn stop(&mut self) {
        if let Some(pid) = self.0.take() {
            let mut r = registered();
            r.daemons.retain(|p| *p != pid);
            stop_daemon(pid, STOP_GRACE);
        }
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ends `pid` (a child of this process) and then its workers: TERM, KILL
/// after `grace`; workers still there `WORKERS_GRACE` after it exited get
/// KILL.
fn stop_daemon(pid: Pid, grace: Duration) {
    let workers = children_of(pid);
    if kill(pid, Signal::SIGTERM).is_ok() && !reaped_within(pid, grace) {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
    let deadline = Instant::now() + WORKERS_GRACE;
    let mut left: Vec<Pid> = workers;
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|w| kill(*w, None) != Err(Errno::ESRCH));
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in left {
        let _ = kill(w, Signal::SIGKILL);
    }
}

/// Whether `pid` exited (and was reaped) within `limit`.
pub fn reaped_within(pid: Pid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) | Err(_) => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids whose parent is `pid`, from /proc.
pub fn children_of(pid: Pid) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| parent_in_stat(&stat))
                == Some(pid.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// The parent pid in a /proc/PID/stat line (the field after the state,
/// which follows the parenthesised command name).
fn parent_in_stat(stat: &str) -> Option<i32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// A running plain CGI process group, killed if `compare` is interrupted.
pub struct GroupGuard(Pid);

impl GroupGuard {
    pub fn new(group: Pid) -> GroupGuard {
        registered().groups.push(group);
        GroupGuard(group)
    }

    /// Kills every process left in the group.
    pub fn kill(&self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        registered().groups.retain(|g| *g != self.0);
    }
}

/// A temp directory, removed with everything in it.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> anyhow::Result<TempDir> {
        let template = std::env::temp_dir().join("fcgi-spawn-compare-XXXXXX");
        let mut r = registered();
        let dir = nix::unistd::mkdtemp(&template)
            .map_err(|e| anyhow::anyhow!("cannot create a temp dir {}: {e}", template.display()))?;
        r.dirs.push(dir.clone());
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let mut r = registered();
        r.dirs.retain(|d| *d != self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_from_stat_even_with_odd_command_names() {
        assert_eq!(parent_in_stat("123 (perl) S 45 123 123 0"), Some(45));
        assert_eq!(parent_in_stat("123 (a) b (c) R 7 1 1"), Some(7));
        assert_eq!(parent_in_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_among_its_parents_children() {
        let me = Pid::this();
        assert!(children_of(nix::unistd::getppid()).contains(&me));
    }
}
