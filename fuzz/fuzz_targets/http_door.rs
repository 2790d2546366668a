#![no_main]
//! `remo::fuzz::http_door` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::http_door(data));
