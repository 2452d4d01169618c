//! `fcgi-spawn status` and `fcgi-spawn ping`: ask a running daemon, over
//! its own socket, for its `status_path` or `ping_path` page, as a web
//! server would; found from the same `--config` / `--listen` the daemon
//! runs with (or `--connect`). For health checks and for a look at the
//! pool without a web server or `cgi-fcgi`.
//!
//! Exit codes: 0 the daemon answered (ping: `pong`); 1 it did not (not
//! running, no answer within `--timeout`, the page is not configured in
//! the daemon); 2 the command line or configuration is wrong.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::request::CgiRequest;
use crate::config::Settings;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
    /// JSON instead of text.
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Prometheus text exposition instead of text.
    #[arg(long)]
    prometheus: bool,
    /// Text of the pool only, without the row per worker.
    #[arg(long, conflicts_with_all = ["json", "prometheus"])]
    brief: bool,
}

#[derive(Args)]
pub struct PingArgs {
    #[command(flatten)]
    common: Common,
}

/// How to reach the daemon: its own settings, or `--connect`.
#[derive(Args)]
struct Common {
    /// The daemon's config file: its `listen`, `status_path`, `ping_path`.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// The daemon's socket: a path (contains '/') or HOST:PORT.
    #[arg(long, value_name = "PATH | HOST:PORT", visible_alias = "connect")]
    listen: Option<String>,
    /// The daemon's status_path [default: from --config].
    #[arg(long, value_name = "PATH")]
    status_path: Option<String>,
    /// The daemon's ping_path [default: from --config].
    #[arg(long, value_name = "PATH")]
    ping_path: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    timeout: f64,
}

/// What went wrong, and the exit code it gets.
struct Failed(i32, String);

impl Common {
    /// The socket and the page's path, from the flags over the config file.
    fn target(&self, status: bool) -> Result<(String, String), Failed> {
        let flags = Settings {
            config: self.config.clone(),
            listen: self.listen.clone(),
            status_path: self.status_path.clone(),
            ping_path: self.ping_path.clone(),
            ..Settings::default()
        };
        let s = flags
            .with_config_file()
            .map_err(|e| Failed(2, e.to_string()))?;
        let listen = s.listen.ok_or_else(|| {
            Failed(
                2,
                "no socket to ask: give --listen (or --connect) or a --config with listen".into(),
            )
        })?;
        let (key, path) = match status {
            true => ("status_path", s.status_path),
            false => ("ping_path", s.ping_path),
        };
        let path = path.ok_or_else(|| {
            Failed(
                1,
                format!(
                    "{key} is not configured: set it in the daemon's config (e.g. {key} = \"/fcgi-{}\") \
                     and give the same --config here, or pass --{}",
                    if status { "status" } else { "ping" },
                    key.replace('_', "-")
                ),
            )
        })?;
        Ok((listen, path))
    }

    /// Sends the request for `path?query`; returns the status and body.
    fn ask(&self, listen: &str, path: &str, query: &str) -> Result<(u16, Vec<u8>), Failed> {
        let request = CgiRequest {
            script_filename: path.to_string(),
            query: query.to_string(),
            extra_params: vec![
                format!("SCRIPT_NAME={path}"),
                format!(
                    "REQUEST_URI={path}{}{query}",
                    if query.is_empty() { "" } else { "?" }
                ),
            ],
            ..CgiRequest::default()
        };
        let timeout = Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                Failed(
                    2,
                    format!("--timeout {}: not a positive number", self.timeout),
                )
            })?;
        let response = request.send(listen, Some(timeout)).map_err(|e| {
            let timed_out = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                })
            });
            if timed_out {
                Failed(1, format!("{listen}: no answer within {} s", self.timeout))
            } else {
                Failed(1, format!("{e:#} (is the daemon running?)"))
            }
        })?;
        let out = response.stdout;
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
            .unwrap_or(out.len());
        Ok((crate::cgi::status(&out[..split]), out[split..].to_vec()))
    }
}

fn report(command: &str, result: Result<i32, Failed>) -> i32 {
    match result {
        Ok(code) => code,
        Err(Failed(code, message)) => {
            eprintln!("fcgi-spawn {command}: {message}");
            code
        }
    }
}

fn not_served(listen: &str, key: &str, path: &str, status: u16) -> Failed {
    Failed(
        1,
        format!(
            "{listen} answered {path} with status {status}: is {key} = \"{path}\" in the daemon's configuration?"
        ),
    )
}

pub fn status_main(args: StatusArgs) -> i32 {
    report("status", status(&args))
}

fn status(args: &StatusArgs) -> Result<i32, Failed> {
    let (listen, path) = args.common.target(true)?;
    let query = match (args.json, args.prometheus, args.brief) {
        (true, _, _) => "json",
        (_, true, _) => "prometheus",
        (_, _, true) => "",
        _ => "full",
    };
    let (code, body) = args.common.ask(&listen, &path, query)?;
    if code != 200 {
        return Err(not_served(&listen, "status_path", &path, code));
    }
    let mut out = std::io::stdout();
    out.write_all(&body)
        .and_then(|()| out.flush())
        .map_err(|e| Failed(1, e.to_string()))?;
    Ok(0)
}

pub fn ping_main(args: PingArgs) -> i32 {
    report("ping", ping(&args))
}

fn ping(args: &PingArgs) -> Result<i32, Failed> {
    let (listen, path) = args.common.target(false)?;
    let (code, body) = args.common.ask(&listen, &path, "")?;
    if code != 200 {
        return Err(not_served(&listen, "ping_path", &path, code));
    }
    if body.trim_ascii() != b"pong" {
        return Err(Failed(
            1,
            format!(
                "{listen} answered {path} with {:?}, not pong",
                String::from_utf8_lossy(&body)
            ),
        ));
    }
    println!("pong");
    Ok(0)
}
