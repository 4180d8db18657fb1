//! Seals: the small signed object stored beside every archive.
//!
//! A seal binds a backup id to the exact archive bytes (size and SHA-256) and to the
//! exact manifest bytes, and says where the manifest's frames start in the archive.
//! With it a stored blob can be checked with one sequential read and no
//! decompression, and the manifest can be fetched with one range read.
//!
//! # Encoding
//!
//! Two lines of ASCII text:
//!
//! ```text
//! {"format":"cairn-seal","version":1,"backup_id":…,"signer":…}\n
//! <128 hex digits: the Ed25519 signature of the first line, without its newline>\n
//! ```
//!
//! The signature covers the exact bytes of the first line, so nothing is ever
//! re-serialised before verification.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result, VerificationFailed};
use crate::key::{KeyId, PublicKey, Signature, SigningKey};

/// Seals larger than this are refused before parsing.
pub const MAX_SEAL_LEN: usize = 4096;

const SEAL_FORMAT: &str = "cairn-seal";
const SEAL_VERSION: u32 = 1;

/// What a seal states about an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The backup the archive holds.
    pub backup_id: String,
    /// The archive's length in bytes.
    pub archive_size: u64,
    /// The SHA-256 of the whole archive.
    pub archive_sha256: Sha256Digest,
    /// The SHA-256 of the exact bytes of the archive's `manifest.json`.
    pub manifest_sha256: Sha256Digest,
    /// Where the frames holding the manifest start, in compressed bytes.
    pub manifest_offset: u64,
    /// How many compressed bytes those frames take.
    pub manifest_length: u64,
    /// The id of the key that signed the manifest and this seal.
    pub signer: KeyId,
    /// Set when the stored object is the archive encrypted (an age file):
    /// `archive_size` and `archive_sha256` are then the stored bytes', and
    /// this holds the plaintext archive's, which the manifest fields
    /// describe. Absent (and not written) for a plain archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<SealEncryption>,
}

/// What the seal of an encrypted archive states about its plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealEncryption {
    /// The plaintext archive's length in bytes.
    pub plain_size: u64,
    /// The SHA-256 of the plaintext archive.
    pub plain_sha256: Sha256Digest,
    /// The fingerprints of the recipients it was encrypted to (16 hex
    /// digits each: never the keys).
    pub recipients: Vec<String>,
    /// The backups an incremental archive's data is partly in, nearest
    /// first (its manifest says so too, but reading it needs an identity:
    /// this lets retention keep a chain whole without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
}

/// The on-the-wire form, with its format tag and version.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealBody {
    format: String,
    version: u32,
    #[serde(flatten)]
    seal: Seal,
}

impl Seal {
    /// Signs the seal with `key`. The seal's `signer` must be `key`'s id.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if `signer` names another key.
    pub fn sign(self, key: &SigningKey) -> Result<SignedSeal> {
        if self.signer != key.key_id() {
            return Err(Error::format(
                "seal",
                format!(
                    "seal names signer {} but is being signed with key {}",
                    self.signer,
                    key.key_id()
                ),
            ));
        }
        let body = serde_json::to_vec(&SealBody {
            format: SEAL_FORMAT.to_owned(),
            version: SEAL_VERSION,
            seal: self.clone(),
        })
        .map_err(|e| Error::format("seal", e.to_string()))?;
        let signature = key.sign(&body);
        Ok(SignedSeal {
            seal: self,
            body,
            signature,
        })
    }

    /// The seal of the plaintext archive inside an encrypted one (its size
    /// and SHA-256 in place of the stored object's); a plain archive's seal
    /// as it is.
    pub fn plain(&self) -> Seal {
        let mut plain = self.clone();
        if let Some(e) = plain.encryption.take() {
            plain.archive_size = e.plain_size;
            plain.archive_sha256 = e.plain_sha256;
        }
        plain
    }

    /// Checks that an archive of `size` bytes hashing to `sha256` is the one sealed.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] naming what differs.
    pub fn check_archive(&self, size: u64, sha256: &Sha256Digest) -> Result<()> {
        if size != self.archive_size {
            return Err(VerificationFailed::new(format!(
                "archive of {} is {size} bytes, its seal says {}",
                self.backup_id, self.archive_size
            ))
            .into());
        }
        if !sha256.ct_eq(&self.archive_sha256) {
            return Err(VerificationFailed::new(format!(
                "archive of {} does not match the SHA-256 in its seal",
                self.backup_id
            ))
            .into());
        }
        Ok(())
    }
}

