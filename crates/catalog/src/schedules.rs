//! Per-target schedule state, cooldowns and run-time settings.

use std::time::Duration;

use cairn_retention::{Policy, ScheduleState};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use crate::{Catalog, Error, ErrorKind, to_nanos};

impl Catalog {
    /// A target's schedule state; the default (enabled, never run) if none
    /// was stored.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn schedule(&self, target: &str) -> Result<ScheduleState, Error> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT state FROM schedules WHERE target = ?1",
                [target],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(&format!("reading the schedule of {target}"), e))?;
        match text {
            None => Ok(ScheduleState::default()),
            Some(t) => serde_json::from_str(&t).map_err(|e| {
                self.error(
                    ErrorKind::Corrupt,
                    format!("schedule of {target}: unreadable ({e})"),
                )
            }),
        }
    }

    /// Stores a target's schedule state.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn put_schedule(
        &self,
        target: &str,
        state: &ScheduleState,
        now: Timestamp,
    ) -> Result<(), Error> {
        let text = serde_json::to_string(state).expect("a schedule serialises");
        self.conn()
            .execute(
                "INSERT INTO schedules (target, state, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (target) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                params![target, text, to_nanos(now)],
            )
            .map_err(|e| self.err(&format!("saving the schedule of {target}"), e))?;
        Ok(())
    }
}

/// A target's settings changed at run time; `None` = the configured value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetSettings {
    /// The retention policy.
    pub retention: Option<Policy>,
    /// The interval of automatic backups: `Some(None)` = none (manual only).
    pub every: Option<Option<Duration>>,
}

impl Catalog {
    /// Every target's run-time settings.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn target_settings(&self) -> Result<Vec<(String, TargetSettings)>, Error> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT target, retention, every_secs FROM target_settings ORDER BY target")
            .map_err(|e| self.err("reading target settings", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(|e| self.err("reading target settings", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (target, retention, every) =
                row.map_err(|e| self.err("reading target settings", e))?;
            let retention = retention
                .map(|t| {
                    serde_json::from_str(&t).map_err(|e| {
                        self.error(
                            ErrorKind::Corrupt,
                            format!("retention of {target}: unreadable ({e})"),
                        )
                    })
                })
                .transpose()?;
            let every = every
                .map(|s| {
                    u64::try_from(s)
                        .map(|s| (s > 0).then(|| Duration::from_secs(s)))
                        .map_err(|_| {
                            self.error(
                                ErrorKind::Corrupt,
                                format!("schedule interval of {target}: {s} seconds"),
                            )
                        })
                })
                .transpose()?;
            out.push((target, TargetSettings { retention, every }));
        }
        Ok(out)
    }

    /// Stores a target's run-time settings (replacing what was stored).
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn put_target_settings(
        &self,
        target: &str,
        settings: &TargetSettings,
        now: Timestamp,
    ) -> Result<(), Error> {
        let retention = settings
            .retention
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("a policy serialises"));
        let every = settings
            .every
            .map(|e| i64::try_from(e.map_or(0, |d| d.as_secs())).unwrap_or(i64::MAX));
        self.conn()
            .execute(
                "INSERT INTO target_settings (target, retention, every_secs, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target) DO UPDATE SET retention = excluded.retention,
                     every_secs = excluded.every_secs, updated_at = excluded.updated_at",
                params![target, retention, every, to_nanos(now)],
            )
            .map_err(|e| self.err(&format!("saving the settings of {target}"), e))?;
        Ok(())
    }
}

impl Catalog {
    /// The key id new backups of this installation are signed with, as
    /// recorded when the installation first opened its catalog.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn recorded_signer(&self) -> Result<Option<String>, Error> {
        self.conn()
            .query_row(
                "SELECT value FROM installation WHERE name = 'signer'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err("reading the installation's signer", e))
    }

    /// Records the key id new backups are signed with (on first use, and
    /// when a key is rotated on purpose).
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn record_signer(&self, key_id: &str, now: Timestamp) -> Result<(), Error> {
        self.conn()
            .execute(
                "INSERT INTO installation (name, value, updated_at) VALUES ('signer', ?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![key_id, to_nanos(now)],
            )
            .map_err(|e| self.err("recording the installation's signer", e))?;
        Ok(())
    }
}
