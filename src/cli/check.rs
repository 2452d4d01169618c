//! `fcgi-spawn check SCRIPT...`: compiles scripts in the interpreter the
//! daemon would start (same config file and flags: preloads, preload
//! scripts, environment, roots, extensions, isolation rules), the way
//! `--precompile` compiles them in the master, and reports what does not
//! compile with perl's message (file and line). For deploy pipelines: exit
//! 0 when every script compiles, 1 when one does not (or would not be run:
//! missing, outside the roots, wrong extension), 2 when the configuration
//! or the preloads fail.

use std::path::PathBuf;

use clap::Args;

use crate::config::{Config, Settings};

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    settings: Settings,
    /// Log debug messages too.
    #[arg(long, short)]
    verbose: bool,
    /// Scripts to compile.
    #[arg(required = true, value_name = "SCRIPT")]
    scripts: Vec<PathBuf>,
}

pub fn main(args: CheckArgs) -> i32 {
    let cfg = match Config::load(args.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fcgi-spawn check: {e}");
            return 2;
        }
    };
    // Messages go to stderr, whatever --log says: this is a command.
    if let Err(e) = crate::log::init(None, crate::log::LogFormat::Timestamped, args.verbose) {
        eprintln!("fcgi-spawn check: {e}");
        return 2;
    }
    let perl =
        match crate::master::drop_privileges(&cfg).and_then(|()| crate::runner::start_perl(&cfg)) {
            Ok(perl) => perl,
            Err(e) => {
                eprintln!("fcgi-spawn check: {e:#}");
                return 2;
            }
        };
    let code = match crate::runner::check_scripts(&perl, &cfg, &args.scripts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fcgi-spawn check: {e}");
            2
        }
    };
    // As in the master: no global destruction (the preloads' END blocks).
    std::mem::forget(perl);
    code
}
