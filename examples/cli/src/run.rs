//! Each command: its arguments read, one call into the `Vault`, its result
//! printed.

use std::path::Path;

use cairn::{
    BackupFilter, BackupRequest, ComponentName, Cursor, JobResult, PruneRequest, ResetRequest,
    RestoreRequest, TargetName, UploadRequest, Vault, VerifyRequest,
};
use cairn_config::{self as config, Settings};
use futures::StreamExt;

use crate::args::{BackupArgs, CatalogCommand, Command, KeyCommand, ScheduleAction};
use crate::fail::{Fail, Kind};
use crate::render;
use crate::ui::{Ui, job_failure};

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

/// Runs one command.
pub(crate) async fn run(cmd: Command, config_path: Option<&Path>, ui: &Ui) -> Result<(), Fail> {
    // What needs no configuration.
    match &cmd {
        Command::Init { output, force } => return crate::init::init(output, *force, ui),
        Command::Key(KeyCommand::Generate { output }) => {
            config::key(output, None)?;
            ui.out(&serde_json::json!({ "key": output }), || {
                format!("wrote {}", output.display())
            });
            return Ok(());
        }
        Command::Key(KeyCommand::AgeGenerate { output }) => {
            let identity = cairn::AgeIdentity::generate();
            config::write_new(output, identity.to_file_text().as_bytes(), 0o600)?;
            let recipient = identity.recipient();
            ui.out(
                &serde_json::json!({
                    "identity": output,
                    "recipient": recipient.to_string(),
                    "fingerprint": recipient.fingerprint(),
                }),
                || {
                    format!(
                        "wrote {}\nrecipient: {recipient}\nBackups encrypted to this recipient cannot be restored without this identity file: keep a copy offline.",
                        output.display()
                    )
                },
            );
            return Ok(());
        }
        Command::Backup(BackupArgs {
            no_wait: true,
            detached: false,
            ..
        }) => return crate::background::detach(ui),
        _ => {}
    }
    let mut settings = config::load(config_path)?;
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
    match cmd {
        Command::Key(KeyCommand::Rotate { key }) => rotate(&mut settings, key.as_deref(), ui).await,
        Command::Backup(args) => {
            // A directory that is not a target becomes one (zero configuration).
            let mut target = args.target.clone();
            if !settings.targets.iter().any(|t| t.name.as_str() == target) {
                let (name, created) = config::target_for_path(&mut settings, Path::new(&target))?;
                if created {
                    ui.note(&format!(
                        "backing up {target} as target {name} (state in {})",
                        settings.home.display()
                    ));
                }
                target = name;
            }
            let vault = open(&settings).await?;
            backup(&vault, &target, args, ui).await
        }
        cmd => with_vault(&open(&settings).await?, cmd, ui).await,
    }
}

