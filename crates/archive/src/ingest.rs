//! Turning a foreign `.tar`, `.tar.gz` or `.tar.zst` into a Cairn archive.

use std::io::{self, BufRead, Read, Write};

use cairn_integrity::{Sha256Digest, SigningKey};
use cairn_manifest::{ComponentKind, ComponentName, EntryKind, EntryPath, LinkTarget};

use crate::codec::Format;
use crate::decode::Decoder;
use crate::error::{Error, Result};
use crate::options::{ReadOptions, WriterOptions};
use crate::tarfmt::{RawEntry, RawKind, TarReader};
use crate::verify::Budget;
use crate::writer::{ArchiveMeta, ArchiveWriter, EntryMeta, Finished};

/// Options for [`ingest`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IngestOptions {
    /// How the new archive is written.
    pub writer: WriterOptions,
    /// Limits and threads for reading the foreign one.
    pub read: ReadOptions,
    /// The component that receives files found at the top level, outside any
    /// folder (default `root`).
    pub root_component: ComponentName,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            writer: WriterOptions::default(),
            read: ReadOptions::default(),
            root_component: ComponentName::parse("root")
                .unwrap_or_else(|_| unreachable!("valid name")),
        }
    }
}

impl IngestOptions {
    /// Sets the writer options.
    pub fn writer(mut self, w: WriterOptions) -> Self {
        self.writer = w;
        self
    }

    /// Sets the read options.
    pub fn read(mut self, r: ReadOptions) -> Self {
        self.read = r;
        self
    }

    /// Sets the component for top-level files.
    pub fn root_component(mut self, name: ComponentName) -> Self {
        self.root_component = name;
        self
    }
}

/// What [`ingest`] produced.
#[derive(Debug)]
#[non_exhaustive]
pub struct Ingested<W> {
    /// The new, signed archive.
    pub archive: Finished<W>,
    /// The foreign file's format.
    pub source_format: Format,
    /// The foreign file's length.
    pub source_size: u64,
    /// The foreign file's SHA-256.
    pub source_sha256: Sha256Digest,
}

/// Reads a foreign tar stream (plain, gzip or zstd, detected by magic bytes) and
/// writes it as a Cairn archive to `out`, signed with `key`.
///
/// Each top-level folder becomes a `dir` component named after it (names must
/// follow the component rule: `a-z`, `0-9`, `_`, `-`); files at the top level go to
/// `opts.root_component`. Leading `./` is removed from paths. Special files are
/// skipped and listed in the manifest; an existing `.cairn/` directory (a Cairn
/// archive uploaded again) is dropped, as the new manifest replaces it.
///
/// # Errors
///
/// [`Error::Unsafe`] for absolute paths, `..` or hard links leaving their folder;
/// [`Error::InvalidInput`] for folder names that cannot be component names or
/// duplicate paths; [`Error::Corrupt`] for damaged input; [`Error::Limit`];
/// [`Error::Unsupported`] for sparse files.
pub fn ingest<R: Read, W: Write>(
    input: R,
    out: W,
    meta: ArchiveMeta,
    key: &SigningKey,
    opts: &IngestOptions,
) -> Result<Ingested<W>> {
    let limits = opts.read.limits;
    let mut decoder = Decoder::new(input, true, opts.read.threads)?;
    let source_format = decoder.format();
    let mut writer = ArchiveWriter::new(out, meta, opts.writer.clone())?;
    let mut budget = Budget::default();
    {
        let mut tar = TarReader::new(&mut decoder, 0, limits.max_extension_bytes);
        while let Some(raw) = tar.next_entry()? {
            let Some(path) = normalise(&raw, &opts.root_component)? else {
                continue;
            };
            budget.admit(&limits, &path, raw.size)?;
            ensure_component(&mut writer, &path)?;
            let meta = EntryMeta {
                mode: raw.mode,
                mtime: raw.mtime,
                uid: raw.uid,
                gid: raw.gid,
            };
            match raw.kind {
                RawKind::Special(reason) => writer.skip(path, reason),
                RawKind::Entry(EntryKind::Dir) => writer.append_directory(&path, meta)?,
                RawKind::Entry(EntryKind::File) => {
                    let mut data = TarData { tar: &mut tar };
                    writer.append_data(&path, meta, raw.size, &mut data, None)?;
                }
                RawKind::Entry(EntryKind::Symlink) => {
                    let target = raw.link.as_deref().unwrap_or_default();
                    let target = LinkTarget::parse(target).map_err(|_| Error::Unsafe {
                        path: path.to_string(),
                        reason: "symbolic link with an empty or invalid target",
                    })?;
                    writer.append_symlink(&path, &target, meta)?;
                }
                RawKind::Entry(EntryKind::Hardlink) => {
                    let target = raw.link.as_deref().unwrap_or_default();
                    let target =
                        normalise_path(target, &opts.root_component, false)?.ok_or_else(|| {
                            Error::Unsafe {
                                path: path.to_string(),
                                reason: "hard link without a target",
                            }
                        })?;
                    writer
                        .append_hardlink(&path, &target, meta)
                        .map_err(|e| match e.kind() {
                            crate::ErrorKind::InvalidInput => Error::Unsafe {
                                path: path.to_string(),
                                reason: "hard link to something that is not an earlier file of the same folder",
                            },
                            _ => e,
                        })?;
                }
            }
        }
        tar.check_trailing()?;
    }
    let summary = decoder.finish()?;
    let archive = writer.finish(key)?;
    Ok(Ingested {
        archive,
        source_format,
        source_size: summary.size,
        source_sha256: summary
            .sha256
            .ok_or_else(|| Error::corrupt("source digest missing"))?,
    })
}

