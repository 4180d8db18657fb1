//! JSON round trips of arbitrary manifests are exact.

use cairn_integrity::{Sha256Digest, SigningKey};
use cairn_manifest::*;
use proptest::prelude::*;

fn arb_entry_path() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(b'a'..=b'z', 1..8),
            proptest::collection::vec(1u8..=255, 1..8)
                .prop_filter("no separators", |v| !v.contains(&b'/')),
        ],
        1..4,
    )
    .prop_map(|parts| parts.join(&b'/'))
    .prop_filter("valid", |p| EntryPath::parse(p).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_entries_round_trip(
        paths in proptest::collection::btree_set(arb_entry_path(), 0..20),
        secs in any::<i64>().prop_filter("range", |s| *s > i64::MIN + 1),
        nanos in 0u32..1_000_000_000,
        mode in 0u32..=0o7777,
        label in proptest::option::of(".{0,40}"),
    ) {
        let key = SigningKey::from_seed(&[9; 32]);
        let mut m = super::fixture::sample(&key);
        m.label = label;
        let comp = ComponentName::parse("x").unwrap();
        m.components.push(Component { name: comp, kind: ComponentKind::Dir, optional: false, entries: 0, bytes: 0 });
        let mut pos = 1; // after db/app.db at 0, inside the 2048-byte last frame
        // Files only: none may lie below another.
        let all: Vec<Vec<u8>> = paths.into_iter().collect();
        let below = |p: &[u8], q: &[u8]| p.len() > q.len() && p.starts_with(q) && p[q.len()] == b'/';
        let paths: Vec<Vec<u8>> = all
            .iter()
            .filter(|p| !all.iter().any(|q| below(p, q) || below(q, p)))
            .cloned()
            .collect();
        for p in paths {
            let mut full = b"x/".to_vec();
            full.extend_from_slice(&p);
            let Ok(path) = EntryPath::from_vec(full) else { continue };
            m.entries.push(Entry {
                path,
                kind: EntryKind::File,
                size: 1,
                mode,
                mtime: Mtime::new(secs, nanos),
                uid: u64::MAX,
                gid: 0,
                sha256: Some(Sha256Digest::of(b"1")),
                link: None,
                frame: 500,
                pos,
                stored_in: None,
            });
            pos += 1;
            let c = m.components.last_mut().unwrap();
            c.entries += 1;
            c.bytes += 1;
        }
        let signed = SignedManifest::sign(m.clone(), &key).unwrap();
        let back = UnverifiedManifest::parse(signed.bytes().to_vec(), signed.signature().as_bytes(), DEFAULT_MAX_MANIFEST_BYTES)
            .unwrap()
            .verify(&key.public_key())
            .unwrap();
        prop_assert_eq!(back.manifest(), &m);
        // Serialising the parsed manifest gives the very same bytes.
        prop_assert_eq!(serde_json::to_vec(back.manifest()).unwrap(), signed.bytes().to_vec());
    }
}

#[test]
fn backup_kind_names_match_their_json() {
    for kind in BackupKind::ALL {
        let json = serde_json::to_value(kind).unwrap();
        assert_eq!(json.as_str(), Some(kind.as_str()));
        assert_eq!(kind.as_str().parse::<BackupKind>().ok(), Some(kind));
    }
}
