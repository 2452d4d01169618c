//! libFuzzer's entry to the `handover` target (fuzz/src/handover.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fcgi_spawn_fuzz::handover::run(data));
