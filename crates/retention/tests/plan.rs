//! Table tests of `Policy::plan` over fixed calendars, with the expected
//! results worked out by hand.

use cairn_retention::{Action, Backup, BackupStatus, Error, Period, Plan, Policy, Reason};
use jiff::{SignedDuration, Timestamp};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// One ready backup a day at `hh:00` UTC, for each date in `days` (`"2026-11-01"`).
fn daily(days: &[&str], hh: u8) -> Vec<Backup> {
    days.iter()
        .map(|d| Backup::ready(format!("{d}T{hh:02}"), ts(&format!("{d}T{hh:02}:00:00Z"))))
        .collect()
}

fn dates(from: &str, to: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut d: jiff::civil::Date = from.parse().unwrap();
    let end: jiff::civil::Date = to.parse().unwrap();
    while d <= end {
        out.push(d.to_string());
        d = d.tomorrow().unwrap();
    }
    out
}

fn daily_range(from: &str, to: &str, hh: u8) -> Vec<Backup> {
    let days = dates(from, to);
    let refs: Vec<&str> = days.iter().map(String::as_str).collect();
    daily(&refs, hh)
}

fn ids(plan: &Plan, action: Action) -> Vec<&str> {
    plan.with_action(action).map(|d| d.id.as_str()).collect()
}

