//! Hook commands run around a restore.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spec::Hook;

/// How much of a failing hook's standard error is quoted in the error.
const STDERR_TAIL: usize = 2048;

/// Runs `hook` through `sh -c` with `env` added to its environment, waiting at
/// most its timeout, or until `stop` returns true (asked every 20 ms): then
/// it is killed, with what it started. Standard output is discarded; the end
/// of standard error is quoted when it fails.
///
/// # Errors
///
/// [`Error::Hook`] if it cannot start, exits with a failure, times out or
/// is stopped.
pub fn run_hook(
    phase: &'static str,
    hook: &Hook,
    env: &[(String, String)],
    stop: &dyn Fn() -> bool,
) -> Result<()> {
    let fail = |message: String| Error::Hook { phase, message };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&hook.command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CAIRN_HOOK", phase)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so that a time-out kills what it started too.
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot start `{}`: {e}", hook.command)))?;
    // Read standard error on its own thread so that a chatty hook cannot
    // block on a full pipe.
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let mut stopped = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= hook.timeout || stop() => {
                stopped = start.elapsed() < hook.timeout;
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail(format!("waiting for `{}`: {e}", hook.command))),
        }
    };
    let err = reader.join().unwrap_or_default();
    let tail = String::from_utf8_lossy(&err[err.len().saturating_sub(STDERR_TAIL)..])
        .trim()
        .to_owned();
    let quote = if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    };
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(fail(format!("`{}` exited with {s}{quote}", hook.command))),
        None if stopped => Err(fail(format!(
            "`{}` was stopped: the restore was cancelled",
            hook.command
        ))),
        None => Err(fail(format!(
            "`{}` did not finish within {:?} and was killed{quote}",
            hook.command, hook.timeout
        ))),
    }
}

fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
