//! Writing an age file.

use std::fmt;
use std::io::{self, Write};

use crate::error::{Error, Result};
use crate::keys::Recipient;

/// A writer whose output is an age v1 file encrypted to its recipients:
/// what is written to it is its plaintext, cut into 64 KiB chunks, each
/// encrypted and authenticated as it fills. [`EncryptingWriter::finish`]
/// writes the last chunk; an output left without it is refused by every
/// reader as truncated.
///
/// ```
/// use std::io::Write;
/// use cairn_crypt::{EncryptingWriter, Identity};
///
/// let id = Identity::generate();
/// let mut w = EncryptingWriter::new(Vec::new(), &[id.recipient()])?;
/// w.write_all(b"the archive")?;
/// let stored = w.finish()?;
/// assert!(stored.starts_with(b"age-encryption.org/v1\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EncryptingWriter<W: Write> {
    inner: age::stream::StreamWriter<W>,
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes the age header for `recipients` (each can decrypt alone) to
    /// `out`.
    ///
    /// # Errors
    ///
    /// [`Error::NoRecipients`] for an empty list; [`Error::Io`] when `out`
    /// fails.
    pub fn new(out: W, recipients: &[Recipient]) -> Result<Self> {
        if recipients.is_empty() {
            return Err(Error::NoRecipients);
        }
        let encryptor = age::Encryptor::with_recipients(
            recipients.iter().map(|r| r.as_age() as &dyn age::Recipient),
        )
        .map_err(|e| Error::Io {
            what: "starting encryption",
            source: io::Error::other(e.to_string()),
        })?;
        let inner = encryptor
            .wrap_output(out)
            .map_err(Error::io("writing the age header"))?;
        Ok(EncryptingWriter { inner })
    }

    /// Writes the last chunk and gives the output back.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the output fails.
    pub fn finish(self) -> Result<W> {
        self.inner
            .finish()
            .map_err(Error::io("writing the last encrypted chunk"))
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptingWriter")
    }
}
