//! The one typed boundary between the Rust runner and its Perl half
//! (`perl/FCGI/Spawn/Runner.pm`, whose entry points run the steps with
//! Registry.pm, Compile.pm, Restore.pm and Request.pm): the Perl entry
//! points' names, how their arguments are passed and what each outcome
//! means to the runner. Nothing else in the crate names a runner sub or
//! interprets an [`Outcome`] of one.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;

use crate::config::Isolation;
use crate::perl::{DieMode, Interpreter, Outcome};

/// Entry points of perl/FCGI/Spawn/Runner.pm.
mod entry {
    use std::ffi::CStr;

    pub const PRELOAD_SCRIPT: &CStr = c"FCGI::Spawn::Runner::preload_script";
    pub const WARM_UP_BEGIN: &CStr = c"FCGI::Spawn::Runner::warm_up_begin";
    pub const WARM_UP_END: &CStr = c"FCGI::Spawn::Runner::warm_up_end";
    pub const PRECOMPILE_BEGIN: &CStr = c"FCGI::Spawn::Runner::precompile_begin";
    pub const PRECOMPILE_SCRIPT: &CStr = c"FCGI::Spawn::Runner::precompile_script";
    pub const PRECOMPILE_WARM: &CStr = c"FCGI::Spawn::Runner::precompile_warm";
    pub const PRECOMPILE_END: &CStr = c"FCGI::Spawn::Runner::precompile_end";
    pub const INIT_WORKER: &CStr = c"FCGI::Spawn::Runner::init_worker";
    pub const COMPILE_SCRIPT: &CStr = c"FCGI::Spawn::Runner::compile_script";
    pub const BEGIN_REQUEST: &CStr = c"FCGI::Spawn::Runner::begin_request";
    pub const RUN_SCRIPT: &CStr = c"FCGI::Spawn::Runner::run_script";
    pub const RUN_REQUEST: &CStr = c"FCGI::Spawn::Runner::run_request";
    pub const RUN_END_BLOCKS: &CStr = c"FCGI::Spawn::Runner::run_end_blocks";
    pub const FINISH_REQUEST: &CStr = c"FCGI::Spawn::Runner::finish_request";
    pub const END_REQUEST: &CStr = c"FCGI::Spawn::Runner::end_request";
    /// Called by the glue, not from here: where a child a script forked
    /// ends, where a fork-mode request's child ends, the slowlog's
    /// backtrace (`boot` hands the names over).
    pub const END_FORKED_CHILD: &CStr = c"FCGI::Spawn::Runner::end_forked_child";
    pub const END_REQUEST_CHILD: &CStr = c"FCGI::Spawn::Runner::end_request_child";
    pub const SLOW_REQUEST: &CStr = c"FCGI::Spawn::Runner::slow_request";
    /// perl/FCGI/Spawn/Stats.pm: `stats` on, with its policy.
    pub const STATS_START: &CStr = c"FCGI::Spawn::Stats::start";
    /// perl/FCGI/Spawn/Boot.pm: one of the daemon's own modules.
    pub const LOAD_EMBEDDED: &CStr = c"FCGI::Spawn::Boot::load_embedded";
    /// perl/FCGI/Spawn/Boot.pm: a `--preload` module.
    pub const PRELOAD_MODULE: &CStr = c"FCGI::Spawn::Boot::preload_module";
}

/// perl/FCGI/Spawn/Boot.pm, the first code a new interpreter runs (it
/// defines `LOAD_EMBEDDED` and `PRELOAD_MODULE`); its errors name the file.
const BOOT: &str = concat!(
    "#line 1 \"FCGI/Spawn/Boot.pm\"\n",
    include_str!("../../perl/FCGI/Spawn/Boot.pm")
);

/// A step that did not return normally: the exit status it stands for
/// (the script's own `exit`, or 255 for a `die`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended(pub i32);

