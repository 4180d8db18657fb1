//! The worked examples of `docs/retention.md` are computed here: this test
//! fails if the document's tables differ from what the code decides.
//! `CAIRN_BLESS=1 cargo test -p cairn-retention --test docs` rewrites them.

use std::fmt::Write as _;
use std::path::PathBuf;

use cairn_retention::{Action, Backup, Policy};
use jiff::Timestamp;

/// The three policies of the document, by marker name.
const POLICIES: [(&str, &str); 3] = [
    ("last7", "keep_last = 7"),
    (
        "gfs",
        "keep_last = 3\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 6",
    ),
    (
        "within",
        "keep_last = 0\nkeep_within = \"36h\"\nkeep_weekly = 2\nmin_keep = 5",
    ),
];

/// A month of daily backups at 02:00 UTC, November 2026; the one of
/// November 3 is pinned.
fn month() -> Vec<Backup> {
    (1..=30)
        .map(|day| {
            let at: Timestamp = format!("2026-11-{day:02}T02:00:00Z").parse().unwrap();
            let mut b = Backup::ready(format!("nov{day:02}"), at);
            b.pinned = day == 3;
            b
        })
        .collect()
}

fn table(policy: &Policy) -> String {
    let now: Timestamp = "2026-11-30T03:00:00Z".parse().unwrap();
    let plan = policy.plan(&month(), now).unwrap();
    let mut out = String::from("| backup | day | action | reasons |\n|---|---|---|---|\n");
    for d in &plan.decisions {
        let date = d.created_at.to_zoned(jiff::tz::TimeZone::UTC).date();
        let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
        let action = match d.action {
            Action::Keep => "**keep**",
            Action::Delete => "delete",
            Action::Wait => "wait",
            Action::Purge => "purge",
        };
        writeln!(
            out,
            "| {} | {} {} | {} | {} |",
            d.id,
            date.strftime("%a"),
            date,
            action,
            reasons.join("; ")
        )
        .unwrap();
    }
    let kept = plan.with_action(Action::Keep).count();
    writeln!(out, "\n{kept} of 30 kept.").unwrap();
    out
}

#[test]
fn worked_examples_match_the_document() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/retention.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let mut updated = doc.clone();
    for (name, toml) in POLICIES {
        let policy = Policy::from_toml_str(toml).unwrap();
        let start = format!("<!-- table:{name} -->\n");
        let end = format!("<!-- /table:{name} -->");
        let from = updated
            .find(&start)
            .unwrap_or_else(|| panic!("{start:?} missing"))
            + start.len();
        let to = updated[from..].find(&end).unwrap() + from;
        // The policy shown above the table is the one computed.
        let fence = format!("```toml\n{toml}\n```\n");
        assert!(
            updated[..from].ends_with(&format!("{fence}\n{start}")),
            "the TOML block before {start:?} must be:\n{fence}"
        );
        updated.replace_range(from..to, &table(&policy));
    }
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::write(&path, &updated).unwrap();
    } else {
        assert!(
            doc == updated,
            "docs/retention.md tables are stale; rerun with CAIRN_BLESS=1"
        );
    }
}
