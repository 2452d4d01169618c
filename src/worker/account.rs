//! What a worker records of each request: in its scoreboard slot (the
//! script, when it started, memory after it) and the pool's counters, in
//! the access log, and in its process title (`title`); and the pool's own
//! pages (`status_path`, `ping_path`), which it answers before the runner.

use std::io;
use std::time::Instant;

use crate::access_log;
use crate::config::Config;
use crate::fastcgi::{ClientSocket, Request};
use crate::scoreboard::{RanAs, Scoreboard};
use crate::status::usage::{self, MemoryProbe, Statm};
use crate::status::{self, Page, Pages};
use crate::title::Titles;

pub struct Accounting<'a> {
    board: &'a Scoreboard,
    slot: usize,
    pages: Pages,
    memory: MemoryProbe,
    /// What the last request's end read of `/proc/self/statm`, for the
    /// worker's own checks after it (`worker::heap`, `worker::memory`).
    last_statm: Option<Statm>,
    titles: Titles,
}

/// A request under way.
pub struct Begun {
    start: Instant,
    cpu_us: u64,
    /// For the access log only (empty without one).
    method: Vec<u8>,
    uri: Vec<u8>,
}

impl<'a> Accounting<'a> {
    /// The worker is ready for its first request (its title says idle).
    pub fn new(board: &'a Scoreboard, slot: usize, cfg: &Config, titles: Titles) -> Accounting<'a> {
        titles.idle();
        Accounting {
            board,
            slot,
            pages: Pages::new(cfg),
            memory: MemoryProbe::default(),
            last_statm: None,
            titles,
        }
    }

    /// `req` starts: its script goes into the slot and the title, the pool
    /// counts it.
    pub fn begin(&mut self, req: &Request) -> Begun {
        let script = req
            .param(b"SCRIPT_FILENAME")
            .or_else(|| req.param(b"SCRIPT_NAME"))
            .unwrap_or_default();
        self.board.begin_request(self.slot, script);
        self.titles.running(script);
        let logged = access_log::enabled();
        let field = |name: &[u8]| -> Vec<u8> {
            match logged {
                true => req.param(name).unwrap_or_default().to_vec(),
                false => Vec::new(),
            }
        };
        let mut uri = field(b"REQUEST_URI");
        if uri.is_empty() {
            uri = field(b"SCRIPT_NAME");
        }
        Begun {
            start: Instant::now(),
            cpu_us: if logged { usage::cpu_us() } else { 0 },
            method: field(b"REQUEST_METHOD"),
            uri,
        }
    }

    /// The pool's own page `req` asks for, if any.
    pub fn page_for(&self, req: &Request) -> Option<Page> {
        self.pages.page_for(req)
    }

    /// Answers the pool's own page; returns the status and bytes sent.
    pub fn answer(
        &self,
        page: Page,
        req: &Request,
        conn: &mut ClientSocket<'_>,
    ) -> io::Result<(u16, u64)> {
        status::answer(page, req, self.board, conn)
    }

    /// The request is over (its script ran `ran_as`): memory measured,
    /// the slot and the log told.
    pub fn end(&mut self, begun: Begun, ran_as: RanAs, status: u16, bytes: u64) {
        let (statm, private) = self.memory.measure();
        self.last_statm = statm;
        let rss = statm.map(|m| m.resident);
        self.board.end_request(self.slot, ran_as, rss, private);
        self.titles.idle();
        if !access_log::enabled() {
            return;
        }
        let end_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let entry = access_log::Entry {
            end_secs,
            pid: std::process::id(),
            method: &begun.method,
            uri: &begun.uri,
            status,
            bytes,
            duration_us: begun.start.elapsed().as_micros() as u64,
            rss: rss.unwrap_or(0),
            cpu_us: usage::cpu_us().saturating_sub(begun.cpu_us),
        };
        access_log::write(&entry, self.board.reopens());
    }

    /// The memory reading the last request ended with, once.
    pub fn take_statm(&mut self) -> Option<Statm> {
        self.last_statm.take()
    }

    /// A request was answered: the worker's count, after it.
    pub fn count_request(&self) -> u64 {
        self.board.slot(self.slot).count_request()
    }

    /// The worker leaves to be replaced after a request.
    pub fn count_recycle(&self) {
        self.board.count_recycle();
    }
}
