//! The engine's surface as an embedder uses it, importing only `cairn`:
//! archives streamed out whole and by range, a downloaded copy verified,
//! jobs followed in this vault and from another, observers told of every
//! job, and a shutdown that lets jobs finish or cancels them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn::{
    BackupRequest, ComponentName, ComponentSpec, ErrorKind, Hook, Job, JobObserver, JobState,
    OriginId, RestoreRequest, SigningKey, TargetConfig, TargetName, Vault,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// A target `svc` with one folder, `data/`, on a local store.
struct Site {
    tmp: tempfile::TempDir,
    key: SigningKey,
}

impl Site {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("svc")).unwrap();
        cairn_testkit::random_tree(
            &tmp.path().join("svc/data"),
            5,
            &cairn_testkit::TreeOptions::default().entries(30),
        )
        .unwrap();
        Self {
            tmp,
            key: SigningKey::generate().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("svc/data")
    }

    fn builder(&self, target: TargetConfig) -> cairn::VaultBuilder {
        Vault::builder()
            .store(self.tmp.path().join("store").to_str().unwrap())
            .catalog(self.tmp.path().join("state/catalog.db"))
            .signing_key(SigningKey::from_pkcs8_pem(&self.key.to_pkcs8_pem().unwrap()).unwrap())
            .origin(OriginId::parse("org_surface").unwrap())
            .target(target)
    }

    fn target(&self) -> TargetConfig {
        TargetConfig::new(TargetName::parse("svc").unwrap()).component(ComponentSpec::dir(
            ComponentName::parse("data").unwrap(),
            self.data(),
        ))
    }

    async fn vault(&self) -> Vault {
        self.builder(self.target()).open().await.unwrap()
    }
}

/// A vault whose target runs `hook` before each restore (so that a restore
/// is seen running), and a backup of it.
async fn hooked(site: &Site, hook: &str) -> (Vault, String) {
    let vault = site
        .builder(site.target().pre_restore(Hook::new(hook)))
        .open()
        .await
        .unwrap();
    let id = backed_up(&vault).await;
    (vault, id)
}

/// A confirmed in-place restore of `id`, started.
async fn restoring(vault: &Vault, id: &str) -> cairn::JobHandle {
    vault
        .restore(id, RestoreRequest::new().confirm())
        .await
        .unwrap()
}

async fn backed_up(vault: &Vault) -> String {
    let job = vault
        .backup("svc", BackupRequest::new())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    job.result.unwrap().backup_id().unwrap().to_owned()
}

