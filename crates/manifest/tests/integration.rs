//! Integration tests of cairn-manifest.

mod integration {
    mod fixture;
    mod roundtrip;
    mod signing;
    mod span;
    mod v2;
    mod validation;
}
