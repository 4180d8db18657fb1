//! Targets made by `cairn backup DIR` without configuration, remembered in
//! `<home>/paths.toml` so that later commands know them.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_manifest::{ComponentKind, ComponentName, TargetName};

use crate::error::{Error, ErrorKind};
use crate::file::{ComponentFile, TargetFile};
use crate::state::{Lock, replace};
use crate::{Settings, target};

/// The targets remembered in `<home>/paths.toml`.
pub(crate) fn path_targets(home: &Path) -> Result<Vec<TargetFile>, Error> {
    let path = home.join("paths.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading", &path, &e)),
    };
    let map: BTreeMap<String, Vec<TargetFile>> = toml::from_str(&text).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("{}: {}", path.display(), e.message().trim()),
        )
    })?;
    Ok(map.into_values().flatten().collect())
}

/// The target for a directory given on the command line: an existing one
/// with that single directory, or a new one named after it, remembered.
/// Returns its name and whether it is new.
///
/// Processes that back up new directories at once take turns (a lock on
/// `<home>/paths.lock`), each re-reading the file under the lock, so that
/// every directory is remembered and one directory gets one target.
///
/// # Errors
///
/// `dir` is not a directory; the file cannot be read or written.
pub fn target_for_path(settings: &mut Settings, dir: &Path) -> Result<(String, bool), Error> {
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        Error::usage(format!("{}: {e}", dir.display()))
            .hint("give a configured target name or an existing directory")
    })?;
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let single = |t: &cairn::TargetConfig| t.components.len() == 1 && t.components[0].path == dir;
    if let Some(t) = settings.targets.iter().find(|t| single(t)) {
        return Ok((t.name.to_string(), false));
    }
    let _lock = Lock::take(&settings.home.join("paths.lock"))?;
    let mut remembered = path_targets(&settings.home)?;
    if let Some(t) = remembered
        .iter()
        .find(|t| t.components.len() == 1 && t.components[0].path == dir)
    {
        // Another process remembered it since these settings were read.
        let name = t.name.to_string();
        settings
            .targets
            .push(target(t, &|p: &Path| p.to_owned(), &settings.encrypt_to)?);
        return Ok((name, false));
    }
    let taken = |n: &str| {
        settings.targets.iter().any(|t| t.name.as_str() == n)
            || remembered.iter().any(|t| t.name.as_str() == n)
    };
    let name = free_name(&dir, taken);
    let file = TargetFile {
        name: TargetName::parse(&name).map_err(|e| Error::usage(e.to_string()))?,
        components: vec![ComponentFile {
            name: ComponentName::parse("data").map_err(|e| Error::usage(e.to_string()))?,
            kind: ComponentKind::Dir,
            path: dir.clone(),
            optional: false,
        }],
        every: None,
        min_interval: None,
        cooldown: None,
        pre_restore: None,
        post_restore: None,
        hook_timeout: None,
        verify_after_write: None,
        retention: None,
        max_depth: None,
        full_every: None,
        encrypt_to: None,
    };
    remembered.push(file.clone());
    let mut map = BTreeMap::new();
    map.insert("target".to_owned(), remembered);
    let text = toml::to_string(&map).map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    replace(&settings.home.join("paths.toml"), text.as_bytes(), 0o644)?;
    settings.targets.push(target(
        &file,
        &|p: &Path| p.to_owned(),
        &settings.encrypt_to,
    )?);
    Ok((name, true))
}

/// A target name from the directory's name (lower-cased, other characters
/// replaced by `-`), with `-2`, `-3`, … if `taken`.
fn free_name(dir: &Path, taken: impl Fn(&str) -> bool) -> String {
    let base: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = base
        .trim_start_matches(['-', '_'])
        .chars()
        .take(50)
        .collect::<String>();
    let base = if base.is_empty() {
        "dir".to_owned()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}
