//! What the commands print as text (`--json` prints the values themselves).

use cairn::{
    BackupRecord, BackupResult, FileVerification, Job, JobState, Manifest, PruneReport,
    RestoreResult, RestoreStatus, Restored, Schedule, UploadResult, VerifyReport,
};

/// One backup in a listing.
pub(crate) fn line(r: &BackupRecord) -> String {
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

/// A page of backups, and how to get the next.
pub(crate) fn page(items: &[BackupRecord], next: Option<&str>) -> String {
    let mut lines: Vec<String> = items.iter().map(line).collect();
    if items.is_empty() {
        lines.push("no backups".to_owned());
    }
    if let Some(n) = next {
        lines.push(format!("more: cairn list --cursor {n}"));
    }
    lines.join("\n")
}

/// One backup's record.
pub(crate) fn details(r: &BackupRecord) -> String {
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
    if let Some(parent) = r.parent() {
        s.push(format!(
            "incremental of {parent} (depth {}; chain {})",
            r.depth(),
            r.parents
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" < ")
        ));
    }
    if !r.recipients.is_empty() {
        s.push(format!(
            "encrypted   to {} (age recipients' fingerprints)",
            r.recipients.join(", ")
        ));
    }
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

/// A backup's manifest: its components and what was skipped.
pub(crate) fn manifest(m: &Manifest) -> String {
    let mut s = vec![format!(
        "backup {} of {} ({} entries)",
        m.backup_id,
        m.target,
        m.components.iter().map(|c| c.entries).sum::<u64>()
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

/// A new backup.
pub(crate) fn backup(r: &BackupResult) -> String {
    let mut s = format!(
        "{}  {} bytes archived ({} entries, {} bytes of data)",
        r.backup_id, r.size, r.entries, r.data_bytes
    );
    match &r.parent {
        Some(parent) => s.push_str(&format!(
            "\nincremental of {parent} (depth {}): {} bytes read, {} bytes stored, {} bytes of {} unchanged files skipped",
            r.depth,
            r.data_bytes.saturating_sub(r.reused_bytes),
            r.size,
            r.reused_bytes,
            r.reused_files
        )),
        None => s.push_str("\nfull backup"),
    }
    if !r.skipped.is_empty() {
        s.push_str(&format!(
            "\nskipped (vanished or special files): {}",
            r.skipped.len()
        ));
    }
    s
}

/// A new backup made from an upload.
pub(crate) fn upload(r: &UploadResult) -> String {
    format!(
        "{}\nfrom a {} file of {} bytes",
        backup(&r.backup),
        r.source_format,
        r.source_size
    )
}

/// A restore or a reset.
pub(crate) fn restore(r: &RestoreResult) -> String {
    if let Restored::Preview { dry_run: d } = &r.done {
        let mut lines = Vec::new();
        for (what, paths) in [
            ("create", &d.create),
            ("replace", &d.replace),
            ("delete", &d.delete),
        ] {
            lines.extend(paths.iter().map(|p| format!("  {what:7} {}", p.display())));
        }
        lines.push(format!(
            "{} unchanged (dry run: nothing changed)",
            d.unchanged
        ));
        return lines.join("\n");
    }
    let mut s = format!(
        "restored {} from {}",
        r.components.join(", "),
        r.backup_id.as_deref().unwrap_or("(empty)")
    );
    match &r.done {
        Restored::Into { to, .. } => s.push_str(&format!(" into {}", to.display())),
        Restored::InPlace {
            post_hook_error: Some(e),
            ..
        } => s.push_str(&format!("\nwarning: {e}")),
        _ => {}
    }
    s
}

/// What retention decided, backup by backup.
pub(crate) fn prune(r: &PruneReport) -> String {
    let mut out: Vec<String> = r
        .plan
        .decisions
        .iter()
        .map(|d| {
            let action = serde_json::to_value(d.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
            format!("{action:7} {}  {}", d.id, reasons.join("; "))
        })
        .collect();
    if r.dry_run {
        out.push("(dry run: nothing changed)".to_owned());
    }
    out.join("\n")
}

/// A verification of a stored backup.
pub(crate) fn verify(id: &str, r: &VerifyReport) -> String {
    format!(
        "{} {id}: {}",
        if r.ok { "verified" } else { "FAILED" },
        r.message
    )
}

/// A verification of an archive file.
pub(crate) fn verify_file(v: &FileVerification) -> String {
    format!(
        "verified: every entry and the signature of backup {} ({} entries){}",
        v.backup_id,
        v.entries,
        if v.seal_checked {
            "; the seal matches"
        } else {
            "; no .seal file beside it"
        }
    )
}

/// A job, on one line (two when it failed).
pub(crate) fn job(j: &Job) -> String {
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

/// Jobs, one per line.
pub(crate) fn jobs(jobs: &[Job]) -> String {
    jobs.iter()
        .map(|j| format!("{}  {:8} {:10} {}", j.id, j.kind, j.state, j.target))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A target's automatic backups.
pub(crate) fn schedule(target: &str, s: &Schedule) -> String {
    if s.enabled {
        format!("automatic backups of {target}: enabled")
    } else {
        let mut line = format!(
            "automatic backups of {target}: disabled{}",
            s.disabled_at
                .map(|d| format!(" since {d}"))
                .unwrap_or_default()
        );
        if let Some(until) = s.cooldown_until {
            line.push_str(&format!("; they can be re-enabled from {until}"));
        }
        line
    }
}

/// A target's last restore.
pub(crate) fn restore_status(target: &str, s: &RestoreStatus) -> String {
    format!(
        "{}: {} ({})",
        target,
        serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.status_message
    )
}
