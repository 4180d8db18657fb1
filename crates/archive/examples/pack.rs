//! Packs a directory into a signed Cairn archive.
//!
//! ```text
//! cargo run -p cairn-archive --example pack -- --key KEY.pem SRC_DIR OUT
//!     [--component NAME] [--codec zstd|gzip] [--level N] [--frame-size BYTES] [--threads N]
//!     [--format 1|2]
//! ```
//!
//! Generates `KEY.pem` (mode 0600) and `KEY.pem.pub` when the key does not exist.
//! Writes the archive to `OUT` and its seal to `OUT.seal`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::path::PathBuf;

use cairn_archive::{ArchiveMeta, ArchiveWriter, WriterOptions};
use cairn_integrity::SigningKey;
use cairn_manifest::{AnyManifest, Codec, ComponentName, OriginId, TargetName};

fn main() -> Result<(), Box<dyn Error>> {
    let mut key_path = None;
    let mut component = "data".to_owned();
    let mut opts = WriterOptions::default();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--key" => key_path = Some(PathBuf::from(value()?)),
            "--component" => component = value()?,
            "--codec" => {
                opts = opts.codec(match value()?.as_str() {
                    "zstd" => Codec::Zstd,
                    "gzip" => Codec::Gzip,
                    other => return Err(format!("unknown codec {other}").into()),
                });
            }
            "--level" => opts = opts.level(value()?.parse()?),
            "--frame-size" => opts = opts.frame_size(value()?.parse()?),
            "--threads" => opts = opts.threads(value()?.parse()?),
            "--format" => opts = opts.format(value()?.parse()?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let (Some(key_path), [src, out]) = (key_path, &positional[..]) else {
        return Err("usage: pack --key KEY.pem SRC_DIR OUT [options]".into());
    };
    let key = if key_path.exists() {
        SigningKey::load(&key_path)?
    } else {
        let key = SigningKey::generate()?;
        key.save(&key_path)?;
        let mut pub_path = key_path.clone().into_os_string();
        pub_path.push(".pub");
        key.public_key().save(PathBuf::from(&pub_path))?;
        eprintln!(
            "generated {} and {}",
            key_path.display(),
            PathBuf::from(pub_path).display()
        );
        key
    };

    let meta = ArchiveMeta::new(
        TargetName::parse("example")?,
        OriginId::parse("org_example")?,
    );
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut writer = ArchiveWriter::new(file, meta, opts)?;
    writer.append_dir(&ComponentName::parse(&component)?, src, false)?;
    let done = writer.finish(&key)?;
    let mut seal_path = out.clone().into_os_string();
    seal_path.push(".seal");
    std::fs::write(&seal_path, done.seal.to_bytes())?;
    let (frames, skipped, warnings) = match &done.manifest {
        AnyManifest::V1(m) => {
            let m = m.manifest();
            (m.frames.len(), &m.skipped, &m.warnings)
        }
        AnyManifest::V2(r) => {
            let r = r.manifest();
            (r.frames.len(), &r.skipped, &r.warnings)
        }
    };
    let m = &done.manifest;
    println!(
        "{}: {} entries, {} bytes of data, {} frames -> {} bytes, sha256 {}",
        m.backup_id(),
        m.entry_count(),
        m.components().iter().map(|c| c.bytes).sum::<u64>(),
        frames,
        done.size,
        done.sha256
    );
    for s in skipped {
        println!("skipped {} ({:?})", s.path, s.reason);
    }
    for w in warnings {
        println!("warning: {}: {}", w.path, w.message);
    }
    Ok(())
}
