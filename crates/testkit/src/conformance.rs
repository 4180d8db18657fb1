//! The storage conformance suite: the same checks against every backend.
//!
//! `run(store, twin, caps)` takes a store rooted in an empty bucket or
//! container and a second store opened separately on the same place (another
//! process's view: for `memory://`, a clone). Each check uses its own keys.

use std::time::Duration;

use bytes::Bytes;
use cairn_manifest::{BackupId, TargetName};
use cairn_storage::{Backend, ErrorKind, Op, Store};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};

use crate::storage::http_get;

/// What the backend under test can do.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// It presigns URLs.
    pub presigns: bool,
    /// It enforces signatures and expiry on presigned URLs (moto does not).
    pub checks_signatures: bool,
    /// Its put-if-absent is atomic under concurrent writers (s3s-fs 0.14's is
    /// not: it checks, then writes), which leases need.
    pub atomic_create: bool,
}

/// Runs every check, in order, panicking with the check's name on failure.
pub async fn run(store: &Store, twin: &Store, caps: Caps) {
    objects(store).await;
    put_if_absent(store, twin).await;
    streaming_upload_and_ranges(store).await;
    aborted_upload(store).await;
    publication(store, twin).await;
    leases(store, twin).await;
    if caps.atomic_create {
        lease_race(store, twin).await;
        break_race(store, twin).await;
    }
    signed_urls(store, caps).await;
    key_validation(store).await;
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
            (x as u8) ^ seed
        })
        .collect()
}

async fn objects(store: &Store) {
    store
        .put("obj/a", Bytes::from_static(b"alpha"))
        .await
        .expect("put");
    store
        .put("obj/b/c", Bytes::from_static(b"gamma!"))
        .await
        .expect("put");
    let info = store.head("obj/a").await.expect("head").expect("exists");
    assert_eq!((info.key.as_str(), info.size), ("obj/a", 5), "head");
    assert_eq!(
        store.get_small("obj/b/c", 100).await.expect("get"),
        "gamma!"
    );
    let big = store
        .get_small("obj/b/c", 3)
        .await
        .expect_err("over the limit");
    assert_eq!(big.op(), Op::Get);
    assert_eq!(store.head("obj/missing").await.expect("head"), None);
    let missing = store
        .get_small("obj/missing", 10)
        .await
        .expect_err("missing");
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    let text = missing.to_string();
    assert!(
        text.starts_with("get obj/missing: "),
        "errors name op and key: {text}"
    );
    let keys: Vec<String> = store
        .list("obj")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["obj/a", "obj/b/c"], "list");
    assert!(store.list("nothing/here").await.expect("list").is_empty());
    // Overwrite, delete, delete again (a missing key is fine everywhere).
    store
        .put("obj/a", Bytes::from_static(b"ALPHA2"))
        .await
        .expect("overwrite");
    assert_eq!(store.get_small("obj/a", 100).await.expect("get"), "ALPHA2");
    store.delete("obj/a").await.expect("delete");
    store
        .delete("obj/a")
        .await
        .expect("delete of a missing key succeeds");
    assert_eq!(store.head("obj/a").await.expect("head"), None);
    store.delete("obj/b/c").await.expect("delete");
}

async fn put_if_absent(store: &Store, twin: &Store) {
    store
        .put_if_absent("pia/x", Bytes::from_static(b"first"))
        .await
        .expect("first put-if-absent");
    let err = twin
        .put_if_absent("pia/x", Bytes::from_static(b"second"))
        .await
        .expect_err("second put-if-absent");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(err.op(), Op::PutIfAbsent);
    assert_eq!(store.get_small("pia/x", 100).await.expect("get"), "first");
}