fn reasons(plan: &Plan, id: &str) -> Vec<String> {
    plan.get(id)
        .unwrap_or_else(|| panic!("no decision for {id}"))
        .reasons
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn policy(toml: &str) -> Policy {
    Policy::from_toml_str(toml).unwrap()
}

#[test]
fn keep_last_counts_backups() {
    let backups = daily_range("2026-11-01", "2026-11-10", 3);
    let plan = policy("keep_last = 3")
        .plan(&backups, ts("2026-11-10T12:00:00Z"))
        .unwrap();
    assert_eq!(
        ids(&plan, Action::Keep),
        ["2026-11-10T03", "2026-11-09T03", "2026-11-08T03"]
    );
    assert_eq!(ids(&plan, Action::Delete).len(), 7);
    assert_eq!(
        reasons(&plan, "2026-11-10T03"),
        ["newest ready backup", "keep_last 1 of 3"]
    );
    assert_eq!(reasons(&plan, "2026-11-08T03"), ["keep_last 3 of 3"]);
    assert_eq!(
        reasons(&plan, "2026-11-07T03"),
        ["no rule keeps it (newest 4 of 10 ready)"]
    );
    // Evictions come oldest first, the order to apply them in.
    let order: Vec<&str> = plan.evictions().map(|d| d.id.as_str()).collect();
    assert_eq!(order.first(), Some(&"2026-11-01T03"));
    assert_eq!(order.last(), Some(&"2026-11-07T03"));
}

#[test]
fn keep_daily_keeps_the_newest_of_each_day() {
    let mut backups = daily_range("2026-11-01", "2026-11-05", 3);
    backups.extend(daily_range("2026-11-01", "2026-11-05", 15));
    let plan = policy("keep_last = 0\nkeep_daily = 3")
        .plan(&backups, ts("2026-11-05T16:00:00Z"))
        .unwrap();
    assert_eq!(
        ids(&plan, Action::Keep),
        ["2026-11-05T15", "2026-11-04T15", "2026-11-03T15"]
    );
    assert_eq!(
        reasons(&plan, "2026-11-04T15"),
        ["daily 2026-11-04 (2 of 3)"]
    );
}

#[test]
fn weekly_monthly_yearly_across_a_new_year() {
    let backups = daily_range("2025-12-01", "2026-02-10", 1);
    let plan = policy("keep_last = 0\nkeep_weekly = 2\nkeep_monthly = 2\nkeep_yearly = 2")
        .plan(&backups, ts("2026-02-10T12:00:00Z"))
        .unwrap();
    // Weekly: 2026-W07 (Feb 9-15) -> Feb 10; 2026-W06 (Feb 2-8) -> Feb 8.
    // Monthly: Feb -> Feb 10; Jan -> Jan 31. Yearly: 2026 -> Feb 10; 2025 -> Dec 31.
    assert_eq!(
        ids(&plan, Action::Keep),
        [
            "2026-02-10T01",
            "2026-02-08T01",
            "2026-01-31T01",
            "2025-12-31T01"
        ]
    );
    assert_eq!(
        reasons(&plan, "2026-02-10T01"),
        [
            "newest ready backup",
            "weekly 2026-W07 (1 of 2)",
            "monthly 2026-02 (1 of 2)",
            "yearly 2026 (1 of 2)"
        ]
    );
    assert_eq!(
        reasons(&plan, "2026-02-08T01"),
        ["weekly 2026-W06 (2 of 2)"]
    );
    assert_eq!(
        reasons(&plan, "2026-01-31T01"),
        ["monthly 2026-01 (2 of 2)"]
    );
    assert_eq!(reasons(&plan, "2025-12-31T01"), ["yearly 2025 (2 of 2)"]);
}

#[test]
fn a_machine_off_for_two_weeks_keeps_its_history() {
    // Daily backups through Oct 20, then the machine is off until Nov 5.
    let mut backups = daily_range("2026-10-01", "2026-10-20", 2);
    backups.extend(daily(&["2026-11-05"], 9));
    let p = policy("keep_last = 3\nkeep_daily = 7\nkeep_weekly = 4\nkeep_within = \"3 days\"");
    let plan = p.plan(&backups, ts("2026-11-05T10:00:00Z")).unwrap();
    // keep_daily counts the seven most recent days *that have a backup*:
    // Nov 5 and Oct 15-20, not the empty days Oct 30 - Nov 5.
    assert_eq!(
        ids(&plan, Action::Keep),
        [
            "2026-11-05T09",
            "2026-10-20T02",
            "2026-10-19T02",
            "2026-10-18T02",
            "2026-10-17T02",
            "2026-10-16T02",
            "2026-10-15T02",
            // Weekly: W45 (Nov 5), W43 (Oct 20), W42 (Oct 18), W41 (Oct 11).
            "2026-10-11T02",
        ]
    );
    assert_eq!(
        reasons(&plan, "2026-10-11T02"),
        ["weekly 2026-W41 (4 of 4)"]
    );
    // Planning again weeks later, with no new backup, evicts nothing more.
    let later = p.plan(&backups, ts("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(ids(&later, Action::Keep), ids(&plan, Action::Keep));
}

#[test]
fn keep_within_is_measured_from_the_newest_backup() {
    let backups = daily_range("2026-11-01", "2026-11-10", 12);
    let p = policy("keep_last = 0\nkeep_within = \"2 days\"");
    let plan = p.plan(&backups, ts("2026-11-30T00:00:00Z")).unwrap();
    // Nov 10 12:00 minus 2 days = Nov 8 12:00, inclusive.
    assert_eq!(
        ids(&plan, Action::Keep),
        ["2026-11-10T12", "2026-11-09T12", "2026-11-08T12"]
    );
    assert_eq!(
        reasons(&plan, "2026-11-08T12"),
        ["within 48h of the newest backup (2026-11-10T12:00:00Z)"]
    );
}

#[test]
fn pins_leases_and_the_newest_ready_backup_always_stay() {
    let mut backups = daily_range("2026-11-01", "2026-11-05", 3);
    backups[0].pinned = true; // Nov 1
    backups[1].leases = vec!["job job_7".to_owned(), "download dl_2".to_owned()]; // Nov 2
    let p = policy("keep_last = 0");
    let plan = p.plan(&backups, ts("2026-11-06T00:00:00Z")).unwrap();
    assert_eq!(
        ids(&plan, Action::Keep),
        ["2026-11-05T03", "2026-11-02T03", "2026-11-01T03"]
    );
    assert_eq!(reasons(&plan, "2026-11-05T03"), ["newest ready backup"]);
    assert_eq!(
        reasons(&plan, "2026-11-02T03"),
        ["leased by job job_7", "leased by download dl_2"]
    );
    assert_eq!(reasons(&plan, "2026-11-01T03"), ["pinned"]);
}

#[test]
fn min_keep_is_a_floor() {
    let backups = daily_range("2026-11-01", "2026-11-10", 3);
    let plan = policy("keep_last = 2\nmin_keep = 5")
        .plan(&backups, ts("2026-11-11T00:00:00Z"))
        .unwrap();
    assert_eq!(ids(&plan, Action::Keep).len(), 5);
    assert_eq!(reasons(&plan, "2026-11-08T03"), ["min_keep 5"]);
    assert_eq!(reasons(&plan, "2026-11-06T03"), ["min_keep 5"]);
    // A floor larger than the history keeps everything.
    let plan = policy("keep_last = 0\nmin_keep = 50")
        .plan(&backups, ts("2026-11-11T00:00:00Z"))
        .unwrap();
    assert_eq!(ids(&plan, Action::Delete), Vec::<&str>::new());
}

#[test]
fn failed_deleted_and_running_backups() {
    let now = ts("2026-11-10T12:00:00Z");
    let at = |s: &str| ts(s);
    let mut b = vec![
        Backup::ready("ok", at("2026-11-10T00:00:00Z")),
        Backup {
            status: BackupStatus::Creating,
            ..Backup::ready("running", at("2026-11-10T11:00:00Z"))
        },
        Backup {
            status: BackupStatus::Failed,
            ..Backup::ready("failed-recent", at("2026-11-10T01:00:00Z"))
        },
        Backup {
            status: BackupStatus::Failed,
            ..Backup::ready("failed-old", at("2026-11-08T00:00:00Z"))
        },
        Backup {
            status: BackupStatus::Failed,
            pinned: true,
            ..Backup::ready("failed-pinned", at("2026-11-01T00:00:00Z"))
        },
        Backup {
            deleted_at: Some(at("2026-11-10T06:00:00Z")),
            ..Backup::ready("deleted-recent", at("2026-11-09T00:00:00Z"))
        },
        Backup {
            deleted_at: Some(at("2026-11-08T06:00:00Z")),
            ..Backup::ready("deleted-old", at("2026-11-07T00:00:00Z"))
        },
        Backup {
            deleted_at: Some(at("2026-11-08T06:00:00Z")),
            leases: vec!["restore job_9".to_owned()],
            ..Backup::ready("deleted-leased", at("2026-11-06T00:00:00Z"))
        },
    ];
    let p = Policy::default();
    let plan = p.plan(&b, now).unwrap();
    assert_eq!(ids(&plan, Action::Keep), ["running", "ok"]);
    assert_eq!(reasons(&plan, "running"), ["in progress"]);
    assert_eq!(
        ids(&plan, Action::Wait),
        [
            "failed-recent",
            "deleted-recent",
            "deleted-leased",
            "failed-pinned"
        ]
    );
    assert_eq!(ids(&plan, Action::Purge), ["failed-old", "deleted-old"]);
    assert_eq!(
        reasons(&plan, "failed-recent"),
        ["failed; purged after 2026-11-11T01:00:00Z"]
    );
    assert_eq!(
        reasons(&plan, "deleted-recent"),
        ["soft-deleted; recoverable until 2026-11-11T06:00:00Z"]
    );
    assert_eq!(
        reasons(&plan, "deleted-leased"),
        [
            "leased by restore job_9",
            "soft-deleted; grace period ended 2026-11-09T06:00:00Z"
        ]
    );
    // A soft-deleted backup is not "newest ready" and counts for no rule.
    b.retain(|x| x.id != "ok");
    let plan = p.plan(&b, now).unwrap();
    assert_eq!(ids(&plan, Action::Keep), ["running"]);
}

#[test]
fn grace_periods_come_from_the_policy() {
    let failed = Backup {
        status: BackupStatus::Failed,
        ..Backup::ready("f", ts("2026-11-10T00:00:00Z"))
    };
    let p = Policy::default()
        .with_failed_grace(SignedDuration::from_hours(1))
        .unwrap();
    let plan = p
        .plan(std::slice::from_ref(&failed), ts("2026-11-10T00:59:59Z"))
        .unwrap();
    assert_eq!(ids(&plan, Action::Wait), ["f"]);
    let plan = p.plan(&[failed], ts("2026-11-10T01:00:00Z")).unwrap();
    assert_eq!(ids(&plan, Action::Purge), ["f"]);
}

#[test]
fn days_are_counted_in_the_policy_time_zone() {
    // 10:00 UTC and 16:00 UTC on Nov 20 are Nov 20 19:00 and Nov 21 01:00 in Tokyo.
    let backups = vec![
        Backup::ready("a", ts("2026-11-19T10:00:00Z")),
        Backup::ready("b", ts("2026-11-20T10:00:00Z")),
        Backup::ready("c", ts("2026-11-20T16:00:00Z")),
    ];
    let now = ts("2026-11-21T00:00:00Z");
    let utc = policy("keep_last = 0\nkeep_daily = 2");
    assert_eq!(
        ids(&utc.plan(&backups, now).unwrap(), Action::Keep),
        ["c", "a"]
    );
    let tokyo = policy("keep_last = 0\nkeep_daily = 2\ntimezone = \"Asia/Tokyo\"");
    let plan = tokyo.plan(&backups, now).unwrap();
    assert_eq!(ids(&plan, Action::Keep), ["c", "b"]);
    assert_eq!(
        reasons(&plan, "c"),
        ["newest ready backup", "daily 2026-11-21 (1 of 2)"]
    );
}

#[test]
fn input_order_does_not_matter_and_ties_break_by_id() {
    let mut backups = daily_range("2026-11-01", "2026-11-20", 3);
    // Two backups at the same instant.
    backups.push(Backup::ready("same-a", ts("2026-11-20T03:00:00Z")));
    let p = policy("keep_last = 2\nkeep_weekly = 2");
    let now = ts("2026-11-21T00:00:00Z");
    let plan = p.plan(&backups, now).unwrap();
    backups.reverse();
    backups.rotate_left(7);
    assert_eq!(p.plan(&backups, now).unwrap(), plan);
    assert_eq!(plan.decisions[0].id, "same-a");
    assert_eq!(plan.decisions[1].id, "2026-11-20T03");
}

#[test]
fn duplicate_ids_are_refused() {
    let b = Backup::ready("x", ts("2026-11-01T00:00:00Z"));
    let err = Policy::default().plan(&[b.clone(), b], ts("2026-11-02T00:00:00Z"));
    assert!(matches!(err, Err(Error::DuplicateId(ref id)) if id == "x"));
}

#[test]
fn empty_history_gives_an_empty_plan() {
    let plan = Policy::default()
        .plan(&[], ts("2026-11-02T00:00:00Z"))
        .unwrap();
    assert!(plan.decisions.is_empty());
}

#[test]
fn reasons_serialize_tagged_by_rule() {
    let backups = daily_range("2026-11-19", "2026-11-20", 3);
    let plan = policy("keep_last = 1\nkeep_daily = 1")
        .plan(&backups, ts("2026-11-21T00:00:00Z"))
        .unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    let first = &json["decisions"][0];
    assert_eq!(first["action"], "keep");
    assert_eq!(
        first["reasons"][0],
        serde_json::json!({"rule": "newest_ready"})
    );
    assert_eq!(
        first["reasons"][2],
        serde_json::json!({"rule": "period", "period": "daily", "bucket": "2026-11-20", "rank": 1, "of": 1})
    );
    assert_eq!(json["decisions"][1]["action"], "delete");
    let back: Plan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
    assert!(matches!(
        back.decisions[0].reasons[1],
        Reason::KeepLast { rank: 1, of: 1 }
    ));
    assert_eq!(Period::Daily.rule_name(), "keep_daily");
}
