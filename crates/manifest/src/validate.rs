//! Semantic checks of a parsed manifest.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::v1::{ComponentKind, EntryKind, FORMAT_TAG, MAJOR, Manifest};

/// Longest label accepted, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

pub(crate) fn validate(m: &Manifest) -> Result<()> {
    let fail = |reason: String| Err(Error::inconsistent(reason));
    if m.format != FORMAT_TAG {
        return fail(format!("format is {:?}, not {FORMAT_TAG:?}", m.format));
    }
    if m.version.major != MAJOR {
        return Err(Error::UnsupportedVersion {
            found: m.version.to_string(),
            supported: MAJOR,
        });
    }
    if m.origin.target != m.target {
        return fail(format!(
            "origin target {} differs from target {}",
            m.origin.target, m.target
        ));
    }
    if m.label.as_ref().is_some_and(|l| l.len() > MAX_LABEL_BYTES) {
        return fail(format!("label is longer than {MAX_LABEL_BYTES} bytes"));
    }
    if m.description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES)
    {
        return fail(format!(
            "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
        ));
    }

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

    // Frames: contiguous from zero, none empty.
    let (mut offset, mut raw) = (0u64, 0u64);
    for (i, f) in m.frames.iter().enumerate() {
        if f.offset != offset || f.raw_offset != raw {
            return fail(format!("frame {i} does not follow the previous one"));
        }
        if f.size == 0 || f.raw_size == 0 {
            return fail(format!("frame {i} is empty"));
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
        if e.mode > 0o7777 {
            return fail(format!("entry {} has mode {:o}", e.path, e.mode));
        }
        if e.path.depth() == 1 && e.kind != EntryKind::Dir {
            return fail(format!("component root {} is not a directory", e.path));
        }
        match e.kind {
            EntryKind::File => {
                if e.sha256.is_none() || e.link.is_some() {
                    return fail(format!("file {} needs a sha256 and no link", e.path));
                }
                files.insert(path);
                totals.2 = totals.2.checked_add(e.size).ok_or_else(|| {
                    Error::inconsistent(format!("sizes of component {} overflow", e.path))
                })?;
            }
            EntryKind::Dir => {
                if e.size != 0 || e.sha256.is_some() || e.link.is_some() {
                    return fail(format!("directory {} has data or a link", e.path));
                }
            }
            EntryKind::Symlink => {
                if e.size != 0 || e.sha256.is_some() || e.link.is_none() {
                    return fail(format!("symlink {} needs a target and no data", e.path));
                }
            }
            EntryKind::Hardlink => {
                if e.size != 0 || e.sha256.is_some() {
                    return fail(format!("hard link {} has data", e.path));
                }
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
