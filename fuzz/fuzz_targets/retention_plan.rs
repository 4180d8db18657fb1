//! Fuzz target: see `cairn_fuzz::retention_plan`.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: cairn_fuzz::PlanInput| cairn_fuzz::retention_plan(&input));
