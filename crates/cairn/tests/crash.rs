//! A backup process killed with SIGKILL in the middle of its upload leaves no
//! ready backup; the next open reports the job as interrupted, frees its
//! lease and removes what it left in the store.
//!
//! The test runs itself again as the child (`child_process_backs_up`, ignored
//! unless `CAIRN_CRASH_DIR` is set), which sends itself SIGKILL once its
//! backup has archived 16 MiB (a point a parent polling from outside would
//! miss: the whole backup takes well under a second).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cairn::{BackupRequest, JobState, TargetConfig, Vault};
use cairn_integrity::SigningKey;
use cairn_manifest::{ComponentName, OriginId, TargetName};
use cairn_source::ComponentSpec;
use cairn_testkit::noise;

fn builder(dir: &Path) -> cairn::VaultBuilder {
    let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    Vault::builder()
        .store(dir.join("store").to_str().unwrap())
        .catalog(dir.join("state/catalog.db"))
        .signing_key(SigningKey::from_pkcs8_pem(&key).unwrap())
        .origin(OriginId::parse("org_test").unwrap())
        .threads(1)
        .target(
            TargetConfig::new(TargetName::parse("big").unwrap()).component(ComponentSpec::dir(
                ComponentName::parse("data").unwrap(),
                dir.join("data"),
            )),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by killed_backup_is_cleaned_up_on_the_next_open"]
async fn child_process_backs_up() {
    let Ok(dir) = std::env::var("CAIRN_CRASH_DIR") else {
        return;
    };
    let vault = builder(Path::new(&dir)).open().await.unwrap();
    let job = vault.backup("big", BackupRequest::new()).await.unwrap();
    let mut events = job.subscribe();
    loop {
        let seen = events.borrow_and_update().clone();
        assert!(
            !seen.state.is_terminal(),
            "the backup ended before the kill"
        );
        if seen.progress.processed_bytes > (16 << 20) {
            let pid = std::process::id().to_string();
            Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            std::thread::sleep(Duration::from_secs(10));
        }
        events.changed().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backup_is_cleaned_up_on_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("key.pem"),
        SigningKey::generate()
            .unwrap()
            .to_pkcs8_pem()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    // 192 MiB of incompressible data: seconds of work for a debug build.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for i in 0..12 {
        std::fs::write(dir.join(format!("data/f{i}")), noise(16 << 20, 11 + i)).unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_process_backs_up",
            "--nocapture",
        ])
        .env("CAIRN_CRASH_DIR", dir)
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child was not killed: {status}"
    );

    let vault = builder(dir).open().await.unwrap();
    let recovery = vault.recovery();
    assert_eq!(recovery.interrupted.len(), 1);
    let job = &recovery.interrupted[0];
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_ref().unwrap().code, "interrupted");
    assert_eq!(
        vault.job(&job.id).await.unwrap().status().state,
        JobState::Failed
    );
    let target = TargetName::parse("big").unwrap();
    assert!(
        vault
            .store()
            .list_backups(&target)
            .await
            .unwrap()
            .iter()
            .all(|b| !b.is_complete()),
        "a killed backup left a ready backup"
    );
    let leftovers: Vec<_> = walk(&dir.join("store"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("/lease/"))
        .collect();
    assert!(
        leftovers.iter().all(|p| !p.to_string_lossy().contains('#')),
        "the interrupted upload's staging file is still there: {leftovers:?}"
    );
    assert_eq!(recovery.leftovers.len(), 1, "{:?}", recovery.leftovers);
    // The backup's record tells what happened to it.
    let page = vault
        .list(cairn::BackupFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].status, cairn_catalog::BackupStatus::Failed);
    assert!(
        page.items[0]
            .status_message
            .as_deref()
            .is_some_and(|m| m.contains("before it was sealed")),
        "{:?}",
        page.items[0].status_message
    );
    // The dead job's lease was freed: the next backup runs at once, and
    // nothing incomplete is left once it is done.
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/small"), "small").unwrap();
    let done = vault
        .backup("big", BackupRequest::new())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let stored = vault.store().list_backups(&target).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].is_complete());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
