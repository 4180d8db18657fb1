//! Manifest format version 1: the data model.
//!
//! `docs/format.md` describes the JSON byte for byte; this module is its Rust form.
//! Field names are stable: a new field is a minor version, a changed meaning a new
//! major version.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use cairn_integrity::{KeyId, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{BackupId, OriginId};
use crate::name::{ComponentName, TargetName};
use crate::path::{EntryPath, LinkTarget};
use crate::time::Mtime;

/// The value of the manifest's `format` field.
pub const FORMAT_TAG: &str = "cairn-manifest";

/// The major version this build reads and writes.
pub const MAJOR: u32 = 1;
/// The minor version this build writes.
pub const MINOR: u32 = 1;

/// A format version, `major.minor`. Readers accept any minor version of a major
/// version they know (minor versions only add fields) and refuse other majors.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FormatVersion {
    /// Incompatible changes.
    pub major: u32,
    /// Compatible additions.
    pub minor: u32,
}

impl FormatVersion {
    /// The version this build writes.
    pub const CURRENT: FormatVersion = FormatVersion {
        major: MAJOR,
        minor: MINOR,
    };
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl fmt::Debug for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FormatVersion({self})")
    }
}

impl FromStr for FormatVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Inconsistent {
            reason: format!("version {s:?} is not MAJOR.MINOR"),
        };
        let (a, b) = s.split_once('.').ok_or_else(bad)?;
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 9 && t.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(bad());
        }
        Ok(FormatVersion {
            major: a.parse().map_err(|_| bad())?,
            minor: b.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for FormatVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a backup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BackupKind {
    /// Asked for by an operator.
    Manual,
    /// Made by the scheduler.
    Scheduled,
    /// Made automatically before a deployment.
    #[cfg_attr(feature = "clap", value(name = "pre_deploy"))]
    PreDeploy,
    /// Ingested from an external archive (made by an upload, never asked
    /// for on a command line).
    #[cfg_attr(feature = "clap", value(skip))]
    Uploaded,
}

impl BackupKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::Manual,
        Self::Scheduled,
        Self::PreDeploy,
        Self::Uploaded,
    ];

    /// The snake_case name used in JSON and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackupKind::Manual => "manual",
            BackupKind::Scheduled => "scheduled",
            BackupKind::PreDeploy => "pre_deploy",
            BackupKind::Uploaded => "uploaded",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "manual" => BackupKind::Manual,
            "scheduled" => BackupKind::Scheduled,
            "pre_deploy" => BackupKind::PreDeploy,
            "uploaded" => BackupKind::Uploaded,
            _ => {
                return Err(Error::InvalidName {
                    what: "backup kind",
                    value: s.chars().take(40).collect(),
                    reason: "expected manual, scheduled, pre_deploy or uploaded",
                });
            }
        })
    }
}

/// What kind of thing a component captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ComponentKind {
    /// A directory tree.
    Dir,
    /// One file.
    File,
    /// A live SQLite database, captured with SQLite's online backup.
    Sqlite,
}

impl ComponentKind {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ComponentKind::Dir => "dir",
            ComponentKind::File => "file",
            ComponentKind::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The compression codec of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Independent zstd frames (the default).
    Zstd,
    /// Independent gzip members, for `.tar.gz` tools.
    Gzip,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Zstd => "zstd",
            Codec::Gzip => "gzip",
        })
    }
}

/// How the archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// The codec.
    pub codec: Codec,
    /// The level it was run at.
    pub level: i32,
    /// The uncompressed size at which frames are cut.
    pub frame_size: u64,
}

/// Who made the backup: enough to refuse restoring it onto the wrong machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The target's name.
    pub target: TargetName,
    /// The installation's stable id.
    pub origin_id: OriginId,
    /// The host's name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The device model, if the embedding service has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The device serial number, if the embedding service has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The software that wrote the archive, e.g. `cairn/0.1.0` or the embedder's
    /// own name and version.
    pub software_version: String,
}

/// One component of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Its name, also the top folder of its entries.
    pub name: ComponentName,
    /// What it captures.
    pub kind: ComponentKind,
    /// Whether it is restored only when asked for.
    #[serde(default)]
    pub optional: bool,
    /// How many entries it has.
    pub entries: u64,
    /// The sum of its regular files' sizes.
    pub bytes: u64,
}

/// The type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file: has `size` and `sha256`.
    File,
    /// A directory.
    Dir,
    /// A symbolic link: has `link`, its raw target.
    Symlink,
    /// A hard link to an earlier regular file of the same component: `link` is that
    /// file's path.
    Hardlink,
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `component/relative/path`; a component's root directory is just `component`.
    pub path: EntryPath,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Length of a regular file's data; 0 otherwise.
    #[serde(default)]
    pub size: u64,
    /// Permission bits (`0o7777` at most), as a decimal integer.
    pub mode: u32,
    /// Modification time.
    pub mtime: Mtime,
    /// Owner's numeric user id.
    #[serde(default)]
    pub uid: u64,
    /// Owner's numeric group id.
    #[serde(default)]
    pub gid: u64,
    /// SHA-256 of a regular file's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    /// A symlink's target, or a hard link's target path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkTarget>,
    /// Compressed offset of the frame where the entry's first header block starts.
    pub frame: u64,
    /// Offset of that header block inside the decompressed frame.
    pub pos: u64,
    /// In a listing of an incremental backup (format 2.1) only: the earlier
    /// backup that holds this file's data, whose position is then in that
    /// backup's pages (`frame` and `pos` are 0). Never in a format 1 manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_in: Option<BackupId>,
}

/// One compressed frame of the archive's data region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Offset in the archive.
    pub offset: u64,
    /// Compressed length.
    pub size: u64,
    /// Offset of its first byte in the uncompressed tar stream.
    pub raw_offset: u64,
    /// Uncompressed length.
    pub raw_size: u64,
}

