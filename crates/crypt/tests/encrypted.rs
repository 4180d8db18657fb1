//! Encrypted archives: written through `EncryptingWriter`, read by range
//! through `Decrypted`, opened by the `age` command and GNU tar, and
//! refused when anything in them was changed.

use std::io::{Cursor, Read};
use std::path::Path;
use std::process::Command;

use cairn_archive::{
    ArchiveMeta, ArchiveWriter, RangeRead, ReadOptions, SeekSource, SeekableArchive, UnpackOptions,
    WriterOptions,
};
use cairn_crypt::*;
use cairn_integrity::SigningKey;
use cairn_manifest::{ComponentName, EntryPath, OriginId, TargetName};
use cairn_testkit::{
    TreeOptions, assert_trees_equal, noise, random_tree, require_tool, run_ok, running_as_root,
};

fn key() -> SigningKey {
    SigningKey::from_seed(&[5; 32])
}

/// A Cairn archive of `src` (component `data`), written to `out`.
fn archive_into<W: std::io::Write>(src: &Path, out: W) -> W {
    let meta = ArchiveMeta::new(
        TargetName::parse("app").unwrap(),
        OriginId::parse("org_crypt").unwrap(),
    );
    let opts = WriterOptions::default().threads(2).frame_size(256 * 1024);
    let mut w = ArchiveWriter::new(out, meta, opts).unwrap();
    w.append_dir(&ComponentName::parse("data").unwrap(), src, false)
        .unwrap();
    w.finish(&key()).unwrap().inner
}

/// The archive of `src` encrypted to `recipients`.
fn encrypted(src: &Path, recipients: &[Recipient]) -> Vec<u8> {
    let w = EncryptingWriter::new(Vec::new(), recipients).unwrap();
    archive_into(src, w).finish().unwrap()
}

/// A tree with a small file between two large ones of noise.
fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("big.bin"), noise(3 << 20, 1)).unwrap();
    std::fs::write(root.join("zz.bin"), noise(3 << 20, 2)).unwrap();
    std::fs::write(root.join("sub/small.txt"), b"the small one\n").unwrap();
}

fn open(stored: Vec<u8>, ids: &Identities) -> Result<Decrypted<SeekSource<Cursor<Vec<u8>>>>> {
    Decrypted::open(SeekSource(Cursor::new(stored)), ids)
}

/// Where the payload (after the header and the 16-byte nonce) starts.
fn payload_start(stored: &[u8]) -> usize {
    let mac = stored.windows(5).position(|w| w == b"\n--- ").unwrap() + 5;
    let end = mac + stored[mac..].iter().position(|&b| b == b'\n').unwrap() + 1;
    end + 16
}

/// Writes an identity file with mode 0600.
fn identity_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Counts the bytes and the ranges read.
#[derive(Debug)]
struct Counting {
    inner: SeekSource<Cursor<Vec<u8>>>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ranges: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Counting {
    fn new(data: Vec<u8>) -> Self {
        Counting {
            inner: SeekSource(Cursor::new(data)),
            bytes: Default::default(),
            ranges: Default::default(),
        }
    }
}

impl RangeRead for Counting {
    fn len(&mut self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read_range(&mut self, range: std::ops::Range<u64>) -> std::io::Result<Box<dyn Read + '_>> {
        use std::sync::atomic::Ordering::Relaxed;
        self.bytes.fetch_add(range.end - range.start, Relaxed);
        self.ranges.fetch_add(1, Relaxed);
        self.inner.read_range(range)
    }
}

#[test]
fn an_encrypted_archive_restores_by_range_and_with_the_age_command_and_gnu_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    random_tree(
        &src,
        11,
        &TreeOptions::default().entries(60).odd_metadata(false),
    )
    .unwrap();
    let ops = Identity::generate();
    let recovery = Identity::generate();
    let stored = encrypted(&src, &[ops.recipient(), recovery.recipient()]);
    assert!(is_age(&stored));

    // Each identity alone opens it; the archive inside is signed and whole.
    for id in [ops.clone(), recovery.clone()] {
        let plain = open(stored.clone(), &Identities::from(id)).unwrap();
        let mut a =
            SeekableArchive::open(plain, &key().public_key(), ReadOptions::default()).unwrap();
        let out = tmp.path().join(format!("out-{}", a.manifest().backup_id()));
        let _ = std::fs::remove_dir_all(&out);
        a.unpack(&out, &UnpackOptions::default()).unwrap();
        assert_trees_equal(&src, &out.join("data"), running_as_root());
    }

