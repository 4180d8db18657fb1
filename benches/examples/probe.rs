//! temporary probe
#![allow(clippy::print_stdout)]
use std::time::Instant;
fn main() {
    let data = std::fs::read("/dev/shm/cb/plain.tar").unwrap();
    let t = Instant::now();
    let mut h = cairn_integrity::Hasher::new();
    h.update(&data);
    let d = h.finalize();
    println!(
        "sha256 {:.2} s ({:.0} MB/s) {d}",
        t.elapsed().as_secs_f64(),
        data.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    for level in [1, 3] {
        let t = Instant::now();
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        let mut total = 0;
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(4 << 20));
        for chunk in data.chunks(4 << 20) {
            c.compress_to_buffer(chunk, &mut out).unwrap();
            total += out.len();
        }
        println!(
            "zstd bulk L{level} 4MiB frames 1 thread {:.2} s ({:.0} MB/s) -> {total}",
            t.elapsed().as_secs_f64(),
            data.len() as f64 / t.elapsed().as_secs_f64() / 1e6
        );
    }
    let t = Instant::now();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    std::io::Write::write_all(&mut enc, &data).unwrap();
    let out = enc.finish().unwrap();
    println!(
        "zstd stream L3 1 thread {:.2} s -> {}",
        t.elapsed().as_secs_f64(),
        out.len()
    );
}
