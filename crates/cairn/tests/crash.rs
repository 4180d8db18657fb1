//! Processes killed with SIGKILL at each phase of a backup and of an
//! in-place restore: the next open leaves nothing behind (state folder,
//! scratch, beside each component, the store), every record tells the
//! truth, and the next backup and restore work.
//!
//! Each test runs this binary again as the child (`child`, ignored unless
//! `CAIRN_CRASH_DIR` is set), which kills itself at its scenario's point:
//! at a crash point of the engine (`VaultBuilder::crash_points`), or when a
//! thread watching its progress or its files sees the phase it waits for. A
//! parent polling from outside would miss most of these points: a phase lasts
//! milliseconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn::{BackupFilter, BackupRequest, JobState, RestoreRequest, TargetConfig, Vault};
use cairn_catalog::BackupStatus;
use cairn_integrity::SigningKey;
use cairn_job::RestoreStatusKind;
use cairn_manifest::{ComponentName, OriginId, TargetName};
use cairn_source::{ComponentSpec, Hook};
use cairn_testkit::{assert_trees_equal, noise, snapshot};

const DIR: &str = "CAIRN_CRASH_DIR";
const SCENARIO: &str = "CAIRN_CRASH_SCENARIO";
/// What the child prints once it has started its job, with the job's id.
const STARTED: &str = "crash-test job ";

fn name(s: &str) -> ComponentName {
    ComponentName::parse(s).unwrap()
}

/// Three targets: `big` (192 MiB of incompressible files), `db` (a large
/// SQLite database) and `svc` (a folder, a file and a small database, with a
/// post-restore hook that holds when `<dir>/hold` exists).
fn builder(dir: &Path) -> cairn::VaultBuilder {
    let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    let hook = format!(
        "if [ -e {d}/hold ]; then touch {d}/hook-started; sleep 5; fi",
        d = dir.display()
    );
    let mut b = Vault::builder();
    if dir.join("clock-ahead").exists() {
        // Ten minutes ahead: files just written count as settled, so that
        // backups after the first are incremental.
        b = b.clock(Arc::new(|| {
            jiff::Timestamp::now() + jiff::SignedDuration::from_mins(10)
        }));
    }
    b.store(dir.join("store").to_str().unwrap())
        .catalog(dir.join("state/catalog.db"))
        .signing_key(SigningKey::from_pkcs8_pem(&key).unwrap())
        .origin(OriginId::parse("org_test").unwrap())
        .threads(1)
        .target(
            TargetConfig::new(TargetName::parse("big").unwrap())
                .component(ComponentSpec::dir(name("data"), dir.join("big"))),
        )
        .target(
            TargetConfig::new(TargetName::parse("db").unwrap())
                .component(ComponentSpec::sqlite(name("db"), dir.join("db.sqlite"))),
        )
        .target(
            TargetConfig::new(TargetName::parse("svc").unwrap())
                .component(ComponentSpec::dir(name("site"), dir.join("svc/site")))
                .component(ComponentSpec::file(
                    name("config"),
                    dir.join("svc/app.toml"),
                ))
                .component(ComponentSpec::sqlite(
                    name("state"),
                    dir.join("svc/state.db"),
                ))
                .post_restore(Hook::new(hook)),
        )
}

/// Kills this process, as a crash would.
fn die() -> ! {
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL)
        .unwrap();
    std::thread::sleep(Duration::from_secs(30));
    unreachable!("still alive after SIGKILL");
}

