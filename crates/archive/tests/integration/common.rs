//! Shared helpers.

use std::io::Cursor;
use std::path::Path;

use cairn_archive::*;
use cairn_integrity::SigningKey;
use cairn_manifest::{BackupId, Codec, ComponentName, OriginId, TargetName};

pub(crate) fn key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

pub(crate) fn name(s: &str) -> ComponentName {
    ComponentName::parse(s).unwrap()
}

pub(crate) fn meta() -> ArchiveMeta {
    ArchiveMeta::new(
        TargetName::parse("web").unwrap(),
        OriginId::parse("org_tests").unwrap(),
    )
    .backup_id(BackupId::from_parts(1_790_000_000_000, 7))
    .created_at("2026-11-22T10:00:00Z".parse().unwrap())
}

/// Format 1 writer options (tests of format 2 set `.format(2)`).
pub(crate) fn opts(codec: Codec, frame_size: usize, threads: usize) -> WriterOptions {
    WriterOptions::default()
        .format(1)
        .codec(codec)
        .frame_size(frame_size)
        .threads(threads)
}

/// Packs `src` as component `data`.
pub(crate) fn pack_dir(src: &Path, options: WriterOptions) -> Finished<Vec<u8>> {
    let mut w = ArchiveWriter::new(Vec::new(), meta(), options).unwrap();
    w.append_dir(&name("data"), src, false).unwrap();
    w.finish(&key()).unwrap()
}

/// A seekable source over bytes.
pub(crate) fn seekable(bytes: &[u8]) -> SeekableArchive<SeekSource<Cursor<Vec<u8>>>> {
    SeekableArchive::open(
        SeekSource(Cursor::new(bytes.to_vec())),
        &key().public_key(),
        ReadOptions::default(),
    )
    .unwrap()
}

/// Entries of `dir`'s parent that look like leftover staging directories.
pub(crate) fn staging_leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cairn-staging-"))
        .collect()
}

/// Incompressible bytes (xorshift64*), deterministic for a seed.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// What `done` holds, in format 1's shape whatever its format: a format 2
/// archive's entries are read from its pages (each checked against the root).
pub(crate) fn listing(done: &Finished<Vec<u8>>) -> cairn_manifest::Manifest {
    listing_signed_by(done, &key().public_key())
}

/// As [`listing`], for an archive signed by `public`.
pub(crate) fn listing_signed_by(
    done: &Finished<Vec<u8>>,
    public: &cairn_integrity::PublicKey,
) -> cairn_manifest::Manifest {
    match &done.manifest {
        cairn_manifest::AnyManifest::V1(m) => m.manifest().clone(),
        cairn_manifest::AnyManifest::V2(r) => {
            let mut entries = Vec::new();
            SeekableArchive::open(
                SeekSource(Cursor::new(done.inner.clone())),
                public,
                ReadOptions::default(),
            )
            .unwrap()
            .for_each_entry(|e| {
                entries.push(e.clone());
                Ok(())
            })
            .unwrap();
            r.manifest().listing(entries)
        }
    }
}

/// `child` opened with its chain (`chain`, nearest first) attached.
pub(crate) fn with_chain(
    child: &[u8],
    chain: &[&[u8]],
) -> SeekableArchive<SeekSource<Cursor<Vec<u8>>>> {
    let mut a = seekable(child);
    if !chain.is_empty() {
        a.attach_parents(chain.iter().map(|b| seekable(b)).collect())
            .unwrap();
    }
    a
}
