//! Fuzz target: see `cairn_fuzz::root_parse`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz::root_parse(data));
