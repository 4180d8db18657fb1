//! Format 2: the root's own checks, and pages checked against it one by one.

use cairn_integrity::{Sha256Digest, SigningKey};
use cairn_manifest::v2::{MAX_PAGE_BYTES, MAX_PAGE_ENTRIES, MAX_PAGES, PageEncoder};
use cairn_manifest::*;

fn name(s: &str) -> ComponentName {
    ComponentName::parse(s).unwrap()
}

fn pe(path: &[u8], kind: EntryKind, pos: u64) -> PageEntry {
    PageEntry {
        path: EntryPath::parse(path).unwrap(),
        kind,
        size: 0,
        mode: 0o755,
        mtime: Mtime::new(1_700_000_000, 5),
        uid: 0,
        gid: 0,
        sha256: None,
        link: None,
        frame: 0,
        pos,
        data_in: None,
        ctime: None,
        ino: None,
        parts: None,
    }
}

fn file(path: &[u8], size: u64, pos: u64) -> PageEntry {
    PageEntry {
        size,
        mode: 0o644,
        sha256: Some(Sha256Digest::of(path)),
        ..pe(path, EntryKind::File, pos)
    }
}

fn link(path: &[u8], target: &[u8], pos: u64) -> PageEntry {
    PageEntry {
        link: Some(LinkTarget::parse(target).unwrap()),
        ..pe(path, EntryKind::Hardlink, pos)
    }
}

/// A root naming `pages` (each of one component), with consistent totals.
fn root_for(pages: &[Page], key: &SigningKey, canonical: bool) -> Root {
    let target = TargetName::parse("web").unwrap();
    let mut components: Vec<Component> = Vec::new();
    for p in pages {
        let bytes: u64 = p.entries.iter().map(|e| e.size).sum();
        match components.iter_mut().find(|c| c.name == p.component) {
            Some(c) => {
                c.entries += p.entries.len() as u64;
                c.bytes += bytes;
            }
            None => components.push(Component {
                name: p.component.clone(),
                kind: ComponentKind::Dir,
                optional: false,
                entries: p.entries.len() as u64,
                bytes,
            }),
        }
    }
    let data = Frame {
        offset: 0,
        size: 100,
        raw_offset: 0,
        raw_size: 1 << 20,
    };
    let mut offset = data.size;
    let refs = pages
        .iter()
        .map(|p| {
            let r = PageRef {
                component: p.component.clone(),
                entries: p.entries.len() as u32,
                sha256: Sha256Digest::of(&p.encode().unwrap()),
                offset,
                size: 10,
                data_in: None,
            };
            offset += 10;
            r
        })
        .collect();
    Root {
        format: FORMAT_TAG.to_owned(),
        version: v2::VERSION,
        backup_id: BackupId::from_parts(1_790_000_000_000, 1),
        target: target.clone(),
        kind: BackupKind::Manual,
        label: None,
        description: None,
        created_at: "2026-12-01T10:00:00Z".parse().unwrap(),
        duration_ms: 1,
        origin: Origin {
            target,
            origin_id: OriginId::parse("org_tests").unwrap(),
            hostname: None,
            model: None,
            serial: None,
            software_version: "cairn/test".into(),
        },
        compression: Compression {
            codec: Codec::Zstd,
            level: 3,
            frame_size: 1 << 20,
        },
        signer: key.key_id(),
        components,
        canonical_order: canonical,
        pages: refs,
        frames: vec![data],
        skipped: vec![],
        warnings: vec![],
        source: None,
        features: vec![],
        parents: vec![],
        segment_size: None,
        blob_bytes: 0,
    }
}

fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

fn page(component: &str, entries: Vec<PageEntry>) -> Page {
    Page {
        component: name(component),
        entries,
    }
}

/// Runs both passes over `pages` as a reader does; the error's text.
fn check(root: &Root, pages: &[Page]) -> Result<()> {
    root.validate()?;
    let mut c = PageChecker::new(root);
    for (i, p) in pages.iter().enumerate() {
        let parsed = Page::parse(&p.encode()?, &root.pages[i], i)?;
        c.page(&parsed)?;
    }
    let mut links = c.finish()?;
    for p in pages {
        links.page(p);
    }
    links.finish()
}

fn refusal(root: &Root, pages: &[Page]) -> String {
    check(root, pages).expect_err("accepted").to_string()
}

