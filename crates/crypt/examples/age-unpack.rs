//! Decrypts, verifies and unpacks an encrypted Cairn archive into a new
//! directory (the `unpack` example of `cairn-archive`, decrypting).
//!
//! ```text
//! cargo run -p cairn-crypt --example age-unpack -- --public-key PUB.pem --identity ID.txt ARCHIVE DEST
//! ```
//!
//! The archive is read as a stream, each 64 KiB chunk authenticated before
//! its bytes are used; nothing appears at `DEST` unless the whole archive
//! verified.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::PathBuf;

use cairn_archive::{ArchiveReader, ReadAhead, UnpackOptions};
use cairn_crypt::{DecryptingReader, Identities};
use cairn_integrity::PublicKey;

fn main() -> Result<(), Box<dyn Error>> {
    let mut key_path = None;
    let mut identities = Identities::new();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--public-key" => key_path = Some(PathBuf::from(value()?)),
            "--identity" => identities.extend(Identities::load(&PathBuf::from(value()?))?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let (Some(key_path), [archive, dest]) = (key_path, &positional[..]) else {
        return Err("usage: age-unpack --public-key PUB.pem --identity ID.txt ARCHIVE DEST".into());
    };
    let key = PublicKey::load(&key_path)?;
    let file = ReadAhead::new(std::fs::File::open(archive)?);
    let plain = DecryptingReader::new(file, &identities)?;
    let manifest = ArchiveReader::new(plain)?.unpack(&key, dest, &UnpackOptions::default())?;
    println!(
        "unpacked {} ({} entries) into {}",
        manifest.backup_id(),
        manifest.entry_count(),
        dest.display()
    );
    Ok(())
}
