//! The dashboard's pages, rendered with maud. Every value from a backup
//! (names, labels, paths, messages) goes through maud's escaping; links
//! carry their parts percent-encoded.

// A page's errors are the API's (`ApiError`), shown as a page by the
// handler: no `# Errors` prose for each.
#![allow(clippy::missing_errors_doc)]

use std::collections::HashMap;
use std::fmt::Write as _;

use cairn::{
    BackupFilter, BackupRecord, BackupStatus, Cursor, EntryKind, Job, JobState, PruneReport,
    TargetSummary, Vault,
};
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;

use super::session::Viewer;
use crate::auth::Scope;
use crate::error::ApiError;

type PageResult = Result<Markup, ApiError>;

/// The serde name of one of the library's enums (`ready`, `backup`, …).
fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A query-string value, percent-encoded.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Bytes for people: `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// How long ago `t` was, roughly: `5 min ago`.
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    let s = (now - t).get_seconds().max(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn when(t: Timestamp) -> Markup {
    let shown = t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(t.to_string()) { (shown) } }
}

fn csrf(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// The page around every screen.
fn layout(title: &str, viewer: Option<&Viewer>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cairn" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    strong { "Cairn" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            a href="/" { "Overview" }
                            a href="/jobs" { "Jobs" }
                        }
                        span.who { "Signed in as " (v.name) " (" (v.scope.as_str()) ")" }
                        form.inline method="post" action="/logout" {
                            (csrf(v))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page saying what went wrong.
pub fn error_page(
    viewer: Option<&Viewer>,
    status: axum::http::StatusCode,
    message: &str,
) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        viewer,
        &html! {
            p.message.error role="alert" { (message) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// The login form.
pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        &html! {
            @if let Some(e) = error { p.message.error role="alert" { (e) } }
            form method="post" action="/login" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required;
                p.muted { "The bearer token this server was configured with. The session lasts 12 hours, or until the server restarts." }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// A running job's live bar (moved by `app.js`; `reload`: the page shows
/// the job's result once it ends).
fn progress(job: &Job, reload: bool) -> Markup {
    let pct = job.progress.percent;
    html! {
        div.job data-job=(job.id) data-state=(name(&job.state)) data-reload[reload] {
            progress max="100" value=(pct) aria-label=(format!("Progress of {} {}", name(&job.kind), job.id)) {}
            " " span data-role="text" { (name(&job.state)) " · " (name(&job.progress.phase)) " · " (pct) "%" }
        }
    }
}

/// A target's health: what an operator must look at first.
struct Health {
    class: &'static str,
    text: String,
}

fn health(s: Option<&TargetSummary>, every: Option<u64>, enabled: bool, now: Timestamp) -> Health {
    let bad = |text: String| Health { class: "bad", text };
    let Some(s) = s else {
        return if enabled && every.is_some() {
            bad("no backup yet".to_owned())
        } else {
            Health {
                class: "warn",
                text: "no backup yet".to_owned(),
            }
        };
    };
    if s.last_status == Some(BackupStatus::Failed) {
        return bad("last backup failed".to_owned());
    }
    if s.last_verification_ok == Some(false) {
        return bad("last verification failed".to_owned());
    }
    match (s.last_ready, every.filter(|_| enabled)) {
        (None, _) => bad("no good backup".to_owned()),
        // Overdue: no good backup within two intervals.
        (Some(t), Some(every))
            if (now - t).get_seconds()
                > i64::try_from(every.saturating_mul(2)).unwrap_or(i64::MAX) =>
        {
            bad(format!("overdue: last good {}", ago(t, now)))
        }
        (Some(t), _) => Health {
            class: "ok",
            text: format!("ok: last good {}", ago(t, now)),
        },
    }
}

/// The overview: every target with its health, the running jobs, totals.
pub async fn overview(vault: &Vault, viewer: &Viewer) -> PageResult {
    let now = Timestamp::now();
    let summaries = vault.summaries().await?;
    let running = vault
        .jobs(None, &[JobState::Queued, JobState::Running], 100)
        .await?;
    let by_name: HashMap<String, &TargetSummary> = summaries
        .iter()
        .map(|s| (s.target.to_string(), s))
        .collect();
    // The targets this server runs first, then those it only follows.
    let mut rows: Vec<(String, bool)> = vault
        .target_names()
        .into_iter()
        .map(|t| (t.to_string(), true))
        .collect();
    for s in &summaries {
        if !rows.iter().any(|(n, _)| *n == s.target.as_str()) {
            rows.push((s.target.to_string(), false));
        }
    }
    let (backups, stored) = summaries
        .iter()
        .fold((0, 0), |(b, s), t| (b + t.backups, s + t.stored_bytes));
    let mut lines = Vec::with_capacity(rows.len());
    let mut unhealthy = 0;
    for (target, runs) in &rows {
        let schedule = if *runs {
            Some(vault.schedule_status(target).await?)
        } else {
            None
        };
        let every = schedule.as_ref().and_then(|s| s.every_seconds);
        let enabled = schedule.as_ref().is_some_and(|s| s.enabled);
        let h = health(by_name.get(target).copied(), every, enabled, now);
        if h.class == "bad" {
            unhealthy += 1;
        }
        lines.push((target, *runs, h, schedule));
    }
    Ok(layout(
        "Overview",
        Some(viewer),
        &html! {
            section.totals aria-label="Totals" {
                div { b { (rows.len()) } "targets" }
                div { b.(if unhealthy > 0 { "bad" } else { "ok" }) { (unhealthy) } "need attention" }
                div { b { (backups) } "backups" }
                div { b { (bytes(stored)) } "stored" }
            }
            h2 { "Running" }
            @if running.is_empty() {
                p.muted { "No job runs." }
            } @else {
                ul {
                    @for j in &running {
                        li {
                            a href=(format!("/jobs/{}", j.id)) { (name(&j.kind)) " of " (j.target) }
                            (progress(j, false))
                        }
                    }
                }
            }
            h2 { "Targets" }
            p.muted { "Health: red when the last backup or verification failed, or when no good backup is younger than two schedule intervals." }
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Target" } th scope="col" { "Health" }
                        th scope="col" { "Schedule" } th.num scope="col" { "Backups" }
                        th.num.wide scope="col" { "Stored" } th scope="col" { span.skip { "Actions" } }
                    } }
                    tbody {
                        @for (target, runs, h, schedule) in &lines {
                            @let s = by_name.get(target.as_str());
                            tr {
                                th scope="row" { a href=(format!("/targets/{}", enc(target))) { (target) } }
                                td { span.badge.(h.class) { (h.text) } }
                                td {
                                    @match schedule {
                                        Some(s) if s.enabled => { (s.every_seconds.map_or("manual only".to_owned(), |e| format!("every {e} s"))) }
                                        Some(_) => span.warn { "disabled" },
                                        None => span.muted { "followed (another host runs it)" },
                                    }
                                }
                                td.num { (s.map_or(0, |s| s.backups)) }
                                td.num.wide { (bytes(s.map_or(0, |s| s.stored_bytes))) }
                                td {
                                    @if *runs && viewer.can(Scope::Write) {
                                        form.inline method="post" action=(format!("/targets/{}/backup", enc(target))) {
                                            (csrf(viewer))
                                            button type="submit" aria-label=(format!("Back up {target} now")) { "Back up now" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// An SVG chart of a target's backups, oldest left: size bars, duration
/// line.
fn chart(records: &[BackupRecord]) -> Markup {
    let points: Vec<&BackupRecord> = records
        .iter()
        .rev()
        .filter(|r| r.status.is_ready())
        .collect();
    if points.is_empty() {
        return html! { p.muted { "No ready backup to chart yet." } };
    }
    let (w, h) = (900.0_f64, 200.0_f64);
    let max_size = points
        .iter()
        .map(|r| r.data_bytes)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_ms = points
        .iter()
        .filter_map(|r| r.duration_ms)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let step = w / points.len() as f64;
    let mut line = String::new();
    for (i, r) in points.iter().enumerate() {
        if let Some(ms) = r.duration_ms {
            let x = step * (i as f64 + 0.5);
            let y = h - (ms as f64 / max_ms) * (h - 10.0);
            let _ = write!(line, "{x:.1},{y:.1} ");
        }
    }
    let label = format!(
        "{} backups, largest {}, longest {:.1} s",
        points.len(),
        bytes(max_size as u64),
        max_ms / 1000.0
    );
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) {
            title { "Backup size (bars) and duration (line): " (label) }
            @for (i, r) in points.iter().enumerate() {
                @let bh = (r.data_bytes as f64 / max_size) * (h - 10.0);
                rect x=(format!("{:.1}", step * i as f64 + 1.0)) y=(format!("{:.1}", h - bh))
                    width=(format!("{:.1}", (step - 2.0).max(1.0))) height=(format!("{bh:.1}")) fill="#9ab8e6" {
                    title { (r.id) ": " (bytes(r.data_bytes)) }
                }
            }
            polyline points=(line) fill="none" stroke="#b3261e" stroke-width="2" {}
        }
    }
}

/// A target: its backups (filters, pages), a chart, schedule, retention
/// with a preview of a changed policy.
pub async fn target(
    vault: &Vault,
    viewer: &Viewer,
    target: &str,
    q: &HashMap<String, String>,
    preview: Option<(&str, &PruneReport)>,
) -> PageResult {
    let name_ = cairn::TargetName::parse(target)
        .map_err(|e| ApiError::not_found(format!("target {target:?}: {e}")))?;
    let config = vault.target(target).ok();
    let pick = |k: &str| q.get(k).filter(|v| !v.is_empty());
    let filter = BackupFilter {
        target: Some(name_.clone()),
        kind: pick("kind").and_then(|k| serde_json::from_value(k.as_str().into()).ok()),
        status: pick("status").and_then(|s| BackupStatus::parse(s)),
        include_deleted: pick("deleted").is_some(),
        ..BackupFilter::default()
    };
    let cursor = pick("cursor").and_then(|c| Cursor::decode(c).ok());
    let page = vault.list(filter, 50, cursor).await?;
    let recent = vault
        .list(
            BackupFilter {
                target: Some(name_),
                ..BackupFilter::default()
            },
            60,
            None,
        )
        .await?;
    let schedule = match &config {
        Some(_) => Some(vault.schedule_status(target).await?),
        None => None,
    };
    let policy = config
        .as_ref()
        .map(|c| serde_json::to_string_pretty(&c.retention).unwrap_or_default());
    let now = Timestamp::now();
    let next = page.next.as_ref().map(|c| {
        let mut link = format!("/targets/{}?cursor={}", enc(target), enc(&c.encode()));
        for k in ["kind", "status", "deleted"] {
            if let Some(v) = pick(k) {
                let _ = write!(link, "&{k}={}", enc(v));
            }
        }
        link
    });
    let kinds = ["manual", "scheduled", "pre_deploy", "uploaded"];
    Ok(layout(
        &format!("Target {target}"),
        Some(viewer),
        &html! {
            @if config.is_none() {
                p.message { "This server does not run " (target) ": its backups are listed as another host made them (read-only here)." }
            }
            @if config.is_some() && viewer.can(Scope::Write) {
                div.actions {
                    form.inline method="post" action=(format!("/targets/{}/backup", enc(target))) {
                        (csrf(viewer)) button type="submit" { "Back up now" }
                    }
                }
            }
            h2 { "Backups" }
            form.filters method="get" action=(format!("/targets/{}", enc(target))) {
                label { "Kind " select name="kind" {
                    option value="" { "any" }
                    @for k in kinds { option value=(k) selected[pick("kind").map(String::as_str) == Some(k)] { (k) } }
                } }
                label { "Status " select name="status" {
                    option value="" { "any" }
                    @for s in BackupStatus::ALL { option value=(s.as_str()) selected[pick("status").map(String::as_str) == Some(s.as_str())] { (s.as_str()) } }
                } }
                label { input type="checkbox" name="deleted" value="1" checked[pick("deleted").is_some()]; " deleted too" }
                button type="submit" { "Filter" }
            }
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Backup" } th scope="col" { "Created" } th scope="col" { "Kind" }
                    th scope="col" { "Status" } th.num scope="col" { "Size" } th.num.wide scope="col" { "Stored" }
                    th scope="col" { "Pinned" } th.wide scope="col" { "Verified" }
                } }
                tbody {
                    @for r in &page.items {
                        tr {
                            th scope="row" { a href=(format!("/backups/{}", r.id)) { (r.id) } }
                            td { (when(r.created_at)) }
                            td { (name(&r.kind)) }
                            td {
                                span.badge.(if r.status == BackupStatus::Failed { "bad" } else if r.status.is_ready() { "ok" } else { "warn" }) { (r.status.as_str()) }
                                @if r.deleted_at.is_some() { " " span.badge.warn { "deleted" } }
                            }
                            td.num { (bytes(r.data_bytes)) }
                            td.num.wide { (bytes(r.archive_size.unwrap_or(0))) }
                            td { @if r.pinned { "pinned" } }
                            td.wide {
                                @match &r.verification {
                                    Some(v) if v.ok => span.ok { (v.tier) " ok" },
                                    Some(v) => span.bad { (v.tier) " failed" },
                                    None => span.muted { "—" },
                                }
                            }
                        }
                    }
                }
            } }
            @if page.items.is_empty() { p.muted { "No backup matches." } }
            @if let Some(next) = next { p { a href=(next) rel="next" { "Next page" } } }
            h2 { "Size and duration" }
            (chart(&recent.items))
            @if let Some(s) = &schedule {
                h2 { "Schedule" }
                p {
                    @if s.enabled { "Enabled" } @else { "Disabled" }
                    @if let Some(e) = s.every_seconds { ", every " (e) " s" } @else { ", manual only" }
                    @if let Some(t) = s.last_run { ", last run " (ago(t, now)) }
                    @if let Some(t) = s.cooldown_until { ". Re-enabling is refused until " (when(t)) " (cooldown)" }
                    "."
                }
                @if viewer.can(Scope::Admin) {
                    form.inline method="post" action=(format!("/targets/{}/schedule", enc(target))) {
                        (csrf(viewer))
                        input type="hidden" name="enabled" value=(if s.enabled { "false" } else { "true" });
                        button type="submit" { @if s.enabled { "Disable automatic backups" } @else { "Enable automatic backups" } }
                    }
                }
            }
            @if let Some(policy) = &policy {
                h2 #retention { "Retention" }
                @if viewer.can(Scope::Admin) {
                    form method="post" action=(format!("/targets/{}/retention", enc(target))) {
                        (csrf(viewer))
                        label for="policy" { "Policy (JSON, docs/retention.md)" }
                        textarea #policy name="policy" { (preview.map_or(policy.as_str(), |(t, _)| t)) }
                        div.actions {
                            button type="submit" name="action" value="preview" { "Preview" }
                            button type="submit" name="action" value="save" { "Save" }
                        }
                    }
                } @else {
                    pre { (policy) }
                }
                @if let Some((_, report)) = preview {
                    @let gone: Vec<_> = report.plan.decisions.iter().filter(|d| matches!(d.action, cairn::Action::Delete | cairn::Action::Purge)).collect();
                    section aria-label="Preview" {
                        h2 { "Preview of this policy" }
                        @if gone.is_empty() {
                            p.ok { "This policy would delete nothing now." }
                        } @else {
                            p.warn { "This policy would delete or purge " (gone.len()) " backups now:" }
                            ul #preview { @for d in &gone { li { (d.id) " — " (name(&d.action)) } } }
                        }
                        p.muted { "Nothing is changed until you save." }
                    }
                }
            }
        },
    ))
}

/// One entry's row in the browser.
fn entry_row(viewer: &Viewer, id: &str, e: &cairn::Entry) -> Markup {
    let path = String::from_utf8_lossy(e.path.as_bytes()).into_owned();
    let short = path.rsplit('/').next().unwrap_or(&path).to_owned();
    let kind = match e.kind {
        EntryKind::File => "file",
        EntryKind::Dir => "folder",
        EntryKind::Symlink => "link",
        EntryKind::Hardlink => "hard link",
    };
    let mtime = Timestamp::new(e.mtime.secs(), i32::try_from(e.mtime.nanos()).unwrap_or(0)).ok();
    html! {
        tr {
            th scope="row" {
                @if e.kind == EntryKind::Dir {
                    a href=(format!("/backups/{id}?path={}", enc(&path))) { (short) "/" }
                } @else { (short) }
            }
            td { (kind) }
            td.num { @if e.kind == EntryKind::File { (bytes(e.size)) } }
            td.wide { (format!("{:o}", e.mode)) }
            td.wide { @if let Some(t) = mtime { (when(t)) } }
            td {
                @if viewer.can(Scope::Write) && e.kind != EntryKind::Symlink {
                    a href=(format!("/v1/backups/{id}/files?path={}", enc(&path))) download
                        aria-label=(format!("Download {short}")) { "Download" }
                }
            }
        }
    }
}

/// A backup: its record and signer, a browser of its manifest, downloads,
/// verify, pin, delete and restore (dry run first).
pub async fn backup(vault: &Vault, viewer: &Viewer, id: &str, path: &str) -> PageResult {
    let r = vault.get(id).await?;
    let now = Timestamp::now();
    let path = path.trim_matches('/');
    let entries = if path.is_empty() || !r.status.is_ready() || r.deleted_at.is_some() {
        None
    } else {
        Some(vault.list_folder(id, path).await?)
    };
    let runs = vault.target(r.target.as_str()).is_ok();
    let mut crumbs = Vec::new();
    let mut acc = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        crumbs.push((part.to_owned(), acc.clone()));
    }
    Ok(layout(
        &format!("Backup {id}"),
        Some(viewer),
        &html! {
            dl.record {
                dt { "Target" } dd { a href=(format!("/targets/{}", enc(r.target.as_str()))) { (r.target) } }
                dt { "Status" } dd { (r.status.as_str()) @if let Some(m) = &r.status_message { " — " (m) } }
                dt { "Kind" } dd { (name(&r.kind)) }
                @if let Some(l) = &r.label { dt { "Label" } dd { (l) } }
                dt { "Created" } dd { (when(r.created_at)) " (" (ago(r.created_at, now)) ")" }
                @if let Some(ms) = r.duration_ms { dt { "Duration" } dd { (format!("{:.1} s", ms as f64 / 1000.0)) } }
                dt { "Size" } dd { (bytes(r.data_bytes)) ", " (r.entries) " entries; " (bytes(r.archive_size.unwrap_or(0))) " stored" }
                dt { "Signer" } dd { (r.signer.as_deref().unwrap_or("—")) }
                @if let Some(h) = &r.hostname { dt { "Made on" } dd { (h) } }
                @if !r.parents.is_empty() {
                    dt { "Chain" } dd { @for p in &r.parents { a href=(format!("/backups/{p}")) { (p) } " " } }
                }
                dt { "Encrypted" } dd { @if r.recipients.is_empty() { "no" } @else { "yes, to " (r.recipients.len()) " recipients" } }
                dt { "Pinned" } dd { @if r.pinned { "yes" } @else { "no" } }
                @if let Some(d) = r.deleted_at { dt { "Deleted" } dd { (when(d)) } }
                dt { "Verified" } dd {
                    @match &r.verification {
                        Some(v) => { (v.tier) " " @if v.ok { span.ok { "ok" } } @else { span.bad { "failed: " (v.message) } } " " (ago(v.at, now)) },
                        None => span.muted { "not yet" },
                    }
                }
            }
            div.actions {
                @if viewer.can(Scope::Write) && r.status.is_ready() {
                    form.inline method="post" action=(format!("/backups/{id}/verify")) {
                        (csrf(viewer)) input type="hidden" name="tier" value="full";
                        button type="submit" { "Verify" }
                    }
                }
                @if viewer.can(Scope::Admin) {
                    form.inline method="post" action=(format!("/backups/{id}/pin")) {
                        (csrf(viewer)) input type="hidden" name="pinned" value=(if r.pinned { "false" } else { "true" });
                        button type="submit" { @if r.pinned { "Unpin" } @else { "Pin" } }
                    }
                    @if r.deleted_at.is_none() && !r.pinned {
                        form.inline method="post" action=(format!("/backups/{id}/delete")) {
                            (csrf(viewer)) button.danger type="submit" { "Delete" }
                        }
                    }
                    @if runs && r.status.is_ready() && r.deleted_at.is_none() {
                        form.inline method="post" action=(format!("/backups/{id}/restore/preview")) {
                            (csrf(viewer)) button type="submit" { "Restore…" }
                        }
                    }
                }
            }
            h2 { "Files" }
            nav aria-label="Folder" {
                a href=(format!("/backups/{id}")) { "components" }
                @for (part, link) in &crumbs { " / " a href=(format!("/backups/{id}?path={}", enc(link))) { (part) } }
            }
            @match &entries {
                None => {
                    @if r.status.is_ready() && r.deleted_at.is_none() {
                        ul { @for c in &r.components { li { a href=(format!("/backups/{id}?path={}", enc(c))) { (c) "/" } } } }
                    } @else {
                        p.muted { "Only a ready backup that is not deleted can be browsed." }
                    }
                }
                Some(list) => {
                    @if viewer.can(Scope::Write) {
                        p { a href=(format!("/v1/backups/{id}/files?path={}", enc(path))) download { "Download this folder (tar.zst)" } }
                    }
                    div.scroll { table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th.num scope="col" { "Size" } th.wide scope="col" { "Mode" } th.wide scope="col" { "Modified" } th scope="col" { span.skip { "Download" } } } }
                        tbody { @for e in list { (entry_row(viewer, id, e)) } }
                    } }
                    @if list.is_empty() { p.muted { "Empty folder." } }
                }
            }
        },
    ))
}

/// The dry run of a restore, then the confirmation that names the target.
pub async fn restore_preview(vault: &Vault, viewer: &Viewer, id: &str, job: &Job) -> PageResult {
    let r = vault.get(id).await?;
    let preview = job
        .result
        .as_ref()
        .and_then(|res| res.restore())
        .and_then(|res| match &res.done {
            cairn::Restored::Preview { dry_run } => Some(dry_run.clone()),
            _ => None,
        });
    let Some(p) = preview else {
        let why = job
            .error
            .as_ref()
            .map_or("the dry run gave no preview".to_owned(), |e| {
                e.message.clone()
            });
        return Err(ApiError::invalid(why));
    };
    const SHOWN: usize = 500;
    let list = |title: &str, paths: &[std::path::PathBuf], key: &str| {
        html! {
            h2 { (title) " (" (paths.len()) ")" }
            @if paths.is_empty() { p.muted { "None." } } @else {
                ul.paths id=(key) {
                    @for p in paths.iter().take(SHOWN) { li { (p.display().to_string()) } }
                    @if paths.len() > SHOWN { li.muted { "… and " (paths.len() - SHOWN) " more" } }
                }
            }
        }
    };
    Ok(layout(
        &format!("Restore {id}?"),
        Some(viewer),
        &html! {
            p.message { "A dry run of restoring this backup in place on target " strong { (r.target) } ". Nothing has changed yet; " (p.unchanged) " paths would stay as they are." }
            (list("Would be created", &p.create, "create"))
            (list("Would be replaced", &p.replace, "replace"))
            (list("Would be deleted (kept as .before-restore)", &p.delete, "delete"))
            form method="post" action=(format!("/backups/{id}/restore")) {
                (csrf(viewer))
                label for="confirm" { "Type the target's name, " (r.target) ", to restore" }
                input #confirm type="text" name="confirm" autocomplete="off" required;
                div.actions {
                    button.danger type="submit" { "Restore " (r.target) " now" }
                    a.button href=(format!("/backups/{id}")) { "Cancel" }
                }
            }
        },
    ))
}

fn job_row(j: &Job) -> Markup {
    let duration = match (j.started_at, j.finished_at) {
        (Some(a), Some(b)) => format!("{:.1} s", (b - a).get_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    };
    let class = match j.state {
        JobState::Succeeded => "ok",
        JobState::Failed => "bad",
        _ => "warn",
    };
    html! {
        tr {
            th scope="row" { a href=(format!("/jobs/{}", j.id)) { (j.id) } }
            td { (name(&j.kind)) }
            td { a href=(format!("/targets/{}", enc(&j.target))) { (j.target) } }
            td {
                @if j.state.is_terminal() { span.badge.(class) { (name(&j.state)) } } @else { (progress(j, false)) }
            }
            td.wide { (when(j.created_at)) }
            td.num { (duration) }
            td { @if let Some(e) = &j.error { span.bad { (e.message) } } }
        }
    }
}

/// Jobs: history with state, duration, error; live progress.
pub async fn jobs(vault: &Vault, viewer: &Viewer) -> PageResult {
    let list = vault.jobs(None, &[], 200).await?;
    Ok(layout(
        "Jobs",
        Some(viewer),
        &html! {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Job" } th scope="col" { "Kind" } th scope="col" { "Target" }
                    th scope="col" { "State" } th.wide scope="col" { "Created" } th.num scope="col" { "Duration" } th scope="col" { "Error" }
                } }
                tbody { @for j in &list { (job_row(j)) } }
            } }
            @if list.is_empty() { p.muted { "No job yet." } }
        },
    ))
}

/// One job, with its live progress.
pub async fn job(vault: &Vault, viewer: &Viewer, id: &str) -> PageResult {
    let j = vault.job(id).await?.status();
    let backup = j
        .result
        .as_ref()
        .and_then(|r| r.backup_id().map(str::to_owned));
    Ok(layout(
        &format!("Job {id}"),
        Some(viewer),
        &html! {
            p { (name(&j.kind)) " of " a href=(format!("/targets/{}", enc(&j.target))) { (j.target) } }
            (progress(&j, true))
            @if let Some(e) = &j.error { p.message.error role="alert" { (e.message) } }
            @if let Some(b) = backup { p { "Backup: " a href=(format!("/backups/{b}")) { (b) } } }
            @if let Some(res) = &j.result {
                details { summary { "Result" } pre { (serde_json::to_string_pretty(res).unwrap_or_default()) } }
            }
            (PreEscaped(""))
        },
    ))
}
