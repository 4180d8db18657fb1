//! Signatures cover the exact bytes; nothing else passes.

use cairn_integrity::{ErrorKind as IntegrityKind, SigningKey};
use cairn_manifest::*;

use super::fixture::sample;

fn parse(bytes: &[u8], sig: &[u8]) -> Result<UnverifiedManifest> {
    UnverifiedManifest::parse(bytes.to_vec(), sig, DEFAULT_MAX_MANIFEST_BYTES)
}

#[test]
fn any_changed_byte_is_refused() {
    let key = SigningKey::generate().unwrap();
    let signed = SignedManifest::sign(sample(&key), &key).unwrap();
    let bytes = signed.bytes();
    // Every 7th byte keeps this quick; each flip must fail somewhere.
    for i in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x20;
        let outcome =
            parse(&bad, signed.signature().as_bytes()).and_then(|u| u.verify(&key.public_key()));
        assert!(outcome.is_err(), "flip at {i} accepted");
    }
}

#[test]
fn whitespace_reformatting_is_refused() {
    // Same JSON value, different bytes: the signature is over bytes, not values.
    let key = SigningKey::generate().unwrap();
    let signed = SignedManifest::sign(sample(&key), &key).unwrap();
    let pretty = serde_json::to_vec_pretty(signed.manifest()).unwrap();
    let err = parse(&pretty, signed.signature().as_bytes())
        .unwrap()
        .verify(&key.public_key())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification);
}

#[test]
fn wrong_key_names_both_keys() {
    let key = SigningKey::generate().unwrap();
    let other = SigningKey::generate().unwrap();
    let signed = SignedManifest::sign(sample(&key), &key).unwrap();
    let err = parse(signed.bytes(), signed.signature().as_bytes())
        .unwrap()
        .verify(&other.public_key())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification);
    let msg = err.to_string();
    assert!(msg.contains(&key.key_id().to_string()), "{msg}");
    assert!(msg.contains(&other.key_id().to_string()), "{msg}");
    match err {
        Error::Integrity(e) => assert_eq!(e.kind(), IntegrityKind::Verification),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn forged_signer_field_does_not_help() {
    // A manifest signed by an attacker's key but claiming the trusted key's id.
    let trusted = SigningKey::generate().unwrap();
    let attacker = SigningKey::generate().unwrap();
    let m = sample(&trusted);
    let bytes = serde_json::to_vec(&m).unwrap();
    let sig = attacker.sign(&bytes);
    let err = parse(&bytes, sig.as_bytes())
        .unwrap()
        .verify(&trusted.public_key())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification);
}

#[test]
fn signature_must_be_64_bytes() {
    let key = SigningKey::generate().unwrap();
    let signed = SignedManifest::sign(sample(&key), &key).unwrap();
    assert!(parse(signed.bytes(), &signed.signature().as_bytes()[..63]).is_err());
}

#[test]
fn unknown_major_version_is_a_clear_error() {
    let key = SigningKey::generate().unwrap();
    let signed = SignedManifest::sign(sample(&key), &key).unwrap();
    let text = String::from_utf8(signed.bytes().to_vec()).unwrap();
    let current = format!("\"version\":\"{}\"", FormatVersion::CURRENT);
    assert!(text.contains(&current));
    let v2 = text.replace(&current, "\"version\":\"2.0\"");
    // Even with a shape this build cannot parse, the version is what is reported.
    let v2 = v2.replace("\"entries\":[", "\"entries_v2\":[");
    let err = parse(v2.as_bytes(), signed.signature().as_bytes()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.to_string().contains("2.0"), "{err}");
}

#[test]
fn later_minor_version_with_new_fields_is_read() {
    let key = SigningKey::generate().unwrap();
    let m = sample(&key);
    let mut value = serde_json::to_value(&m).unwrap();
    value["version"] = "1.7".into();
    value["added_in_1_7"] = serde_json::json!({"anything": [1, 2, 3]});
    let bytes = serde_json::to_vec(&value).unwrap();
    let sig = key.sign(&bytes);
    let read = parse(&bytes, sig.as_bytes())
        .unwrap()
        .verify(&key.public_key())
        .unwrap();
    assert_eq!(
        read.manifest().version,
        FormatVersion { major: 1, minor: 7 }
    );
    assert_eq!(read.manifest().entries, m.entries);
}

#[test]
fn size_limit() {
    let key = SigningKey::generate().unwrap();
    let signed = SignedManifest::sign(sample(&key), &key).unwrap();
    let err = UnverifiedManifest::parse(signed.bytes().to_vec(), signed.signature().as_bytes(), 10)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
}

#[test]
fn signed_but_inconsistent_is_refused() {
    // Even a correctly signed manifest must make sense.
    let key = SigningKey::generate().unwrap();
    let mut m = sample(&key);
    m.components[0].entries = 99;
    let bytes = serde_json::to_vec(&m).unwrap();
    let sig = key.sign(&bytes);
    let err = parse(&bytes, sig.as_bytes())
        .unwrap()
        .verify(&key.public_key())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format);
}
