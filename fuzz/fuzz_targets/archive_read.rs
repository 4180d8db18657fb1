//! Fuzz target: see `cairn_fuzz::archive_read`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz::archive_read(data));
