//! Random file trees with awkward names, modes, times and links, and an exact
//! comparison of two trees.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::hash::{DefaultHasher, Hasher as _};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How [`random_tree`] shapes its tree.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TreeOptions {
    /// Entries to create, about.
    pub entries: usize,
    /// Deepest directory nesting.
    pub max_depth: usize,
    /// Largest regular file.
    pub max_file_size: usize,
    /// Use names that are not UTF-8, have spaces, newlines, unicode, or are long.
    pub odd_names: bool,
    /// Create symbolic and hard links.
    pub links: bool,
    /// Use setuid/setgid/sticky bits and times before 1970.
    pub odd_metadata: bool,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            entries: 40,
            max_depth: 4,
            max_file_size: 64 * 1024,
            odd_names: true,
            links: true,
            odd_metadata: true,
        }
    }
}

impl TreeOptions {
    /// Sets the number of entries.
    pub fn entries(mut self, n: usize) -> Self {
        self.entries = n;
        self
    }

    /// Sets the largest file size.
    pub fn max_file_size(mut self, n: usize) -> Self {
        self.max_file_size = n;
        self
    }

    /// Enables or disables odd names.
    pub fn odd_names(mut self, on: bool) -> Self {
        self.odd_names = on;
        self
    }

    /// Enables or disables links.
    pub fn links(mut self, on: bool) -> Self {
        self.links = on;
        self
    }

    /// Enables or disables odd modes and times.
    pub fn odd_metadata(mut self, on: bool) -> Self {
        self.odd_metadata = on;
        self
    }
}

/// Creates a deterministic random tree under `root` (which must not exist yet).
///
/// # Errors
///
/// Any I/O error while creating it.
pub fn random_tree(root: &Path, seed: u64, opts: &TreeOptions) -> io::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    fs::create_dir(root)?;
    let mut dirs: Vec<(PathBuf, usize)> = vec![(root.to_owned(), 0)];
    let mut files: Vec<PathBuf> = Vec::new();
    let mut fixups: Vec<(PathBuf, Kind, u32, FileTime)> = Vec::new();
    let mut name_counter = 0usize;

    for _ in 0..opts.entries {
        let (parent, depth) = dirs[rng.random_range(0..dirs.len())].clone();
        name_counter += 1;
        let name = random_name(&mut rng, name_counter, opts.odd_names);
        let path = parent.join(OsStr::from_bytes(&name));
        let mtime = random_time(&mut rng, opts.odd_metadata);
        let roll = rng.random_range(0..100);
        if roll < 20 && depth < opts.max_depth {
            fs::create_dir(&path)?;
            let mode = pick(&mut rng, &[0o755, 0o700, 0o750, 0o555]);
            let mode = if opts.odd_metadata && rng.random_bool(0.1) {
                mode | 0o1000
            } else {
                mode
            };
            dirs.push((path.clone(), depth + 1));
            fixups.push((path, Kind::Dir, mode, mtime));
        } else if opts.links && roll < 30 {
            let target = random_link_target(&mut rng, &files, root);
            symlink(OsStr::from_bytes(&target), &path)?;
            fixups.push((path, Kind::Symlink, 0, mtime));
        } else if opts.links && roll < 36 && !files.is_empty() {
            let target = &files[rng.random_range(0..files.len())];
            fs::hard_link(target, &path)?;
        } else {
            let size = match rng.random_range(0..10) {
                0 => 0,
                1..=6 => rng.random_range(0..=opts.max_file_size.min(4096)),
                _ => rng.random_range(0..=opts.max_file_size),
            };
            let mut data = vec![0u8; size];
            if rng.random_bool(0.5) {
                rng.fill(&mut data[..]);
            } else {
                // Compressible text.
                for (i, b) in data.iter_mut().enumerate() {
                    *b = b"the quick brown fox jumps over the lazy dog\n"[i % 44];
                }
            }
            fs::write(&path, &data)?;
            let mode = pick(&mut rng, &[0o644, 0o600, 0o755, 0o640, 0o400, 0o444]);
            let mode = if opts.odd_metadata && rng.random_bool(0.05) {
                mode | 0o4000
            } else {
                mode
            };
            files.push(path.clone());
            fixups.push((path, Kind::File, mode, mtime));
        }
    }
    // Modes and times last, deepest first, so that creating children does not move
    // a directory's mtime and read-only directories were writable while filled.
    fixups.sort_by_key(|(p, _, _, _)| std::cmp::Reverse(p.components().count()));
    for (path, kind, mode, mtime) in fixups {
        match kind {
            Kind::Symlink => filetime::set_symlink_file_times(&path, mtime, mtime)?,
            Kind::File | Kind::Dir => {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                filetime::set_file_times(&path, mtime, mtime)?;
            }
        }
    }
    let root_time = random_time(&mut rng, false);
    filetime::set_file_times(root, root_time, root_time)?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Dir,
    Symlink,
}

