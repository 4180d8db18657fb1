//! Fuzz target: see `cairn_fuzz::roundtrip`.
#![no_main]
libfuzzer_sys::fuzz_target!(
    |input: (Vec<cairn_fuzz::File>, bool)| cairn_fuzz::roundtrip(&input.0, input.1)
);
