//! libFuzzer's entry to the `record` target (fuzz/src/record.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fcgi_spawn_fuzz::record::run(data));