fn pick(rng: &mut SmallRng, choices: &[u32]) -> u32 {
    choices[rng.random_range(0..choices.len())]
}

fn random_time(rng: &mut SmallRng, odd: bool) -> FileTime {
    let secs = if odd && rng.random_bool(0.05) {
        -rng.random_range(1..1_000_000_000i64)
    } else {
        rng.random_range(0..4_000_000_000i64)
    };
    let nanos = match rng.random_range(0..3) {
        0 => 0,
        _ => rng.random_range(0..1_000_000_000u32),
    };
    FileTime::from_unix_time(secs, nanos)
}

fn random_name(rng: &mut SmallRng, counter: usize, odd: bool) -> Vec<u8> {
    let base = format!("n{counter}");
    if !odd {
        return base.into_bytes();
    }
    let mut name = base.into_bytes();
    match rng.random_range(0..12) {
        0 => name.extend_from_slice(" with spaces".as_bytes()),
        1 => name.extend_from_slice("-ünïcødé-日本語".as_bytes()),
        2 => name.extend_from_slice(&[0xff, 0xfe, b'x', 0x80]), // not UTF-8
        3 => name.extend_from_slice(b"\nnewline\ttab"),
        4 => name.extend(std::iter::repeat_n(b'L', 180)), // long component
        5 => name.extend_from_slice(b"#hash&amp;'quote\"\\back"),
        6 => {
            let mut n = b"-leading-dash".to_vec();
            n.extend_from_slice(&name);
            name = n;
        }
        7 => name.extend_from_slice(".hidden.tar.gz".as_bytes()),
        _ => {}
    }
    name
}

fn random_link_target(rng: &mut SmallRng, files: &[PathBuf], root: &Path) -> Vec<u8> {
    match rng.random_range(0..6) {
        0 => b"/etc/passwd".to_vec(),
        1 => b"../outside/of/tree".to_vec(),
        2 => b"dangling-target".to_vec(),
        3 => vec![b'b', 0xff, b'x'],
        _ if !files.is_empty() => {
            let f = &files[rng.random_range(0..files.len())];
            f.strip_prefix(root)
                .unwrap_or(f)
                .as_os_str()
                .as_bytes()
                .to_vec()
        }
        _ => b"nothing-yet".to_vec(),
    }
}

/// What a tree node is, as compared by [`assert_trees_equal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Modification time, ns since the epoch.
        mtime_ns: i128,
    },
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime_ns: i128,
        /// Length.
        size: u64,
        /// A hash of the contents.
        content: u64,
        /// The smallest path in the tree sharing this file's inode, if another does.
        hardlink_group: Option<Vec<u8>>,
    },
    /// A symbolic link.
    Symlink {
        /// Its target, raw.
        target: Vec<u8>,
        /// Modification time of the link itself.
        mtime_ns: i128,
    },
    /// Anything else (fifo, socket, device).
    Special,
}

