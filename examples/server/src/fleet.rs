//! The fleet view: following every target of the store, also those this
//! server does not run, at most once per interval however many clients ask.

use std::time::{Duration, Instant};

use cairn::Vault;
use tokio::sync::Mutex;

/// When the server last followed every target of the store.
#[derive(Debug)]
pub struct Fleet {
    max_age: Duration,
    last: Mutex<Option<Instant>>,
}

impl Fleet {
    /// Follows again when the last follow is older than `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            last: Mutex::new(None),
        }
    }

    /// Brings the catalog up to the store for every target it holds
    /// ([`Vault::sync_all_targets`]) unless that was done within the
    /// interval. Concurrent callers wait for one follow instead of each
    /// making their own.
    ///
    /// # Errors
    ///
    /// As [`Vault::sync_all_targets`]; a failed follow is tried again by
    /// the next caller.
    pub async fn follow(&self, vault: &Vault) -> Result<(), cairn::Error> {
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.max_age) {
            return Ok(());
        }
        vault.sync_all_targets().await?;
        *last = Some(Instant::now());
        Ok(())
    }
}

impl Default for Fleet {
    /// Every 30 s, the scheduler's tick.
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}