async fn streaming_upload_and_ranges(store: &Store) {
    // 21 MiB in uneven chunks: several parts, a short last part.
    let data = pattern(21 * 1024 * 1024 + 12_345, 7);
    let mut upload = store.upload("up/big.bin").await.expect("upload");
    for chunk in data.chunks(1_000_003) {
        upload
            .write(Bytes::copy_from_slice(chunk))
            .await
            .expect("write");
    }
    assert_eq!(upload.size(), data.len() as u64);
    assert_eq!(
        store.head("up/big.bin").await.expect("head"),
        None,
        "invisible before finish"
    );
    let done = upload.finish().await.expect("finish");
    assert_eq!(done.size, data.len() as u64);

    let (info, mut stream) = store.get_stream("up/big.bin").await.expect("get");
    assert_eq!(info.size, data.len() as u64);
    let mut back = Vec::with_capacity(data.len());
    while let Some(chunk) = stream.next().await {
        back.extend_from_slice(&chunk.expect("chunk"));
    }
    assert!(back == data, "streamed download differs");

    let len = data.len() as u64;
    let part = 8 * 1024 * 1024u64;
    for range in [0..1, part - 3..part + 3, len - 10..len, 12345..2_000_000] {
        let got = store
            .get_range("up/big.bin", range.clone())
            .await
            .expect("range");
        let (s, e) = (range.start as usize, range.end as usize);
        assert!(got[..] == data[s..e], "range {range:?} differs");
    }
    assert!(
        store
            .get_range("up/big.bin", 5..5)
            .await
            .expect("empty")
            .is_empty()
    );
    let past = store
        .get_range("up/big.bin", len - 1..len + 10)
        .await
        .expect_err("past the end");
    assert_eq!(past.op(), Op::GetRange);
    store.delete("up/big.bin").await.expect("delete");

    // An empty object through the same path.
    let upload = store.upload("up/empty").await.expect("upload");
    upload.finish().await.expect("finish");
    assert_eq!(
        store.head("up/empty").await.expect("head").map(|i| i.size),
        Some(0)
    );
    store.delete("up/empty").await.expect("delete");
}

async fn aborted_upload(store: &Store) {
    let mut upload = store.upload("up/aborted").await.expect("upload");
    upload
        .write(Bytes::from(pattern(6 * 1024 * 1024, 1)))
        .await
        .expect("write");
    upload.abort().await.expect("abort");
    assert_eq!(store.head("up/aborted").await.expect("head"), None);
}

async fn publication(store: &Store, twin: &Store) {
    let target = TargetName::parse("app").expect("name");
    let t0 = Timestamp::now();
    let id = BackupId::from_parts(1_795_000_000_000, 1);
    let archive = Bytes::from(pattern(100_000, 3));
    let seal = Bytes::from_static(b"seal line 1\nsignature\n");

    let mut up = store
        .upload_archive(&target, &id, "tar.zst")
        .await
        .expect("upload");
    up.write(archive.clone()).await.expect("write");
    // Before the archive is complete the seal cannot be published.
    let early = store
        .publish_seal(&target, &id, "tar.zst", archive.len() as u64, seal.clone())
        .await
        .expect_err("seal before archive");
    assert_eq!(early.kind(), ErrorKind::Precondition, "{early}");
    up.finish().await.expect("finish");
    let listed = store.list_backups(&target).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].is_complete(), "no seal yet: incomplete");

    let wrong = store
        .publish_seal(&target, &id, "tar.zst", 99, seal.clone())
        .await
        .expect_err("size mismatch");
    assert_eq!(wrong.kind(), ErrorKind::Precondition, "{wrong}");
    store
        .publish_seal(&target, &id, "tar.zst", archive.len() as u64, seal.clone())
        .await
        .expect("publish");
    let again = twin
        .publish_seal(&target, &id, "tar.zst", archive.len() as u64, seal.clone())
        .await
        .expect_err("published twice");
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    assert_eq!(store.read_seal(&target, &id).await.expect("seal"), seal);
    let bad_ext = store
        .upload_archive(&target, &id, "zip")
        .await
        .expect_err("extension");
    assert_eq!(bad_ext.kind(), ErrorKind::Config);

    // An abandoned upload of another backup: incomplete, removable once old.
    let id2 = BackupId::from_parts(1_795_000_001_000, 2);
    let mut up2 = twin
        .upload_archive(&target, &id2, "tar.gz")
        .await
        .expect("upload");
    up2.write(Bytes::from_static(b"partial"))
        .await
        .expect("write");
    up2.finish().await.expect("finish");
    let listed = twin.list_backups(&target).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|b| (b.id, b.is_complete()))
            .collect::<Vec<_>>(),
        [(id, true), (id2, false)]
    );
    let targets = store.list_targets().await.expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0], target);
    let none = store
        .remove_incomplete(&target, t0 - SignedDuration::from_hours(1))
        .await
        .expect("cleanup");
    assert!(none.is_empty(), "a recent upload is left alone");
    let later = Timestamp::now() + SignedDuration::from_hours(1);
    let removed = store
        .remove_incomplete(&target, later)
        .await
        .expect("cleanup");
    assert_eq!(removed, [id2]);
    assert_eq!(
        store.list_backups(&target).await.expect("list").len(),
        1,
        "complete one kept"
    );

    store.delete_backup(&target, &id).await.expect("delete");
    assert!(store.list_backups(&target).await.expect("list").is_empty());
}