/// How the state after a request was put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The worker may serve again; `signals_touched`: the script changed
    /// %SIG entries that were put back, so the worker's own signal
    /// handlers must be installed again.
    Clean { signals_touched: bool },
    /// It may not: the reason, for the log. The worker is replaced.
    Unclean(String),
}

/// What a worker is told at its start, and what a precompile compiles
/// with: the daemon's environment variables scripts see, those set for
/// every script, and the --root directories (each ending in '/'), where
/// the site's own files live.
pub struct WorkerSettings<'c> {
    pub pass_env: &'c [String],
    pub env: &'c [(String, String)],
    pub roots: Vec<Vec<u8>>,
}

impl<'c> WorkerSettings<'c> {
    pub fn new(
        pass_env: &'c [String],
        env: &'c [(String, String)],
        policy: &crate::path_policy::PathPolicy,
    ) -> WorkerSettings<'c> {
        let roots = policy
            .roots()
            .iter()
            .map(|r| {
                let mut b = r.as_os_str().as_bytes().to_vec();
                b.push(b'/');
                b
            })
            .collect();
        WorkerSettings {
            pass_env,
            env,
            roots,
        }
    }

    /// As the Perl side's `worker_settings` reads them.
    fn args(&self) -> Vec<&[u8]> {
        let mut args: Vec<&[u8]> = self.pass_env.iter().map(|n| n.as_bytes()).collect();
        args.push(b"--");
        for (name, value) in self.env {
            args.push(name.as_bytes());
            args.push(value.as_bytes());
        }
        args.push(b"--");
        args.extend(self.roots.iter().map(Vec::as_slice));
        args
    }
}

/// How a script ran: its exit status, and whether END blocks wait to run
/// (`run_end_blocks`; when it did not return normally, they may). A
/// registry script that cannot run twice in one process did not run at
/// all: `in_child` says the request is for a child to run, as in fork
/// isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ran {
    pub status: i32,
    pub end_blocks_due: bool,
    pub in_child: bool,
    /// A registry script met for the first time: nothing ran; compile it
    /// (`compile_script`) and ask again.
    pub compile_first: bool,
}

/// A script compiled ahead of its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Its compiled sub is cached, in its package.
    Cached,
    /// Its named subs keep file-scoped lexicals: in registry isolation it
    /// runs in a child per request, as in fork isolation (the log says
    /// which).
    RunsInChild,
}

/// The runner's calls into Perl.
pub struct PerlSteps<'p> {
    perl: &'p Interpreter,
}

impl<'p> PerlSteps<'p> {
    pub fn new(perl: &'p Interpreter) -> PerlSteps<'p> {
        PerlSteps { perl }
    }

    pub fn perl(&self) -> &'p Interpreter {
        self.perl
    }

    /// In a new interpreter, before any other step: Boot.pm, which loads
    /// the rest.
    pub fn boot(&self) -> Result<(), String> {
        self.perl.set_glue_callbacks(
            entry::END_FORKED_CHILD,
            entry::END_REQUEST_CHILD,
            entry::SLOW_REQUEST,
        );
        ran(self.perl.eval(BOOT))
    }

    /// One of the daemon's own modules, compiled from `source` as the file
    /// `path` (its %INC key, e.g. FCGI/Spawn/Runner.pm).
    pub fn load_embedded(&self, path: &str, source: &str) -> Result<(), String> {
        let args = [path.as_bytes(), source.as_bytes()];
        ran(self.call(entry::LOAD_EMBEDDED, &args, DieMode::Trap))
    }

    /// In the master: loads a `--preload` module (its name checked by the
    /// configuration).
    pub fn preload_module(&self, module: &str) -> Result<(), String> {
        ran(self.call(entry::PRELOAD_MODULE, &[module.as_bytes()], DieMode::Trap))
    }

    /// In the master: runs a `--preload-script` file.
    pub fn preload_script(&self, path: &str) -> Result<(), String> {
        ran(self.call(entry::PRELOAD_SCRIPT, &[path.as_bytes()], DieMode::Trap))
    }

