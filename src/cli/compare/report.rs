//! `compare`'s report: one verdict a mode, naming the first run that
//! differs from plain CGI and whether its worker was fresh or warm, a
//! diff a distinct difference, what the daemon logged meanwhile.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::daemon::indent;
use super::diff::{changed_lines, unified};
use super::ModeRuns;

/// Lines of a log or of stderr shown at most.
const MAX_LOG_LINES: usize = 40;

/// Writes one mode's verdict, with a diff per distinct difference; returns
/// whether every run was identical to plain CGI. A difference names the
/// first run that shows it and whether that run's worker was warm: a page
/// that is right on a fresh worker and wrong from the second run on is
/// state a run left in the worker, which plain CGI never has.
pub(super) fn report_mode(
    out: &mut String,
    runs: &ModeRuns,
    cgi_text: &[u8],
    volatile: Option<&BTreeSet<usize>>,
) -> bool {
    let mode = runs.mode.as_str();
    let texts = &runs.runs;
    let asked = runs.fresh.len();
    // Distinct differing texts, with the runs (1-based) that gave each.
    let mut differing: Vec<(&[u8], Vec<usize>)> = Vec::new();
    let mut reordered = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        if text.as_slice() == cgi_text {
            continue;
        }
        if same_lines_in_another_order(text, cgi_text) {
            reordered.push(i + 1);
            continue;
        }
        match differing.iter_mut().find(|(t, _)| *t == text.as_slice()) {
            Some((_, runs)) => runs.push(i + 1),
            None => differing.push((text, vec![i + 1])),
        }
    }
    let mut differing_runs: Vec<usize> = differing.iter().flat_map(|(_, r)| r.clone()).collect();
    differing_runs.sort_unstable();
    let Some(&first) = differing_runs.first() else {
        let _ = writeln!(
            out,
            "{mode}: identical ({})",
            runs_on_workers(&runs.fresh[..texts.len()])
        );
        if !reordered.is_empty() {
            note_reordered(out, &format!("{mode} {}", runs_text(&reordered)));
        }
        return true;
    };
    let warm = !runs.fresh[first - 1];
    let _ = write!(
        out,
        "{mode}: different from plain CGI on a {} worker (run {first}): {} of {asked} {}",
        if warm { "warm" } else { "fresh" },
        runs_text(&differing_runs),
        if differing_runs.len() == 1 {
            "differs"
        } else {
            "differ"
        }
    );
    if texts.len() < asked {
        let not_sent: Vec<usize> = (texts.len() + 1..=asked).collect();
        let _ = write!(
            out,
            " ({} not sent: the worker was still busy with run {})",
            runs_text(&not_sent),
            texts.len()
        );
    }
    out.push('\n');
    if warm && first > 1 {
        let before: Vec<usize> = (1..first).collect();
        let _ = writeln!(
            out,
            "    ({} identical: an earlier run left state in the worker that changes this page)",
            if before.len() == 1 {
                "run 1 was".to_string()
            } else {
                format!("{} were", runs_text(&before))
            }
        );
    }
    for (text, which) in &differing {
        let name = format!("{mode}, {}", runs_text(which));
        out.push_str(&unified(cgi_text, text, "plain CGI", &name));
        if let Some(volatile) = volatile {
            if changed_lines(cgi_text, text).is_subset(volatile) {
                let _ = writeln!(
                    out,
                    "({name} differs only in lines that differ between two plain CGI runs too)"
                );
            }
        }
    }
    false
}

/// The same lines, each as many times, in another order: what hash order
/// does to a page (AWStats' rows with equal counts), and it differs in
/// every perl process, under plain CGI too. Not a difference.
pub(super) fn same_lines_in_another_order(a: &[u8], b: &[u8]) -> bool {
    fn sorted(text: &[u8]) -> Vec<&[u8]> {
        let mut lines: Vec<&[u8]> = text.split(|&c| c == b'\n').collect();
        lines.sort_unstable();
        lines
    }
    a.len() == b.len() && sorted(a) == sorted(b)
}

pub(super) fn note_reordered(out: &mut String, what: &str) {
    let _ = writeln!(
        out,
        "note: {what}: the same lines as plain CGI in another order (Perl's hash order, \
         which differs in every process, so between two plain CGI runs too): counted as identical"
    );
}

/// The runs of an identical verdict and the worker they met, from whether
/// each met a fresh one.
pub(super) fn runs_on_workers(fresh: &[bool]) -> String {
    let n = fresh.len();
    let count = if n == 1 {
        "1 run".to_string()
    } else {
        format!("{n} runs")
    };
    let fresh_runs: Vec<usize> = (1..=n).filter(|&run| fresh[run - 1]).collect();
    match fresh_runs.as_slice() {
        [] => format!("{count} on one warm worker"),
        [1] if n == 1 => "1 run, on a fresh worker".to_string(),
        [1] => format!("{count} on one worker, warm from run 2 on"),
        f if f.len() == n => format!("{count}, each on a fresh worker: max_requests replaces it"),
        f => format!(
            "{count}; a fresh worker for {}: max_requests replaces it",
            runs_text(f)
        ),
    }
}

pub(super) fn runs_text(runs: &[usize]) -> String {
    let list: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
    match list.as_slice() {
        [one] => format!("run {one}"),
        [init @ .., last] => format!("runs {} and {last}", init.join(", ")),
        [] => "no run".to_string(),
    }
}

pub(super) fn show_lines(out: &mut String, title: &str, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    let shown = lines.len().min(MAX_LOG_LINES);
    out.push_str(&indent(&lines[..shown].join("\n")));
    if lines.len() > shown {
        let _ = writeln!(out, "    ... ({} more lines)", lines.len() - shown);
    }
}