async fn leases(store: &Store, twin: &Store) {
    let target = TargetName::parse("leased").expect("name");
    let ttl = Duration::from_secs(60);
    let t0 = Timestamp::now();
    assert_eq!(store.current_lease(&target).await.expect("read"), None);
    let mut a = store
        .acquire_lease(&target, "server-a job_1", ttl, t0)
        .await
        .expect("acquire");
    let held = twin
        .acquire_lease(
            &target,
            "server-b job_2",
            ttl,
            t0 + SignedDuration::from_secs(1),
        )
        .await
        .expect_err("held");
    assert_eq!(held.kind(), ErrorKind::LeaseHeld, "{held}");
    assert!(
        held.to_string().contains("server-a job_1"),
        "names the holder: {held}"
    );

    // Renewal moves the expiry; the twin still sees the lease held.
    a.renew(t0 + SignedDuration::from_secs(50))
        .await
        .expect("renew");
    assert_eq!(a.expires_at(), t0 + SignedDuration::from_secs(110));
    let current = twin
        .current_lease(&target)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(current.holder, "server-a job_1");
    assert!(current.is_active(t0 + SignedDuration::from_secs(100)));
    assert!(
        twin.acquire_lease(
            &target,
            "server-b",
            ttl,
            t0 + SignedDuration::from_secs(100)
        )
        .await
        .is_err()
    );

    // Released: taken at once.
    a.release(t0 + SignedDuration::from_secs(101))
        .await
        .expect("release");
    let b = twin
        .acquire_lease(
            &target,
            "server-b job_3",
            ttl,
            t0 + SignedDuration::from_secs(102),
        )
        .await
        .expect("acquire after release");

    // Expired: taken over, and the old holder learns it lost the lease.
    let t_late = t0 + SignedDuration::from_secs(102 + 61);
    let c = store
        .acquire_lease(&target, "server-c job_4", ttl, t_late)
        .await
        .expect("takeover");
    let mut b = b;
    let lost = b.renew(t_late).await.expect_err("renewing a lost lease");
    assert_eq!(lost.kind(), ErrorKind::LeaseLost, "{lost}");
    assert_eq!(
        store
            .current_lease(&target)
            .await
            .expect("read")
            .expect("present")
            .holder,
        "server-c job_4"
    );
    c.release(t_late).await.expect("release");
    // Old generations are cleaned up as the lease moves on.
    let records = store.list("targets/leased/lease").await.expect("list");
    assert!(records.len() <= 2, "{} lease records left", records.len());
}

