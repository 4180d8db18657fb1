//! The state folder: where it is, and the files made in it on first use
//! (the signing key, its id, the origin id), race-free when several
//! processes start at once.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cairn_integrity::{PublicKey, SigningKey};
use cairn_manifest::OriginId;

use crate::error::{Error, ErrorKind, Remedy};

/// The state folder: `$CAIRN_HOME`, else `$XDG_DATA_HOME/cairn`, else
/// `~/.local/share/cairn`.
///
/// # Errors
///
/// None of the three is set.
pub fn home() -> Result<PathBuf, Error> {
    if let Some(h) = std::env::var_os("CAIRN_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(x).join("cairn"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::usage("no state folder: set CAIRN_HOME or HOME"))?;
    Ok(PathBuf::from(home).join(".local/share/cairn"))
}

/// Creates `path` with `bytes` and `mode` unless it exists, atomically: the
/// content is written and synced under a temporary name, then linked into
/// place, so another process sees either no file or the whole one. Returns
/// whether this call made it (`false`: another process had, and its file
/// is left as it is).
///
/// # Errors
///
/// The folder or the file cannot be written.
pub fn create_once(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, Error> {
    let dir = dir_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, &e))?;
    let made = beside(path, bytes, mode, |tmp| {
        match std::fs::hard_link(tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })
    .map_err(|e| Error::io("creating", path, &e))?;
    if made {
        sync_dir(dir)?;
    }
    Ok(made)
}

/// Writes `bytes` (synced, with `mode`) to a temporary file beside `path`,
/// hands it to `place` (which links or renames it into place), and removes
/// whatever is left of it.
fn beside<T>(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    place: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let tmp = tmp_name(path);
    let done = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        place(&tmp)
    })();
    let _ = std::fs::remove_file(&tmp);
    done
}

/// Writes a new file with `mode`, refusing to overwrite one.
///
/// # Errors
///
/// The file exists, or cannot be written.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    if create_once(path, bytes, mode)? {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Io,
            format!("creating {}: it exists already", path.display()),
        ))
    }
}

/// Replaces `path` with `bytes` atomically (a synced temporary file renamed
/// over it).
pub(crate) fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = dir_of(path);
    beside(path, bytes, mode, |tmp| std::fs::rename(tmp, path))
        .map_err(|e| Error::io("writing", path, &e))?;
    sync_dir(dir)
}

/// A temporary name beside `path`, unique to this process and call.
fn tmp_name(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    PathBuf::from(name)
}

/// The folder holding `path`: `.` for a bare file name (whose parent is
/// the empty path, which cannot be opened or synced).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing", dir, &e))
}

/// Holds an exclusive lock on a file of the state folder until dropped.
#[derive(Debug)]
pub(crate) struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    /// Waits for, then takes, the lock of `path`.
    pub(crate) fn take(path: &Path) -> Result<Self, Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("opening", path, &e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("locking", path, &e.into()))?;
        Ok(Lock(file))
    }
}

/// The origin id of the state folder `home`, made on first use.
pub(crate) fn origin(home: &Path) -> Result<OriginId, Error> {
    let path = home.join("origin");
    if !path.exists() {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness: {e}")))?;
        create_once(
            &path,
            format!("org_{}", hex::encode(bytes)).as_bytes(),
            0o644,
        )?;
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, &e))?;
    OriginId::parse(text.trim())
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))
}

/// Where the state folder records the id of the key that signs its backups.
pub(crate) fn signer_file(home: &Path) -> PathBuf {
    home.join("signer")
}

/// Where `cairn key rotate` keeps the public keys of earlier signing keys.
pub(crate) fn trusted_dir(home: &Path) -> PathBuf {
    home.join("trusted")
}

/// The signing key at `path`, made (mode 0600) on first use. With `home`,
/// the key must be the one whose id the state folder recorded when the key
/// was made (`<home>/signer`, written then, or on the first use of a key
/// made before Cairn recorded it): a damaged or swapped key file is refused
/// instead of silently signing with another key.
///
/// # Errors
///
/// The key cannot be read or made, is readable by others, or is not the
/// recorded one.
pub fn key(path: &Path, home: Option<&Path>) -> Result<SigningKey, Error> {
    if !path.exists() {
        let new = SigningKey::generate().map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        let pem = new
            .to_pkcs8_pem()
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        // Another process may make it at the same time: then its key is the key.
        create_once(path, pem.as_bytes(), 0o600)?;
    }
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
    if mode & 0o077 != 0 {
        return Err(Error::usage(format!(
            "the signing key {} is readable by others (mode {:o})",
            path.display(),
            mode & 0o777
        ))
        .hint(format!("chmod 600 {}", path.display())));
    }
    let pem = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("reading {}: {e}", path.display())))?;
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
    if let Some(home) = home {
        check_signer(&key, path, home)?;
    }
    Ok(key)
}

