//! The tar layer: entry headers (POSIX ustar plus PAX extended headers,
//! [`header`] and [`pax`]) and a streaming reader that knows the exact offset
//! of every header ([`reader`]).
//!
//! `tar::Header` does the field encoding (octal, base-256, checksum). The loops
//! around it are written here because Cairn needs what `tar::Archive` does not
//! offer: the raw offset of each entry for the seek index, a cap on the size of
//! extension headers (`tar::Archive` reads them whole into memory), and data served
//! straight from the decompressor's buffer without another copy.

mod header;
mod pax;
mod reader;

pub(crate) use header::{HeaderSpec, encode_header};
pub(crate) use reader::{RawEntry, RawKind, TarReader, read_small};

/// Size of a tar block.
pub(crate) const BLOCK: u64 = 512;

/// Rounds `n` up to a whole number of blocks.
pub(crate) fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// An `io::BufRead` adapter is all the reader needs; this one is for tests.
#[cfg(test)]
pub(crate) fn reader_over(bytes: &[u8]) -> TarReader<std::io::BufReader<&[u8]>> {
    TarReader::new(std::io::BufReader::new(bytes), 0, 1 << 20)
}

#[cfg(test)]
mod tests {
    use cairn_manifest::{EntryKind, Mtime};

    use crate::error::Error;

    use super::*;

    fn spec(path: &[u8]) -> HeaderSpec<'_> {
        HeaderSpec {
            path,
            kind: EntryKind::File,
            size: 3,
            mode: 0o644,
            mtime: Mtime::new(1_700_000_000, 0),
            uid: 1000,
            gid: 1000,
            link: None,
        }
    }

    fn one_entry(spec: &HeaderSpec<'_>, data: &[u8]) -> Vec<u8> {
        let mut out = encode_header(spec);
        out.extend_from_slice(data);
        out.resize(
            out.len() + (padded(data.len() as u64) as usize - data.len()),
            0,
        );
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn short_names_need_no_pax() {
        let h = encode_header(&spec(b"data/a.txt"));
        assert_eq!(h.len(), 512);
    }

    #[test]
    fn long_odd_names_and_times_round_trip() {
        let mut long = b"data/".to_vec();
        long.extend(std::iter::repeat_n(b'x', 200));
        long.extend_from_slice(b"/\xff\xfe name");
        let mut s = spec(&long);
        s.mtime = Mtime::new(-5, 250_000_000);
        s.uid = 5_000_000;
        let bytes = one_entry(&s, b"abc");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("hdrcharset=BINARY"));
        let mut r = reader_over(&bytes);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long);
        assert_eq!(e.mtime, Mtime::new(-5, 250_000_000));
        assert_eq!(e.uid, 5_000_000);
        assert_eq!(e.kind, RawKind::Entry(EntryKind::File));
        assert_eq!(read_small(&mut r, 3, 10, "data").unwrap(), b"abc");
        assert!(r.next_entry().unwrap().is_none());
        r.check_trailing().unwrap();
    }

    #[test]
    fn huge_sizes_use_pax() {
        let mut s = spec(b"data/big");
        s.size = 10 * 1024 * 1024 * 1024;
        let h = encode_header(&s);
        assert!(String::from_utf8_lossy(&h).contains("size=10737418240"));
    }

    #[test]
    fn checksum_is_checked() {
        let mut bytes = one_entry(&spec(b"data/a"), b"abc");
        bytes[0] ^= 1;
        let err = reader_over(&bytes).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn truncation_is_reported() {
        let bytes = one_entry(&spec(b"data/a"), b"abc");
        let read_all = |cut: usize| {
            let mut r = reader_over(&bytes[..cut]);
            while r.next_entry()?.is_some() {
                r.skip_data()?;
            }
            Ok::<_, Error>(())
        };
        for cut in [100, 512, 514, 1000, 1024] {
            assert!(read_all(cut).is_err(), "cut at {cut} accepted");
        }
        // Like GNU tar, input that stops after the first of the two end blocks is
        // accepted; compressed archives detect truncation in their frames anyway.
        read_all(1536).unwrap();
    }

    #[test]
    fn oversized_extension_is_a_limit_error() {
        let mut long = b"data/".to_vec();
        long.extend(std::iter::repeat_n(b'y', 2000));
        let bytes = one_entry(&spec(&long), b"abc");
        let mut r = TarReader::new(std::io::BufReader::new(&bytes[..]), 0, 1000);
        assert_eq!(r.next_entry().unwrap_err().kind(), crate::ErrorKind::Limit);
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut bytes = one_entry(&spec(b"data/a"), b"abc");
        bytes.extend_from_slice(b"garbage");
        let mut r = reader_over(&bytes);
        r.next_entry().unwrap();
        assert!(r.next_entry().unwrap().is_none());
        assert!(r.check_trailing().is_err());
    }
}
