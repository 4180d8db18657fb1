//! Verifies a Cairn archive: signature, every entry's digest and metadata, the
//! frame index and, with `--seal`, the archive's size and SHA-256.
//!
//! ```text
//! cargo run -p cairn-archive --example verify -- --public-key PUB.pem ARCHIVE [--seal ARCHIVE.seal]
//! ```
//!
//! Exits with status 1 and one line naming what failed on any mismatch.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_archive::ArchiveReader;
use cairn_integrity::{PublicKey, SignedSeal};

fn run() -> Result<String, Box<dyn Error>> {
    let mut key_path = None;
    let mut seal_path = None;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--public-key" => key_path = Some(PathBuf::from(value()?)),
            "--seal" => seal_path = Some(PathBuf::from(value()?)),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let (Some(key_path), [archive]) = (key_path, &positional[..]) else {
        return Err("usage: verify --public-key PUB.pem ARCHIVE [--seal SEAL]".into());
    };
    let key = PublicKey::load(&key_path)?;
    let file = std::fs::File::open(archive)?;
    let verified = ArchiveReader::new(cairn_archive::ReadAhead::new(file))?.verify(&key)?;
    let what = if let Some(seal_path) = seal_path {
        let seal = SignedSeal::parse(&std::fs::read(seal_path)?)?.verify(&key)?;
        verified.check_seal(&seal)?;
        "content and exact bytes (seal)"
    } else {
        "content only (no seal given: the compressed bytes themselves are not checked)"
    };
    let m = &verified.manifest;
    Ok(format!(
        "OK {}: {} entries, {} bytes; verified {what}",
        m.backup_id(),
        m.entry_count(),
        verified.size,
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