    // The age command decrypts it with either identity file, and GNU tar
    // extracts the plaintext.
    let (Some(age), Some(tar)) = (require_tool("age"), require_tool("tar")) else {
        return;
    };
    let file = tmp.path().join("bkp.tar.zst.age");
    std::fs::write(&file, &stored).unwrap();
    let id_file = tmp.path().join("recovery.txt");
    identity_file(&id_file, &recovery.to_file_text());
    let plain = tmp.path().join("bkp.tar.zst");
    run_ok(
        Command::new(&age)
            .arg("-d")
            .arg("-i")
            .arg(&id_file)
            .arg("-o")
            .arg(&plain)
            .arg(&file),
    );
    let gnu = tmp.path().join("gnu");
    std::fs::create_dir_all(&gnu).unwrap();
    run_ok(
        Command::new(&tar)
            .arg("--zstd")
            .arg("-xf")
            .arg(&plain)
            .arg("-C")
            .arg(&gnu),
    );
    assert_trees_equal(&src, &gnu.join("data"), running_as_root());
    // And Cairn's own identity file is one the library reads back.
    let loaded = Identities::load(&id_file).unwrap();
    assert_eq!(loaded.len(), 1);
    open(stored, &loaded).unwrap();
}

#[test]
fn an_archive_the_age_command_encrypted_opens_with_its_identity_file() {
    let (Some(age), Some(keygen)) = (require_tool("age"), require_tool("age-keygen")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let plain = tmp.path().join("a.tar.zst");
    std::fs::write(&plain, archive_into(&src, Vec::new())).unwrap();
    let id_file = tmp.path().join("key.txt");
    run_ok(Command::new(&keygen).arg("-o").arg(&id_file));
    let recipient = run_ok(Command::new(&keygen).arg("-y").arg(&id_file));
    let recipient = String::from_utf8(recipient).unwrap();
    let r: Recipient = recipient.trim().parse().unwrap();
    let enc = tmp.path().join("a.tar.zst.age");
    run_ok(
        Command::new(&age)
            .arg("-r")
            .arg(r.to_string())
            .arg("-o")
            .arg(&enc)
            .arg(&plain),
    );

    let mut ids = Identities::new();
    ids.push(Identity::generate());
    ids.extend(Identities::load(&id_file).unwrap());
    let plain = open(std::fs::read(&enc).unwrap(), &ids).unwrap();
    let mut a = SeekableArchive::open(plain, &key().public_key(), ReadOptions::default()).unwrap();
    let mut body = Vec::new();
    a.read_file(&EntryPath::parse(b"data/sub/small.txt").unwrap(), &mut body)
        .unwrap();
    assert_eq!(body, b"the small one\n");
}

#[test]
fn a_partial_read_costs_the_chunks_of_its_ranges_and_no_more() {
    use std::sync::atomic::Ordering::Relaxed;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let id = Identity::generate();
    let path = EntryPath::parse(b"data/sub/small.txt").unwrap();

    let plain = Counting::new(archive_into(&src, Vec::new()));
    let (plain_bytes, plain_ranges) = (plain.bytes.clone(), plain.ranges.clone());
    let mut a = SeekableArchive::open(plain, &key().public_key(), ReadOptions::default()).unwrap();
    let mut body = Vec::new();
    a.read_file(&path, &mut body).unwrap();

    let stored = encrypted(&src, &[id.recipient()]);
    let header = payload_start(&stored) as u64;
    let enc = Counting::new(stored);
    let enc_bytes = enc.bytes.clone();
    let plain_enc = Decrypted::open(enc, &Identities::from(id)).unwrap();
    let opened = enc_bytes.load(Relaxed);
    let mut a =
        SeekableArchive::open(plain_enc, &key().public_key(), ReadOptions::default()).unwrap();
    let mut again = Vec::new();
    a.read_file(&path, &mut again).unwrap();
    assert_eq!(again, body);

    let (p, r, e) = (
        plain_bytes.load(Relaxed),
        plain_ranges.load(Relaxed),
        enc_bytes.load(Relaxed) - opened,
    );
    // Each range costs its chunks: at most a partial chunk before and one
    // after, and a tag per chunk.
    assert!(
        e <= p + r * 2 * ENCRYPTED_CHUNK_SIZE + (p / CHUNK_SIZE + r) * 16,
        "{e} bytes read encrypted against {p} plain in {r} ranges"
    );
    // Opening reads the header's first 64 KiB and the last chunk: no more.
    assert!(
        opened <= 64 * 1024 + ENCRYPTED_CHUNK_SIZE,
        "{opened} (header {header})"
    );
    // And the large files' frames were not read.
    assert!(e > 0 && e < 1 << 20, "{e}");
}

/// The decrypting thread works ahead of its reader: a range left half read
/// costs the next one nothing, and any fetch size gives the same bytes.
#[test]
fn ranges_left_half_read_and_any_fetch_size_give_the_plaintext() {
    let id = Identity::generate();
    let body = noise(3 << 20, 4);
    let mut w = EncryptingWriter::new(Vec::new(), &[id.recipient()]).unwrap();
    std::io::Write::write_all(&mut w, &body).unwrap();
    let stored = w.finish().unwrap();
    let ids = Identities::from(id);
    for fetch in [1, 100_000, DEFAULT_FETCH] {
        let src = SeekSource(Cursor::new(stored.clone()));
        let mut plain = Decrypted::open_fetching(src, &ids, fetch).unwrap();
        for start in [0u64, 70_000, 2 << 20] {
            let mut head = [0u8; 10];
            let mut r = plain.read_range(start..body.len() as u64).unwrap();
            r.read_exact(&mut head).unwrap();
            assert_eq!(head, body[start as usize..start as usize + 10]);
        }
        let mut all = Vec::new();
        plain
            .read_range(1..body.len() as u64 - 1)
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert!(all == body[1..body.len() - 1], "fetch {fetch}");
    }
}

/// An object that claims to be an age file but whose header never ends
/// within 64 KiB is refused after reading that much, not read to its end
/// (nor parsed for minutes: the age crate parses a header again as it
/// reads more of it), by range and as a stream.
#[test]
fn a_header_longer_than_64_kib_is_refused() {
    let mut stored = b"age-encryption.org/v1\n-> X25519 abc\n".to_vec();
    while stored.len() < 3 << 20 {
        stored.extend_from_slice(&[b'A'; 64]);
        stored.push(b'\n');
    }
    let ids = Identities::from(Identity::generate());
    let src = Counting::new(stored.clone());
    let read = src.bytes.clone();
    let err = Decrypted::open(src, &ids).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Damaged, "{err}");
    assert!(err.to_string().contains("longer than 64 KiB"), "{err}");
    let read = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read <= 64 * 1024 + ENCRYPTED_CHUNK_SIZE,
        "{read} bytes read"
    );
    let mut rest = Cursor::new(stored);
    let err = DecryptingReader::new(&mut rest, &ids).unwrap_err();
    assert!(err.to_string().contains("longer than 64 KiB"), "{err}");
    assert!(rest.position() <= 64 * 1024, "{}", rest.position());

    // A long header within the bound (300 recipients, ~30 KiB) opens.
    let many: Vec<Identity> = (0..300).map(|_| Identity::generate()).collect();
    let to: Vec<Recipient> = many.iter().map(Identity::recipient).collect();
    let mut w = EncryptingWriter::new(Vec::new(), &to).unwrap();
    std::io::Write::write_all(&mut w, b"for the last of them").unwrap();
    let stored = w.finish().unwrap();
    assert!(
        payload_start(&stored) > 20_000,
        "{}",
        payload_start(&stored)
    );
    let last = Identities::from(many[299].clone());
    let mut text = String::new();
    open(stored.clone(), &last)
        .unwrap()
        .read_range(0..20)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "for the last of them");
    let mut again = String::new();
    DecryptingReader::new(Cursor::new(stored), &last)
        .unwrap()
        .read_to_string(&mut again)
        .unwrap();
    assert_eq!(again, text);
}

