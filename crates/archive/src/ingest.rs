//! Turning a foreign `.tar`, `.tar.gz` or `.tar.zst` into a Cairn archive.

use std::io::{self, BufRead, Read, Write};

use cairn_integrity::{PublicKey, Sha256Digest, SigningKey};
use cairn_manifest::{
    ComponentKind, ComponentName, EntryKind, EntryPath, LinkTarget, UnverifiedManifest,
    UploadSource,
};

use crate::codec::Format;
use crate::decode::Decoder;
use crate::error::{Error, Result};
use crate::options::{ReadOptions, WriterOptions};
use crate::tar::{RawEntry, RawKind, TarReader};
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
    /// What the receiving target's components are: a top-level folder of a
    /// foreign tarball named like a `file` or `sqlite` component that holds
    /// exactly one regular file becomes that kind of component (and an
    /// optional one stays optional). Others stay `dir`.
    pub components: Vec<(ComponentName, ComponentKind, bool)>,
    /// Keys whose signature on an uploaded Cairn archive's own manifest is
    /// trusted (recorded in the new manifest's `source`).
    pub trusted: Vec<PublicKey>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            writer: WriterOptions::default(),
            read: ReadOptions::default(),
            root_component: ComponentName::parse("root")
                .unwrap_or_else(|_| unreachable!("valid name")),
            components: Vec::new(),
            trusted: Vec::new(),
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

    /// Adds a component of the receiving target (see [`IngestOptions::components`]).
    pub fn component(mut self, name: ComponentName, kind: ComponentKind, optional: bool) -> Self {
        self.components.push((name, kind, optional));
        self
    }

    /// Adds a trusted key (see [`IngestOptions::trusted`]).
    pub fn trust(mut self, key: PublicKey) -> Self {
        self.trusted.push(key);
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
/// Each top-level folder becomes a component named after it (names must
/// follow the component rule: `a-z`, `0-9`, `_`, `-`); files at the top level go to
/// `opts.root_component`. Leading `./` is removed from paths. Special files are
/// skipped and listed in the manifest.
///
/// What kind each component is: a Cairn archive uploaded again carries its
/// own `.cairn/manifest.json`, whose components' kinds and optional flags are
/// kept (the content must fit them: a `file` or `sqlite` component holds one
/// regular file); the new manifest's `source` records the key that signed
/// it and whether one of `opts.trusted` verifies that signature. The old
/// `.cairn/` entries themselves are dropped: the new manifest replaces them.
/// In a foreign tarball, a folder named like one of `opts.components` takes
/// that component's kind when its content fits, and stays `dir` otherwise.
///
/// # Errors
///
/// [`Error::Unsafe`] for absolute paths, `..` or hard links leaving their folder;
/// [`Error::InvalidInput`] for folder names that cannot be component names or
/// duplicate paths; [`Error::Corrupt`] for damaged input; [`Error::Limit`];
/// [`Error::Unsupported`] for sparse files; [`Error::InvalidInput`] when an
/// uploaded Cairn archive's manifest names a kind its content does not fit.
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
    let mut own = OwnManifest::default();
    {
        let mut tar = TarReader::new(&mut decoder, 0, limits.max_extension_bytes);
        while let Some(raw) = tar.next_entry()? {
            if let Some(slot) = own.slot(&raw) {
                let cap = limits.max_manifest_bytes;
                let mut bytes = Vec::new();
                TarData { tar: &mut tar }
                    .take(cap + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::from_io("reading", None, e))?;
                if bytes.len() as u64 > cap {
                    return Err(Error::invalid(format!(
                        "the uploaded archive's {} is larger than {cap} bytes",
                        String::from_utf8_lossy(&raw.path)
                    )));
                }
                *slot = Some(bytes);
                continue;
            }
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
    let source_sha256 = summary
        .sha256
        .ok_or_else(|| Error::corrupt("source digest missing"))?;
    let (signer, trusted) = own.apply(&mut writer, opts)?;
    writer.set_source(UploadSource {
        compression: match source_format {
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Tar => "none",
        }
        .to_owned(),
        size: summary.size,
        sha256: source_sha256,
        signer,
        trusted,
    });
    let archive = writer.finish(key)?;
    Ok(Ingested {
        archive,
        source_format,
        source_size: summary.size,
        source_sha256,
    })
}

/// The `.cairn/manifest.json` and `.cairn/manifest.sig` (format 1) or
/// `.cairn/root.json` and `.cairn/root.sig` (format 2) of an uploaded Cairn
/// archive, as read.
#[derive(Default)]
struct OwnManifest {
    json: Option<Vec<u8>>,
    sig: Option<Vec<u8>>,
    root: Option<Vec<u8>>,
    root_sig: Option<Vec<u8>>,
}

/// What an uploaded archive's own manifest says: its components, its
/// signer, and whether a trusted key verifies it.
type Claimed = (Vec<cairn_manifest::Component>, cairn_integrity::KeyId, bool);

fn claimed<T: cairn_manifest::Document>(
    own: &cairn_manifest::Unverified<T>,
    components: impl Fn(&T) -> &[cairn_manifest::Component],
    opts: &IngestOptions,
) -> Claimed {
    let trusted = opts.trusted.iter().any(|k| own.clone().verify(k).is_ok());
    let c = own.claimed();
    (components(c).to_vec(), *c.signer(), trusted)
}

impl OwnManifest {
    /// Where entry `raw` goes, if it is one of the two.
    fn slot(&mut self, raw: &RawEntry) -> Option<&mut Option<Vec<u8>>> {
        if raw.kind != RawKind::Entry(EntryKind::File) {
            return None;
        }
        let mut path = &raw.path[..];
        while let Some(rest) = path.strip_prefix(b"./") {
            path = rest;
        }
        match path {
            b".cairn/manifest.json" => Some(&mut self.json),
            b".cairn/manifest.sig" => Some(&mut self.sig),
            b".cairn/root.json" => Some(&mut self.root),
            b".cairn/root.sig" => Some(&mut self.root_sig),
            _ => None,
        }
    }

    /// Gives the writer's components their kinds: the uploaded archive's
    /// own manifest's if it has one, else the receiving target's where the
    /// content fits. Returns the old manifest's signer and whether a trusted
    /// key verifies it.
    fn apply<W: Write>(
        self,
        writer: &mut ArchiveWriter<W>,
        opts: &IngestOptions,
    ) -> Result<(Option<cairn_integrity::KeyId>, bool)> {
        let max = opts.read.limits.max_manifest_bytes;
        let (parsed, own_path): (Option<cairn_manifest::Result<Claimed>>, &[u8]) =
            match (self.json, self.sig, self.root, self.root_sig) {
                (Some(json), Some(sig), _, _) => (
                    Some(
                        UnverifiedManifest::parse(json, &sig, max)
                            .map(|own| claimed(&own, |m| &m.components, opts)),
                    ),
                    b".cairn/manifest.json",
                ),
                (_, _, Some(json), Some(sig)) => {
                    let own = cairn_manifest::UnverifiedRoot::parse(json, &sig, max);
                    if let Some(p) = own.as_ref().ok().and_then(|r| r.claimed().parents.first()) {
                        return Err(Error::invalid(format!(
                            "the uploaded archive is an incremental backup (of {}): its \
                             unchanged files are not in it; upload a full backup",
                            p.backup_id
                        )));
                    }
                    (
                        Some(own.map(|own| claimed(&own, |r| &r.components, opts))),
                        b".cairn/root.json",
                    )
                }
                _ => (None, b""),
            };
        match parsed {
            Some(Ok((components, signer, trusted))) => {
                for c in &components {
                    if writer.has_component(&c.name) {
                        writer
                            .set_component(&c.name, c.kind, c.optional)
                            .map_err(|e| {
                                Error::invalid(format!("the uploaded archive's manifest says: {e}"))
                            })?;
                    }
                }
                Ok((Some(signer), trusted))
            }
            other => {
                if let Some(Err(e)) = other {
                    let path = EntryPath::parse(own_path)?;
                    writer.warn(
                        path,
                        format!(
                            "not a Cairn manifest ({e}); its folders were read as dir components"
                        ),
                    );
                }
                for (name, kind, optional) in &opts.components {
                    if writer.has_component(name)
                        && writer.set_component(name, *kind, *optional).is_err()
                    {
                        // A folder whose content does not fit stays a dir.
                        writer.set_component(name, ComponentKind::Dir, *optional)?;
                    }
                }
                Ok((None, false))
            }
        }
    }
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
