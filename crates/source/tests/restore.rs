//! Capture and transactional restore of a target with a directory, a file and
//! an SQLite database, on the real filesystem.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_archive::{
    ArchiveMeta, ArchiveReader, ArchiveWriter, Staged, UnpackOptions, WriterOptions,
};
use cairn_integrity::SigningKey;
use cairn_manifest::{ComponentKind, ComponentName, OriginId, TargetName};
use cairn_source::{
    CaptureOptions, ComponentSpec, Error, Hook, Replacement, RestoreItem, RestoreOptions, apply,
    capture, dry_run, recover,
};
use cairn_testkit::{TreeOptions, random_tree, snapshot};
use rusqlite::Connection;

fn name(s: &str) -> ComponentName {
    ComponentName::parse(s).unwrap()
}

struct Target {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    journals: PathBuf,
    specs: Vec<ComponentSpec>,
}

/// A service folder: `svc/data` (a random tree), `svc/app.toml`, `svc/db.sqlite`.
fn target() -> Target {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("svc");
    fs::create_dir_all(&root).unwrap();
    random_tree(&root.join("data"), 7, &TreeOptions::default().entries(30)).unwrap();
    fs::write(root.join("app.toml"), "port = 8080\n").unwrap();
    fs::set_permissions(root.join("app.toml"), fs::Permissions::from_mode(0o640)).unwrap();
    let db = Connection::open(root.join("db.sqlite")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE t(v); INSERT INTO t VALUES (1), (2), (3);",
    )
    .unwrap();
    drop(db);
    let specs = vec![
        ComponentSpec::dir(name("data"), root.join("data")),
        ComponentSpec::file(name("config"), root.join("app.toml")),
        ComponentSpec::sqlite(name("db"), root.join("db.sqlite")),
    ];
    let journals = tmp.path().join("journals");
    Target {
        _tmp: tmp,
        root,
        journals,
        specs,
    }
}

fn backup(t: &Target) -> (Vec<u8>, SigningKey) {
    let key = SigningKey::generate().unwrap();
    let meta = ArchiveMeta::new(
        TargetName::parse("svc").unwrap(),
        OriginId::parse("org_test").unwrap(),
    );
    let mut w = ArchiveWriter::new(Vec::new(), meta, WriterOptions::default()).unwrap();
    for spec in &t.specs {
        capture(&mut w, spec, &t.root, &CaptureOptions::default()).unwrap();
    }
    let done = w.finish(&key).unwrap();
    (done.inner, key)
}

/// Unpacks the archive into a staging directory beside the target's components.
/// Applies `items` with `check` before each rename, where a panic stands
/// for the process dying (no rollback runs); whether it died.
fn crashes(t: &Target, items: &[RestoreItem], check: cairn_source::StepCheck) -> bool {
    let opts = RestoreOptions {
        step_check: Some(check),
        ..RestoreOptions::default()
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        apply("r1", &t.journals, items, &opts)
    }))
    .is_err()
}

fn stage(t: &Target, archive: &[u8], key: &SigningKey) -> (Staged, Vec<RestoreItem>) {
    let staged = ArchiveReader::new(archive)
        .unwrap()
        .unpack_to_staging(&key.public_key(), &t.root, &UnpackOptions::default())
        .unwrap();
    let items = t
        .specs
        .iter()
        .map(|spec| {
            let mut p = staged.component_path(&spec.name);
            if spec.kind != ComponentKind::Dir {
                p = fs::read_dir(&p).unwrap().next().unwrap().unwrap().path();
            }
            RestoreItem {
                spec: spec.clone(),
                replacement: Replacement::Staged(p),
            }
        })
        .collect();
    (staged, items)
}

/// Everything under the target root except the staging directories.
fn state(root: &Path) -> Vec<(Vec<u8>, String)> {
    let mut out: Vec<(Vec<u8>, String)> = snapshot(root)
        .unwrap()
        .into_iter()
        .filter(|(p, _)| !p.is_empty())
        .map(|(p, n)| (p, format!("{n:?}")))
        .collect();
    // The root's own mtime changes with every rename in it; its listing must not.
    out.retain(|(p, _)| !p.starts_with(b".cairn-staging-"));
    out
}

