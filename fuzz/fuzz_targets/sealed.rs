#![no_main]
//! `remo::fuzz::sealed` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::sealed(data));
