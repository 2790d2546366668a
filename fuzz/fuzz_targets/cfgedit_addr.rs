#![no_main]
//! `remo::fuzz::cfgedit_addr` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::cfgedit_addr(data));
