#![no_main]
//! `remo::fuzz::fcgi_records` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::fcgi_records(data));
