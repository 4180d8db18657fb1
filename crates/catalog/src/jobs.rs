//! Jobs and idempotency keys.

use cairn_job::idempotency::{self, Idempotency, IdempotencyConflict, IdempotencyRecord};
use cairn_job::{Event, Fingerprint, IdempotencyKey, Job, JobState};
use jiff::{SignedDuration, Timestamp};
use rusqlite::{OptionalExtension, params};

use crate::{Catalog, Error, ErrorKind, from_nanos, to_nanos};

/// The answer to a keyed job request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCreated {
    /// The job was stored (and the key remembered).
    New(Job),
    /// The same request came before: its job.
    Replay(Job),
}

/// A job left `queued` or `running`, with the process recorded as running
/// it (`<host> <pid>`) and that process's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedJob {
    /// The job as stored.
    pub job: Job,
    /// Who runs it, if recorded.
    pub owner: Option<String>,
    /// When the owner last said so.
    pub heartbeat: Option<Timestamp>,
}

fn upsert(conn: &rusqlite::Connection, job: &Job) -> rusqlite::Result<usize> {
    let record = serde_json::to_string(job).expect("a job serialises");
    conn.execute(
        "INSERT INTO jobs (id, kind, target, state, created_at, updated_at, record, backup_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, record = excluded.record, backup_id = excluded.backup_id",
        params![
            job.id,
            job.kind.as_str(),
            job.target,
            job.state.as_str(),
            to_nanos(job.created_at),
            to_nanos(job.updated_at),
            record,
            job.resource.as_ref().map(|r| r.id.as_str()),
        ],
    )
}

impl Catalog {
    fn parse_job(&self, id: &str, text: &str) -> Result<Job, Error> {
        serde_json::from_str(text).map_err(|e| {
            self.error(
                ErrorKind::Corrupt,
                format!("job {id}: unreadable record ({e})"),
            )
        })
    }

    /// Stores a job record (new, or the next state of an existing one).
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn put_job(&self, job: &Job) -> Result<(), Error> {
        let conn = self.conn();
        upsert(&conn, job).map_err(|e| self.err(&format!("saving job {}", job.id), e))?;
        Ok(())
    }

