#![no_main]
//! `remo::fuzz::cert_files` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::cert_files(data));
