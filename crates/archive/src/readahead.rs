//! Reading an input ahead on its own thread.

use std::io::{self, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes per read-ahead chunk.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead at most (bounds memory to `AHEAD × CHUNK`).
const AHEAD: usize = 4;

/// Wraps a `Read + Send + 'static` source (a file, a socket, a pipe) and reads
/// it ahead on a thread of its own, so that the system calls and copies of
/// reading overlap with decompressing and checking. Memory stays bounded (4 MiB).
///
/// ```
/// use std::io::Read;
/// use cairn_archive::ReadAhead;
///
/// let mut r = ReadAhead::new(std::io::Cursor::new(vec![7u8; 3_000_000]));
/// let mut all = Vec::new();
/// r.read_to_end(&mut all)?;
/// assert_eq!(all.len(), 3_000_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReadAhead {
    chunks: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    spare: mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading `inner` ahead.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread.
    pub fn new<R: Read + Send + 'static>(mut inner: R) -> Self {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        let (spare_tx, spare_rx) = mpsc::sync_channel::<Vec<u8>>(AHEAD + 2);
        let thread = std::thread::Builder::new()
            .name("cairn-read-ahead".into())
            .spawn(move || {
                loop {
                    let mut buf = spare_rx.try_recv().unwrap_or_default();
                    buf.resize(CHUNK, 0);
                    let mut filled = 0;
                    let result = loop {
                        match inner.read(&mut buf[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == CHUNK {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    buf.truncate(filled);
                    match result {
                        Ok(()) => {
                            let end = filled == 0;
                            // The reader went away, or the input ended: stop.
                            if tx.send(Ok(buf)).is_err() || end {
                                return;
                            }
                        }
                        Err(e) => {
                            // What was read before the error is delivered first.
                            if filled > 0 && tx.send(Ok(buf)).is_err() {
                                return;
                            }
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            })
            .expect("start the read-ahead thread");
        ReadAhead {
            chunks: Some(rx),
            spare: spare_tx,
            cur: Vec::new(),
            pos: 0,
            done: false,
            thread: Some(thread),
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            if self.done {
                return Ok(0);
            }
            let next = self
                .chunks
                .as_ref()
                .and_then(|rx| rx.recv().ok())
                .unwrap_or_else(|| Err(io::Error::other("the read-ahead thread stopped")));
            let chunk = match next {
                Ok(c) => c,
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            if chunk.is_empty() {
                self.done = true;
            }
            let old = std::mem::replace(&mut self.cur, chunk);
            let _ = self.spare.try_send(old);
            self.pos = 0;
        }
        let n = (self.cur.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Dropping the receiver makes the thread's next send fail, ending it.
        self.chunks.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_testkit::{FailingReader, RandomReader};

    #[test]
    fn delivers_everything_in_order() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = ReadAhead::new(RandomReader::new(io::Cursor::new(data.clone()), 3, 100_000));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(r.read(&mut [0u8; 10]).unwrap(), 0);
    }

    #[test]
    fn errors_arrive_after_the_data_before_them() {
        let data = vec![1u8; 3 * CHUNK];
        let failing = FailingReader::new(
            io::Cursor::new(data),
            2 * CHUNK as u64 + 5,
            io::ErrorKind::ConnectionReset,
        );
        let mut r = ReadAhead::new(failing);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(out.len(), 2 * CHUNK + 5);
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let r = ReadAhead::new(io::repeat(0));
        drop(r); // must not hang
    }
}