/// The commands that work on an open vault.
async fn with_vault(vault: &Vault, cmd: Command, ui: &Ui) -> Result<(), Fail> {
    match cmd {
        Command::List {
            target,
            limit,
            cursor,
            deleted,
            all_targets,
        } => {
            // The targets this installation runs, unless one is named or
            // the fleet is asked for.
            let targets = (!all_targets && target.is_none()).then(|| vault.target_names());
            let filter = BackupFilter {
                targets,
                target: target
                    .map(|t| TargetName::parse(&t))
                    .transpose()
                    .map_err(|e| Fail::new(Kind::Usage, e.to_string()))?,
                include_deleted: deleted,
                ..BackupFilter::default()
            };
            let cursor = cursor
                .map(|c| Cursor::decode(&c))
                .transpose()
                .map_err(|_| Fail::new(Kind::Usage, "invalid --cursor"))?;
            // What other hosts sharing the store did, first (not again on
            // the next pages of the same listing).
            if cursor.is_none() {
                if all_targets {
                    vault.sync_all_targets().await?;
                } else {
                    vault.sync().await?;
                }
            }
            let page = vault.list(filter, limit.clamp(1, 1000), cursor).await?;
            let next = page.next.as_ref().map(Cursor::encode);
            ui.listed(
                &serde_json::json!({ "items": page.items, "next": next, "has_more": page.has_more }),
                page.items.iter().map(|r| r.id),
                || render::page(&page.items, next.as_deref()),
            );
        }
        Command::Show {
            id,
            manifest: false,
        } => {
            let r = vault.get(&id).await?;
            ui.out(&r, || render::details(&r));
        }
        Command::Show { id, manifest: true } => {
            // The head alone; with --json the entries follow page by page, so
            // a listing of a million files holds one page at a time.
            let head = vault.manifest_page(&id, 0, Some(0)).await?;
            if ui.json && head.version.major < 2 {
                // A format 1 manifest is one document: read it once.
                let m = vault.manifest(&id).await?;
                ui.out(&m, || render::manifest(&m));
            } else if ui.json {
                print_manifest(vault, &id, &head).await?;
            } else {
                ui.out(&head, || render::manifest(&head));
            }
        }
        Command::Restore {
            id,
            include,
            to,
            dry_run,
            yes,
            force,
            target,
            path,
        } => {
            let mut req = RestoreRequest::new();
            if let Some(p) = path {
                req = req.path(p);
            }
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
            let r = finished(&job)?;
            if let Some(r) = r.restore() {
                ui.out(r, || render::restore(r));
            }
        }
        Command::Verify { id, public_key, .. } if Path::new(&id).is_file() => {
            let key = public_key
                .map(|p| {
                    let pem = std::fs::read_to_string(&p)
                        .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", p.display())))?;
                    cairn::PublicKey::from_public_key_pem(&pem)
                        .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", p.display())))
                })
                .transpose()?;
            let checked = vault.verify_file(Path::new(&id), key).await.map_err(|e| {
                Fail::from(e)
                    .hint("the file cannot be trusted; check the --public-key, or use another copy")
            })?;
            // `ok` is always true here: a file that does not check out is
            // an error; the JSON says it like a verification job's report.
            #[derive(serde::Serialize)]
            struct Checked<'a> {
                ok: bool,
                #[serde(flatten)]
                file: &'a cairn::FileVerification,
            }
            let shown = Checked {
                ok: true,
                file: &checked,
            };
            ui.out(&shown, || render::verify_file(&checked));
        }
        Command::Verify { id, tier, .. } => {
            let job = ui
                .wait(vault.verify(&id, VerifyRequest::new(tier)).await?)
                .await;
            let r = finished(&job)?;
            let Some(report) = r.verify() else {
                return Ok(());
            };
            ui.out(report, || render::verify(&id, report));
            if !report.ok {
                return Err(Fail::new(
                    Kind::Verification,
                    format!("backup {id} failed verification: {}", report.message),
                )
                .hint("the backup cannot be trusted; restore another one"));
            }
        }
        Command::Delete { id, yes } => {
            ui.confirm(
                &format!("deleting backup {id} (recoverable for 24 h with `cairn undelete`)"),
                yes,
            )?;
            let r = vault.delete(&id).await?;
            ui.out(&r, || format!("deleted {id}"));
        }
        Command::Undelete { id } => {
            let r = vault.undelete(&id).await?;
            ui.out(&r, || format!("restored {id} to the list"));
        }
        Command::Pin { id } => {
            let r = vault.pin(&id).await?;
            ui.out(&r, || format!("pinned {id}"));
        }
        Command::Unpin { id } => {
            let r = vault.unpin(&id).await?;
            ui.out(&r, || format!("unpinned {id}"));
        }
        Command::Prune {
            target,
            dry_run,
            yes,
        } => {
            let mut req = PruneRequest::new();
            if dry_run {
                req = req.dry_run();
            } else {
                ui.confirm(
                    &format!("applying retention to {target} (evicted backups are soft-deleted)"),
                    yes,
                )?;
            }
            let job = ui.wait(vault.prune(&target, req).await?).await;
            let r = finished(&job)?;
            if let Some(report) = r.prune() {
                ui.listed(report, report.changed(), || render::prune(report));
            }
        }
        Command::Reset { target, yes } => {
            ui.confirm(
                &format!("resetting target {target} to its factory backup (or empty)"),
                yes,
            )?;
            let job = ui
                .wait(vault.reset(&target, ResetRequest::new().confirm()).await?)
                .await;
            let r = finished(&job)?;
            if let Some(r) = r.restore() {
                ui.out(r, || render::restore(r));
            }
        }
        Command::Upload {
            file,
            target,
            label,
        } => {
            let input = tokio::fs::File::open(&file)
                .await
                .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", file.display())))?;
            let mut req = UploadRequest::new();
            if let Some(l) = label {
                req = req.label(l);
            }
            let job = ui.wait(vault.upload(&target, input, req).await?).await;
            let r = finished(&job)?;
            if let Some(u) = r.upload() {
                ui.listed(u, [&u.backup.backup_id], || render::upload(u));
            }
        }
        Command::Download { id, output } => download(vault, &id, output, ui).await?,
        Command::Cat { id, path } => {
            let file = vault.extract(&id, &path).await?;
            if file.is_dir() {
                return Err(Fail::new(
                    Kind::Usage,
                    format!(
                        "{path} is a folder: restore it with cairn restore {id} --path {path} --to DIR"
                    ),
                ));
            }
            let copied = tokio::task::spawn_blocking(move || {
                let mut from = std::fs::File::open(file.path())?;
                let mut out = std::io::stdout().lock();
                std::io::copy(&mut from, &mut out)?;
                std::io::Write::flush(&mut out)
            })
            .await
            .map_err(|e| Fail::new(Kind::Other, e.to_string()))?;
            copied.map_err(|e| Fail::new(Kind::Other, format!("writing the file: {e}")))?;
        }
        Command::Url { id, ttl } => {
            let ttl = config::duration("--ttl", &ttl)?;
            let url = vault.download_url(&id, ttl).await?;
            ui.listed(
                &serde_json::json!({ "url": url.url, "expires_at": url.expires_at }),
                [&url.url],
                || url.url.clone(),
            );
        }
        Command::Schedule { action, target } => {
            let state = match action {
                ScheduleAction::Enable => vault.schedule(&target, true).await?,
                ScheduleAction::Disable => vault.schedule(&target, false).await?,
                ScheduleAction::Status => vault.schedule_status(&target).await?,
            };
            ui.out(&state, || render::schedule(&target, &state));
        }
        Command::RestoreStatus { target } => {
            let s = vault.restore_status(&target).await?;
            ui.out(&s, || render::restore_status(&target, &s));
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
        }
        Command::Catalog(CatalogCommand::Rebuild) => {
            let r = vault.rebuild_catalog().await?;
            let json = serde_json::json!({
                "targets": r.targets,
                "backups": r.backups,
                "incomplete": r.incomplete.iter().map(|(t, id)| format!("{t}/{id}")).collect::<Vec<_>>(),
                "invalid": r.invalid.iter().map(|(t, id, why)| serde_json::json!({"target": t.to_string(), "id": id.to_string(), "why": why})).collect::<Vec<_>>(),
                "state_records": r.state_records,
            });
            ui.out(&json, || {
                format!(
                    "rebuilt: {} backups in {} targets; {} incomplete, {} invalid; {} shared decisions applied",
                    r.backups,
                    r.targets,
                    r.incomplete.len(),
                    r.invalid.len(),
                    r.state_records
                )
            });
        }
        Command::Catalog(CatalogCommand::Sync { all_targets }) => {
            let r = if all_targets {
                vault.sync_all_targets().await?
            } else {
                vault.sync().await?
            };
            let json = serde_json::json!({
                "targets": r.targets,
                "new_backups": r.new_backups,
                "changes": r.changes,
            });
            ui.out(&json, || {
                format!(
                    "synced {} targets: {} new backups, {} shared decisions applied",
                    r.targets, r.new_backups, r.changes
                )
            });
        }
        Command::Jobs { target, limit } => {
            let jobs = vault
                .jobs(target.as_deref(), &[], limit.clamp(1, 1000))
                .await?;
            ui.listed(&jobs, jobs.iter().map(|j| &j.id), || render::jobs(&jobs));
        }
        Command::Job { id, watch: false } => {
            let job = vault.job(&id).await?.status();
            ui.out(&job, || render::job(&job));
        }
        Command::Job { id, watch: true } => watch(vault, &id, ui).await?,
        Command::Cancel { id } => {
            vault.cancel(&id).await?;
            ui.out(
                &serde_json::json!({ "job": id, "cancel_requested": true }),
                || format!("asked {id} to stop; `cairn job {id}` shows when it has"),
            );
        }
        Command::Init { .. }
        | Command::Backup(_)
        | Command::Key(
            KeyCommand::Generate { .. }
            | KeyCommand::AgeGenerate { .. }
            | KeyCommand::Rotate { .. },
        ) => {
            unreachable!("handled before the vault is opened")
        }
    }
    Ok(())
}

