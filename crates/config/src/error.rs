//! Configuration errors: one line, naming the file, the line and the key.

use std::path::Path;

/// What went wrong, and what decides how a binary reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file, a value in it or an argument is wrong: the user can fix it.
    Usage,
    /// The filesystem failed (creating the state folder, writing the key).
    Io,
}

/// What a user can do about an error that a binary offers a command for:
/// the binary phrases it in its own terms (this crate names no command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Write a configuration file.
    CreateConfig,
    /// Put the installation's signing key back, or start signing with a new
    /// key on purpose ([`crate::rotate_key`]).
    RotateKey,
}

/// A configuration error: one line, and a hint when there is something to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    remedy: Option<Remedy>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            remedy: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub(crate) fn io(what: &str, path: &Path, e: &std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{what} {}: {e}", path.display()))
    }

    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    #[must_use]
    pub(crate) fn with_remedy(mut self, remedy: Remedy) -> Self {
        self.remedy = Some(remedy);
        self
    }

    /// The error of a file that does not parse as a configuration:
    /// `<file>:<line>:<column>: <key path>: <what>` on one line (the key path
    /// is empty for a syntax error).
    pub(crate) fn in_file(file: &Path, text: &str, key_path: &str, e: &toml::de::Error) -> Self {
        let at = e
            .span()
            .map(|span| {
                let (line, column) = position(text, span.start);
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        let key = if key_path.is_empty() || key_path == "." {
            String::new()
        } else {
            format!(" {key_path}:")
        };
        // toml's messages may span lines (a value's own error, a list of
        // expected keys): one line is what a terminal and a log show.
        let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        Self::usage(format!("{}{at}:{key} {what}", file.display()))
    }

    /// What kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What to do about it, if anything, in words that name no command.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The remedy a binary may offer a command for.
    pub fn remedy(&self) -> Option<Remedy> {
        self.remedy
    }
}

/// The 1-based line and column of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn positions_count_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 4), (1, 5));
        assert_eq!(position(text, 6), (2, 1));
        assert_eq!(position(text, 11), (2, 6));
        assert_eq!(position(text, 999), (3, 1));
    }
}
