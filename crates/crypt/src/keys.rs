//! age X25519 recipients and identities, and identity files.

use std::fmt;
use std::fs;
use std::io::BufReader;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// An age X25519 recipient (`age1…`): what a host that writes backups holds.
/// It can encrypt, never decrypt.
///
/// ```
/// use cairn_crypt::Recipient;
///
/// let r: Recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".parse()?;
/// assert_eq!(r.fingerprint().len(), 16);
/// assert!("age1nope".parse::<Recipient>().is_err());
/// # Ok::<(), cairn_crypt::Error>(())
/// ```
#[derive(Clone)]
pub struct Recipient(age::x25519::Recipient);

impl Recipient {
    /// The recipient's fingerprint, which records carry instead of the key:
    /// the first 16 hex digits of the SHA-256 of its `age1…` text.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.to_string().as_bytes());
        hex::encode(&digest[..8])
    }

    pub(crate) fn as_age(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

impl FromStr for Recipient {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let text = s.trim();
        text.parse::<age::x25519::Recipient>()
            .map(Recipient)
            .map_err(|reason| Error::BadRecipient {
                text: text.to_owned(),
                reason: reason.to_owned(),
            })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.0)
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Recipient {}

/// An age X25519 identity (`AGE-SECRET-KEY-1…`): what restores, full
/// verifications and decrypting downloads need. Its `Debug` shows its
/// recipient, never the secret.
#[derive(Clone)]
pub struct Identity(age::x25519::Identity);

impl Identity {
    /// A new random identity.
    pub fn generate() -> Self {
        Identity(age::x25519::Identity::generate())
    }

    /// The recipient that encrypts to this identity.
    pub fn recipient(&self) -> Recipient {
        Recipient(self.0.to_public())
    }

    /// The text of an identity file holding this identity, in the format
    /// the `age` command reads (`age -d -i FILE`): a comment naming the
    /// recipient, then the secret key. Write it with mode 0600.
    pub fn to_file_text(&self) -> String {
        format!(
            "# public key: {}\n{}\n",
            self.0.to_public(),
            self.0.to_string().expose_secret()
        )
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity(for {})", self.0.to_public())
    }
}

/// The identities that may open encrypted backups: a list, so that the
/// identities of earlier recipients keep opening earlier backups.
#[derive(Default)]
pub struct Identities(Vec<Box<dyn age::Identity + Send + Sync>>);

impl Identities {
    /// No identity yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads an identity file (age's format: `AGE-SECRET-KEY-1…` lines,
    /// `#` comments, blank lines), which must be readable by its owner
    /// only.
    ///
    /// # Errors
    ///
    /// [`Error::InsecureIdentityFile`] when its group or others may read
    /// it; [`Error::IdentityFile`] when it cannot be read;
    /// [`Error::BadIdentityFile`] when a line is not an identity (named by
    /// its number) or the file holds none. Each names the file.
    pub fn load(path: &Path) -> Result<Self> {
        let file_error = |source| Error::IdentityFile {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(file_error)?;
        check_private_mode(path, &file.metadata().map_err(file_error)?)?;
        let bad = |reason: String| Error::BadIdentityFile {
            path: path.to_owned(),
            reason,
        };
        let parsed =
            age::IdentityFile::from_buffer(BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
        let found = parsed.into_identities().map_err(|e| bad(e.to_string()))?;
        if found.is_empty() {
            return Err(bad("it holds no age identity".into()));
        }
        Ok(Identities(found))
    }

    /// Adds one identity.
    pub fn push(&mut self, identity: Identity) {
        self.0.push(Box::new(identity.0));
    }

    /// Adds every identity of `other` (another file's).
    pub fn extend(&mut self, other: Identities) {
        self.0.extend(other.0);
    }

    /// How many identities there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|i| i.as_ref() as &dyn age::Identity)
    }
}

impl From<Identity> for Identities {
    fn from(identity: Identity) -> Self {
        let mut all = Identities::new();
        all.push(identity);
        all
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identities({} identities)", self.0.len())
    }
}

fn check_private_mode(path: &Path, meta: &fs::Metadata) -> Result<()> {
    match cairn_integrity::exposed_mode(meta) {
        Some(mode) => Err(Error::InsecureIdentityFile {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(()),
    }
}