/// A succeeded job's result, or its failure.
fn finished(job: &cairn::Job) -> Result<JobResult, Fail> {
    if let Some(f) = job_failure(job) {
        return Err(f);
    }
    job.result.clone().ok_or_else(|| {
        Fail::new(
            Kind::Other,
            format!("{} {} has no result", job.kind, job.id),
        )
    })
}

/// `cairn backup`: in this process, or (`--detached`) as the background
/// process of `--no-wait`.
async fn backup(vault: &Vault, target: &str, args: BackupArgs, ui: &Ui) -> Result<(), Fail> {
    let mut req = BackupRequest::new().kind(args.kind);
    if args.full {
        req = req.full();
    }
    if args.full_read {
        req = req.full_read();
    }
    if let Some(l) = args.label {
        req = req.label(l);
    }
    for n in names(&args.include)? {
        req = req.include(n);
    }
    let handle = vault.backup(target, req).await?;
    if args.detached {
        return crate::background::report_and_wait(handle).await;
    }
    let job = ui.wait(handle).await;
    let r = finished(&job)?;
    if let Some(b) = r.backup() {
        ui.listed(b, [&b.backup_id], || render::backup(b));
    }
    Ok(())
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

/// Follows a job (of any process) until it ends: a line per change, JSON
/// lines with `--json`; the exit code is the job's.
async fn watch(vault: &Vault, id: &str, ui: &Ui) -> Result<(), Fail> {
    let mut jobs = std::pin::pin!(vault.follow(id).await?);
    while let Some(job) = jobs.next().await {
        let job = job?;
        ui.line(&job, || render::job(&job));
        if job.state.is_terminal() {
            return job_failure(&job).map_or(Ok(()), Err);
        }
    }
    Ok(())
}

/// `cairn download`: the archive streamed into a new file, then synced.
async fn download(
    vault: &Vault,
    id: &str,
    output: Option<std::path::PathBuf>,
    ui: &Ui,
) -> Result<(), Fail> {
    use tokio::io::AsyncWriteExt;
    let mut stream = vault.open_archive(id, None).await?;
    let extension = if stream.encrypted {
        "tar.zst.age"
    } else {
        "tar.zst"
    };
    let out = output.unwrap_or_else(|| format!("{id}.{extension}").into());
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .await
        .map_err(|e| Fail::new(Kind::Usage, format!("{}: {e}", out.display())))?;
    let written_err = |e: std::io::Error| Fail::new(Kind::Other, format!("{}: {e}", out.display()));
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk).await.map_err(written_err)?;
        n += chunk.len() as u64;
    }
    file.sync_all().await.map_err(written_err)?;
    ui.out(&serde_json::json!({ "file": out, "bytes": n }), || {
        format!("wrote {} ({n} bytes)", out.display())
    });
    Ok(())
}

