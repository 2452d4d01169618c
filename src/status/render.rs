//! The status page's formats, as pure functions of one [`Snapshot`] of the
//! scoreboard: text (php-fpm's layout, `name: value` lines; `full` adds a
//! table, a row per worker), JSON, and the Prometheus text exposition (also as
//! OpenMetrics). One list of fields feeds text and JSON, so the two carry
//! the same names.

use std::fmt::Write;

use crate::scoreboard::{PoolView, SlotView, WorkerState};

/// The scoreboard read at one moment, with the time it was read.
pub struct Snapshot {
    pub now_us: u64,
    pub pool: PoolView,
    pub workers: Vec<SlotView>,
}

/// How the page is asked for (its query string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Prometheus,
    OpenMetrics,
}

/// The format and whether to list workers, from a query string such as
/// `json&full`. Workers are always listed in JSON and Prometheus.
pub fn parse_query(query: &str) -> (Format, bool) {
    let mut format = Format::Text;
    let mut full = false;
    for word in query.split('&') {
        match word.split('=').next().unwrap_or_default() {
            "json" => format = Format::Json,
            "prometheus" => format = Format::Prometheus,
            "openmetrics" => format = Format::OpenMetrics,
            "full" => full = true,
            _ => {}
        }
    }
    (format, full || format != Format::Text)
}

/// The content type of a format.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Text => "text/plain; charset=utf-8",
        Format::Json => "application/json",
        Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
    }
}

pub fn render(snap: &Snapshot, format: Format, full: bool) -> String {
    match format {
        Format::Text => text(snap, full),
        Format::Json => json(snap),
        Format::Prometheus => metrics(snap, false),
        Format::OpenMetrics => metrics(snap, true),
    }
}

enum Value {
    Int(u64),
    Str(String),
    /// Seconds since the epoch: a UTC date in text, a number in JSON.
    Time(u64),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Str(s) => s.clone(),
            Value::Time(t) => crate::log::format_timestamp(*t as i64),
        }
    }
}

fn secs(us: u64) -> u64 {
    us / 1_000_000
}

fn count(workers: &[SlotView], states: &[WorkerState]) -> u64 {
    workers.iter().filter(|w| states.contains(&w.state)).count() as u64
}

fn pool_fields(snap: &Snapshot) -> Vec<(&'static str, Value)> {
    let p = &snap.pool;
    let w = &snap.workers;
    vec![
        ("pool", Value::Str("fcgi-spawn".into())),
        ("process_manager", Value::Str("static".into())),
        ("start_time", Value::Time(secs(p.started_us))),
        (
            "start_since",
            Value::Int(secs(snap.now_us.saturating_sub(p.started_us))),
        ),
        ("generation", Value::Int(p.generation)),
        ("accepted", Value::Int(p.accepted)),
        ("queue", Value::Int(u64::from(p.queued))),
        ("idle_workers", Value::Int(count(w, &[WorkerState::Idle]))),
        ("active_workers", Value::Int(u64::from(p.active))),
        ("total_workers", Value::Int(w.len() as u64)),
        ("max_active_workers", Value::Int(u64::from(p.max_active))),
        ("slow_requests", Value::Int(p.slow)),
        ("recycled_workers", Value::Int(p.recycled)),
        ("crashed_workers", Value::Int(p.crashed)),
    ]
}

/// The running request's elapsed time, µs (0 when none runs).
fn elapsed_us(snap: &Snapshot, w: &SlotView) -> u64 {
    match w.request_start_us {
        0 => 0,
        start => snap.now_us.saturating_sub(start),
    }
}

fn worker_fields(snap: &Snapshot, w: &SlotView) -> Vec<(&'static str, Value)> {
    vec![
        ("slot", Value::Int(w.slot as u64)),
        ("pid", Value::Int(w.pid.max(0) as u64)),
        ("state", Value::Str(w.state.name().into())),
        ("start_time", Value::Time(secs(w.started_us))),
        (
            "start_since",
            Value::Int(secs(snap.now_us.saturating_sub(w.started_us))),
        ),
        ("requests", Value::Int(w.requests)),
        ("busy", Value::Int(u64::from(w.request_start_us != 0))),
        ("elapsed_us", Value::Int(elapsed_us(snap, w))),
        ("last_request_duration_us", Value::Int(w.last_duration_us)),
        ("rss_bytes", Value::Int(w.rss)),
        ("private_bytes", Value::Int(w.private)),
        // How the script ran: a registry script that keeps file lexicals
        // in named subs shows `registry-in-child`.
        ("isolation", Value::Str(w.ran_as.name().into())),
        // Last: the one column of the text table of any width.
        ("script", Value::Str(w.script.clone())),
    ]
}

