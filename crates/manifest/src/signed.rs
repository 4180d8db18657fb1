//! Signed manifests: the exact bytes stored, and the typestate between parsing
//! them and trusting them.

use cairn_integrity::{KeyId, PublicKey, Sha256Digest, Signature, SigningKey, VerificationFailed};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::v1::{FORMAT_TAG, Manifest};
use crate::v2::Root;

/// What is signed: a v1 [`Manifest`] or a v2 [`Root`].
pub trait Document: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug {
    /// What errors call it (`manifest`, `root`).
    const WHAT: &'static str;
    /// The major version it is.
    const MAJOR: u32;
    /// The key it names as signer.
    fn signer(&self) -> &KeyId;
    /// The backup it describes.
    fn backup_id(&self) -> BackupId;
    /// Its own consistency check.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] or [`Error::UnsupportedVersion`].
    fn validate(&self) -> Result<()>;
}

impl Document for Manifest {
    const WHAT: &'static str = "manifest";
    const MAJOR: u32 = crate::v1::MAJOR;
    fn signer(&self) -> &KeyId {
        &self.signer
    }
    fn backup_id(&self) -> BackupId {
        self.backup_id
    }
    fn validate(&self) -> Result<()> {
        Manifest::validate(self)
    }
}

impl Document for Root {
    const WHAT: &'static str = "manifest root";
    const MAJOR: u32 = crate::v2::MAJOR;
    fn signer(&self) -> &KeyId {
        &self.signer
    }
    fn backup_id(&self) -> BackupId {
        self.backup_id
    }
    fn validate(&self) -> Result<()> {
        Root::validate(self)
    }
}

/// Manifests larger than this are refused unless the caller sets another limit.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 512 * 1024 * 1024;

/// A signed v1 manifest.
pub type SignedManifest = Signed<Manifest>;
/// A v1 manifest read but not yet trusted.
pub type UnverifiedManifest = Unverified<Manifest>;
/// A signed v2 root.
pub type SignedRoot = Signed<Root>;
/// A v2 root read but not yet trusted.
pub type UnverifiedRoot = Unverified<Root>;

/// A manifest (or root) together with the exact bytes that were signed and
/// the signature.
///
/// Obtained by signing ([`Signed::sign`]) or by verifying
/// ([`Unverified::verify`]); either way its signature is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T> {
    manifest: T,
    bytes: Vec<u8>,
    signature: Signature,
}

impl<T: Document> Signed<T> {
    /// Validates, serialises and signs `manifest`. Its `signer` must be `key`'s id.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] if the manifest is not valid or names another signer.
    pub fn sign(manifest: T, key: &SigningKey) -> Result<Self> {
        manifest.validate()?;
        if *manifest.signer() != key.key_id() {
            return Err(Error::inconsistent(format!(
                "{} names signer {} but is being signed with key {}",
                T::WHAT,
                manifest.signer(),
                key.key_id()
            )));
        }
        let bytes = serde_json::to_vec(&manifest)?;
        let signature = key.sign(&bytes);
        Ok(Signed {
            manifest,
            bytes,
            signature,
        })
    }

    /// The manifest (or root).
    pub fn manifest(&self) -> &T {
        &self.manifest
    }

    /// The manifest (or root), dropping the bytes.
    pub fn into_manifest(self) -> T {
        self.manifest
    }

    /// The exact bytes of `manifest.json` (or `root.json`).
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

/// Manifest (or root) bytes and a signature, parsed but not yet trusted.
#[derive(Debug, Clone)]
pub struct Unverified<T> {
    claimed: T,
    bytes: Vec<u8>,
    signature: Signature,
}

#[derive(Deserialize)]
struct Head {
    format: String,
    version: String,
}

impl<T: Document> Unverified<T> {
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
        let claimed = parse_document(&bytes)?;
        Ok(Unverified {
            claimed,
            bytes,
            signature,
        })
    }

    /// What the manifest claims, unauthenticated: use it only to explain failures.
    pub fn claimed(&self) -> &T {
        &self.claimed
    }

