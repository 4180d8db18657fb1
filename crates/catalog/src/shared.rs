//! Following a target's shared state: the decisions recorded in the store's
//! state log (pins, soft deletes, undeletes, purges), applied in order.

use cairn_manifest::{BackupId, TargetName};
use jiff::Timestamp;
use rusqlite::OptionalExtension;

use crate::{Catalog, Error, to_nanos};

/// One decision of a target's state log, as it changes the catalog.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StateChange {
    /// The backup was published: nothing to change here (whoever applies
    /// the log adds its record, which the log carries).
    Published(BackupId),
    /// The backup is pinned.
    Pin(BackupId),
    /// The backup is no longer pinned.
    Unpin(BackupId),
    /// The backup was soft-deleted at this time.
    Delete(BackupId, Timestamp),
    /// The backup was brought back.
    Undelete(BackupId),
    /// The backup's objects were (or are being) removed: its record goes,
    /// and it is never recorded again.
    Purge(BackupId),
    /// The target's automatic backups were enabled or disabled at this
    /// time (a disable starts the cooldown).
    Schedule {
        /// Whether they run.
        enabled: bool,
        /// When it was decided.
        at: Timestamp,
    },
    /// The target's retention policy, set at run time (over the
    /// configuration's).
    Retention(cairn_retention::Policy),
    /// The interval of the target's automatic backups, set at run time
    /// (`None`: manual only).
    Interval(Option<std::time::Duration>),
}

