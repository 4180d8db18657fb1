//! Properties checked by the fuzz targets, as plain functions so that the stable
//! smoke test (`tests/smoke.rs`) runs the very same checks without libFuzzer.
//!
//! Each property panics when violated; a fuzzer reports the panic with its input.

use std::io::Cursor;
use std::path::Path;

use arbitrary::Arbitrary;
use cairn_archive::{
    ArchiveMeta, ArchiveReader, ArchiveWriter, EntryMeta, IngestOptions, ReadOptions, SeekSource,
    SeekableArchive, UnpackOptions, WriterOptions, ingest,
};
use cairn_integrity::SigningKey;
use cairn_manifest::v2::PageEncoder;
use cairn_manifest::{
    BackupId, ComponentKind, ComponentName, DEFAULT_MAX_MANIFEST_BYTES, EntryKind, EntryPath,
    Mtime, OriginId, Page, PageChecker, PageRef, Root, TargetName, UnverifiedManifest,
    UnverifiedRoot, parse_document, parse_unauthenticated,
};

fn key() -> SigningKey {
    SigningKey::from_seed(&[0x42; 32])
}

fn meta() -> ArchiveMeta {
    ArchiveMeta::new(
        TargetName::parse("fuzz").expect("valid"),
        OriginId::parse("org_fuzz").expect("valid"),
    )
    .backup_id(BackupId::from_parts(1, 1))
}