fn good_pages() -> Vec<Page> {
    vec![
        page(
            "data",
            vec![
                pe(b"data", EntryKind::Dir, 0),
                file(b"data/a", 3, 512),
                pe(b"data/d", EntryKind::Dir, 1536),
            ],
        ),
        page(
            "data",
            vec![file(b"data/d/x", 5, 2048), link(b"data/e", b"data/a", 3072)],
        ),
        page("conf", vec![pe(b"conf", EntryKind::Dir, 3584)]),
    ]
}

#[test]
fn a_consistent_root_and_its_pages_pass_and_sign() {
    let pages = good_pages();
    for canonical in [true, false] {
        let root = root_for(&pages, &key(), canonical);
        check(&root, &pages).unwrap();
        let signed = SignedRoot::sign(root.clone(), &key()).unwrap();
        let back = UnverifiedRoot::parse(
            signed.bytes().to_vec(),
            signed.signature().as_bytes(),
            v2::DEFAULT_MAX_ROOT_BYTES,
        )
        .unwrap()
        .verify(&key().public_key())
        .unwrap();
        assert_eq!(back.manifest(), &root);
        assert_eq!(declared_major(signed.bytes()).unwrap(), 2);
    }
}

#[test]
fn the_encoder_writes_what_encode_writes() {
    for p in good_pages() {
        let mut enc = PageEncoder::default();
        for e in &p.entries {
            enc.push(&p.component, e).unwrap();
        }
        let (component, n, bytes) = enc.take().unwrap();
        assert_eq!(
            (component, n as usize),
            (p.component.clone(), p.entries.len())
        );
        assert_eq!(bytes, p.encode().unwrap());
        assert!(enc.take().is_none());
    }
    let mut enc = PageEncoder::default();
    enc.push(&name("a"), &pe(b"a", EntryKind::Dir, 0)).unwrap();
    let other = enc.push(&name("b"), &pe(b"b", EntryKind::Dir, 1));
    assert!(other.is_err(), "a page mixed components");
}

#[test]
fn one_version_reads_as_another_is_refused() {
    let pages = good_pages();
    let root = root_for(&pages, &key(), true);
    let signed = SignedRoot::sign(root, &key()).unwrap();
    // A v2 root is not a v1 manifest, and the reverse.
    let err = parse_unauthenticated(signed.bytes()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
    let mut third = root_for(&pages, &key(), true);
    third.version = "3.0".parse().unwrap();
    let bytes = serde_json::to_vec(&third).unwrap();
    let err = parse_document::<Root>(&bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
}

#[test]
fn parents_and_their_feature_come_together_and_entries_refer_only_to_named_parents() {
    let pages = good_pages();
    let parent = v2::ParentRef {
        backup_id: BackupId::from_parts(1_780_000_000_000, 9),
        root_sha256: Sha256Digest::of(b"parent root"),
    };
    let mut root = root_for(&pages, &key(), true);
    root.features = vec!["parents".into()];
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("feature parents but no parent"), "{err}");
    root.features.clear();
    root.parents = vec![parent.clone()];
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("without the feature"), "{err}");
    root.features = vec!["parents".into()];
    root.validate().unwrap();
    root.parents = vec![parent.clone(), parent];
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("named twice"), "{err}");
    root.parents.truncate(1);

    // An entry may refer to parent 0; not to parent 1, and only as a file.
    let mut page = pages[0].clone();
    let i = page
        .entries
        .iter()
        .position(|e| e.kind == EntryKind::File && e.size > 0)
        .unwrap();
    page.entries[i].data_in = Some(0);
    PageChecker::new(&root).page(&page).unwrap();
    page.entries[i].data_in = Some(1);
    let err = PageChecker::new(&root).page(&page).unwrap_err().to_string();
    assert!(err.contains("does not name"), "{err}");
    let d = page
        .entries
        .iter()
        .position(|e| e.kind == EntryKind::Dir)
        .unwrap();
    page.entries[i].data_in = None;
    page.entries[d].data_in = Some(0);
    let err = PageChecker::new(&root).page(&page).unwrap_err().to_string();
    assert!(err.contains("not a non-empty file"), "{err}");
}

#[test]
fn a_root_that_needs_a_feature_this_build_does_not_know_is_refused() {
    let pages = good_pages();
    let mut root = root_for(&pages, &key(), true);
    root.features = vec!["chunks".into()];
    let err = root.validate().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
    assert!(err.to_string().contains("feature \"chunks\""), "{err}");
    // Signed, it is refused when read, before its pages are looked at.
    let bytes = serde_json::to_vec(&root).unwrap();
    let sig = key().sign(&bytes);
    let err = UnverifiedRoot::parse(bytes, sig.as_bytes(), v2::DEFAULT_MAX_ROOT_BYTES)
        .unwrap()
        .verify(&key().public_key())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
}

