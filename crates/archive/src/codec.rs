//! Compression detection by magic bytes, and the footer that makes a bare archive
//! file seekable.
//!
//! # The footer
//!
//! The last bytes of every Cairn archive point at the frames holding the manifest,
//! so a reader with random access can find it with one small read at the end and one
//! range read, without a seal. Decompressors and `tar` never see it:
//!
//! - zstd: a *skippable frame* (magic `0x184D2A5E`), which every zstd decoder skips;
//! - gzip: an empty gzip member whose header carries an extra field with subfield id
//!   `CN`; it decompresses to nothing.
//!
//! Both carry the same 40-byte payload: `CAIRNFTR`, version (u32 LE, 1 or 2),
//! reserved (u32, 0), manifest offset (u64 LE), manifest length (u64 LE), and
//! in version 2 the offset of the frame holding the manifest's root (u64 LE;
//! reserved, 0, in version 1).

use cairn_manifest::Codec;

use crate::error::{Error, Result};

/// zstd frame magic number, little-endian on the wire.
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The skippable frame magic Cairn uses for its footer (`0x184D2A5E`).
pub(crate) const FOOTER_SKIPPABLE_MAGIC: [u8; 4] = [0x5e, 0x2a, 0x4d, 0x18];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const FOOTER_TAG: &[u8; 8] = b"CAIRNFTR";
const FOOTER_V1: u32 = 1;
const FOOTER_V2: u32 = 2;
const PAYLOAD_LEN: usize = 40;

/// Length of the footer for `codec`.
pub(crate) fn footer_len(codec: Codec) -> usize {
    match codec {
        Codec::Zstd => ZSTD_FOOTER_LEN,
        Codec::Gzip => GZIP_FOOTER_LEN,
    }
}

/// Length of the zstd footer.
pub(crate) const ZSTD_FOOTER_LEN: usize = 8 + PAYLOAD_LEN;
/// Length of the gzip footer.
pub(crate) const GZIP_FOOTER_LEN: usize = 10 + 2 + 4 + PAYLOAD_LEN + 2 + 8;
/// The longer of the two footers: read this many bytes from the end to find either.
pub const MAX_FOOTER_LEN: usize = GZIP_FOOTER_LEN;

/// What a stream's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// zstd frames (possibly starting with a skippable frame).
    Zstd,
    /// gzip members.
    Gzip,
    /// An uncompressed tar stream.
    Tar,
}

impl Format {
    /// The codec of a compressed format.
    pub fn codec(&self) -> Option<Codec> {
        match self {
            Format::Zstd => Some(Codec::Zstd),
            Format::Gzip => Some(Codec::Gzip),
            Format::Tar => None,
        }
    }
}

/// Recognises zstd, gzip or plain tar from the first bytes of a stream (at least
/// 262 bytes are needed to recognise a plain tar).
///
/// # Errors
///
/// [`Error::Corrupt`] when it is none of them.
pub fn detect(head: &[u8]) -> Result<Format> {
    if head.starts_with(&ZSTD_MAGIC) {
        return Ok(Format::Zstd);
    }
    if head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18] {
        return Ok(Format::Zstd);
    }
    if head.starts_with(&GZIP_MAGIC) {
        return Ok(Format::Gzip);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Ok(Format::Tar);
    }
    if head.is_empty() {
        return Err(Error::corrupt("empty input: not an archive"));
    }
    Err(Error::corrupt(
        "not a zstd, gzip or tar stream (unrecognised magic bytes)",
    ))
}

/// Where the manifest is, as the footer records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the first frame holding the manifest.
    pub manifest_offset: u64,
    /// Compressed length of those frames.
    pub manifest_length: u64,
    /// For a format 2 archive, the offset of the frame that starts with the
    /// manifest's root (after its pages); 0 for format 1.
    pub root_offset: u64,
}

impl Footer {
    fn payload(&self) -> [u8; PAYLOAD_LEN] {
        let mut p = [0u8; PAYLOAD_LEN];
        p[..8].copy_from_slice(FOOTER_TAG);
        let version = if self.root_offset == 0 {
            FOOTER_V1
        } else {
            FOOTER_V2
        };
        p[8..12].copy_from_slice(&version.to_le_bytes());
        p[16..24].copy_from_slice(&self.manifest_offset.to_le_bytes());
        p[24..32].copy_from_slice(&self.manifest_length.to_le_bytes());
        p[32..40].copy_from_slice(&self.root_offset.to_le_bytes());
        p
    }

