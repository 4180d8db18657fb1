//! The commands.

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn::{
    BackupFilter, BackupRecord, BackupRequest, Cursor, Job, JobState, RestoreRequest,
    UploadRequest, Vault, VerifyTier,
};
use cairn_manifest::{BackupKind, ComponentName};
use clap::Subcommand;

use crate::fail::{Fail, Kind};
use crate::ui::{Ui, job_failure};
use cairn_config::{self as config, Settings};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write an annotated cairn.toml (targets, store, retention, schedules, hooks).
    Init {
        /// Where to write it.
        #[arg(long, default_value = "cairn.toml")]
        output: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Back up a configured target, or a directory (zero configuration).
    #[command(
        after_help = "Examples:\n  cairn backup ./site\n  cairn backup web --label 'before deploy 42'\n  cairn backup shop --include uploads --no-wait"
    )]
    Backup {
        /// A target name, or a directory to back up as its own target.
        target: String,
        /// A label for the backup.
        #[arg(long)]
        label: Option<String>,
        /// Back up only these components (optional ones included); repeatable.
        #[arg(long)]
        include: Vec<String>,
        /// manual (default), scheduled or pre_deploy.
        #[arg(long, default_value = "manual")]
        kind: String,
        /// Wait for the backup to end, with progress (the default).
        #[arg(long, overrides_with = "no_wait")]
        wait: bool,
        /// Start the backup in a background process, print its job and
        /// return at once (`cairn job ID --watch` follows it).
        #[arg(long, overrides_with = "wait")]
        no_wait: bool,
        /// Internal: this process is the background process of `--no-wait`.
        #[arg(long, hide = true)]
        detached: bool,
    },
    /// List backups, newest first.
    #[command(
        after_help = "Examples:\n  cairn list\n  cairn list --target web --limit 5\n  cairn list --cursor <next from the previous page>"
    )]
    List {
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Continue after a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Include soft-deleted backups.
        #[arg(long)]
        deleted: bool,
    },
    /// Show one backup (with --manifest: its authenticated manifest).
    Show {
        id: String,
        /// Read the signed manifest from the store: components, every entry, skipped files.
        #[arg(long)]
        manifest: bool,
    },
    /// Restore a backup in place (asks first), into another directory, or as a dry run.
    #[command(
        after_help = "Examples:\n  cairn restore bkp_01J... --dry-run\n  cairn restore bkp_01J... --to /tmp/look\n  cairn restore bkp_01J... --include db --yes"
    )]
    Restore {
        id: String,
        /// Only these components; repeatable.
        #[arg(long)]
        include: Vec<String>,
        /// Unpack into this directory (must not exist or be empty) instead.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Only list what would be created, replaced and deleted.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        /// Restore a backup made by another installation or target.
        #[arg(long)]
        force: bool,
        /// Restore onto this target instead of the backup's own.
        #[arg(long)]
        target: Option<String>,
    },
    /// Verify a backup (quick, sample or full), or an archive file.
    #[command(
        after_help = "Examples:\n  cairn verify bkp_01J... --tier sample\n  cairn verify backup.tar.zst --public-key cairn.pub.pem   (checks backup.tar.zst.seal too, if present)"
    )]
    Verify {
        /// A backup id, or the path of an archive file.
        id: String,
        #[arg(long, default_value = "full")]
        tier: String,
        /// For a file: the public key (PEM) that must have signed it
        /// (default: this installation's key).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Soft-delete a backup (recoverable with undelete for 24 h).
    Delete {
        id: String,
        #[arg(long)]
        yes: bool,
    },
    /// Bring a soft-deleted backup back.
    Undelete { id: String },
    /// Pin a backup: never evicted, never deleted.
    Pin { id: String },
    /// Unpin a backup.
    Unpin { id: String },
    /// Apply retention to a target now.
    Prune {
        target: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        yes: bool,
    },
    /// Restore a target to its pinned `factory` backup (or empty it).
    Reset {
        target: String,
        #[arg(long)]
        yes: bool,
    },
    /// Ingest a .tar, .tar.gz or .tar.zst as a backup of a target.
    Upload {
        file: PathBuf,
        #[arg(long)]
        target: String,
        #[arg(long)]
        label: Option<String>,
    },
    /// Copy a backup's archive to a file (a Cairn archive: GNU tar reads it).
    Download {
        id: String,
        /// Where (default: ID.tar.zst).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// A signed, expiring download URL (S3 and Azure stores).
    Url {
        id: String,
        /// How long it is valid.
        #[arg(long, default_value = "15m")]
        ttl: String,
    },
    /// Automatic backups of a target: enable, disable (starts the cooldown), status.
    Schedule {
        #[arg(value_parser = ["enable", "disable", "status"])]
        action: String,
        target: String,
    },
    /// The last restore of a target.
    RestoreStatus { target: String },
    /// Signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Recent jobs.
    Jobs {
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One job; with --watch, follows it until it ends (JSON lines with --json).
    #[command(
        after_help = "Examples:\n  cairn job 01J...\n  cairn job 01J... --watch --json | jq .progress.percent"
    )]
    Job {
        id: String,
        /// Print the job each time it changes until it ends; the exit code
        /// is the job's (0 if it succeeded).
        #[arg(long)]
        watch: bool,
    },
    /// Ask a running job to stop (in this or another process); it undoes what it did.
    Cancel { id: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a new signing key (PKCS#8 PEM, mode 0600).
    Generate {
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print the public key (PEM) that verifies this installation's backups.
    ExportPublic,
    /// Start signing with a new key on purpose; the old key stays trusted
    /// for the backups it signed (its public key is kept in the state folder).
    Rotate {
        /// Sign with this key (PKCS#8 PEM) instead of a new one.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Recreate the backup records from the store (after losing the catalog).
    Rebuild,
}

async fn open(settings: &Settings) -> Result<Vault, Fail> {
    Ok(settings.vault_builder()?.open().await?)
}

fn names(list: &[String]) -> Result<Vec<ComponentName>, Fail> {
    list.iter()
        .map(|n| {
            ComponentName::parse(n)
                .map_err(|e| Fail::new(Kind::Usage, format!("component {n:?}: {e}")))
        })
        .collect()
}

pub(crate) async fn run(cmd: Command, config_path: Option<&Path>, ui: &Ui) -> Result<(), Fail> {
    if let Command::Init { output, force } = &cmd {
        return init(output, *force, ui);
    }
    if let Command::Key(KeyCommand::Generate { output }) = &cmd {
        config::key(output, None)?;
        ui.out(&serde_json::json!({ "key": output }), || {
            format!("wrote {}", output.display())
        });
        return Ok(());
    }
    if let Command::Backup {
        no_wait: true,
        detached: false,
        ..
    } = &cmd
    {
        return detach(ui);
    }
    let mut settings = config::load(config_path)?;
    if let Command::Key(KeyCommand::Rotate { key }) = &cmd {
        return rotate(&mut settings, key.as_deref(), ui).await;
    }
    if ui.verbose {
        ui.note(&format!(
            "configuration: {}; state folder {}",
            settings.source.as_deref().map_or_else(
                || "none (zero configuration)".to_owned(),
                |p| p.display().to_string()
            ),
            settings.home.display()
        ));
    }
    if let Command::Backup { target, .. } = &cmd
        && !settings.targets.iter().any(|t| t.name.as_str() == target)
    {
        let (name, created) = config::target_for_path(&mut settings, Path::new(target))?;
        if created {
            ui.note(&format!(
                "backing up {target} as target {name} (state in {})",
                settings.home.display()
            ));
        }
        let Command::Backup {
            label,
            include,
            kind,
            detached,
            ..
        } = cmd
        else {
            unreachable!()
        };
        let vault = open(&settings).await?;
        return backup(&vault, &name, label, &include, &kind, detached, ui).await;
    }
    let vault = open(&settings).await?;
    match cmd {
        Command::Backup {
            target,
            label,
            include,
            kind,
            detached,
            ..
        } => backup(&vault, &target, label, &include, &kind, detached, ui).await,
        Command::List {
            target,
            limit,
            cursor,
            deleted,
        } => {
            let filter = BackupFilter {
                target: target
                    .map(|t| cairn_manifest::TargetName::parse(&t))
                    .transpose()
                    .map_err(|e| Fail::new(Kind::Usage, e.to_string()))?,
                include_deleted: deleted,
                ..BackupFilter::default()
            };
            let cursor = cursor
                .map(|c| Cursor::decode(&c))
                .transpose()
                .map_err(|_| Fail::new(Kind::Usage, "invalid --cursor"))?;
            let page = vault.list(filter, limit.clamp(1, 1000), cursor).await?;
            let next = page.next.as_ref().map(Cursor::encode);
            ui.listed(
                &serde_json::json!({ "items": page.items, "next": next, "has_more": page.has_more }),
                page.items.iter().map(|r| r.id),
                || {
                    let mut lines: Vec<String> = page.items.iter().map(line).collect();
                    if page.items.is_empty() {
                        lines.push("no backups".to_owned());
                    }
                    if let Some(n) = &next {
                        lines.push(format!("more: cairn list --cursor {n}"));
                    }
                    lines.join("\n")
                },
            );
            Ok(())
        }
        Command::Show {
            id,
            manifest: false,
        } => {
            let r = vault.get(&id).await?;
            ui.out(&r, || details(&r));
            Ok(())
        }
        Command::Show { id, manifest: true } => {
            let m = vault.manifest(&id).await?;
            ui.out(&m, || manifest_text(&m));
            Ok(())
        }
        Command::Restore {
            id,
            include,
            to,
            dry_run,
            yes,
            force,
            target,
        } => {
            let mut req = RestoreRequest::new();
            for n in names(&include)? {
                req = req.include(n);
            }
            if let Some(t) = target {
                req = req.onto(t);
            }
            if force {
                req = req.force();
            }
            if dry_run {
                req = req.dry_run();
            } else if let Some(to) = to {
                req = req.to(to);
            } else {
                let r = vault.get(&id).await?;
                ui.confirm(
                    &format!(
                        "restoring {id} replaces the current data of target {} (kept as .before-restore)",
                        r.target
                    ),
                    yes,
                )?;
                req = req.confirm();
            }
            let job = ui.wait(vault.restore(&id, req).await?).await;
            finished(&job, ui, nothing, restore_text)
        }
        Command::Verify { id, public_key, .. } if Path::new(&id).is_file() => {
            let key = match public_key {
                Some(p) => {
                    let pem = std::fs::read_to_string(&p)
                        .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", p.display())))?;
                    cairn_integrity::PublicKey::from_public_key_pem(&pem)
                        .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", p.display())))?
                }
                None => vault.public_key(),
            };
            verify_file(Path::new(&id), &key, ui).await
        }
        Command::Verify { id, tier, .. } => {
            let tier: VerifyTier = tier
                .parse()
                .map_err(|e: cairn::Error| Fail::new(Kind::Usage, e.to_string()))?;
            let job = ui.wait(vault.verify(&id, tier).await?).await;
            if let Some(f) = job_failure(&job) {
                return Err(f);
            }
            let result = job.result.clone().unwrap_or_default();
            let ok = result["ok"] == true;
            ui.out(&result, || {
                format!(
                    "{} {}: {}",
                    if ok { "verified" } else { "FAILED" },
                    id,
                    result["message"].as_str().unwrap_or_default()
                )
            });
            if ok {
                Ok(())
            } else {
                Err(Fail::new(
                    Kind::Verification,
                    format!(
                        "backup {id} failed verification: {}",
                        result["message"].as_str().unwrap_or_default()
                    ),
                )
                .hint("the backup cannot be trusted; restore another one"))
            }
        }
        Command::Delete { id, yes } => {
            ui.confirm(
                &format!("deleting backup {id} (recoverable for 24 h with `cairn undelete`)"),
                yes,
            )?;
            let r = vault.delete(&id).await?;
            ui.out(&r, || format!("deleted {id}"));
            Ok(())
        }
        Command::Undelete { id } => {
            let r = vault.undelete(&id).await?;
            ui.out(&r, || format!("restored {id} to the list"));
            Ok(())
        }
        Command::Pin { id } => {
            let r = vault.pin(&id, true).await?;
            ui.out(&r, || format!("pinned {id}"));
            Ok(())
        }
        Command::Unpin { id } => {
            let r = vault.pin(&id, false).await?;
            ui.out(&r, || format!("unpinned {id}"));
            Ok(())
        }
        Command::Prune {
            target,
            dry_run,
            yes,
        } => {
            if !dry_run {
                ui.confirm(
                    &format!("applying retention to {target} (evicted backups are soft-deleted)"),
                    yes,
                )?;
            }
            let job = ui.wait(vault.prune(&target, dry_run).await?).await;
            let changed = |job: &Job| {
                let r = job.result.clone().unwrap_or_default();
                ["deleted", "purged"]
                    .iter()
                    .flat_map(|k| r[k].as_array().cloned().unwrap_or_default())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            finished(&job, ui, changed, |job| {
                let r = job.result.clone().unwrap_or_default();
                let mut out = Vec::new();
                for d in r["plan"]["decisions"].as_array().into_iter().flatten() {
                    out.push(format!(
                        "{:7} {}  {}",
                        d["action"].as_str().unwrap_or("?"),
                        d["id"].as_str().unwrap_or("?"),
                        d["reasons"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|x| x
                                    .as_str()
                                    .map(str::to_owned)
                                    .or_else(|| Some(x.to_string())))
                                .collect::<Vec<_>>()
                                .join("; "))
                            .unwrap_or_default()
                    ));
                }
                if dry_run {
                    out.push("(dry run: nothing changed)".to_owned());
                }
                out.join("\n")
            })
        }
        Command::Reset { target, yes } => {
            ui.confirm(
                &format!("resetting target {target} to its factory backup (or empty)"),
                yes,
            )?;
            let job = ui.wait(vault.reset(&target, true).await?).await;
            finished(&job, ui, nothing, restore_text)
        }
        Command::Upload {
            file,
            target,
            label,
        } => {
            let input = std::fs::File::open(&file)
                .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", file.display())))?;
            let mut req = UploadRequest::new();
            if let Some(l) = label {
                req = req.label(l);
            }
            let job = ui.wait(vault.upload(&target, input, req).await?).await;
            finished(&job, ui, made, backup_text)
        }
        Command::Download { id, output } => download(&vault, &id, output, ui).await,
        Command::Url { id, ttl } => {
            let ttl = config::duration("--ttl", &ttl)?;
            let url = vault.download_url(&id, ttl).await?;
            ui.listed(
                &serde_json::json!({ "url": url.url, "expires_at": url.expires_at }),
                [&url.url],
                || url.url.clone(),
            );
            Ok(())
        }
        Command::Schedule { action, target } => {
            let state = match action.as_str() {
                "enable" => vault.schedule(&target, true).await?,
                "disable" => vault.schedule(&target, false).await?,
                _ => vault.schedule_status(&target).await?,
            };
            ui.out(&state, || {
                if state.enabled {
                    format!("automatic backups of {target}: enabled")
                } else {
                    format!(
                        "automatic backups of {target}: disabled{}",
                        state
                            .disabled_at
                            .map(|d| format!(" since {d}"))
                            .unwrap_or_default()
                    )
                }
            });
            Ok(())
        }
        Command::RestoreStatus { target } => {
            let s = vault.restore_status(&target).await?;
            ui.out(&s, || {
                format!(
                    "{}: {} ({})",
                    target,
                    serde_json::to_value(s.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    s.status_message
                )
            });
            Ok(())
        }
        Command::Key(KeyCommand::ExportPublic) => {
            let pem = vault
                .public_key()
                .to_public_key_pem()
                .map_err(|e| Fail::new(Kind::Other, e.to_string()))?;
            ui.listed(
                &serde_json::json!({ "public_key": pem }),
                [pem.trim_end()],
                || pem.trim_end().to_owned(),
            );
            Ok(())
        }
        Command::Catalog(CatalogCommand::Rebuild) => {
            let r = vault.rebuild_catalog().await?;
            let json = serde_json::json!({
                "targets": r.targets,
                "backups": r.backups,
                "incomplete": r.incomplete.iter().map(|(t, id)| format!("{t}/{id}")).collect::<Vec<_>>(),
                "invalid": r.invalid.iter().map(|(t, id, why)| serde_json::json!({"target": t.to_string(), "id": id.to_string(), "why": why})).collect::<Vec<_>>(),
            });
            ui.out(&json, || {
                format!(
                    "rebuilt: {} backups in {} targets; {} incomplete, {} invalid",
                    r.backups,
                    r.targets,
                    r.incomplete.len(),
                    r.invalid.len()
                )
            });
            Ok(())
        }
        Command::Jobs { target, limit } => {
            let jobs = vault
                .jobs(target.as_deref(), &[], limit.clamp(1, 1000))
                .await?;
            ui.listed(&jobs, jobs.iter().map(|j| &j.id), || {
                jobs.iter()
                    .map(|j| format!("{}  {:8} {:10} {}", j.id, j.kind, j.state, j.target))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::Job { id, watch: false } => {
            let job = vault.job(&id).await?.status();
            ui.out(&job, || job_text(&job));
            Ok(())
        }
        Command::Job { id, watch: true } => watch(&vault, &id, ui).await,
        Command::Cancel { id } => {
            vault.cancel(&id).await?;
            ui.out(
                &serde_json::json!({ "job": id, "cancel_requested": true }),
                || format!("asked {id} to stop; `cairn job {id}` shows when it has"),
            );
            Ok(())
        }
        Command::Init { .. }
        | Command::Key(KeyCommand::Generate { .. } | KeyCommand::Rotate { .. }) => {
            unreachable!()
        }
    }
}

/// `key rotate`: the new key signs from now on; the vault is opened once so
/// that its catalog records the new signer.
async fn rotate(settings: &mut Settings, new: Option<&Path>, ui: &Ui) -> Result<(), Fail> {
    let new = new.map(|p| config::key(p, None)).transpose()?;
    let rotated = settings.rotate_key(new)?;
    open(settings).await?;
    ui.listed(
        &serde_json::json!({ "old": rotated.old, "new": rotated.new, "trusted": rotated.trusted, "retired": rotated.retired }),
        [&rotated.new],
        || {
            format!(
                "new backups are signed by key {}; key {} stays trusted ({}), its secret key moved to {}",
                rotated.new,
                rotated.old,
                rotated.trusted.display(),
                rotated.retired.display()
            )
        },
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn backup(
    vault: &Vault,
    target: &str,
    label: Option<String>,
    include: &[String],
    kind: &str,
    detached: bool,
    ui: &Ui,
) -> Result<(), Fail> {
    let kind = match kind {
        "manual" => BackupKind::Manual,
        "scheduled" => BackupKind::Scheduled,
        "pre_deploy" => BackupKind::PreDeploy,
        other => {
            return Err(Fail::new(
                Kind::Usage,
                format!("--kind {other:?}: manual, scheduled or pre_deploy"),
            ));
        }
    };
    let mut req = BackupRequest::new().kind(kind);
    if let Some(l) = label {
        req = req.label(l);
    }
    for n in names(include)? {
        req = req.include(n);
    }
    let handle = vault.backup(target, req).await?;
    if detached {
        // The one line the parent waits for; nothing is written after it
        // (the parent has gone), the job's outcome is in the catalog.
        println!(
            "{}",
            serde_json::to_string(&handle.status()).unwrap_or_default()
        );
        let _ = std::io::stdout().flush();
        handle.wait().await;
        return Ok(());
    }
    let job = ui.wait(handle).await;
    finished(&job, ui, made, backup_text)
}

/// `backup --no-wait`: runs this same command again as a background
/// process (its own process group, so a Ctrl-C here does not reach it;
/// no terminal) and returns once it has started the job. The child says
/// how that went in one JSON line: the job, or an error document.
fn detach(ui: &Ui) -> Result<(), Fail> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    let exe = std::env::current_exe()
        .map_err(|e| Fail::new(Kind::Other, format!("cannot find the cairn binary: {e}")))?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1).filter(|a| a != "--no-wait"))
        .arg("--detached")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Fail::new(
                Kind::Other,
                format!("cannot start the background process: {e}"),
            )
        })?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| Fail::new(Kind::Other, format!("background process: {e}")))?;
    }
    let doc: serde_json::Value = serde_json::from_str(&line).map_err(|_| {
        Fail::new(
            Kind::Other,
            "the background process ended before starting the backup",
        )
    })?;
    if let Some(e) = doc.get("error").filter(|e| e.is_object()) {
        let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
        let mut fail = Fail::new(Kind::from_name(&text("code")), text("message"));
        fail.hint = e["hint"].as_str().map(str::to_owned);
        return Err(fail);
    }
    let job: Job = serde_json::from_value(doc)
        .map_err(|e| Fail::new(Kind::Other, format!("background process: {e}")))?;
    ui.listed(&job, [&job.id], || {
        format!(
            "{}  started in the background (pid {}); `cairn job {} --watch` follows it",
            job.id,
            child.id(),
            job.id
        )
    });
    Ok(())
}

/// Prints a finished job's result (with `-q`, the `ids` it made), or turns
/// its failure into one.
fn finished(
    job: &Job,
    ui: &Ui,
    ids: impl FnOnce(&Job) -> Vec<String>,
    text: impl FnOnce(&Job) -> String,
) -> Result<(), Fail> {
    if let Some(f) = job_failure(job) {
        return Err(f);
    }
    ui.listed(&job.result, ids(job), || text(job));
    Ok(())
}

/// The backup a backup or upload job made.
fn made(job: &Job) -> Vec<String> {
    job.result
        .as_ref()
        .and_then(|r| r["backup_id"].as_str())
        .map(str::to_owned)
        .into_iter()
        .collect()
}

/// Nothing: a job that made nothing new (a restore, a reset).
fn nothing(_: &Job) -> Vec<String> {
    Vec::new()
}

fn backup_text(job: &Job) -> String {
    let r = job.result.clone().unwrap_or_default();
    let mut s = format!(
        "{}  {} bytes archived ({} entries, {} bytes of data)",
        r["backup_id"].as_str().unwrap_or("?"),
        r["size"],
        r["entries"],
        r["data_bytes"]
    );
    if let Some(skipped) = r["skipped"].as_array().filter(|a| !a.is_empty()) {
        s.push_str(&format!(
            "\nskipped (vanished or special files): {}",
            skipped.len()
        ));
    }
    s
}

fn restore_text(job: &Job) -> String {
    let r = job.result.clone().unwrap_or_default();
    if let Some(d) = r.get("dry_run") {
        let list = |k: &str| {
            d[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str())
                        .map(|p| format!("  {k:7} {p}"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let mut lines = Vec::new();
        lines.extend(list("create"));
        lines.extend(list("replace"));
        lines.extend(list("delete"));
        lines.push(format!(
            "{} unchanged (dry run: nothing changed)",
            d["unchanged"]
        ));
        return lines.join("\n");
    }
    let mut s = format!(
        "restored {} from {}",
        r["components"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        r["backup_id"].as_str().unwrap_or("(empty)")
    );
    if let Some(to) = r["to"].as_str() {
        s.push_str(&format!(" into {to}"));
    }
    if let Some(e) = r["post_hook_error"].as_str() {
        s.push_str(&format!("\nwarning: {e}"));
    }
    s
}

fn line(r: &BackupRecord) -> String {
    format!(
        "{}  {:8} {:10} {:9} {:>12}  {}{}{}",
        r.id,
        r.target,
        r.kind.as_str(),
        r.status.as_str(),
        r.archive_size.unwrap_or(0),
        r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        if r.pinned { "  pinned" } else { "" },
        r.label
            .as_deref()
            .map(|l| format!("  {l}"))
            .unwrap_or_default(),
    )
}

fn details(r: &BackupRecord) -> String {
    let mut s = vec![
        format!("id          {}", r.id),
        format!("target      {}", r.target),
        format!(
            "status      {}{}",
            r.status.as_str(),
            r.status_message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        format!("created     {}", r.created_at),
        format!("components  {}", r.components.join(", ")),
        format!("entries     {}", r.entries),
        format!("data        {} bytes", r.data_bytes),
        format!(
            "archive     {} bytes, sha256 {}",
            r.archive_size.unwrap_or(0),
            r.archive_sha256.as_deref().unwrap_or("-")
        ),
        format!("pinned      {}", r.pinned),
    ];
    if let Some(l) = &r.label {
        s.push(format!("label       {l}"));
    }
    let machine: Vec<String> = [
        ("host", &r.hostname),
        ("model", &r.model),
        ("serial", &r.serial),
        ("software", &r.software_version),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
    .collect();
    if !machine.is_empty() {
        s.push(format!("made by     {}", machine.join(", ")));
    }
    if let Some(signer) = &r.source_signer {
        s.push(format!(
            "uploaded    a Cairn archive signed by key {signer} ({})",
            if r.source_trusted == Some(true) {
                "trusted here"
            } else {
                "not a key trusted here"
            }
        ));
    }
    if let Some(d) = r.deleted_at {
        s.push(format!("deleted     {d}"));
    }
    if let Some(v) = &r.verification {
        s.push(format!(
            "verified    {} ({}, {}): {}",
            v.at,
            v.tier,
            if v.ok { "ok" } else { "FAILED" },
            v.message
        ));
    }
    s.join("\n")
}

fn manifest_text(m: &cairn_manifest::Manifest) -> String {
    let mut s = vec![format!(
        "backup {} of {} ({} entries)",
        m.backup_id,
        m.target,
        m.entries.len()
    )];
    for c in &m.components {
        s.push(format!(
            "  {:12} {:6} {:>8} entries {:>14} bytes{}",
            c.name.as_str(),
            c.kind.as_str(),
            c.entries,
            c.bytes,
            if c.optional { "  optional" } else { "" }
        ));
    }
    for k in &m.skipped {
        s.push(format!("  skipped {} ({:?})", k.path, k.reason));
    }
    s.join("\n")
}

/// Verifies an archive file (and its `.seal` beside it, if any) with `key`.
async fn verify_file(path: &Path, key: &cairn_integrity::PublicKey, ui: &Ui) -> Result<(), Fail> {
    let (path, key) = (path.to_owned(), *key);
    let untrusted = |m: String| {
        Fail::new(Kind::Verification, format!("verification failed: {m}"))
            .hint("the file cannot be trusted; check the --public-key, or use another copy")
    };
    let checked = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, Fail> {
        let file = std::fs::File::open(&path)
            .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", path.display())))?;
        let archive_error = |e: cairn_archive::Error| match e.kind() {
            cairn_archive::ErrorKind::Io => Fail::new(Kind::Other, e.to_string()),
            _ => untrusted(e.to_string()),
        };
        let verified = cairn_archive::ArchiveReader::new(std::io::BufReader::new(file))
            .and_then(|r| r.verify(&key))
            .map_err(archive_error)?;
        let mut seal_path = path.clone().into_os_string();
        seal_path.push(".seal");
        let seal = match std::fs::read(&seal_path) {
            Ok(bytes) => {
                let seal = cairn_integrity::SignedSeal::parse(&bytes)
                    .and_then(|s| s.verify(&key))
                    .map_err(|e| untrusted(format!("seal: {e}")))?;
                verified.check_seal(&seal).map_err(archive_error)?;
                true
            }
            Err(_) => false,
        };
        let m = verified.manifest.manifest();
        Ok(serde_json::json!({
            "ok": true,
            "backup_id": m.backup_id.to_string(),
            "target": m.target.to_string(),
            "entries": m.entries.len(),
            "size": verified.size,
            "sha256": verified.sha256.map(|d| d.to_string()),
            "seal_checked": seal,
        }))
    })
    .await
    .map_err(|e| Fail::new(Kind::Other, e.to_string()))??;
    ui.out(&checked, || {
        format!(
            "verified: every entry and the signature of backup {} ({} entries){}",
            checked["backup_id"].as_str().unwrap_or("?"),
            checked["entries"],
            if checked["seal_checked"] == true {
                "; the seal matches"
            } else {
                "; no .seal file beside it"
            }
        )
    });
    Ok(())
}

/// Follows a job (of any process: progress reaches the catalog once a
/// second) until it ends: a line per change, JSON lines with `--json`.
async fn watch(vault: &Vault, id: &str, ui: &Ui) -> Result<(), Fail> {
    let mut last: Option<Job> = None;
    loop {
        let job = vault.job(id).await?.status();
        if last.as_ref() != Some(&job) {
            ui.line(&job, || job_text(&job));
        }
        if job.state.is_terminal() {
            return job_failure(&job).map_or(Ok(()), Err);
        }
        last = Some(job);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

fn job_text(j: &Job) -> String {
    let mut s = format!("{}  {} on {}: {}", j.id, j.kind, j.target, j.state);
    if j.state == JobState::Running {
        let p = &j.progress;
        s.push_str(&format!(
            " ({}, {}%, {} bytes",
            format!("{:?}", p.phase).to_lowercase(),
            p.percent,
            p.processed_bytes
        ));
        if let Some(rate) = p.bytes_per_second {
            s.push_str(&format!(", {rate} B/s"));
        }
        if let Some(eta) = p.eta_seconds {
            s.push_str(&format!(", ETA {eta} s"));
        }
        s.push(')');
    }
    if let Some(e) = &j.error {
        s.push_str(&format!("\nerror: {} ({})", e.message, e.code));
    }
    s
}

async fn download(vault: &Vault, id: &str, output: Option<PathBuf>, ui: &Ui) -> Result<(), Fail> {
    use stream::copy_stream;
    let r = vault.get(id).await?;
    let key = r
        .archive_key
        .clone()
        .ok_or_else(|| Fail::new(Kind::NotFound, format!("backup {id} has no archive")))?;
    let out = output.unwrap_or_else(|| PathBuf::from(format!("{id}.tar.zst")));
    let written = copy_stream(vault, &key, &out).await?;
    ui.out(
        &serde_json::json!({ "file": out, "bytes": written }),
        || format!("wrote {} ({written} bytes)", out.display()),
    );
    Ok(())
}

mod stream {
    use std::io::Write;
    use std::path::Path;

    use cairn::Vault;
    use futures::StreamExt;

    use crate::fail::{Fail, Kind};

    /// Streams an object of the store to a new file, then syncs it.
    pub(super) async fn copy_stream(vault: &Vault, key: &str, out: &Path) -> Result<u64, Fail> {
        let (_, mut stream) = vault
            .store()
            .get_stream(key)
            .await
            .map_err(|e| Fail::from(cairn::Error::from(e)))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", out.display())))?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Fail::from(cairn::Error::from(e)))?;
            file.write_all(&chunk)
                .map_err(|e| Fail::new(Kind::Other, format!("{}: {e}", out.display())))?;
            n += chunk.len() as u64;
        }
        file.sync_all()
            .map_err(|e| Fail::new(Kind::Other, format!("{}: {e}", out.display())))?;
        Ok(n)
    }
}

const TEMPLATE: &str = r#"# Cairn configuration. Paths are relative to this file.
# Every key is optional except the targets' names and components.

# Where archives go: a path, file:///..., s3://bucket/prefix, az://container/prefix.
# store = "/var/backups/cairn"
# [store_options]                 # for S3 / Azure (or use AWS_* / AZURE_* variables)
# endpoint = "http://127.0.0.1:9000"
# region = "us-east-1"
# allow_http = false

# The catalog (SQLite) and the signing key (PKCS#8 PEM, mode 0600, made on
# first use); by default both live in the state folder ($CAIRN_HOME).
# catalog = "state/catalog.db"
# key = "state/key.pem"
# origin = "org_myservice_prod"   # names this installation (checked on restore)
# job_timeout = "2h"

[[target]]
name = "web"                      # [a-z0-9][a-z0-9_-]{0,62}
every = "6h"                      # automatic backups (needs a running scheduler)
# min_interval = "1h"             # floor between scheduled backups
# cooldown = "72h"                # re-enabling after a disable waits this long
# pre_restore = "systemctl stop web"
# post_restore = "systemctl start web"
# hook_timeout = "5m"
# verify_after_write = "sample"   # quick | sample | full

[[target.component]]
name = "site"
kind = "dir"                      # dir | file | sqlite
path = "/srv/web/site"

[[target.component]]
name = "db"
kind = "sqlite"                   # a consistent snapshot while the service writes
path = "/srv/web/web.db"

[[target.component]]
name = "uploads"
kind = "dir"
path = "/srv/web/uploads"
optional = true                   # only when asked for (--include uploads)

[target.retention]                # see docs/retention.md
keep_last = 30
# keep_daily = 7
# keep_weekly = 4
# keep_monthly = 12
# keep_within = "2d"
# timezone = "Europe/Paris"

[server]                          # cairn-server only; the CLI ignores it
listen = "127.0.0.1:8420"         # beyond loopback, tokens are required
# max_upload_bytes = 17179869184  # larger uploads get 413
# request_timeout = "30s"
# shutdown_grace = "60s"          # running jobs may finish within it
# log_json = true
# [[server.token]]                # `cairn-server token --name ci --scope backups:read`
# name = "ci"                     # prints a token and the lines to put here
# sha256 = "<hex of the token's SHA-256>"
# scopes = ["backups:read", "backups:write"]
"#;

fn init(output: &Path, force: bool, ui: &Ui) -> Result<(), Fail> {
    if output.exists() && !force {
        return Err(
            Fail::new(Kind::Usage, format!("{} exists", output.display()))
                .hint("add --force to replace it"),
        );
    }
    // The template must stay a valid configuration.
    toml::from_str::<config::File>(TEMPLATE).map_err(|e| {
        Fail::new(
            Kind::Other,
            format!("the built-in template is invalid: {e}"),
        )
    })?;
    std::fs::write(output, TEMPLATE)
        .map_err(|e| Fail::new(Kind::Other, format!("{}: {e}", output.display())))?;
    ui.out(&serde_json::json!({ "config": output }), || {
        format!(
            "wrote {}: edit its targets, then `cairn backup web`",
            output.display()
        )
    });
    Ok(())
}
