//! The fuzz targets (fuzz/src/) as a bounded smoke test of `cargo test`:
//! each target runs its corpus (fuzz/corpus/<target>/, real nginx and
//! Apache traffic), then random mutations of it, for a few seconds, its
//! invariants checked on every input as under libFuzzer. Neither coverage
//! guidance nor libFuzzer, whose build alone took minutes of the test run:
//! this catches a change that breaks a target's rules near real traffic;
//! the long coverage-guided runs are `script/fuzz`.
//!
//! `FCGI_SPAWN_FUZZ_SECONDS` is each target's time (default 3);
//! `FCGI_SPAWN_FUZZ_SEED` replays the mutations of a run (each target
//! prints its seed and how many inputs it ran). An input that panics is
//! written to target/tmp/fuzz-smoke/<target>-crash and fails the test,
//! which says how to replay it under libFuzzer.

// The fuzz crate's library, compiled here with the daemon's release build
// (its dependencies are the daemon's, and `arbitrary`).
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::fs;
use std::io::Write;
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn record() {
    smoke("record", fuzz::record::run, false);
}

#[test]
fn name_values() {
    smoke("name_values", fuzz::name_values::run, false);
}

#[test]
fn preamble() {
    smoke("preamble", fuzz::preamble::run, false);
}

#[test]
fn handover() {
    smoke("handover", fuzz::handover::run, true);
}

/// Held for writing by a target that runs alone, for reading by the
/// others. `handover`'s threads hand the connection to each other: beside
/// a busy core each hand-over waits for a time slice, and it runs a
/// twelfth of the inputs it runs alone (400 a second instead of 5,000).
static CPU: RwLock<()> = RwLock::new(());

/// Runs `target` on its corpus, then on mutations of it until its time is
/// up (`alone`: without other targets beside it); panics, naming the
/// input's file, on the first input it panics on.
fn smoke(target: &str, run: fn(&[u8]), alone: bool) {
    let (_alone, _shared);
    if alone {
        _alone = CPU.write().unwrap_or_else(PoisonError::into_inner);
    } else {
        _shared = CPU.read().unwrap_or_else(PoisonError::into_inner);
    }
    let seconds: f64 = setting("FCGI_SPAWN_FUZZ_SECONDS").unwrap_or(3.0);
    let seed = setting("FCGI_SPAWN_FUZZ_SEED").unwrap_or_else(|| fresh_seed(target));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let corpus = corpus(target);
    // What an input is, for the failure: a corpus file, or the seed that
    // makes the mutation again.
    let try_input = |input: &[u8], origin: &dyn Fn() -> String| {
        if catch_unwind(|| run(input)).is_err() {
            crashed(target, input, &origin());
        }
    };

    // The seeds always; what local libFuzzer runs added, while time is left.
    let mut runs = 0u64;
    for (path, input) in &corpus {
        if !is_seed(path) && Instant::now() >= deadline {
            break;
        }
        try_input(input, &|| format!("the corpus file {}", path.display()));
        runs += 1;
    }
    let corpus_runs = runs;
    let inputs: Vec<&[u8]> = corpus.iter().map(|(_, input)| &input[..]).collect();
    let largest = inputs.iter().map(|input| input.len()).max().unwrap_or(0);
    let max_len = (2 * largest).max(4096);
    let mut rng = Rng::new(seed);
    while Instant::now() < deadline {
        let origin = || {
            format!(
                "a mutation of the corpus (this run again: FCGI_SPAWN_FUZZ_SEED={seed} \
                 cargo test --release --test fuzz_smoke {target})"
            )
        };
        try_input(&mutate(&mut rng, &inputs, max_len), &origin);
        runs += 1;
    }

    // Past the test harness's capture, so that the counts show in a
    // passing run's output too.
    let elapsed = start.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "fuzz smoke {target}: {runs} inputs ({corpus_runs} of the corpus) in {elapsed:.1} s, \
         {:.0} a second, seed {seed}",
        runs as f64 / elapsed,
    );
}

