#![no_main]
//! `remo::fuzz::fw_config` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::fw_config(data));
