//! Unit tests of `compare`: its arguments, the default warm-up, and the
//! verdict lines (which run differs first, on a fresh or a warm worker).

use super::report::runs_text;
use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: CompareArgs,
}

fn parse(argv: &[&str]) -> Result<CompareArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("compare").chain(argv.iter().copied())).map(|c| c.args)
}

#[test]
fn arguments_and_the_daemon_settings() {
    let a = parse(&[
        "--mode",
        "all",
        "--mask",
        r"\d+",
        "--mask",
        "x",
        "--param",
        "HTTP_A=1",
        "--data",
        "-",
        "--root",
        "/srv",
        "--preload",
        "CGI",
        "--isolation",
        "registry",
        "--config",
        "/etc/f.toml",
        "--",
        "/srv/a.pl",
        "-q",
    ])
    .unwrap();
    assert_eq!(a.mode, Some(ModeArg::All));
    assert_eq!(a.masks, [r"\d+", "x"]);
    assert_eq!(a.script, PathBuf::from("/srv/a.pl"));
    assert_eq!(a.query.as_deref(), Some("-q"));
    assert_eq!(a.repeat, 3);
    assert_eq!(a.timeout, 60);
    assert_eq!(a.settings.root, [PathBuf::from("/srv")]);
    assert_eq!(a.settings.preload, ["CGI"]);
    assert_eq!(a.settings.isolation, Some(Isolation::Registry));
    assert_eq!(a.settings.config, Some(PathBuf::from("/etc/f.toml")));

    assert!(parse(&["--mode", "cgi", "/srv/a.pl"]).is_err());
    assert!(parse(&[]).is_err(), "SCRIPT is required");
}

#[test]
fn the_default_warm_up_is_the_plain_get_of_the_script() {
    let policy = PathPolicy::new(Vec::new(), &[]);
    let get = |query: &str, body: Option<&[u8]>| CgiRequest {
        script_filename: "/srv/a.pl".into(),
        query: query.into(),
        body: body.map(|b| b.to_vec()),
        ..Default::default()
    };
    let warm = warm_up_requests(&[], &get("id=3", None), &policy).unwrap();
    assert_eq!(warm, [get("", None)]);
    let warm = warm_up_requests(&[], &get("", Some(b"x=1")), &policy).unwrap();
    assert_eq!(warm, [get("", None)]);
    assert!(warm_up_requests(&[], &get("", None), &policy)
        .unwrap()
        .is_empty());
    let e = warm_up_requests(&["/no/such.pl?x=1".into()], &get("", None), &policy)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--warm-up \"/no/such.pl?x=1\": /no/such.pl:"),
        "{e}"
    );
}

#[test]
fn which_runs_meet_a_fresh_worker() {
    // No warm-up: run 1 is the worker's first request.
    let fresh = |warm_ups, max| -> Vec<bool> {
        (1..=4)
            .map(|run| on_fresh_worker(warm_ups, run, max))
            .collect()
    };
    assert_eq!(fresh(0, 0), [true, false, false, false]);
    assert_eq!(fresh(1, 0), [false; 4]);
    assert_eq!(fresh(0, 1), [true; 4]);
    assert_eq!(fresh(0, 2), [true, false, true, false]);
    assert_eq!(fresh(1, 2), [false, true, false, true]);
}

fn verdict(fresh: &[bool], runs: &[&[u8]]) -> (bool, String) {
    let runs = ModeRuns {
        mode: Isolation::Registry,
        runs: runs.iter().map(|r| r.to_vec()).collect(),
        fresh: fresh.to_vec(),
        log: String::new(),
    };
    let mut out = String::new();
    let same = report_mode(&mut out, &runs, b"n=1\n", None);
    (same, out)
}

#[test]
fn a_difference_names_its_first_run_and_the_worker_it_met() {
    let no_warm_up = [true, false, false];
    let (same, out) = verdict(&no_warm_up, &[b"n=1\n", b"n=2\n", b"n=3\n"]);
    assert!(!same);
    assert!(
        out.starts_with(
            "registry: different from plain CGI on a warm worker (run 2): \
             runs 2 and 3 of 3 differ\n    (run 1 was identical: an earlier run left state"
        ),
        "{out}"
    );
    assert!(out.contains("+++ registry, run 2\n") && out.contains("+++ registry, run 3\n"));

    let (_, out) = verdict(&no_warm_up, &[b"n=1\n", b"n=1\n", b"n=2\n"]);
    assert!(out.contains("(run 3): run 3 of 3 differs\n    (runs 1 and 2 were identical"));

    let (_, out) = verdict(&no_warm_up, &[b"n=2\n", b"n=2\n"]);
    assert!(
        out.starts_with(
            "registry: different from plain CGI on a fresh worker (run 1): \
             runs 1 and 2 of 3 differ (run 3 not sent: the worker was still busy with run 2)\n---"
        ),
        "{out}"
    );
    assert!(out.contains("+++ registry, runs 1 and 2\n"), "{out}");

    let after_warm_up = [false, false, false];
    let (_, out) = verdict(&after_warm_up, &[b"n=2\n", b"n=3\n", b"n=4\n"]);
    assert!(out.starts_with(
        "registry: different from plain CGI on a warm worker (run 1): runs 1, 2 and 3 of 3 differ\n---"
    ));
}

#[test]
fn an_identical_verdict_says_which_runs_were_warm() {
    let same = |fresh: &[bool]| {
        let runs = vec![&b"n=1\n"[..]; fresh.len()];
        let (same, out) = verdict(fresh, &runs);
        assert!(same);
        out
    };
    assert_eq!(
        same(&[false, false]),
        "registry: identical (2 runs on one warm worker)\n"
    );
    assert_eq!(
        same(&[true, false, false]),
        "registry: identical (3 runs on one worker, warm from run 2 on)\n"
    );
    assert_eq!(
        same(&[true]),
        "registry: identical (1 run, on a fresh worker)\n"
    );
    assert_eq!(
        same(&[true, true]),
        "registry: identical (2 runs, each on a fresh worker: max_requests replaces it)\n"
    );
    assert_eq!(
        same(&[true, false, true]),
        "registry: identical (3 runs; a fresh worker for runs 1 and 3: max_requests replaces it)\n"
    );
}

#[test]
fn run_lists_read_as_english() {
    assert_eq!(runs_text(&[2]), "run 2");
    assert_eq!(runs_text(&[2, 3]), "runs 2 and 3");
    assert_eq!(runs_text(&[1, 2, 3]), "runs 1, 2 and 3");
}
