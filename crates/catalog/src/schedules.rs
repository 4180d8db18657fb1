//! Per-target schedule state and cooldowns.

use cairn_retention::ScheduleState;
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use crate::{Catalog, Error, ErrorKind, to_nanos};

impl Catalog {
    /// A target's schedule state; the default (enabled, never run) if none
    /// was stored.
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