async fn bytes_of(vault: &Vault, id: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let mut stream = vault.open_archive(id, range).await.unwrap();
    let mut all = Vec::new();
    while let Some(piece) = stream.next().await {
        all.extend_from_slice(&piece.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_streams_out_whole_or_by_range_and_a_copy_verifies() {
    let site = Site::new();
    let vault = site.vault().await;
    let id = backed_up(&vault).await;
    let record = vault.get(&id).await.unwrap();

    let stream = vault.open_archive(&id, None).await.unwrap();
    assert_eq!(stream.size, record.archive_size);
    assert_eq!(stream.range, Some(0..record.archive_size.unwrap()));
    assert!(!stream.assembled);
    assert_eq!(stream.sha256, record.archive_sha256);
    drop(stream);
    let whole = bytes_of(&vault, &id, None).await;
    assert_eq!(whole.len() as u64, record.archive_size.unwrap());
    assert_eq!(
        Some(hex(&Sha256::digest(&whole))),
        record.archive_sha256,
        "the stream is the sealed archive"
    );
    let size = whole.len() as u64;
    let part = bytes_of(&vault, &id, Some(10..size - 7)).await;
    assert_eq!(part, whole[10..whole.len() - 7]);
    assert_eq!(
        bytes_of(&vault, &id, Some(size - 1..size)).await,
        whole[whole.len() - 1..]
    );

    for bad in [5..5, 0..size + 1, size..size + 2] {
        let e = vault
            .open_archive(&id, Some(bad.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{bad:?}: {e}");
        assert!(e.to_string().contains(&format!("{size} bytes")), "{e}");
    }
    let e = vault.open_archive("bkp_none", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // The downloaded copy checks out with the vault's keys or the one given,
    // and a copy with one byte changed, or checked against another key, does not.
    let copy = site.tmp.path().join("copy.tar.zst");
    std::fs::write(&copy, &whole).unwrap();
    let checked = vault.verify_file(&copy, None).await.unwrap();
    assert_eq!(checked.backup_id, id);
    assert_eq!(checked.target, "svc");
    assert_eq!(checked.size, size);
    assert!(checked.entries > 30, "{checked:?}");
    assert!(!checked.seal_checked);
    assert_eq!(checked.signer, vault.public_key().key_id().to_string());
    vault
        .verify_file(&copy, Some(vault.public_key()))
        .await
        .unwrap();
    let other = SigningKey::generate().unwrap().public_key();
    let e = vault.verify_file(&copy, Some(other)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VerificationFailed, "{e}");
    let mut damaged = whole.clone();
    damaged[whole.len() / 2] ^= 0x20;
    std::fs::write(&copy, &damaged).unwrap();
    let e = vault.verify_file(&copy, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VerificationFailed, "{e}");
    let e = vault
        .verify_file(&site.tmp.path().join("absent.tar.zst"), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every change of job `id` until it ends, as `follow` yields them.
async fn followed(vault: &Vault, id: &str) -> Vec<Job> {
    vault
        .follow(id)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await
}

/// States in the order a job goes through them.
fn rank(state: JobState) -> u8 {
    match state {
        JobState::Queued => 0,
        JobState::Running => 1,
        _ => 2,
    }
}

fn assert_followed(changes: &[Job]) {
    let last = changes.last().expect("at least the job as it is");
    assert_eq!(last.state, JobState::Succeeded, "{last:?}");
    assert!(
        changes[..changes.len() - 1]
            .iter()
            .all(|j| !j.state.is_terminal()),
        "only the last change is an end"
    );
    for pair in changes.windows(2) {
        assert_ne!(pair[0], pair[1], "each item is a change");
        assert!(rank(pair[0].state) <= rank(pair[1].state));
        assert!(pair[0].progress.processed_bytes <= pair[1].progress.processed_bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_followed_until_it_ends_here_and_from_another_vault() {
    let site = Site::new();
    let (vault, id) = hooked(&site, "sleep 1").await;
    let restore = restoring(&vault, &id).await;
    let here = followed(&vault, restore.id()).await;
    assert_followed(&here);
    assert_eq!(here.last().unwrap().kind, cairn::JobKind::Restore);

    // Another vault on the same catalog has no live channel to the job: it
    // follows it through the catalog.
    let restore = restoring(&vault, &id).await;
    let other = site.vault().await;
    assert!(restore.is_live());
    assert!(
        !other.job(restore.id()).await.unwrap().is_live(),
        "another vault's handle is a snapshot"
    );
    let there = followed(&other, restore.id()).await;
    assert_followed(&there);
    assert!(
        there.iter().any(|j| j.state == JobState::Running),
        "seen running: {there:?}"
    );
    assert_eq!(
        there.last().unwrap().finished_at,
        restore.wait().await.finished_at
    );

    // An ended job yields itself once; an unknown one is not found.
    let again: Vec<_> = vault.follow(&here[0].id).await.unwrap().collect().await;
    assert_eq!(again.len(), 1);
    let Err(e) = vault.follow("job_none").await else {
        panic!("an unknown job was followed")
    };
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// Keeps what it is told.
#[derive(Debug, Default)]
struct Seen {
    started: Mutex<Vec<Job>>,
    ended: Mutex<Vec<Job>>,
}

impl JobObserver for Seen {
    fn started(&self, job: &Job) {
        self.started.lock().unwrap().push(job.clone());
    }
    fn ended(&self, job: &Job) {
        self.ended.lock().unwrap().push(job.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_hears_every_job_start_and_end_before_its_waiters() {
    let site = Site::new();
    let seen = Arc::new(Seen::default());
    let vault = site
        .builder(site.target())
        .observe(Arc::clone(&seen) as _)
        .open()
        .await
        .unwrap();
    let id = backed_up(&vault).await;
    // The end is told before `wait` returns.
    assert_eq!(seen.ended.lock().unwrap().len(), 1);
    let verified = vault.verify(&id, cairn::VerifyTier::Quick).await.unwrap();
    let verified = verified.wait().await;
    let refused = vault
        .restore(&id, RestoreRequest::new())
        .await
        .expect_err("a restore without confirm is refused before it is a job");
    assert_eq!(refused.kind(), ErrorKind::Invalid);

    let started = seen.started.lock().unwrap().clone();
    let ended = seen.ended.lock().unwrap().clone();
    assert_eq!(
        started.iter().map(|j| j.kind).collect::<Vec<_>>(),
        [cairn::JobKind::Backup, cairn::JobKind::Verify]
    );
    assert!(started.iter().all(|j| !j.state.is_terminal()));
    assert_eq!(ended.len(), 2);
    assert_eq!(ended[1], verified, "the end told is the job's end");
    assert_eq!(
        ended[0]
            .result
            .as_ref()
            .and_then(cairn::JobResult::backup_id),
        Some(id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_jobs_finish_within_its_grace_then_refuses_new_ones() {
    let site = Site::new();
    let (vault, id) = hooked(&site, "sleep 1").await;
    let restore = restoring(&vault, &id).await;
    let report = vault.shutdown(Duration::from_secs(60)).await;
    assert_eq!((report.finished, report.cancelled, report.left), (1, 0, 0));
    assert_eq!(restore.status().state, JobState::Succeeded);
    let e = vault
        .backup("svc", BackupRequest::new())
        .await
        .expect_err("no job starts after a shutdown");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // Reads still answer.
    assert_eq!(vault.get(&id).await.unwrap().id.to_string(), id);
    // With nothing running, a shutdown has nothing to do.
    assert_eq!(
        vault.shutdown(Duration::ZERO).await,
        cairn::Shutdown::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_cancels_what_outlives_its_grace_and_the_restore_undoes_itself() {
    let site = Site::new();
    let (vault, id) = hooked(&site, "sleep 60").await;
    let before = cairn_testkit::snapshot(&site.data()).unwrap();
    std::fs::write(site.data().join("changed-after-backup"), "kept").unwrap();
    let changed = cairn_testkit::snapshot(&site.data()).unwrap();
    assert_ne!(before, changed);
    let restore = restoring(&vault, &id).await;
    let report = vault.shutdown(Duration::from_millis(300)).await;
    assert_eq!((report.finished, report.cancelled, report.left), (0, 1, 0));
    let job = restore.wait().await;
    assert_eq!(job.state, JobState::Cancelled, "{job:?}");
    assert_eq!(
        cairn_testkit::snapshot(&site.data()).unwrap(),
        changed,
        "a cancelled restore leaves the target as it was"
    );
}
