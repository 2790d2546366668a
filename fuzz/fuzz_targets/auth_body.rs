#![no_main]
//! `remo::fuzz::auth_body` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::auth_body(data));
