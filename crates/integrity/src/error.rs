//! The one error type of this crate.
//!
//! Callers branch on [`Error::kind`], never on messages. Verification failures are
//! deliberately opaque: [`ErrorKind::Verification`] says *that* a signature or digest
//! did not check out, and the message names *what* was being checked (a seal, a
//! manifest), but not why the cryptography refused it, so the error cannot serve as
//! an oracle. Every failure here is permanent: retrying with the same input cannot
//! succeed, except [`ErrorKind::Io`] where [`Error::is_transient`] says so.

use std::io;
use std::path::PathBuf;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that must decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing a file failed.
    Io,
    /// A key, signature, digest or seal is not in the expected format.
    Format,
    /// A signature did not verify, or a digest did not match.
    Verification,
    /// A secret key file is readable by other users.
    InsecurePermissions,
    /// The operating system's random number generator failed.
    Random,
}

/// An error from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key file could not be read or written.
    #[error("key file {}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },
    /// A secret key file can be read by its group or by others.
    #[error(
        "secret key file {} has mode {mode:04o}: it must not be readable by group or others (chmod 600)",
        path.display()
    )]
    InsecureKeyPermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key could not be decoded or encoded.
    #[error("invalid {what}: {reason}")]
    Key {
        /// Which key ("secret key PEM", "public key PEM", ...).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A value is not in the format it claims to be.
    #[error("invalid {what}: {reason}")]
    Format {
        /// What was being parsed.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A signature or digest check failed.
    #[error("verification failed: {0}")]
    Verification(VerificationFailed),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::KeyFile { .. } => ErrorKind::Io,
            Error::InsecureKeyPermissions { .. } => ErrorKind::InsecurePermissions,
            Error::Key { .. } | Error::Format { .. } => ErrorKind::Format,
            Error::Verification(_) => ErrorKind::Verification,
            Error::Random(_) => ErrorKind::Random,
        }
    }

    /// Whether retrying the same operation might succeed (a transient I/O fault).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::KeyFile { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    pub(crate) fn format(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Format {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn key(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Error::Key {
            what,
            reason: reason.to_string(),
        }
    }
}

/// An opaque verification failure: it names the object whose signature or digest
/// did not check out, and nothing about why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationFailed {
    subject: String,
}

impl VerificationFailed {
    /// A failure to authenticate `subject` (for example "seal of bkp_01…").
    pub fn new(subject: impl Into<String>) -> Self {
        VerificationFailed {
            subject: subject.into(),
        }
    }

    /// What failed to verify.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.subject)
    }
}

impl From<VerificationFailed> for Error {
    fn from(v: VerificationFailed) -> Self {
        Error::Verification(v)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Io => match &e {
                Error::KeyFile { source, .. } => source.kind(),
                _ => io::ErrorKind::Other,
            },
            ErrorKind::Format | ErrorKind::Verification => io::ErrorKind::InvalidData,
            ErrorKind::InsecurePermissions => io::ErrorKind::PermissionDenied,
            ErrorKind::Random => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
