//! Failures as the user sees them: one line, a hint, a distinct exit code.

use std::fmt;

/// What kind of failure: decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Exit 1: anything else (store unreachable, disk full, a job failed).
    Other,
    /// Exit 2: a bad command line or configuration.
    Usage,
    /// Exit 3: no such target, backup or job.
    NotFound,
    /// Exit 4: a backup failed verification (tampered, truncated, wrong key).
    Verification,
    /// Exit 5: a conflict: the target is busy, the backup in use, a cooldown.
    Conflict,
}

impl Kind {
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Verification => 4,
            Kind::Conflict => 5,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Other => "failed",
            Kind::Usage => "usage",
            Kind::NotFound => "not_found",
            Kind::Verification => "verification_failed",
            Kind::Conflict => "conflict",
        }
    }

    /// The kind [`Kind::as_str`] named.
    pub(crate) fn from_name(name: &str) -> Self {
        [
            Kind::Usage,
            Kind::NotFound,
            Kind::Verification,
            Kind::Conflict,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
        .unwrap_or(Kind::Other)
    }

    /// The exit class of an engine error kind.
    pub(crate) fn of(kind: cairn::ErrorKind) -> Self {
        use cairn::ErrorKind as E;
        match kind {
            E::NotFound => Kind::NotFound,
            E::Invalid | E::Config | E::ForeignOrigin | E::Unsupported => Kind::Usage,
            E::VerificationFailed => Kind::Verification,
            E::Conflict | E::Cooldown | E::Gone => Kind::Conflict,
            _ => Kind::Other,
        }
    }

    /// The exit class of a failed job's `error.code` (a kind's name, or the
    /// runner's own `timeout` and `interrupted`).
    pub(crate) fn of_code(code: &str) -> Self {
        cairn::ErrorKind::from_code(code).map_or(Kind::Other, Kind::of)
    }
}

/// A failure to report.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) kind: Kind,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Fail {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// The failure as the JSON error document `--json` prints.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "code": self.kind.as_str(), "message": self.message, "hint": self.hint }
        })
    }

    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The hint for a signing key that is not the installation's.
const ROTATE: &str = "put the right signing key back from your copy of it, or start signing with a new key on purpose with `cairn key rotate`";

impl From<cairn::Error> for Fail {
    fn from(e: cairn::Error) -> Self {
        let kind = Kind::of(e.kind());
        let hint = match &e {
            cairn::Error::Busy { .. } => {
                Some("wait for the running job (`cairn jobs`) or cancel it")
            }
            cairn::Error::Leased { .. } => Some("try again once that job has finished"),
            cairn::Error::ForeignOrigin { .. } => {
                Some("add --force to restore it anyway, or --to DIR to look at it")
            }
            cairn::Error::Catalog(c) if c.kind() == cairn::errors::CatalogErrorKind::Corrupt => {
                Some(
                    "move the damaged catalog aside; `cairn catalog rebuild` recreates it from the store",
                )
            }
            cairn::Error::WrongKey { .. } => Some(ROTATE),
            _ if e.kind() == cairn::ErrorKind::VerificationFailed => {
                Some("the backup cannot be trusted; restore another one")
            }
            _ => None,
        };
        let mut fail = Fail::new(kind, e.report());
        fail.hint = hint.map(str::to_owned);
        fail
    }
}

impl From<cairn_config::Error> for Fail {
    fn from(e: cairn_config::Error) -> Self {
        let kind = match e.kind() {
            cairn_config::ErrorKind::Usage => Kind::Usage,
            _ => Kind::Other,
        };
        let mut fail = Fail::new(kind, e.to_string());
        let command = match e.remedy() {
            Some(cairn_config::Remedy::CreateConfig) => Some("create one with `cairn init`"),
            Some(cairn_config::Remedy::RotateKey) => Some(ROTATE),
            _ => None,
        };
        fail.hint = command.or(e.hint_text()).map(str::to_owned).or_else(|| {
            (kind == Kind::Usage).then(|| {
                "`cairn init --output example.toml` writes an annotated configuration".to_owned()
            })
        });
        fail
    }
}
