//! Paths inside archives, kept as raw bytes so that names which are not UTF-8
//! survive a round trip.
//!
//! In JSON a path is a string when it is valid UTF-8 and `{"hex": "…"}` otherwise,
//! so manifests stay readable and nothing is lost.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path component accepted, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// A validated relative path inside an archive: `component/dir/file`.
///
/// Rules: not empty; at most 4096 bytes; no NUL byte; components separated by
/// single `/`; no leading or trailing `/`; no empty, `.` or `..` component; no
/// component longer than 255 bytes. Any other byte is allowed, including bytes that
/// are not UTF-8. Such a path can never name anything outside the directory it is
/// joined to.
///
/// ```
/// use cairn_manifest::EntryPath;
///
/// assert!(EntryPath::parse(b"data/a b/c.txt").is_ok());
/// assert!(EntryPath::parse(b"data/\xff\xfe").is_ok()); // not UTF-8, still fine
/// assert!(EntryPath::parse(b"/etc/passwd").is_err());
/// assert!(EntryPath::parse(b"data/../../etc").is_err());
/// assert!(EntryPath::parse(b"data/./x").is_err());
/// assert!(EntryPath::parse(b"data//x").is_err());
/// assert!(EntryPath::parse(b"data/x/").is_err());
/// assert!(EntryPath::parse(b"data/\0x").is_err());
/// assert!(EntryPath::parse(b"").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPath(Vec<u8>);

impl EntryPath {
    /// Validates `bytes` as an archive path.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] naming the broken rule.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        check_path(bytes)?;
        Ok(EntryPath(bytes.to_vec()))
    }

    /// Validates an owned buffer without copying it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] naming the broken rule.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self> {
        check_path(&bytes)?;
        Ok(EntryPath(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/')
    }

    /// The first component (for entries of an archive, the component name).
    pub fn first(&self) -> &[u8] {
        self.components().next().unwrap_or_default()
    }

    /// The path without its first component, if it has more than one.
    pub fn rest(&self) -> Option<&[u8]> {
        let i = self.0.iter().position(|&b| b == b'/')?;
        Some(&self.0[i + 1..])
    }

    /// The parent path, if the path has more than one component.
    pub fn parent(&self) -> Option<EntryPath> {
        let i = self.0.iter().rposition(|&b| b == b'/')?;
        Some(EntryPath(self.0[..i].to_vec()))
    }

    /// The last component.
    pub fn file_name(&self) -> &[u8] {
        self.components().last().unwrap_or_default()
    }

    /// How many components the path has.
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// This path followed by `/` and `child`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if the result breaks a rule (for example `child`
    /// contains `..`).
    pub fn join(&self, child: &[u8]) -> Result<EntryPath> {
        let mut v = Vec::with_capacity(self.0.len() + 1 + child.len());
        v.extend_from_slice(&self.0);
        v.push(b'/');
        v.extend_from_slice(child);
        EntryPath::from_vec(v)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &EntryPath) -> bool {
        self.0.starts_with(&other.0)
            && (self.0.len() == other.0.len() || self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// The path as an OS path, relative (unix: byte for byte).
    #[cfg(unix)]
    pub fn to_path(&self) -> &std::path::Path {
        use std::os::unix::ffi::OsStrExt;
        std::path::Path::new(std::ffi::OsStr::from_bytes(&self.0))
    }
}

impl fmt::Display for EntryPath {
    /// Shows the path, escaping bytes that are not UTF-8 as `\xNN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show_bytes(&self.0))
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryPath({:?})", show_bytes(&self.0))
    }
}

impl AsRef<[u8]> for EntryPath {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for EntryPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        BytesRepr::from_bytes(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for EntryPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes = BytesRepr::deserialize(d)?
            .into_bytes()
            .map_err(serde::de::Error::custom)?;
        EntryPath::from_vec(bytes).map_err(serde::de::Error::custom)
    }
}

/// The raw target of a symbolic link: any bytes but NUL, 1 to 4096 of them.
///
/// Targets are stored as they were (absolute, with `..`, dangling): a link is data.
/// What makes unpacking safe is that nothing is ever written *through* a link.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LinkTarget(Vec<u8>);

impl LinkTarget {
    /// Validates a link target.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if it is empty, too long or contains NUL.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let invalid = |reason| Error::InvalidPath {
            path: show_bytes(bytes),
            reason,
        };
        if bytes.is_empty() {
            return Err(invalid("link target is empty"));
        }
        if bytes.len() > MAX_PATH_BYTES {
            return Err(invalid("link target is longer than 4096 bytes"));
        }
        if bytes.contains(&0) {
            return Err(invalid("link target contains a NUL byte"));
        }
        Ok(LinkTarget(bytes.to_vec()))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for LinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show_bytes(&self.0))
    }
}

impl fmt::Debug for LinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkTarget({:?})", show_bytes(&self.0))
    }
}

impl Serialize for LinkTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        BytesRepr::from_bytes(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LinkTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes = BytesRepr::deserialize(d)?
            .into_bytes()
            .map_err(serde::de::Error::custom)?;
        LinkTarget::parse(&bytes).map_err(serde::de::Error::custom)
    }
}