fn text_block(out: &mut String, fields: &[(&'static str, Value)]) {
    for (name, value) in fields {
        let label = format!("{}:", name.replace('_', " "));
        let _ = writeln!(out, "{label:<26}{}", value.text());
    }
}

/// A row per worker under a header of the field names, columns aligned.
fn text_table(out: &mut String, rows: &[Vec<(&'static str, Value)>]) {
    let Some(first) = rows.first() else {
        return;
    };
    let mut cells: Vec<Vec<String>> = vec![first.iter().map(|(n, _)| n.to_string()).collect()];
    cells.extend(
        rows.iter()
            .map(|r| r.iter().map(|(_, v)| v.text()).collect()),
    );
    let widths: Vec<usize> = (0..first.len())
        .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    for row in &cells {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn text(snap: &Snapshot, full: bool) -> String {
    let mut out = String::new();
    text_block(&mut out, &pool_fields(snap));
    if full {
        out.push('\n');
        let rows: Vec<_> = snap
            .workers
            .iter()
            .map(|w| worker_fields(snap, w))
            .collect();
        text_table(&mut out, &rows);
    }
    out
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_object(out: &mut String, fields: &[(&'static str, Value)]) {
    out.push('{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, name);
        out.push(':');
        match value {
            Value::Int(n) | Value::Time(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Str(s) => json_string(out, s),
        }
    }
    out.push('}');
}

fn json(snap: &Snapshot) -> String {
    let mut out = String::new();
    json_object(&mut out, &pool_fields(snap));
    out.pop();
    out.push_str(",\"workers\":[");
    for (i, w) in snap.workers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_object(&mut out, &worker_fields(snap, w));
    }
    out.push_str("]}\n");
    out
}

/// One metric family: its name, type, help, and samples (labels, value).
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(String, f64)>,
}

fn metrics(snap: &Snapshot, openmetrics: bool) -> String {
    let p = &snap.pool;
    let w = &snap.workers;
    let pool = |v: f64| vec![(String::new(), v)];
    let per_worker = |f: &dyn Fn(&SlotView) -> f64| -> Vec<(String, f64)> {
        w.iter()
            .map(|s| (format!("{{slot=\"{}\",pid=\"{}\"}}", s.slot, s.pid), f(s)))
            .collect()
    };
    let families = [
        Family {
            name: "fcgi_spawn_start_time_seconds",
            kind: "gauge",
            help: "When the master started, seconds since the epoch.",
            samples: pool(p.started_us as f64 / 1e6),
        },
        Family {
            name: "fcgi_spawn_generation",
            kind: "gauge",
            help: "The pool's generation (grows with each reload).",
            samples: pool(p.generation as f64),
        },
        Family {
            name: "fcgi_spawn_accepted",
            kind: "counter",
            help: "Requests started since the master started.",
            samples: pool(p.accepted as f64),
        },
        Family {
            name: "fcgi_spawn_queue",
            kind: "gauge",
            help: "Ready requests waiting in the master for a worker.",
            samples: pool(f64::from(p.queued)),
        },
        Family {
            name: "fcgi_spawn_active_workers",
            kind: "gauge",
            help: "Workers serving a request.",
            samples: pool(f64::from(p.active)),
        },
        Family {
            name: "fcgi_spawn_idle_workers",
            kind: "gauge",
            help: "Workers waiting for a request.",
            samples: pool(count(w, &[WorkerState::Idle]) as f64),
        },
        Family {
            name: "fcgi_spawn_total_workers",
            kind: "gauge",
            help: "Worker processes.",
            samples: pool(w.len() as f64),
        },
        Family {
            name: "fcgi_spawn_max_active_workers",
            kind: "gauge",
            help: "The most workers ever serving at once.",
            samples: pool(f64::from(p.max_active)),
        },
        Family {
            name: "fcgi_spawn_slow_requests",
            kind: "counter",
            help: "Requests that ran past slowlog_timeout.",
            samples: pool(p.slow as f64),
        },
        Family {
            name: "fcgi_spawn_recycled_workers",
            kind: "counter",
            help: "Workers replaced after a request (max_requests, memory limits, unclean state).",
            samples: pool(p.recycled as f64),
        },
        Family {
            name: "fcgi_spawn_crashed_workers",
            kind: "counter",
            help: "Workers killed by a signal or exited with a non-zero status.",
            samples: pool(p.crashed as f64),
        },
        Family {
            name: "fcgi_spawn_worker_requests",
            kind: "counter",
            help: "Requests a worker served.",
            samples: per_worker(&|s| s.requests as f64),
        },
        Family {
            name: "fcgi_spawn_worker_busy",
            kind: "gauge",
            help: "1 while a worker serves a request.",
            samples: per_worker(&|s| f64::from(u8::from(s.request_start_us != 0))),
        },
        Family {
            name: "fcgi_spawn_worker_request_elapsed_seconds",
            kind: "gauge",
            help: "How long the worker's running request has run (0: none).",
            samples: per_worker(&|s| elapsed_us(snap, s) as f64 / 1e6),
        },
        Family {
            name: "fcgi_spawn_worker_rss_bytes",
            kind: "gauge",
            help: "Resident memory of a worker after its last request.",
            samples: per_worker(&|s| s.rss as f64),
        },
        Family {
            name: "fcgi_spawn_worker_private_bytes",
            kind: "gauge",
            help: "Private (unshared) memory of a worker after its last request.",
            samples: per_worker(&|s| s.private as f64),
        },
        Family {
            name: "fcgi_spawn_worker_start_time_seconds",
            kind: "gauge",
            help: "When a worker started, seconds since the epoch.",
            samples: per_worker(&|s| s.started_us as f64 / 1e6),
        },
    ];
    let mut out = String::new();
    for f in &families {
        // Prometheus 0.0.4 names a counter by its sample (`_total`);
        // OpenMetrics names the family without it.
        let sample_name = if f.kind == "counter" {
            format!("{}_total", f.name)
        } else {
            f.name.to_string()
        };
        let family_name = if openmetrics { f.name } else { &sample_name };
        let _ = writeln!(out, "# HELP {family_name} {}", f.help);
        let _ = writeln!(out, "# TYPE {family_name} {}", f.kind);
        for (labels, value) in &f.samples {
            let _ = writeln!(out, "{sample_name}{labels} {value}");
        }
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::RanAs;

    fn snapshot() -> Snapshot {
        let worker = |slot: usize, busy: bool| SlotView {
            slot,
            pid: 100 + slot as i32,
            state: if busy {
                WorkerState::Busy
            } else {
                WorkerState::Idle
            },
            requests: 3,
            started_us: 1_000_000_000,
            request_start_us: if busy { 1_500_000_000 } else { 0 },
            last_duration_us: 1234,
            rss: 20 << 20,
            private: 2 << 20,
            script: "/srv/www/\"slow\".pl".into(),
            ran_as: RanAs::RegistryInChild,
        };
        Snapshot {
            now_us: 2_000_000_000,
            pool: PoolView {
                started_us: 1_000_000_000,
                generation: 1,
                accepted: 7,
                active: 1,
                max_active: 2,
                ..PoolView::default()
            },
            workers: vec![worker(0, true), worker(1, false)],
        }
    }

    #[test]
    fn query_picks_the_format() {
        assert_eq!(parse_query(""), (Format::Text, false));
        assert_eq!(parse_query("full"), (Format::Text, true));
        assert_eq!(parse_query("json"), (Format::Json, true));
        assert_eq!(parse_query("x=1&openmetrics"), (Format::OpenMetrics, true));
        assert_eq!(parse_query("prometheus"), (Format::Prometheus, true));
    }

    #[test]
    fn text_has_pool_lines_and_a_row_per_worker_when_full() {
        let snap = snapshot();
        let short = render(&snap, Format::Text, false);
        assert!(short.contains("accepted:                 7\n"), "{short}");
        assert!(short.contains("start time:               1970-01-01T00:16:40Z\n"));
        assert!(
            short.contains("start since:              1000\n"),
            "{short}"
        );
        assert!(!short.contains("rss_bytes"), "{short}");
        let full = render(&snap, Format::Text, true);
        let table: Vec<Vec<&str>> = full
            .split("\n\n")
            .nth(1)
            .expect("a table after the pool")
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(table.len(), 3, "{full}");
        assert_eq!(table[0][..3], ["slot", "pid", "state"]);
        assert_eq!(table[0].last(), Some(&"script"));
        assert_eq!(
            table[1],
            [
                "0",
                "100",
                "busy",
                "1970-01-01T00:16:40Z",
                "1000",
                "3",
                "1",
                "500000000",
                "1234",
                "20971520",
                "2097152",
                "registry-in-child",
                "/srv/www/\"slow\".pl"
            ]
        );
        assert_eq!(table[2][2], "idle");
        let header = full.lines().find(|l| l.starts_with("slot")).unwrap();
        let row = full.lines().find(|l| l.starts_with("0 ")).unwrap();
        assert_eq!(header.find("script"), row.find("/srv"), "aligned:\n{full}");
    }

    #[test]
    fn json_escapes_and_lists_workers() {
        let out = render(&snapshot(), Format::Json, true);
        assert!(out.starts_with("{\"pool\":\"fcgi-spawn\","), "{out}");
        assert!(out.contains("\"accepted\":7,"), "{out}");
        assert!(
            out.contains("\"script\":\"/srv/www/\\\"slow\\\".pl\""),
            "{out}"
        );
        assert!(out.contains(",\"workers\":[{\"slot\":0,"), "{out}");
        assert!(
            out.contains("\"isolation\":\"registry-in-child\","),
            "{out}"
        );
        assert!(out.ends_with("}]}\n"), "{out}");
    }

    #[test]
    fn metrics_are_typed_and_labelled() {
        let prom = render(&snapshot(), Format::Prometheus, true);
        assert!(prom
            .contains("# TYPE fcgi_spawn_accepted_total counter\nfcgi_spawn_accepted_total 7\n"));
        assert!(
            prom.contains("fcgi_spawn_worker_busy{slot=\"0\",pid=\"100\"} 1\n"),
            "{prom}"
        );
        assert!(prom
            .contains("fcgi_spawn_worker_request_elapsed_seconds{slot=\"0\",pid=\"100\"} 500\n"));
        assert!(!prom.contains("# EOF"));
        let om = render(&snapshot(), Format::OpenMetrics, true);
        assert!(om.contains("# TYPE fcgi_spawn_accepted counter\nfcgi_spawn_accepted_total 7\n"));
        assert!(om.ends_with("# EOF\n"));
    }
}
