//! Leases: one holder at a time per target, across processes sharing a store.
//!
//! A lease is a sequence of small JSON records under
//! `targets/<target>/lease/<generation>.json`, with generations zero-padded so
//! that keys sort in order. The record with the highest generation is the
//! current one. Every change (acquire, renew, take over, release) **creates the
//! next generation with put-if-absent**, the one atomic primitive that every
//! backend offers; of two processes racing for generation `n + 1`, exactly one
//! succeeds. After creating a record, the writer lists again and checks that
//! no higher generation exists, which covers a writer working from a stale
//! listing. Old generations are deleted as the lease moves on.
//!
//! This needs a store whose put-if-absent is atomic: S3 (`If-None-Match: *`),
//! Azure, local filesystems (a hard link) and memory are. The in-process
//! s3s-fs 0.14 test server is not (it checks, then writes), and the
//! conformance suite's race test shows it.
//!
//! Expiry uses the clock passed in by the caller: hosts sharing a store need
//! clocks within a small fraction of the lease's time to live.

use std::time::Duration;

use bytes::Bytes;
use cairn_manifest::TargetName;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Op};
use crate::store::Store;

/// The lease record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Which generation this record is.
    pub generation: u64,
    /// Who holds (or held) it: a process and job description.
    pub holder: String,
    /// When the holder first acquired it.
    pub acquired_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
    /// Whether the holder gave it up.
    pub released: bool,
}

impl LeaseRecord {
    /// Whether someone holds the lease at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        !self.released && now < self.expires_at
    }
}

/// The largest lease record accepted when reading.
const MAX_RECORD_BYTES: u64 = 16 * 1024;
/// Attempts when racing another writer for the next generation.
const ATTEMPTS: usize = 4;

fn lease_prefix(target: &TargetName) -> String {
    format!("targets/{target}/lease")
}

fn lease_key(target: &TargetName, generation: u64) -> String {
    format!("{}/{generation:020}.json", lease_prefix(target))
}

fn after(now: Timestamp, ttl: Duration) -> Timestamp {
    SignedDuration::try_from(ttl)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// A lease this process holds. Renew it before it expires; release it when
/// the job ends. Dropping it without releasing leaves it to expire.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    target: TargetName,
    record: LeaseRecord,
    ttl: Duration,
}

impl Lease {
    /// The current record.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// When the lease lapses unless renewed.
    pub fn expires_at(&self) -> Timestamp {
        self.record.expires_at
    }

    /// Extends the lease to `now + ttl`. Fails with [`ErrorKind::LeaseLost`]
    /// if someone else took it over meanwhile (it had expired).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::LeaseLost`] if someone else took the lease over; the store's errors.
    pub async fn renew(&mut self, now: Timestamp) -> Result<(), Error> {
        let next = LeaseRecord {
            generation: self.record.generation + 1,
            expires_at: after(now, self.ttl),
            ..self.record.clone()
        };
        self.record = self
            .store
            .write_generation(&self.target, next, true)
            .await?;
        Ok(())
    }

    /// Gives the lease up so another process can take it at once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::LeaseLost`] if someone else took the lease over; the store's errors.
    pub async fn release(self, now: Timestamp) -> Result<(), Error> {
        let next = LeaseRecord {
            generation: self.record.generation + 1,
            expires_at: now,
            released: true,
            ..self.record.clone()
        };
        self.store
            .write_generation(&self.target, next, true)
            .await?;
        Ok(())
    }
}