fn db_rows(path: &Path) -> Vec<i64> {
    let c = Connection::open(path).unwrap();
    let mut s = c.prepare("SELECT v FROM t ORDER BY v").unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Changes every component after the backup, leaving a WAL beside the database.
fn damage(t: &Target) -> Connection {
    fs::write(t.root.join("app.toml"), "port = 9999\n").unwrap();
    fs::write(t.root.join("data/new-file"), "added after the backup").unwrap();
    let c = Connection::open(t.root.join("db.sqlite")).unwrap();
    c.execute_batch("PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES (42);")
        .unwrap();
    c
}

#[test]
fn round_trip_restores_every_component_and_keeps_what_it_replaced() {
    let t = target();
    let before = snapshot(&t.root.join("data")).unwrap();
    let (archive, key) = backup(&t);
    let open = damage(&t);
    assert!(
        t.root.join("db.sqlite-wal").exists(),
        "the test needs a live WAL"
    );
    let changed = snapshot(&t.root.join("data")).unwrap();

    let (staged, items) = stage(&t, &archive, &key);
    let done = apply("r1", &t.journals, &items, &RestoreOptions::default()).unwrap();
    drop(staged);
    drop(open);

    assert_eq!(snapshot(&t.root.join("data")).unwrap(), before);
    assert_eq!(
        fs::read_to_string(t.root.join("app.toml")).unwrap(),
        "port = 8080\n"
    );
    let mode = fs::metadata(t.root.join("app.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(db_rows(&t.root.join("db.sqlite")), [1, 2, 3]);
    // The replaced database moved with its WAL: it still holds the row 42.
    assert!(t.root.join("db.sqlite.before-restore-wal").exists());
    assert_eq!(
        db_rows(&t.root.join("db.sqlite.before-restore")),
        [1, 2, 3, 42]
    );
    assert_eq!(
        snapshot(&t.root.join("data.before-restore")).unwrap(),
        changed
    );
    assert_eq!(
        fs::read_to_string(t.root.join("app.toml.before-restore")).unwrap(),
        "port = 9999\n"
    );
    assert_eq!(done.kept.len(), 3);
    assert!(
        fs::read_dir(&t.journals).unwrap().next().is_none(),
        "journal removed"
    );
    let leftovers: Vec<_> = fs::read_dir(&t.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cairn"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second restore replaces the older .before-restore copies.
    damage(&t);
    let (staged, items) = stage(&t, &archive, &key);
    apply("r2", &t.journals, &items, &RestoreOptions::default()).unwrap();
    drop(staged);
    let names: Vec<String> = fs::read_dir(&t.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cairn-old"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_failure_at_the_second_component_puts_everything_back() {
    let t = target();
    let (archive, key) = backup(&t);
    let _open = damage(&t);
    let before = state(&t.root);
    let (staged, items) = stage(&t, &archive, &key);
    // Fail when the second component's new copy is about to be moved in,
    // after the first component was swapped and the second moved aside.
    let check: cairn_source::StepCheck = Arc::new(|step| {
        if step.component == "config" && step.to.ends_with("app.toml") {
            Err("injected fault".to_owned())
        } else {
            Ok(())
        }
    });
    let opts = RestoreOptions {
        step_check: Some(check),
        ..RestoreOptions::default()
    };
    let err = apply("r1", &t.journals, &items, &opts).unwrap_err();
    assert!(matches!(err, Error::Stopped(_)), "{err}");
    assert!(err.to_string().contains("injected fault"));
    drop(staged);
    assert!(state(&t.root) == before, "the target changed");
    assert!(fs::read_dir(&t.journals).unwrap().next().is_none());
}

#[test]
fn a_crash_mid_restore_is_rolled_back_from_the_journal() {
    for crash_at in [1, 3, 5, 8] {
        let t = target();
        let (archive, key) = backup(&t);
        let _open = damage(&t);
        let before = state(&t.root);
        let (staged, items) = stage(&t, &archive, &key);
        let n = Arc::new(AtomicUsize::new(0));
        let seen = n.clone();
        // A panic stands for the process dying: no rollback runs.
        let check: cairn_source::StepCheck = Arc::new(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) + 1 == crash_at {
                panic!("crash");
            }
            Ok(())
        });
        let crashed = crashes(&t, &items, check);
        assert!(crashed);
        let _ = staged.keep(); // a dead process removes nothing
        if crash_at > 1 {
            assert!(
                state(&t.root) != before,
                "crash at {crash_at} changed nothing"
            );
        }
        let recovered = recover(&t.journals, |_| true).unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].undone, crash_at - 1);
        let mut after = state(&t.root);
        after.retain(|(p, _)| !p.starts_with(b".cairn-staging-"));
        assert!(after == before, "crash at {crash_at} was not rolled back");
        assert!(recover(&t.journals, |_| true).unwrap().is_empty());
    }
}

#[test]
fn a_failing_pre_hook_aborts_before_anything_changes() {
    let t = target();
    let (archive, key) = backup(&t);
    let _open = damage(&t);
    let before = state(&t.root);
    let (staged, items) = stage(&t, &archive, &key);
    let opts = RestoreOptions {
        pre_hook: Some(Hook::new("echo stopping failed >&2; exit 3")),
        ..RestoreOptions::default()
    };
    let err = apply("r1", &t.journals, &items, &opts).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Hook {
                phase: "pre_restore",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("stopping failed"), "{text}");
    drop(staged);
    assert!(state(&t.root) == before, "the target changed");
}

#[test]
fn hooks_see_their_environment_and_time_out() {
    let t = target();
    let (archive, key) = backup(&t);
    let marker = t.root.join("hook-ran");
    let (staged, items) = stage(&t, &archive, &key);
    let opts = RestoreOptions {
        pre_hook: Some(Hook::new(format!(
            "echo \"$CAIRN_HOOK $CAIRN_TARGET\" > '{}'",
            marker.display()
        ))),
        post_hook: Some(Hook::new("sleep 30").timeout(Duration::from_millis(300))),
        hook_env: vec![("CAIRN_TARGET".into(), "svc".into())],
        ..RestoreOptions::default()
    };
    let start = Instant::now();
    let done = apply("r1", &t.journals, &items, &opts).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the hook was not killed"
    );
    drop(staged);
    assert_eq!(fs::read_to_string(&marker).unwrap(), "pre_restore svc\n");
    let post = done.post_hook_error.expect("post hook timed out");
    assert!(post.contains("did not finish"), "{post}");
}