/// JSON form of raw bytes: a string when UTF-8, else `{"hex": "…"}`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BytesRepr<'a> {
    Text(std::borrow::Cow<'a, str>),
    Hex { hex: String },
}

impl<'a> BytesRepr<'a> {
    fn from_bytes(bytes: &'a [u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(s) => BytesRepr::Text(std::borrow::Cow::Borrowed(s)),
            Err(_) => BytesRepr::Hex {
                hex: hex::encode(bytes),
            },
        }
    }

    fn into_bytes(self) -> std::result::Result<Vec<u8>, String> {
        match self {
            BytesRepr::Text(s) => Ok(s.into_owned().into_bytes()),
            BytesRepr::Hex { hex } => {
                let bytes = hex::decode(&hex).map_err(|e| format!("invalid hex path: {e}"))?;
                if std::str::from_utf8(&bytes).is_ok() {
                    // One path, one spelling: UTF-8 paths are always plain strings.
                    return Err("hex form used for a UTF-8 path".to_owned());
                }
                Ok(bytes)
            }
        }
    }
}

/// Bytes as text, with `\xNN` for bytes that are not UTF-8 and escapes for controls.
pub(crate) fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn check_path(bytes: &[u8]) -> Result<()> {
    let invalid = |reason| Error::InvalidPath {
        path: show_bytes(&bytes[..bytes.len().min(300)]),
        reason,
    };
    if bytes.is_empty() {
        return Err(invalid("empty path"));
    }
    if bytes.len() > MAX_PATH_BYTES {
        return Err(invalid("longer than 4096 bytes"));
    }
    if bytes.contains(&0) {
        return Err(invalid("contains a NUL byte"));
    }
    if bytes[0] == b'/' {
        return Err(invalid("absolute path"));
    }
    for comp in bytes.split(|&b| b == b'/') {
        match comp {
            b"" => return Err(invalid("empty component ('//' or a trailing '/')")),
            b"." => return Err(invalid("'.' component")),
            b".." => return Err(invalid("'..' component")),
            c if c.len() > MAX_NAME_BYTES => {
                return Err(invalid("a component is longer than 255 bytes"));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_forms() {
        let utf8 = EntryPath::parse("data/ünï".as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&utf8).unwrap(), "\"data/ünï\"");
        let raw = EntryPath::parse(b"data/\xff").unwrap();
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            r#"{"hex":"646174612fff"}"#
        );
        assert_eq!(
            serde_json::from_str::<EntryPath>(r#"{"hex":"646174612fff"}"#).unwrap(),
            raw
        );
        // Hex spelling of a UTF-8 path, and hostile paths, are refused when parsed.
        assert!(serde_json::from_str::<EntryPath>(r#"{"hex":"6461746"}"#).is_err());
        assert!(serde_json::from_str::<EntryPath>(r#"{"hex":"64617461"}"#).is_err());
        assert!(serde_json::from_str::<EntryPath>(r#""../x""#).is_err());
        assert!(serde_json::from_str::<EntryPath>(r#"{"hex":"2f6574632fff"}"#).is_err());
    }

    #[test]
    fn parts() {
        let p = EntryPath::parse(b"data/a/b.txt").unwrap();
        assert_eq!(p.first(), b"data");
        assert_eq!(p.rest(), Some(&b"a/b.txt"[..]));
        assert_eq!(p.parent().unwrap().as_bytes(), b"data/a");
        assert_eq!(p.file_name(), b"b.txt");
        assert_eq!(p.depth(), 3);
        let root = EntryPath::parse(b"data").unwrap();
        assert!(p.starts_with(&root));
        assert!(!EntryPath::parse(b"database").unwrap().starts_with(&root));
        assert_eq!(root.rest(), None);
        assert!(root.join(b"..").is_err());
    }

    #[test]
    fn long_components() {
        let ok = [b'a'; 255];
        assert!(EntryPath::parse(&ok).is_ok());
        assert!(EntryPath::parse(&[b'a'; 256]).is_err());
        let long: Vec<u8> = std::iter::repeat_n(&b"abcdefghij/"[..], 400)
            .flatten()
            .copied()
            .collect();
        assert!(EntryPath::parse(&long[..long.len() - 1]).is_err()); // 4399 bytes
    }

    #[test]
    fn show_escapes() {
        assert_eq!(show_bytes(b"a\xffb\n"), "a\\xffb\\n");
    }

    proptest! {
        #[test]
        fn accepted_paths_stay_inside(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = EntryPath::parse(&bytes) {
                // Joining to a base can never climb out of it.
                let mut depth: i64 = 0;
                for c in p.components() {
                    if c == b".." { depth -= 1; } else if c != b"." { depth += 1; }
                    prop_assert!(depth > 0);
                }
                let json = serde_json::to_string(&p).unwrap();
                prop_assert_eq!(serde_json::from_str::<EntryPath>(&json).unwrap(), p);
            }
        }

        #[test]
        fn link_targets_round_trip(bytes in proptest::collection::vec(1u8..=255, 1..64)) {
            let t = LinkTarget::parse(&bytes).unwrap();
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(serde_json::from_str::<LinkTarget>(&json).unwrap(), t);
        }
    }
}
