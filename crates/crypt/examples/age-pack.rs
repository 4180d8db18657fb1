//! Packs a directory into a signed Cairn archive encrypted to age
//! recipients (the `pack` example of `cairn-archive`, encrypted).
//!
//! ```text
//! cargo run -p cairn-crypt --example age-pack -- --key KEY.pem --to age1… [--to age1…] SRC_DIR OUT
//!     [--threads N]
//! ```
//!
//! `KEY.pem` is an Ed25519 signing key (the `pack` example makes one).
//! `age -d -i IDENTITY OUT | tar --zstd -xf -` extracts the result.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::PathBuf;

use cairn_archive::{ArchiveMeta, ArchiveWriter, WriterOptions};
use cairn_crypt::{EncryptingWriter, Recipient};
use cairn_integrity::SigningKey;
use cairn_manifest::{ComponentName, OriginId, TargetName};

fn main() -> Result<(), Box<dyn Error>> {
    let mut key_path = None;
    let mut recipients: Vec<Recipient> = Vec::new();
    let mut opts = WriterOptions::default().format(2);
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--key" => key_path = Some(PathBuf::from(value()?)),
            "--to" => recipients.push(value()?.parse()?),
            "--threads" => opts = opts.threads(value()?.parse()?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let (Some(key_path), [src, out]) = (key_path, &positional[..]) else {
        return Err("usage: age-pack --key KEY.pem --to age1… SRC_DIR OUT".into());
    };
    let key = SigningKey::load(&key_path)?;
    let meta = ArchiveMeta::new(
        TargetName::parse("example")?,
        OriginId::parse("org_example")?,
    );
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let sealed = EncryptingWriter::new(file, &recipients)?;
    let mut writer = ArchiveWriter::new(sealed, meta, opts)?;
    writer.append_dir(&ComponentName::parse("data")?, src, false)?;
    let done = writer.finish(&key)?;
    let id = done.manifest.backup_id();
    done.inner
        .finish()?
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    println!(
        "packed {id}: {} bytes of archive, encrypted to {} recipients",
        done.size,
        recipients.len()
    );
    Ok(())
}
