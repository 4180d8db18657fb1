//! Archive write, read and ingest throughput by codec, level and size.
//!
//! `cargo bench -p cairn-benches --bench archive`. The end-to-end comparison
//! with `tar | zstd` on a 1 GiB tree is `scripts/bench-archive.sh`.

use std::hint::black_box;

use cairn_archive::{
    ArchiveMeta, ArchiveReader, ArchiveWriter, EntryMeta, IngestOptions, ReadOptions, SeekSource,
    SeekableArchive, WriterOptions, ingest,
};
use cairn_integrity::SigningKey;
use cairn_manifest::{
    BackupId, Codec, ComponentKind, ComponentName, EntryPath, Mtime, OriginId, TargetName,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Half text-like, half noise: neither trivially compressible nor incompressible.
fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        if (out.len() / 4096) % 2 == 0 {
            out.extend_from_slice(b"GET /api/v1/items?id=");
            out.extend_from_slice((v % 100_000).to_string().as_bytes());
            out.extend_from_slice(b" 200 12ms\n");
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// An archive of `files` files of `size / files` bytes each.
fn write(key: &SigningKey, data: &[u8], files: usize, opts: WriterOptions) -> Vec<u8> {
    let meta = ArchiveMeta::new(
        TargetName::parse("bench").expect("name"),
        OriginId::parse("org_bench").expect("id"),
    )
    .backup_id(BackupId::from_parts(1, 1));
    let mut w = ArchiveWriter::new(Vec::with_capacity(data.len()), meta, opts).expect("writer");
    let name = ComponentName::parse("data").expect("name");
    w.begin_component(&name, ComponentKind::Dir, false)
        .expect("component");
    let each = data.len() / files;
    for (i, chunk) in data.chunks(each).enumerate() {
        let path = EntryPath::parse(format!("data/f{i:06}").as_bytes()).expect("path");
        let mut r = chunk;
        w.append_data(
            &path,
            EntryMeta::new(0o644, Mtime::new(0, 0)),
            chunk.len() as u64,
            &mut r,
            None,
        )
        .expect("append");
    }
    w.finish(key).expect("finish").inner
}

fn bench_write(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32]);
    let mut group = c.benchmark_group("archive_write");
    group.sample_size(10);
    for size in [1 << 20, 16 << 20] {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        for (codec, level) in [
            (Codec::Zstd, 1),
            (Codec::Zstd, 3),
            (Codec::Zstd, 9),
            (Codec::Gzip, 6),
        ] {
            let id = BenchmarkId::new(format!("{codec}-{level}"), size);
            let opts = WriterOptions::default().codec(codec).level(level);
            group.bench_with_input(id, &data, |b, data| {
                b.iter(|| black_box(write(&key, data, 16, opts.clone())));
            });
        }
    }
    group.finish();
}

fn bench_read(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32]);
    let public = key.public_key();
    let mut group = c.benchmark_group("archive_verify");
    group.sample_size(10);
    for size in [1 << 20, 16 << 20] {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        for codec in [Codec::Zstd, Codec::Gzip] {
            let archive = write(&key, &data, 16, WriterOptions::default().codec(codec));
            group.bench_with_input(
                BenchmarkId::new(format!("stream-{codec}"), size),
                &archive,
                |b, a| {
                    b.iter(|| {
                        black_box(
                            ArchiveReader::new(&a[..])
                                .and_then(|r| r.verify(&public))
                                .expect("verify"),
                        )
                    });
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("seek-full-{codec}"), size),
                &archive,
                |b, a| {
                    b.iter(|| {
                        let mut s = SeekableArchive::open(
                            SeekSource(std::io::Cursor::new(&a[..])),
                            &public,
                            ReadOptions::default(),
                        )
                        .expect("open");
                        black_box(s.verify_full(&public).expect("verify"))
                    });
                },
            );
        }
    }
    group.finish();
}

/// An upload: a Cairn archive made elsewhere (many frames, decompressed in
/// parallel) signed again as a new one (compressed in parallel).
fn bench_ingest(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32]);
    let mut group = c.benchmark_group("archive_ingest");
    group.sample_size(10);
    for size in [16 << 20, 64 << 20] {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        let archive = write(&key, &data, 16, WriterOptions::default());
        let opts = IngestOptions::default();
        group.bench_with_input(BenchmarkId::new("cairn-zstd", size), &archive, |b, a| {
            b.iter(|| {
                let meta = ArchiveMeta::new(
                    TargetName::parse("bench").expect("name"),
                    OriginId::parse("org_bench").expect("id"),
                )
                .backup_id(BackupId::from_parts(2, 2));
                let out = Vec::with_capacity(a.len());
                black_box(ingest(&a[..], out, meta, &key, &opts).expect("ingest"))
            });
        });
    }
    group.finish();
}

/// An incremental backup of a 64 MiB file with a byte changed on 1% of its
/// 4 KiB pages: two 32 MiB segments, each compared with the parent's and
/// stored as a zstd patch against it (`docs/format.md` 12.4).
fn bench_segments(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[3; 32]);
    let len = 64 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("app.db");
    let mut body = payload(len);
    std::fs::write(&file, &body).expect("write");
    let name = ComponentName::parse("db").expect("name");
    let pack = |parent: Option<&[u8]>| {
        let meta = ArchiveMeta::new(
            TargetName::parse("bench").expect("name"),
            OriginId::parse("org_bench").expect("id"),
        )
        .backup_id(BackupId::from_parts(2, u128::from(parent.is_some())));
        let mut w = ArchiveWriter::new(Vec::new(), meta, WriterOptions::default()).expect("writer");
        if let Some(p) = parent {
            let a = SeekableArchive::open(
                SeekSource(std::io::Cursor::new(p.to_vec())),
                &key.public_key(),
                ReadOptions::default(),
            )
            .expect("parent");
            w.set_parent(cairn_archive::Parent::new(a).expect("parent"))
                .expect("set parent");
        }
        w.append_file(&name, ComponentKind::Sqlite, &file, false)
            .expect("append");
        w.finish(&key).expect("finish").inner
    };
    let full = pack(None);
    for page in (0..len / 4096).step_by(100) {
        body[page * 4096 + 100] ^= 0x5a;
    }
    std::fs::write(&file, &body).expect("write");
    let mut group = c.benchmark_group("archive_segments");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("incremental_64MiB_1pct_pages", |b| {
        b.iter(|| black_box(pack(Some(&full)).len()));
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_write,
    bench_read,
    bench_ingest,
    bench_segments
);
criterion_main!(benches);
