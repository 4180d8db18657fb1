//! Signed manifests: the exact bytes stored, and the typestate between parsing
//! them and trusting them.

use cairn_integrity::{PublicKey, Sha256Digest, Signature, SigningKey, VerificationFailed};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::v1::{FORMAT_TAG, MAJOR, Manifest};

/// Manifests larger than this are refused unless the caller sets another limit.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 512 * 1024 * 1024;

/// A manifest together with the exact bytes that were signed and the signature.
///
/// Obtained by signing ([`SignedManifest::sign`]) or by verifying
/// ([`UnverifiedManifest::verify`]); either way its signature is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    manifest: Manifest,
    bytes: Vec<u8>,
    signature: Signature,
}

impl SignedManifest {
    /// Validates, serialises and signs `manifest`. Its `signer` must be `key`'s id.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] if the manifest is not valid or names another signer.
    pub fn sign(manifest: Manifest, key: &SigningKey) -> Result<Self> {
        manifest.validate()?;
        if manifest.signer != key.key_id() {
            return Err(Error::inconsistent(format!(
                "manifest names signer {} but is being signed with key {}",
                manifest.signer,
                key.key_id()
            )));
        }
        let bytes = serde_json::to_vec(&manifest)?;
        let signature = key.sign(&bytes);
        Ok(SignedManifest {
            manifest,
            bytes,
            signature,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest, dropping the bytes.
    pub fn into_manifest(self) -> Manifest {
        self.manifest
    }

    /// The exact bytes of `manifest.json`.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signature over [`SignedManifest::bytes`] (the bytes of `manifest.sig`).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The SHA-256 of [`SignedManifest::bytes`], as recorded in the seal.
    pub fn sha256(&self) -> Sha256Digest {
        Sha256Digest::of(&self.bytes)
    }
}

/// Manifest bytes and a signature, parsed but not yet trusted.
#[derive(Debug, Clone)]
pub struct UnverifiedManifest {
    claimed: Manifest,
    bytes: Vec<u8>,
    signature: Signature,
}

#[derive(Deserialize)]
struct Head {
    format: String,
    version: String,
}

impl UnverifiedManifest {
    /// Parses `bytes` (the content of `manifest.json`) and `signature` (the content
    /// of `manifest.sig`), refusing manifests larger than `max_bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`], [`Error::UnsupportedVersion`] for another major version,
    /// [`Error::Json`] if the JSON is not a v1 manifest, [`Error::Integrity`] if the
    /// signature is not 64 bytes.
    pub fn parse(bytes: Vec<u8>, signature: &[u8], max_bytes: u64) -> Result<Self> {
        if bytes.len() as u64 > max_bytes {
            return Err(Error::TooLarge {
                size: bytes.len() as u64,
                limit: max_bytes,
            });
        }
        let signature = Signature::from_slice(signature)?;
        let claimed = parse_unauthenticated(&bytes)?;
        Ok(UnverifiedManifest {
            claimed,
            bytes,
            signature,
        })
    }

    /// What the manifest claims, unauthenticated: use it only to explain failures.
    pub fn claimed(&self) -> &Manifest {
        &self.claimed
    }

    /// Checks the signature with the trusted `key`, then the manifest's consistency.
    ///
    /// # Errors
    ///
    /// [`Error::Integrity`] (kind `Verification`) if the manifest names another
    /// signer or the signature is not `key`'s; [`Error::Inconsistent`] if a signed
    /// manifest contradicts itself.
    pub fn verify(self, key: &PublicKey) -> Result<SignedManifest> {
        let id = self.claimed.backup_id;
        if self.claimed.signer != key.key_id() {
            return Err(Error::Integrity(
                VerificationFailed::new(format!(
                    "manifest of {id} was signed by key {}, not by the trusted key {}",
                    self.claimed.signer,
                    key.key_id()
                ))
                .into(),
            ));
        }
        key.verify(&self.bytes, &self.signature).map_err(|_| {
            Error::Integrity(
                VerificationFailed::new(format!(
                    "manifest of {id}: signature does not verify (manifest or signature altered)"
                ))
                .into(),
            )
        })?;
        self.claimed.validate()?;
        Ok(SignedManifest {
            manifest: self.claimed,
            bytes: self.bytes,
            signature: self.signature,
        })
    }
}

/// Parses manifest JSON without authenticating it: the format tag and major
/// version are checked first, so a manifest of an unknown major version is reported
/// as such rather than as malformed.
///
/// Use [`UnverifiedManifest`] for anything read from outside; this is for manifests
/// whose bytes were authenticated already (for example kept in a catalog).
///
/// # Errors
///
/// [`Error::UnsupportedVersion`], [`Error::Json`], [`Error::Inconsistent`].
pub fn parse_unauthenticated(bytes: &[u8]) -> Result<Manifest> {
    let head: Head = serde_json::from_slice(bytes)?;
    if head.format != FORMAT_TAG {
        return Err(Error::inconsistent(format!(
            "format is {:?}, not {FORMAT_TAG:?}",
            head.format
        )));
    }
    let major = head
        .version
        .split_once('.')
        .and_then(|(m, _)| m.parse::<u32>().ok());
    if major != Some(MAJOR) {
        return Err(Error::UnsupportedVersion {
            found: head.version,
            supported: MAJOR,
        });
    }
    Ok(serde_json::from_slice(bytes)?)
}
