//! The oracle: the request run as a plain CGI process, the way a CGI server
//! runs it. The script is run by the perl whose libperl the daemon embeds
//! (a `-T` on its `#!` line passed on, as perl requires), in the script's
//! directory, with an environment of the daemon's base variables (those
//! `pass_env` lets through, then `env`) plus the request's CGI params, an
//! isindex query as its arguments, the body on stdin, and stdout read until
//! every process holding it has closed it. It runs in a process group of
//! its own, killed whole when it runs past the time limit.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::cleanup::GroupGuard;
use crate::cli::request::CgiRequest;

/// The perl `compare` runs plain CGI with: the one fcgi-spawn embeds.
pub const EMBEDDED_PERL: &str = env!("FCGI_SPAWN_PERL");

/// What a plain CGI run gave.
pub struct CgiRun {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code, or 128 + the signal that killed it.
    pub exit: i32,
}

/// How a plain CGI run is set up, the same for every run of one comparison.
pub struct CgiRunner {
    pub perl: PathBuf,
    /// The daemon's base environment: `pass_env` variables, then `env`.
    pub base_env: Vec<(String, String)>,
    /// File holding the request body (stdin), if there is one.
    pub body_file: Option<PathBuf>,
    pub timeout: Duration,
    /// The configured `user`, when `compare` runs as root: plain CGI runs
    /// as that user too, as the daemon's scripts do.
    pub run_as: Option<RunAs>,
}

/// A user to run plain CGI as: what `initgroups`, `setgid` and `setuid`
/// get, looked up before any fork.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
}

impl RunAs {
    /// The configured `user` (and `group`), as `run` switches to them.
    pub fn lookup(user: &str, group: Option<&str>) -> anyhow::Result<RunAs> {
        use nix::unistd::{Group, User};
        let found = User::from_name(user)?
            .ok_or_else(|| anyhow::anyhow!("user = {user:?}: no such user"))?;
        let gid = match group {
            Some(g) => {
                Group::from_name(g)?
                    .ok_or_else(|| anyhow::anyhow!("group = {g:?}: no such group"))?
                    .gid
            }
            None => found.gid,
        };
        let cname = std::ffi::CString::new(user)?;
        let groups = nix::unistd::getgrouplist(&cname, gid)?;
        Ok(RunAs {
            name: user.to_string(),
            uid: found.uid.as_raw(),
            gid: gid.as_raw(),
            groups: groups.iter().map(|g| g.as_raw()).collect(),
        })
    }
}

/// The base environment the daemon gives every script: the variables of
/// `pass_env` set in this process's environment, then `env`.
pub fn base_env(pass_env: &[String], env: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pass_env
        .iter()
        .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)))
        .collect();
    for (name, value) in env {
        out.retain(|(n, _)| n != name);
        out.push((name.clone(), value.clone()));
    }
    out
}

/// The script's arguments for an isindex query (no '='): words split on
/// '+', %XX decoded (RFC 3875, 4.4), as CGI servers and the daemon do.
pub fn isindex_args(query: &str) -> Vec<Vec<u8>> {
    if query.is_empty() || query.contains('=') {
        return Vec::new();
    }
    query.split('+').map(percent_decode).collect()
}

fn percent_decode(word: &str) -> Vec<u8> {
    let b = word.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// perl refuses a `-T` (or `-t`) on the `#!` line that it was not given on
/// its command line: the switch to pass.
pub fn taint_switch(first_line: &[u8]) -> Option<&'static str> {
    let line = std::str::from_utf8(first_line).ok()?;
    let switches = line.strip_prefix("#!")?.split_once("perl")?.1;
    let switches = switches.split_once(char::is_whitespace)?.1;
    for word in switches.split_whitespace() {
        let Some(letters) = word.strip_prefix('-') else {
            continue;
        };
        if letters.contains('T') {
            return Some("-T");
        }
        if letters.contains('t') {
            return Some("-t");
        }
    }
    None
}

