//! Checking what an archive holds against its signed manifest.
//!
//! Two situations:
//!
//! - the manifest is already verified (seekable sources): every entry is checked
//!   the moment it is read, before its data is trusted, and sizes are exactly those
//!   signed;
//! - the manifest comes last (plain streams): entries are checked against the limits
//!   and path rules as they come, recorded, and compared with the manifest once its
//!   signature has been verified.
//!
//! Either way an entry passes only if its path, type, size, mode, time, owner,
//! link, position in the stream and data digest are exactly what was signed.

use std::io::BufRead;

use std::path::Path;

use cairn_integrity::{Hasher, PublicKey, Sha256Digest};
use cairn_manifest::v2::{MAX_PAGE_BYTES, MAX_PAGES};
use cairn_manifest::{
    ComponentName, Document, Entry, EntryKind, EntryPath, LinkTarget, Mtime, Signed,
    SignedManifest, SignedRoot, Unverified,
};

use crate::error::{Error, Result};
use crate::options::{Limits, Progress};
use crate::pages::{PAGES_PREFIX, ROOT_PATH, ROOT_SIGNATURE_PATH, page_path};
use crate::spill::PageLog;
use crate::tar::{HeaderSpec, RawEntry, RawKind, TarReader, encode_header, read_small};
use crate::unpack::Extractor;
use crate::writer::{EntryMeta, MANIFEST_PATH, SIGNATURE_PATH, timestamp_mtime};

/// An entry as found in the archive, before or after it is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) raw_offset: u64,
    pub(crate) path: EntryPath,
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: Mtime,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) link: Option<LinkTarget>,
    pub(crate) sha256: Option<Sha256Digest>,
    /// Digest of the entry's raw header blocks.
    pub(crate) header: Sha256Digest,
}

