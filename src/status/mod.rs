//! The pool's own pages: `status_path` (the scoreboard, as text, JSON or
//! Prometheus metrics) and `ping_path` (`pong`), answered by the worker
//! that took the request, before the runner and without Perl, like
//! php-fpm's `pm.status_path` and `ping.path`. A request is one of them
//! when its `SCRIPT_NAME` is the configured path; the web server decides
//! who may reach it (an nginx `location =` with `allow 127.0.0.1`).
//!
//! `usage` holds what a worker measures of itself after each request
//! (memory, CPU); `render` the formats.

pub mod render;
pub mod usage;

use std::io::{self, Write};

use crate::config::Config;
use crate::fastcgi::{Request, ResponseWriter};
use crate::scoreboard::{now_us, Scoreboard};

/// Which page a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Status,
    Ping,
}

/// The configured paths.
pub struct Pages {
    status_path: Option<Vec<u8>>,
    ping_path: Option<Vec<u8>>,
}

impl Pages {
    pub fn new(cfg: &Config) -> Pages {
        Pages {
            status_path: cfg.status_path.as_ref().map(|p| p.as_bytes().to_vec()),
            ping_path: cfg.ping_path.as_ref().map(|p| p.as_bytes().to_vec()),
        }
    }

    /// The page `req` asks for, if it is one of ours.
    pub fn page_for(&self, req: &Request) -> Option<Page> {
        if self.status_path.is_none() && self.ping_path.is_none() {
            return None;
        }
        let name = req.param(b"SCRIPT_NAME")?;
        if self.status_path.as_deref() == Some(name) {
            Some(Page::Status)
        } else if self.ping_path.as_deref() == Some(name) {
            Some(Page::Ping)
        } else {
            None
        }
    }
}

/// Answers `page` on `conn`; returns the HTTP status and the bytes sent.
pub fn answer(
    page: Page,
    req: &Request,
    board: &Scoreboard,
    conn: &mut impl Write,
) -> io::Result<(u16, u64)> {
    let (content_type, body) = match page {
        Page::Ping => ("text/plain", "pong\n".to_string()),
        Page::Status => {
            let query = String::from_utf8_lossy(req.param(b"QUERY_STRING").unwrap_or_default());
            let (format, full) = render::parse_query(&query);
            let snap = render::Snapshot {
                now_us: now_us(),
                pool: board.pool_view(),
                workers: board.worker_views(),
            };
            (
                render::content_type(format),
                render::render(&snap, format, full),
            )
        }
    };
    let head = format!(
        "Status: 200 OK\r\nContent-Type: {content_type}\r\n\
         Cache-Control: no-cache, no-store, must-revalidate\r\n\
         Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
    );
    let head_only = req.param(b"REQUEST_METHOD") == Some(b"HEAD");
    let mut writer = ResponseWriter::new(conn, req.id);
    writer.write_stdout(head.as_bytes())?;
    if !head_only {
        writer.write_stdout(body.as_bytes())?;
    }
    writer.finish(0, 0)?;
    Ok((200, writer.bytes_sent()))
}