#[test]
fn a_page_that_does_not_hash_to_its_name_is_refused() {
    let pages = good_pages();
    let root = root_for(&pages, &key(), true);
    let mut bytes = pages[0].encode().unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let err = Page::parse(&bytes, &root.pages[0], 0).unwrap_err();
    assert!(
        err.to_string().contains("does not match the SHA-256"),
        "{err}"
    );
    // Pages out of order: the second page where the first should be.
    let err = Page::parse(&pages[1].encode().unwrap(), &root.pages[0], 0).unwrap_err();
    assert!(err.to_string().contains("page 0 does not match"), "{err}");
}

#[test]
fn a_page_over_its_size_bound_is_refused_before_it_is_parsed() {
    let pages = good_pages();
    let root = root_for(&pages, &key(), true);
    let big = vec![b' '; MAX_PAGE_BYTES as usize + 1];
    let err = Page::parse(&big, &root.pages[0], 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
}

#[test]
fn roots_that_contradict_themselves_are_refused() {
    let pages = good_pages();
    let base = root_for(&pages, &key(), true);
    type Change = Box<dyn Fn(&mut Root)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "more than",
            Box::new(|r: &mut Root| {
                let p = r.pages[0].clone();
                r.pages = vec![p; MAX_PAGES + 1];
            }),
        ),
        (
            "entries (1 to 4096",
            Box::new(|r: &mut Root| r.pages[0].entries = MAX_PAGE_ENTRIES as u32 + 1),
        ),
        (
            "entries (1 to 4096",
            Box::new(|r: &mut Root| r.pages[2].entries = 0),
        ),
        (
            "does not follow the previous one",
            Box::new(|r: &mut Root| r.pages.swap(0, 1)),
        ),
        (
            "does not follow the previous one",
            Box::new(|r: &mut Root| r.pages[1].offset += 1),
        ),
        (
            "unlisted component",
            Box::new(|r: &mut Root| r.pages[2].component = name("other")),
        ),
        (
            "but its pages hold",
            Box::new(|r: &mut Root| {
                r.pages.pop();
            }),
        ),
        (
            "listed twice",
            Box::new(|r: &mut Root| {
                let c = r.components[0].clone();
                r.components.push(c);
            }),
        ),
    ];
    for (want, change) in cases {
        let mut root = base.clone();
        change(&mut root);
        let err = root.validate().unwrap_err().to_string();
        assert!(err.contains(want), "wanted {want:?}, got {err}");
    }
}

#[test]
fn pages_whose_entries_break_a_rule_are_refused() {
    // (what the error says, the pages, whether the root promises canonical order)
    let cases: Vec<(&str, Vec<Page>, bool)> = vec![
        (
            "listed twice",
            vec![page(
                "data",
                vec![file(b"data/a", 1, 0), file(b"data/a", 1, 512)],
            )],
            true,
        ),
        (
            "listed twice",
            vec![
                page("data", vec![file(b"data/b", 1, 0)]),
                page(
                    "data",
                    vec![file(b"data/a", 1, 512), file(b"data/b", 1, 1024)],
                ),
            ],
            false,
        ),
        (
            "out of canonical order",
            vec![page(
                "data",
                vec![file(b"data/b", 1, 0), file(b"data/a", 1, 512)],
            )],
            true,
        ),
        (
            "in a page of component",
            vec![page("data", vec![file(b"conf/a", 1, 0)])],
            true,
        ),
        (
            "below a file or link",
            vec![page(
                "data",
                vec![file(b"data/a", 1, 0), file(b"data/a/b", 1, 512)],
            )],
            true,
        ),
        (
            "below a file or link",
            vec![page(
                "data",
                vec![
                    file(b"data/a", 1, 0),
                    file(b"data/z", 1, 512),
                    file(b"data/a/b", 1, 1024),
                ],
            )],
            false,
        ),
        (
            "earlier entries below it",
            vec![page(
                "data",
                vec![file(b"data/a/b", 1, 0), file(b"data/a", 1, 512)],
            )],
            false,
        ),
        (
            "apart from the other entries",
            vec![
                page("data", vec![file(b"data/a", 1, 0)]),
                page("conf", vec![file(b"conf/a", 1, 512)]),
                page("data", vec![file(b"data/b", 1, 1024)]),
            ],
            true,
        ),
        (
            "not after the previous entry",
            vec![page(
                "data",
                vec![file(b"data/a", 1, 512), file(b"data/b", 1, 512)],
            )],
            true,
        ),
        (
            "outside its frame",
            vec![page("data", vec![file(b"data/a", 1, 1 << 20)])],
            true,
        ),
        (
            "needs a sha256",
            vec![page(
                "data",
                vec![PageEntry {
                    sha256: None,
                    ..file(b"data/a", 1, 0)
                }],
            )],
            true,
        ),
        (
            "earlier regular file",
            vec![page(
                "data",
                vec![link(b"data/a", b"data/b", 0), file(b"data/b", 1, 512)],
            )],
            true,
        ),
        (
            "earlier regular file",
            vec![page(
                "data",
                vec![
                    pe(b"data/a", EntryKind::Dir, 0),
                    link(b"data/b", b"data/a", 512),
                ],
            )],
            true,
        ),
        (
            "crosses components",
            vec![
                page("conf", vec![file(b"conf/a", 1, 0)]),
                page("data", vec![link(b"data/b", b"conf/a", 512)]),
            ],
            true,
        ),
    ];
    for (want, pages, canonical) in cases {
        let root = root_for(&pages, &key(), canonical);
        let err = refusal(&root, &pages);
        assert!(err.contains(want), "wanted {want:?}, got {err}");
    }
}

