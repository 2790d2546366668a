#![no_main]
//! `remo::fuzz::nft_listing` (see src/fuzz.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| remo::fuzz::nft_listing(data));
