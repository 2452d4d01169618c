//! A worker process: serves requests one at a time with the interpreter it
//! inherited from the master (copy-on-write), taking a request only when it
//! can serve it at once (`idle`), until the master tells it to stop or
//! `--max-requests` recycles it.
//!
//! The master's word reaches a worker between requests only, on its
//! channel and scoreboard slot: nothing interrupts a running script, and a
//! script's `%SIG` handlers cannot keep a worker from leaving.

mod account;
pub mod conn;
mod heap;
mod idle;
mod memory;
mod parked;

use std::io;
use std::time::Duration;

use self::account::Accounting;
use self::conn::{Conn, Readers};
use self::heap::HeapTrim;
use self::idle::{Idle, Leave};
use self::memory::MemoryLimits;
use crate::config::Config;
use crate::dispatch::channel::Channel;
use crate::dispatch::ready::ReadyQueue;
use crate::fastcgi::Limits;
use crate::listen::Listener;
use crate::path_policy::PathPolicy;
use crate::perl::Interpreter;
use crate::runner::Runner;
use crate::runner::Timeouts;
use crate::scoreboard::{RanAs, Scoreboard};
use crate::signals;
use crate::title::{self, Titles};
use nix::sys::signal::Signal;

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
    if link.is_some() {
        title::worker_starting();
    }
    perl.set_owner_pid(std::process::id() as i32);
    perl.worker_forked();
    let runner = Runner::new(
        perl,
        PathPolicy::of(cfg),
        cfg.stderr_to_client,
        Timeouts {
            request: (cfg.request_timeout > 0).then(|| Duration::from_secs(cfg.request_timeout)),
            slowlog: (cfg.slowlog_timeout > 0).then(|| Duration::from_secs(cfg.slowlog_timeout)),
        },
        cfg.isolation,
        cfg.isolation_for.clone(),
        cfg.stats,
    )?;
    runner.init_worker(&cfg.pass_env, &cfg.env, &cfg.worker_init)?;
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
    runner.leave();
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
    let mut idle = match Idle::new(
        listener,
        link.board,
        link.slot,
        link.channel,
        link.ready,
        limits.clone(),
        max_conns,
        cfg.idle_timeout(),
        web_server_addrs(),
    ) {
        Ok(idle) => idle,
        Err(e) => {
            log::error!("worker cannot start: {e}");
            return 0;
        }
    };
    runner.hold_connections(idle.parked());
    let memory = MemoryLimits::new(cfg.max_rss.0, cfg.max_unshared.0);
    let mut account = Accounting::new(link.board, link.slot, cfg, Titles::worker());
    let mut served = 0;
    let mut heap = HeapTrim::new(cfg.heap_trim);
    let leave = loop {
        let mut conn = match idle.next_request() {
            Ok(conn) => conn,
            Err(leave) => break leave,
        };
        let outcome = serve(runner, &mut conn, cfg.idle_timeout(), &mut account);
        // One reading of the worker's memory serves the status slot, the
        // heap trim and the limits.
        let memory_now = heap.after_request(account.take_statm());
        if outcome.answered {
            served = account.count_request();
        }
        if outcome.keep {
            idle.keep(conn);
        } else {
            idle.close(conn);
        }
        if outcome.retire {
            // Its state cannot be trusted: the master starts a fresh one.
            account.count_recycle();
            break Leave::Stop;
        }
        if cfg.max_requests > 0 && served >= cfg.max_requests {
            account.count_recycle();
            break Leave::Stop;
        }
        if crate::runner::take_slow_requests() > 0 {
            link.board.count_slow();
        }
        if let Some(why) = memory.as_ref().and_then(|m| m.exceeded(memory_now)) {
            log::info!("worker recycled: {why}");
            break Leave::Stop;
        }
        runner.fork_ahead(|| idle.held_fds());
    };
    if leave != Leave::MasterGone {
        idle.leave();
    }
    served
}

/// `--workers 0`: accept and serve connection after connection in this
/// one process (for debugging a script).
fn serve_alone(runner: &Runner, listener: &Listener, cfg: &Config, limits: &Limits) -> u64 {
    // A scoreboard of its own, for the status page.
    let board = Scoreboard::new();
    let slot = board.as_ref().ok().and_then(|b| b.take_free_slot());
    let mut account = match (&board, slot) {
        (Ok(board), Some(slot)) => {
            board.set_pid(slot, std::process::id() as i32, 1);
            board
                .slot(slot)
                .set_state(crate::scoreboard::WorkerState::Busy);
            Accounting::new(board, slot, cfg, Titles::master_alone())
        }
        _ => {
            log::error!("cannot map a scoreboard");
            return 0;
        }
    };
    let mut served = 0;
    let mut readers = Readers::new(limits.clone(), 1);
    let mut heap = HeapTrim::new(cfg.heap_trim);
    let recycle = |served: u64| cfg.max_requests > 0 && served >= cfg.max_requests;
    while !signals::stop_requested() && !recycle(served) {
        act_on_signals();
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
            act_on_signals();
            let outcome = serve(runner, &mut conn, Duration::ZERO, &mut account);
            heap.after_request(account.take_statm());
            if outcome.answered {
                served = account.count_request();
            }
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
    act_on_signals();
    served
}

/// `--workers 0`, between requests: what the signals received ask (the
/// README's table). The stops end the loop (its condition); here they are
/// logged.
fn act_on_signals() {
    for signal in signals::take_pending() {
        let name = signal.as_str();
        match signal {
            Signal::SIGTERM | Signal::SIGINT => log::info!("{name}: stopping gracefully"),
            Signal::SIGQUIT => log::info!("{name}: stopping now"),
            Signal::SIGHUP => log::warn!(
                "{name}: reload needs a pool of workers (--workers 0 serves in this process); \
                 restart the daemon to apply changes"
            ),
            Signal::SIGTTIN | Signal::SIGTTOU => {
                log::warn!("{name}: no pool to resize (--workers 0 serves in this process)")
            }
            Signal::SIGUSR1 => crate::signals::reopen_logs(),
            _ => {}
        }
    }
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

/// Reads and answers one request: the pool's own pages here, scripts
/// through the runner.
fn serve(
    runner: &Runner,
    conn: &mut Conn,
    idle_timeout: Duration,
    account: &mut Accounting<'_>,
) -> Served {
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
    let begun = account.begin(&req);
    if let Some(page) = account.page_for(&req) {
        let answered = account.answer(page, &req, &mut conn.writer());
        let (status, bytes) = *answered.as_ref().unwrap_or(&(499, 0));
        account.end(begun, RanAs::Nothing, status, bytes);
        return Served {
            keep: keep_conn && answered.is_ok(),
            answered: true,
            retire: false,
        };
    }
    let handled = runner.handle(req, conn.stream());
    let (ran_as, status, bytes) = match &handled {
        Ok(result) => (result.ran_as, result.status, result.bytes),
        // The client went away: nginx's name for it.
        Err(_) => (RanAs::Nothing, 499, 0),
    };
    account.end(begun, ran_as, status, bytes);
    match handled {
        Ok(result) => {
            conn.unread(result.next_input);
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
