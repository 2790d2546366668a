#![no_main]
//! `remo::fuzz::fcgi_conn` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::fcgi_conn(data));
