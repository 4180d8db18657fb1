//! The one error type of this crate.
//!
//! Callers branch on [`Error::kind`]:
//!
//! | kind | meaning | retry? |
//! |---|---|---|
//! | `Io` | reading a source file or writing the output failed | [`Error::is_transient`] says |
//! | `Corrupt` | the compressed stream or the tar inside it is malformed or truncated | no |
//! | `Verification` | a signature, digest or manifest check failed: the archive is not what was signed | no |
//! | `Unsafe` | an entry would escape the destination or write through a link | no |
//! | `Limit` | a configured limit (entries, sizes) was exceeded | no |
//! | `InvalidInput` | the caller asked for something impossible (duplicate component, missing key file…) | no |
//! | `Unsupported` | a valid archive uses something Cairn does not handle (sparse files…) | no |
//! | `Cancelled` | the progress observer asked to stop | no |
//!
//! Verification errors say *what* failed (which entry, which signature) but never
//! why a signature was refused.

use std::io;
use std::path::PathBuf;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that must decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing failed.
    Io,
    /// Malformed or truncated data.
    Corrupt,
    /// The archive is not what was signed, or not signed by the trusted key.
    Verification,
    /// An entry tried to escape the destination.
    Unsafe,
    /// A configured limit was exceeded.
    Limit,
    /// The request cannot be carried out as asked.
    InvalidInput,
    /// A feature the archive uses is not supported.
    Unsupported,
    /// The operation was cancelled.
    Cancelled,
}

/// An error from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{op}{}: {source}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Io {
        /// What was being done ("reading", "writing archive", …).
        op: &'static str,
        /// The file concerned, if any.
        path: Option<PathBuf>,
        /// The failure.
        source: io::Error,
    },
    /// The data is malformed or truncated.
    #[error("corrupt archive: {reason}")]
    Corrupt {
        /// What is wrong, and where.
        reason: String,
    },
    /// A verification failed.
    #[error("verification failed: {subject}")]
    Verification {
        /// What failed to verify.
        subject: String,
    },
    /// An entry is unsafe to unpack.
    #[error("unsafe entry {path}: {reason}")]
    Unsafe {
        /// The entry's path as written in the archive.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A limit was exceeded.
    #[error("limit exceeded: {what} (limit {limit})")]
    Limit {
        /// What grew too large.
        what: String,
        /// The configured limit.
        limit: u64,
    },
    /// The request is invalid.
    #[error("{reason}")]
    InvalidInput {
        /// Why.
        reason: String,
    },
    /// The archive uses something unsupported.
    #[error("unsupported: {reason}")]
    Unsupported {
        /// What.
        reason: String,
    },
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A manifest error.
    #[error(transparent)]
    Manifest(#[from] cairn_manifest::Error),
    /// A key or seal error.
    #[error(transparent)]
    Integrity(#[from] cairn_integrity::Error),
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Verification { .. } => ErrorKind::Verification,
            Error::Unsafe { .. } => ErrorKind::Unsafe,
            Error::Limit { .. } => ErrorKind::Limit,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Manifest(e) => match e.kind() {
                cairn_manifest::ErrorKind::Verification => ErrorKind::Verification,
                cairn_manifest::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                cairn_manifest::ErrorKind::UnsupportedVersion => ErrorKind::Unsupported,
                cairn_manifest::ErrorKind::TooLarge => ErrorKind::Limit,
                _ => ErrorKind::Corrupt,
            },
            Error::Integrity(e) => match e.kind() {
                cairn_integrity::ErrorKind::Verification => ErrorKind::Verification,
                cairn_integrity::ErrorKind::Io => ErrorKind::Io,
                cairn_integrity::ErrorKind::Format => ErrorKind::Corrupt,
                _ => ErrorKind::InvalidInput,
            },
        }
    }

    /// Whether retrying might succeed: only I/O errors such as interruptions,
    /// time-outs and connection resets are transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Io { source, .. } => is_transient_io(source),
            Error::Integrity(e) => e.is_transient(),
            _ => false,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<Option<PathBuf>>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::from_io(op, path, source)
    }

    /// Wraps an I/O error, unwrapping errors of this crate that travelled through a
    /// `Read` or `Write` implementation.
    pub(crate) fn from_io(op: &'static str, path: Option<PathBuf>, source: io::Error) -> Error {
        if source
            .get_ref()
            .is_some_and(<dyn std::error::Error + Send + Sync>::is::<Error>)
        {
            if let Some(inner) = source.into_inner()
                && let Ok(e) = inner.downcast::<Error>()
            {
                return *e;
            }
            return Error::Corrupt {
                reason: "lost error".into(),
            };
        }
        match source.kind() {
            io::ErrorKind::UnexpectedEof => {
                return Error::Corrupt {
                    reason: format!("{op}: unexpected end of data (truncated?)"),
                };
            }
            // What decompressors report for damaged input.
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
                return Error::Corrupt {
                    reason: format!("{op}: {source}"),
                };
            }
            _ => {}
        }
        Error::Io { op, path, source }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Error {
        Error::Corrupt {
            reason: reason.into(),
        }
    }

    pub(crate) fn verification(subject: impl Into<String>) -> Error {
        Error::Verification {
            subject: subject.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            reason: reason.into(),
        }
    }
}

fn is_transient_io(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Io => match &e {
                Error::Io { source, .. } => source.kind(),
                _ => io::ErrorKind::Other,
            },
            ErrorKind::Cancelled => io::ErrorKind::Interrupted,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_a_trip_through_io() {
        let original = Error::verification("entry data/x");
        let through: io::Error = original.into();
        let back = Error::from_io("reading", None, through);
        assert_eq!(back.kind(), ErrorKind::Verification);
        assert!(back.to_string().contains("entry data/x"));
    }

    #[test]
    fn eof_is_corruption() {
        let e = Error::from_io(
            "reading entry",
            None,
            io::Error::new(io::ErrorKind::UnexpectedEof, "eof"),
        );
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("truncated"));
    }

    #[test]
    fn transient_classification() {
        let reset = Error::from_io(
            "reading",
            None,
            io::Error::new(io::ErrorKind::ConnectionReset, "x"),
        );
        assert!(reset.is_transient());
        assert!(!Error::corrupt("x").is_transient());
    }
}
