//! Integration tests of cairn-archive.

mod integration {
    mod capture;
    mod common;
    mod gnu;
    mod golden;
    mod hostile;
    mod incremental;
    mod ingest;
    mod roundtrip;
    mod seek;
    mod segments;
    mod tamper;
    mod v2;
}