/// Kills this process once `seen` finds what it waits for (polled every ms).
fn die_when(seen: impl Fn() -> bool + Send + 'static) {
    std::thread::spawn(move || {
        loop {
            if seen() {
                die();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// A file under `dir` (at any depth) whose name starts with `prefix` and
/// that holds at least `bytes` bytes.
fn holds(dir: &Path, prefix: &str, bytes: u64) -> bool {
    walk(dir).iter().any(|p| {
        p.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with(prefix))
            && std::fs::metadata(p).is_ok_and(|m| m.len() >= bytes)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the crash tests"]
#[allow(clippy::print_stdout)] // the one line its parent reads
async fn child() {
    let (Ok(dir), Ok(scenario)) = (std::env::var(DIR), std::env::var(SCENARIO)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let renames = Arc::new(AtomicUsize::new(0));
    let point = {
        let (scenario, renames) = (scenario.clone(), Arc::clone(&renames));
        move |at: &str| match (scenario.as_str(), at) {
            ("backup-sealed", "backup:sealed") | ("restore-applied", "restore:applied") => die(),
            // Two renames done, the third about to start.
            ("restore-swap", "restore:rename") if renames.fetch_add(1, Ordering::SeqCst) == 2 => {
                die()
            }
            _ => {}
        }
    };
    let vault = builder(&dir)
        .crash_points(Arc::new(point))
        .open()
        .await
        .unwrap();
    let job = match scenario.as_str() {
        "backup-upload" | "backup-sealed" => vault.backup("big", BackupRequest::new()).await,
        "chain-upload" => {
            // An incremental backup reads only what changed and may finish
            // between two progress reports: die when the archive being
            // uploaded (the local store's `…#n` file) holds 16 MiB.
            let store = dir.join("store");
            die_when(move || {
                walk(&store).iter().any(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains('#'))
                        && std::fs::metadata(p).is_ok_and(|m| m.len() >= 16 << 20)
                })
            });
            vault.backup("big", BackupRequest::new()).await
        }
        "backup-snapshot" => {
            let scratch = dir.join("state/scratch");
            die_when(move || holds(&scratch, ".cairn-snapshot-", 1 << 20));
            vault.backup("db", BackupRequest::new()).await
        }
        "restore-staging" | "chain-staging" => {
            let id = std::fs::read_to_string(dir.join("backup-id")).unwrap();
            let parent = dir.clone();
            die_when(move || holds(&parent, ".cairn-staging-", 16 << 20));
            vault.restore(&id, RestoreRequest::new().confirm()).await
        }
        "restore-swap" | "restore-applied" | "restore-hook" => {
            let id = std::fs::read_to_string(dir.join("backup-id")).unwrap();
            if scenario == "restore-hook" {
                let started = dir.join("hook-started");
                die_when(move || started.exists());
            }
            vault.restore(&id, RestoreRequest::new().confirm()).await
        }
        other => panic!("unknown scenario {other}"),
    }
    .unwrap();
    println!("{STARTED}{}", job.id());
    let mut events = job.subscribe();
    loop {
        let seen = events.borrow_and_update().clone();
        assert!(
            !seen.state.is_terminal(),
            "{scenario}: the job ended before the kill: {seen:?}"
        );
        if scenario == "backup-upload" && seen.progress.processed_bytes > (16 << 20) {
            die();
        }
        events.changed().await.unwrap();
    }
}

/// A test folder with the key and every target's data.
struct Crash {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Crash {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let key = SigningKey::generate().unwrap();
        std::fs::write(dir.join("key.pem"), key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        std::fs::create_dir_all(dir.join("big")).unwrap();
        for i in 0..12 {
            std::fs::write(dir.join(format!("big/f{i}")), noise(16 << 20, 11 + i)).unwrap();
        }
        big_database(&dir.join("db.sqlite"));
        std::fs::create_dir_all(dir.join("svc/site")).unwrap();
        std::fs::write(dir.join("svc/site/index.html"), "<h1>v1</h1>").unwrap();
        std::fs::write(dir.join("svc/app.toml"), "port = 1\n").unwrap();
        let db = rusqlite::Connection::open(dir.join("svc/state.db")).unwrap();
        db.execute_batch("CREATE TABLE t(v); INSERT INTO t VALUES (1);")
            .unwrap();
        Self { _tmp: tmp, dir }
    }

    /// As [`Crash::new`], with every vault's clock ahead (see `builder`).
    fn ahead() -> Self {
        let c = Self::new();
        std::fs::write(c.dir.join("clock-ahead"), "").unwrap();
        c
    }

    async fn open(&self) -> Vault {
        builder(&self.dir).open().await.unwrap()
    }

    /// Makes a backup of `target` here (not killed) and leaves its id for
    /// the child.
    async fn backup(&self, target: &str) -> String {
        let id = backed_up(&self.open().await, target).await;
        std::fs::write(self.dir.join("backup-id"), &id).unwrap();
        id
    }

    /// Runs the child with `scenario` and checks that it was killed; returns
    /// the id of the job it started.
    fn killed(&self, scenario: &str) -> String {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "child", "--nocapture"])
            .env(DIR, &self.dir)
            .env(SCENARIO, scenario)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{scenario}: the child was not killed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(STARTED))
            .unwrap_or_else(|| panic!("{scenario}: no job started: {stdout}"))
            .to_owned()
    }
}

/// Backs up `target` (the backup must succeed) and returns its id.
async fn backed_up(vault: &Vault, target: &str) -> String {
    let job = vault
        .backup(target, BackupRequest::new())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    job.result.unwrap().backup_id().unwrap().to_owned()
}

/// A database of about 100 MiB: its snapshot takes long enough to be killed in.
fn big_database(path: &Path) {
    let mut db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE blobs(b BLOB);")
        .unwrap();
    let tx = db.transaction().unwrap();
    for i in 0..400 {
        tx.execute("INSERT INTO blobs VALUES (?1)", [noise(256 << 10, i)])
            .unwrap();
    }
    tx.commit().unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

/// Nothing is left behind: no staging, snapshot, trash or temporary file
/// anywhere, no journal, an empty scratch folder, and every object in the
/// store belongs to a backup the catalog lists as ready.
async fn nothing_left(dir: &Path, vault: &Vault) {
    let leftovers: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            [
                ".cairn-staging",
                ".cairn-snapshot",
                ".cairn-empty",
                ".cairn-old",
            ]
            .iter()
            .any(|x| n.contains(x))
                || n.ends_with(".tmp")
                || n.contains('#')
        })
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    for folder in ["state/journals", "state/scratch"] {
        let inside = walk(&dir.join(folder));
        assert!(inside.is_empty(), "{folder} holds {inside:?}");
    }
    let ready: Vec<String> = vault
        .list(
            BackupFilter {
                include_deleted: true,
                ..BackupFilter::default()
            },
            1000,
            None,
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| r.status.is_ready())
        .map(|r| r.id.to_string())
        .collect();
    let objects: Vec<_> = walk(&dir.join("store"))
        .into_iter()
        .filter(|p| p.is_file() && p.to_string_lossy().contains("/backups/"))
        .collect();
    for object in &objects {
        let file = object.file_name().unwrap().to_string_lossy();
        let id = file.split('.').next().unwrap();
        assert!(
            ready.iter().any(|r| r == id),
            "{} belongs to no ready backup ({ready:?})",
            object.display()
        );
    }
    assert_eq!(objects.len(), 2 * ready.len(), "{objects:?}");
}

/// The next backup of `target` and a restore of it into a new folder work,
/// and give back exactly what was there.
async fn next_backup_and_restore_work(dir: &Path, vault: &Vault, target: &str, data: &Path) {
    let id = backed_up(vault, target).await;
    let out = dir.join(format!("out-{id}"));
    let job = vault
        .restore(&id, RestoreRequest::new().to(&out))
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let first = vault.get(&id).await.unwrap().components[0].clone();
    assert_trees_equal(data, &out.join(first), false);
    std::fs::remove_dir_all(&out).unwrap();
    nothing_left(dir, vault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_while_uploading_leaves_a_failed_record_and_nothing_else() {
    let c = Crash::new();
    let job_id = c.killed("backup-upload");
    let vault = c.open().await;
    let recovery = vault.recovery();
    assert_eq!(recovery.interrupted.len(), 1);
    let job = vault.job(&job_id).await.unwrap().status();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_ref().unwrap().code, "interrupted");
    let id = job.resource.as_ref().unwrap().id.clone();
    let record = vault.get(&id).await.unwrap();
    assert_eq!(record.status, BackupStatus::Failed);
    assert!(
        record
            .status_message
            .as_deref()
            .is_some_and(|m| m.contains("stopped before it was sealed")),
        "{:?}",
        record.status_message
    );
    assert!(recovery.removed.iter().any(|(_, b)| b.to_string() == id));
    nothing_left(&c.dir, &vault).await;
    next_backup_and_restore_work(&c.dir, &vault, "big", &c.dir.join("big")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_after_its_seal_is_ready_and_its_job_says_so() {
    let c = Crash::new();
    let job_id = c.killed("backup-sealed");
    let vault = c.open().await;
    let job = vault.job(&job_id).await.unwrap().status();
    let id = job.resource.as_ref().unwrap().id.clone();
    assert_eq!(
        vault
            .recovery()
            .sealed
            .iter()
            .map(|(_, b)| b.to_string())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&id)
    );
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.code, "interrupted");
    assert!(
        error
            .message
            .contains(&format!("backup {id} is sealed and ready"))
            && error.message.contains("retention did not run"),
        "{}",
        error.message
    );
    let record = vault.get(&id).await.unwrap();
    assert_eq!(record.status, BackupStatus::Ready);
    assert_eq!(record.components, ["data"]);
    // Listed, verifiable, restorable: it is a backup like any other.
    let listed = vault.list(BackupFilter::default(), 10, None).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let verified = vault
        .verify(&id, cairn::VerifyTier::Full)
        .await
        .unwrap()
        .wait()
        .await;
    assert!(verified.result.unwrap().verify().unwrap().ok);
    nothing_left(&c.dir, &vault).await;
    next_backup_and_restore_work(&c.dir, &vault, "big", &c.dir.join("big")).await;
    // Retention counts it: keep_last 30 keeps both.
    let page = vault.list(BackupFilter::default(), 10, None).await.unwrap();
    assert_eq!(page.items.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_during_its_database_snapshot_leaves_no_copy() {
    let c = Crash::new();
    let job_id = c.killed("backup-snapshot");
    let vault = c.open().await;
    assert!(
        !vault.recovery().scratch.is_empty(),
        "the snapshot's folder was not found"
    );
    let job = vault.job(&job_id).await.unwrap().status();
    assert_eq!(job.error.unwrap().code, "interrupted");
    let id = job.resource.unwrap().id;
    assert_eq!(vault.get(&id).await.unwrap().status, BackupStatus::Failed);
    nothing_left(&c.dir, &vault).await;
    backed_up(&vault, "db").await;
    nothing_left(&c.dir, &vault).await;
}

/// Changes every component of `svc` after its backup.
fn change_svc(dir: &Path) {
    std::fs::write(dir.join("svc/site/index.html"), "<h1>broken</h1>").unwrap();
    std::fs::write(dir.join("svc/site/new.html"), "new").unwrap();
    std::fs::write(dir.join("svc/app.toml"), "port = 2\n").unwrap();
    rusqlite::Connection::open(dir.join("svc/state.db"))
        .unwrap()
        .execute_batch("INSERT INTO t VALUES (2);")
        .unwrap();
}

fn svc_state(dir: &Path) -> (cairn_testkit::Snapshot, String, i64) {
    let rows = rusqlite::Connection::open(dir.join("svc/state.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    (
        snapshot(&dir.join("svc/site")).unwrap(),
        std::fs::read_to_string(dir.join("svc/app.toml")).unwrap(),
        rows,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_while_staging_changes_nothing_and_leaves_no_staging() {
    let c = Crash::new();
    c.backup("big").await;
    std::fs::write(c.dir.join("big/f0"), "changed").unwrap();
    let before = snapshot(&c.dir.join("big")).unwrap();
    let job_id = c.killed("restore-staging");
    let vault = c.open().await;
    assert!(
        snapshot(&c.dir.join("big")).unwrap() == before,
        "the target changed"
    );
    let status = vault.restore_status("big").await.unwrap();
    assert_eq!(status.status, RestoreStatusKind::Failed);
    assert!(
        status.status_message.contains("nothing changed"),
        "{}",
        status.status_message
    );
    let restores = &vault.recovery().restores;
    assert_eq!(restores.len(), 1);
    assert_eq!(restores[0].id, job_id);
    assert!(
        !restores[0].removed.is_empty(),
        "no staging folder was removed"
    );
    nothing_left(&c.dir, &vault).await;
    next_backup_and_restore_work(&c.dir, &vault, "big", &c.dir.join("big")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_between_renames_is_rolled_back() {
    let c = Crash::new();
    c.backup("svc").await;
    change_svc(&c.dir);
    let before = svc_state(&c.dir);
    c.killed("restore-swap");
    let vault = c.open().await;
    assert!(
        svc_state(&c.dir) == before,
        "the target was not rolled back"
    );
    let restores = &vault.recovery().restores;
    assert_eq!(restores.len(), 1);
    assert!(
        restores[0].undone >= 2 && !restores[0].committed,
        "{restores:?}"
    );
    let status = vault.restore_status("svc").await.unwrap();
    assert_eq!(status.status, RestoreStatusKind::Failed);
    nothing_left(&c.dir, &vault).await;
    next_backup_and_restore_work(&c.dir, &vault, "svc", &c.dir.join("svc/site")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_after_its_commit_reads_completed() {
    let c = Crash::new();
    c.backup("svc").await;
    let restored = svc_state(&c.dir);
    change_svc(&c.dir);
    let job_id = c.killed("restore-applied");
    let vault = c.open().await;
    assert!(
        svc_state(&c.dir) == restored,
        "the target does not hold the backup"
    );
    let status = vault.restore_status("svc").await.unwrap();
    assert_eq!(
        status.status,
        RestoreStatusKind::Completed,
        "{}",
        status.status_message
    );
    let job = vault.job(&job_id).await.unwrap().status();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.committed);
    let error = job.error.unwrap();
    assert_eq!(error.code, "interrupted");
    assert!(
        error.message.contains("after its commit point"),
        "{}",
        error.message
    );
    // What it replaced is kept, as after any restore.
    assert!(c.dir.join("svc/app.toml.before-restore").exists());
    nothing_left(&c.dir, &vault).await;
    next_backup_and_restore_work(&c.dir, &vault, "svc", &c.dir.join("svc/site")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_in_its_post_restore_hook_completed_with_errors() {
    let c = Crash::new();
    c.backup("svc").await;
    let restored = svc_state(&c.dir);
    change_svc(&c.dir);
    std::fs::write(c.dir.join("hold"), "").unwrap();
    let job_id = c.killed("restore-hook");
    std::fs::remove_file(c.dir.join("hold")).unwrap();
    std::fs::remove_file(c.dir.join("hook-started")).unwrap();
    let vault = c.open().await;
    assert!(
        svc_state(&c.dir) == restored,
        "the target does not hold the backup"
    );
    let status = vault.restore_status("svc").await.unwrap();
    assert_eq!(status.status, RestoreStatusKind::CompletedWithErrors);
    assert!(
        status
            .status_message
            .contains("the post-restore hook did not run"),
        "{}",
        status.status_message
    );
    let job = vault.job(&job_id).await.unwrap().status();
    assert!(job.committed && job.partial);
    nothing_left(&c.dir, &vault).await;
    next_backup_and_restore_work(&c.dir, &vault, "svc", &c.dir.join("svc/site")).await;
}

/// Half of `big` rewritten: an incremental backup of it reads 96 MiB.
fn change_big(dir: &Path) {
    for i in (0..12).step_by(2) {
        std::fs::write(dir.join(format!("big/f{i}")), noise(16 << 20, 100 + i)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_backup_killed_while_uploading_leaves_its_parent_whole() {
    let c = Crash::ahead();
    let full = c.backup("big").await;
    change_big(&c.dir);
    let job_id = c.killed("chain-upload");
    let vault = c.open().await;
    let job = vault.job(&job_id).await.unwrap().status();
    assert_eq!(job.state, JobState::Failed);
    let id = job.resource.as_ref().unwrap().id.clone();
    assert_eq!(vault.get(&id).await.unwrap().status, BackupStatus::Failed);
    // The parent is untouched and still the newest ready backup: the next
    // backup is incremental to it, and restores.
    assert!(vault.get(&full).await.unwrap().status.is_ready());
    nothing_left(&c.dir, &vault).await;
    let next = backed_up(&vault, "big").await;
    assert_eq!(
        vault
            .get(&next)
            .await
            .unwrap()
            .parent()
            .map(ToString::to_string),
        Some(full)
    );
    let out = c.dir.join("out-next");
    let job = vault
        .restore(&next, RestoreRequest::new().to(&out))
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_trees_equal(&c.dir.join("big"), &out.join("data"), false);
    std::fs::remove_dir_all(&out).unwrap();
    nothing_left(&c.dir, &vault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_a_chain_killed_while_staging_changes_nothing() {
    let c = Crash::ahead();
    c.backup("big").await;
    change_big(&c.dir);
    let child = c.backup("big").await;
    let vault = c.open().await;
    assert_eq!(vault.get(&child).await.unwrap().depth(), 1);
    drop(vault);
    std::fs::write(c.dir.join("big/f1"), "changed").unwrap();
    let before = snapshot(&c.dir.join("big")).unwrap();
    c.killed("chain-staging");
    let vault = c.open().await;
    assert!(
        snapshot(&c.dir.join("big")).unwrap() == before,
        "the target changed"
    );
    assert_eq!(
        vault.restore_status("big").await.unwrap().status,
        RestoreStatusKind::Failed
    );
    nothing_left(&c.dir, &vault).await;
    next_backup_and_restore_work(&c.dir, &vault, "big", &c.dir.join("big")).await;
}
