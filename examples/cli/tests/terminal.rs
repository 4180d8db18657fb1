//! The binary on a terminal (a pseudo-terminal driven by Python's `pty`):
//! progress bars, interactive confirmation, Ctrl-C.

use std::path::Path;
use std::process::Command;

use cairn_testkit::{noise, require_tool};

/// Runs `cairn ARGS` on a pseudo-terminal. `script` is a list of
/// (wait-for-text, then-send) steps. Returns (exit code, everything printed).
const DRIVER: &str = r#"
import os, pty, sys, time, json, signal
args = json.loads(sys.argv[1]); steps = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(args[0], args)
out = b""
deadline = time.time() + 120
def read_some():
    global out
    try:
        data = os.read(fd, 65536)
    except OSError:
        return False
    if not data:
        return False
    out += data
    return True
for wait_for, send in steps:
    while wait_for.encode() not in out:
        if time.time() > deadline or not read_some():
            print(json.dumps({"code": -1, "out": out.decode("utf-8", "replace")}))
            sys.exit(0)
    os.write(fd, send.encode())
while read_some():
    pass
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"code": code, "out": out.decode("utf-8", "replace")}))
"#;

fn on_terminal(
    home: &Path,
    cwd: &Path,
    args: &[&str],
    steps: &[(&str, &str)],
) -> Option<(i32, String)> {
    on_terminal_with(home, cwd, args, steps, None)
}

/// [`on_terminal`] with `NO_COLOR` set to `no_color` (unset if `None`).
fn on_terminal_with(
    home: &Path,
    cwd: &Path,
    args: &[&str],
    steps: &[(&str, &str)],
    no_color: Option<&str>,
) -> Option<(i32, String)> {
    let python = require_tool("python3")?;
    let mut full = vec![env!("CARGO_BIN_EXE_cairn").to_owned()];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    let mut cmd = Command::new(python);
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd
        .arg("-c")
        .arg(DRIVER)
        .arg(serde_json::to_string(&full).unwrap())
        .arg(serde_json::to_string(steps).unwrap())
        .current_dir(cwd)
        .env("CAIRN_HOME", home)
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("driver: {}", String::from_utf8_lossy(&out.stderr)));
    Some((
        i32::try_from(doc["code"].as_i64().unwrap()).unwrap(),
        doc["out"].as_str().unwrap().to_owned(),
    ))
}

fn big_dir(dir: &Path, mib: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..mib / 16 {
        std::fs::write(dir.join(format!("f{i}")), noise(16 << 20, 7 + i as u64)).unwrap();
    }
}

#[test]
fn progress_confirmation_and_ctrl_c_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = tmp.path().join("big");
    big_dir(&dir, 256);
    let d = dir.to_str().unwrap();

    // Ctrl-C as soon as the progress bar shows: the job is cancelled, nothing is kept.
    let Some((code, out)) = on_terminal(&home, tmp.path(), &["backup", d], &[("ETA", "\x03")])
    else {
        return;
    };
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cancelled"), "{out}");
    assert!(out.contains("\x1b["), "colours on a terminal: {out}");
    let listed = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["list", "--json"])
        .env("CAIRN_HOME", &home)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        doc["items"].as_array().unwrap().len(),
        0,
        "a cancelled backup was kept"
    );

    // A small backup, then an in-place restore confirmed by typing yes.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "v1").unwrap();
    let (code, out) = on_terminal(&home, tmp.path(), &["backup", d, "-q"], &[]).unwrap();
    assert_eq!(code, 0, "{out}");
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("bkp_"))
        .unwrap()
        .to_owned();
    std::fs::write(dir.join("f"), "v2").unwrap();
    let (code, out) = on_terminal(
        &home,
        tmp.path(),
        &["restore", &id],
        &[("Type 'yes'", "no\n")],
    )
    .unwrap();
    assert_eq!(code, 2, "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "v2");
    let (code, out) = on_terminal(
        &home,
        tmp.path(),
        &["restore", &id],
        &[("Type 'yes'", "yes\n")],
    )
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "v1");
}

#[test]
fn no_color_turns_colours_off_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let args = ["show", "bkp_00000000000000000000000000"];
    let Some((code, out)) = on_terminal(&home, tmp.path(), &args, &[]) else {
        return;
    };
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("\x1b[1;31merror:"),
        "coloured by default: {out}"
    );
    let (code, out) = on_terminal_with(&home, tmp.path(), &args, &[], Some("1")).unwrap();
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("error:"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "NO_COLOR: no escape sequence at all: {out:?}"
    );
    // An empty NO_COLOR does not count (https://no-color.org).
    let (_, out) = on_terminal_with(&home, tmp.path(), &args, &[], Some("")).unwrap();
    assert!(out.contains("\x1b[1;31merror:"), "{out}");
}
