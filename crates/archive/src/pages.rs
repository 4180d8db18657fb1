//! Format 2's pages on the writing side: each page is encoded as its entries
//! arrive and, once closed, kept as the tar entry it will be in an unnamed
//! temporary file until the data region is written.

use std::fs::File;
use std::io::{BufWriter, Write};
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::Path;

use cairn_integrity::Sha256Digest;
use cairn_manifest::v2::{MAX_PAGE_ENTRIES, Page, PageEncoder, PageEntry};
use cairn_manifest::{ComponentName, EntryKind, Mtime};

use crate::error::{Error, Result};
use crate::tar::{HeaderSpec, encode_header, padded};

/// Where page `n` lives in the tar stream.
pub(crate) fn page_path(n: usize) -> String {
    format!("{PAGES_PREFIX}{n:06}")
}

/// The folder of the pages inside a format 2 archive.
pub const PAGES_PREFIX: &str = ".cairn/pages/";
/// Path of a format 2 manifest's root.
pub const ROOT_PATH: &str = ".cairn/root.json";
/// Path of the root's signature.
pub const ROOT_SIGNATURE_PATH: &str = ".cairn/root.sig";

/// A page is closed once its encoding reaches this size.
const PAGE_TARGET_BYTES: usize = 1 << 20;
/// ... or, past this many entries, after an entry whose path hash ends a page
/// (content-defined boundaries: adding one file moves one boundary, not all
/// those after it).
const PAGE_MIN_ENTRIES: u32 = 256;
/// One path in 2,048 ends a page.
const BOUNDARY_MASK: u16 = 0x07ff;

/// Whether a page may end after the entry at `path`.
fn is_boundary(path: &[u8]) -> bool {
    let d = Sha256Digest::of(path);
    let b = d.as_bytes();
    u16::from_be_bytes([b[0], b[1]]) & BOUNDARY_MASK == 0
}

/// A closed page, in the spill file.
#[derive(Debug, Clone)]
pub(crate) struct Spilled {
    pub(crate) component: ComponentName,
    pub(crate) entries: u32,
    pub(crate) sha256: Sha256Digest,
    /// Where its tar entry (header, page, padding) starts in the spill file.
    pub(crate) start: u64,
    /// The tar entry's length.
    pub(crate) len: u64,
    /// Where the page's bytes start inside the tar entry.
    pub(crate) header_len: u64,
    /// The page's length.
    pub(crate) page_len: u64,
    /// A parent's page, reused: how the root names it. The spill keeps its
    /// bytes (no tar entry) for the checks that read every page back.
    pub(crate) reused: Option<cairn_manifest::PageRef>,
}

/// The pages of an archive being written.
pub(crate) struct PageSpill {
    file: BufWriter<File>,
    written: u64,
    pages: Vec<Spilled>,
    /// How many of them are stored in the archive (not a parent's).
    own: usize,
    cur: PageEncoder,
    mtime: Mtime,
}