impl Observed {
    pub(crate) fn meta(&self) -> EntryMeta {
        EntryMeta {
            mode: self.mode,
            mtime: self.mtime,
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// Turns a raw tar entry of a Cairn archive into an [`Observed`] (digest pending),
/// refusing anything a Cairn archive cannot hold.
pub(crate) fn observe(raw: &RawEntry, header_bytes: &[u8]) -> Result<Observed> {
    let shown = String::from_utf8_lossy(&raw.path).into_owned();
    let path = EntryPath::parse(&raw.path).map_err(|e| Error::Unsafe {
        path: shown.clone(),
        reason: unsafe_reason(&e),
    })?;
    let kind = match raw.kind {
        RawKind::Entry(k) => k,
        RawKind::Special(_) => {
            return Err(Error::Unsafe {
                path: shown,
                reason: "special files (devices, fifos) are never part of a Cairn archive",
            });
        }
    };
    let link = match (kind, &raw.link) {
        (EntryKind::Symlink | EntryKind::Hardlink, Some(l)) => {
            Some(LinkTarget::parse(l).map_err(|_| Error::Unsafe {
                path: shown.clone(),
                reason: "link target is empty, too long or contains NUL",
            })?)
        }
        (EntryKind::Symlink | EntryKind::Hardlink, None) => {
            return Err(Error::Unsafe {
                path: shown,
                reason: "link without a target",
            });
        }
        _ => None,
    };
    if kind == EntryKind::Hardlink {
        let target = link.as_ref().map(LinkTarget::as_bytes).unwrap_or_default();
        let target = EntryPath::parse(target).map_err(|_| Error::Unsafe {
            path: shown.clone(),
            reason: "hard link target is not a path inside the archive",
        })?;
        if target.first() != path.first() {
            return Err(Error::Unsafe {
                path: shown,
                reason: "hard link target is outside the entry's component",
            });
        }
    }
    if kind != EntryKind::File && raw.size != 0 {
        return Err(Error::corrupt(format!(
            "{kind:?} entry {path} carries data"
        )));
    }
    Ok(Observed {
        raw_offset: raw.start,
        path,
        kind,
        size: raw.size,
        mode: raw.mode,
        mtime: raw.mtime,
        uid: raw.uid,
        gid: raw.gid,
        link,
        sha256: None,
        header: Sha256Digest::of(header_bytes),
    })
}

/// The header blocks Cairn writes for `e`.
pub(crate) fn expected_header(e: &Entry) -> Vec<u8> {
    encode_header(&HeaderSpec {
        path: e.path.as_bytes(),
        kind: e.kind,
        size: e.size,
        mode: e.mode,
        mtime: e.mtime,
        uid: e.uid,
        gid: e.gid,
        link: e.link.as_ref().map(LinkTarget::as_bytes),
    })
}

fn unsafe_reason(e: &cairn_manifest::Error) -> &'static str {
    match e {
        cairn_manifest::Error::InvalidPath { reason, .. } => reason,
        _ => "invalid path",
    }
}

/// Compares one entry with what the manifest signed for it (digest excluded).
pub(crate) fn check_header(expected: &Entry, expected_raw: u64, seen: &Observed) -> Result<()> {
    let differs = |what: &str| {
        Error::verification(format!(
            "entry {} does not match the signed manifest: {what} differs",
            expected.path
        ))
    };
    if seen.path != expected.path {
        return Err(Error::verification(format!(
            "archive holds {} where the signed manifest lists {}",
            seen.path, expected.path
        )));
    }
    if seen.raw_offset != expected_raw {
        return Err(differs("position in the archive"));
    }
    if seen.kind != expected.kind {
        return Err(differs("type"));
    }
    if seen.size != expected.size {
        return Err(differs("size"));
    }
    if seen.mode != expected.mode {
        return Err(differs("mode"));
    }
    if seen.mtime != expected.mtime {
        return Err(differs("modification time"));
    }
    if (seen.uid, seen.gid) != (expected.uid, expected.gid) {
        return Err(differs("owner"));
    }
    if seen.link != expected.link {
        return Err(differs("link target"));
    }
    // The fields agree; so must every header byte (no room for hidden data).
    if !Sha256Digest::of(&expected_header(expected)).ct_eq(&seen.header) {
        return Err(differs("tar header encoding"));
    }
    Ok(())
}

/// Compares a computed digest with the signed one.
pub(crate) fn check_digest(expected: &Entry, digest: &Sha256Digest) -> Result<()> {
    match &expected.sha256 {
        Some(want) if want.ct_eq(digest) => Ok(()),
        _ => Err(Error::verification(format!(
            "entry {}: content does not match its signed SHA-256",
            expected.path
        ))),
    }
}

/// Counts entries and bytes against the limits.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    entries: u64,
    bytes: u64,
}

impl Budget {
    pub(crate) fn admit(&mut self, limits: &Limits, path: &EntryPath, size: u64) -> Result<()> {
        self.entries += 1;
        if self.entries > limits.max_entries {
            return Err(Error::Limit {
                what: "number of entries".into(),
                limit: limits.max_entries,
            });
        }
        if size > limits.max_entry_bytes {
            return Err(Error::Limit {
                what: format!("size of entry {path} ({size} bytes)"),
                limit: limits.max_entry_bytes,
            });
        }
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > limits.max_total_bytes {
            return Err(Error::Limit {
                what: "total size of entries".into(),
                limit: limits.max_total_bytes,
            });
        }
        Ok(())
    }
}

/// Which components an operation wants.
#[derive(Debug, Clone)]
pub(crate) struct Selection(Option<Vec<ComponentName>>);

impl Selection {
    pub(crate) fn new(components: Option<&[ComponentName]>) -> Self {
        Selection(components.map(<[ComponentName]>::to_vec))
    }

    pub(crate) fn wants(&self, path: &EntryPath) -> bool {
        match &self.0 {
            None => true,
            Some(list) => list.iter().any(|c| c.as_str().as_bytes() == path.first()),
        }
    }

    pub(crate) fn wants_component(&self, c: &ComponentName) -> bool {
        match &self.0 {
            None => true,
            Some(list) => list.contains(c),
        }
    }

