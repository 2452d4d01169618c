//! Build script: compiles the C glue around libperl and generates its Rust
//! declarations.
//!
//! The Perl API is mostly macros that depend on how the system perl was
//! configured (threads, multiplicity), so we ask that perl for its own
//! compiler and linker flags (`ExtUtils::Embed`) instead of hard-coding them,
//! compile `src/perl/glue/*.c` with them, and let bindgen read the small
//! glue header (which exposes plain C functions only, never Perl structs).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The C glue, one job per file (see the comment at the top of glue.c).
const GLUE_SOURCES: &[&str] = &[
    "glue.c",
    "output.c",
    "state.c",
    "packages.c",
    "code.c",
    "process.c",
    "request.c",
];

fn perl_output(args: &[&str]) -> String {
    let out = Command::new("perl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `perl` to learn how to embed it: {e}; install perl")
        });
    if !out.status.success() {
        panic!(
            "`perl {}` failed: {}\nInstall the Perl development files: apt-get install libperl-dev",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("perl printed non-UTF-8 flags")
}

/// `--version` names the commit it was built from: `git rev-parse --short
/// HEAD`, or "unknown" outside a checkout (a tarball).
fn embed_git_commit() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FCGI_SPAWN_COMMIT={commit}");
    // Built again when HEAD moves (a worktree's HEAD and refs are found by
    // git itself; the reflog moves with every commit). Only files that
    // exist: cargo counts a missing one as changed, and would build the
    // crate again every time (a checkout without packed refs).
    let mut watched = vec![
        "HEAD".to_string(),
        "logs/HEAD".to_string(),
        "packed-refs".to_string(),
    ];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for path in watched {
        if let Some(p) = git(&["rev-parse", "--git-path", &path]) {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src/perl/glue");

    let ccopts = perl_output(&["-MExtUtils::Embed", "-e", "ccopts"]);
    let ldopts = perl_output(&["-MExtUtils::Embed", "-e", "ldopts"]);
    let archlib = perl_output(&["-MConfig", "-e", "print $Config{archlibexp}"]);
    // The perl whose libperl is embedded: `compare` runs plain CGI with it.
    let perlpath = perl_output(&["-MConfig", "-e", "print $Config{perlpath}"]);
    println!("cargo:rustc-env=FCGI_SPAWN_PERL={}", perlpath.trim());
    let libperl = perl_output(&[
        "-MConfig",
        "-e",
        "print \"$Config{libperl} $Config{version}\"",
    ]);
    println!("cargo:rustc-env=FCGI_SPAWN_LIBPERL={}", libperl.trim());
    embed_git_commit();
    let core = PathBuf::from(archlib.trim()).join("CORE");
    if !core.join("perl.h").exists() {
        panic!(
            "{} not found: the Perl headers are missing. Install them with: apt-get install libperl-dev",
            core.join("perl.h").display()
        );
    }

    let mut build = cc::Build::new();
    for file in GLUE_SOURCES {
        build.file(format!("src/perl/glue/{file}"));
    }
    build.warnings(false);
    for flag in ccopts.split_whitespace() {
        build.flag(flag);
    }
    build.compile("fcgi_spawn_glue");

    // Link flags: keep the -L/-l parts; `-Wl,-E` exports our symbols so XS
    // modules loaded by DynaLoader can resolve the Perl API from the binary.
    for flag in ldopts.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if flag.starts_with("-Wl,") {
            println!("cargo:rustc-link-arg={flag}");
        }
    }

    let bindings = bindgen::Builder::default()
        .header("src/perl/glue/glue.h")
        .allowlist_function("fs_.*")
        .allowlist_type("fs_.*")
        .allowlist_var("FS_.*")
        .generate()
        .expect("bindgen could not read src/perl/glue/glue.h (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("glue_bindings.rs");
    bindings
        .write_to_file(out)
        .expect("cannot write glue bindings");
}
