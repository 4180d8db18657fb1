//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// What [`Error::NoMatchingIdentity`] says, for callers that pass the
/// error on as text and must still recognise it.
pub const NO_MATCHING_IDENTITY: &str = "no identity matches this backup's recipients";

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that must decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing failed.
    Io,
    /// A recipient or an identity file is not what it must be.
    Key,
    /// An identity file can be read by its group or by others.
    InsecurePermissions,
    /// None of the identities given opens the object.
    NoMatchingIdentity,
    /// The object is not an age file, or its header, a chunk or its length
    /// does not authenticate: damaged, truncated or tampered with.
    Damaged,
}

/// An error from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An identity file could not be read.
    #[error("identity file {}: {source}", path.display())]
    IdentityFile {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },
    /// An identity file can be read by its group or by others.
    #[error(
        "identity file {} has mode {mode:04o}: it must not be readable by group or others (chmod 600)",
        path.display()
    )]
    InsecureIdentityFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An identity file holds something other than age identities (the
    /// reason names a line by its number, never its contents).
    #[error("{}: {reason}", path.display())]
    BadIdentityFile {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A recipient is not an age X25519 recipient.
    #[error("invalid age recipient {text:?}: {reason}")]
    BadRecipient {
        /// The text given (a public key: not a secret).
        text: String,
        /// Why it was refused.
        reason: String,
    },
    /// Encrypting to no recipient at all.
    #[error("no recipient to encrypt to")]
    NoRecipients,
    /// No identity given opens the object.
    #[error("{}", NO_MATCHING_IDENTITY)]
    NoMatchingIdentity,
    /// The object does not authenticate.
    #[error("the encrypted archive is damaged: {0}")]
    Damaged(String),
    /// Reading or writing the object failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying failure.
        source: io::Error,
    },
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::IdentityFile { .. } | Error::Io { .. } => ErrorKind::Io,
            Error::InsecureIdentityFile { .. } => ErrorKind::InsecurePermissions,
            Error::BadIdentityFile { .. } | Error::BadRecipient { .. } | Error::NoRecipients => {
                ErrorKind::Key
            }
            Error::NoMatchingIdentity => ErrorKind::NoMatchingIdentity,
            Error::Damaged(_) => ErrorKind::Damaged,
        }
    }

    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { what, source }
    }
}
