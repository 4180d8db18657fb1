//! One backup or one restore through the engine, for `scripts/bench-e2e.sh`.
//!
//! ```text
//! bench-e2e backup  STATE_DIR DATA_DIR [full]   # prints the job's result
//!                                               # (incremental unless `full`)
//! bench-e2e restore STATE_DIR DATA_DIR OUT_DIR [ID]  # restores the newest backup (or ID) into OUT_DIR
//! ```
//!
//! `STATE_DIR` holds the local store, the catalog and the signing key (made
//! on first use); the target `bench` has one `dir` component, `data`, at
//! `DATA_DIR` (or, when `DATA_DIR` is a file, one `sqlite` component, `db`:
//! a live database, snapshotted). Everything goes through `cairn::Vault` exactly as an
//! embedding service would use it: capture, compression, streaming upload,
//! seal and catalog for a backup; range reads, verification and staging for
//! a restore.
//!
//! With `BENCH_AGE` set (to anything), the target encrypts to an age
//! identity kept in `STATE_DIR/age.txt` (made on first use), which the
//! vault also opens its backups with (`docs/encryption.md`).
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::{Path, PathBuf};

use cairn::{BackupFilter, BackupRequest, JobState, RestoreRequest, TargetConfig, Vault};
use cairn_integrity::SigningKey;
use cairn_manifest::{ComponentName, OriginId, TargetName};
use cairn_source::ComponentSpec;

async fn open(state: &Path, data: &Path) -> Result<Vault, Box<dyn Error>> {
    std::fs::create_dir_all(state)?;
    let key_path = state.join("key.pem");
    if !key_path.exists() {
        std::fs::write(
            &key_path,
            SigningKey::generate()?.to_pkcs8_pem()?.as_bytes(),
        )?;
    }
    let key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key_path)?)?;
    let store = state.join("store");
    let component = if data.is_file() {
        ComponentSpec::sqlite(ComponentName::parse("db")?, data)
    } else {
        ComponentSpec::dir(ComponentName::parse("data")?, data)
    };
    let mut target = TargetConfig::new(TargetName::parse("bench")?).component(component);
    let mut builder = Vault::builder()
        .store(store.to_str().ok_or("the state path must be UTF-8")?)
        .catalog(state.join("catalog.db"))
        .signing_key(key)
        .origin(OriginId::parse("org_bench")?);
    if std::env::var_os("BENCH_AGE").is_some() {
        use std::os::unix::fs::PermissionsExt;
        let path = state.join("age.txt");
        if !path.exists() {
            std::fs::write(&path, cairn::AgeIdentity::generate().to_file_text())?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        let text = std::fs::read_to_string(&path)?;
        let recipient = text
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .ok_or("age.txt names no recipient")?;
        target = target.encrypt_to(recipient.parse()?);
        builder = builder.age_identities(cairn::AgeIdentities::load(&path)?);
    }
    Ok(builder.target(target).open().await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let usage = "usage: bench-e2e backup STATE DATA [full] | restore STATE DATA OUT [ID]";
    let (mode, state, data) = match &args[..] {
        [m, s, d, ..] => (m.to_str().unwrap_or(""), s, d),
        _ => return Err(usage.into()),
    };
    let vault = open(state, data).await?;
    let job = match (mode, args.get(3).and_then(|a| a.to_str())) {
        ("backup", None | Some("full")) => {
            let mut req = BackupRequest::new();
            if args.len() == 4 {
                req = req.full();
            }
            vault.backup("bench", req).await?.wait().await
        }
        ("restore", Some(_)) => {
            let out = &args[3];
            let id = match args.get(4).and_then(|a| a.to_str()) {
                Some(id) => id.to_owned(),
                None => {
                    let page = vault.list(BackupFilter::default(), 1, None).await?;
                    page.items
                        .first()
                        .ok_or("no backup to restore")?
                        .id
                        .to_string()
                }
            };
            vault
                .restore(&id, RestoreRequest::new().to(out))
                .await?
                .wait()
                .await
        }
        _ => return Err(usage.into()),
    };
    if job.state != JobState::Succeeded {
        return Err(format!("{} {}: {:?}", job.kind, job.state, job.error).into());
    }
    println!("{}", serde_json::to_string(&job.result)?);
    Ok(())
}
