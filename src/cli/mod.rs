//! The command line: one binary, one subcommand per job.

mod check;
mod compare;
mod fcgi_spawn;
mod request;
mod status;
mod version;

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
        with CGI semantics: compiled afresh into a new package (perlrun, the default), \
        compiled once and put back after each run (registry), or in a child of the \
        worker (fork). Put it behind nginx with \
        `fastcgi_pass unix:/run/fcgi-spawn/fcgi.sock;` (contrib/ has the recipes).",
    after_help = SIGNALS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (in the foreground; logs go to stderr or --log).
    #[command(after_help = SIGNALS)]
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
    /// Print a running daemon's status page (its status_path, asked over
    /// its socket): pool counters and a row per worker, as text, --json or
    /// --prometheus. Exit 1 when the daemon does not answer.
    Status(status::StatusArgs),
    /// Ask a running daemon for its ping_path: exit 0 on "pong", 1 (with
    /// the reason on stderr) otherwise. For health checks.
    Ping(status::PingArgs),
    /// Check the configuration (config file + flags); with --print, show
    /// every setting with its effective value as TOML.
    Config {
        #[command(flatten)]
        settings: Settings,
        /// Print the effective configuration, defaults included.
        #[arg(long)]
        print: bool,
    },
    /// Run as FCGI::Spawn's fcgi_spawn daemon would: its flags, its
    /// fcgi_spawn.conf and preload scripts (see --help).
    #[command(name = "fcgi_spawn", long_about = fcgi_spawn::ABOUT, disable_help_flag = true)]
    FcgiSpawn {
        /// fcgi_spawn's flags: -c CONFDIR -p PIDFILE -l LOGFILE -u USER -g
        /// GROUP -s SOCKET -pl -e -nd -t SECS [-- run's flags].
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "FLAGS"
        )]
        args: Vec<String>,
    },
}

/// The signals the master answers, for `--help`.
const SIGNALS: &str = "Signals (to the master's pid):\n  \
    TERM, INT   graceful stop: stop listening, finish requests in flight (--grace-time), exit 0\n  \
    QUIT        fast stop: workers are killed at once\n  \
    HUP         reload: read the config again, new workers replace the old ones\n  \
    USR1        reopen the --log file (after logrotate moved it)\n  \
    TTIN, TTOU  one worker more, one fewer";

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    // Installed as `fcgi_spawn` (a symlink): FCGI::Spawn's daemon.
    let called_as = args.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    if called_as == Some("fcgi_spawn") {
        return fcgi_spawn::main(&args[1..]);
    }
    if matches!(args.get(1).map(String::as_str), Some("--version" | "-V")) && args.len() == 2 {
        return version::print();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Run { settings, verbose } => run(settings, verbose),
        Command::Request(args) => request::main(args),
        Command::Compare(args) => compare::main(*args),
        Command::Check(args) => check::main(args),
        Command::Status(args) => status::status_main(args),
        Command::Ping(args) => status::ping_main(args),
        Command::Config { settings, print } => check_config(settings, print),
        Command::FcgiSpawn { args } => fcgi_spawn::main(&args),
    }
}

/// An error and its causes on one line, each cause once: a cause whose
/// text the message already ends with (an OS error a context repeated) is
/// not printed again.
pub fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(settings: Settings, verbose: bool) -> i32 {
    let reloader = crate::reload::Reloader::new(settings.clone());
    run_with_notes(settings, verbose, &[], reloader)
}

/// `run`, with info lines to log once logging is set up (what a migrated
/// configuration asked for that is always so), and where a reload reads
/// the settings again.
fn run_with_notes(
    settings: Settings,
    verbose: bool,
    notes: &[String],
    reloader: crate::reload::Reloader,
) -> i32 {
    let cfg = match Config::load(settings) {
        Ok(c) => c,
        Err(e) => {
            // In the format of the log lines that would have followed.
            let _ = crate::log::init(None, crate::log::LogFormat::Timestamped, verbose);
            log::error!("{e}");
            return 2;
        }
    };
    let log_path = cfg.log.clone();
    if let Err(e) = crate::log::init(log_path.as_deref(), cfg.log_format, verbose) {
        let _ = crate::log::init(None, cfg.log_format, verbose);
        log::error!("{e}");
        return 2;
    }
    if cfg.detach {
        // Before anything else happens: one process, no thread yet.
        let log = log_path.as_deref().expect("detach needs log (checked)");
        if let Err(e) = crate::detach::detach(log) {
            log::error!("cannot detach: {e}");
            eprintln!("fcgi-spawn: cannot detach: {e}");
            return 1;
        }
    }
    for note in notes {
        log::info!("{note}");
    }
    match crate::master::run(cfg, reloader) {
        Ok(()) => 0,
        Err(e) => {
            let message = report(&e);
            log::error!("{message}");
            // A detached start's parent prints it; else the terminal gets
            // it when the log went to a file (a detached master has none).
            if !crate::detach::failed(&message) && log_path.is_some() && !crate::detach::detached()
            {
                eprintln!("fcgi-spawn: {message}");
            }
            1
        }
    }
}

/// `fcgi-spawn config`: everything `run` checks before serving, short of
/// binding the socket: the settings, the users, groups and directories
/// they name, and the interpreter with the preloads (as `run`, switched to
/// `--user` first when started as root).
fn check_config(settings: Settings, print: bool) -> i32 {
    let file = settings.config.clone();
    let cfg = match Config::load(settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fcgi-spawn config: {e}");
            return 2;
        }
    };
    if print {
        return match toml::to_string(&cfg.effective_settings()) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("fcgi-spawn config: {e}");
                1
            }
        };
    }
    // Messages (the preloads' warnings) go to stderr: this is a command.
    if let Err(e) = crate::log::init(None, crate::log::LogFormat::Timestamped, false) {
        eprintln!("fcgi-spawn config: {e}");
        return 2;
    }
    let perl = crate::master::drop_privileges(&cfg).and_then(|()| {
        if let Some(f) = &file {
            crate::reload::warn_if_unreadable(f);
        }
        if let Some(listen) = cfg.listen.as_deref().filter(|l| l.contains('/')) {
            crate::listen::warn_if_socket_dir_unwritable(
                std::path::Path::new(listen),
                "; a socket systemd passes (socket activation) is systemd's to remove",
            );
        }
        crate::runner::start_perl(&cfg)
    });
    match perl {
        Ok(perl) => {
            // As in the master: no global destruction (the preloads' END blocks).
            std::mem::forget(perl);
        }
        Err(e) => {
            eprintln!("fcgi-spawn config: {}", report(&e));
            return 2;
        }
    }
    match &file {
        Some(f) => println!("{}: configuration OK", f.display()),
        None => println!("configuration OK"),
    }
    0
}
