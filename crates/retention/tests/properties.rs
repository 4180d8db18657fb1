//! Invariants of `Policy::plan` over random histories and policies.

use std::collections::{BTreeMap, BTreeSet};

use cairn_retention::{Action, Backup, BackupStatus, Period, Plan, Policy, Reason};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

/// 2026-01-01T00:00:00Z; histories span about 14 months after it.
const EPOCH: i64 = 1_767_225_600;
const SPAN_MINUTES: i64 = 60 * 24 * 430;

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_second(EPOCH + minutes * 60).unwrap()
}

fn arb_backup(i: usize) -> impl Strategy<Value = Backup> {
    (
        0..SPAN_MINUTES,
        prop_oneof![7 => Just(BackupStatus::Ready), 1 => Just(BackupStatus::Restoring), 1 => Just(BackupStatus::Failed), 1 => Just(BackupStatus::Creating), 1 => Just(BackupStatus::Uploading)],
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, 0..(60 * 24 * 3i64)),
    )
        .prop_map(move |(m, status, pinned, leased, deleted_after)| Backup {
            id: format!("b{i:04}"),
            created_at: at(m),
            status,
            pinned,
            leases: if leased { vec![format!("job j{i}")] } else { Vec::new() },
            deleted_at: deleted_after.map(|d| at(m + d)),
            parents: Vec::new(),
        })
}

fn arb_history() -> impl Strategy<Value = Vec<Backup>> {
    (0usize..60).prop_flat_map(|n| (0..n).map(arb_backup).collect::<Vec<_>>())
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        0u32..6,
        prop::array::uniform5(0u32..5),
        prop::option::of(0i64..(24 * 20)),
        0u32..6,
        0i64..72,
        0i64..72,
        prop::sample::select(vec![
            "UTC",
            "Europe/Paris",
            "America/New_York",
            "Asia/Kolkata",
        ]),
    )
        .prop_map(|(last, periods, within, min_keep, failed, deleted, tz)| {
            let mut p = Policy::default()
                .with_keep_last(last)
                .with_min_keep(min_keep);
            for (period, n) in Period::ALL.into_iter().zip(periods) {
                p = p.with_keep_period(period, n);
            }
            p.with_keep_within(within.map(SignedDuration::from_hours))
                .unwrap()
                .with_failed_grace(SignedDuration::from_hours(failed))
                .unwrap()
                .with_deleted_grace(SignedDuration::from_hours(deleted))
                .unwrap()
                .with_timezone(tz)
                .unwrap()
        })
}

fn arb_now() -> impl Strategy<Value = Timestamp> {
    (0..SPAN_MINUTES + 60 * 24 * 30).prop_map(at)
}

/// The history after carrying out a plan: soft-deletes stamped with the
/// plan's instant, purged backups gone.
fn apply(backups: &[Backup], plan: &Plan) -> Vec<Backup> {
    let actions: BTreeMap<&str, Action> = plan
        .decisions
        .iter()
        .map(|d| (d.id.as_str(), d.action))
        .collect();
    backups
        .iter()
        .filter(|b| actions[b.id.as_str()] != Action::Purge)
        .map(|b| {
            let mut b = b.clone();
            if actions[b.id.as_str()] == Action::Delete {
                b.deleted_at = Some(plan.now);
            }
            b
        })
        .collect()
}

fn kept(plan: &Plan) -> BTreeSet<&str> {
    plan.with_action(Action::Keep)
        .map(|d| d.id.as_str())
        .collect()
}

