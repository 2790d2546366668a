#![no_main]
//! `remo::fuzz::framing_text` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::framing_text(data));
