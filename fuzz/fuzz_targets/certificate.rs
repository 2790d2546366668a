#![no_main]
//! `remo::fuzz::certificate` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::certificate(data));