    /// Parses a footer payload.
    pub(crate) fn from_payload(p: &[u8]) -> Result<Footer> {
        if p.len() != PAYLOAD_LEN || &p[..8] != FOOTER_TAG {
            return Err(Error::corrupt("footer payload is not a Cairn footer"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&p[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let version = u32_at(8);
        if version != FOOTER_V1 && version != FOOTER_V2 {
            return Err(Error::Unsupported {
                reason: format!("footer version {version}"),
            });
        }
        let root_offset = u64_at(32);
        if p[12..16] != [0; 4] || (version == FOOTER_V1) != (root_offset == 0) {
            return Err(Error::corrupt("footer has non-zero reserved fields"));
        }
        let footer = Footer {
            manifest_offset: u64_at(16),
            manifest_length: u64_at(24),
            root_offset,
        };
        let end = footer
            .manifest_offset
            .saturating_add(footer.manifest_length);
        if version == FOOTER_V2 && !(footer.manifest_offset..end).contains(&root_offset) {
            return Err(Error::corrupt(
                "footer places the root outside the manifest",
            ));
        }
        Ok(footer)
    }

    /// Whether a skippable frame's payload is a Cairn footer.
    pub(crate) fn is_footer_payload(p: &[u8]) -> bool {
        p.len() == PAYLOAD_LEN && &p[..8] == FOOTER_TAG
    }

    /// The footer's bytes for `codec`.
    pub fn encode(&self, codec: Codec) -> Vec<u8> {
        let payload = self.payload();
        match codec {
            Codec::Zstd => {
                let mut out = Vec::with_capacity(ZSTD_FOOTER_LEN);
                out.extend_from_slice(&FOOTER_SKIPPABLE_MAGIC);
                out.extend_from_slice(&(PAYLOAD_LEN as u32).to_le_bytes());
                out.extend_from_slice(&payload);
                out
            }
            Codec::Gzip => {
                let mut out = Vec::with_capacity(GZIP_FOOTER_LEN);
                // ID1 ID2 CM=deflate FLG=FEXTRA MTIME=0 XFL=0 OS=255 (unknown)
                out.extend_from_slice(&[0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff]);
                out.extend_from_slice(&((4 + PAYLOAD_LEN) as u16).to_le_bytes());
                out.extend_from_slice(b"CN");
                out.extend_from_slice(&(PAYLOAD_LEN as u16).to_le_bytes());
                out.extend_from_slice(&payload);
                // An empty final fixed-Huffman deflate block, CRC32 0, ISIZE 0.
                out.extend_from_slice(&[0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
                out
            }
        }
    }

    /// Finds a footer at the end of `tail` (the last bytes of an archive).
    pub fn find(tail: &[u8]) -> Option<(Footer, Codec, usize)> {
        if tail.len() >= ZSTD_FOOTER_LEN {
            let f = &tail[tail.len() - ZSTD_FOOTER_LEN..];
            if f[..4] == FOOTER_SKIPPABLE_MAGIC
                && f[4..8] == (PAYLOAD_LEN as u32).to_le_bytes()
                && let Ok(footer) = Footer::from_payload(&f[8..])
            {
                return Some((footer, Codec::Zstd, ZSTD_FOOTER_LEN));
            }
        }
        if tail.len() >= GZIP_FOOTER_LEN {
            let f = &tail[tail.len() - GZIP_FOOTER_LEN..];
            let expected = Footer {
                manifest_offset: 0,
                manifest_length: 0,
                root_offset: 0,
            }
            .encode(Codec::Gzip);
            let head_ok = f[..16] == expected[..16];
            let tail_ok = f[GZIP_FOOTER_LEN - 10..] == expected[GZIP_FOOTER_LEN - 10..];
            if head_ok
                && tail_ok
                && let Ok(footer) = Footer::from_payload(&f[16..16 + PAYLOAD_LEN])
            {
                return Some((footer, Codec::Gzip, GZIP_FOOTER_LEN));
            }
        }
        None
    }

    /// Extracts a footer from a gzip member's extra field.
    pub(crate) fn from_gzip_extra(extra: &[u8]) -> Option<Footer> {
        if extra.len() == 4 + PAYLOAD_LEN && &extra[..2] == b"CN" {
            Footer::from_payload(&extra[4..]).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn footers_round_trip() {
        for root_offset in [0, 123_456_789 + 4000] {
            let f = Footer {
                manifest_offset: 123_456_789,
                manifest_length: 4321,
                root_offset,
            };
            for codec in [Codec::Zstd, Codec::Gzip] {
                let mut bytes = b"some archive bytes before".to_vec();
                let footer = f.encode(codec);
                bytes.extend_from_slice(&footer);
                let (found, c, len) = Footer::find(&bytes).unwrap();
                assert_eq!((found, c, len), (f, codec, footer.len()));
            }
        }
    }

    #[test]
    fn a_version_2_footer_must_place_its_root_inside_the_manifest() {
        let outside = Footer {
            manifest_offset: 1000,
            manifest_length: 100,
            root_offset: 1100,
        };
        let payload = &outside.encode(Codec::Zstd)[8..];
        let err = Footer::from_payload(payload).unwrap_err();
        assert!(
            err.to_string().contains("root outside the manifest"),
            "{err}"
        );
        // A version 1 footer with a root offset is not one Cairn writes.
        let mut v1 = Footer {
            root_offset: 1050,
            ..outside
        }
        .encode(Codec::Zstd);
        v1[8 + 8] = 1;
        let err = Footer::from_payload(&v1[8..]).unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn footers_decompress_to_nothing() {
        let f = Footer {
            manifest_offset: 1,
            manifest_length: 2,
            root_offset: 0,
        };
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(&f.encode(Codec::Zstd)[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
        let gz = f.encode(Codec::Gzip);
        let mut dec = flate2::read::MultiGzDecoder::new(&gz[..]);
        dec.read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(
            Footer::from_gzip_extra(dec.header().unwrap().extra().unwrap()),
            Some(f)
        );
    }

    #[test]
    fn detection() {
        assert_eq!(detect(&ZSTD_MAGIC).unwrap(), Format::Zstd);
        assert_eq!(detect(&FOOTER_SKIPPABLE_MAGIC).unwrap(), Format::Zstd);
        assert_eq!(detect(&[0x1f, 0x8b, 8]).unwrap(), Format::Gzip);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect(&tar).unwrap(), Format::Tar);
        assert!(detect(b"PK\x03\x04 a zip file").is_err());
        assert!(detect(b"").is_err());
    }

    #[test]
    fn garbage_tail_has_no_footer() {
        assert!(Footer::find(&[0u8; 100]).is_none());
        assert!(Footer::find(b"short").is_none());
    }
}
