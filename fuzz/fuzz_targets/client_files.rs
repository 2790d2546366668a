#![no_main]
//! `remo::fuzz::client_files` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::client_files(data));