#[test]
fn a_cancel_stops_the_pre_restore_hook_and_nothing_changes() {
    let t = target();
    let (archive, key) = backup(&t);
    let before = state(&t.root);
    let (staged, items) = stage(&t, &archive, &key);
    let asked = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&asked);
    let opts = RestoreOptions {
        pre_hook: Some(Hook::new("sleep 30")),
        // Asked to stop from the third look on, as a cancel arriving while
        // the hook runs.
        stop: Some(Arc::new(move || count.fetch_add(1, Ordering::SeqCst) >= 2)),
        ..RestoreOptions::default()
    };
    let err = apply("r1", &t.journals, &items, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Hook {
                phase: "pre_restore",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("was stopped: the restore was cancelled"),
        "{err}"
    );
    assert!(asked.load(Ordering::SeqCst) >= 3);
    drop(staged);
    assert!(state(&t.root) == before, "the target changed");
    assert!(!t.journals.join("r1.json").exists(), "no journal is left");
}

#[test]
fn a_damaged_staged_database_is_refused_before_anything_changes() {
    let t = target();
    let (archive, key) = backup(&t);
    let before = state(&t.root);
    let (staged, items) = stage(&t, &archive, &key);
    let Replacement::Staged(db) = &items[2].replacement else {
        unreachable!()
    };
    let mut bytes = fs::read(db).unwrap();
    let n = bytes.len();
    bytes[n / 2..].fill(0xA5);
    bytes[..16].copy_from_slice(b"SQLite format 3\0");
    fs::write(db, bytes).unwrap();
    let err = apply("r1", &t.journals, &items, &RestoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err}");
    drop(staged);
    assert!(state(&t.root) == before, "the target changed");
}

