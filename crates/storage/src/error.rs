//! One error type: which operation, on which key, what kind of failure.

use std::fmt;

/// The store operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Opening a store from its URL and options.
    Open,
    /// Writing a whole object.
    Put,
    /// Writing an object only if it does not exist.
    PutIfAbsent,
    /// A streaming multipart upload.
    Upload,
    /// Reading a whole object.
    Get,
    /// Reading a byte range.
    GetRange,
    /// Reading an object's size and version.
    Head,
    /// Listing keys under a prefix.
    List,
    /// Deleting an object.
    Delete,
    /// Signing a URL.
    Sign,
    /// Taking, renewing or releasing a lease.
    Lease,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Put => "put",
            Self::PutIfAbsent => "put-if-absent",
            Self::Upload => "upload",
            Self::Get => "get",
            Self::GetRange => "get-range",
            Self::Head => "head",
            Self::List => "list",
            Self::Delete => "delete",
            Self::Sign => "sign",
            Self::Lease => "lease",
        })
    }
}

/// What kind of failure, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key does not exist.
    NotFound,
    /// The key exists and the write required that it did not.
    AlreadyExists,
    /// A condition on the object's version did not hold.
    Precondition,
    /// The store refused the credentials or the permission.
    Denied,
    /// The store URL or an option is wrong.
    Config,
    /// The backend cannot do this.
    Unsupported,
    /// A lease is held by someone else.
    LeaseHeld,
    /// A lease this process held was taken over or released meanwhile.
    LeaseLost,
    /// A network or server fault that persisted through the retries.
    Transient,
    /// Anything else (a malformed object, an unexpected answer).
    Other,
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {key}: {message}")]
pub struct Error {
    op: Op,
    key: String,
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(
        op: Op,
        key: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            op,
            key: key.into(),
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Wraps an `object_store` error, classifying it. The message says what
    /// the failure means; what the store said is the source (a report of
    /// the chain prints both, once each).
    pub(crate) fn store(op: Op, key: impl Into<String>, e: object_store::Error) -> Self {
        let kind = classify(&e);
        let message = match kind {
            ErrorKind::NotFound => "no such object",
            ErrorKind::AlreadyExists => "the object exists already",
            ErrorKind::Precondition => "the object is not in the state the request required",
            ErrorKind::Denied => "the store refused the credentials or the permission",
            ErrorKind::Config => "the store's URL or options are wrong",
            ErrorKind::Unsupported => "this store cannot do it",
            ErrorKind::Transient => "the store did not answer, through the retries",
            _ => "the store failed",
        };
        Self {
            op,
            key: key.into(),
            kind,
            message: message.to_owned(),
            source: Some(Box::new(e)),
        }
    }

    /// The operation.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The key (or the store URL, for [`Op::Open`]).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether trying again later may succeed. The store already retried with
    /// backoff before giving up; this is a hint for the caller's own policy.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

fn classify(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        E::Precondition { .. } | E::NotModified { .. } => ErrorKind::Precondition,
        E::NotSupported { .. } | E::NotImplemented { .. } => ErrorKind::Unsupported,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorKind::Denied,
        E::UnknownConfigurationKey { .. } | E::InvalidPath { .. } => ErrorKind::Config,
        E::Generic { source, .. } => classify_source(source.as_ref()),
        _ => ErrorKind::Other,
    }
}

/// Looks through the error chain for the HTTP client's verdict. A transport
/// failure (connect, request, timeout, interrupted) or a status of 5xx or 429
/// is transient; 401/403 is a denial; other statuses are not transient.
///
/// `object_store` keeps its retry error type private, so the status is read
/// from its message ("Server returned non-2xx status code: 503 …"); the
/// fault-injection test pins this down for the version in `Cargo.lock`.
fn classify_source(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted => ErrorKind::Transient,
                _ => ErrorKind::Other,
            };
        }
        let text = err.to_string();
        if let Some(rest) = text.split("status code: ").nth(1)
            && let Some(code) = rest.get(..3).and_then(|c| c.parse::<u16>().ok())
        {
            return match code {
                429 | 500..=599 => ErrorKind::Transient,
                401 | 403 => ErrorKind::Denied,
                404 => ErrorKind::NotFound,
                409 | 412 => ErrorKind::Precondition,
                _ => ErrorKind::Other,
            };
        }
        cur = err.source();
    }
    ErrorKind::Other
}
