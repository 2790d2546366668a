#![no_main]
//! `remo::fuzz::descriptors` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::descriptors(data));