#[test]
fn a_wrong_identity_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let stored = encrypted(&src, &[Identity::generate().recipient()]);
    let err = open(stored, &Identities::from(Identity::generate())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoMatchingIdentity);
    assert_eq!(
        err.to_string(),
        "no identity matches this backup's recipients"
    );
}

/// Unpacks what `stored` decrypts to; the error, if any, as text.
fn restore(stored: Vec<u8>, id: &Identity, out: &Path) -> Result<(), String> {
    let plain = open(stored, &Identities::from(id.clone())).map_err(|e| e.to_string())?;
    let mut a = SeekableArchive::open(plain, &key().public_key(), ReadOptions::default())
        .map_err(|e| e.to_string())?;
    a.unpack(out, &UnpackOptions::default())
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn a_changed_chunk_a_truncated_object_a_swapped_header_or_reordered_chunks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let id = Identity::generate();
    let good = encrypted(&src, &[id.recipient()]);
    let start = payload_start(&good);
    let chunk = ENCRYPTED_CHUNK_SIZE as usize;
    restore(good.clone(), &id, &tmp.path().join("good")).unwrap();

    let mut flipped = good.clone();
    flipped[start + 5 * chunk + 100] ^= 1;
    let err = restore(flipped, &id, &tmp.path().join("flipped")).unwrap_err();
    assert!(err.contains("chunk 5 does not authenticate"), "{err}");
    assert!(
        !tmp.path().join("flipped/data").exists(),
        "nothing is left behind"
    );

    let truncated = good[..good.len() - 100].to_vec();
    let err = restore(truncated, &id, &tmp.path().join("truncated")).unwrap_err();
    assert!(err.contains("last chunk"), "{err}");
    let at_boundary = good[..start + 10 * chunk].to_vec();
    let err = restore(at_boundary, &id, &tmp.path().join("boundary")).unwrap_err();
    assert!(err.contains("damaged"), "{err}");

    // The header of another file encrypted to the same recipient.
    let other = encrypted(&tmp.path().join("src/sub"), &[id.recipient()]);
    let other_start = payload_start(&other);
    let mut swapped = other[..other_start - 16].to_vec();
    swapped.extend_from_slice(&good[start - 16..]);
    let err = restore(swapped, &id, &tmp.path().join("swapped")).unwrap_err();
    assert!(err.contains("damaged"), "{err}");

    let mut reordered = good.clone();
    let (a, b) = (start + 2 * chunk, start + 3 * chunk);
    let second: Vec<u8> = reordered[a..b].to_vec();
    reordered.copy_within(b..b + chunk, a);
    reordered[b..b + chunk].copy_from_slice(&second);
    let err = restore(reordered, &id, &tmp.path().join("reordered")).unwrap_err();
    assert!(err.contains("chunk 2 does not authenticate"), "{err}");

    let err = open(archive_into(&src, Vec::new()), &Identities::from(id)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Damaged);
    assert!(err.to_string().contains("not an age file"), "{err}");
}