/// A seal with its signature, as produced by [`Seal::sign`] or
/// [`UnverifiedSeal::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSeal {
    seal: Seal,
    body: Vec<u8>,
    signature: Signature,
}

impl SignedSeal {
    /// The sealed statement.
    pub fn seal(&self) -> &Seal {
        &self.seal
    }

    /// The signature over the encoded statement.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The bytes to store: the statement line, then the signature line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 130);
        out.extend_from_slice(&self.body);
        out.push(b'\n');
        out.extend_from_slice(self.signature.to_hex().as_bytes());
        out.push(b'\n');
        out
    }

    /// Parses stored seal bytes. Nothing is trusted until
    /// [`UnverifiedSeal::verify`] succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if the bytes are not a seal.
    pub fn parse(bytes: &[u8]) -> Result<UnverifiedSeal> {
        if bytes.len() > MAX_SEAL_LEN {
            return Err(Error::format(
                "seal",
                format!("{} bytes is more than a seal can be", bytes.len()),
            ));
        }
        let text = bytes
            .strip_suffix(b"\n")
            .ok_or_else(|| Error::format("seal", "missing final newline (truncated?)"))?;
        let split = text
            .iter()
            .rposition(|&b| b == b'\n')
            .ok_or_else(|| Error::format("seal", "expected two lines"))?;
        let (body, sig_line) = (&text[..split], &text[split + 1..]);
        let sig_text = std::str::from_utf8(sig_line)
            .map_err(|_| Error::format("seal", "signature line is not text"))?;
        if sig_text.len() != 128 {
            return Err(Error::format(
                "seal",
                "signature line must be 128 hex digits",
            ));
        }
        let signature = Signature::from_hex(sig_text)?;
        let parsed: SealBody =
            serde_json::from_slice(body).map_err(|e| Error::format("seal", e.to_string()))?;
        if parsed.format != SEAL_FORMAT {
            return Err(Error::format(
                "seal",
                format!("format is {:?}, not {SEAL_FORMAT:?}", parsed.format),
            ));
        }
        if let Some(e) = &parsed.seal.encryption {
            let fingerprint = |f: &String| {
                f.len() == 16
                    && f.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            };
            if e.recipients.is_empty() || !e.recipients.iter().all(fingerprint) {
                return Err(Error::format(
                    "seal",
                    "an encrypted archive's recipients must be fingerprints of 16 hex digits",
                ));
            }
        }
        if parsed.version != SEAL_VERSION {
            return Err(Error::format(
                "seal",
                format!(
                    "version {} is not supported (this build reads version {SEAL_VERSION})",
                    parsed.version
                ),
            ));
        }
        Ok(UnverifiedSeal {
            seal: parsed.seal,
            body: body.to_vec(),
            signature,
        })
    }
}

/// A parsed seal whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct UnverifiedSeal {
    seal: Seal,
    body: Vec<u8>,
    signature: Signature,
}

impl UnverifiedSeal {
    /// What the seal claims, unauthenticated: use it only to explain failures
    /// (for example which key it names).
    pub fn claimed(&self) -> &Seal {
        &self.seal
    }

