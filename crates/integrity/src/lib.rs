//! Digests, keys and seals: the integrity layer of [Cairn](https://github.com/cairn-backup/cairn).
//!
//! Everything Cairn stores is authenticated with the types of this crate:
//!
//! - [`Sha256Digest`], [`Hasher`], [`HashingReader`], [`HashingWriter`]: SHA-256 of
//!   every archive entry and of whole archives, computed as the bytes stream by
//!   (with the CPU's SHA extensions when it has them).
//! - [`SigningKey`], [`PublicKey`], [`Signature`], [`KeyId`]: Ed25519 (RFC 8032) keys
//!   stored as PKCS#8 / SubjectPublicKeyInfo PEM, interoperable with OpenSSL.
//!   Verification uses `verify_strict`.
//! - [`Seal`], [`SignedSeal`], [`UnverifiedSeal`]: the signed statement stored beside
//!   each archive (its size, SHA-256, and where its manifest is).
//!
//! Most users want the `cairn` crate, which uses these for them.
//!
//! # Example
//!
//! ```
//! use cairn_integrity::{Seal, Sha256Digest, SignedSeal, SigningKey};
//!
//! let key = SigningKey::generate()?;
//! let archive = b"...archive bytes...";
//! let seal = Seal {
//!     backup_id: "bkp_01JD8Z5X7Q0000000000000000".into(),
//!     archive_size: archive.len() as u64,
//!     archive_sha256: Sha256Digest::of(archive),
//!     manifest_sha256: Sha256Digest::of(b"{}"),
//!     manifest_offset: 0,
//!     manifest_length: 0,
//!     signer: key.key_id(),
//!     encryption: None,
//! };
//! let stored = seal.sign(&key)?.to_bytes();
//!
//! // Later, with only the public key:
//! let trusted = key.public_key();
//! let seal = SignedSeal::parse(&stored)?.verify(&trusted)?;
//! seal.seal().check_archive(archive.len() as u64, &Sha256Digest::of(archive))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! One [`Error`] type; [`Error::kind`] classifies it. Verification failures never say
//! *why* a signature was refused, only what was being verified.
//!
//! # Crate features
//!
//! This crate has no optional features.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod digest;
mod error;
mod key;
mod seal;

pub use crate::digest::{Hasher, HashingReader, HashingWriter, Sha256Digest};
pub use crate::error::{Error, ErrorKind, Result, VerificationFailed};
pub use crate::key::{KeyId, PublicKey, Signature, SigningKey, exposed_mode};
pub use crate::seal::{MAX_SEAL_LEN, Seal, SealEncryption, SignedSeal, UnverifiedSeal};
