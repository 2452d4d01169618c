//! The `fcgi-spawn` binary: everything is in the library (`lib.rs`).

fn main() {
    std::process::exit(fcgi_spawn::cli::main());
}
