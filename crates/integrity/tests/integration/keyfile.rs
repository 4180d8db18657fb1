//! Key files: permissions, no overwrite, clear errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use cairn_integrity::{ErrorKind, PublicKey, SigningKey};

#[test]
fn saved_secret_key_is_private_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    let key = SigningKey::generate().unwrap();
    key.save(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(SigningKey::load(&path).unwrap().key_id(), key.key_id());
    // Nothing but the key file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn save_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    SigningKey::generate().unwrap().save(&path).unwrap();
    let before = fs::read(&path).unwrap();
    let err = SigningKey::generate().unwrap().save(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn readable_secret_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    SigningKey::generate().unwrap().save(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = SigningKey::load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsecurePermissions);
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn missing_and_garbage_files_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let err = SigningKey::load(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("nope.pem"), "{err}");

    let garbage = dir.path().join("garbage.pem");
    fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        SigningKey::load(&garbage).unwrap_err().kind(),
        ErrorKind::Format
    );

    let huge = dir.path().join("huge.pem");
    fs::write(&huge, vec![b'A'; 100_000]).unwrap();
    fs::set_permissions(&huge, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        SigningKey::load(&huge).unwrap_err().kind(),
        ErrorKind::Format
    );
}

#[test]
fn public_key_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("public.pem");
    let key = SigningKey::generate().unwrap();
    key.public_key().save(&path).unwrap();
    assert_eq!(PublicKey::load(&path).unwrap(), key.public_key());
}