fn newest_ready(backups: &[Backup]) -> Option<&Backup> {
    backups
        .iter()
        .filter(|b| b.status.is_ready() && b.deleted_at.is_none())
        .max_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn protected_backups_are_never_evicted(
        backups in arb_history(), policy in arb_policy(), now in arb_now(),
    ) {
        let plan = policy.plan(&backups, now).unwrap();
        prop_assert_eq!(plan.decisions.len(), backups.len());
        for b in &backups {
            let d = plan.get(&b.id).unwrap();
            prop_assert!(!d.reasons.is_empty(), "{} has no reason", b.id);
            if b.pinned || !b.leases.is_empty() {
                prop_assert!(!d.action.evicts(), "{} is pinned or leased: {:?}", b.id, d);
            }
            if b.status.is_in_progress() && b.deleted_at.is_none() {
                prop_assert_eq!(d.action, Action::Keep);
            }
            // Only live ready backups are soft-deleted; only dead ones purged.
            if d.action == Action::Delete {
                prop_assert!(b.status.is_ready() && b.deleted_at.is_none());
            }
            if d.action == Action::Purge {
                prop_assert!(b.status == BackupStatus::Failed || b.deleted_at.is_some());
            }
        }
        if let Some(newest) = newest_ready(&backups) {
            let d = plan.get(&newest.id).unwrap();
            prop_assert_eq!(d.action, Action::Keep);
            prop_assert!(d.reasons.contains(&Reason::NewestReady));
        }
        // The floor holds whenever there are enough ready backups.
        let ready = backups.iter().filter(|b| b.status.is_ready() && b.deleted_at.is_none()).count();
        let kept_ready = plan
            .decisions
            .iter()
            .filter(|d| d.action == Action::Keep && !d.reasons.contains(&Reason::InProgress))
            .count();
        prop_assert!(kept_ready >= ready.min(policy.min_keep() as usize));
    }

    #[test]
    fn input_order_does_not_matter(
        backups in arb_history(), policy in arb_policy(), now in arb_now(), seed in any::<u64>(),
    ) {
        let plan = policy.plan(&backups, now).unwrap();
        let mut shuffled = backups.clone();
        // A deterministic shuffle driven by the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = usize::try_from(state % (i as u64 + 1)).unwrap();
            shuffled.swap(i, j);
        }
        prop_assert_eq!(policy.plan(&shuffled, now).unwrap(), plan);
    }

    #[test]
    fn replanning_after_applying_evicts_nothing_more(
        backups in arb_history(), policy in arb_policy(), now in arb_now(),
    ) {
        let plan = policy.plan(&backups, now).unwrap();
        let after = apply(&backups, &plan);
        let again = policy.plan(&after, now).unwrap();
        prop_assert_eq!(again.with_action(Action::Delete).count(), 0, "{:#?}", again);
        prop_assert_eq!(kept(&again), kept(&plan));
        // With a zero grace period, what was just soft-deleted is purged on the
        // next pass, and only that.
        for d in again.with_action(Action::Purge) {
            let before = plan.get(&d.id).unwrap();
            prop_assert!(before.action == Action::Delete || before.action == Action::Wait,
                "{} purged out of nowhere", d.id);
        }
    }

    /// A new backup, newer than all others, displaces a backup kept for a
    /// period only when it falls in that same period (it becomes the period's
    /// newest) or when the rule already had all its periods and the new one
    /// pushes the oldest out: never before its time.
    #[test]
    fn a_new_backup_evicts_period_keepers_only_in_their_time(
        backups in arb_history(), policy in arb_policy(), later in 0i64..(60 * 24 * 40),
    ) {
        let newest = backups.iter().map(|b| b.created_at).max().unwrap_or(at(0));
        let created = newest.checked_add(SignedDuration::from_mins(later + 1)).unwrap();
        let now = created.checked_add(SignedDuration::from_hours(1)).unwrap();
        let before = policy.plan(&backups, now).unwrap();
        let mut grown = backups.clone();
        grown.push(Backup::ready("new", created));
        let after = policy.plan(&grown, now).unwrap();
        let tz = policy.time_zone();
        for d in before.with_action(Action::Keep) {
            if after.get(&d.id).unwrap().action == Action::Keep {
                continue;
            }
            for reason in &d.reasons {
                match reason {
                    Reason::Period { period, rank, of, .. } => {
                        let same = period.bucket(d.created_at, tz) == period.bucket(created, tz);
                        prop_assert!(same || rank == of,
                            "{} ({}) lost {} before its time", d.id, d.created_at, reason);
                    }
                    Reason::KeepLast { rank, of } => prop_assert_eq!(rank, of),
                    Reason::Pinned | Reason::Leased { .. } | Reason::InProgress => {
                        prop_assert!(false, "{} lost {}", d.id, reason);
                    }
                    _ => {}
                }
            }
        }
    }
}
