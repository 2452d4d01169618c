//! A worker process: accepts connections on the shared socket and serves
//! their requests one at a time (on any of its open connections) with the interpreter it inherited from the
//! master (copy-on-write), until told to stop or recycled by
//! `--max-requests`.

use std::io;
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::config::Config;
use crate::fastcgi::connection::{Limits, ServerConnection};
use crate::listen::{Listener, Stream};
use crate::path_policy::PathPolicy;
use crate::perl::{Interpreter, Outcome};
use crate::runner::Runner;
use crate::signals;

/// Runs the accept loop; returns when the worker should exit.
pub fn run(perl: &Interpreter, listener: &Listener, cfg: &Config) -> io::Result<()> {
    signals::install_worker_handlers();
    perl.set_owner_pid(std::process::id() as i32);
    let runner = Runner::new(
        perl,
        PathPolicy::new(cfg.roots.clone(), &cfg.extensions),
        cfg.stderr_to_client,
        (cfg.request_timeout > 0).then(|| std::time::Duration::from_secs(cfg.request_timeout)),
        cfg.isolation,
        cfg.isolation_for.clone(),
    )?;
    let mut init_args: Vec<&[u8]> = cfg.pass_env.iter().map(|n| n.as_bytes()).collect();
    init_args.push(b"--");
    for (name, value) in &cfg.env {
        init_args.push(name.as_bytes());
        init_args.push(value.as_bytes());
    }
    match perl.call("FCGI::Spawn::Runner::init_worker", &init_args, true) {
        Ok(Outcome::Returned(_)) => {}
        other => {
            return Err(io::Error::other(format!(
                "worker initialisation failed: {other:?}"
            )))
        }
    }
    runner.park_std_fds()?;
    let limits = Limits {
        max_body: cfg.max_body,
        spill_threshold: cfg.body_spill,
        ..Limits::default()
    };
    let max_conns = cfg.workers.max(1);
    let allowed_peers = web_server_addrs();
    let mut served: u64 = 0;
    let recycle = |served: u64| cfg.max_requests > 0 && served >= cfg.max_requests;
    let mut conns: Vec<Connection> = Vec::new();

    while !signals::stop_requested() && !recycle(served) {
        let Some(ready) = wait_for_work(listener, &conns) else {
            continue;
        };
        if ready.listener {
            match listener.accept() {
                Ok(stream) => {
                    if let Some(conn) = admit(stream, &allowed_peers, &limits, max_conns) {
                        if conns.len() >= MAX_KEPT_CONNECTIONS {
                            // The web server reopens what it still needs.
                            conns.remove(0);
                        }
                        conns.push(conn);
                    }
                }
                // Another worker took it, or a signal came.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    log::error!("accept failed: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        let mut closed = vec![false; conns.len()];
        for i in ready.connections {
            if signals::stop_requested() || recycle(served) {
                break;
            }
            let (keep, answered) = serve_one(&runner, &mut conns[i]);
            served += u64::from(answered);
            closed[i] = !keep;
        }
        let mut index = 0;
        conns.retain(|_| {
            index += 1;
            !closed[index - 1]
        });
    }
    if recycle(served) {
        log::info!("worker recycled after {served} requests (--max-requests)");
    }
    Ok(())
}

/// An open connection from the web server, kept between requests when it
/// asked for FCGI_KEEP_CONN.
struct Connection {
    reader: ServerConnection<Stream>,
    writer: Stream,
}

/// Kept-alive connections one worker holds at most; the oldest goes first.
const MAX_KEPT_CONNECTIONS: usize = 64;

struct Ready {
    listener: bool,
    connections: Vec<usize>,
}

/// Waits until the listener or a kept connection has something. A worker
/// watches both, so an idle kept-alive connection never keeps it from new
/// connections (which would starve them when the web server keeps more
/// connections open than there are workers). None when interrupted (the
/// caller then checks for a stop request).
fn wait_for_work(listener: &Listener, conns: &[Connection]) -> Option<Ready> {
    let buffered: Vec<usize> = (0..conns.len())
        .filter(|&i| conns[i].reader.has_buffered_input())
        .collect();
    if !buffered.is_empty() {
        return Some(Ready {
            listener: false,
            connections: buffered,
        });
    }
    let mut fds = Vec::with_capacity(conns.len() + 1);
    fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
    for c in conns {
        fds.push(PollFd::new(c.reader.get_ref().as_fd(), PollFlags::POLLIN));
    }
    nix::poll::poll(&mut fds, PollTimeout::NONE).ok()?;
    let fired = |p: &PollFd| !p.revents().unwrap_or(PollFlags::empty()).is_empty();
    Some(Ready {
        listener: fired(&fds[0]),
        connections: (1..fds.len())
            .filter(|&i| fired(&fds[i]))
            .map(|i| i - 1)
            .collect(),
    })
}

fn admit(
    stream: Stream,
    allowed_peers: &Option<Vec<std::net::IpAddr>>,
    limits: &Limits,
    max_conns: usize,
) -> Option<Connection> {
    if let (Some(allowed), Some(ip)) = (allowed_peers, stream.peer_ip()) {
        if !allowed.contains(&ip) {
            log::warn!("refused connection from {ip}: not in FCGI_WEB_SERVER_ADDRS");
            return None;
        }
    }
    let writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            log::error!("cannot duplicate connection: {e}");
            return None;
        }
    };
    Some(Connection {
        reader: ServerConnection::new(stream, limits.clone(), max_conns, max_conns),
        writer,
    })
}

/// Reads and answers one request on a readable connection. Returns (keep
/// the connection open, a request was answered).
fn serve_one(runner: &Runner, conn: &mut Connection) -> (bool, bool) {
    let req = match conn.reader.read_request() {
        Ok(Some(req)) => req,
        Ok(None) => return (false, false),
        Err(e) => {
            log::warn!("closing connection: {e}");
            return (false, false);
        }
    };
    let keep_conn = req.keep_conn;
    match runner.handle(req, &mut conn.writer) {
        Ok(result) => {
            if result.signals_touched {
                signals::install_worker_handlers();
            }
            (keep_conn, true)
        }
        Err(e) => {
            log::info!("connection ended: {e}");
            (false, true)
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
