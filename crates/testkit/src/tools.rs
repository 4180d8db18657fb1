//! Access to external tools (GNU tar, zstd, openssl) from tests.
//!
//! Outside CI a missing tool skips the test with one loud line on stderr. With
//! `CI=true` a missing tool fails the test: CI must never pass by skipping.

use std::path::PathBuf;
use std::process::Command;

/// Whether the tests run in CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI").as_deref(),
        Ok("true") | Ok("1") | Ok("TRUE") | Ok("True")
    )
}

/// Finds `name` on `PATH`.
///
/// Returns `None` (after printing a skip line) when it is missing outside CI.
///
/// # Panics
///
/// When the tool is missing and [`in_ci`] is true.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if in_ci() => {
            panic!("required tool `{name}` is not installed (CI=true: not skipping)")
        }
        None => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "SKIPPED: `{name}` is not installed; install it to run this test (in CI this fails)"
                );
            }
            None
        }
    }
}

/// Runs `cmd`, panicking with its stderr when it fails; returns its stdout.
///
/// # Panics
///
/// When the command cannot start or exits unsuccessfully.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether the tests run as root (and can therefore restore owners).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
