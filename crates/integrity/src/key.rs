//! Ed25519 signing keys, public keys, signatures and key ids.
//!
//! Secret keys are stored as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the format
//! `openssl genpkey -algorithm ed25519` writes, in files of mode 0600. Public keys are
//! SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), the format `openssl pkey
//! -pubout` writes and `openssl pkeyutl -verify -pubin` reads.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use zeroize::Zeroizing;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result, VerificationFailed};

/// Key files larger than this are refused before parsing.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// An Ed25519 secret key that signs manifests and seals.
///
/// Its `Debug` output shows only the key id; the secret is zeroed when dropped.
///
/// ```
/// use cairn_integrity::SigningKey;
///
/// let key = SigningKey::generate()?;
/// let sig = key.sign(b"manifest bytes");
/// key.public_key().verify(b"manifest bytes", &sig)?;
/// assert!(key.public_key().verify(b"other bytes", &sig).is_err());
/// assert!(!format!("{key:?}").contains("PRIVATE"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// Generates a new key from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the system RNG fails.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// Builds a key from its 32-byte seed (the RFC 8032 "secret key").
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Decodes a PKCS#8 PEM secret key (v1 as written by OpenSSL, or v2).
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if the text is not an Ed25519 PKCS#8 PEM key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let inner = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| Error::key("secret key PEM", e))?;
        Ok(SigningKey { inner })
    }

    /// Encodes the key as PKCS#8 v1 PEM (the 32-byte seed only, as `openssl genpkey`
    /// writes it; OpenSSL 3.0 cannot read the v2 form that also embeds the public
    /// key). The returned text is zeroed when dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if encoding fails (it does not for valid keys).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        // `KeypairBytes` zeroes its secret when dropped.
        let v1 = KeypairBytes {
            secret_key: self.inner.to_bytes(),
            public_key: None,
        };
        v1.to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::key("secret key PEM", e))
    }

    /// Loads a PEM secret key from `path`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyFile`] if the file cannot be read, [`Error::InsecureKeyPermissions`]
    /// if its group or others may read it (unix), [`Error::Key`] if it is not a key.
    ///
    /// # Security
    ///
    /// Like `ssh`, this refuses keys that other users can read: such a key must be
    /// considered leaked.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io_err = |source| Error::KeyFile {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        check_private_mode(path, &meta)?;
        if meta.len() > MAX_KEY_FILE {
            return Err(Error::key(
                "secret key PEM",
                format!("{} is {} bytes, not a key", path.display(), meta.len()),
            ));
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        Self::from_pkcs8_pem(&text)
    }

    /// Writes the key as PKCS#8 PEM to a new file at `path` with mode 0600.
    ///
    /// The key is written to a temporary file beside `path`, synced, then linked into
    /// place, so `path` either does not exist or holds the whole key, even after a
    /// crash. An existing file is never overwritten.
    ///
    /// # Errors
    ///
    /// [`Error::KeyFile`] if `path` exists or cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let pem = self.to_pkcs8_pem()?;
        write_new_file(path.as_ref(), pem.as_bytes(), 0o600)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// The id of the matching public key.
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// Signs `message` (pure Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(self.inner.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key that verifies manifests and seals.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// Decodes a SubjectPublicKeyInfo PEM public key.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if the text is not an Ed25519 public key.
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        let inner = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| Error::key("public key PEM", e))?;
        Ok(PublicKey { inner })
    }

    /// Decodes the raw 32-byte key.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if the bytes are not a valid curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let inner = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|e| Error::key("public key", e))?;
        Ok(PublicKey { inner })
    }

    /// Loads a PEM public key from `path`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyFile`] if it cannot be read, [`Error::Key`] if it is not a key.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io_err = |source| Error::KeyFile {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        fs::File::open(path)
            .map_err(io_err)?
            .take(MAX_KEY_FILE)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        Self::from_public_key_pem(&text)
    }

    /// Writes the key as PEM to a new file at `path` (mode 0644).
    ///
    /// # Errors
    ///
    /// [`Error::KeyFile`] if `path` exists or cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_new_file(path.as_ref(), self.to_public_key_pem()?.as_bytes(), 0o644)
    }

    /// Encodes the key as SubjectPublicKeyInfo PEM.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if encoding fails (it does not for valid keys).
    pub fn to_public_key_pem(&self) -> Result<String> {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::key("public key PEM", e))
    }

    /// The raw 32-byte key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        KeyId::of(self)
    }

    /// Checks that `signature` is this key's signature of `message`.
    ///
    /// Uses `verify_strict`, which also refuses small-order keys and non-canonical
    /// signatures, so one message has exactly one valid signature per key.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`], saying nothing about why.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<()> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.inner.verify_strict(message, &sig).map_err(|_| {
            Error::from(VerificationFailed::new(format!(
                "signature does not verify with key {}",
                self.key_id()
            )))
        })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// A short, stable name for a public key: the first 16 bytes of the SHA-256 of its
