//! A bounded, deterministic run of every fuzz property on stable Rust, for CI.
//!
//! Inputs: the seed corpus below, then pseudo-random bytes (fed through
//! `arbitrary` for the structured targets). `CAIRN_FUZZ_ITERATIONS` sets how many
//! random inputs each property gets (default 300).

use arbitrary::{Arbitrary, Unstructured};

fn iterations() -> usize {
    std::env::var("CAIRN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Deterministic pseudo-random inputs of varied length.
fn inputs(seed: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    (0..iterations()).map(move |i| {
        let len = (next() % [16, 256, 4096][i % 3]) as usize;
        (0..len).map(|_| next() as u8).collect()
    })
}

#[test]
fn manifest_parse() {
    let seeds: &[&[u8]] = &[
        b"",
        b"{}",
        br#"{"format":"cairn-manifest","version":"1.0"}"#,
        br#"{"format":"cairn-manifest","version":"2.0"}"#,
        b"-1.5",
        b"data/../x",
        b"1700000000.123456789",
    ];
    for s in seeds {
        cairn_fuzz::manifest_parse(s);
    }
    for input in inputs(1) {
        cairn_fuzz::manifest_parse(&input);
    }
}

/// Valid and nearly valid pages, then each with single bytes changed.
fn page_seeds() -> Vec<Vec<u8>> {
    let e = |path: &str, kind: &str, pos: u64| {
        let extra = match kind {
            "file" => {
                r#","size":1,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#
            }
            "hardlink" => r#","link":"data/a""#,
            "symlink" => r#","link":"/etc""#,
            _ => "",
        };
        format!(
            r#"{{"path":"{path}","type":"{kind}","mode":420,"mtime":"1","uid":0,"gid":0{extra},"frame":0,"pos":{pos}}}"#
        )
    };
    let page = |entries: &[String]| {
        format!(
            r#"{{"component":"data","entries":[{}]}}"#,
            entries.join(",")
        )
        .into_bytes()
    };
    let base = vec![
        page(&[
            e("data", "dir", 0),
            e("data/a", "file", 512),
            e("data/b", "hardlink", 1536),
        ]),
        page(&[e("data/a", "file", 0), e("data/a", "file", 512)]),
        page(&[e("data/b", "file", 0), e("data/a", "file", 512)]),
        page(&[e("data/l", "symlink", 0), e("data/l/x", "file", 512)]),
        page(&[e("conf/a", "file", 0)]),
    ];
    let mut out = base.clone();
    let mut x = 7u64;
    for b in &base {
        for _ in 0..40 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let mut m = b.clone();
            let at = (x >> 33) as usize % m.len();
            let pool = b"abz/\"\x00019.,:{}[]";
            m[at] = pool[(x >> 20) as usize % pool.len()];
            out.push(m);
        }
    }
    out
}

#[test]
fn page_parse() {
    for s in page_seeds() {
        cairn_fuzz::page_parse(&s);
    }
    for input in inputs(7) {
        cairn_fuzz::page_parse(&input);
    }
}

#[test]
fn root_parse() {
    let seeds: &[&[u8]] = &[
        b"",
        br#"{"format":"cairn-manifest","version":"2.0"}"#,
        br#"{"format":"cairn-manifest","version":"1.1"}"#,
        br#"{"format":"cairn-manifest","version":"2.0","pages":[]}"#,
    ];
    for s in seeds {
        cairn_fuzz::root_parse(s);
    }
    for input in inputs(8) {
        cairn_fuzz::root_parse(&input);
    }
}

#[test]
fn archive_read() {
    for input in inputs(2) {
        cairn_fuzz::archive_read(&input);
    }
    // Truncations of a real archive, too.
    let mut files = Vec::new();
    for i in 0..3u8 {
        files.push(cairn_fuzz::File {
            name: vec![b'a' + i],
            data: vec![i; 3000],
            mode: 0o644,
            mtime: (5, 6),
        });
    }
    cairn_fuzz::roundtrip(&files, false);
}

#[test]
fn unpack() {
    for input in inputs(3) {
        let mut u = Unstructured::new(&input);
        if let Ok(entries) = Vec::<cairn_fuzz::RawEntry>::arbitrary(&mut u) {
            cairn_fuzz::unpack(&entries);
        }
    }
    // Known hostile shapes.
    let hostile = |path: &[u8], kind: u8, link: &[u8]| cairn_fuzz::RawEntry {
        path: path.to_vec(),
        kind,
        link: link.to_vec(),
        data: b"x".to_vec(),
    };
    cairn_fuzz::unpack(&[hostile(b"../evil", 0, b"")]);
    cairn_fuzz::unpack(&[hostile(b"data/l", 3, b"/tmp"), hostile(b"data/l/x", 0, b"")]);
    cairn_fuzz::unpack(&[hostile(b"data/h", 2, b"../../victim")]);
}

#[test]
fn roundtrip() {
    for (i, input) in inputs(4).enumerate().take(iterations() / 5) {
        let mut u = Unstructured::new(&input);
        if let Ok(files) = Vec::<cairn_fuzz::File>::arbitrary(&mut u) {
            cairn_fuzz::roundtrip(&files, i % 2 == 1);
        }
    }
}

#[test]
fn policy_parse() {
    let seeds: &[&[u8]] = &[
        b"",
        b"keep_last = 3\nkeep_daily = 7",
        b"keep_within = \"2 days\"\ntimezone = \"Europe/Paris\"",
        br#"{"keep_monthly": 12, "deleted_grace": "PT48H"}"#,
        b"keep_within = \"1 month\"",
        b"keep_last = -1",
        b"[1, 2]",
    ];
    for s in seeds {
        cairn_fuzz::policy_parse(s);
    }
    for input in inputs(5) {
        cairn_fuzz::policy_parse(&input);
    }
}

#[test]
fn retention_plan() {
    for input in inputs(6) {
        let mut u = Unstructured::new(&input);
        if let Ok(plan) = cairn_fuzz::PlanInput::arbitrary(&mut u) {
            cairn_fuzz::retention_plan(&plan);
        }
    }
}

#[test]
fn job_events() {
    for input in inputs(7) {
        let mut u = Unstructured::new(&input);
        if let Ok(job) = cairn_fuzz::JobInput::arbitrary(&mut u) {
            cairn_fuzz::job_events(&job);
        }
    }
}
