//! A target's shared state: the decisions every host sharing the store must
//! respect (pins, soft deletes, undeletes, purges) and the backups published,
//! as a log of numbered records.
//!
//! ```text
//! <root>/targets/<target>/state/<generation>.rec   generation 1, 2, 3, … zero-padded to 20 digits
//! ```
//!
//! Record `n + 1` is **created with put-if-absent**, by a writer that has
//! read records `1 ..= n` and checked its change against them: of two
//! writers racing for the same generation exactly one succeeds, and the
//! other reads the winner's record and checks again. Generations are dense
//! (nobody writes `n + 2` before `n + 1` exists), so a reader follows the
//! log by asking for the next generation until there is none: one request
//! per new record and one more, with no listing. The records' contents
//! (signed by the engine, `docs/storage.md` "Shared state") are opaque
//! here.

use bytes::Bytes;
use cairn_manifest::TargetName;

use crate::error::{Error, ErrorKind, Op};
use crate::store::Store;

/// The largest state record accepted when reading.
pub const MAX_STATE_RECORD_BYTES: u64 = 64 * 1024;

/// The key of record `generation` of `target`'s shared state.
pub fn state_key(target: &TargetName, generation: u64) -> String {
    format!("targets/{target}/state/{generation:020}.rec")
}

impl Store {
    /// Creates record `generation` of `target`'s shared state, if no one
    /// has: an error of kind [`ErrorKind::AlreadyExists`] when another
    /// writer took that generation first (read it, check again, and try the
    /// next). Generation 0 is not a record.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`]; [`ErrorKind::Config`] for generation 0
    /// or a record over [`MAX_STATE_RECORD_BYTES`]; the store's errors of
    /// [`Store::put_if_absent`].
    pub async fn append_state(
        &self,
        target: &TargetName,
        generation: u64,
        record: Bytes,
    ) -> Result<(), Error> {
        let key = state_key(target, generation);
        if generation == 0 || record.len() as u64 > MAX_STATE_RECORD_BYTES {
            return Err(Error::new(
                Op::PutIfAbsent,
                &key,
                ErrorKind::Config,
                format!(
                    "a state record has a generation from 1 and at most {MAX_STATE_RECORD_BYTES} bytes"
                ),
            ));
        }
        self.put_if_absent(&key, record).await
    }

    /// Record `generation` of `target`'s shared state, or `None` when it
    /// has not been written (yet).
    ///
    /// # Errors
    ///
    /// The store's errors of [`Store::get_small`] (a record over
    /// [`MAX_STATE_RECORD_BYTES`] is refused by it, of kind
    /// [`ErrorKind::Other`]).
    pub async fn read_state(
        &self,
        target: &TargetName,
        generation: u64,
    ) -> Result<Option<Bytes>, Error> {
        match self
            .get_small(&state_key(target, generation), MAX_STATE_RECORD_BYTES)
            .await
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_created_once_and_read_back_by_generation() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Store::open(&url, &Default::default()).unwrap();
        let t = TargetName::parse("app").unwrap();
        assert_eq!(store.read_state(&t, 1).await.unwrap(), None);
        store
            .append_state(&t, 1, Bytes::from_static(b"one"))
            .await
            .unwrap();
        let again = store
            .append_state(&t, 1, Bytes::from_static(b"other"))
            .await
            .unwrap_err();
        assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
        assert_eq!(
            store.read_state(&t, 1).await.unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(store.read_state(&t, 2).await.unwrap(), None);
        let zero = store
            .append_state(&t, 0, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::Config);
        let big = Bytes::from(vec![b'x'; MAX_STATE_RECORD_BYTES as usize + 1]);
        let err = store.append_state(&t, 2, big).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            state_key(&t, 12),
            "targets/app/state/00000000000000000012.rec"
        );
    }
}
