//! The command line: one binary, one subcommand per job.

mod check;
mod compare;
mod request;

use clap::{Parser, Subcommand};

use crate::config::{Config, Settings};

#[derive(Parser)]
#[command(
    name = "fcgi-spawn",
    version,
    about = "Run Perl CGI scripts persistently over FastCGI with an embedded perl",
    long_about = "Run Perl CGI scripts persistently over FastCGI with an embedded perl.\n\n\
        The master loads Perl and the --preload modules once and forks workers that \
        share the compiled code; each request runs the file named by SCRIPT_FILENAME \
        in a fresh package, with CGI semantics. Put it behind nginx with \
        `fastcgi_pass unix:/run/fcgi-spawn.sock;`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (in the foreground; logs go to stderr or --log).
    Run {
        #[command(flatten)]
        settings: Settings,
        /// Log debug messages too.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Send one request to a FastCGI server and print the raw CGI response.
    Request(request::RequestArgs),
    /// Run a request as plain CGI and on a warm persistent worker, and show
    /// the difference or say "identical" (exit 0 identical, 1 different).
    #[command(long_about = compare::ABOUT)]
    Compare(Box<compare::CompareArgs>),
    /// Compile scripts in the interpreter the daemon would use (same config
    /// file and flags, preloads and isolation rules) and report errors with
    /// file and line; exit 0 when all compile, 1 otherwise, 2 on a bad
    /// configuration.
    Check(check::CheckArgs),
    /// Check the configuration (config file + flags); with --print, show
    /// every setting with its effective value as TOML.
    Config {
        #[command(flatten)]
        settings: Settings,
        /// Print the effective configuration, defaults included.
        #[arg(long)]
        print: bool,
    },
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { settings, verbose } => run(settings, verbose),
        Command::Request(args) => request::main(args),
        Command::Compare(args) => compare::main(*args),
        Command::Check(args) => check::main(args),
        Command::Config { settings, print } => check_config(settings, print),
    }
}

fn run(settings: Settings, verbose: bool) -> i32 {
    let cfg = match Config::load(settings.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fcgi-spawn: {e}");
            return 2;
        }
    };
    let log_path = cfg.log.clone();
    if let Err(e) = crate::log::init(log_path.as_deref(), cfg.log_format, verbose) {
        eprintln!("fcgi-spawn: {e}");
        return 2;
    }
    match crate::master::run(cfg, settings) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e:#}");
            if log_path.is_some() {
                eprintln!("fcgi-spawn: {e:#}");
            }
            1
        }
    }
}

fn check_config(settings: Settings, print: bool) -> i32 {
    let file = settings.config.clone();
    let cfg = match Config::load(settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fcgi-spawn: {e}");
            return 2;
        }
    };
    if !print {
        match &file {
            Some(f) => println!("{}: configuration OK", f.display()),
            None => println!("configuration OK"),
        }
        return 0;
    }
    match toml::to_string(&cfg.effective_settings()) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("fcgi-spawn: {e}");
            1
        }
    }
}
