//! Benchmarks for Cairn live under `benches/`; `src/bin/gen-dataset.rs` makes the end-to-end dataset.
