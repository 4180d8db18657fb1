//! Fuzz target: see `cairn_fuzz::unpack`.
#![no_main]
libfuzzer_sys::fuzz_target!(|entries: Vec<cairn_fuzz::RawEntry>| cairn_fuzz::unpack(&entries));
