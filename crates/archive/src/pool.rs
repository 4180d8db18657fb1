//! A fixed set of named threads taking jobs from one bounded queue, each
//! thread with its own state (a zstd context, kept between jobs): the
//! compression threads of a pack ([`crate::frames`]) and the decompression
//! threads of a read ([`crate::zstd_frames`]) are two pools of this kind.
//!
//! An ingest reads one archive while it writes another, and keeps a pool
//! for each: one pool for both measured no faster on two cores (294–297
//! MiB/s through `archive_ingest` at 64 MiB, against 288–316 MiB/s for a
//! pool each over several runs), its one queue making output frames wait
//! behind input ones.
//!
//! A job carries its own way back (a channel for its result), so that the
//! caller collects results in its order whatever order the threads finish
//! in. Dropping the pool closes the queue and joins the threads once each
//! has finished its job.

use std::io;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

/// Threads running `work` on queued jobs of type `J`.
pub(crate) struct Pool<J> {
    jobs: Option<mpsc::SyncSender<J>>,
    workers: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static> Pool<J> {
    /// Starts `threads` threads named `<name>-<i>`, each making its state
    /// with `state` and running `work(&mut state, job)` for every job it
    /// takes. At most `queue` jobs wait (at least one).
    pub(crate) fn new<S, F>(
        name: &str,
        threads: usize,
        queue: usize,
        state: F,
        work: fn(&mut S, J),
    ) -> io::Result<Self>
    where
        S: 'static,
        F: Fn() -> S + Send + Clone + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<J>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (rx, state) = (Arc::clone(&rx), state.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        let mut own = state();
                        // The queue closed: the pool is being dropped.
                        while let Some(job) = next(&rx) {
                            work(&mut own, job);
                        }
                    })?,
            );
        }
        Ok(Pool {
            jobs: Some(tx),
            workers,
        })
    }

    /// Queues `job`, waiting while the queue is full; false if no thread
    /// is left to take it.
    pub(crate) fn submit(&self, job: J) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }
}

/// The next job of the queue, or `None` once it is closed.
fn next<J>(rx: &Mutex<mpsc::Receiver<J>>) -> Option<J> {
    let guard = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.recv().ok()
}

impl<J> Drop for Pool<J> {
    fn drop(&mut self) {
        // Closing the queue ends every thread once it finishes its job.
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(calls: &mut u64, (n, reply): (u64, mpsc::SyncSender<(u64, u64)>)) {
        *calls += 1;
        let _ = reply.send((n * n, *calls));
    }

    #[test]
    fn every_job_is_answered_on_its_own_channel_and_threads_keep_their_state() {
        let pool = Pool::new("test-square", 2, 4, || 0u64, square).unwrap();
        let replies: Vec<_> = (0..50u64)
            .map(|n| {
                let (tx, rx) = mpsc::sync_channel(1);
                assert!(pool.submit((n, tx)));
                rx
            })
            .collect();
        let mut calls = 0;
        for (n, rx) in replies.into_iter().enumerate() {
            let (square, seen) = rx.recv().unwrap();
            assert_eq!(square, (n * n) as u64);
            calls = calls.max(seen);
        }
        assert!(calls >= 25, "one thread's state counted {calls} of 50 jobs");
        drop(pool);
    }

    #[test]
    fn without_threads_nothing_is_taken() {
        let pool = Pool::new("test-none", 0, 1, || 0u64, square).unwrap();
        let (tx, _rx) = mpsc::sync_channel(1);
        assert!(!pool.submit((3, tx)));
    }
}
