//! Writes the deterministic benchmark dataset used by `scripts/bench-archive.sh`.
//!
//! ```text
//! cargo run --release -p cairn-benches --bin gen-dataset -- DIR [SCALE_MIB]
//! cargo run --release -p cairn-benches --bin gen-dataset -- --files N DIR
//! ```
//!
//! About `SCALE_MIB` MiB (default 1024) in four parts: many small text files
//! (25%), partly compressible binaries (25%), incompressible blobs (30%); the
//! SQLite file (20%) is made by the script with Python's `sqlite3`.
//!
//! With `--files N`: `N` small files (30 to 50 bytes of text each), 1,000 to
//! a folder, the tree where per-file costs dominate.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// xorshift64*: fast, deterministic, good enough to defeat compression.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "backup",
    "restore",
    "service",
    "config",
    "request",
    "latency",
    "error",
    "user",
    "session",
    "deploy",
    "rollback",
    "database",
    "index",
    "query",
    "cache",
    "worker",
    "queue",
    "metric",
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "for",
    "on",
    "with",
    "at",
    "by",
    "from",
    "level",
    "INFO",
    "WARN",
    "DEBUG",
    "status=200",
    "status=404",
    "id=",
    "ms",
    "bytes",
    "GET",
    "POST",
];

fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut line = 0u64;
    while out.len() < len {
        line += 1;
        write!(
            out,
            "2026-11-22T10:{:02}:{:02}.{:03}Z ",
            line % 60,
            rng.below(60),
            rng.below(1000)
        )
        .ok();
        for _ in 0..(6 + rng.below(10)) {
            out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
            if rng.below(4) == 0 {
                write!(out, "{}", rng.below(100_000)).ok();
            }
            out.push(b' ');
        }
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

/// `files` files of 30 to 50 bytes, 1,000 to a folder.
fn many_files(dir: &std::path::Path, files: u64) -> Result<(), Box<dyn Error>> {
    let mut rng = Rng(0x0f11_e5ee_d000_0001);
    for n in 0..files {
        let d = dir.join(format!("d{:04}", n / 1000));
        if n % 1000 == 0 {
            fs::create_dir_all(&d)?;
        }
        let len = 30 + rng.below(21) as usize;
        fs::write(d.join(format!("f{n:07}.txt")), text(&mut rng, len))?;
    }
    println!("{files} small files, dataset at {}", dir.display());
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    const USAGE: &str = "usage: gen-dataset DIR [SCALE_MIB] | gen-dataset --files N DIR";
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--files") {
        args.next();
        let files: u64 = args.next().ok_or(USAGE)?.parse()?;
        let dir = PathBuf::from(args.next().ok_or(USAGE)?);
        return many_files(&dir, files);
    }
    let dir = PathBuf::from(args.next().ok_or(USAGE)?);
    let scale: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let total = scale << 20;
    let mut rng = Rng(0x00c0_ffee_1234_5678);

    // Small text files: 25%, 2–16 KiB each, in 100 directories.
    let mut written = 0u64;
    let mut n = 0;
    while written < total / 4 {
        let d = dir.join(format!("text/d{:03}", n % 100));
        fs::create_dir_all(&d)?;
        let len = 2048 + rng.below(14 * 1024) as usize;
        fs::write(d.join(format!("f{n:06}.log")), text(&mut rng, len))?;
        written += len as u64;
        n += 1;
    }
    let small_files = n;

    // Partly compressible binaries: 25%, 8 MiB each, half noise and half patterns.
    fs::create_dir_all(dir.join("bin"))?;
    let mut written = 0u64;
    let mut k = 0;
    while written < total / 4 {
        let mut buf = vec![0u8; 8 << 20];
        for (i, block) in buf.chunks_mut(4096).enumerate() {
            if i % 2 == 0 {
                rng.fill(block);
            } else {
                let b = rng.below(256) as u8;
                for (j, x) in block.iter_mut().enumerate() {
                    *x = b.wrapping_add((j % 16) as u8);
                }
            }
        }
        fs::write(dir.join(format!("bin/part{k:03}.bin")), &buf)?;
        written += buf.len() as u64;
        k += 1;
    }

    // Incompressible blobs: 30%, 32 MiB each.
    fs::create_dir_all(dir.join("blobs"))?;
    let mut written = 0u64;
    let mut k = 0;
    while written < total * 3 / 10 {
        let mut buf = vec![0u8; 32 << 20];
        rng.fill(&mut buf);
        fs::write(dir.join(format!("blobs/blob{k:03}.bin")), &buf)?;
        written += buf.len() as u64;
        k += 1;
    }
    println!("{small_files} small files, dataset at {}", dir.display());
    Ok(())
}
