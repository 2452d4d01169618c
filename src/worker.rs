//! A worker process: accepts connections on the shared socket and serves
//! their requests one at a time with the interpreter it inherited from the
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
    match perl.call("FCGI::Spawn::Runner::init_worker", &[], true) {
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

    while !signals::stop_requested() && !recycle(served) {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        if let (Some(allowed), Some(ip)) = (&allowed_peers, stream.peer_ip()) {
            if !allowed.contains(&ip) {
                log::warn!("refused connection from {ip}: not in FCGI_WEB_SERVER_ADDRS");
                continue;
            }
        }
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(e) => {
                log::error!("cannot duplicate connection: {e}");
                continue;
            }
        };
        let mut conn = ServerConnection::new(stream, limits.clone(), max_conns, max_conns);
        loop {
            if !conn.has_buffered_input() && !wait_readable(conn.get_ref()) {
                break;
            }
            let req = match conn.read_request() {
                Ok(Some(req)) => req,
                Ok(None) => break,
                Err(e) => {
                    log::warn!("closing connection: {e}");
                    break;
                }
            };
            let keep_conn = req.keep_conn;
            match runner.handle(req, &mut writer) {
                Ok(result) => {
                    if result.signals_touched {
                        signals::install_worker_handlers();
                    }
                }
                Err(e) => {
                    log::info!("connection ended: {e}");
                    break;
                }
            }
            served += 1;
            if !keep_conn || signals::stop_requested() || recycle(served) {
                break;
            }
        }
    }
    if recycle(served) {
        log::info!("worker recycled after {served} requests (--max-requests)");
    }
    Ok(())
}

/// Waits for the next request on a connection; false when the worker was
/// asked to stop meanwhile (an idle kept-alive connection must not hold up a
/// graceful stop) or the connection failed.
fn wait_readable(stream: &Stream) -> bool {
    loop {
        let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) if !signals::stop_requested() => continue,
            Err(_) => return false,
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
