//! libFuzzer's entry to the `name_values` target (fuzz/src/name_values.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fcgi_spawn_fuzz::name_values::run(data));