impl Frame {
    /// The compressed byte range.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.size
    }

    /// The uncompressed byte range.
    pub fn raw_range(&self) -> Range<u64> {
        self.raw_offset..self.raw_offset + self.raw_size
    }
}

/// Why something found while capturing was not archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A Unix socket.
    Socket,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// It disappeared between listing and reading.
    Vanished,
    /// A type of entry Cairn does not archive (e.g. a sparse file in a foreign tar).
    Unsupported,
    /// A reason added by a later minor version.
    #[serde(other)]
    Other,
}

/// Something that was found but not archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Where it was.
    pub path: EntryPath,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Something archived that the reader should know about (e.g. a file that changed
/// size while it was read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The entry concerned.
    pub path: EntryPath,
    /// What happened.
    pub message: String,
}

/// A backup manifest, format version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_TAG`].
    pub format: String,
    /// The format version.
    pub version: FormatVersion,
    /// The backup's id.
    pub backup_id: BackupId,
    /// The target it belongs to.
    pub target: TargetName,
    /// Why it was made.
    pub kind: BackupKind,
    /// A short label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When capture started (RFC 3339, UTC).
    pub created_at: jiff::Timestamp,
    /// How long writing the archive took, in milliseconds.
    pub duration_ms: u64,
    /// Who made it.
    pub origin: Origin,
    /// How it is compressed.
    pub compression: Compression,
    /// The key that signed it.
    pub signer: KeyId,
    /// The components, in archive order.
    pub components: Vec<Component>,
    /// Every entry, in archive order.
    pub entries: Vec<Entry>,
    /// The frames of the data region, in order.
    pub frames: Vec<Frame>,
    /// What was found but not archived.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// What was archived with a caveat.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// For an uploaded backup, what was uploaded (since 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<UploadSource>,
}

/// What an uploaded backup was made from: the file as it arrived, and, for
/// a Cairn archive made elsewhere, who had signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSource {
    /// How the uploaded file was compressed: `none`, `gzip` or `zstd`.
    pub compression: String,
    /// Its length in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
    /// For a Cairn archive: the key its own manifest names as signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<KeyId>,
    /// Whether that manifest's signature checked out with a key the
    /// uploading installation trusts.
    #[serde(default)]
    pub trusted: bool,
}

/// Where an entry lies in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The compressed bytes to read: from the start of the entry's first frame to the
    /// end of the frame holding its last byte.
    pub compressed: Range<u64>,
    /// Uncompressed bytes to skip after decompressing from `compressed.start`.
    pub skip: u64,
    /// Uncompressed length of the entry (headers, data and padding).
    pub raw_len: u64,
}

impl Manifest {
    /// The component named `name`.
    pub fn component(&self, name: &ComponentName) -> Option<&Component> {
        self.components.iter().find(|c| &c.name == name)
    }

    /// The indexes of the entries of component `name`, in archive order.
    pub fn entries_of<'a>(&'a self, name: &'a ComponentName) -> impl Iterator<Item = usize> + 'a {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.path.first() == name.as_str().as_bytes())
            .map(|(i, _)| i)
    }

    /// The index of the entry at `path`.
    pub fn find(&self, path: &EntryPath) -> Option<usize> {
        self.entries.iter().position(|e| &e.path == path)
    }

    /// The offset of entry `i`'s first header byte in the uncompressed tar stream.
    ///
    /// # Panics
    ///
    /// If `i` is out of range or the manifest was not validated.
    pub fn raw_offset(&self, i: usize) -> u64 {
        let e = &self.entries[i];
        let f = self.frame_index(e.frame).map(|k| self.frames[k]);
        f.map_or(0, |f| f.raw_offset + e.pos)
    }

    /// The end of the data region in the uncompressed tar stream.
    pub fn data_end(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.raw_offset + f.raw_size)
    }

    /// The compressed end of the data region (where the manifest's frames start).
    pub fn data_compressed_end(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.offset + f.size)
    }

    /// Which frame starts at compressed offset `offset`.
    pub fn frame_index(&self, offset: u64) -> Option<usize> {
        self.frames.binary_search_by_key(&offset, |f| f.offset).ok()
    }

    /// Which frame holds uncompressed offset `raw`.
    pub fn frame_holding(&self, raw: u64) -> Option<usize> {
        let i = self
            .frames
            .partition_point(|f| f.raw_offset + f.raw_size <= raw);
        (i < self.frames.len() && self.frames[i].raw_offset <= raw).then_some(i)
    }

    /// Where entry `i` lies: which compressed bytes hold it and how much of their
    /// decompressed output precedes it.
    ///
    /// # Panics
    ///
    /// If `i` is out of range or the manifest was not validated.
    pub fn span(&self, i: usize) -> Span {
        let start = self.raw_offset(i);
        let end = if i + 1 < self.entries.len() {
            self.raw_offset(i + 1)
        } else {
            self.data_end()
        };
        let first = self.frame_holding(start).unwrap_or(0);
        let last = self
            .frame_holding(end.saturating_sub(1).max(start))
            .unwrap_or(first);
        Span {
            compressed: self.frames[first].offset
                ..self.frames[last].offset + self.frames[last].size,
            skip: start - self.frames[first].raw_offset,
            raw_len: end - start,
        }
    }

    /// Checks everything a manifest must satisfy beyond its JSON shape: names,
    /// unique paths under declared components, per-type fields, hard links to
    /// earlier files of the same component, per-component totals, contiguous
    /// frames, and entries in strictly increasing archive order inside them.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] naming the first contradiction.
    pub fn validate(&self) -> Result<()> {
        crate::validate::validate(self)
    }
}