/// raw 32 bytes, as 32 hex digits.
///
/// Manifests and seals carry the signer's id so that a signature from the wrong key
/// is reported as such rather than as tampering.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &PublicKey) -> Self {
        let digest = Sha256Digest::of(&key.to_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.as_bytes()[..16]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::format("key id", "expected 32 lower-case hex digits"));
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|e| Error::format("key id", e.to_string()))?;
        Ok(KeyId(out))
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A raw 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps the raw bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// Reads a signature from a slice that must be exactly 64 bytes long.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let raw: [u8; 64] = bytes.try_into().map_err(|_| {
            Error::format(
                "signature",
                format!("expected 64 bytes, found {}", bytes.len()),
            )
        })?;
        Ok(Signature(raw))
    }

    /// The raw bytes.
    pub const fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The signature as 128 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 128 hex digits.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if the text is not 128 hex digits.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out).map_err(|e| Error::format("signature", e.to_string()))?;
        Ok(Signature(out))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

fn check_private_mode(path: &Path, meta: &fs::Metadata) -> Result<()> {
    match exposed_mode(meta) {
        Some(mode) => Err(Error::InsecureKeyPermissions {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(()),
    }
}

/// The permission bits of a secret file (a key, an identity) when they let
/// its group or others read or write it; `None` when only its owner may
/// (and always on platforms without Unix modes).
///
/// ```
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// let f = tempfile::NamedTempFile::new()?;
/// std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644))?;
/// assert_eq!(cairn_integrity::exposed_mode(&f.as_file().metadata()?), Some(0o644));
/// std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600))?;
/// assert_eq!(cairn_integrity::exposed_mode(&f.as_file().metadata()?), None);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn exposed_mode(meta: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Writes `bytes` to a new file at `path` with `mode`, never replacing an existing
/// file and never leaving a partial one at `path`.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let io_err = |p: &Path| {
        let p = p.to_owned();
        move |source| Error::KeyFile { path: p, source }
    };
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| Error::Random(e.to_string()))?;
    let tmp = temp_sibling(path, &hex::encode(suffix));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = opts.open(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        // A hard link fails if `path` exists: publication without overwrite.
        fs::hard_link(&tmp, path).map_err(io_err(path))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).map_err(io_err(parent))?;
        }
        Ok(())
    })();
    // The temporary name is removed whatever happened; failing to remove it is not
    // worth masking the real outcome, and it holds nothing the final file lacks.
    let _ = fs::remove_file(&tmp);
    result
}

fn temp_sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{suffix}"));
    path.with_file_name(name)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret() {
        let key = SigningKey::from_seed(&[7u8; 32]);
        let dbg = format!("{key:?}");
        assert!(dbg.starts_with("SigningKey { key_id: KeyId("), "{dbg}");
        assert!(!dbg.contains(&hex::encode([7u8; 32])));
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(!dbg.contains(pem.as_str()));
    }

    #[test]
    fn pem_round_trip() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.key_id(), key.key_id());
        let pub_pem = key.public_key().to_public_key_pem().unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(
            PublicKey::from_public_key_pem(&pub_pem).unwrap(),
            key.public_key()
        );
    }

    #[test]
    fn wrong_pem_is_a_format_error() {
        let err = SigningKey::from_pkcs8_pem("not a key").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Format);
        let pub_pem = SigningKey::generate()
            .unwrap()
            .public_key()
            .to_public_key_pem()
            .unwrap();
        // A public key is not a secret key, and the other way round.
        assert!(SigningKey::from_pkcs8_pem(&pub_pem).is_err());
        let sec_pem = SigningKey::generate().unwrap().to_pkcs8_pem().unwrap();
        assert!(PublicKey::from_public_key_pem(&sec_pem).is_err());
    }

    #[test]
    fn key_id_parses_back() {
        let id = SigningKey::generate().unwrap().key_id();
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
        assert!("xyz".parse::<KeyId>().is_err());
    }

    #[test]
    fn signature_lengths() {
        assert!(Signature::from_slice(&[0u8; 63]).is_err());
        assert!(Signature::from_slice(&[0u8; 65]).is_err());
        let s = Signature::from_slice(&[1u8; 64]).unwrap();
        assert_eq!(Signature::from_hex(&s.to_hex()).unwrap(), s);
        assert!(Signature::from_hex("00").is_err());
    }
}
