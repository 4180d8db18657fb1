//! Hashing and signing: SHA-256 throughput, Ed25519 sign and verify.
//!
//! `cargo bench -p cairn-benches --bench integrity`.

use std::hint::black_box;

use cairn_integrity::{Hasher, Sha256Digest, SigningKey};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn bench_sha256(c: &mut Criterion) {
    let mut group = c.benchmark_group("sha256");
    for size in [4 << 10, 1 << 20, 16 << 20] {
        let data = vec![0xa5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| {
                let mut h = Hasher::new();
                h.update(d);
                black_box(h.finalize())
            });
        });
    }
    group.finish();
}

fn bench_ed25519(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[7; 32]);
    let public = key.public_key();
    // A manifest of a few thousand entries is a few hundred KiB.
    let message = vec![b'{'; 256 * 1024];
    let sig = key.sign(&message);
    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("sign-256KiB", |b| b.iter(|| black_box(key.sign(&message))));
    group.bench_function("verify-256KiB", |b| {
        b.iter(|| public.verify(&message, &sig).expect("valid"));
    });
    group.finish();
    c.bench_function("sha256-digest-of-32-bytes", |b| {
        b.iter(|| black_box(Sha256Digest::of(&[1u8; 32])));
    });
}

criterion_group!(benches, bench_sha256, bench_ed25519);
criterion_main!(benches);