/// A tree, keyed by raw path relative to its root (the root itself is the empty path).
pub type Snapshot = BTreeMap<Vec<u8>, (Node, u32, u32)>;

/// Records every node of the tree under `root` without following links, with its
/// owner (uid, gid).
///
/// # Errors
///
/// Any I/O error while reading it.
pub fn snapshot(root: &Path) -> io::Result<Snapshot> {
    let mut out = Snapshot::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(Path::new(""))
            .as_os_str()
            .as_bytes()
            .to_vec();
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let node = if ft.is_dir() {
            let mut children: Vec<_> = fs::read_dir(&path)?
                .map(|e| e.map(|e| e.path()))
                .collect::<io::Result<_>>()?;
            children.sort();
            stack.extend(children);
            Node::Dir { mode, mtime_ns }
        } else if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(&path)?.as_os_str().as_bytes().to_vec(),
                mtime_ns,
            }
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(rel.clone());
            }
            Node::File {
                mode,
                mtime_ns,
                size: meta.len(),
                content: content_hash(&path)?,
                hardlink_group: None,
            }
        } else {
            Node::Special
        };
        out.insert(rel, (node, meta.uid(), meta.gid()));
    }
    for paths in inodes.values().filter(|p| p.len() > 1) {
        let first = paths.iter().min().cloned();
        for p in paths {
            if let Some((Node::File { hardlink_group, .. }, _, _)) = out.get_mut(p) {
                hardlink_group.clone_from(&first);
            }
        }
    }
    Ok(out)
}

fn content_hash(path: &Path) -> io::Result<u64> {
    let mut h = DefaultHasher::new();
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Ok(h.finish())
}

/// Panics with a readable list of differences unless the two trees are identical:
/// same paths, types, contents, permission bits, modification times (to the
/// nanosecond), symlink targets, hard-link groups and, when `owners` is true, owners.
///
/// # Panics
///
/// When the trees differ, or cannot be read.
pub fn assert_trees_equal(expected: &Path, actual: &Path, owners: bool) {
    let a = snapshot(expected).unwrap_or_else(|e| panic!("reading {}: {e}", expected.display()));
    let b = snapshot(actual).unwrap_or_else(|e| panic!("reading {}: {e}", actual.display()));
    let mut diff = String::new();
    for (path, (na, ua, ga)) in &a {
        match b.get(path) {
            None => writeln!(diff, "missing: {}", show(path)).unwrap_or(()),
            Some((nb, ub, gb)) => {
                if na != nb {
                    writeln!(
                        diff,
                        "differs: {}\n  expected {na:?}\n  actual   {nb:?}",
                        show(path)
                    )
                    .unwrap_or(());
                }
                if owners && (ua, ga) != (ub, gb) {
                    writeln!(
                        diff,
                        "owner differs: {}: {ua}:{ga} vs {ub}:{gb}",
                        show(path)
                    )
                    .unwrap_or(());
                }
            }
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        writeln!(diff, "unexpected: {}", show(path)).unwrap_or(());
    }
    assert!(
        diff.is_empty(),
        "trees {} and {} differ:\n{diff}",
        expected.display(),
        actual.display()
    );
}

fn show(path: &[u8]) -> String {
    if path.is_empty() {
        "<root>".to_owned()
    } else {
        format!("{:?}", String::from_utf8_lossy(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tree() {
        let tmp = std::env::temp_dir().join(format!("cairn-testkit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        random_tree(&tmp.join("a"), 42, &TreeOptions::default()).unwrap();
        random_tree(&tmp.join("b"), 42, &TreeOptions::default()).unwrap();
        assert_trees_equal(&tmp.join("a"), &tmp.join("b"), false);
        random_tree(&tmp.join("c"), 43, &TreeOptions::default()).unwrap();
        let differs = std::panic::catch_unwind(|| {
            assert_trees_equal(&tmp.join("a"), &tmp.join("c"), false);
        });
        assert!(differs.is_err());
        fs::remove_dir_all(&tmp).unwrap();
    }
}
