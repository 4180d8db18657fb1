//! The manifest of a [Cairn](https://github.com/cairn-backup/cairn) backup archive.
//!
//! A format 1 archive ends with `.cairn/manifest.json`, which lists what the
//! backup holds, and `.cairn/manifest.sig`, an Ed25519 signature over its exact
//! bytes. A format 2 archive ends with pages of entries (`.cairn/pages/<n>`) and
//! a signed root (`.cairn/root.json`, `.cairn/root.sig`) that names every page
//! by its SHA-256. This crate is the data model of both ([`v1`], [`v2`]; either
//! signed one is an [`AnyManifest`]) and the rules their values follow:
//!
//! - names and ids as validated newtypes: [`TargetName`], [`ComponentName`],
//!   [`BackupId`] (`bkp_<ULID>`, time-sortable), [`OriginId`];
//! - [`EntryPath`]: a relative path that can never climb out of the folder it is
//!   joined to, kept as raw bytes so that names which are not UTF-8 survive;
//! - [`Mtime`]: nanosecond times in the text form PAX uses;
//! - the seek index: every [`Entry`] records the compressed offset of its frame and
//!   its offset inside the decompressed frame, and [`Manifest::span`] turns that
//!   into the byte range to fetch;
//! - [`SignedManifest`] and [`UnverifiedManifest`] (and [`SignedRoot`],
//!   [`UnverifiedRoot`]): nothing read from outside is trusted before its
//!   signature and its consistency ([`Manifest::validate`], [`Root::validate`])
//!   check out. An unknown major version is refused with
//!   [`Error::UnsupportedVersion`] ([`declared_major`] reads it first);
//! - format 2's streaming checks: [`PageChecker`] takes a root's pages one at
//!   a time, [`EntryOrder`] refuses duplicates (remembering only the previous
//!   path when entries are in [`canonical_cmp`] order), [`LinkCheck`] checks
//!   hard links in a second pass.
//!
//! Most users want the `cairn` crate; `cairn-archive` writes and reads manifests.
//!
//! # Example
//!
//! ```
//! use cairn_integrity::SigningKey;
//! use cairn_manifest::*;
//!
//! let key = SigningKey::generate()?;
//! let target = TargetName::parse("web")?;
//! let manifest = Manifest {
//!     format: FORMAT_TAG.to_owned(),
//!     version: FormatVersion::CURRENT,
//!     backup_id: BackupId::generate(),
//!     target: target.clone(),
//!     kind: BackupKind::Manual,
//!     label: Some("before upgrade".into()),
//!     description: None,
//!     created_at: "2026-11-22T10:00:00Z".parse()?,
//!     duration_ms: 0,
//!     origin: Origin {
//!         target,
//!         origin_id: OriginId::parse("org_example")?,
//!         hostname: None,
//!         model: None,
//!         serial: None,
//!         software_version: "cairn/0.1.0".into(),
//!     },
//!     compression: Compression { codec: Codec::Zstd, level: 3, frame_size: 4 << 20 },
//!     signer: key.key_id(),
//!     components: vec![],
//!     entries: vec![],
//!     frames: vec![],
//!     skipped: vec![],
//!     warnings: vec![],
//!     source: None,
//! };
//! let signed = SignedManifest::sign(manifest, &key)?;
//!
//! // What an archive stores, read back and checked with the public key:
//! let read = UnverifiedManifest::parse(
//!     signed.bytes().to_vec(),
//!     signed.signature().as_bytes(),
//!     DEFAULT_MAX_MANIFEST_BYTES,
//! )?
//! .verify(&key.public_key())?;
//! assert_eq!(read.manifest(), signed.manifest());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! This crate has no optional features.

mod error;
mod id;
mod name;
mod path;
mod signed;
mod time;
mod validate;

pub mod v1;
pub mod v2;

pub use crate::error::{Error, ErrorKind, Result};
pub use crate::id::{BackupId, OriginId};
pub use crate::name::{ComponentName, TargetName};
pub use crate::path::{EntryPath, LinkTarget, MAX_NAME_BYTES, MAX_PATH_BYTES};
pub use crate::signed::{
    AnyManifest, DEFAULT_MAX_MANIFEST_BYTES, Document, Signed, SignedManifest, SignedRoot,
    Unverified, UnverifiedManifest, UnverifiedRoot, declared_major, parse_document,
    parse_unauthenticated,
};
pub use crate::time::Mtime;
pub use crate::v1::{
    BackupKind, Codec, Component, ComponentKind, Compression, Entry, EntryKind, FORMAT_TAG,
    FormatVersion, Frame, Manifest, Origin, SkipReason, Skipped, Span, UploadSource, Warning,
};
pub use crate::v2::{
    EntryOrder, LinkCheck, OrderError, Page, PageChecker, PageEntry, PageRef, Root, canonical_cmp,
};
pub use crate::validate::{MAX_DESCRIPTION_BYTES, MAX_LABEL_BYTES};
