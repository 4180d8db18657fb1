//! SHA-256 digests and the streaming adapters that compute them.
//!
//! The `sha2` crate picks the CPU's SHA extensions at run time when they exist,
//! so nothing here needs a feature flag to be fast.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::Digest as _;

use crate::error::{Error, Result};

/// A SHA-256 digest: 32 bytes, written as 64 lower-case hex digits in text and JSON.
///
/// ```
/// use cairn_integrity::Sha256Digest;
///
/// let d = Sha256Digest::of(b"abc");
/// assert_eq!(
///     d.to_string(),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// assert_eq!(d.to_string().parse::<Sha256Digest>().unwrap(), d);
/// assert!("BA78".parse::<Sha256Digest>().is_err()); // too short
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(sha2::Sha256::digest(bytes).into())
    }

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares two digests in constant time.
    pub fn ct_eq(&self, other: &Sha256Digest) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = Error;

    /// Parses exactly 64 lower-case hex digits.
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::format(
                "sha256 digest",
                "expected 64 lower-case hex digits",
            ));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| Error::format("sha256 digest", e.to_string()))?;
        Ok(Sha256Digest(out))
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental SHA-256 computation that also counts the bytes it has seen.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: sha2::Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// How many bytes were fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finalize(self) -> Sha256Digest {
        Sha256Digest(self.inner.finalize().into())
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes every byte it hands out.
///
/// ```
/// use std::io::Read;
/// use cairn_integrity::{HashingReader, Sha256Digest};
///
/// let mut r = HashingReader::new(&b"hello"[..]);
/// let mut s = String::new();
/// r.read_to_string(&mut s)?;
/// let (_, digest, len) = r.finish();
/// assert_eq!((digest, len), (Sha256Digest::of(b"hello"), 5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was read yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Returns the inner reader, the digest of what was read, and its length.
    pub fn finish(self) -> (R, Sha256Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finalize(), len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes every byte the inner writer accepted.
///
/// Only bytes the inner writer reports as written are hashed, so the digest always
/// matches what actually reached it, even across short writes.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// A reference to the inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Flushes, then returns the inner writer, the digest of what was written and
    /// its length.
    ///
    /// # Errors
    ///
    /// The inner writer's flush error.
    pub fn finish(mut self) -> io::Result<(W, Sha256Digest, u64)> {
        self.inner.flush()?;
        let len = self.hasher.len();
        Ok((self.inner, self.hasher.finalize(), len))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 test vectors.
    #[test]
    fn known_answers() {
        let cases: [(&[u8], &str); 3] = [
            (
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Sha256Digest::of(input).to_string(), want);
        }
    }

    #[test]
    fn million_a() {
        let mut h = Hasher::new();
        let chunk = [b'a'; 1000];
        for _ in 0..1000 {
            h.update(&chunk);
        }
        assert_eq!(h.len(), 1_000_000);
        assert_eq!(
            h.finalize().to_string(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn parse_rejects_bad_text() {
        for bad in [
            "",
            "zz",
            &"A".repeat(64),
            &"0".repeat(63),
            &"0".repeat(65),
            &format!("{}g", "0".repeat(63)),
        ] {
            let err = bad.parse::<Sha256Digest>().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Format, "{bad:?}");
        }
    }

    #[test]
    fn json_is_hex_string() {
        let d = Sha256Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        let back: Sha256Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Sha256Digest>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Sha256Digest>("42").is_err());
    }

    #[test]
    fn constant_time_eq_agrees_with_eq() {
        let a = Sha256Digest::of(b"a");
        let b = Sha256Digest::of(b"b");
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&b));
    }

    #[test]
    fn writer_hashes_only_accepted_bytes() {
        /// Accepts at most 3 bytes a call.
        struct Short(Vec<u8>);
        impl Write for Short {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = HashingWriter::new(Short(Vec::new()));
        w.write_all(b"hello world").unwrap();
        let (inner, digest, len) = w.finish().unwrap();
        assert_eq!(inner.0, b"hello world");
        assert_eq!(len, 11);
        assert_eq!(digest, Sha256Digest::of(b"hello world"));
    }
}