    /// Stores a progress update of a job that has not ended: a job already
    /// stored as succeeded, failed or cancelled is left as it is, so a late
    /// progress save can never overwrite its final state. Returns whether
    /// the record was updated.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn put_job_progress(&self, job: &Job) -> Result<bool, Error> {
        let record = serde_json::to_string(job).expect("a job serialises");
        let n = self
            .conn()
            .execute(
                "UPDATE jobs SET state = ?2, updated_at = ?3, record = ?4
                 WHERE id = ?1 AND state IN ('queued', 'running')",
                params![job.id, job.state.as_str(), to_nanos(job.updated_at), record],
            )
            .map_err(|e| self.err(&format!("saving progress of job {}", job.id), e))?;
        Ok(n == 1)
    }

    /// Records a request to cancel job `id` for the process running it (which
    /// polls [`Catalog::cancel_requested`]). Returns `false`, recording
    /// nothing, if the job is unknown or has ended.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn request_cancel(&self, id: &str, now: Timestamp) -> Result<bool, Error> {
        let n = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO cancel_requests (job_id, requested_at)
                 SELECT id, ?2 FROM jobs WHERE id = ?1 AND state IN ('queued', 'running')",
                params![id, to_nanos(now)],
            )
            .map_err(|e| self.err(&format!("cancelling job {id}"), e))?;
        if n == 1 {
            return Ok(true);
        }
        // Already asked, or ended, or unknown.
        let unfinished: Option<bool> = self
            .conn()
            .query_row(
                "SELECT state IN ('queued', 'running') FROM jobs WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(&format!("reading job {id}"), e))?;
        Ok(unfinished == Some(true))
    }

    /// Whether another process asked to cancel job `id`.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn cancel_requested(&self, id: &str) -> Result<bool, Error> {
        let found: Option<i64> = self
            .conn()
            .query_row(
                "SELECT 1 FROM cancel_requests WHERE job_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(&format!("reading job {id}"), e))?;
        Ok(found.is_some())
    }

    /// One job, or `None`.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn get_job(&self, id: &str) -> Result<Option<Job>, Error> {
        let text: Option<String> = self
            .conn()
            .query_row("SELECT record FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(&format!("reading job {id}"), e))?;
        text.map(|t| self.parse_job(id, &t)).transpose()
    }

    /// Jobs, newest first, optionally of one target and in some states
    /// (all states when `states` is empty), at most `limit`.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn list_jobs(
        &self,
        target: Option<&str>,
        states: &[JobState],
        limit: usize,
    ) -> Result<Vec<Job>, Error> {
        let wanted: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, record FROM jobs
                 WHERE (?1 IS NULL OR target = ?1)
                   AND (?2 = '[]' OR state IN (SELECT value FROM json_each(?2)))
                 ORDER BY created_at DESC, id DESC LIMIT ?3",
            )
            .map_err(|e| self.err("listing jobs", e))?;
        let states_json = serde_json::to_string(&wanted).expect("strings serialise");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(rusqlite::params![target, states_json, limit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err("listing jobs", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, text) = row.map_err(|e| self.err("listing jobs", e))?;
            out.push(self.parse_job(&id, &text)?);
        }
        Ok(out)
    }

    /// Records which process runs job `id` (`owner`, e.g. `<host> <pid>`),
    /// or refreshes its heartbeat.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn set_job_owner(&self, id: &str, owner: &str, now: Timestamp) -> Result<(), Error> {
        self.conn()
            .execute(
                "INSERT INTO job_owners (job_id, owner, heartbeat) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job_id) DO UPDATE SET owner = excluded.owner, heartbeat = excluded.heartbeat",
                params![id, owner, to_nanos(now)],
            )
            .map_err(|e| self.err(&format!("recording the owner of job {id}"), e))?;
        Ok(())
    }

    /// Every job left `queued` or `running`, with its owner and heartbeat:
    /// what crash recovery judges.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn unfinished_jobs(&self) -> Result<Vec<UnfinishedJob>, Error> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT j.id, j.record, o.owner, o.heartbeat FROM jobs j
                 LEFT JOIN job_owners o ON o.job_id = j.id
                 WHERE j.state IN ('queued', 'running')
                 ORDER BY j.created_at, j.id",
            )
            .map_err(|e| self.err("listing unfinished jobs", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(|e| self.err("listing unfinished jobs", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, text, owner, beat) =
                row.map_err(|e| self.err("listing unfinished jobs", e))?;
            out.push(UnfinishedJob {
                job: self.parse_job(&id, &text)?,
                owner,
                heartbeat: beat.map(from_nanos),
            });
        }
        Ok(out)
    }

    /// Ends job `id` with `event` (one of the interruption events of crash
    /// recovery) if it is still `queued` or `running`, in one immediate
    /// transaction: when two processes recover the same dead job, one ends
    /// it and the other gets `None`. Returns the ended job.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] if `event` does not apply to the job's state; SQLite failures:
    /// [`ErrorKind::Busy`] when another process holds the write lock past the busy timeout,
    /// [`ErrorKind::Corrupt`] for a damaged file or a record that does not decode,
    /// [`ErrorKind::Other`] otherwise.
    pub fn end_unfinished(
        &self,
        id: &str,
        event: &Event,
        now: Timestamp,
    ) -> Result<Option<Job>, Error> {
        let mut conn = self.conn();
        let what = format!("ending job {id}");
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(&what, e))?;
        let text: Option<String> = tx
            .query_row(
                "SELECT record FROM jobs WHERE id = ?1 AND state IN ('queued', 'running')",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(&what, e))?;
        let Some(text) = text else {
            return Ok(None);
        };
        let job = self.parse_job(id, &text)?;
        let ended = job
            .apply(event, now)
            .map_err(|e| self.error(ErrorKind::Other, format!("job {id}: {e}")))?;
        upsert(&tx, &ended).map_err(|e| self.err(&what, e))?;
        tx.commit().map_err(|e| self.err(&what, e))?;
        Ok(Some(ended))
    }

    /// Crash recovery for a catalog shared by several processes: every job
    /// left `queued` or `running` for which `is_dead(job, owner, heartbeat)`
    /// says its process is gone gets the `interrupted` event (it becomes
    /// `failed`). Jobs without a recorded owner are passed `None`. Returns
    /// the updated jobs.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn interrupt_dead(
        &self,
        now: Timestamp,
        is_dead: impl Fn(&Job, Option<&str>, Option<Timestamp>) -> bool,
    ) -> Result<Vec<Job>, Error> {
        let mut out = Vec::new();
        for u in self.unfinished_jobs()? {
            if is_dead(&u.job, u.owner.as_deref(), u.heartbeat)
                && let Some(job) = self.end_unfinished(&u.job.id, &Event::Interrupted, now)?
            {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Crash recovery for a catalog used by one process: every job left
    /// `queued` or `running` gets the `interrupted` event (it becomes
    /// `failed`). Returns the updated jobs, so the caller can clean up their
    /// partial objects. Shared catalogs use [`Catalog::interrupt_dead`].
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn interrupt_unfinished(&self, now: Timestamp) -> Result<Vec<Job>, Error> {
        self.interrupt_dead(now, |_, _, _| true)
    }

    /// Stores a new job under an idempotency key, in one transaction: if the
    /// key was used (within `ttl`) for the same request, the earlier job is
    /// returned instead; for a different request, a conflict.
    ///
    /// # Errors
    ///
    /// The outer error: SQLite failures: [`ErrorKind::Busy`] when another process holds the
    /// write lock past the busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record
    /// that does not decode, [`ErrorKind::Other`] otherwise. The inner one: the key was used
    /// for another request (an
    /// [`IdempotencyConflict`] naming its job).
    pub fn create_job_idempotent(
        &self,
        job: &Job,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        ttl: SignedDuration,
        now: Timestamp,
    ) -> Result<Result<JobCreated, IdempotencyConflict>, Error> {
        let mut conn = self.conn();
        let what = format!("creating job {} with key {key}", job.id);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(&what, e))?;
        let existing: Option<(String, String, i64)> = tx
            .query_row(
                "SELECT fingerprint, job_id, created_at FROM idempotency_keys WHERE key = ?1",
                [key.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(&what, e))?;
        let record = existing.map(|(fp, job_id, at)| IdempotencyRecord {
            key: key.clone(),
            fingerprint: serde_json::from_value(serde_json::Value::String(fp))
                .expect("a string is a fingerprint"),
            job_id,
            created_at: from_nanos(at),
        });
        match idempotency::check(record.as_ref(), fingerprint, ttl, now) {
            Err(conflict) => Ok(Err(conflict)),
            Ok(Idempotency::Replay { job_id }) => {
                let text: String = tx
                    .query_row("SELECT record FROM jobs WHERE id = ?1", [&job_id], |r| {
                        r.get(0)
                    })
                    .map_err(|e| self.err(&what, e))?;
                Ok(Ok(JobCreated::Replay(self.parse_job(&job_id, &text)?)))
            }
            Ok(Idempotency::New) => {
                upsert(&tx, job).map_err(|e| self.err(&what, e))?;
                tx.execute(
                    "INSERT INTO idempotency_keys (key, fingerprint, job_id, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, job_id = excluded.job_id, created_at = excluded.created_at",
                    params![key.as_str(), fingerprint.as_str(), job.id, to_nanos(now)],
                )
                .map_err(|e| self.err(&what, e))?;
                tx.commit().map_err(|e| self.err(&what, e))?;
                Ok(Ok(JobCreated::New(job.clone())))
            }
        }
    }

    /// Forgets idempotency keys older than `ttl`; returns how many.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn expire_idempotency_keys(
        &self,
        ttl: SignedDuration,
        now: Timestamp,
    ) -> Result<usize, Error> {
        let cutoff = now.checked_sub(ttl).unwrap_or(Timestamp::MIN);
        self.conn()
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at <= ?1",
                [to_nanos(cutoff)],
            )
            .map_err(|e| self.err("expiring idempotency keys", e))
    }
}
