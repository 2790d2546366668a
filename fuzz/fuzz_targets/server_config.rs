#![no_main]
//! `remo::fuzz::server_config` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::server_config(data));
