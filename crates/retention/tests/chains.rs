//! Retention over chains of incremental backups: whatever the sequence of
//! backups, pins, unpins, soft deletes, undeletes and prunes, no backup whose
//! objects stay ever loses a parent, and a kept backup's parents stay kept.

use std::collections::BTreeMap;

use cairn_retention::{Action, Backup, BackupStatus, Policy, Reason};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const EPOCH: i64 = 1_767_225_600;

#[derive(Debug, Clone)]
enum Step {
    /// A backup, incremental to the newest live ready one unless `full` or
    /// its chain is `max_depth` long.
    Backup {
        full: bool,
    },
    Pin(usize),
    Unpin(usize),
    /// An operator's soft delete (refused for a pinned backup, as the engine does).
    Delete(usize),
    Undelete(usize),
    /// Time passes (hours), then retention runs.
    Prune(i64),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::bool::weighted(0.15).prop_map(|full| Step::Backup { full }),
        1 => (0usize..64).prop_map(Step::Pin),
        1 => (0usize..64).prop_map(Step::Unpin),
        2 => (0usize..64).prop_map(Step::Delete),
        1 => (0usize..64).prop_map(Step::Undelete),
        3 => (0i64..96).prop_map(Step::Prune),
    ]
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (0u32..4, 0u32..3, 0i64..48, 0i64..48).prop_map(|(last, min_keep, grace, failed)| {
        Policy::default()
            .with_keep_last(last)
            .with_min_keep(min_keep)
            .with_deleted_grace(SignedDuration::from_hours(grace))
            .unwrap()
            .with_failed_grace(SignedDuration::from_hours(failed))
            .unwrap()
    })
}

fn check(history: &BTreeMap<String, Backup>) -> Result<(), TestCaseError> {
    for b in history.values() {
        for p in &b.parents {
            prop_assert!(history.contains_key(p), "{} lost its parent {p}", b.id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_sequence_leaves_a_backup_without_its_parents(
        steps in prop::collection::vec(arb_step(), 1..80),
        policy in arb_policy(),
        max_depth in 0usize..8,
    ) {
        let mut history: BTreeMap<String, Backup> = BTreeMap::new();
        let mut minutes = 0i64;
        let mut made = 0usize;
        let at = |m: i64| Timestamp::from_second(EPOCH + m * 60).unwrap();
        let pick = |h: &BTreeMap<String, Backup>, i: usize| h.keys().nth(i % h.len().max(1)).cloned();
        for step in steps {
            minutes += 1;
            match step {
                Step::Backup { full } => {
                    let parent = history
                        .values()
                        .filter(|b| b.status == BackupStatus::Ready && b.deleted_at.is_none())
                        .max_by_key(|b| (b.created_at, b.id.clone()))
                        .filter(|p| !full && p.parents.len() < max_depth)
                        .cloned();
                    let mut b = Backup::ready(format!("b{made:04}"), at(minutes));
                    if let Some(p) = parent {
                        b.parents = std::iter::once(p.id.clone()).chain(p.parents).collect();
                    }
                    made += 1;
                    history.insert(b.id.clone(), b);
                }
                Step::Pin(i) | Step::Unpin(i) => {
                    if let Some(id) = pick(&history, i) {
                        history.get_mut(&id).unwrap().pinned = matches!(step, Step::Pin(_));
                    }
                }
                Step::Delete(i) => {
                    if let Some(id) = pick(&history, i) {
                        let b = history.get_mut(&id).unwrap();
                        if !b.pinned && b.deleted_at.is_none() {
                            b.deleted_at = Some(at(minutes));
                        }
                    }
                }
                Step::Undelete(i) => {
                    if let Some(id) = pick(&history, i) {
                        history.get_mut(&id).unwrap().deleted_at = None;
                    }
                }
                Step::Prune(hours) => {
                    minutes += hours * 60;
                    let backups: Vec<Backup> = history.values().cloned().collect();
                    let plan = policy.plan(&backups, at(minutes)).unwrap();
                    let actions: BTreeMap<&str, Action> =
                        plan.decisions.iter().map(|d| (d.id.as_str(), d.action)).collect();
                    // A kept backup's chain is kept, and says why.
                    for d in plan.with_action(Action::Keep) {
                        for p in &history[&d.id].parents {
                            let pd = plan.decisions.iter().find(|x| &x.id == p).unwrap();
                            prop_assert!(
                                history[p].deleted_at.is_some() || pd.action == Action::Keep,
                                "{p} ({:?}) is the parent of kept {}", pd.action, d.id
                            );
                            let named = pd.reasons.iter().any(|r| matches!(r, Reason::ParentOf { .. }));
                            prop_assert!(named, "{p} does not say it is a parent of {}", d.id);
                        }
                    }
                    let now = plan.now;
                    history.retain(|id, _| actions[id.as_str()] != Action::Purge);
                    for (id, b) in &mut history {
                        if actions[id.as_str()] == Action::Delete {
                            b.deleted_at = Some(now);
                        }
                    }
                }
            }
            check(&history)?;
        }
    }
}

#[test]
fn the_parent_of_a_kept_backup_says_why_it_is_kept() {
    let at = |m: i64| Timestamp::from_second(EPOCH + m * 60).unwrap();
    let full = Backup::ready("b0", at(0));
    let mut child = Backup::ready("b1", at(1));
    child.parents = vec!["b0".into()];
    let plan = Policy::default()
        .with_keep_last(1)
        .with_min_keep(0)
        .plan(&[full, child], at(2))
        .unwrap();
    let d = plan.decisions.iter().find(|d| d.id == "b0").unwrap();
    assert_eq!(d.action, Action::Keep);
    assert_eq!(
        d.reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["parent of b1".to_owned()]
    );
}
