//! Fuzz target: see `cairn_fuzz::job_events`.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: cairn_fuzz::JobInput| cairn_fuzz::job_events(&input));