#[test]
fn empty_replacement_empties_the_target() {
    let t = target();
    let items: Vec<RestoreItem> = t
        .specs
        .iter()
        .map(|spec| RestoreItem {
            spec: spec.clone(),
            replacement: Replacement::Empty,
        })
        .collect();
    let preview = dry_run(
        &[],
        &t.specs
            .iter()
            .map(|s| (s.clone(), false))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(preview.create.is_empty() && preview.replace.is_empty());
    assert!(preview.delete.contains(&t.root.join("app.toml")));
    assert!(
        preview.delete.contains(&t.root.join("db.sqlite-wal"))
            || !t.root.join("db.sqlite-wal").exists()
    );
    apply("reset", &t.journals, &items, &RestoreOptions::default()).unwrap();
    assert!(fs::read_dir(t.root.join("data")).unwrap().next().is_none());
    assert!(!t.root.join("app.toml").exists());
    assert!(!t.root.join("db.sqlite").exists());
    assert!(t.root.join("app.toml.before-restore").exists());
    assert!(t.root.join("data.before-restore").is_dir());
}

#[test]
fn dry_run_reports_creates_replaces_and_deletes_and_changes_nothing() {
    let t = target();
    let (archive, key) = backup(&t);
    let open = damage(&t);
    open.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    fs::remove_file(t.root.join("app.toml")).unwrap();
    let before = state(&t.root);
    let mut entries = Vec::new();
    cairn_archive::SeekableArchive::open(
        cairn_archive::SeekSource(std::io::Cursor::new(archive.clone())),
        &key.public_key(),
        cairn_archive::ReadOptions::default(),
    )
    .unwrap()
    .for_each_entry(|e| {
        entries.push(e.clone());
        Ok(())
    })
    .unwrap();
    let items: Vec<(ComponentSpec, bool)> = t.specs.iter().map(|s| (s.clone(), true)).collect();
    let plan = dry_run(&entries, &items).unwrap();
    assert_eq!(plan.create, [t.root.join("app.toml")]);
    assert!(
        plan.delete.contains(&t.root.join("data/new-file")),
        "{plan:?}"
    );
    assert!(
        plan.delete.contains(&t.root.join("db.sqlite-wal")),
        "{plan:?}"
    );
    assert!(plan.replace.contains(&t.root.join("db.sqlite")), "{plan:?}");
    assert!(plan.unchanged >= 20, "{plan:?}");
    assert!(state(&t.root) == before, "the target changed");
}

#[test]
fn capture_refuses_missing_and_mistyped_components() {
    let t = target();
    let key = SigningKey::generate().unwrap();
    let meta = ArchiveMeta::new(
        TargetName::parse("svc").unwrap(),
        OriginId::parse("org_test").unwrap(),
    );
    let mut w = ArchiveWriter::new(Vec::new(), meta, WriterOptions::default()).unwrap();
    let cases = [
        ComponentSpec::dir(name("a"), t.root.join("app.toml")),
        ComponentSpec::file(name("b"), t.root.join("data")),
        ComponentSpec::sqlite(name("c"), t.root.join("missing.db")),
        ComponentSpec::sqlite(name("d"), t.root.join("app.toml")),
    ];
    for spec in &cases {
        let err = capture(&mut w, spec, &t.root, &CaptureOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains(spec.name.as_str()) || matches!(err, Error::Snapshot(_)),
            "{err}"
        );
    }
    drop(w.finish(&key));
}

/// Names left under the target root that start with `prefix`.
fn leftovers(root: &Path, prefix: &str) -> Vec<String> {
    fs::read_dir(root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn recovery_removes_the_staging_folder_of_a_file_component_too() {
    // One staging folder per component, as the engine stages them: a file
    // component's staged copy is two levels below its staging folder.
    let t = target();
    let (archive, key) = backup(&t);
    let _open = damage(&t);
    let config = &t.specs[1];
    let staged = ArchiveReader::new(&archive[..])
        .unwrap()
        .unpack_to_staging(
            &key.public_key(),
            &t.root,
            &UnpackOptions::default().components([config.name.clone()]),
        )
        .unwrap();
    let file = fs::read_dir(staged.component_path(&config.name))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let items = vec![RestoreItem {
        spec: config.clone(),
        replacement: Replacement::Staged(file),
    }];
    let check: cairn_source::StepCheck = Arc::new(|step| {
        if step.to.ends_with("app.toml") {
            panic!("crash before the last rename");
        }
        Ok(())
    });
    assert!(crashes(&t, &items, check));
    let _ = staged.keep(); // a dead process removes nothing
    assert_eq!(leftovers(&t.root, ".cairn-staging-").len(), 1);
    let recovered = recover(&t.journals, |_| true).unwrap();
    assert_eq!(recovered[0].undone, 1);
    assert!(!recovered[0].committed);
    assert_eq!(
        leftovers(&t.root, ".cairn-staging-"),
        Vec::<String>::new(),
        "the staging folder is left behind"
    );
    assert_eq!(
        fs::read_to_string(t.root.join("app.toml")).unwrap(),
        "port = 9999\n"
    );
}

#[test]
fn a_committed_journal_is_reported_done_not_rolled_back() {
    let t = target();
    let (archive, key) = backup(&t);
    let _open = damage(&t);
    let (staged, items) = stage(&t, &archive, &key);
    let opts = RestoreOptions {
        keep_journal: true,
        ..RestoreOptions::default()
    };
    apply("r1", &t.journals, &items, &opts).unwrap();
    drop(staged);
    let restored = state(&t.root);
    assert!(t.journals.join("r1.json").exists(), "kept until forgotten");
    // The process dies before it records the outcome: the journal stays.
    assert!(
        recover(&t.journals, |id| id != "r1").unwrap().is_empty(),
        "a live restore's journal is left alone"
    );
    let recovered = recover(&t.journals, |_| true).unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(recovered[0].committed && recovered[0].post_hook_ran);
    assert_eq!(recovered[0].undone, 0);
    assert!(state(&t.root) == restored, "a committed restore was undone");
    assert_eq!(
        fs::read_to_string(t.root.join("app.toml")).unwrap(),
        "port = 8080\n"
    );
    assert!(fs::read_dir(&t.journals).unwrap().next().is_none());

    // Once the outcome is recorded, `forget` removes the journal.
    let _open = damage(&t);
    let (staged, items) = stage(&t, &archive, &key);
    apply("r2", &t.journals, &items, &opts).unwrap();
    drop(staged);
    cairn_source::forget(&t.journals, "r2").unwrap();
    assert!(fs::read_dir(&t.journals).unwrap().next().is_none());
}

#[test]
fn noted_staging_folders_of_a_dead_restore_are_removed() {
    let t = target();
    let (archive, key) = backup(&t);
    let stage_for = |id: &str| {
        let dir = tempfile::Builder::new()
            .prefix(&cairn_source::staging_prefix(id))
            .tempdir_in(&t.root)
            .unwrap()
            .keep();
        ArchiveReader::new(&archive[..])
            .unwrap()
            .unpack(
                &key.public_key(),
                &dir.join("copy"),
                &UnpackOptions::default(),
            )
            .unwrap();
        dir
    };
    cairn_source::note_staging(&t.journals, "dead", std::slice::from_ref(&t.root)).unwrap();
    cairn_source::note_staging(&t.journals, "live", std::slice::from_ref(&t.root)).unwrap();
    let dead = stage_for("dead");
    let live = stage_for("live");
    let recovered = recover(&t.journals, |id| id == "dead").unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].id, "dead");
    assert_eq!(recovered[0].removed, vec![dead.clone()]);
    assert!(!dead.exists());
    assert!(live.exists(), "a live restore's staging folder was removed");
    assert!(t.journals.join("live.staging").exists());
    assert!(!t.journals.join("dead.staging").exists());
}
