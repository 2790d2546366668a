#![no_main]
//! `remo::fuzz::inventory` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::inventory(data));
