//! A worker process: serves requests one at a time with the interpreter it
//! inherited from the master (copy-on-write), taking a request only when it
//! can serve it at once (`idle`), until the master tells it to stop or
//! `--max-requests` recycles it.
//!
//! The master's word reaches a worker between requests only, on its
//! channel and scoreboard slot: nothing interrupts a running script, and a
//! script's `%SIG` handlers cannot keep a worker from leaving.

mod conn;
mod heap;
mod idle;

use std::io;
use std::time::Duration;

use self::conn::{Conn, Readers};
use self::heap::HeapTrim;
use self::idle::{Idle, Leave};
use crate::config::Config;
use crate::dispatch::channel::Channel;
use crate::dispatch::ready::ReadyQueue;
use crate::fastcgi::Limits;
use crate::listen::Listener;
use crate::path_policy::PathPolicy;
use crate::perl::Interpreter;
use crate::runner::Runner;
use crate::scoreboard::Scoreboard;
use crate::signals;

/// A pooled worker's link to its master.
pub struct Link<'a> {
    pub board: &'a Scoreboard,
    pub slot: usize,
    pub channel: Channel,
    pub ready: &'a ReadyQueue,
}

/// Serves requests; returns when the worker should exit. Without a link
/// (`--workers 0`) the one process accepts and serves connections itself,
/// one after the other.
pub fn run(
    perl: &Interpreter,
    listener: &Listener,
    cfg: &Config,
    link: Option<Link<'_>>,
) -> io::Result<()> {
    signals::install_worker_handlers();
    perl.set_owner_pid(std::process::id() as i32);
    let runner = Runner::new(
        perl,
        PathPolicy::new(cfg.roots.clone(), &cfg.extensions),
        cfg.stderr_to_client,
        (cfg.request_timeout > 0).then(|| Duration::from_secs(cfg.request_timeout)),
        cfg.isolation,
        cfg.isolation_for.clone(),
    )?;
    runner.init_worker(&cfg.pass_env, &cfg.env)?;
    runner.park_std_fds()?;
    let limits = Limits {
        max_body: cfg.max_body,
        spill_threshold: cfg.body_spill,
        ..Limits::default()
    };
    let served = match link {
        Some(link) => serve_pooled(&runner, listener, cfg, &limits, link),
        None => serve_alone(&runner, listener, cfg, &limits),
    };
    if cfg.max_requests > 0 && served >= cfg.max_requests {
        log::info!("worker recycled after {served} requests (--max-requests)");
    }
    Ok(())
}

/// A pooled worker's life: wait idle, serve, repeat. Returns the number of
/// requests served.
fn serve_pooled(
    runner: &Runner,
    listener: &Listener,
    cfg: &Config,
    limits: &Limits,
    link: Link<'_>,
) -> u64 {
    let max_conns = cfg.workers.max(1);
    let slot = link.board.slot(link.slot);
    let mut idle = Idle::new(
        listener,
        link.board,
        link.slot,
        link.channel,
        link.ready,
        limits.clone(),
        max_conns,
        cfg.idle_timeout(),
        web_server_addrs(),
    );
    let mut served = 0;
    let mut heap = HeapTrim::new(cfg.heap_trim);
    let leave = loop {
        let mut conn = match idle.next_request() {
            Ok(conn) => conn,
            Err(leave) => break leave,
        };
        let outcome = serve(runner, &mut conn, cfg.idle_timeout());
        heap.after_request();
        if outcome.answered {
            served = slot.count_request();
        }
        if outcome.keep {
            idle.keep(conn);
        } else {
            idle.close(conn);
        }
        if outcome.retire {
            // Its state cannot be trusted: the master starts a fresh one.
            break Leave::Stop;
        }
        if cfg.max_requests > 0 && served >= cfg.max_requests {
            break Leave::Stop;
        }
    };
    if leave != Leave::MasterGone {
        idle.leave();
    }
    served
}

/// `--workers 0`: accept and serve connection after connection in this
/// one process (for debugging a script).
fn serve_alone(runner: &Runner, listener: &Listener, cfg: &Config, limits: &Limits) -> u64 {
    let mut served = 0;
    let mut readers = Readers::new(limits.clone(), 1);
    let mut heap = HeapTrim::new(cfg.heap_trim);
    let recycle = |served: u64| cfg.max_requests > 0 && served >= cfg.max_requests;
    while !signals::stop_requested() && !recycle(served) {
        let stream = match idle::accept_blocking(listener) {
            Ok(stream) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // Reads block here: a stalled client is dropped after idle_timeout.
        if let Err(e) = stream.set_read_timeout(Some(cfg.idle_timeout())) {
            log::warn!("cannot set a read timeout: {e}");
        }
        let mut conn = readers.open(stream, Vec::new(), Duration::ZERO);
        loop {
            let outcome = serve(runner, &mut conn, Duration::ZERO);
            heap.after_request();
            served += u64::from(outcome.answered);
            if outcome.retire {
                readers.close(conn);
                return served;
            }
            if !outcome.keep || signals::stop_requested() || recycle(served) {
                break;
            }
            conn = readers.after_request(conn);
        }
        readers.close(conn);
    }
    served
}

/// What serving one request left to do.
struct Served {
    /// Keep the connection open.
    keep: bool,
    /// A request was answered.
    answered: bool,
    /// The worker must exit after this request.
    retire: bool,
}

/// Reads and answers one request.
fn serve(runner: &Runner, conn: &mut Conn, idle_timeout: Duration) -> Served {
    let closed = Served {
        keep: false,
        answered: false,
        retire: false,
    };
    let req = match conn.read_request(idle_timeout) {
        Ok(Some(req)) => req,
        Ok(None) => return closed,
        Err(e) => {
            log::warn!("closing connection: {e}");
            return closed;
        }
    };
    let keep_conn = req.keep_conn;
    match runner.handle(req, conn.writer()) {
        Ok(result) => {
            if result.signals_touched {
                signals::install_worker_handlers();
            }
            Served {
                keep: keep_conn && result.retire.is_none(),
                answered: true,
                retire: result.retire.is_some(),
            }
        }
        Err(e) => {
            log::info!("connection ended: {e}");
            Served {
                answered: true,
                ..closed
            }
        }
    }
}

/// `FCGI_WEB_SERVER_ADDRS`: the web servers allowed to connect over TCP
/// (comma-separated IPs), as in the FastCGI spec. None: anyone.
fn web_server_addrs() -> Option<Vec<std::net::IpAddr>> {
    let list = std::env::var("FCGI_WEB_SERVER_ADDRS").ok()?;
    let addrs: Vec<std::net::IpAddr> = list
        .split(',')
        .filter_map(|a| {
            let a = a.trim();
            let parsed = a.parse().ok();
            if parsed.is_none() && !a.is_empty() {
                log::warn!("FCGI_WEB_SERVER_ADDRS: ignoring {a:?}, not an IP address");
            }
            parsed
        })
        .collect();
    Some(addrs)
}
