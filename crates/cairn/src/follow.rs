//! Following a job until it ends, in this process or another.

use std::time::Duration;

use cairn_job::Job;
use futures::Stream;
use tokio::sync::watch;

use crate::error::Error;
use crate::vault::Vault;

/// How often a job of another process is read again from the catalog (it
/// saves its progress once a second).
const POLL: Duration = Duration::from_millis(250);

impl Vault {
    /// The job each time it changes, from now until it ends: the stream
    /// yields the job as it is, then every change (a job of this process
    /// through its live channel; one of another process by reading the
    /// catalog four times a second, where it saves its progress once a
    /// second), and ends after yielding the job in its terminal state. A
    /// failure to read the catalog is yielded, and ends the stream.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown job, catalog errors.
    pub async fn follow(
        &self,
        id: &str,
    ) -> Result<impl Stream<Item = Result<Job, Error>> + Send + 'static, Error> {
        let first = self.job(id).await?;
        let follow = Follow {
            vault: self.clone(),
            id: id.to_owned(),
            rx: first.subscribe(),
            last: None,
            done: false,
        };
        Ok(futures::stream::unfold(follow, Follow::next))
    }
}

/// Where a [`Vault::follow`] stream stands.
struct Follow {
    vault: Vault,
    id: String,
    rx: watch::Receiver<Job>,
    last: Option<Job>,
    done: bool,
}

impl Follow {
    async fn next(mut self) -> Option<(Result<Job, Error>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let job = match self.vault.job(&self.id).await {
                Ok(handle) => handle.status(),
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            };
            if self.last.as_ref() != Some(&job) {
                self.done = job.state.is_terminal();
                self.last = Some(job.clone());
                return Some((Ok(job), self));
            }
            tokio::select! {
                changed = self.rx.changed() => {
                    // No live channel (a job of another process, or one that
                    // has just ended here): the catalog is read at the pace.
                    if changed.is_err() {
                        tokio::time::sleep(POLL).await;
                    }
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
