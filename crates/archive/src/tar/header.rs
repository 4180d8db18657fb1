//! Entry headers: what one says ([`HeaderSpec`]), its encoding as a ustar
//! header with PAX extensions where ustar falls short, and the decoding of
//! the fields that `tar::Header` does not handle as Cairn needs.

use cairn_manifest::{EntryKind, Mtime};

use super::padded;
use super::pax::pax_record;

const USTAR_SIZE_MAX: u64 = 0o777_7777_7777;
const USTAR_ID_MAX: u64 = 0o777_7777;
const USTAR_NAME_LEN: usize = 100;
/// What an entry header says.
#[derive(Debug, Clone)]
pub(crate) struct HeaderSpec<'a> {
    pub(crate) path: &'a [u8],
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: Mtime,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) link: Option<&'a [u8]>,
}

fn ustar_header(
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    mtime: u64,
    uid: u64,
    gid: u64,
) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(uid);
    h.set_gid(gid);
    h
}

fn set_name_field(field: &mut [u8; USTAR_NAME_LEN], bytes: &[u8]) {
    let n = bytes.len().min(USTAR_NAME_LEN);
    field[..n].copy_from_slice(&bytes[..n]);
}

/// Encodes the header blocks of one entry: a PAX extended header when a value does
/// not fit the ustar fields (long or non-UTF-8 names, sub-second or negative times,
/// large sizes or ids), then the ustar header.
pub(crate) fn encode_header(spec: &HeaderSpec<'_>) -> Vec<u8> {
    let mut pax = Vec::new();
    let mut binary = false;

    let mut name = spec.path.to_vec();
    if spec.kind == EntryKind::Dir {
        name.push(b'/');
    }
    if name.len() > USTAR_NAME_LEN {
        pax_record(&mut pax, "path", spec.path);
        binary |= std::str::from_utf8(spec.path).is_err();
    }
    if let Some(link) = spec.link
        && link.len() > USTAR_NAME_LEN
    {
        pax_record(&mut pax, "linkpath", link);
        binary |= std::str::from_utf8(link).is_err();
    }
    if spec.size > USTAR_SIZE_MAX {
        pax_record(&mut pax, "size", spec.size.to_string().as_bytes());
    }
    if spec.uid > USTAR_ID_MAX {
        pax_record(&mut pax, "uid", spec.uid.to_string().as_bytes());
    }
    if spec.gid > USTAR_ID_MAX {
        pax_record(&mut pax, "gid", spec.gid.to_string().as_bytes());
    }
    let secs = spec.mtime.secs();
    if spec.mtime.nanos() != 0 || secs < 0 || secs as u64 > USTAR_SIZE_MAX {
        pax_record(&mut pax, "mtime", spec.mtime.to_string().as_bytes());
    }
    if binary {
        // Readers must take the names as raw bytes rather than UTF-8 (POSIX pax).
        let mut with_charset = Vec::new();
        pax_record(&mut with_charset, "hdrcharset", b"BINARY");
        with_charset.extend_from_slice(&pax);
        pax = with_charset;
    }

    let mut out = Vec::with_capacity(1024 + padded(pax.len() as u64) as usize);
    if !pax.is_empty() {
        let mut h = ustar_header(tar::EntryType::XHeader, pax.len() as u64, 0o644, 0, 0, 0);
        set_name_field(&mut h.as_old_mut().name, b"@PaxHeader");
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&pax);
        out.resize(
            out.len() + (padded(pax.len() as u64) - pax.len() as u64) as usize,
            0,
        );
    }

    let entry_type = match spec.kind {
        EntryKind::File => tar::EntryType::Regular,
        EntryKind::Dir => tar::EntryType::Directory,
        EntryKind::Symlink => tar::EntryType::Symlink,
        EntryKind::Hardlink => tar::EntryType::Link,
    };
    let clamped_mtime = secs.clamp(0, USTAR_SIZE_MAX as i64) as u64;
    let mut h = ustar_header(
        entry_type,
        spec.size,
        spec.mode,
        clamped_mtime,
        spec.uid,
        spec.gid,
    );
    set_name_field(&mut h.as_old_mut().name, &name);
    if let Some(link) = spec.link {
        set_name_field(&mut h.as_old_mut().linkname, link);
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out
}

/// Reads a numeric time field: octal, or GNU base-256, which may be negative (GNU
/// tar writes times before 1970 that way).
pub(super) fn signed_time_field(field: &[u8; 12]) -> Option<i64> {
    if field[0] & 0x80 != 0 {
        let negative = field[0] == 0xff;
        let mut v: i128 = if negative { -1 } else { 0 };
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 && !negative { b & 0x7f } else { b };
            v = (v << 8) | i128::from(b);
        }
        return i64::try_from(v).ok();
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    i64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// Checks a header's checksum (unsigned sum, or the signed sum some old tars wrote).
pub(super) fn check_checksum(block: &[u8; 512]) -> Result<(), &'static str> {
    let field = &block[148..156];
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    let stored = std::str::from_utf8(&text)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 8).ok())
        .ok_or("bad header checksum field")?;
    let (mut unsigned, mut signed) = (0u32, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::from(stored) == signed {
        Ok(())
    } else {
        Err("header checksum mismatch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_fields() {
        let mut f = [0u8; 12];
        f[..11].copy_from_slice(b"14000000000");
        assert_eq!(signed_time_field(&f), Some(0o14000000000));
        // GNU base-256: -2 as a 96-bit two's complement number.
        let mut neg = [0xffu8; 12];
        neg[11] = 0xfe;
        assert_eq!(signed_time_field(&neg), Some(-2));
        let mut pos = [0u8; 12];
        pos[0] = 0x80;
        pos[11] = 5;
        assert_eq!(signed_time_field(&pos), Some(5));
    }
}
