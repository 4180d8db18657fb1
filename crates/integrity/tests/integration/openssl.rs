//! Interoperability with OpenSSL, both ways.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use cairn_integrity::{PublicKey, SigningKey};
use cairn_testkit::{require_tool, run_ok};

#[test]
fn openssl_key_loads_and_signs_like_openssl() {
    let Some(openssl) = require_tool("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    run_ok(
        Command::new(&openssl)
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&key_path),
    );
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    let key = SigningKey::load(&key_path).unwrap();

    // The public key OpenSSL derives is the one Cairn derives.
    let pub_pem = run_ok(
        Command::new(&openssl)
            .args(["pkey", "-pubout", "-in"])
            .arg(&key_path),
    );
    let openssl_public =
        PublicKey::from_public_key_pem(std::str::from_utf8(&pub_pem).unwrap()).unwrap();
    assert_eq!(openssl_public, key.public_key());

    // Ed25519 is deterministic: OpenSSL's signature is Cairn's, byte for byte.
    let msg_path = dir.path().join("msg");
    fs::write(&msg_path, b"a manifest, more or less").unwrap();
    let sig = run_ok(
        Command::new(&openssl)
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(&key_path)
            .arg("-in")
            .arg(&msg_path),
    );
    assert_eq!(sig, key.sign(b"a manifest, more or less").as_bytes());
}

#[test]
fn cairn_signature_verifies_with_openssl() {
    let Some(openssl) = require_tool("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let pub_path = dir.path().join("public.pem");
    key.public_key().save(&pub_path).unwrap();
    let msg_path = dir.path().join("manifest.json");
    let sig_path = dir.path().join("manifest.sig");
    let message = br#"{"version":"1.0"}"#;
    fs::write(&msg_path, message).unwrap();
    fs::write(&sig_path, key.sign(message).as_bytes()).unwrap();

    let verify = |msg: &std::path::Path| {
        Command::new(&openssl)
            .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(&pub_path)
            .arg("-in")
            .arg(msg)
            .arg("-sigfile")
            .arg(&sig_path)
            .output()
            .unwrap()
    };
    let ok = verify(&msg_path);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Signature Verified Successfully"));

    // And OpenSSL refuses a changed message.
    let tampered = dir.path().join("tampered.json");
    fs::write(&tampered, br#"{"version":"1.1"}"#).unwrap();
    assert!(!verify(&tampered).status.success());
}

#[test]
fn cairn_secret_key_loads_in_openssl() {
    let Some(openssl) = require_tool("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let key_path = dir.path().join("cairn.pem");
    key.save(&key_path).unwrap();
    let pub_pem = run_ok(
        Command::new(&openssl)
            .args(["pkey", "-pubout", "-in"])
            .arg(&key_path),
    );
    assert_eq!(
        String::from_utf8(pub_pem).unwrap(),
        key.public_key().to_public_key_pem().unwrap()
    );
}
