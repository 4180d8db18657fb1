//! A catalog lost or damaged is rebuilt from the store: seals verified,
//! manifests read by range (never whole archives), records identical to the
//! ones written when the backups were made.

use bytes::Bytes;
use cairn::{BackupFilter, Vault};
use cairn_archive::{ArchiveMeta, ArchiveWriter, WriterOptions};
use cairn_catalog::{BackupRecord, Catalog};
use cairn_integrity::SigningKey;
use cairn_manifest::{BackupId, ComponentName, OriginId, TargetName};
use cairn_storage::{Store, StoreOptions, layout};
use cairn_testkit::storage::S3sServer;

fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Packs a directory with one incompressible file into an archive (format 1
/// for odd `n`, as versions before format 2 wrote, and format 2 for even
/// `n`), uploads it and publishes its seal; returns the record the engine
/// would write.
async fn publish(store: &Store, key: &SigningKey, target: &str, n: u64) -> BackupRecord {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blob.bin"), noise(3 << 20, n + 1)).unwrap();
    std::fs::write(dir.path().join("note.txt"), format!("backup {n}")).unwrap();
    let target_name = TargetName::parse(target).unwrap();
    let meta = ArchiveMeta::new(target_name.clone(), OriginId::parse("org_rebuild").unwrap())
        .backup_id(BackupId::from_parts(1_795_000_000_000 + n, u128::from(n)))
        .label(format!("label-{n}"));
    let opts = WriterOptions::default()
        .threads(2)
        .format(if n.is_multiple_of(2) { 2 } else { 1 });
    let mut w = ArchiveWriter::new(Vec::new(), meta, opts).unwrap();
    w.append_dir(&ComponentName::parse("data").unwrap(), dir.path(), false)
        .unwrap();
    let done = w.finish(key).unwrap();
    let id = done.manifest.backup_id();
    let mut up = store
        .upload_archive(&target_name, &id, "tar.zst")
        .await
        .unwrap();
    up.write(Bytes::from(done.inner)).await.unwrap();
    up.finish().await.unwrap();
    store
        .publish_seal(
            &target_name,
            &id,
            "tar.zst",
            done.size,
            Bytes::from(done.seal.to_bytes()),
        )
        .await
        .unwrap();
    BackupRecord::from_sealed(
        &done.manifest,
        &done.seal,
        &layout::archive_key(&target_name, &id, "tar.zst"),
    )
}

async fn rebuild_case(url: &str, options: &StoreOptions) {
    let store = Store::open(url, options).unwrap();
    let key = SigningKey::from_seed(&[9; 32]);
    let mut written = Vec::new();
    for (target, n) in [("app", 1), ("app", 2), ("db", 3)] {
        written.push(publish(&store, &key, target, n).await);
    }
    // An abandoned upload, and a backup sealed by a key we do not trust.
    let app = TargetName::parse("app").unwrap();
    let orphan = BackupId::from_parts(1_795_000_000_100, 100);
    let mut up = store
        .upload_archive(&app, &orphan, "tar.zst")
        .await
        .unwrap();
    up.write(Bytes::from_static(b"half an archive"))
        .await
        .unwrap();
    up.finish().await.unwrap();
    let stranger = SigningKey::from_seed(&[66; 32]);
    let forged = publish(&store, &stranger, "app", 4).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let catalog = Catalog::open(&path).unwrap();
        for r in &written {
            catalog.insert_backup(r).unwrap();
        }
    }
    // The catalog is lost; the vault opened on the store rebuilds it.
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_file(dir.path().join("catalog.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("catalog.db-shm"));
    let vault = Vault::builder()
        .store(url)
        .store_options(options.clone())
        .catalog(&path)
        .signing_key(SigningKey::from_seed(&[9; 32]))
        .origin(OriginId::parse("org_rebuild").unwrap())
        .open()
        .await
        .unwrap();
    let report = vault.rebuild_catalog().await.unwrap();
    assert_eq!((report.targets, report.backups), (2, 3), "{report:?}");
    assert_eq!(report.incomplete, [(app.clone(), orphan)]);
    assert_eq!(report.invalid.len(), 1, "{report:?}");
    assert_eq!(report.invalid[0].1, forged.id);
    assert!(report.invalid[0].2.contains("seal"), "{report:?}");
    let total: u64 = written.iter().map(|r| r.archive_size.unwrap()).sum();
    assert!(
        report.archive_bytes_read * 20 < total,
        "read {} of {total} archive bytes: more than the manifests",
        report.archive_bytes_read
    );

    let mut rebuilt = vault
        .list(BackupFilter::default(), 100, None)
        .await
        .unwrap()
        .items;
    rebuilt.sort_by_key(|r| r.id);
    assert_eq!(
        rebuilt, written,
        "the rebuilt records equal the written ones"
    );

    // Backups of both formats restore and verify through the engine.
    for r in &written[..2] {
        let id = r.id.to_string();
        let out = dir.path().join(format!("restored-{id}"));
        let job = vault
            .restore(&id, cairn::RestoreRequest::new().to(&out))
            .await
            .unwrap()
            .wait()
            .await;
        assert_eq!(job.state, cairn::JobState::Succeeded, "{:?}", job.error);
        let n = r.id.unix_ms() - 1_795_000_000_000;
        assert_eq!(
            std::fs::read_to_string(out.join("data/note.txt")).unwrap(),
            format!("backup {n}")
        );
        let listed = vault.manifest(&id).await.unwrap();
        assert_eq!(u64::from(listed.version.major), 2 - (n % 2));
        assert_eq!(listed.entries.len() as u64, r.entries);
        let job = vault
            .verify(&id, cairn::VerifyTier::Full)
            .await
            .unwrap()
            .wait()
            .await;
        assert_eq!(job.state, cairn::JobState::Succeeded, "{:?}", job.error);
    }

    // Rebuilding over a live catalog keeps the operator's pins.
    let first = written[0].id.to_string();
    vault.pin(&first).await.unwrap();
    vault.rebuild_catalog().await.unwrap();
    assert!(vault.get(&first).await.unwrap().pinned);
    // A target whose objects are all gone is emptied.
    store
        .delete_backup(&TargetName::parse("db").unwrap(), &written[2].id)
        .await
        .unwrap();
    vault.rebuild_catalog().await.unwrap();
    let gone = written[2].id.to_string();
    assert_eq!(vault.get(&gone).await.unwrap_err().code(), "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("store").to_str().unwrap().to_owned();
    rebuild_case(&url, &StoreOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_s3() {
    let server = S3sServer::start("bucket").await;
    rebuild_case("s3://bucket/prefix", &server.options()).await;
}