    /// Refuses a wanted component the archive does not have.
    pub(crate) fn check_against(&self, has: impl Fn(&ComponentName) -> bool) -> Result<()> {
        if let Some(list) = &self.0 {
            for c in list {
                if !has(c) {
                    return Err(Error::invalid(format!("the archive has no component {c}")));
                }
            }
        }
        Ok(())
    }
}

/// Reads the data of the current entry: hashes it and writes it to the extractor
/// when one is given.
pub(crate) fn consume_data<R: BufRead>(
    tar: &mut TarReader<R>,
    seen: &Observed,
    extractor: Option<&mut Extractor>,
    progress: &dyn Progress,
) -> Result<Sha256Digest> {
    let mut hasher = Hasher::new();
    let mut x = extractor;
    if let Some(x) = x.as_deref_mut() {
        x.create_file(&seen.path)?;
    }
    let mut since_check = 0u64;
    loop {
        let chunk = tar.data()?;
        if chunk.is_empty() {
            break;
        }
        // Hash and copy each piece while it is in the CPU's cache, rather than
        // streaming a whole frame through it twice.
        for piece in chunk.chunks(64 * 1024) {
            hasher.update(piece);
            if let Some(x) = x.as_deref_mut() {
                x.write_chunk(piece)?;
            }
        }
        let n = chunk.len();
        tar.consume(n);
        progress.bytes(n as u64);
        since_check += n as u64;
        if since_check >= 4 << 20 {
            since_check = 0;
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
        }
    }
    if let Some(x) = x {
        x.finish_file(&seen.path, seen.meta())?;
    }
    Ok(hasher.finalize())
}

/// Applies a non-file entry to the extractor.
pub(crate) fn extract_other(x: &mut Extractor, seen: &Observed) -> Result<()> {
    match seen.kind {
        EntryKind::Dir => x.create_dir(&seen.path, seen.meta()),
        EntryKind::Symlink => x.create_symlink(&seen.path, seen.link.as_ref(), seen.meta()),
        EntryKind::Hardlink => x.create_hardlink(&seen.path, seen.link.as_ref()),
        EntryKind::File => Ok(()),
    }
}

/// Reads `.cairn/manifest.json` and `.cairn/manifest.sig` (the entry `first` has just
/// been read and must be the manifest), then the end of the archive, and verifies
/// the signature with `key`.
pub(crate) fn read_manifest_region<R: BufRead>(
    tar: &mut TarReader<R>,
    first: &RawEntry,
    key: &PublicKey,
    limits: &Limits,
) -> Result<SignedManifest> {
    read_signed(
        tar,
        first,
        (MANIFEST_PATH, SIGNATURE_PATH),
        "manifest",
        key,
        limits,
    )
}

/// Reads a signed document (`paths`: its file and its signature's; `first`,
/// just read, must be the document), then the end of the archive; verifies the
/// signature with `key` and that both tar headers are exactly Cairn's.
fn read_signed<T: Document, R: BufRead>(
    tar: &mut TarReader<R>,
    first: &RawEntry,
    (path, sig_path): (&str, &str),
    what: &str,
    key: &PublicKey,
    limits: &Limits,
) -> Result<Signed<T>>
where
    Signed<T>: Created,
{
    if first.path != path.as_bytes() || first.kind != RawKind::Entry(EntryKind::File) {
        return Err(Error::corrupt(format!(
            "unexpected entry {} where the {what} should be",
            String::from_utf8_lossy(&first.path)
        )));
    }
    let json_header = Sha256Digest::of(tar.header_bytes());
    let json = read_small(tar, first.size, limits.max_manifest_bytes, what)?;
    let sig_entry = tar
        .next_entry()?
        .ok_or_else(|| Error::corrupt(format!("the archive has a {what} but no signature")))?;
    if sig_entry.path != sig_path.as_bytes() || sig_entry.kind != RawKind::Entry(EntryKind::File) {
        return Err(Error::corrupt(format!(
            "the {what} is not followed by its signature"
        )));
    }
    let sig_header = Sha256Digest::of(tar.header_bytes());
    let sig = read_small(tar, sig_entry.size, 64, &format!("{what} signature"))?;
    if tar.next_entry()?.is_some() {
        return Err(Error::corrupt(format!(
            "entries after the {what}'s signature"
        )));
    }
    tar.check_trailing()?;
    let signed = Unverified::<T>::parse(json, &sig, limits.max_manifest_bytes)?.verify(key)?;
    let mtime = timestamp_mtime(signed.created_at());
    check_own_header(path, signed.bytes().len(), mtime, &json_header)?;
    check_own_header(sig_path, 64, mtime, &sig_header)?;
    Ok(signed)
}

/// When a signed document says it was made.
pub(crate) trait Created {
    fn created_at(&self) -> jiff::Timestamp;
}

impl Created for SignedManifest {
    fn created_at(&self) -> jiff::Timestamp {
        self.manifest().created_at
    }
}

impl Created for SignedRoot {
    fn created_at(&self) -> jiff::Timestamp {
        self.manifest().created_at
    }
}

/// Refuses a tar header of one of the archive's own files that is not exactly
/// the one Cairn writes for it (`seen` is the header's digest).
pub(crate) fn check_own_header(
    path: &str,
    size: usize,
    mtime: Mtime,
    seen: &Sha256Digest,
) -> Result<()> {
    let want = encode_header(&HeaderSpec {
        path: path.as_bytes(),
        kind: EntryKind::File,
        size: size as u64,
        mode: 0o644,
        mtime,
        uid: 0,
        gid: 0,
        link: None,
    });
    if !Sha256Digest::of(&want).ct_eq(seen) {
        return Err(Error::verification(format!(
            "the tar header of {path} is not the one Cairn writes"
        )));
    }
    Ok(())
}

/// What ends an archive: a format 1 manifest, or a format 2 root and the
/// pages read before it.
pub(crate) enum Tail {
    V1(SignedManifest),
    V2(SignedRoot, PageLog),
}

/// Reads the manifest region of either format; `first` has just been read.
pub(crate) fn read_tail<R: BufRead>(
    tar: &mut TarReader<R>,
    first: &RawEntry,
    key: &PublicKey,
    limits: &Limits,
    spill_dir: Option<&Path>,
) -> Result<Tail> {
    if first.path.starts_with(PAGES_PREFIX.as_bytes()) || first.path == ROOT_PATH.as_bytes() {
        let (root, pages) = read_v2_region(tar, first, key, limits, spill_dir)?;
        Ok(Tail::V2(root, pages))
    } else {
        Ok(Tail::V1(read_manifest_region(tar, first, key, limits)?))
    }
}

/// Reads a format 2 manifest region: the pages in order (kept in a temporary
/// file), `.cairn/root.json` and `.cairn/root.sig`, then the end of the
/// archive; verifies the root's signature. The pages are checked against the
/// root by whoever compares them with the entries.
fn read_v2_region<R: BufRead>(
    tar: &mut TarReader<R>,
    first: &RawEntry,
    key: &PublicKey,
    limits: &Limits,
    spill_dir: Option<&Path>,
) -> Result<(SignedRoot, PageLog)> {
    let mut pages = PageLog::new(spill_dir)?;
    let mut raw = first.clone();
    while raw.path.starts_with(PAGES_PREFIX.as_bytes()) {
        if raw.path != page_path(pages.len()).as_bytes()
            || raw.kind != RawKind::Entry(EntryKind::File)
        {
            return Err(Error::corrupt(format!(
                "unexpected entry {} where manifest page {} should be",
                String::from_utf8_lossy(&raw.path),
                pages.len()
            )));
        }
        if pages.len() >= MAX_PAGES {
            return Err(Error::Limit {
                what: "number of manifest pages".into(),
                limit: MAX_PAGES as u64,
            });
        }
        let header = tar.header_bytes().to_vec();
        let bytes = read_small(tar, raw.size, MAX_PAGE_BYTES, "manifest page")?;
        pages.push(&bytes, &header)?;
        raw = tar
            .next_entry()?
            .ok_or_else(|| Error::corrupt("the archive ends inside its manifest pages"))?;
    }
    let signed = read_signed(
        tar,
        &raw,
        (ROOT_PATH, ROOT_SIGNATURE_PATH),
        "manifest root",
        key,
        limits,
    )?;
    Ok((signed, pages))
}

/// Whether a raw entry is one of the archive's own `.cairn/` files.
pub(crate) fn is_metadata(raw: &RawEntry) -> bool {
    raw.path.starts_with(b".cairn/") || raw.path == b".cairn"
}