    /// In the master, after the preloads: `stats` on, comparing these
    /// stat fields; records the loaded modules' files.
    pub fn stats_start(&self, fields: &[String]) -> Result<(), String> {
        let args: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
        self.internal(entry::STATS_START, &args)
    }

    /// Before the master's warm-up requests: the base state a worker's
    /// requests start from, taken with the workers' settings (so that a
    /// worker finds it as it would take it, and keeps the master's copy).
    pub fn warm_up_begin(&self, worker: &WorkerSettings) -> Result<(), String> {
        self.internal(entry::WARM_UP_BEGIN, &worker.args())
    }

    pub fn warm_up_end(&self, script: &[u8]) -> Result<(), String> {
        self.internal(entry::WARM_UP_END, &[script])
    }

    /// Once per worker: which of the daemon's environment variables
    /// scripts see, the ones set for every script, and the --root
    /// directories (each ending in '/'), where the site's own files live.
    pub fn init_worker(&self, worker: &WorkerSettings) -> Result<(), String> {
        self.internal(entry::INIT_WORKER, &worker.args())
    }

    /// Before precompiling scripts (in the master, or for `check`): the
    /// environment a worker's scripts compile in.
    pub fn precompile_begin(&self, worker: &WorkerSettings) -> Result<(), String> {
        self.internal(entry::PRECOMPILE_BEGIN, &worker.args())
    }

    /// Between `begin_request` and `finish_request`, instead of
    /// `run_script`: compiles the script into the registry, as a worker's
    /// first request for it would in `isolation` (registry or fork).
    pub fn precompile_script(&self, isolation: Isolation) -> Result<Compiled, String> {
        match self.call(
            entry::PRECOMPILE_SCRIPT,
            &[isolation.as_str().as_bytes()],
            DieMode::Trap,
        ) {
            Outcome::Returned(2) => Ok(Compiled::RunsInChild),
            Outcome::Returned(_) => Ok(Compiled::Cached),
            Outcome::Died(msg) => Err(msg),
            Outcome::Exited(code) => Err(format!("called exit({code}) while compiling")),
        }
    }

    /// After `precompile_script` cached a registry script: its steps are
    /// then a registry request's, for a warm run (`run_script`,
    /// `run_end_blocks`) before `finish_request`.
    pub fn precompile_warm(&self) -> Result<(), String> {
        self.internal(entry::PRECOMPILE_WARM, &[])
    }

    pub fn precompile_end(&self) -> Result<(), String> {
        self.internal(entry::PRECOMPILE_END, &[])
    }

    /// In the worker before the request (`fork` mode; a registry script
    /// met for the first time): compiles the script (cached), with the
    /// request's environment for what compiling runs. An error or an exit
    /// is not the client's answer, nor what compiling printed: the run
    /// compiles again and meets them as the script would under CGI.
    #[inline(never)] // a step of its own in bench/cost's profile
    pub fn compile_script(
        &self,
        script: &[u8],
        isolation: Isolation,
        params: &[&[u8]],
    ) -> Result<(), String> {
        self.perl.set_request_env(params);
        let compiled = self.internal(
            entry::COMPILE_SCRIPT,
            &[script, isolation.as_str().as_bytes()],
        );
        self.perl.take_pending_output(|_| ());
        compiled
    }

    /// Sets up the request: environment, cwd, std handles. `params` are the
    /// FastCGI params as NAME, VALUE, NAME, VALUE...
    #[inline(never)] // a step of its own in bench/cost's profile
    pub fn begin_request(
        &self,
        script: &[u8],
        isolation: Isolation,
        params: &[&[u8]],
    ) -> Result<(), Ended> {
        self.perl.set_request_env(params);
        self.step(
            entry::BEGIN_REQUEST,
            &[script, isolation.as_str().as_bytes()],
        )
    }

    /// The script itself, with `die` as in a perl program. Returns its exit
    /// status (0 when it fell off its end).
    #[inline(never)] // a step of its own in bench/cost's profile
    pub fn run_script(&self) -> i32 {
        self.script_outcome(self.perl.call(entry::RUN_SCRIPT, &[], DieMode::AsProgram))
            .status
    }