async fn lease_race(store: &Store, twin: &Store) {
    let target = TargetName::parse("raced").expect("name");
    let now = Timestamp::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            twin.clone()
        };
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            s.acquire_lease(&target, &format!("racer-{i}"), Duration::from_secs(60), now)
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(lease) => winners.push(lease.record().holder.clone()),
            Err(e) => assert_eq!(e.kind(), ErrorKind::LeaseHeld, "{e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one racer holds the lease: {winners:?}"
    );
    let current = store
        .current_lease(&target)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(current.holder, winners[0]);
}

/// A crashed holder's lease freed by its host's recovery while other hosts
/// take it over: freeing loses the race quietly (`false`), it never fails
/// (a failure made a host unable to open again after a crash).
async fn break_race(store: &Store, twin: &Store) {
    let target = TargetName::parse("broken").expect("name");
    let t0 = Timestamp::now();
    for round in 0..6u32 {
        let dead = format!("job_dead{round} backup - on host");
        let at = t0 + SignedDuration::from_secs(i64::from(round) * 10);
        let lease = store
            .acquire_lease(&target, &dead, Duration::from_secs(2), at)
            .await
            .expect("the dead job's lease");
        drop(lease);
        // Past its expiry: anyone may take it, and its host frees it.
        let later = at + SignedDuration::from_secs(3);
        let mut tasks = Vec::new();
        for i in 0..6 {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                twin.clone()
            };
            let (target, dead) = (target.clone(), dead.clone());
            tasks.push(tokio::spawn(async move {
                if i % 3 == 0 {
                    s.break_lease(&target, &dead, later).await.map(|_| None)
                } else {
                    s.acquire_lease(
                        &target,
                        &format!("taker-{i}"),
                        Duration::from_secs(5),
                        later,
                    )
                    .await
                    .map(|l| Some(l.record().holder.clone()))
                }
            }));
        }
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => {}
                Err(e) => assert_eq!(e.kind(), ErrorKind::LeaseHeld, "round {round}: {e}"),
            }
        }
        // Whoever won, the next round starts from a lapsed lease.
    }
}

async fn signed_urls(store: &Store, caps: Caps) {
    let Some(signer) = store.url_signer() else {
        assert!(!caps.presigns, "{:?} should presign", store.backend());
        assert!(matches!(store.backend(), Backend::Local | Backend::Memory));
        return;
    };
    assert!(caps.presigns);
    store
        .put("signed/file", Bytes::from_static(b"download me"))
        .await
        .expect("put");
    let now = Timestamp::now();
    let url = signer
        .get_url("signed/file", Duration::from_secs(300), now)
        .await
        .expect("sign");
    assert_eq!(url.expires_at, now + SignedDuration::from_secs(300));
    let (status, body) = http_get(&url.url).await;
    assert_eq!(
        (status, &body[..]),
        (200, &b"download me"[..]),
        "signed GET"
    );
    assert!(
        signer
            .get_url("signed/file", Duration::ZERO, now)
            .await
            .is_err()
    );
    if caps.checks_signatures {
        let tampered = url.url.replacen("signed/file", "signed/filf", 1);
        let (status, _) = http_get(&tampered).await;
        assert!(
            status == 403 || status == 404,
            "tampered URL answered {status}"
        );
        let short = signer
            .get_url("signed/file", Duration::from_secs(1), Timestamp::now())
            .await
            .expect("sign");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (status, _) = http_get(&short.url).await;
        assert_eq!(status, 403, "an expired URL must be refused");
    }
    store.delete("signed/file").await.expect("delete");
}

async fn key_validation(store: &Store) {
    for bad in ["", "/abs", "a//b", "trailing/", "a/../b"] {
        let err = store
            .put(bad, Bytes::from_static(b"x"))
            .await
            .expect_err("invalid key");
        assert_eq!(err.kind(), ErrorKind::Config, "{bad:?}: {err}");
    }
}