#[test]
fn a_checker_counts_pages_and_bytes() {
    let pages = good_pages();
    let root = root_for(&pages, &key(), true);
    // A page short: the checker says so at the end.
    let mut c = PageChecker::new(&root);
    c.page(&pages[0]).unwrap();
    c.page(&pages[1]).unwrap();
    let err = c.finish().unwrap_err().to_string();
    assert!(err.contains("names 3 pages but 2 were read"), "{err}");
    // A page too many.
    let mut c = PageChecker::new(&root);
    for p in &pages {
        c.page(p).unwrap();
    }
    let err = c.page(&pages[2]).unwrap_err().to_string();
    assert!(err.contains("not named by the root"), "{err}");
    // Bytes that do not add up.
    let mut wrong = root.clone();
    wrong.components[0].bytes += 1;
    let mut c = PageChecker::new(&wrong);
    for p in &pages {
        c.page(p).unwrap();
    }
    let err = c.finish().unwrap_err().to_string();
    assert!(err.contains("bytes but has"), "{err}");
    // A partial read checks the components it read whole.
    let mut c = PageChecker::new(&wrong);
    c.page_at(2, &pages[2]).unwrap();
    c.finish_partial().unwrap();
}

#[test]
fn segments_need_their_feature_parents_and_recipes_within_bounds() {
    use v2::Step;
    let pages = good_pages();
    let parent = v2::ParentRef {
        backup_id: BackupId::from_parts(1_780_000_000_000, 9),
        root_sha256: Sha256Digest::of(b"parent root"),
    };
    let mut root = root_for(&pages, &key(), true);
    root.features = vec!["segments".into()];
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("segment size exactly when"), "{err}");
    root.segment_size = Some(64 * 1024);
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("feature segments but no parent"), "{err}");
    root.features = vec!["parents".into(), "segments".into()];
    root.parents = vec![parent];
    root.validate().unwrap();
    root.segment_size = Some(1000);
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("segment size 1000 is outside"), "{err}");
    root.segment_size = Some(64 * 1024);
    let mut plain = root_for(&pages, &key(), true);
    plain.blob_bytes = 10;
    let err = plain.validate().unwrap_err().to_string();
    assert!(err.contains("blobs but not the feature segments"), "{err}");

    // A file of 100 KiB: two segments of 64 KiB.
    root.blob_bytes = 1000;
    let mut page = pages[0].clone();
    let i = page
        .entries
        .iter()
        .position(|e| e.kind == EntryKind::File && e.size > 0)
        .unwrap();
    let size = 100 * 1024;
    root.components[0].bytes += size - page.entries[i].size;
    page.entries[i].size = size;
    let data = Step::Data {
        data_in: 0,
        frame: 0,
        pos: 0,
        len: 64 * 1024,
    };
    let own = |blob, len| Step::Blob {
        data_in: None,
        blob,
        len,
    };
    let check = |page: &Page, parts: Vec<Vec<Step>>| {
        let mut page = page.clone();
        page.entries[i].parts = Some(parts);
        PageChecker::new(&root)
            .page(&page)
            .map_err(|e| e.to_string())
    };
    check(
        &page,
        vec![vec![data.clone()], vec![data.clone(), own(8, 100)]],
    )
    .unwrap();
    let refused = [
        (vec![vec![data.clone()]], "one recipe per segment"),
        (vec![vec![data.clone()], vec![]], "0 or more than"),
        (
            vec![vec![data.clone()], vec![own(8, 100), data.clone()]],
            "data step that is not a segment's base",
        ),
        (
            vec![vec![data.clone()], vec![own(990, 100)]],
            "blob outside the blob region",
        ),
        (
            vec![vec![data.clone()], vec![own(u64::MAX, 2)]],
            "blob outside the blob region",
        ),
        (
            vec![vec![data.clone()], vec![own(8, 1 << 30)]],
            "longer than a segment's frame",
        ),
        (
            vec![
                vec![data.clone()],
                vec![Step::Blob {
                    data_in: Some(1),
                    blob: 8,
                    len: 1,
                }],
            ],
            "parent the root does not name",
        ),
        (
            vec![vec![data.clone()], vec![own(8, 1); v2::MAX_STEPS + 1]],
            "0 or more than",
        ),
    ];
    for (parts, want) in refused {
        let err = check(&page, parts).unwrap_err();
        assert!(err.contains(want), "{want}: {err}");
    }
    // Only a non-empty file of this archive is stored by segments.
    let mut both = page.clone();
    both.entries[i].data_in = Some(0);
    let err = check(&both, vec![vec![data.clone()], vec![data.clone()]]).unwrap_err();
    assert!(
        err.contains("not a non-empty file of this archive"),
        "{err}"
    );
    // Without the feature, no entry is.
    let mut flat = root_for(&pages, &key(), true);
    flat.components = root.components.clone();
    let mut p = page.clone();
    p.entries[i].parts = Some(vec![vec![data.clone()], vec![data]]);
    let err = PageChecker::new(&flat).page(&p).unwrap_err().to_string();
    assert!(err.contains("archive without them"), "{err}");
    // Recipes as JSON: a step is data or a blob, nothing else.
    let json = r#"{"in":0,"frame":1,"pos":2,"len":3}"#;
    assert!(matches!(
        serde_json::from_str::<Step>(json).unwrap(),
        Step::Data { .. }
    ));
    assert!(serde_json::from_str::<Step>(r#"{"blob":8}"#).is_err());
}

#[test]
fn a_parents_page_needs_its_feature_and_a_named_parent() {
    let pages = good_pages();
    let parent = v2::ParentRef {
        backup_id: BackupId::from_parts(1_780_000_000_000, 9),
        root_sha256: Sha256Digest::of(b"parent root"),
    };
    let mut root = root_for(&pages, &key(), true);
    root.features = vec!["parents".into()];
    root.parents = vec![parent];
    // The last page becomes the parent's: the pages stored here still
    // follow one another, and the root starts where they end.
    let last = root.pages.len() - 1;
    let end = root.pages_end();
    root.pages[last].data_in = Some(0);
    root.pages[last].offset = 1_000_000;
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("with the feature parent_pages"), "{err}");
    root.features.push("parent_pages".into());
    root.validate().unwrap();
    assert!(root.pages_end() < end, "only pages stored here end here");
    assert_eq!(
        root.own_page_numbers().last().copied(),
        Some(None),
        "a parent's page has no number here"
    );
    root.pages[last].data_in = Some(1);
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("parent 1"), "{err}");
    root.pages[last].data_in = Some(0);
    root.parents.clear();
    root.features = vec!["parent_pages".into()];
    let err = root.validate().unwrap_err().to_string();
    assert!(err.contains("no parent"), "{err}");

    // In a parent's page, a folder refers to the parent (it has no tar
    // entry here); in a page of this archive it may not.
    let mut root = root_for(&pages, &key(), true);
    root.features = vec!["parents".into(), "parent_pages".into()];
    root.parents = vec![v2::ParentRef {
        backup_id: BackupId::from_parts(1_780_000_000_000, 9),
        root_sha256: Sha256Digest::of(b"parent root"),
    }];
    let mut page = pages[0].clone();
    let d = page
        .entries
        .iter()
        .position(|e| e.kind == EntryKind::Dir)
        .unwrap();
    page.entries[d].data_in = Some(0);
    let err = PageChecker::new(&root).page(&page).unwrap_err().to_string();
    assert!(err.contains("not a non-empty file"), "{err}");
    for e in &mut page.entries {
        e.data_in = Some(0);
    }
    root.pages[0].data_in = Some(0);
    PageChecker::new(&root).page(&page).unwrap();
}
