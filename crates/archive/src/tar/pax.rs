//! PAX extended header records: written and split.

/// Appends one PAX record (`"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits).
pub(super) fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1; // ' ' key '=' value '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One PAX record: key and value, raw.
pub(crate) type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits PAX extended header data into (key, value) records.
///
/// Records are length-prefixed (`"<len> <key>=<value>\n"`), so values may hold any
/// byte, newlines included; splitting on newlines (as `tar::PaxExtensions` does)
/// would break on such file names.
pub(crate) fn pax_records(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, &'static str> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or("malformed PAX record length")?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or("malformed PAX record length")?;
        if len <= space + 2 || len > data.len() {
            return Err("PAX record length out of range");
        }
        let record = &data[space + 1..len];
        let body = record
            .strip_suffix(b"\n")
            .ok_or("PAX record without its newline")?;
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without '='")?;
        out.push((&body[..eq], &body[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_are_self_consistent() {
        for value_len in [0usize, 1, 5, 90, 94, 95, 96, 995, 996, 997, 10_000] {
            let mut out = Vec::new();
            let value = vec![b'v'; value_len];
            pax_record(&mut out, "path", &value);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                out.len(),
                "value {value_len}"
            );
        }
    }

    #[test]
    fn pax_values_may_hold_newlines() {
        let mut data = Vec::new();
        pax_record(&mut data, "path", b"data/a\nb");
        pax_record(&mut data, "mtime", b"1.5");
        let recs = pax_records(&data).unwrap();
        assert_eq!(
            recs,
            vec![
                (&b"path"[..], &b"data/a\nb"[..]),
                (&b"mtime"[..], &b"1.5"[..])
            ]
        );
        for bad in [&b"5 a=b"[..], b"99 a=b\n", b"x a=b\n", b"6 ab\nx", b"3 \n"] {
            assert!(
                pax_records(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
