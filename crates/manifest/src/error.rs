//! The one error type of this crate.
//!
//! [`Error::kind`] classifies failures; all of them are permanent (parsing the same
//! bytes again gives the same answer). Verification failures come from
//! `cairn-integrity` and stay opaque about *why* a signature was refused.

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that must decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A name, id or path does not follow its rules.
    InvalidInput,
    /// The manifest is not well-formed JSON of the expected shape, or is
    /// inconsistent with itself.
    Format,
    /// The manifest is of a major version this build cannot read.
    UnsupportedVersion,
    /// The manifest's signature did not verify with the trusted key.
    Verification,
    /// The manifest is larger than allowed.
    TooLarge,
}

/// An error from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A target or component name is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// "target name" or "component name".
        what: &'static str,
        /// The refused value.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// An id is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidId {
        /// Which id.
        what: &'static str,
        /// The refused value.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A path inside an archive is not acceptable.
    #[error("invalid path {path:?} in archive: {reason}")]
    InvalidPath {
        /// The path, lossily decoded.
        path: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A modification time could not be parsed.
    #[error("invalid time {value:?}: {reason}")]
    InvalidTime {
        /// The refused text.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The manifest names a major version this build does not read.
    #[error(
        "manifest format version {found} is not supported: this build reads major version {supported}"
    )]
    UnsupportedVersion {
        /// The version found.
        found: String,
        /// The major version this build reads.
        supported: u32,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("manifest is not valid: {source}")]
    Json {
        /// The parser's error.
        #[from]
        source: serde_json::Error,
    },
    /// The manifest contradicts itself.
    #[error("manifest is inconsistent: {reason}")]
    Inconsistent {
        /// What contradicts what.
        reason: String,
    },
    /// The manifest is larger than the limit.
    #[error("manifest is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The manifest's signature did not verify.
    #[error(transparent)]
    Integrity(#[from] cairn_integrity::Error),
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidName { .. }
            | Error::InvalidId { .. }
            | Error::InvalidPath { .. }
            | Error::InvalidTime { .. } => ErrorKind::InvalidInput,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::Json { .. } | Error::Inconsistent { .. } => ErrorKind::Format,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Integrity(e) => match e.kind() {
                cairn_integrity::ErrorKind::Verification => ErrorKind::Verification,
                _ => ErrorKind::Format,
            },
        }
    }

    pub(crate) fn inconsistent(reason: impl Into<String>) -> Self {
        Error::Inconsistent {
            reason: reason.into(),
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}
