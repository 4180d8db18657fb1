//! Encryption at rest for [Cairn](https://github.com/cairn-backup/cairn)
//! backups, in the [age v1](https://age-encryption.org/v1) format.
//!
//! An encrypted backup is an age file whose plaintext is the Cairn archive,
//! unchanged: `age -d -i key.txt X.tar.zst.age | tar --zstd -xf -` restores
//! it with the `age` command and GNU tar. The host that writes backups
//! holds [`Recipient`]s only (public keys); restores and full verifications
//! need an [`Identity`] (`docs/encryption.md`).
//!
//! - [`EncryptingWriter`] encrypts what is written to it to one or more
//!   recipients.
//! - [`Decrypted`] opens an encrypted archive by range
//!   ([`cairn_archive::RangeRead`]), so that a partial restore reads the
//!   64 KiB chunks that hold what it wants and nothing else; every chunk is
//!   authenticated before its bytes are used.
//! - [`DecryptingReader`] reads one as a stream (an upload, a file).
//! - [`Identities::load`] reads an identity file (mode 0600, refused
//!   otherwise, the file named in every error).
//!
//! ```
//! use std::io::{Cursor, Read, Write};
//! use cairn_archive::{RangeRead, SeekSource};
//! use cairn_crypt::{Decrypted, EncryptingWriter, Identities, Identity};
//!
//! let ops = Identity::generate();
//! let recovery = Identity::generate();
//! let mut w = EncryptingWriter::new(Vec::new(), &[ops.recipient(), recovery.recipient()])?;
//! w.write_all(b"a whole archive")?;
//! let stored = w.finish()?;
//!
//! // Either identity opens it.
//! let mut plain = Decrypted::open(SeekSource(Cursor::new(stored)), &Identities::from(recovery))?;
//! let mut text = String::new();
//! plain.read_range(8..15)?.read_to_string(&mut text)?;
//! assert_eq!(text, "archive");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod keys;
mod read;
mod write;

pub use crate::error::{Error, ErrorKind, NO_MATCHING_IDENTITY, Result};
pub use crate::keys::{Identities, Identity, Recipient};
pub use crate::read::{
    CHUNK_SIZE, DEFAULT_FETCH, Decrypted, DecryptingReader, ENCRYPTED_CHUNK_SIZE, is_age,
};
pub use crate::write::EncryptingWriter;
