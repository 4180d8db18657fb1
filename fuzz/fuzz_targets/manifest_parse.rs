//! Fuzz target: see `cairn_fuzz::manifest_parse`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz::manifest_parse(data));
