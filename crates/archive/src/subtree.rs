//! One entry of an archive and what is under it, for unpacking a single
//! file or folder out of a backup.

use std::collections::BTreeSet;

use cairn_manifest::{Entry, EntryKind, EntryPath};

/// The entries an unpack of `root`'s subtree writes: `root` and everything
/// under it; the folders above it, so that it lands at its own path; and
/// for each hard link in it whose file is outside it, that file and the
/// folders above it (a hard link needs its file unpacked before it).
#[derive(Debug, Clone)]
pub(crate) struct Subtree {
    root: Vec<u8>,
    /// Link targets outside the subtree.
    extra: BTreeSet<Vec<u8>>,
    /// Every folder above `root` or above an extra path.
    above: BTreeSet<Vec<u8>>,
}

/// Whether `path` is `root` or under it.
fn under(path: &[u8], root: &[u8]) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b'/'))
}

/// The folders above `path`, nearest last.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(move |(i, _)| &path[..i])
}

impl Subtree {
    pub(crate) fn new(root: &EntryPath) -> Self {
        let root = root.as_bytes().to_vec();
        let above = ancestors(&root).map(<[u8]>::to_vec).collect();
        Self {
            root,
            extra: BTreeSet::new(),
            above,
        }
    }

    /// Its root's path, for messages.
    pub(crate) fn shown(&self) -> String {
        String::from_utf8_lossy(&self.root).into_owned()
    }

    /// The component the subtree is in.
    pub(crate) fn component(&self) -> &[u8] {
        self.root.split(|b| *b == b'/').next().unwrap_or_default()
    }

    /// Looks at an entry before the unpack: a hard link in the subtree to a
    /// file outside it adds that file.
    pub(crate) fn note(&mut self, e: &Entry) {
        if e.kind != EntryKind::Hardlink || !under(e.path.as_bytes(), &self.root) {
            return;
        }
        let Some(target) = e.link.as_ref().map(|l| l.as_bytes().to_vec()) else {
            return;
        };
        if under(&target, &self.root) {
            return;
        }
        self.above.extend(ancestors(&target).map(<[u8]>::to_vec));
        self.extra.insert(target);
    }

    /// Whether the unpack writes `path`.
    pub(crate) fn wants(&self, path: &[u8]) -> bool {
        under(path, &self.root) || self.above.contains(path) || self.extra.contains(path)
    }

    /// Whether the subtree's own entry is `path` or under it (what a caller
    /// asked for, as opposed to what comes along).
    pub(crate) fn holds(&self, path: &[u8]) -> bool {
        under(path, &self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_is_its_root_what_is_under_it_and_the_folders_above() {
        let t = Subtree::new(&EntryPath::parse(b"data/a/b").unwrap());
        assert_eq!(t.component(), b"data");
        for p in ["data/a/b", "data/a/b/c", "data/a/b/c/d", "data", "data/a"] {
            assert!(t.wants(p.as_bytes()), "{p}");
        }
        for p in ["data/a/bc", "data/a/b-c", "data/x", "other", "data/a/c/b"] {
            assert!(!t.wants(p.as_bytes()), "{p}");
        }
        assert!(!t.holds(b"data/a"));
    }
}