/// An environment variable's value, parsed.
fn setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    let parsed = value.parse().ok();
    assert!(parsed.is_some(), "{name}={value:?} is not a number");
    parsed
}

/// A seed of its own for each target and run.
fn fresh_seed(target: &str) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970");
    let name = target
        .bytes()
        .fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(b));
    now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32) ^ name
}

/// The target's corpus, its seeds first, each in the order of its name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    paths.sort_by_key(|path| (!is_seed(path), path.clone()));
    let corpus: Vec<_> = paths
        .into_iter()
        .map(|path| {
            let input = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, input)
        })
        .collect();
    assert!(
        corpus.iter().any(|(path, _)| is_seed(path)),
        "{}: no seed-* files (the seed corpus is in git)",
        dir.display()
    );
    corpus
}

/// A file of the seed corpus (in git), not one a libFuzzer run added.
fn is_seed(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("seed-"))
}

/// Keeps the input that made `target` panic and fails the test.
fn crashed(target: &str, input: &[u8], origin: &str) -> ! {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke");
    let file = dir.join(format!("{target}-crash"));
    fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&file, input))
        .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    // The flags are script/fuzz's, whose build this reuses.
    panic!(
        "the fuzz target {target} panicked (see above) on {origin}; the input is in \
         {file}; replay it under libFuzzer (FUZZ_SHOW=1 prints its records) with\n    \
         cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a --dev \
         --target-dir ../target/fuzz {target} {file}",
        file = file.display(),
    );
}

/// An input made from the corpus: now and then pure noise, usually one of
/// its inputs changed one to four times the way libFuzzer's mutations do.
fn mutate(rng: &mut Rng, corpus: &[&[u8]], max_len: usize) -> Vec<u8> {
    if rng.below(16) == 0 {
        let len = rng.below(4096);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let mut data = corpus[rng.below(corpus.len())].to_vec();
    for _ in 0..=rng.below(4) {
        let other = corpus[rng.below(corpus.len())];
        mutate_once(rng, &mut data, other);
    }
    data.truncate(max_len);
    data
}

/// Values that sit on the edges of lengths, ids and types.
const INTERESTING: [u8; 9] = [0, 1, 2, 7, 8, 11, 0x7f, 0x80, 0xff];

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(10) {
        0 if len > 0 => data[rng.below(len)] ^= 1 << rng.below(8),
        1 if len > 0 => data[rng.below(len)] = rng.byte(),
        2 if len > 0 => data[rng.below(len)] = INTERESTING[rng.below(INTERESTING.len())],
        // The head picks raw or generated, the limits and the schedule.
        3 if len > 0 => data[rng.below(len.min(8))] = rng.byte(),
        4 => data.truncate(rng.below(len + 1)),
        5 => {
            let at = rng.below(len + 1);
            let end = at + rng.below(len - at + 1);
            data.drain(at..end);
        }
        6 => {
            let at = rng.below(len + 1);
            let longest = if rng.below(8) == 0 { 1024 } else { 64 };
            let run_len = 1 + rng.below(longest);
            let run: Vec<u8> = if rng.below(2) == 0 {
                vec![rng.byte(); run_len]
            } else {
                (0..run_len).map(|_| rng.byte()).collect()
            };
            data.splice(at..at, run);
        }
        // Two inputs spliced: the head of one, the tail of the other.
        7 => {
            data.truncate(rng.below(len + 1));
            data.extend_from_slice(&other[rng.below(other.len() + 1)..]);
        }
        // A piece of another input (whole records, often) inserted.
        8 => {
            let from = rng.below(other.len() + 1);
            let to = from + rng.below(other.len() - from + 1);
            let at = rng.below(len + 1);
            data.splice(at..at, other[from..to].iter().copied());
        }
        // A piece of the input repeated.
        _ => {
            let from = rng.below(len + 1);
            let to = from + rng.below((len - from).min(512) + 1);
            let piece = data[from..to].to_vec();
            data.splice(to..to, piece);
        }
    }
}

/// xorshift64*: reproducible from its seed, and enough for mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}