impl Catalog {
    /// How many records of `target`'s state log this catalog has applied
    /// (0: none).
    ///
    /// # Errors
    ///
    /// SQLite failures.
    pub fn state_generation(&self, target: &TargetName) -> Result<u64, Error> {
        let conn = self.conn();
        let n: Option<i64> = conn
            .query_row(
                "SELECT generation FROM shared_state WHERE target = ?1",
                [target.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(&format!("reading the shared state of {target}"), e))?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// Applies records `first ..` of `target`'s state log (`changes`, in
    /// order), in one transaction; records this catalog applied already
    /// (another caller got there first) are skipped. A change to a backup
    /// the catalog does not hold changes nothing but a purge, which is
    /// remembered.
    ///
    /// # Errors
    ///
    /// SQLite failures; nothing changes when it fails.
    pub fn apply_state(
        &self,
        target: &TargetName,
        first: u64,
        changes: &[StateChange],
    ) -> Result<(), Error> {
        let mut conn = self.conn();
        let what = format!("applying the shared state of {target}");
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(&what, e))?;
        let applied: i64 = tx
            .query_row(
                "SELECT generation FROM shared_state WHERE target = ?1",
                [target.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(&what, e))?
            .unwrap_or(0);
        let mut generation = first;
        for change in changes {
            if i64::try_from(generation).unwrap_or(i64::MAX) > applied {
                self.apply_one(&tx, target, change)
                    .map_err(|e| self.err(&what, e))?;
            }
            generation += 1;
        }
        let last = i64::try_from(generation.saturating_sub(1)).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO shared_state (target, generation) VALUES (?1, ?2)
             ON CONFLICT (target) DO UPDATE SET generation = max(generation, excluded.generation)",
            rusqlite::params![target.to_string(), last],
        )
        .map_err(|e| self.err(&what, e))?;
        tx.commit().map_err(|e| self.err(&what, e))
    }

    /// Applies one change inside `tx`.
    fn apply_one(
        &self,
        tx: &rusqlite::Transaction<'_>,
        target: &TargetName,
        change: &StateChange,
    ) -> rusqlite::Result<()> {
        let set = |sql: &str, id: &BackupId, value: Option<i64>| {
            tx.execute(sql, rusqlite::params![id.to_string(), value])
                .map(drop)
        };
        match change {
            StateChange::Published(_) => Ok(()),
            StateChange::Pin(id) => {
                set("UPDATE backups SET pinned = ?2 WHERE id = ?1", id, Some(1))
            }
            StateChange::Unpin(id) => {
                set("UPDATE backups SET pinned = ?2 WHERE id = ?1", id, Some(0))
            }
            StateChange::Delete(id, at) => set(
                "UPDATE backups SET deleted_at = ?2 WHERE id = ?1",
                id,
                Some(to_nanos(*at)),
            ),
            StateChange::Undelete(id) => {
                set("UPDATE backups SET deleted_at = ?2 WHERE id = ?1", id, None)
            }
            StateChange::Purge(id) => {
                tx.execute("DELETE FROM backups WHERE id = ?1", [id.to_string()])?;
                tx.execute(
                    "INSERT OR IGNORE INTO purged_backups (id, target) VALUES (?1, ?2)",
                    [id.to_string(), target.to_string()],
                )
                .map(drop)
            }
            StateChange::Retention(policy) => {
                let text = serde_json::to_string(policy).expect("a policy serialises");
                tx.execute(
                    "INSERT INTO target_settings (target, retention, every_secs, updated_at)
                     VALUES (?1, ?2, NULL, 0)
                     ON CONFLICT (target) DO UPDATE SET retention = excluded.retention",
                    rusqlite::params![target.to_string(), text],
                )
                .map(drop)
            }
            StateChange::Interval(every) => {
                let secs = i64::try_from(every.map_or(0, |d| d.as_secs())).unwrap_or(i64::MAX);
                tx.execute(
                    "INSERT INTO target_settings (target, retention, every_secs, updated_at)
                     VALUES (?1, NULL, ?2, 0)
                     ON CONFLICT (target) DO UPDATE SET every_secs = excluded.every_secs",
                    rusqlite::params![target.to_string(), secs],
                )
                .map(drop)
            }
            StateChange::Schedule { enabled, at } => {
                let name = target.to_string();
                let text: Option<String> = tx
                    .query_row(
                        "SELECT state FROM schedules WHERE target = ?1",
                        [&name],
                        |r| r.get(0),
                    )
                    .optional()?;
                // A state this catalog cannot read is replaced: the log
                // says what it is now.
                let mut state: cairn_retention::ScheduleState = text
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                if *enabled != state.enabled {
                    state.enabled = *enabled;
                    if !enabled {
                        state.disabled_at = Some(*at);
                    }
                }
                let text = serde_json::to_string(&state).expect("a schedule serialises");
                tx.execute(
                    "INSERT INTO schedules (target, state, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (target) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                    rusqlite::params![name, text, to_nanos(*at)],
                )
                .map(drop)
            }
        }
    }

    /// Forgets how far `target`'s state log was applied (and the purges it
    /// named), so that it is applied again from its first record: after
    /// the target's backups were rebuilt from the store.
    ///
    /// # Errors
    ///
    /// SQLite failures.
    pub fn reset_state(&self, target: &TargetName) -> Result<(), Error> {
        let conn = self.conn();
        let what = format!("resetting the shared state of {target}");
        conn.execute(
            "DELETE FROM shared_state WHERE target = ?1",
            [target.to_string()],
        )
        .and_then(|_| {
            conn.execute(
                "DELETE FROM purged_backups WHERE target = ?1",
                [target.to_string()],
            )
        })
        .map_err(|e| self.err(&what, e))?;
        Ok(())
    }

    /// Whether `target`'s state log purged backup `id`.
    ///
    /// # Errors
    ///
    /// SQLite failures.
    pub fn is_purged(&self, id: &BackupId) -> Result<bool, Error> {
        let conn = self.conn();
        conn.query_row(
            "SELECT 1 FROM purged_backups WHERE id = ?1",
            [id.to_string()],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
        .map_err(|e| self.err(&format!("looking for the purge of {id}"), e))
    }

    /// The newest backup id of `target` the catalog holds (deleted or not),
    /// by id: where following the store's listing starts.
    ///
    /// # Errors
    ///
    /// SQLite failures.
    pub fn newest_backup_id(&self, target: &TargetName) -> Result<Option<BackupId>, Error> {
        let conn = self.conn();
        let id: Option<String> = conn
            .query_row(
                "SELECT max(id) FROM backups WHERE target = ?1",
                [target.to_string()],
                |r| r.get(0),
            )
            .map_err(|e| self.err(&format!("reading the newest backup of {target}"), e))?;
        id.map(|s| {
            BackupId::parse(&s).map_err(|e| {
                self.error(
                    crate::ErrorKind::Corrupt,
                    format!("backup id {s:?} of {target}: {e}"),
                )
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackupRecord;
    use cairn_manifest::BackupKind;

    fn catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path().join("c.db")).unwrap();
        (dir, c)
    }

    #[test]
    fn changes_apply_once_in_order_and_purges_are_remembered() {
        let (_d, c) = catalog();
        let t = TargetName::parse("app").unwrap();
        let (a, b) = (BackupId::generate(), BackupId::generate());
        for id in [a, b] {
            let mut r = BackupRecord::creating(id, t.clone(), BackupKind::Manual, Timestamp::now());
            r.status = crate::BackupStatus::Ready;
            c.insert_backup(&r).unwrap();
        }
        assert_eq!(c.state_generation(&t).unwrap(), 0);
        assert_eq!(c.newest_backup_id(&t).unwrap(), Some(a.max(b)));
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        c.apply_state(&t, 1, &[StateChange::Pin(a), StateChange::Delete(b, at)])
            .unwrap();
        assert_eq!(c.state_generation(&t).unwrap(), 2);
        assert!(c.get_backup(&a).unwrap().unwrap().pinned);
        assert_eq!(c.get_backup(&b).unwrap().unwrap().deleted_at, Some(at));
        // Records 1 and 2 again (a second follower got there first) change
        // nothing; record 3 does.
        c.apply_state(
            &t,
            1,
            &[
                StateChange::Unpin(a),
                StateChange::Undelete(b),
                StateChange::Purge(b),
                StateChange::Schedule { enabled: false, at },
                StateChange::Retention(cairn_retention::Policy::default().with_keep_last(3)),
                StateChange::Interval(Some(std::time::Duration::from_secs(3600))),
            ],
        )
        .unwrap();
        assert_eq!(c.state_generation(&t).unwrap(), 6);
        let (_, settings) = c.target_settings().unwrap().remove(0);
        assert_eq!(
            settings.retention,
            Some(cairn_retention::Policy::default().with_keep_last(3))
        );
        assert_eq!(
            settings.every,
            Some(Some(std::time::Duration::from_secs(3600)))
        );
        let schedule = c.schedule("app").unwrap();
        assert!(!schedule.enabled && schedule.disabled_at == Some(at));
        assert!(c.get_backup(&a).unwrap().unwrap().pinned);
        assert_eq!(c.get_backup(&b).unwrap(), None);
        assert!(c.is_purged(&b).unwrap() && !c.is_purged(&a).unwrap());
        c.reset_state(&t).unwrap();
        assert_eq!(c.state_generation(&t).unwrap(), 0);
        assert!(!c.is_purged(&b).unwrap());
    }
}