/// Entries per page of a streamed manifest listing.
const LISTING_PAGE: u64 = 4096;

/// Prints backup `id`'s manifest as JSON, its entries fetched `LISTING_PAGE`
/// at a time: the same document `--json` prints for any other result.
async fn print_manifest(vault: &Vault, id: &str, head: &cairn::Manifest) -> Result<(), Fail> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(head)
        .map_err(|e| Fail::new(Kind::Other, format!("cannot encode the manifest: {e}")))?;
    let (before, after) = text
        .split_once("\"entries\": []")
        .ok_or_else(|| Fail::new(Kind::Other, "the manifest has no entries field".to_owned()))?;
    let total: u64 = head.components.iter().map(|c| c.entries).sum();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let io = |e: std::io::Error| Fail::new(Kind::Other, format!("writing the listing: {e}"));
    write!(out, "{before}\"entries\": [").map_err(io)?;
    let mut offset = 0u64;
    while offset < total {
        let page = vault.manifest_page(id, offset, Some(LISTING_PAGE)).await?;
        if page.entries.is_empty() {
            break;
        }
        for e in &page.entries {
            let line = serde_json::to_string(e)
                .map_err(|e| Fail::new(Kind::Other, format!("cannot encode an entry: {e}")))?;
            let sep = if offset == 0 { "" } else { "," };
            write!(out, "{sep}\n    {line}").map_err(io)?;
            offset += 1;
        }
    }
    let close = if offset == 0 { "" } else { "\n  " };
    writeln!(out, "{close}]{after}").map_err(io)?;
    out.flush().map_err(io)
}
