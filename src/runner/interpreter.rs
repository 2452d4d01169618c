//! The interpreter the workers are forked from, set up in steps: started,
//! the daemon's own Perl modules loaded (compiled into the binary, so the
//! daemon needs no files besides itself), the `--preload` modules and
//! `--preload-script` files, `stats`' baseline, a warm-up request and the
//! `--precompile` scripts. Every step is a call through [`PerlSteps`]: no
//! Perl is written here.
//!
//! The master builds one at the start and, at each reload, the next
//! generation's beside the running one; `fcgi-spawn check` builds one
//! without the warm-up and the precompile, to compile scripts in.

use anyhow::{anyhow, bail};

use super::steps::PerlSteps;
use crate::config::Config;
use crate::perl::Interpreter;

/// The daemon's Perl modules, loaded in this order after Boot.pm: (path
/// under perl/, also its %INC key; source).
const PERL_MODULES: &[(&str, &str)] = &[
    (
        "FCGI/Spawn/Symbols.pm",
        include_str!("../../perl/FCGI/Spawn/Symbols.pm"),
    ),
    (
        "FCGI/Spawn/Loader.pm",
        include_str!("../../perl/FCGI/Spawn/Loader.pm"),
    ),
    (
        "FCGI/Spawn/Modules.pm",
        include_str!("../../perl/FCGI/Spawn/Modules.pm"),
    ),
    (
        "FCGI/Spawn/Stats.pm",
        include_str!("../../perl/FCGI/Spawn/Stats.pm"),
    ),
    (
        "FCGI/Spawn/Request.pm",
        include_str!("../../perl/FCGI/Spawn/Request.pm"),
    ),
    (
        "FCGI/Spawn/Compile.pm",
        include_str!("../../perl/FCGI/Spawn/Compile.pm"),
    ),
    (
        "FCGI/Spawn/Restore.pm",
        include_str!("../../perl/FCGI/Spawn/Restore.pm"),
    ),
    (
        "FCGI/Spawn/Registry.pm",
        include_str!("../../perl/FCGI/Spawn/Registry.pm"),
    ),
    (
        "FCGI/Spawn/Runner.pm",
        include_str!("../../perl/FCGI/Spawn/Runner.pm"),
    ),
    ("FCGI/Spawn.pm", include_str!("../../perl/FCGI/Spawn.pm")),
];

/// The interpreter, warmed up and with the `--precompile` scripts compiled:
/// what the workers are forked from (at start, and at each reload, beside
/// the running one). `between` runs between the steps (each module,
/// preload script and precompiled script): a reload lets the master's
/// loop dispatch meanwhile. One that fails is freed without END blocks.
pub fn prepare_perl(cfg: &Config, between: &mut dyn FnMut()) -> anyhow::Result<Interpreter> {
    let perl = Interpreter::start()?;
    between();
    let loaded = load(&perl, cfg, between).and_then(|()| {
        if let Err(e) = super::warm_up(&perl, cfg) {
            log::warn!("warm-up request before forking the workers failed (workers will do that work themselves): {e}");
        }
        between();
        super::precompile(&perl, cfg, between)
    });
    kept_if_loaded(perl, loaded)
}

/// The interpreter the workers inherit: the runner and the preloads
/// loaded (also what `fcgi-spawn check` compiles scripts in). One that
/// fails to load is freed without running END blocks.
pub fn start_perl(cfg: &Config) -> anyhow::Result<Interpreter> {
    let perl = Interpreter::start()?;
    let loaded = load(&perl, cfg, &mut || {});
    kept_if_loaded(perl, loaded)
}

/// An interpreter that failed to load is freed (no END blocks).
fn kept_if_loaded(perl: Interpreter, loaded: anyhow::Result<()>) -> anyhow::Result<Interpreter> {
    match loaded {
        Ok(()) => Ok(perl),
        Err(e) => {
            perl.discard();
            Err(e)
        }
    }
}

/// The daemon's modules, then the user's preloads.
fn load(perl: &Interpreter, cfg: &Config, between: &mut dyn FnMut()) -> anyhow::Result<()> {
    let steps = PerlSteps::new(perl);
    steps
        .boot()
        .map_err(|why| anyhow!("cannot load the embedded FCGI/Spawn/Boot.pm: {why}"))?;
    for (path, source) in PERL_MODULES {
        if let Err(why) = steps.load_embedded(path, source) {
            bail!("cannot load the embedded {path}: {why}");
        }
        between();
    }
    for module in &cfg.preload {
        if let Err(why) = steps.preload_module(module) {
            bail!("--preload {module}: {why}");
        }
        between();
    }
    for script in &cfg.preload_script {
        let path = script.display().to_string();
        if let Err(why) = steps.preload_script(&path) {
            bail!("--preload-script {path}: {why}");
        }
        between();
    }
    if cfg.stats {
        // The baseline every worker forked from here compares with.
        steps
            .stats_start(&cfg.stats_policy)
            .map_err(|why| anyhow!("stats_policy: {why}"))?;
    }
    Ok(())
}
