//! Requests the master runs on itself before forking the workers.
//!
//! The first request in a fresh process does lazy work (method caches, the
//! runner's own caches) that writes to pages shared with the master; done
//! here, every worker shares it instead of copying those pages (about
//! 0.6 MB less private memory per worker for a CGI.pm hello world).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::steps::{PerlSteps, WorkerSettings};
use crate::config::{Config, Isolation};
use crate::fds::{dup2, dup_above_std};
use crate::path_policy::PathPolicy;
use crate::perl::Interpreter;

/// What the warm-up runs: CGI.pm's usual calls when it is preloaded, plain
/// prints otherwise. `escapeHTML` loads HTML::Entities and HTML::Parser on
/// first use: loaded here, they are shared, and a `fork` mode child does
/// not load them again on every request (3-4 ms each).
const WARM_UP_SCRIPT: &str = "use strict;\nuse warnings;\n\
BEGIN { CGI->import if $INC{'CGI.pm'} }\n\
my $q = $INC{'CGI.pm'} ? CGI->new : undef;\n\
print $q ? $q->header('text/plain') : \"Content-Type: text/plain\\r\\n\\r\\n\";\n\
print 'warm-up ', ($q ? $q->param('x') // '' : ''), \"\\n\";\n\
print $q->escapeHTML('<warm-up>'), \"\\n\" if $q;\n";

/// In the master, after the preload and before any fork: runs the request
/// cycle twice in each in-process isolation mode on a small script, output
/// discarded.
pub fn warm_up(perl: &Interpreter, cfg: &Config) -> io::Result<()> {
    let dir = std::env::temp_dir().join(format!("fcgi-spawn-warm-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let policy = PathPolicy::of(cfg);
    let worker = WorkerSettings::new(&cfg.pass_env, &cfg.env, &policy);
    let result = warm_up_in(&PerlSteps::new(perl), &worker, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn warm_up_in(steps: &PerlSteps, worker: &WorkerSettings, dir: &Path) -> io::Result<()> {
    let script = dir.join("warm-up.pl");
    std::fs::write(&script, WARM_UP_SCRIPT)?;
    let script = script.as_os_str().as_bytes();
    let fds = MasterStdFds::save()?;
    let failed = |what: &str| io::Error::other(format!("warm-up request: {what}"));
    steps.warm_up_begin(worker).map_err(io::Error::other)?;
    let mut outcome = Ok(());
    for isolation in [Isolation::Perlrun, Isolation::Registry] {
        for _ in 0..2 {
            fds.park()?;
            let params: [&[u8]; 6] = [
                b"REQUEST_METHOD",
                b"GET",
                b"QUERY_STRING",
                b"x=1",
                b"SCRIPT_FILENAME",
                script,
            ];
            if steps.begin_request(script, isolation, &params).is_err() {
                outcome = outcome.and(Err(failed("begin_request")));
            } else if steps.run_script() != 0 {
                outcome = outcome.and(Err(failed("the script")));
            }
            steps.run_end_blocks();
            steps.finish_request();
            steps.perl().take_pending_output(|_| ());
            if let super::Restored::Unclean(reason) = steps.end_request() {
                outcome = outcome.and(Err(failed(&reason)));
            }
        }
    }
    let ended = steps.warm_up_end(script).map_err(io::Error::other);
    fds.restore()?;
    outcome.and(ended)
}

/// The master's own descriptors 0 and 1, put aside while it runs request
/// steps on itself (warm-up, precompile): those steps bind STDIN and
/// STDOUT to fds 0 and 1 and close them after.
pub(super) struct MasterStdFds {
    saved: [OwnedFd; 2],
    dev_null: std::fs::File,
}

impl MasterStdFds {
    pub(super) fn save() -> io::Result<MasterStdFds> {
        Ok(MasterStdFds {
            saved: [dup_above_std(0)?, dup_above_std(1)?],
            dev_null: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?,
        })
    }

    /// Before a request's steps: 0 and 1 on /dev/null.
    pub(super) fn park(&self) -> io::Result<()> {
        dup2(self.dev_null.as_raw_fd(), 0)?;
        dup2(self.dev_null.as_raw_fd(), 1)
    }

    /// The master's own back.
    pub(super) fn restore(self) -> io::Result<()> {
        dup2(self.saved[0].as_raw_fd(), 0)?;
        dup2(self.saved[1].as_raw_fd(), 1)
    }
}