    /// Checks the signature with the trusted `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] if the seal names another signer or its signature is
    /// not `key`'s.
    pub fn verify(self, key: &PublicKey) -> Result<SignedSeal> {
        if self.seal.signer != key.key_id() {
            return Err(VerificationFailed::new(format!(
                "seal of {} was signed by key {}, not by the trusted key {}",
                self.seal.backup_id,
                self.seal.signer,
                key.key_id()
            ))
            .into());
        }
        key.verify(&self.body, &self.signature).map_err(|_| {
            Error::from(VerificationFailed::new(format!(
                "seal of {}: signature does not verify",
                self.seal.backup_id
            )))
        })?;
        Ok(SignedSeal {
            seal: self.seal,
            body: self.body,
            signature: self.signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn sample(key: &SigningKey) -> Seal {
        Seal {
            backup_id: "bkp_01JD0000000000000000000000".into(),
            archive_size: 1234,
            archive_sha256: Sha256Digest::of(b"archive"),
            manifest_sha256: Sha256Digest::of(b"manifest"),
            manifest_offset: 1000,
            manifest_length: 200,
            encryption: None,
            signer: key.key_id(),
        }
    }

    #[test]
    fn round_trip() {
        let key = SigningKey::generate().unwrap();
        let signed = sample(&key).sign(&key).unwrap();
        let bytes = signed.to_bytes();
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 2);
        let back = SignedSeal::parse(&bytes)
            .unwrap()
            .verify(&key.public_key())
            .unwrap();
        assert_eq!(back, signed);
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let key = SigningKey::generate().unwrap();
        let bytes = sample(&key).sign(&key).unwrap().to_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let outcome = SignedSeal::parse(&bad).and_then(|u| u.verify(&key.public_key()));
            assert!(outcome.is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn wrong_key_is_named() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let bytes = sample(&key).sign(&key).unwrap().to_bytes();
        let err = SignedSeal::parse(&bytes)
            .unwrap()
            .verify(&other.public_key())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Verification);
        assert!(err.to_string().contains(&key.key_id().to_string()), "{err}");
    }

    #[test]
    fn signer_must_match_signing_key() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        assert!(sample(&key).sign(&other).is_err());
    }

    #[test]
    fn truncated_and_oversized_are_format_errors() {
        let key = SigningKey::generate().unwrap();
        let bytes = sample(&key).sign(&key).unwrap().to_bytes();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            let err = SignedSeal::parse(&bytes[..cut]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Format, "cut at {cut}");
        }
        assert!(SignedSeal::parse(&vec![b'{'; MAX_SEAL_LEN + 1]).is_err());
    }

    #[test]
    fn unknown_version_is_refused() {
        let key = SigningKey::generate().unwrap();
        let signed = sample(&key).sign(&key).unwrap();
        let text = String::from_utf8(signed.to_bytes()).unwrap();
        let bumped = text.replace("\"version\":1", "\"version\":2");
        let err = SignedSeal::parse(bumped.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn archive_check() {
        let key = SigningKey::generate().unwrap();
        let seal = sample(&key);
        seal.check_archive(1234, &Sha256Digest::of(b"archive"))
            .unwrap();
        assert!(
            seal.check_archive(1233, &Sha256Digest::of(b"archive"))
                .is_err()
        );
        assert!(
            seal.check_archive(1234, &Sha256Digest::of(b"other"))
                .is_err()
        );
    }

    #[test]
    fn an_encrypted_archive_s_seal_states_both_sizes_and_its_recipients() {
        let key = SigningKey::from_seed(&[3; 32]);
        let plain = sample(&key);
        assert!(
            !String::from_utf8(plain.clone().sign(&key).unwrap().to_bytes())
                .unwrap()
                .contains("encryption"),
            "a plain archive's seal is what it always was"
        );
        let mut sealed = plain.clone();
        sealed.archive_size = 1300;
        sealed.archive_sha256 = Sha256Digest::of(b"ciphertext");
        sealed.encryption = Some(SealEncryption {
            plain_size: 1234,
            plain_sha256: Sha256Digest::of(b"archive"),
            recipients: vec!["0123456789abcdef".into()],
            parents: vec!["bkp_01JD0000000000000000000001".into()],
        });
        let bytes = sealed.clone().sign(&key).unwrap().to_bytes();
        let back = SignedSeal::parse(&bytes)
            .unwrap()
            .verify(&key.public_key())
            .unwrap();
        assert_eq!(back.seal(), &sealed);
        assert_eq!(back.seal().plain(), plain);
        back.seal()
            .check_archive(1300, &Sha256Digest::of(b"ciphertext"))
            .unwrap();

        for bad in [
            vec![],
            vec!["age1notafingerprint".to_owned()],
            vec!["0123456789ABCDEF".to_owned()],
        ] {
            let mut s = sealed.clone();
            s.encryption.as_mut().unwrap().recipients = bad;
            let err = SignedSeal::parse(&s.sign(&key).unwrap().to_bytes()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Format);
            assert!(err.to_string().contains("fingerprints"), "{err}");
        }
    }
}