/// The child becomes `user` (groups, gid, uid, in that order, as `run`
/// does) and then enters the script's directory as that user, as a CGI
/// server's child does.
fn switch_user_in_child(command: &mut Command, user: &RunAs, dir: &Path) -> anyhow::Result<()> {
    let groups = user.groups.clone();
    let (uid, gid) = (user.uid, user.gid);
    let dir = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: between fork and exec the closure makes only system calls
    // (setgroups, setgid, setuid, chdir) on data prepared before the fork,
    // no allocation and no lock, so it is safe in a child of a process
    // with threads.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // A directory the user cannot enter: perl then cannot open the
            // script either, and says so, as under a CGI server.
            libc::chdir(dir.as_ptr());
            Ok(())
        });
    }
    Ok(())
}

impl CgiRunner {
    pub fn run(&self, script: &Path, request: &CgiRequest) -> anyhow::Result<CgiRun> {
        let dir = script.parent().unwrap_or(Path::new("/"));
        let first_line: Vec<u8> = std::fs::read(script)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", script.display()))?
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_default()
            .to_vec();
        let mut command = Command::new(&self.perl);
        command.args(taint_switch(&first_line));
        command.arg(script);
        command.args(
            isindex_args(&request.query)
                .iter()
                .map(|a| std::ffi::OsStr::from_bytes(a)),
        );
        match &self.run_as {
            Some(user) => switch_user_in_child(&mut command, user, dir)?,
            None => {
                command.current_dir(dir);
            }
        }
        command
            .env_clear()
            .envs(self.base_env.iter().cloned())
            .envs(request.params()?)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        match &self.body_file {
            Some(f) => command.stdin(std::fs::File::open(f)?),
            None => command.stdin(Stdio::null()),
        };
        let mut child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", self.perl.display()))?;
        let group = GroupGuard::new(Pid::from_raw(child.id() as i32));
        let (done, finished) = mpsc::channel();
        let mut readers = Vec::new();
        for mut pipe in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let done = done.clone();
            readers.push(std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                let _ = done.send(());
                bytes
            }));
        }
        // Both pipes at EOF: every holder of stdout and stderr closed them.
        let deadline = Instant::now() + self.timeout;
        let mut at_eof = 0;
        let mut timed_out = false;
        while at_eof < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match finished.recv_timeout(left) {
                Ok(()) => at_eof += 1,
                Err(_) => {
                    timed_out = true;
                    group.kill();
                    break;
                }
            }
        }
        // A script may go on after closing its output, as under a CGI
        // server; it gets the rest of the time limit.
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                group.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Nothing it started outlives the comparison.
        group.kill();
        let mut out = readers.into_iter().map(|r| r.join().unwrap_or_default());
        let (stdout, stderr) = (
            out.next().unwrap_or_default(),
            out.next().unwrap_or_default(),
        );
        if timed_out {
            anyhow::bail!(
                "the plain CGI run of {} did not finish within {} s (--timeout); its stderr:\n{}",
                script.display(),
                self.timeout.as_secs(),
                super::daemon::indent(&String::from_utf8_lossy(&stderr))
            );
        }
        let exit = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Ok(CgiRun {
            stdout,
            stderr,
            exit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isindex_queries_become_arguments() {
        assert_eq!(
            isindex_args("a+b%20c+%zz"),
            vec![b"a".to_vec(), b"b c".to_vec(), b"%zz".to_vec()]
        );
        assert!(isindex_args("a=1").is_empty());
        assert!(isindex_args("").is_empty());
    }

    #[test]
    fn taint_switches_on_the_shebang_line() {
        assert_eq!(taint_switch(b"#!/usr/bin/perl -wT"), Some("-T"));
        assert_eq!(taint_switch(b"#!/usr/bin/perl -t -w"), Some("-t"));
        assert_eq!(taint_switch(b"#!/usr/bin/perl -w"), None);
        assert_eq!(taint_switch(b"#!/usr/bin/perl"), None);
        assert_eq!(taint_switch(b"use strict; # -T"), None);
    }

    #[test]
    fn base_environment_is_pass_env_then_env() {
        // PATH is set in any test environment.
        let path = std::env::var("PATH").unwrap();
        let env = base_env(
            &["PATH".into(), "FCGI_SPAWN_SURELY_UNSET".into()],
            &[("SITE".into(), "x".into()), ("PATH".into(), "/bin".into())],
        );
        assert!(!path.is_empty());
        assert_eq!(
            env,
            vec![("SITE".into(), "x".into()), ("PATH".into(), "/bin".into())]
        );
    }
}