    /// Checks the signature with the trusted `key`, then the manifest's consistency.
    ///
    /// # Errors
    ///
    /// [`Error::Integrity`] (kind `Verification`) if the manifest names another
    /// signer or the signature is not `key`'s; [`Error::Inconsistent`] if a signed
    /// manifest contradicts itself.
    pub fn verify(self, key: &PublicKey) -> Result<Signed<T>> {
        let id = self.claimed.backup_id();
        let what = T::WHAT;
        if *self.claimed.signer() != key.key_id() {
            return Err(Error::Integrity(
                VerificationFailed::new(format!(
                    "{what} of {id} was signed by key {}, not by the trusted key {}",
                    self.claimed.signer(),
                    key.key_id()
                ))
                .into(),
            ));
        }
        key.verify(&self.bytes, &self.signature).map_err(|_| {
            Error::Integrity(
                VerificationFailed::new(format!(
                    "{what} of {id}: signature does not verify ({what} or signature altered)"
                ))
                .into(),
            )
        })?;
        self.claimed.validate()?;
        Ok(Signed {
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
    parse_document(bytes)
}

/// The major version a manifest or root declares, read before anything else
/// so that readers can dispatch on it.
///
/// # Errors
///
/// [`Error::Json`] if there is no `format` and `version`;
/// [`Error::Inconsistent`] for another format tag or a malformed version.
pub fn declared_major(bytes: &[u8]) -> Result<u32> {
    let head: Head = serde_json::from_slice(bytes)?;
    if head.format != FORMAT_TAG {
        return Err(Error::inconsistent(format!(
            "format is {:?}, not {FORMAT_TAG:?}",
            head.format
        )));
    }
    Ok(head.version.parse::<crate::v1::FormatVersion>()?.major)
}

/// Parses a v1 manifest or v2 root without authenticating it, major version first.
///
/// # Errors
///
/// [`Error::UnsupportedVersion`], [`Error::Json`], [`Error::Inconsistent`].
pub fn parse_document<T: Document>(bytes: &[u8]) -> Result<T> {
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
    if major != Some(T::MAJOR) {
        return Err(Error::UnsupportedVersion {
            found: head.version,
            supported: T::MAJOR,
        });
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// A signed manifest of either major version: what an archive ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyManifest {
    /// Format 1: one document listing every entry.
    V1(SignedManifest),
    /// Format 2: a root naming pages of entries.
    V2(SignedRoot),
}

impl AnyManifest {
    /// The backup it describes.
    pub fn backup_id(&self) -> BackupId {
        match self {
            AnyManifest::V1(m) => m.manifest().backup_id,
            AnyManifest::V2(r) => r.manifest().backup_id,
        }
    }

    /// The SHA-256 of the signed bytes (`manifest.json` or `root.json`), as
    /// the seal records it.
    pub fn sha256(&self) -> Sha256Digest {
        match self {
            AnyManifest::V1(m) => m.sha256(),
            AnyManifest::V2(r) => r.sha256(),
        }
    }

    /// How many entries the archive holds.
    pub fn entry_count(&self) -> u64 {
        match self {
            AnyManifest::V1(m) => m.manifest().entries.len() as u64,
            AnyManifest::V2(r) => r.manifest().entry_count(),
        }
    }

    /// The component named `name`.
    pub fn component(&self, name: &crate::name::ComponentName) -> Option<&crate::v1::Component> {
        self.components().iter().find(|c| &c.name == name)
    }

    /// The components, in archive order.
    pub fn components(&self) -> &[crate::v1::Component] {
        match self {
            AnyManifest::V1(m) => &m.manifest().components,
            AnyManifest::V2(r) => &r.manifest().components,
        }
    }

    /// The compressed end of the data region.
    pub fn data_compressed_end(&self) -> u64 {
        match self {
            AnyManifest::V1(m) => m.manifest().data_compressed_end(),
            AnyManifest::V2(r) => r.manifest().data_compressed_end(),
        }
    }

    /// The format 1 manifest, if it is one.
    pub fn v1(&self) -> Option<&SignedManifest> {
        match self {
            AnyManifest::V1(m) => Some(m),
            AnyManifest::V2(_) => None,
        }
    }

    /// The format 2 root, if it is one.
    pub fn v2(&self) -> Option<&SignedRoot> {
        match self {
            AnyManifest::V1(_) => None,
            AnyManifest::V2(r) => Some(r),
        }
    }
}

/// Accessors for the fields both formats share.
macro_rules! shared_fields {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        impl AnyManifest {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> &$ty {
                    match self {
                        AnyManifest::V1(m) => &m.manifest().$name,
                        AnyManifest::V2(r) => &r.manifest().$name,
                    }
                }
            )*
        }
    };
}

shared_fields! {
    /// The format version.
    version: crate::v1::FormatVersion;
    /// The target it belongs to.
    target: crate::name::TargetName;
    /// Why it was made.
    kind: crate::v1::BackupKind;
    /// A short label.
    label: Option<String>;
    /// A longer description.
    description: Option<String>;
    /// When capture started.
    created_at: jiff::Timestamp;
    /// How long writing the archive took, in milliseconds.
    duration_ms: u64;
    /// Who made it.
    origin: crate::v1::Origin;
    /// How it is compressed.
    compression: crate::v1::Compression;
    /// The key that signed it.
    signer: KeyId;
    /// What was found but not archived.
    skipped: Vec<crate::v1::Skipped>;
    /// What was archived with a caveat.
    warnings: Vec<crate::v1::Warning>;
    /// For an uploaded backup, what was uploaded.
    source: Option<crate::v1::UploadSource>;
}
