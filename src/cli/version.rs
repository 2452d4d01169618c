//! `fcgi-spawn --version`: what a bug report needs to name the build — the
//! version and commit, the libperl it embeds (the file mapped into this
//! process, and the version it was built against), and what that perl says
//! of itself once started: `$^V` and `@INC`, where `--preload` looks.

use crate::perl::{Interpreter, Outcome};

/// Prints the version block; returns the exit code.
pub fn print() -> i32 {
    println!(
        "fcgi-spawn {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        env!("FCGI_SPAWN_COMMIT")
    );
    let (soname, built_against) = env!("FCGI_SPAWN_LIBPERL")
        .split_once(' ')
        .unwrap_or((env!("FCGI_SPAWN_LIBPERL"), "?"));
    let mapped = mapped_libperl(soname).unwrap_or_else(|| soname.to_string());
    println!("libperl: {mapped} (built against perl {built_against})");
    let perl = match Interpreter::start() {
        Ok(perl) => perl,
        Err(e) => {
            eprintln!("fcgi-spawn: cannot start the embedded perl: {e}");
            return 1;
        }
    };
    // The interpreter prints through its own STDOUT, which is this
    // process's stdout.
    let code = r#"$| = 1; printf "perl: %vd\n\@INC:\n", $^V; print "  $_\n" for @INC; 1"#;
    let printed = perl.eval(code);
    std::mem::forget(perl);
    match printed {
        Outcome::Returned(_) => 0,
        other => {
            eprintln!("fcgi-spawn: the embedded perl could not report itself: {other:?}");
            1
        }
    }
}

/// The path of the libperl this process has mapped (`/proc/self/maps`).
fn mapped_libperl(soname: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            path.rsplit('/')
                .next()
                .is_some_and(|f| f.starts_with(soname))
        })
        .map(str::to_string)
}