impl Store {
    /// The target's current lease record, if any.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] for a lease record that does not decode; the store's errors.
    pub async fn current_lease(&self, target: &TargetName) -> Result<Option<LeaseRecord>, Error> {
        let Some(generation) = self.latest_generation(target).await? else {
            return Ok(None);
        };
        let key = lease_key(target, generation);
        match self.get_small(&key, MAX_RECORD_BYTES).await {
            Ok(bytes) => {
                let record: LeaseRecord = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::new(
                        Op::Lease,
                        &key,
                        ErrorKind::Other,
                        format!("unreadable lease record: {e}"),
                    )
                })?;
                if record.generation != generation {
                    return Err(Error::new(
                        Op::Lease,
                        &key,
                        ErrorKind::Other,
                        format!("lease record says generation {}", record.generation),
                    ));
                }
                Ok(Some(record))
            }
            // Cleaned up between the listing and the read: a newer one exists.
            Err(e) if e.kind() == ErrorKind::NotFound => Box::pin(self.current_lease(target)).await,
            Err(e) => Err(e),
        }
    }

    /// Takes the target's lease for `holder` until `now + ttl`. Fails with
    /// [`ErrorKind::LeaseHeld`], naming the holder and the expiry, if another
    /// holder's lease is active. An expired or released lease is taken over.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::LeaseHeld`] while another holder's lease is active,
    /// and also after losing repeated races for it; the store's errors.
    pub async fn acquire_lease(
        &self,
        target: &TargetName,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, Error> {
        let key = lease_prefix(target);
        if holder.is_empty() || holder.len() > 1024 {
            return Err(Error::new(
                Op::Lease,
                key,
                ErrorKind::Config,
                "a lease holder is 1 to 1024 bytes",
            ));
        }
        for _ in 0..ATTEMPTS {
            let current = self.current_lease(target).await?;
            if let Some(c) = &current
                && c.is_active(now)
            {
                return Err(Error::new(
                    Op::Lease,
                    &key,
                    ErrorKind::LeaseHeld,
                    format!("held by {} until {}", c.holder, c.expires_at),
                ));
            }
            let record = LeaseRecord {
                generation: current.map_or(1, |c| c.generation + 1),
                holder: holder.to_owned(),
                acquired_at: now,
                expires_at: after(now, ttl),
                released: false,
            };
            match self.write_generation(target, record, false).await {
                Ok(record) => {
                    return Ok(Lease {
                        store: self.clone(),
                        target: target.clone(),
                        record,
                        ttl,
                    });
                }
                // Someone else wrote that generation first: look again.
                Err(e) if e.kind() == ErrorKind::LeaseLost => {}
                Err(e) => return Err(e),
            }
        }
        let holder = self
            .current_lease(target)
            .await?
            .map_or_else(|| "another process".to_owned(), |c| c.holder);
        Err(Error::new(
            Op::Lease,
            key,
            ErrorKind::LeaseHeld,
            format!("lost {ATTEMPTS} races for the lease, last to {holder}"),
        ))
    }

    /// Frees the target's lease if `holder` holds it, whether or not it has
    /// expired: for a process that knows the holder is dead (its own job,
    /// interrupted by a crash). Returns whether a lease was freed; a lease
    /// held by anyone else is left alone.
    ///
    /// # Errors
    ///
    /// The store's errors; a lease held by someone else, or taken over by
    /// someone else while it is freed, is not an error (`false`).
    pub async fn break_lease(
        &self,
        target: &TargetName,
        holder: &str,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let Some(current) = self.current_lease(target).await? else {
            return Ok(false);
        };
        if current.holder != holder || current.released {
            return Ok(false);
        }
        let next = LeaseRecord {
            generation: current.generation + 1,
            expires_at: now,
            released: true,
            ..current
        };
        // Another host may move the lease on (take over the lapsed lease)
        // between the read and the write: then there is nothing left to
        // free, and losing that race is not an error.
        match self.write_generation(target, next, true).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::LeaseLost => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The generations present, in ascending order, with their keys.
    async fn generations(&self, target: &TargetName) -> Result<Vec<(u64, String)>, Error> {
        let prefix = lease_prefix(target);
        let mut found: Vec<(u64, String)> = self
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| {
                let generation = o
                    .key
                    .strip_prefix(&prefix)?
                    .strip_prefix('/')?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()?;
                Some((generation, o.key))
            })
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The highest generation present, if any.
    async fn latest_generation(&self, target: &TargetName) -> Result<Option<u64>, Error> {
        Ok(self.generations(target).await?.last().map(|(g, _)| *g))
    }

    /// Creates `record`'s generation with put-if-absent, checks that it is
    /// still the latest, and deletes older generations. A lost race is
    /// [`ErrorKind::LeaseLost`].
    async fn write_generation(
        &self,
        target: &TargetName,
        record: LeaseRecord,
        renewing: bool,
    ) -> Result<LeaseRecord, Error> {
        let key = lease_key(target, record.generation);
        let body = serde_json::to_vec(&record).expect("a lease record serialises");
        let lost = |why: &str| {
            Error::new(
                Op::Lease,
                &key,
                ErrorKind::LeaseLost,
                if renewing {
                    format!("the lease was taken over: {why}")
                } else {
                    format!(
                        "another process took generation {}: {why}",
                        record.generation
                    )
                },
            )
        };
        match self.put_if_absent(&key, Bytes::from(body)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(lost("its next generation already exists"));
            }
            Err(e) => return Err(e),
        }
        // On a store whose put-if-absent is atomic, the record is ours. Read
        // it back anyway: a store that only checks then writes (s3s-fs 0.14
        // does) lets a racer overwrite it, and this narrows that window.
        let stored = self.get_small(&key, MAX_RECORD_BYTES).await?;
        if serde_json::from_slice::<LeaseRecord>(&stored).ok().as_ref() != Some(&record) {
            return Err(lost("another writer overwrote it"));
        }
        // One listing serves both the check and the cleanup.
        let generations = self.generations(target).await?;
        if generations.last().map(|(g, _)| *g) != Some(record.generation) {
            // A writer with a stale view recreated an old generation: ours is
            // not the lease. Remove it so it confuses no one.
            self.delete(&key).await?;
            return Err(lost("a newer generation exists"));
        }
        // Keep the previous generation (it names the previous holder); older
        // ones are history.
        for (g, old) in &generations {
            if g + 1 < record.generation {
                self.delete(old).await?;
            }
        }
        Ok(record)
    }
}