    /// A worker's request in one call: `begin_request`, then the script,
    /// with `die` as in a perl program (also one in the set-up).
    #[inline(never)] // a step of its own in bench/cost's profile
    pub fn run_request(
        &self,
        script: &[u8],
        isolation: Isolation,
        params: &[&[u8]],
        compiled: bool,
    ) -> Ran {
        self.perl.set_request_env(params);
        let compiled: &[u8] = if compiled { b"1" } else { b"" };
        self.script_outcome(self.perl.call(
            entry::RUN_REQUEST,
            &[script, isolation.as_str().as_bytes(), compiled],
            DieMode::AsProgram,
        ))
    }

    fn script_outcome(&self, outcome: Outcome) -> Ran {
        match outcome {
            Outcome::Returned(2) => Ran {
                in_child: true,
                ..Ran::default()
            },
            Outcome::Returned(3) => Ran {
                compile_first: true,
                ..Ran::default()
            },
            Outcome::Returned(due) => Ran {
                end_blocks_due: due != 0,
                ..Ran::default()
            },
            Outcome::Exited(code) => Ran {
                status: code,
                end_blocks_due: true,
                ..Ran::default()
            },
            Outcome::Died(msg) => {
                log::error!("{msg}");
                Ran {
                    status: 255,
                    end_blocks_due: true,
                    ..Ran::default()
                }
            }
        }
    }

    #[inline(never)] // a step of its own in bench/cost's profile
    pub fn run_end_blocks(&self) {
        let _ = self.step(entry::RUN_END_BLOCKS, &[]);
    }

    /// What process exit does before the response is complete.
    #[inline(never)] // a step of its own in bench/cost's profile
    pub fn finish_request(&self) {
        let _ = self.step(entry::FINISH_REQUEST, &[]);
    }

    /// After the response: puts the interpreter back and checks it.
    #[inline(never)] // a step of its own in bench/cost's profile
    pub fn end_request(&self) -> Restored {
        match self.perl.call(entry::END_REQUEST, &[], DieMode::Trap) {
            Outcome::Returned(signals) => Restored::Clean {
                signals_touched: signals != 0,
            },
            Outcome::Died(reason) => Restored::Unclean(reason),
            Outcome::Exited(code) => {
                Restored::Unclean(format!("restoring the state called exit({code})"))
            }
        }
    }

    /// A runner step with `die` trapped; Err(Ended) when it did not return
    /// (a `die` is logged).
    fn step(&self, name: &'static CStr, args: &[&[u8]]) -> Result<(), Ended> {
        match self.call(name, args, DieMode::Trap) {
            Outcome::Returned(_) => Ok(()),
            Outcome::Exited(code) => Err(Ended(code)),
            Outcome::Died(msg) => {
                log::error!("{}: {msg}", name.to_string_lossy());
                Err(Ended(255))
            }
        }
    }

    /// A call that must simply work; the error says which and why.
    fn internal(&self, name: &'static CStr, args: &[&[u8]]) -> Result<(), String> {
        match self.call(name, args, DieMode::Trap) {
            Outcome::Returned(_) => Ok(()),
            Outcome::Died(msg) => Err(format!("{}: {msg}", name.to_string_lossy())),
            Outcome::Exited(code) => Err(format!("{}: exit({code})", name.to_string_lossy())),
        }
    }

    fn call(&self, name: &'static CStr, args: &[&[u8]], die_mode: DieMode) -> Outcome {
        self.perl.call(name, args, die_mode)
    }
}

/// A step that loads or runs the user's code (or ours, from source): its
/// `die` message, or the `exit` it called, is the error.
fn ran(outcome: Outcome) -> Result<(), String> {
    match outcome {
        Outcome::Returned(_) => Ok(()),
        Outcome::Died(msg) => Err(msg),
        Outcome::Exited(code) => Err(format!("called exit({code})")),
    }
}
