//! Cursor pagination while backups are being added and removed: a backup
//! that existed when the listing started and still exists is returned exactly
//! once, and no backup is ever returned twice.

use std::collections::{BTreeSet, HashMap};

use cairn_catalog::{BackupFilter, BackupRecord, BackupStatus, Catalog, Cursor, ErrorKind};
use cairn_manifest::{BackupId, BackupKind, TargetName};
use jiff::Timestamp;
use proptest::prelude::*;

fn record(n: u64, second: i64) -> BackupRecord {
    let id = BackupId::from_parts(1_000 + n, u128::from(n));
    let target = TargetName::parse(if n.is_multiple_of(3) { "db" } else { "app" }).unwrap();
    // Few distinct seconds: many ties, broken by id.
    let at = Timestamp::from_second(1_795_000_000 + second).unwrap();
    BackupRecord {
        status: BackupStatus::Ready,
        ..BackupRecord::creating(id, target, BackupKind::Scheduled, at)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn paging_never_repeats_or_drops(
        initial in prop::collection::vec(0i64..20, 0..120),
        limit in 1usize..15,
        // Between pages: new backups (at any time, older or newer) and deletions.
        changes in prop::collection::vec(
            (prop::collection::vec(0i64..25, 0..4), prop::collection::vec(any::<prop::sample::Index>(), 0..2)),
            0..40,
        ),
        only_app in any::<bool>(),
    ) {
        let catalog = Catalog::in_memory().unwrap();
        let mut next_n = 0u64;
        let mut live: HashMap<String, BackupRecord> = HashMap::new();
        for s in &initial {
            let r = record(next_n, *s);
            next_n += 1;
            catalog.insert_backup(&r).unwrap();
            live.insert(r.id.to_string(), r);
        }
        let filter = BackupFilter {
            target: only_app.then(|| TargetName::parse("app").unwrap()),
            ..BackupFilter::default()
        };
        let matches = |r: &BackupRecord| !only_app || r.target.as_str() == "app";
        let at_start: BTreeSet<String> = live.values().filter(|r| matches(r)).map(|r| r.id.to_string()).collect();
        let mut removed: BTreeSet<String> = BTreeSet::new();
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut changes = changes.into_iter();
        let mut last: Option<(Timestamp, String)> = None;
        loop {
            let page = catalog.list_backups(&filter, limit, cursor.as_ref()).unwrap();
            prop_assert!(page.items.len() <= limit);
            for r in &page.items {
                prop_assert!(matches(r));
                let key = (r.created_at, r.id.to_string());
                if let Some(prev) = &last {
                    prop_assert!(key < *prev, "not strictly newest first");
                }
                last = Some(key);
                seen.push(r.id.to_string());
            }
            // The cursor survives its text form.
            cursor = page.next.map(|c| Cursor::decode(&c.encode()).unwrap());
            prop_assert_eq!(page.has_more, cursor.is_some());
            if cursor.is_none() {
                break;
            }
            if let Some((adds, dels)) = changes.next() {
                for s in adds {
                    let r = record(next_n, s);
                    next_n += 1;
                    catalog.insert_backup(&r).unwrap();
                    live.insert(r.id.to_string(), r);
                }
                for idx in dels {
                    if live.is_empty() { break; }
                    let mut keys: Vec<&String> = live.keys().collect();
                    keys.sort();
                    let k = keys[idx.index(keys.len())].clone();
                    let r = live.remove(&k).unwrap();
                    catalog.remove_backup(&r.id).unwrap();
                    removed.insert(k);
                }
            }
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        prop_assert_eq!(unique.len(), seen.len(), "a backup was returned twice");
        for id in &at_start {
            if !removed.contains(id) {
                prop_assert!(unique.contains(id), "{} was dropped", id);
            }
        }
    }
}

#[test]
fn foreign_cursors_are_refused() {
    for bad in [
        "",
        "!!!",
        "bm90IGEgY3Vyc29y",
        &"A".repeat(500),
        "MTIzOm5vdC1hbi1pZA",
    ] {
        let err = Cursor::decode(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadCursor, "{bad:?}");
    }
}
