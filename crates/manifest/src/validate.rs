//! Semantic checks of a parsed manifest.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::path::EntryPath;
use crate::v1::{ComponentKind, EntryKind, FORMAT_TAG, Frame, MAJOR, Manifest};

/// Longest label accepted, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

pub(crate) fn validate(m: &Manifest) -> Result<()> {
    let fail = |reason: String| Err(Error::inconsistent(reason));
    check_head(&Head {
        format: &m.format,
        version: m.version,
        major: MAJOR,
        target: &m.target,
        origin_target: &m.origin.target,
        label: m.label.as_deref(),
        description: m.description.as_deref(),
    })?;

    // Components: unique names.
    let mut components: HashMap<&[u8], (ComponentKind, u64, u64)> = HashMap::new();
    for c in &m.components {
        if components
            .insert(c.name.as_str().as_bytes(), (c.kind, 0, 0))
            .is_some()
        {
            return fail(format!("component {} is listed twice", c.name));
        }
    }

    check_frames(&m.frames)?;

    // Entries.
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(m.entries.len());
    let mut files: HashSet<&[u8]> = HashSet::new();
    let mut last_raw: Option<u64> = None;
    for e in &m.entries {
        let path = e.path.as_bytes();
        let Some(totals) = components.get_mut(e.path.first()) else {
            return fail(format!("entry {} is not under a listed component", e.path));
        };
        if !seen.insert(path) {
            return fail(format!("entry {} is listed twice", e.path));
        }
        check_entry_fields(
            &e.path,
            e.kind,
            e.size,
            e.mode,
            e.sha256.is_some(),
            e.link.is_some(),
        )?;
        match e.kind {
            EntryKind::File => {
                files.insert(path);
                totals.2 = totals.2.checked_add(e.size).ok_or_else(|| {
                    Error::inconsistent(format!("sizes of component {} overflow", e.path))
                })?;
            }
            EntryKind::Dir | EntryKind::Symlink => {}
            EntryKind::Hardlink => {
                let Some(target) = &e.link else {
                    return fail(format!("hard link {} has no target", e.path));
                };
                if !files.contains(target.as_bytes()) {
                    return fail(format!(
                        "hard link {} does not point to an earlier regular file",
                        e.path
                    ));
                }
                let same_component = target
                    .as_bytes()
                    .split(|&b| b == b'/')
                    .next()
                    .is_some_and(|c| c == e.path.first());
                if !same_component {
                    return fail(format!("hard link {} crosses components", e.path));
                }
            }
        }
        totals.1 += 1;

        if e.stored_in.is_some() {
            return fail(format!(
                "entry {} names stored_in, which format 1 does not have",
                e.path
            ));
        }
        // Seek index: a known frame, inside it, strictly after the previous entry.
        let Some(k) = m.frame_index(e.frame) else {
            return fail(format!(
                "entry {} points to no frame at offset {}",
                e.path, e.frame
            ));
        };
        let f = m.frames[k];
        if e.pos >= f.raw_size {
            return fail(format!("entry {} points past the end of its frame", e.path));
        }
        let at = f.raw_offset + e.pos;
        if last_raw.is_some_and(|prev| at <= prev) {
            return fail(format!(
                "entry {} is not after the previous entry in the archive",
                e.path
            ));
        }
        last_raw = Some(at);
    }

    // Nothing may lie below a file or a link: unpacking would have to write
    // through it.
    let leaves: HashSet<&[u8]> = m
        .entries
        .iter()
        .filter(|e| e.kind != EntryKind::Dir)
        .map(|e| e.path.as_bytes())
        .collect();
    for e in &m.entries {
        let path = e.path.as_bytes();
        for (i, _) in path.iter().enumerate().filter(|(_, b)| **b == b'/') {
            if leaves.contains(&path[..i]) {
                return fail(format!("entry {} lies below a file or link", e.path));
            }
        }
    }

    for c in &m.components {
        let (_, entries, bytes) = components[c.name.as_str().as_bytes()];
        if entries != c.entries || bytes != c.bytes {
            return fail(format!(
                "component {} lists {} entries / {} bytes but has {entries} / {bytes}",
                c.name, c.entries, c.bytes
            ));
        }
    }
    Ok(())
}

/// Frames contiguous from zero, none empty.
pub(crate) fn check_frames(frames: &[Frame]) -> Result<()> {
    let (mut offset, mut raw) = (0u64, 0u64);
    for (i, f) in frames.iter().enumerate() {
        if f.offset != offset || f.raw_offset != raw {
            return Err(Error::inconsistent(format!(
                "frame {i} does not follow the previous one"
            )));
        }
        if f.size == 0 || f.raw_size == 0 {
            return Err(Error::inconsistent(format!("frame {i} is empty")));
        }
        offset = f
            .offset
            .checked_add(f.size)
            .ok_or_else(|| Error::inconsistent(format!("frame {i} overflows")))?;
        raw = f
            .raw_offset
            .checked_add(f.raw_size)
            .ok_or_else(|| Error::inconsistent(format!("frame {i} overflows")))?;
    }
    Ok(())
}

/// The fields an entry of each type has and has not, in both versions.
pub(crate) fn check_entry_fields(
    path: &EntryPath,
    kind: EntryKind,
    size: u64,
    mode: u32,
    has_sha256: bool,
    has_link: bool,
) -> Result<()> {
    let fail = |reason: String| Err(Error::inconsistent(reason));
    if mode > 0o7777 {
        return fail(format!("entry {path} has mode {mode:o}"));
    }
    if path.depth() == 1 && kind != EntryKind::Dir {
        return fail(format!("component root {path} is not a directory"));
    }
    match kind {
        EntryKind::File if !has_sha256 || has_link => {
            fail(format!("file {path} needs a sha256 and no link"))
        }
        EntryKind::Dir if size != 0 || has_sha256 || has_link => {
            fail(format!("directory {path} has data or a link"))
        }
        EntryKind::Symlink if size != 0 || has_sha256 || !has_link => {
            fail(format!("symlink {path} needs a target and no data"))
        }
        EntryKind::Hardlink if size != 0 || has_sha256 => {
            fail(format!("hard link {path} has data"))
        }
        EntryKind::Hardlink if !has_link => fail(format!("hard link {path} has no target")),
        _ => Ok(()),
    }
}

/// What a manifest and a root say about themselves before their entries.
pub(crate) struct Head<'a> {
    pub(crate) format: &'a str,
    pub(crate) version: crate::v1::FormatVersion,
    /// The major version the caller reads.
    pub(crate) major: u32,
    pub(crate) target: &'a crate::name::TargetName,
    pub(crate) origin_target: &'a crate::name::TargetName,
    pub(crate) label: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
}

/// Format tag, major version, origin and the lengths of label and description.
pub(crate) fn check_head(h: &Head<'_>) -> Result<()> {
    let fail = |reason: String| Err(Error::inconsistent(reason));
    if h.format != FORMAT_TAG {
        return fail(format!("format is {:?}, not {FORMAT_TAG:?}", h.format));
    }
    if h.version.major != h.major {
        return Err(Error::UnsupportedVersion {
            found: h.version.to_string(),
            supported: h.major,
        });
    }
    if h.origin_target != h.target {
        return fail(format!(
            "origin target {} differs from target {}",
            h.origin_target, h.target
        ));
    }
    if h.label.is_some_and(|l| l.len() > MAX_LABEL_BYTES) {
        return fail(format!("label is longer than {MAX_LABEL_BYTES} bytes"));
    }
    if h.description
        .is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES)
    {
        return fail(format!(
            "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
        ));
    }
    Ok(())
}