impl std::fmt::Debug for PageSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageSpill")
            .field("pages", &self.pages.len())
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl PageSpill {
    /// A spill in an unnamed temporary file in `dir` (or the system's
    /// temporary folder); pages' tar headers carry `mtime`.
    pub(crate) fn new(dir: Option<&Path>, mtime: Mtime) -> Result<Self> {
        let file = crate::spill::spill_file(dir)?;
        Ok(PageSpill {
            file: BufWriter::with_capacity(256 * 1024, file),
            written: 0,
            pages: Vec::new(),
            own: 0,
            cur: PageEncoder::default(),
            mtime,
        })
    }

    /// Adds the next entry, of `component`.
    pub(crate) fn push(&mut self, component: &ComponentName, e: &PageEntry) -> Result<()> {
        if self.cur.component().is_some_and(|c| c != component) {
            self.close()?;
        }
        self.cur.push(component, e).map_err(|e| page_error(&e))?;
        if self.cur.entries() as usize >= MAX_PAGE_ENTRIES
            || self.cur.len() >= PAGE_TARGET_BYTES
            || (self.cur.entries() >= PAGE_MIN_ENTRIES && is_boundary(e.path.as_bytes()))
        {
            self.close()?;
        }
        Ok(())
    }

    /// Closes the page being filled, if any.
    pub(crate) fn close(&mut self) -> Result<()> {
        let Some((component, entries, page)) = self.cur.take() else {
            return Ok(());
        };
        let name = page_path(self.own);
        self.own += 1;
        let header = encode_header(&HeaderSpec {
            path: name.as_bytes(),
            kind: EntryKind::File,
            size: page.len() as u64,
            mode: 0o644,
            mtime: self.mtime,
            uid: 0,
            gid: 0,
            link: None,
        });
        let page_len = page.len() as u64;
        let pad = (padded(page_len) - page_len) as usize;
        let write = |f: &mut BufWriter<File>, bytes: &[u8]| {
            f.write_all(bytes)
                .map_err(Error::io("writing the page spill file", None))
        };
        write(&mut self.file, &header)?;
        write(&mut self.file, &page)?;
        write(&mut self.file, &[0u8; 512][..pad])?;
        let len = header.len() as u64 + page_len + pad as u64;
        self.pages.push(Spilled {
            component,
            entries,
            sha256: Sha256Digest::of(&page),
            start: self.written,
            len,
            header_len: header.len() as u64,
            page_len,
            reused: None,
        });
        self.written += len;
        Ok(())
    }

    /// Whether the page being filled has no entry (a parent's page may
    /// then be reused in its place).
    pub(crate) fn is_between_pages(&self) -> bool {
        self.cur.is_empty()
    }

    /// Adds a parent's page, named by `r`, with `entries` (the page's
    /// entries, kept for the checks that read every page back).
    pub(crate) fn push_reused(
        &mut self,
        r: cairn_manifest::PageRef,
        entries: &[PageEntry],
    ) -> Result<()> {
        self.close()?;
        let page = Page {
            component: r.component.clone(),
            entries: entries.to_vec(),
        }
        .encode()
        .map_err(|e| page_error(&e))?;
        self.file
            .write_all(&page)
            .map_err(Error::io("writing the page spill file", None))?;
        let len = page.len() as u64;
        self.pages.push(Spilled {
            component: r.component.clone(),
            entries: r.entries,
            sha256: r.sha256,
            start: self.written,
            len,
            header_len: 0,
            page_len: len,
            reused: Some(r),
        });
        self.written += len;
        Ok(())
    }

    /// The closed pages.
    pub(crate) fn pages(&self) -> &[Spilled] {
        &self.pages
    }

    /// The tar entry of closed page `p`.
    pub(crate) fn read_entry(&mut self, p: &Spilled) -> Result<Vec<u8>> {
        self.file
            .flush()
            .map_err(Error::io("writing the page spill file", None))?;
        let len = usize::try_from(p.len).map_err(|_| Error::invalid("page too large"))?;
        let mut buf = vec![0u8; len];
        self.file
            .get_ref()
            .read_exact_at(&mut buf, p.start)
            .map_err(Error::io("reading the page spill file", None))?;
        Ok(buf)
    }

    /// Closed page `p`, parsed again.
    pub(crate) fn read_page(&mut self, p: &Spilled) -> Result<Page> {
        let entry = self.read_entry(p)?;
        let start = p.header_len as usize;
        parse_page(&entry[start..start + p.page_len as usize])
    }
}

/// Parses page bytes the writer made itself.
pub(crate) fn parse_page(bytes: &[u8]) -> Result<Page> {
    Page::decode(bytes).map_err(|e| page_error(&e))
}

fn page_error(e: &cairn_manifest::Error) -> Error {
    Error::invalid(format!("a manifest page: {e}"))
}