#[test]
fn identity_files_that_others_can_read_or_that_hold_no_identity_are_refused_by_name() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let id = Identity::generate();
    let path = tmp.path().join("open.txt");
    identity_file(&path, &id.to_file_text());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Identities::load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsecurePermissions);
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");

    let damaged = tmp.path().join("damaged.txt");
    let secret = id.to_file_text();
    identity_file(
        &damaged,
        &secret.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-2"),
    );
    let err = Identities::load(&damaged).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Key);
    let msg = err.to_string();
    assert!(
        msg.contains(&*damaged.to_string_lossy()) && msg.contains("line 2"),
        "{msg}"
    );
    assert!(!msg.contains("SECRET"), "the secret is never shown: {msg}");

    let empty = tmp.path().join("empty.txt");
    identity_file(&empty, "# nothing here\n");
    let err = Identities::load(&empty).unwrap_err();
    assert!(err.to_string().contains("holds no age identity"), "{err}");

    let missing = tmp.path().join("missing.txt");
    let err = Identities::load(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("missing.txt"), "{err}");

    let err = "age1notakey".parse::<Recipient>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Key);
    assert!(err.to_string().contains("age1notakey"), "{err}");
    assert_eq!(
        EncryptingWriter::new(Vec::new(), &[]).unwrap_err().kind(),
        ErrorKind::Key
    );
}

#[test]
fn a_stream_is_decrypted_and_checked_and_a_cut_or_changed_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let id = Identity::generate();
    let ids = Identities::from(id.clone());
    let good = encrypted(&src, &[id.recipient()]);
    let verify = |stored: Vec<u8>| -> Result<(), String> {
        let plain = DecryptingReader::new(Cursor::new(stored), &ids).map_err(|e| e.to_string())?;
        cairn_archive::ArchiveReader::new(plain)
            .and_then(|r| r.verify(&key().public_key()))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    verify(good.clone()).unwrap();
    let start = payload_start(&good);
    let chunk = ENCRYPTED_CHUNK_SIZE as usize;
    let mut flipped = good.clone();
    flipped[start + 7 * chunk + 3] ^= 0x80;
    let err = verify(flipped).unwrap_err();
    assert!(err.contains("chunk 7 does not authenticate"), "{err}");
    let err = verify(good[..start + 20 * chunk].to_vec()).unwrap_err();
    assert!(err.contains("does not authenticate"), "{err}");
    let err = DecryptingReader::new(Cursor::new(good), &Identities::from(Identity::generate()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoMatchingIdentity);
}
