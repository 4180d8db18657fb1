//! Cairn's stores: where backups live.
//!
//! A [`Store`] is an `object_store` backend (a local directory, process
//! memory, S3 or a compatible server, Azure Blob Storage) plus a root prefix,
//! opened from a URL with [`Store::open`] and typed [`StoreOptions`] that fall
//! back to the usual environment variables. This crate is the async boundary
//! of Cairn: every operation is `async`, runs on the caller's Tokio runtime,
//! and says in its [`Error`] which operation failed on which key.
//!
//! - Primitives: [`Store::put`], [`Store::put_if_absent`] (atomic on every
//!   backend), streaming multipart [`Store::upload`] with bounded memory,
//!   [`Store::get_stream`], [`Store::get_range`], [`Store::head`],
//!   [`Store::list`], [`Store::delete`] (a missing key is not an error).
//! - The key layout of backups and their publication ([`layout`]): archive
//!   first, seal last with put-if-absent; a backup without a seal is
//!   incomplete and [`Store::remove_incomplete`] cleans it up.
//! - Leases ([`lease`]): one holder per target across processes, by
//!   put-if-absent generations, with expiry, renewal, takeover and release.
//! - Presigned download URLs ([`Store::url_signer`], `None` for stores that
//!   cannot presign, so a server knows to issue its own).
//! - Transient faults (5xx, 429, timeouts, connection failures) are retried
//!   with exponential backoff ([`Retry`]); permanent ones fail at once.
//!
//! The archive format is not known here: the store moves bytes and keys.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cairn_storage::Error> {
//! use bytes::Bytes;
//! use cairn_storage::{Store, StoreOptions};
//!
//! let store = Store::open("memory://", &StoreOptions::default())?;
//! let mut upload = store.upload("notes/a.txt").await?;
//! upload.write(Bytes::from_static(b"hello ")).await?;
//! upload.write(Bytes::from_static(b"world")).await?;
//! upload.finish().await?;
//! assert_eq!(store.get_range("notes/a.txt", 6..11).await?, "world");
//! assert!(store.url_signer().is_none(), "memory stores cannot presign");
//! # Ok(())
//! # }
//! ```

mod error;
pub mod layout;
pub mod lease;
mod open;
pub mod state;
mod store;

pub use error::{Error, ErrorKind, Op};
pub use layout::StoredBackup;
pub use lease::{Lease, LeaseRecord};
pub use open::{
    Backend, DEFAULT_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, MIN_PART_SIZE, Retry, StoreOptions,
};
pub use store::{MAX_URL_LIFETIME, ObjectInfo, SignedUrl, Store, Upload, Uploaded, UrlSigner};
