//! libFuzzer's entry to the `preamble` target (fuzz/src/preamble.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fcgi_spawn_fuzz::preamble::run(data));