/// Manifest parsing: never panics; whatever parses re-serialises to JSON that
/// parses to the same manifest; nothing unsigned verifies; every accepted path is
/// safe to join.
pub fn manifest_parse(data: &[u8]) {
    if let Ok(m) = parse_unauthenticated(data) {
        let again = serde_json::to_vec(&m).expect("a parsed manifest serialises");
        let back = parse_unauthenticated(&again).expect("re-serialised manifest parses");
        assert_eq!(back, m, "manifest JSON round trip changed it");
        let _ = m.validate();
        for e in &m.entries {
            assert!(
                e.path
                    .components()
                    .all(|c| !c.is_empty() && c != b"." && c != b"..")
            );
        }
    }
    if let Ok(u) = UnverifiedManifest::parse(data.to_vec(), &[0u8; 64], DEFAULT_MAX_MANIFEST_BYTES)
    {
        assert!(
            u.verify(&key().public_key()).is_err(),
            "a zero signature verified"
        );
    }
    if let Ok(p) = EntryPath::parse(data) {
        assert!(!p.as_bytes().starts_with(b"/"));
        assert!(
            p.components()
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
        );
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = s.parse::<Mtime>()
    {
        assert_eq!(t.to_string().parse::<Mtime>().expect("reparse"), t);
    }
}

/// Archive reading: arbitrary bytes (raw, or compressed as one zstd frame) never
/// panic and never verify, streaming or seeking.
pub fn archive_read(data: &[u8]) {
    let public = key().public_key();
    let compressed = zstd::bulk::compress(data, 1).expect("compress");
    for input in [data, &compressed[..]] {
        let opts = ReadOptions::default().threads(2);
        let r = ArchiveReader::with_options(input, opts.clone()).and_then(|r| r.verify(&public));
        assert!(r.is_err(), "arbitrary bytes verified");
        if let Ok(mut s) = SeekableArchive::open(SeekSource(Cursor::new(input)), &public, opts) {
            panic!(
                "arbitrary bytes opened as an archive: {s:?} {:?}",
                s.verify_full(&public)
            );
        }
    }
}

/// One raw tar entry for [`unpack`].
#[derive(Debug, Arbitrary)]
pub struct RawEntry {
    /// Path bytes.
    pub path: Vec<u8>,
    /// Type flag.
    pub kind: u8,
    /// Link name.
    pub link: Vec<u8>,
    /// Data.
    pub data: Vec<u8>,
}

/// A ustar header with a valid checksum and whatever fields it is given.
pub fn raw_header(path: &[u8], typ: u8, size: usize, link: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    let n = path.len().min(100);
    h[..n].copy_from_slice(&path[..n]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = typ;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Builds a plain tar stream from raw entries.
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut tar = Vec::new();
    for e in entries.iter().take(64) {
        let data = &e.data[..e.data.len().min(4096)];
        let typ = b"0125346xLK"[usize::from(e.kind) % 10];
        tar.extend_from_slice(&raw_header(&e.path, typ, data.len(), &e.link));
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Unpacking hostile tar streams: always refused (there is no valid manifest),
/// never writes outside the destination's parent, never leaves a staging
/// directory behind. Ingesting them either fails or yields an archive that
/// verifies and unpacks.
pub fn unpack(entries: &[RawEntry]) {
    let tar = raw_tar(entries);
    let archive = zstd::bulk::compress(&tar, 1).expect("compress");
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    std::fs::write(tmp.path().join("victim"), b"original").expect("write");
    let dest = work.join("dest");
    let public = key().public_key();
    let r = ArchiveReader::new(&archive[..])
        .and_then(|r| r.unpack(&public, &dest, &UnpackOptions::default()));
    assert!(r.is_err(), "an unsigned archive unpacked");
    assert!(!dest.exists(), "destination created");
    assert!(
        listing(&work).is_empty(),
        "something left in the work directory: {:?}",
        listing(&work)
    );
    assert_eq!(listing(tmp.path()), vec!["victim", "work"]);
    assert_eq!(
        std::fs::read(tmp.path().join("victim")).expect("read"),
        b"original"
    );

    if let Ok(done) = ingest(
        &tar[..],
        Vec::new(),
        meta(),
        &key(),
        &IngestOptions::default(),
    ) {
        let out = work.join("ingested");
        ArchiveReader::new(&done.archive.inner[..])
            .and_then(|r| r.unpack(&public, &out, &UnpackOptions::default()))
            .expect("an ingested archive unpacks");
        assert_eq!(listing(tmp.path()), vec!["victim", "work"]);
    }
}

/// One file for [`roundtrip`].
#[derive(Debug, Arbitrary)]
pub struct File {
    /// Name, restricted to a safe alphabet by [`roundtrip`].
    pub name: Vec<u8>,
    /// Content.
    pub data: Vec<u8>,
    /// Mode bits.
    pub mode: u16,
    /// Seconds and nanoseconds of the modification time.
    pub mtime: (i32, u32),
}

/// Writing then reading gives back exactly what was written, by every read path.
pub fn roundtrip(files: &[File], gzip: bool) {
    for format in [1, 2] {
        roundtrip_in(files, gzip, format);
    }
}

fn roundtrip_in(files: &[File], gzip: bool, format: u32) {
    let key = key();
    let opts = WriterOptions::default()
        .codec(if gzip {
            cairn_manifest::Codec::Gzip
        } else {
            cairn_manifest::Codec::Zstd
        })
        .frame_size(64 * 1024)
        .threads(2)
        .format(format);
    let mut w = ArchiveWriter::new(Vec::new(), meta(), opts).expect("writer");
    let comp = ComponentName::parse("data").expect("valid");
    w.begin_component(&comp, ComponentKind::Dir, false)
        .expect("component");
    let mut written = Vec::new();
    for (i, f) in files.iter().take(32).enumerate() {
        let mut name = format!("f{i}-").into_bytes();
        name.extend(
            f.name
                .iter()
                .take(40)
                .map(|b| if *b == b'/' || *b == 0 { b'_' } else { *b }),
        );
        let path = EntryPath::parse(&[b"data/".as_slice(), &name].concat()).expect("safe name");
        let mtime = Mtime::new(i64::from(f.mtime.0), f.mtime.1 % 1_000_000_000);
        let meta = EntryMeta::new(u32::from(f.mode) & 0o7777, mtime);
        w.append_data(&path, meta, f.data.len() as u64, &mut &f.data[..], None)
            .expect("append");
        written.push((path, meta, f.data.clone()));
    }
    let done = w.finish(&key).expect("finish");
    let public = key.public_key();
    let v = ArchiveReader::new(&done.inner[..])
        .and_then(|r| r.verify(&public))
        .expect("verifies");
    v.check_seal(&done.seal).expect("seal");
    assert_eq!(v.manifest.v2().is_some(), format == 2);
    let mut s = SeekableArchive::open(
        SeekSource(Cursor::new(&done.inner[..])),
        &public,
        ReadOptions::default(),
    )
    .expect("opens");
    let mut entries = Vec::new();
    s.for_each_entry(|e| {
        entries.push(e.clone());
        Ok(())
    })
    .expect("lists");
    assert_eq!(entries.len(), written.len());
    for (e, (path, meta, data)) in entries.iter().zip(&written) {
        assert_eq!(&e.path, path);
        assert_eq!(e.kind, EntryKind::File);
        assert_eq!(
            (e.mode, e.mtime, e.size),
            (meta.mode, meta.mtime, data.len() as u64)
        );
    }
    for (path, _, data) in &written {
        let mut out = Vec::new();
        s.read_file(path, &mut out).expect("reads");
        assert_eq!(&out, data);
    }
    s.verify_full(&public).expect("full verification");
}

/// Root parsing (format 2): never panics; whatever parses re-serialises to
/// JSON that parses to the same root; validating it never panics; nothing
/// unsigned verifies.
pub fn root_parse(data: &[u8]) {
    if let Ok(r) = parse_document::<Root>(data) {
        let again = serde_json::to_vec(&r).expect("a parsed root serialises");
        let back = parse_document::<Root>(&again).expect("re-serialised root parses");
        assert_eq!(back, r, "root JSON round trip changed it");
        let _ = r.validate();
    }
    if let Ok(u) = UnverifiedRoot::parse(data.to_vec(), &[0u8; 64], DEFAULT_MAX_MANIFEST_BYTES) {
        assert!(
            u.verify(&key().public_key()).is_err(),
            "a zero signature verified"
        );
    }
}

/// Page parsing (format 2): a page that parses re-encodes (as a whole and
/// entry by entry) to bytes that parse to the same page; checked against a
/// root made for it, in either order mode, a page the checker accepts has no
/// path twice, only entries of its component, and nothing below a file or a
/// link.
pub fn page_parse(data: &[u8]) {
    let Ok(page) = Page::decode(data) else {
        return;
    };
    let bytes = page.encode().expect("a parsed page encodes");
    assert_eq!(Page::decode(&bytes).expect("re-encoded page parses"), page);
    let mut enc = PageEncoder::default();
    let pushed = page
        .entries
        .iter()
        .try_for_each(|e| enc.push(&page.component, e));
    if pushed.is_ok()
        && let Some((_, n, streamed)) = enc.take()
    {
        assert_eq!(n as usize, page.entries.len());
        assert_eq!(streamed, bytes, "the encoder and encode disagree");
    }
    for canonical in [true, false] {
        let root = root_for(&page, &bytes, canonical);
        if root.validate().is_err() {
            continue;
        }
        let named = &root.pages[0];
        let Ok(parsed) = Page::parse(&bytes, named, 0) else {
            panic!("a page does not parse against the root made for it");
        };
        let mut c = PageChecker::new(&root);
        if c.page(&parsed).is_err() || c.finish().is_err() {
            continue;
        }
        let mut seen = std::collections::HashSet::new();
        for e in &page.entries {
            assert!(seen.insert(e.path.as_bytes().to_vec()), "a path twice");
            assert_eq!(e.path.first(), page.component.as_str().as_bytes());
            let below_leaf = page.entries.iter().any(|o| {
                o.kind != EntryKind::Dir
                    && e.path.as_bytes().len() > o.path.as_bytes().len()
                    && e.path.as_bytes().starts_with(o.path.as_bytes())
                    && e.path.as_bytes()[o.path.as_bytes().len()] == b'/'
            });
            assert!(!below_leaf, "an entry below a file or link");
        }
    }
}

/// A root naming `page` alone, with totals that add up and one frame that
/// holds every position the page names.
fn root_for(page: &Page, bytes: &[u8], canonical: bool) -> Root {
    let target = TargetName::parse("fuzz").expect("valid");
    let raw_size = page
        .entries
        .iter()
        .map(|e| e.pos.saturating_add(1))
        .max()
        .unwrap_or(1);
    Root {
        format: cairn_manifest::FORMAT_TAG.to_owned(),
        version: cairn_manifest::v2::VERSION,
        backup_id: BackupId::from_parts(1, 1),
        target: target.clone(),
        kind: cairn_manifest::BackupKind::Manual,
        label: None,
        description: None,
        created_at: jiff::Timestamp::UNIX_EPOCH,
        duration_ms: 0,
        origin: cairn_manifest::Origin {
            target,
            origin_id: OriginId::parse("org_fuzz").expect("valid"),
            hostname: None,
            model: None,
            serial: None,
            software_version: "fuzz".into(),
        },
        compression: cairn_manifest::Compression {
            codec: cairn_manifest::Codec::Zstd,
            level: 3,
            frame_size: 1 << 20,
        },
        signer: key().key_id(),
        components: vec![cairn_manifest::Component {
            name: page.component.clone(),
            kind: ComponentKind::Dir,
            optional: false,
            entries: page.entries.len() as u64,
            bytes: page
                .entries
                .iter()
                .fold(0u64, |a, e| a.saturating_add(e.size)),
        }],
        canonical_order: canonical,
        pages: vec![PageRef {
            component: page.component.clone(),
            entries: u32::try_from(page.entries.len()).unwrap_or(u32::MAX),
            sha256: cairn_integrity::Sha256Digest::of(bytes),
            offset: 10,
            size: 10,
            data_in: None,
        }],
        frames: vec![cairn_manifest::Frame {
            offset: 0,
            size: 10,
            raw_offset: 0,
            raw_size,
        }],
        skipped: vec![],
        warnings: vec![],
        source: None,
        features: vec![],
        parents: Vec::new(),
        segment_size: None,
        blob_bytes: 0,
    }
}

/// Policy parsing: TOML or JSON text never panics; a policy that parses writes
/// itself out as TOML that parses back to the same policy.
pub fn policy_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = [
        cairn_retention::Policy::from_toml_str(text),
        cairn_retention::Policy::from_json_str(text),
    ];
    for policy in parsed.into_iter().flatten() {
        let again = cairn_retention::Policy::from_toml_str(&policy.to_toml_string())
            .expect("a written policy parses");
        assert_eq!(again, policy, "policy TOML round trip changed it");
    }
    let _ = cairn_retention::ScheduleRules::from_toml_str(text);
}

/// One backup of a fuzzed history.
#[derive(Debug, Arbitrary)]
pub struct FuzzBackup {
    /// Minutes after the history's start.
    pub minute: u32,
    /// 0 ready, 1 failed, 2 in progress (modulo 3).
    pub status: u8,
    /// Pinned.
    pub pinned: bool,
    /// Leased.
    pub leased: bool,
    /// Soft-deleted this many minutes after creation.
    pub deleted_after: Option<u16>,
}

/// A fuzzed policy and history.
#[derive(Debug, Arbitrary)]
pub struct PlanInput {
    /// `keep_last` and the five period counts.
    pub counts: [u8; 6],
    /// `keep_within`, in hours.
    pub within_hours: Option<u16>,
    /// `min_keep`.
    pub min_keep: u8,
    /// Grace periods, in hours.
    pub graces: (u8, u8),
    /// Time zone choice.
    pub zone: u8,
    /// The backups.
    pub backups: Vec<FuzzBackup>,
    /// Minutes after the history's start.
    pub now: u32,
}

/// Planning: pinned, leased and the newest ready backup are never evicted,
/// every backup gets a decision with a reason, and re-planning after applying
/// the plan deletes nothing more.
pub fn retention_plan(input: &PlanInput) {
    use cairn_retention::{Action, Backup, BackupStatus, Period, Policy};
    use jiff::{SignedDuration, Timestamp};
    let start = 1_767_225_600i64; // 2026-01-01T00:00:00Z
    // Ten years of minutes keeps every instant (and grace end) in jiff's range.
    let at =
        |minute: i64| Timestamp::from_second(start + (minute % 5_256_000) * 60).expect("in range");
    let zones = [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe",
    ];
    let [last, periods @ ..] = input.counts;
    let mut policy = Policy::default()
        .with_keep_last(u32::from(last))
        .with_min_keep(u32::from(input.min_keep))
        .with_keep_within(
            input
                .within_hours
                .map(|h| SignedDuration::from_hours(h.into())),
        )
        .expect("bounded")
        .with_failed_grace(SignedDuration::from_hours(input.graces.0.into()))
        .expect("bounded")
        .with_deleted_grace(SignedDuration::from_hours(input.graces.1.into()))
        .expect("bounded")
        .with_timezone(zones[usize::from(input.zone) % zones.len()])
        .expect("known zone");
    for (period, n) in Period::ALL.into_iter().zip(periods) {
        policy = policy.with_keep_period(period, u32::from(n));
    }
    let backups: Vec<Backup> = input
        .backups
        .iter()
        .enumerate()
        .map(|(i, b)| Backup {
            id: format!("b{i}"),
            created_at: at(i64::from(b.minute)),
            status: BackupStatus::ALL[usize::from(b.status) % BackupStatus::ALL.len()],
            pinned: b.pinned,
            leases: if b.leased {
                vec![format!("job {i}")]
            } else {
                Vec::new()
            },
            deleted_at: b
                .deleted_after
                .map(|d| at(i64::from(b.minute) + i64::from(d))),
            parents: Vec::new(),
        })
        .collect();
    let now = at(i64::from(input.now));
    let plan = policy.plan(&backups, now).expect("ids are unique");
    assert_eq!(plan.decisions.len(), backups.len());
    for b in &backups {
        let d = plan.get(&b.id).expect("every backup has a decision");
        assert!(!d.reasons.is_empty());
        if b.pinned || !b.leases.is_empty() {
            assert!(!d.action.evicts(), "protected backup evicted: {d:?}");
        }
    }
    let after: Vec<Backup> = backups
        .iter()
        .filter_map(|b| match plan.get(&b.id).map(|d| d.action) {
            Some(Action::Purge) => None,
            Some(Action::Delete) => Some(Backup {
                deleted_at: Some(now),
                ..b.clone()
            }),
            _ => Some(b.clone()),
        })
        .collect();
    let again = policy.plan(&after, now).expect("ids are unique");
    assert_eq!(
        again.with_action(Action::Delete).count(),
        0,
        "plan not idempotent"
    );
}

/// A fuzzed job life: its kind and a sequence of (event, seconds later).
#[derive(Debug, Arbitrary)]
pub struct JobInput {
    /// Index into the job kinds.
    pub kind: u8,
    /// Events with a clock step (may be negative).
    pub steps: Vec<(FuzzEvent, i16)>,
}

/// A fuzzed job event.
#[derive(Debug, Arbitrary)]
pub enum FuzzEvent {
    /// Start.
    Start,
    /// Progress with optional fields.
    Progress(
        Option<u8>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
    ),
    /// Succeed.
    Succeed,
    /// Fail, partially or not.
    Fail(bool),
    /// Cancel request.
    CancelRequest,
    /// Cancelled.
    Cancelled,
    /// Timeout.
    Timeout,
    /// Interrupted.
    Interrupted,
    /// Interrupted after the commit point, with or without something missed.
    InterruptedAfterCommit(bool),
}

/// Job transitions: terminal states are final, progress never goes backwards,
/// percent stays in 0..=100 and reaches 100 only on success, the stored form
/// round-trips.
pub fn job_events(input: &JobInput) {
    use cairn_job::{Event, Job, JobError, JobKind, JobState, Phase, ProgressUpdate};
    use jiff::{SignedDuration, Timestamp};
    let kind = JobKind::ALL[usize::from(input.kind) % JobKind::ALL.len()];
    let mut now = Timestamp::from_second(1_795_000_000).expect("in range");
    let mut job = Job::new("job", kind, "app", now);
    let phases = [
        Phase::Preparing,
        Phase::Archiving,
        Phase::Verifying,
        Phase::Hooks,
    ];
    for (event, dt) in &input.steps {
        now = now
            .checked_add(SignedDuration::from_secs(i64::from(*dt) * 7))
            .expect("in range");
        let event = match *event {
            FuzzEvent::Start => Event::Start,
            FuzzEvent::Progress(phase, tf, pf, tb, pb) => Event::Progress(ProgressUpdate {
                phase: phase.map(|p| phases[usize::from(p) % phases.len()]),
                total_files: tf,
                processed_files: pf,
                total_bytes: tb,
                processed_bytes: pb,
            }),
            FuzzEvent::Succeed => Event::Succeed { result: None },
            FuzzEvent::Fail(partial) => Event::Fail {
                error: JobError::new("fuzz", "failed"),
                partial,
            },
            FuzzEvent::CancelRequest => Event::CancelRequest,
            FuzzEvent::Cancelled => Event::Cancelled,
            FuzzEvent::Timeout => Event::Timeout,
            FuzzEvent::Interrupted => Event::Interrupted,
            FuzzEvent::InterruptedAfterCommit(missed) => {
                Event::InterruptedAfterCommit(cairn_job::Committed {
                    done: "in place".to_owned(),
                    missed: missed.then(|| "a hook".to_owned()),
                })
            }
        };
        match job.apply(&event, now) {
            Ok(next) => {
                assert!(!job.state.is_terminal(), "left a terminal state");
                assert!(next.progress.processed_bytes >= job.progress.processed_bytes);
                assert!(next.progress.processed_files >= job.progress.processed_files);
                assert!(next.progress.percent >= job.progress.percent);
                assert!(next.progress.percent <= 100);
                assert!(next.progress.percent < 100 || next.state == JobState::Succeeded);
                assert!(next.updated_at >= job.updated_at);
                assert_eq!(next.finished_at.is_some(), next.state.is_terminal());
                job = next;
            }
            Err(e) => assert_eq!(e.from, job.state),
        }
    }
    let json = serde_json::to_string(&job).expect("serialises");
    assert_eq!(serde_json::from_str::<Job>(&json).expect("parses"), job);
}
