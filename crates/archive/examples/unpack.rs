//! Verifies a Cairn archive and unpacks it into a new directory.
//!
//! ```text
//! cargo run -p cairn-archive --example unpack -- --public-key PUB.pem ARCHIVE DEST [--component NAME]...
//! ```
//!
//! Nothing appears at `DEST` unless the whole archive verified. With
//! `--component`, only the frames holding those components are read.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::PathBuf;

use cairn_archive::{ArchiveReader, ReadOptions, SeekSource, SeekableArchive, UnpackOptions};
use cairn_integrity::PublicKey;
use cairn_manifest::ComponentName;

fn main() -> Result<(), Box<dyn Error>> {
    let mut key_path = None;
    let mut components = Vec::new();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--public-key" => key_path = Some(PathBuf::from(value()?)),
            "--component" => components.push(ComponentName::parse(&value()?)?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let (Some(key_path), [archive, dest]) = (key_path, &positional[..]) else {
        return Err("usage: unpack --public-key PUB.pem ARCHIVE DEST [--component NAME]".into());
    };
    let key = PublicKey::load(&key_path)?;
    let file = std::fs::File::open(archive)?;
    let manifest = if components.is_empty() {
        // Reading the file ahead on a thread of its own overlaps the system calls
        // with decompression and checks.
        ArchiveReader::new(cairn_archive::ReadAhead::new(file))?.unpack(
            &key,
            dest,
            &UnpackOptions::default(),
        )?
    } else {
        let mut a = SeekableArchive::open(SeekSource(file), &key, ReadOptions::default())?;
        a.unpack(dest, &UnpackOptions::default().components(components))?
    };
    println!(
        "unpacked {} ({} entries) into {}",
        manifest.backup_id(),
        manifest.entry_count(),
        dest.display()
    );
    Ok(())
}
