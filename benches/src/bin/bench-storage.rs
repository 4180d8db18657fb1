//! Upload and download throughput of a store, and peak memory during upload.
//!
//! ```text
//! cargo run --release -p cairn-benches --bin bench-storage -- STORE_URL [SIZE_MIB]
//! ```
//!
//! Streams `SIZE_MIB` MiB (default 1024) of incompressible bytes, generated on
//! the fly, through `Store::upload` with the default part size and
//! concurrency, then reads the object back with `Store::get_stream`. For
//! `s3://` URLs the endpoint and credentials come from the usual `AWS_*`
//! variables (`scripts/bench-storage.sh` sets them for the local emulator).
//! Prints one line per direction, and the process's peak RSS (`VmHWM`) after
//! the upload, before anything else has run.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::time::Instant;

use bytes::Bytes;
use cairn_storage::{Store, StoreOptions};
use futures::StreamExt;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: bench-storage STORE_URL [SIZE_MIB]")?;
    let mib: u64 = args.next().map_or(Ok(1024), |s| s.parse())?;
    let store = Store::open(&url, &StoreOptions::default())?;
    let key = "bench/object.bin";

    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let chunk = 1usize << 20;
    let start = Instant::now();
    let mut upload = store.upload(key).await?;
    for _ in 0..mib {
        let mut buf = Vec::with_capacity(chunk);
        for _ in 0..chunk / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        upload.write(Bytes::from(buf)).await?;
    }
    upload.finish().await?;
    let up = start.elapsed().as_secs_f64();
    let rss = peak_rss_mib();

    let start = Instant::now();
    let (info, mut stream) = store.get_stream(key).await?;
    let mut read = 0u64;
    while let Some(bytes) = stream.next().await {
        read += bytes?.len() as u64;
    }
    let down = start.elapsed().as_secs_f64();
    if read != mib << 20 || info.size != read {
        return Err(format!("read {read} bytes, wrote {}", mib << 20).into());
    }
    store.delete(key).await?;
    let m = mib as f64;
    println!(
        "{url}: upload {mib} MiB in {up:.2} s ({:.0} MiB/s, peak RSS {rss:.0} MiB); download in {down:.2} s ({:.0} MiB/s)",
        m / up,
        m / down
    );
    Ok(())
}
