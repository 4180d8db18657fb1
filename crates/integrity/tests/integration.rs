//! Integration tests of cairn-integrity: known answers, OpenSSL interop, key files.

mod integration {
    mod keyfile;
    mod openssl;
    mod rfc8032;
}
