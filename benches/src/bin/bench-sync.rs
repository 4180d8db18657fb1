//! How much following the store costs a catalog, for `scripts/bench-sync.sh`:
//! requests counted by the S3 emulator (moto's request recorder) and time.
//!
//! ```text
//! bench-sync STORE_URL RECORDER_URL WORK_DIR [BACKUPS] [NEW] [CHANGES]   (10000 10 5)
//! ```
//!
//! The store gets `BACKUPS` backups of target `bench` (a seal and an archive
//! object each, and a record in two catalogs: hosts A and B that know them
//! all); then host B makes `NEW` real backups through the engine and pins
//! `CHANGES` of them (shared-state records). Host A then syncs
//! (`Vault::sync`) while the emulator records requests: the count, by
//! method, and the time are printed, with those of a second, idle sync and,
//! to compare, of listing the target's backups whole (what following the
//! store by listing would cost). AWS_* variables give the S3 endpoint and
//! credentials, as for `bench-storage`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use cairn::{BackupRequest, JobState, Policy, TargetConfig, Vault};
use cairn_benches::catalog_record;
use cairn_catalog::Catalog;
use cairn_integrity::SigningKey;
use cairn_manifest::{ComponentName, OriginId, TargetName};
use cairn_source::ComponentSpec;
use cairn_storage::{Store, StoreOptions, layout};
use futures::{StreamExt, TryStreamExt};

/// Starts (`start-recording`), stops, clears or downloads moto's recording.
fn recorder(url: &str, what: &str) -> Result<String, Box<dyn Error>> {
    let method = if what == "download-recording" {
        "GET"
    } else {
        "POST"
    };
    let out = Command::new("curl")
        .args(["-fsS", "-X", method, &format!("{url}/{what}")])
        .output()?;
    if !out.status.success() {
        return Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The requests recorded since the last reset, by method.
/// The requests recorded since the last reset, by kind: listings, reads
/// of whole objects, range reads, writes.
fn recorded(url: &str) -> Result<BTreeMap<String, u64>, Box<dyn Error>> {
    let mut by = BTreeMap::new();
    for line in recorder(url, "download-recording")?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let method = v["method"].as_str().unwrap_or("?");
        let target = v["url"].as_str().unwrap_or("");
        let ranged = v["headers"]
            .as_object()
            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("range")));
        let kind = match method {
            "GET" if target.contains("list-type") => "list",
            "GET" if target.contains("/state/") => "get state",
            "GET" if ranged => "get range",
            "GET" => "get",
            other => other,
        };
        *by.entry(kind.to_owned()).or_insert(0) += 1;
    }
    Ok(by)
}

/// `f`'s requests and milliseconds.
async fn counted<T>(
    url: &str,
    f: impl Future<Output = T>,
) -> Result<(T, BTreeMap<String, u64>, u128), Box<dyn Error>> {
    recorder(url, "reset-recording")?;
    recorder(url, "start-recording")?;
    let t = Instant::now();
    let out = f.await;
    let ms = t.elapsed().as_millis();
    recorder(url, "stop-recording")?;
    Ok((out, recorded(url)?, ms))
}

fn total(by: &BTreeMap<String, u64>) -> u64 {
    by.values().sum()
}

async fn host(
    store: &str,
    work: &Path,
    name: &str,
    key: &SigningKey,
) -> Result<Vault, Box<dyn Error>> {
    let target = TargetConfig::new(TargetName::parse("bench")?)
        .component(ComponentSpec::dir(
            ComponentName::parse("data")?,
            work.join("data"),
        ))
        // Keep everything: the bench counts the sync, not retention.
        .retention(Policy::default().with_keep_last(1_000_000));
    Ok(Vault::builder()
        .store(store)
        .catalog(work.join(name).join("catalog.db"))
        .signing_key(SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem()?)?)
        .origin(OriginId::parse("org_bench")?)
        .target(target)
        .open()
        .await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store_url, rec, work, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: bench-sync STORE_URL RECORDER_URL WORK_DIR [BACKUPS] [NEW] [CHANGES]".into(),
        );
    };
    let num = |i: usize, default: u64| -> Result<u64, Box<dyn Error>> {
        Ok(rest
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (backups, new, changes) = (num(0, 10_000)?, num(1, 10)?, num(2, 5)?);
    let work = Path::new(work);
    std::fs::create_dir_all(work.join("data"))?;
    std::fs::write(work.join("data/app.txt"), "version 1\n")?;
    let target = TargetName::parse("bench")?;

    // The history: objects in the store, records in both catalogs.
    let store = Store::open(store_url, &StoreOptions::default())?;
    // Hourly backups up to an hour ago, as a service's history would be.
    let now_ms = u64::try_from(jiff::Timestamp::now().as_millisecond())?;
    let records: Vec<_> = (0..backups)
        .map(|n| {
            let ms = now_ms - (backups - n) * 3_600_000;
            let mut r = catalog_record(n, "bench");
            r.id = cairn_manifest::BackupId::from_parts(ms, u128::from(n));
            r.created_at = jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(0))
                .unwrap_or(r.created_at);
            r
        })
        .collect();
    let t = Instant::now();
    futures::stream::iter(records.iter().map(|r| {
        let (store, target, id) = (store.clone(), target.clone(), r.id);
        async move {
            let seal = layout::seal_key(&target, &id);
            store.put(&seal, Bytes::from_static(b"seal")).await?;
            let archive = layout::archive_key(&target, &id, "tar.zst");
            store.put(&archive, Bytes::from_static(b"archive")).await
        }
    }))
    .buffer_unordered(32)
    .try_collect::<Vec<()>>()
    .await?;
    for name in ["a", "b"] {
        std::fs::create_dir_all(work.join(name))?;
        Catalog::open(work.join(name).join("catalog.db"))?
            .replace_target_backups(&target, &records)?;
    }
    println!(
        "{backups} backups of target bench in the store and two catalogs ({:.1} s)",
        t.elapsed().as_secs_f64()
    );

    let key = SigningKey::generate()?;
    let a = host(store_url, work, "a", &key).await?;
    let b = host(store_url, work, "b", &key).await?;
    let mut made = Vec::new();
    for n in 0..new {
        std::fs::write(work.join("data/app.txt"), format!("version {n}\n"))?;
        let job = b.backup("bench", BackupRequest::new()).await?.wait().await;
        if job.state != JobState::Succeeded {
            return Err(format!("backup on B: {:?}", job.error).into());
        }
        let id = job
            .result
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v["backup_id"].as_str().map(str::to_owned))
            .ok_or("a backup without an id")?;
        made.push(id);
    }
    for id in made.iter().take(usize::try_from(changes)?) {
        b.pin(id).await?;
    }
    println!("host B made {new} backups and pinned {changes} of them");

    let (report, by, ms) = counted(rec, a.sync()).await?;
    let report = report?;
    println!(
        "sync of host A: {} new backups, {} shared decisions; {} requests {by:?}; {ms} ms",
        report.new_backups,
        report.changes,
        total(&by)
    );
    let (idle, by_idle, ms_idle) = counted(rec, a.sync()).await?;
    idle?;
    println!(
        "idle sync of host A: {} requests {by_idle:?}; {ms_idle} ms",
        total(&by_idle)
    );
    let (listed, by_list, ms_list) = counted(rec, store.list_backups(&target)).await?;
    println!(
        "listing the target whole ({} backups): {} requests {by_list:?}; {ms_list} ms",
        listed?.len(),
        total(&by_list)
    );
    for v in [a, b] {
        v.shutdown(std::time::Duration::from_secs(5)).await;
    }
    Ok(())
}
