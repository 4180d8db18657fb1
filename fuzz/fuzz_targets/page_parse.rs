//! Fuzz target: see `cairn_fuzz::page_parse`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz::page_parse(data));
