#![no_main]
//! `remo::fuzz::keyfile` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::keyfile(data));