/// Refuses `key` (read from `path`) if the state folder recorded another id.
fn check_signer(key: &SigningKey, path: &Path, home: &Path) -> Result<(), Error> {
    let file = signer_file(home);
    let id = key.key_id().to_string();
    create_once(&file, format!("{id}\n").as_bytes(), 0o644)?;
    let recorded = std::fs::read_to_string(&file).map_err(|e| Error::io("reading", &file, &e))?;
    let recorded = recorded.trim();
    if recorded == id {
        return Ok(());
    }
    Err(Error::usage(format!(
        "the signing key {} (key id {id}) is not this installation's key: {} records key id {recorded}, made with the installation",
        path.display(),
        file.display()
    ))
    .hint(format!(
        "put the right key back in {} from your copy of it, or start signing with a new key on purpose (a key rotation)",
        path.display()
    ))
    .with_remedy(Remedy::RotateKey))
}

/// The public keys of earlier signing keys in `<home>/trusted/` (sorted)
/// and in `extra`.
///
/// # Errors
///
/// A file cannot be read or is not a public key in PEM.
pub fn trusted_keys(home: &Path, extra: &[PathBuf]) -> Result<Vec<PublicKey>, Error> {
    let dir = trusted_dir(home);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("reading", &dir, &e)),
    };
    files.sort();
    files.extend(extra.iter().cloned());
    files
        .iter()
        .map(|p| {
            let pem = std::fs::read_to_string(p)
                .map_err(|e| Error::usage(format!("reading {}: {e}", p.display())))?;
            PublicKey::from_public_key_pem(&pem)
                .map_err(|e| Error::usage(format!("{}: not a public key: {e}", p.display())))
        })
        .collect()
}

/// What [`rotate_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotated {
    /// The id of the key that signed until now (still trusted).
    pub old: String,
    /// The id of the key that signs from now on.
    pub new: String,
    /// Where the old public key is kept, trusted for the old backups.
    pub trusted: PathBuf,
    /// Where the old secret key was moved.
    pub retired: PathBuf,
}

/// Starts signing with a new key on purpose: the current key at `path`
/// (which must be this installation's) moves to `<path>.<id>.retired`, its
/// public key goes to `<home>/trusted/<id>.pem` so that older backups stay
/// restorable, and `new` (or a fresh key) becomes the key, recorded as the
/// installation's signer.
///
/// # Errors
///
/// The current key is missing or not the recorded one, or a file cannot be
/// written.
pub fn rotate_key(path: &Path, home: &Path, new: Option<SigningKey>) -> Result<Rotated, Error> {
    let _lock = Lock::take(&home.join("key.lock"))?;
    if !path.exists() {
        return Err(Error::usage(format!(
            "there is no signing key at {} to rotate",
            path.display()
        )));
    }
    let old = key(path, Some(home))?;
    let new = match new {
        Some(k) => k,
        None => SigningKey::generate().map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?,
    };
    let (old_id, new_id) = (old.key_id().to_string(), new.key_id().to_string());
    if old_id == new_id {
        return Err(Error::usage(format!(
            "the new key is the current key ({old_id})"
        )));
    }
    let public = old
        .public_key()
        .to_public_key_pem()
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    let trusted = trusted_dir(home).join(format!("{old_id}.pem"));
    create_once(&trusted, public.as_bytes(), 0o644)?;
    let mut retired = path.as_os_str().to_owned();
    retired.push(format!(".{old_id}.retired"));
    let retired = PathBuf::from(retired);
    std::fs::copy(path, &retired).map_err(|e| Error::io("keeping", &retired, &e))?;
    std::fs::set_permissions(&retired, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("protecting", &retired, &e))?;
    let pem = new
        .to_pkcs8_pem()
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    replace(path, pem.as_bytes(), 0o600)?;
    replace(&signer_file(home), format!("{new_id}\n").as_bytes(), 0o644)?;
    Ok(Rotated {
        old: old_id,
        new: new_id,
        trusted,
        retired,
    })
}
