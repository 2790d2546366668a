#![no_main]
//! `remo::fuzz::b64_codec` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::b64_codec(data));