/// The Cairn path of a foreign entry, or `None` for entries that are dropped.
fn normalise(raw: &RawEntry, root: &ComponentName) -> Result<Option<EntryPath>> {
    let is_dir = raw.kind == RawKind::Entry(EntryKind::Dir);
    normalise_path(&raw.path, root, is_dir)
}

fn normalise_path(path: &[u8], root: &ComponentName, is_dir: bool) -> Result<Option<EntryPath>> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    if path.first() == Some(&b'/') {
        return Err(Error::Unsafe {
            path: shown(),
            reason: "absolute path",
        });
    }
    let mut rest = path;
    while let Some(r) = rest.strip_prefix(b"./") {
        rest = r;
    }
    while rest.last() == Some(&b'/') {
        rest = &rest[..rest.len() - 1];
    }
    if rest.is_empty() || rest == b"." {
        return Ok(None); // the archive's own root
    }
    if rest == b".cairn" || rest.starts_with(b".cairn/") {
        return Ok(None);
    }
    let p = EntryPath::parse(rest).map_err(|e| Error::Unsafe {
        path: shown(),
        reason: match e {
            cairn_manifest::Error::InvalidPath { reason, .. } => reason,
            _ => "invalid path",
        },
    })?;
    if p.depth() == 1 && !is_dir {
        // A loose top-level file goes into the root component.
        let base = EntryPath::parse(root.as_str().as_bytes())?;
        return Ok(Some(base.join(p.as_bytes())?));
    }
    let top = std::str::from_utf8(p.first())
        .ok()
        .and_then(|s| ComponentName::parse(s).ok());
    if top.is_none() {
        return Err(Error::invalid(format!(
            "top-level folder {:?} cannot be a component name (use a-z, 0-9, '_' and '-', at most 63 characters)",
            String::from_utf8_lossy(p.first())
        )));
    }
    Ok(Some(p))
}

fn ensure_component<W: Write>(writer: &mut ArchiveWriter<W>, path: &EntryPath) -> Result<()> {
    let name = std::str::from_utf8(path.first())
        .ok()
        .and_then(|s| ComponentName::parse(s).ok())
        .ok_or_else(|| Error::invalid(format!("{path} is not under a valid component name")))?;
    if !writer.has_component(&name) {
        writer.begin_component(&name, ComponentKind::Dir, false)?;
    }
    Ok(())
}

/// The data of the current tar entry, as a `Read`.
struct TarData<'a, R: BufRead> {
    tar: &'a mut TarReader<R>,
}

impl<R: BufRead> Read for TarData<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let chunk = self.tar.data().map_err(io::Error::from)?;
        let n = chunk.len().min(out.len());
        out[..n].copy_from_slice(&chunk[..n]);
        self.tar.consume(n);
        Ok(n)
    }
}
