//! The real `cairn` binary in temporary folders.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use cairn_testkit::{TreeOptions, assert_trees_equal, random_tree, require_tool};

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Runs `cairn ARGS` with the state folder in the temporary folder and
    /// no terminal (standard input empty).
    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("cairn")
            .unwrap()
            .current_dir(self.tmp.path())
            .env("CAIRN_HOME", self.home())
            .env_remove("CAIRN_CONFIG")
            .env("NO_COLOR", "1")
            .args(args)
            .write_stdin("")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs a command that must fail with `code`; returns its standard error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "cairn {args:?}: {err}");
        assert!(err.starts_with("error: "), "one clear line: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        err
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn zero_configuration_round_trip_is_byte_identical() {
    let env = Env::new();
    let site = env.path("site");
    random_tree(&site, 3, &TreeOptions::default().entries(60)).unwrap();
    let id = env.ok(&["backup", s(&site), "-q"]).trim().to_owned();
    assert!(id.starts_with("bkp_"), "{id}");
    let key = env.home().join("key.pem");
    let mode = std::fs::metadata(&key).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let list = env.json(&["list"]);
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(list["items"][0]["target"], "site");
    assert_eq!(list["has_more"], false);
    let shown = env.json(&["show", &id]);
    assert_eq!(shown["components"], serde_json::json!(["data"]));

    let out = env.path("out");
    env.ok(&["restore", &id, "--to", s(&out)]);
    assert_trees_equal(&site, &out.join("data"), true);

    // In place: refused without --yes off a terminal, done with it.
    std::fs::write(site.join("added-later"), "x").unwrap();
    env.fails(&["restore", &id], 2);
    assert!(site.join("added-later").exists());
    let dry = env.json(&["restore", &id, "--dry-run"]);
    let deleted = dry["dry_run"]["delete"].as_array().unwrap();
    assert!(
        deleted
            .iter()
            .any(|p| p.as_str().unwrap().ends_with("added-later"))
    );
    env.ok(&["restore", &id, "--yes"]);
    assert!(!site.join("added-later").exists());
    assert!(env.path("site.before-restore/added-later").exists());
    assert_trees_equal(&out.join("data"), &site, true);

    // A second backup of the same directory reuses its target.
    let again = env.json(&["backup", s(&site)]);
    assert_eq!(
        env.json(&["show", again["backup_id"].as_str().unwrap()])["target"],
        "site"
    );
    let status = env.json(&["restore-status", "site"]);
    assert_eq!(status["status"], "completed");
}

#[test]
fn exit_codes_name_each_class_of_error() {
    let env = Env::new();
    let dir = env.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "data").unwrap();
    let id = env.json(&["backup", s(&dir)])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Usage.
    let out = env.run(&["backup"]);
    assert_eq!(out.status.code(), Some(2));
    env.fails(&["backup", s(&dir), "--kind", "weekly"], 2);
    env.fails(&["backup", s(&env.path("missing"))], 2);
    // Not found.
    let err = env.fails(&["show", "bkp_01J00000000000000000000000"], 3);
    assert!(err.contains("not found"), "{err}");
    env.fails(&["restore-status", "nope"], 3);
    // Conflict: the cooldown after disabling automatic backups.
    env.ok(&["schedule", "disable", "d"]);
    let err = env.fails(&["schedule", "enable", "d"], 5);
    assert!(err.contains("re-enabled from"), "{err}");
    // Verification: bytes of the archive changed in the store (eight, not
    // one bit: a restore authenticates content, and a single bit may land in
    // what zstd ignores; only the seal's digest, which verify checks, covers
    // those).
    let key = env.json(&["show", &id])["archive_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = env.home().join("store").join(key);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 2..n / 2 + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = env.fails(&["verify", &id], 4);
    assert!(err.contains("verification"), "{err}");
    let err = env.fails(&["restore", &id, "--to", s(&env.path("x"))], 4);
    assert!(err.contains("hint:"), "{err}");
    assert!(!env.path("x").exists());
    // JSON errors are documents too.
    let out = env.run(&["show", "nope", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(doc["error"]["code"], "not_found");
}

#[test]
fn upload_of_a_gnu_tarball_then_restore() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    random_tree(&src.join("www"), 5, &TreeOptions::default().entries(30)).unwrap();
    let dir = env.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    env.ok(&["backup", s(&dir)]);
    let tarball = env.path("www.tar.gz");
    let status = std::process::Command::new(tar)
        .args(["--format=posix", "-czf", s(&tarball), "-C", s(&src), "www"])
        .status()
        .unwrap();
    assert!(status.success());
    let up = env.json(&[
        "upload",
        s(&tarball),
        "--target",
        "d",
        "--label",
        "imported",
    ]);
    assert_eq!(up["source_format"], "gzip");
    let id = up["backup_id"].as_str().unwrap();
    assert_eq!(env.json(&["show", id])["kind"], "uploaded");
    let out = env.path("out");
    env.ok(&["restore", id, "--to", s(&out)]);
    assert_trees_equal(&src.join("www"), &out.join("www"), false);
    // The downloaded archive is a tar that GNU tar reads.
    let file = env.path("copy.tar.zst");
    env.ok(&["download", id, "-o", s(&file)]);
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
}

#[test]
fn init_writes_a_configuration_the_commands_read() {
    let env = Env::new();
    env.ok(&["init"]);
    env.fails(&["init"], 2);
    let text = std::fs::read_to_string(env.path("cairn.toml")).unwrap();
    assert!(text.contains("[[target]]"));
    // It says what encryption costs an operator who loses every identity.
    assert!(
        text.contains("# encrypt_to = ") && text.contains("ALL lost cannot be restored"),
        "{text}"
    );
    // Point the template's target at real folders, then use it by name.
    let site = env.path("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>hi</h1>").unwrap();
    let db = env.path("web.db");
    std::process::Command::new("python3")
        .args(["-c", &format!("import sqlite3; c=sqlite3.connect('{}'); c.execute('create table t(v)'); c.execute('insert into t values (1)'); c.commit()", s(&db))])
        .status()
        .ok();
    let text = text
        .replace("/srv/web/site", s(&site))
        .replace("/srv/web/web.db", s(&db))
        .replace("/srv/web/uploads", s(&env.path("uploads")));
    std::fs::write(env.path("cairn.toml"), text).unwrap();
    if !db.exists() {
        return; // no python3: the sqlite part needs a database file
    }
    let done = env.json(&["backup", "web", "--label", "first"]);
    assert_eq!(done["components"], serde_json::json!(["site", "db"]));
    let jobs = env.json(&["jobs"]);
    assert_eq!(jobs[0]["kind"], "backup");
    assert_eq!(jobs[0]["state"], "succeeded");
    // A bad configuration is a usage error naming the problem.
    std::fs::write(env.path("cairn.toml"), "[[target]]\nname = \"Web\"\n").unwrap();
    let err = env.fails(&["list"], 2);
    assert!(err.contains("Web"), "{err}");
}

#[test]
fn verify_a_bare_archive_file_show_the_manifest_and_cancel() {
    let env = Env::new();
    let dir = env.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "some data").unwrap();
    let id = env.json(&["backup", s(&dir)])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let m = env.json(&["show", &id, "--manifest"]);
    assert_eq!(m["backup_id"], id);
    assert_eq!(m["components"][0]["name"], "data");
    // The entries, streamed page by page, are all there.
    let total: u64 = m["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["entries"].as_u64().unwrap())
        .sum();
    assert_eq!(m["entries"].as_array().unwrap().len() as u64, total);
    assert_eq!(m["version"], "2.1");
    assert!(
        m["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "data/f")
    );

    let file = env.path("copy.tar.zst");
    env.ok(&["download", &id, "-o", s(&file)]);
    let public = env.path("pub.pem");
    std::fs::write(&public, env.ok(&["key", "export-public"])).unwrap();
    let ok = env.json(&["verify", s(&file), "--public-key", s(&public)]);
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["backup_id"], id);

    // Another key: refused, exit 4.
    let other = cairn::SigningKey::generate().unwrap();
    let other_pub = env.path("other.pem");
    std::fs::write(&other_pub, other.public_key().to_public_key_pem().unwrap()).unwrap();
    env.fails(&["verify", s(&file), "--public-key", s(&other_pub)], 4);
    // Tampered: exit 4. Eight bytes, not one bit: without its seal a bare
    // file is checked for its content, and about 1% of single-bit flips land
    // in bits zstd ignores (docs/threat-model.md), which made this flaky.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 3..n / 3 + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&file, bytes).unwrap();
    env.fails(&["verify", s(&file), "--public-key", s(&public)], 4);

    // Cancel: a finished job is a usage error, an unknown one not found.
    let job = env.json(&["jobs"])[0]["id"].as_str().unwrap().to_owned();
    let err = env.fails(&["cancel", &job], 2);
    assert!(err.contains("already ended"), "{err}");
    env.fails(&["cancel", "job_nope"], 3);
}

#[test]
fn no_wait_backs_up_in_the_background_and_watch_streams_json_lines() {
    let env = Env::new();
    let dir = env.path("big");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..4 {
        std::fs::write(dir.join(format!("f{i}")), cairn_testkit::noise(16 << 20, i)).unwrap();
    }
    let started = env.json(&["backup", s(&dir), "--no-wait"]);
    let id = started["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("job_"), "{started}");
    assert_eq!(started["kind"], "backup");

    // Every change as one JSON line, until the job ends; exit 0 as it succeeded.
    let out = env.ok(&["job", &id, "--watch", "--json"]);
    let jobs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let order = ["queued", "running", "succeeded"];
    let rank = |j: &serde_json::Value| {
        order
            .iter()
            .position(|s| j["state"] == *s)
            .unwrap_or_else(|| panic!("unexpected state: {j}"))
    };
    assert!(jobs.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])
        && w[0]["progress"]["percent"].as_u64() <= w[1]["progress"]["percent"].as_u64()));
    let last = jobs.last().unwrap();
    assert_eq!(last["state"], "succeeded");
    assert_eq!(last["progress"]["percent"], 100);
    let backup = last["result"]["backup_id"].as_str().unwrap();
    assert_eq!(env.json(&["list"])["items"][0]["id"], backup);

    // What cannot start is reported by the command that asked, with its code.
    let err = env.fails(&["backup", s(&env.path("missing")), "--no-wait"], 2);
    assert!(err.contains("missing"), "{err}");
    env.fails(&["job", "job_00000000000000000000000000", "--watch"], 3);
}

/// Runs two `cairn ARGS` at once (each given its own arguments), returning
/// their outputs.
fn at_once(env: &Env, a: &[&str], b: &[&str]) -> (Output, Output) {
    let start = |args: &[&str]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
            .current_dir(env.tmp.path())
            .env("CAIRN_HOME", env.home())
            .env_remove("CAIRN_CONFIG")
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (x, y) = (start(a), start(b));
    (x.wait_with_output().unwrap(), y.wait_with_output().unwrap())
}

#[test]
fn two_commands_at_once_on_a_fresh_machine() {
    for round in 0..4 {
        let env = Env::new();
        let (a, b) = (env.path("alpha"), env.path("beta"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("f"), "data").unwrap();
        }
        // Two new directories at once: both backed up, both remembered.
        let (x, y) = at_once(&env, &["backup", s(&a), "-q"], &["backup", s(&b), "-q"]);
        for out in [&x, &y] {
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let targets: std::collections::BTreeSet<String> = env.json(&["list"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["target"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(targets.len(), 2, "round {round}: {targets:?}");
        let paths = std::fs::read_to_string(env.home().join("paths.toml")).unwrap();
        assert!(paths.contains("alpha") && paths.contains("beta"), "{paths}");

        // One directory twice at once: each either backs it up or is told the
        // target is busy (exit 5, the holder named) — never a "damaged" error.
        let (x, y) = at_once(&env, &["backup", s(&a)], &["backup", s(&a)]);
        for out in [&x, &y] {
            let err = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {}
                Some(5) => assert!(err.contains("is busy") && err.contains("job_"), "{err}"),
                other => panic!("round {round}: exit {other:?}: {err}"),
            }
            assert!(!err.contains("damaged"), "{err}");
        }
        assert!(x.status.success() || y.status.success());
    }
}

#[test]
fn a_damaged_signing_key_is_refused_and_a_rotation_keeps_old_backups() {
    let env = Env::new();
    let dir = env.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "v1").unwrap();
    let first = env.ok(&["backup", s(&dir), "-q"]).trim().to_owned();
    let key = env.home().join("key.pem");
    let pem = std::fs::read_to_string(&key).unwrap();
    // One character of the base64 body changed: still a key, another one.
    let lines: Vec<&str> = pem.lines().collect();
    let mut body: Vec<char> = lines[1].chars().collect();
    let at = body.len() - 3;
    body[at] = if body[at] == 'A' { 'B' } else { 'A' };
    let damaged = format!(
        "{}\n{}\n{}\n",
        lines[0],
        body.into_iter().collect::<String>(),
        lines[2]
    );
    std::fs::write(&key, damaged).unwrap();
    for args in [&["backup", s(&dir)][..], &["verify", &first]] {
        let err = env.fails(args, 2);
        assert!(err.contains(s(&key)), "names the key file: {err}");
        assert!(err.contains("not this installation's key"), "{err}");
        assert!(err.contains("hint:") && err.contains("key rotate"), "{err}");
    }

    // The right key back; then a new key on purpose.
    std::fs::write(&key, &pem).unwrap();
    let rotated = env.json(&["key", "rotate"]);
    assert_ne!(rotated["old"], rotated["new"]);
    let second = env.ok(&["backup", s(&dir), "-q"]).trim().to_owned();
    for id in [&first, &second] {
        let v = env.json(&["verify", id, "--tier", "full"]);
        assert_eq!(v["ok"], true, "{id}: {v}");
    }
    assert_ne!(
        env.json(&["show", &first])["signer"],
        env.json(&["show", &second])["signer"]
    );
}

#[test]
fn configuration_errors_name_the_file_the_line_and_the_key() {
    let env = Env::new();
    let config = env.path("cairn.toml");
    let target = "[[target]]\nname = \"web\"\n[[target.component]]\nname = \"site\"\nkind = \"dir\"\npath = \"site\"\n";
    for (text, at, key) in [
        ("job_timeout = 5\n".to_owned(), ":1:", "job_timeout"),
        (
            format!("{target}[target.retention]\nkeep_lats = 3\n"),
            ":8:",
            "target[0].retention.keep_lats",
        ),
        (
            format!("{target}[target.retention]\nkeep_last = \"ten\"\n"),
            ":8:",
            "target[0].retention.keep_last",
        ),
        (
            "[[target]]\nname = \"web\"\nevery = \"soon\"\n".to_owned(),
            ":3:",
            "target[0].every",
        ),
        (
            "[[target]]\nname = \"Web\"\n".to_owned(),
            ":2:",
            "target[0].name",
        ),
        (
            "[[target]]\nname = \"web\"\n[[target.component]]\nname = \"site\"\nkind = \"dir\"\n"
                .to_owned(),
            ":3:",
            "target[0].component[0]",
        ),
    ] {
        std::fs::write(&config, &text).unwrap();
        let err = env.fails(&["list"], 2);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "an error line and a hint: {err}");
        let want = format!("error: {}{at}", s(&config));
        assert!(lines[0].starts_with(&want), "{err}");
        assert!(lines[0].contains(&format!(" {key}: ")), "{err}");
        assert!(lines[1].starts_with("hint: "), "{err}");
    }
}

#[test]
fn a_truncated_or_shortened_archive_is_a_verification_failure() {
    let env = Env::new();
    let dir = env.path("d");
    random_tree(&dir, 9, &TreeOptions::default().entries(40)).unwrap();
    let id = env.ok(&["backup", s(&dir), "-q"]).trim().to_owned();
    let archive = env
        .home()
        .join("store")
        .join(env.json(&["show", &id])["archive_key"].as_str().unwrap());
    let before = cairn_testkit::snapshot(&dir).unwrap();
    let len = std::fs::metadata(&archive).unwrap().len();
    for cut in [len / 2, len - 1] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&archive)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let err = env.fails(&["restore", &id, "--to", s(&env.path("out"))], 4);
        assert!(err.contains("its seal says"), "{err}");
        env.fails(&["restore", &id, "--yes"], 4);
        env.fails(&["verify", &id], 4);
        env.fails(&["show", &id, "--manifest"], 4);
        assert!(!env.path("out").exists());
        assert!(
            cairn_testkit::snapshot(&dir).unwrap() == before,
            "the target changed"
        );
    }
}

#[test]
fn quiet_output_is_the_ids_one_per_line() {
    let env = Env::new();
    let dir = env.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "v1").unwrap();
    let a = env.ok(&["backup", s(&dir), "-q"]);
    std::fs::write(dir.join("f"), "v2").unwrap();
    let b = env.ok(&["backup", s(&dir), "-q"]);
    for out in [&a, &b] {
        assert!(
            out.trim().starts_with("bkp_") && out.lines().count() == 1,
            "{out:?}"
        );
    }
    let listed = env.ok(&["list", "-q"]);
    assert_eq!(listed, format!("{b}{a}"), "newest first, ids only");
    // What `cairn restore "$(cairn list -q | head -1)"` does.
    let newest = listed.lines().next().unwrap();
    let out = env.path("out");
    assert_eq!(env.ok(&["restore", newest, "--to", s(&out), "-q"]), "");
    assert_eq!(std::fs::read_to_string(out.join("data/f")).unwrap(), "v2");
    for args in [
        &["show", newest, "-q"][..],
        &["verify", newest, "-q"],
        &["pin", newest, "-q"],
        &["unpin", newest, "-q"],
        &["restore-status", "d", "-q"],
        &["schedule", "status", "d", "-q"],
    ] {
        assert_eq!(env.ok(args), "", "{args:?} prints nothing with -q");
    }
    let jobs = env.ok(&["jobs", "-q"]);
    assert!(jobs.lines().all(|l| l.starts_with("job_")), "{jobs}");
    assert!(jobs.lines().count() >= 4, "{jobs}");
}

#[test]
fn a_backup_record_names_its_machine_and_its_job_names_the_backup() {
    let env = Env::new();
    let site = env.path("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "x".repeat(8205)).unwrap();
    std::fs::write(
        env.path("cairn.toml"),
        format!(
            "model = \"CX-100\"\nserial = \"SN-42\"\nsoftware_version = \"shop/2.1\"\n[[target]]\nname = \"web\"\n[[target.component]]\nname = \"site\"\nkind = \"dir\"\npath = \"{}\"\n",
            s(&site)
        ),
    )
    .unwrap();
    let done = env.json(&["backup", "web"]);
    let id = done["backup_id"].as_str().unwrap();
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    for record in [
        env.json(&["show", id]),
        env.json(&["list"])["items"][0].clone(),
    ] {
        assert_eq!(record["status"], "ready");
        assert_eq!(record["hostname"], hostname.as_str());
        assert_eq!(record["model"], "CX-100");
        assert_eq!(record["serial"], "SN-42");
        assert_eq!(record["software_version"], "shop/2.1");
        assert_eq!(record["component_kinds"]["site"], "dir");
    }
    let m = env.json(&["show", id, "--manifest"]);
    assert_eq!(m["origin"]["model"], "CX-100");
    assert_eq!(m["origin"]["hostname"], hostname.as_str());
    let job = &env.json(&["jobs"])[0];
    assert_eq!(
        job["resource"],
        serde_json::json!({"type": "backup", "id": id})
    );
    // The finished job keeps its final counts, not its last report.
    let p = &job["progress"];
    assert_eq!(p["percent"], 100);
    assert_eq!(p["processed_bytes"], 8205);
    assert_eq!(p["total_bytes"], 8205);
    assert_eq!(p["processed_files"], p["total_files"]);
}

/// A target `web` of a folder, a file and a live SQLite database.
fn shop(env: &Env) {
    let site = env.path("srv/site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>v1</h1>").unwrap();
    std::fs::write(env.path("srv/app.toml"), "port = 1\n").unwrap();
    let db = rusqlite::Connection::open(env.path("srv/web.db")).unwrap();
    db.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(v); INSERT INTO t VALUES (1);")
        .unwrap();
    std::fs::write(
        env.path("cairn.toml"),
        "[[target]]\nname = \"web\"\n\
         [[target.component]]\nname = \"site\"\nkind = \"dir\"\npath = \"srv/site\"\n\
         [[target.component]]\nname = \"config\"\nkind = \"file\"\npath = \"srv/app.toml\"\n\
         [[target.component]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"srv/web.db\"\n",
    )
    .unwrap();
}

fn rows(env: &Env) -> i64 {
    rusqlite::Connection::open(env.path("srv/web.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_archive_downloaded_and_uploaded_again_keeps_what_it_is() {
    let env = Env::new();
    shop(&env);
    let id = env.json(&["backup", "web"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = env.path("copy.tar.zst");
    env.ok(&["download", &id, "-o", s(&file)]);
    let signer = env.json(&["show", &id])["signer"].clone();
    let up = env.json(&["upload", s(&file), "--target", "web"]);
    let uploaded = up["backup_id"].as_str().unwrap().to_owned();
    let record = env.json(&["show", &uploaded]);
    assert_eq!(record["kind"], "uploaded");
    assert_eq!(
        record["components"],
        serde_json::json!(["site", "config", "db"])
    );
    assert_eq!(
        record["component_kinds"],
        serde_json::json!({"site": "dir", "config": "file", "db": "sqlite"})
    );
    assert_eq!(record["source_signer"], signer);
    assert_eq!(record["source_trusted"], true);
    // It restores in place like the original.
    std::fs::write(env.path("srv/app.toml"), "port = 2\n").unwrap();
    rusqlite::Connection::open(env.path("srv/web.db"))
        .unwrap()
        .execute_batch("INSERT INTO t VALUES (2);")
        .unwrap();
    env.ok(&["restore", &uploaded, "--yes"]);
    assert_eq!(
        std::fs::read_to_string(env.path("srv/app.toml")).unwrap(),
        "port = 1\n"
    );
    assert_eq!(rows(&env), 1);

    // Another installation: the signer is recorded as not trusted there.
    let other = Env::new();
    shop(&other);
    let up = other.json(&["upload", s(&file), "--target", "web"]);
    let record = other.json(&["show", up["backup_id"].as_str().unwrap()]);
    assert_eq!(record["source_trusted"], false);
    assert_eq!(record["component_kinds"]["db"], "sqlite");
}

#[test]
fn a_foreign_tarball_becomes_the_target_s_components_or_is_refused_before_a_job() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let env = Env::new();
    shop(&env);
    env.ok(&["backup", "web"]);
    let src = env.path("tarball");
    std::fs::create_dir_all(src.join("site")).unwrap();
    std::fs::write(src.join("site/index.html"), "<h1>from tar</h1>").unwrap();
    std::fs::create_dir_all(src.join("config")).unwrap();
    std::fs::write(src.join("config/app.toml"), "port = 9\n").unwrap();
    std::fs::create_dir_all(src.join("db")).unwrap();
    std::fs::copy(env.path("srv/web.db"), src.join("db/web.db")).unwrap();
    let tarball = env.path("shop.tar.gz");
    let pack = |t: &Path| {
        assert!(
            std::process::Command::new(&tar)
                .args(["-czf", s(t), "-C", s(&src), "site", "config", "db"])
                .status()
                .unwrap()
                .success()
        );
    };
    pack(&tarball);
    let up = env.json(&["upload", s(&tarball), "--target", "web"]);
    let id = up["backup_id"].as_str().unwrap().to_owned();
    assert_eq!(
        env.json(&["show", &id])["component_kinds"],
        serde_json::json!({"site": "dir", "config": "file", "db": "sqlite"})
    );
    env.ok(&["restore", &id, "--yes"]);
    assert_eq!(
        std::fs::read_to_string(env.path("srv/app.toml")).unwrap(),
        "port = 9\n"
    );

    // A `config` folder of two files cannot be the file component: refused
    // before any job starts, saying why.
    std::fs::write(src.join("config/extra.toml"), "x").unwrap();
    let second = env.path("two.tar.gz");
    pack(&second);
    let id = env.json(&["upload", s(&second), "--target", "web"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let jobs = env.json(&["jobs"]).as_array().unwrap().len();
    let err = env.fails(&["restore", &id, "--yes"], 2);
    assert!(
        err.contains("component config is a dir in the backup and a file on target web"),
        "{err}"
    );
    assert_eq!(env.json(&["jobs"]).as_array().unwrap().len(), jobs);
    // It can still be looked at elsewhere.
    env.ok(&["restore", &id, "--to", s(&env.path("look"))]);
    assert!(env.path("look/config/extra.toml").exists());
}

#[test]
fn a_damaged_catalog_is_named_with_the_command_that_rebuilds_it() {
    let env = Env::new();
    let dir = env.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "v1").unwrap();
    let id = env.ok(&["backup", s(&dir), "-q"]).trim().to_owned();
    let catalog = env.home().join("catalog.db");
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(env.home().join(format!("catalog.db{side}")));
    }
    std::fs::write(&catalog, vec![0x5a; 8192]).unwrap();
    let err = env.fails(&["list"], 1);
    assert!(err.contains(s(&catalog)), "{err}");
    assert!(
        err.contains("hint:") && err.contains("cairn catalog rebuild"),
        "{err}"
    );
    // Moved aside, the catalog is rebuilt from the store.
    std::fs::rename(&catalog, env.home().join("catalog.db.damaged")).unwrap();
    env.ok(&["catalog", "rebuild"]);
    assert_eq!(env.ok(&["list", "-q"]).trim(), id);
}

#[test]
fn a_second_backup_is_incremental_says_so_restores_and_downloads_whole() {
    let env = Env::new();
    let site = env.path("site");
    random_tree(&site, 5, &TreeOptions::default().entries(40)).unwrap();
    // Files younger than 2 s are read again by the next backup: let them age.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = env.json(&["backup", s(&site)]);
    assert!(first.get("parent").is_none(), "{first}");
    std::fs::write(site.join("new.txt"), "new\n").unwrap();
    let text = env.ok(&["backup", s(&site)]);
    let id = text.split_whitespace().next().unwrap().to_owned();
    assert!(
        text.contains(&format!(
            "incremental of {} (depth 1)",
            first["backup_id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("unchanged files skipped"), "{text}");
    let shown = env.ok(&["show", &id]);
    assert!(shown.contains("incremental of"), "{shown}");
    let out = env.path("out");
    env.ok(&["restore", &id, "--to", s(&out)]);
    assert_trees_equal(&site, &out.join("data"), true);
    // The download is the whole state, which verifies on its own.
    let file = env.path("whole.tar.zst");
    env.ok(&["download", &id, "-o", s(&file)]);
    let checked = env.json(&["verify", s(&file)]);
    assert_eq!(checked["backup_id"], id.as_str());
    // --full makes a full one.
    let full = env.json(&["backup", s(&site), "--full"]);
    assert!(full.get("parent").is_none(), "{full}");
}

#[test]
fn encrypted_backups_from_the_configuration_restore_with_the_identity_only() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let site = env.path("site");
    random_tree(&site, 9, &TreeOptions::default().entries(30)).unwrap();
    let made = env.json(&["key", "age-generate", "-o", "ops.txt"]);
    let recipient = made["recipient"].as_str().unwrap().to_owned();
    assert!(recipient.starts_with("age1"), "{made}");
    let id_file = env.path("ops.txt");
    let mode = std::fs::metadata(&id_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = env.run(&["key", "age-generate", "-o", "ops.txt"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let target = format!(
        "[[target]]\nname = \"web\"\n[[target.component]]\nname = \"site\"\nkind = \"dir\"\npath = \"{}\"\n",
        s(&site)
    );
    let config = env.path("cairn.toml");
    let with = |identity: &str, to: &str| {
        std::fs::write(
            &config,
            format!("encrypt_to = [\"{to}\"]\n{identity}{target}"),
        )
        .unwrap();
    };
    with("identity = \"ops.txt\"\n", &recipient);
    let backup = env.json(&["backup", "web"]);
    let id = backup["backup_id"].as_str().unwrap().to_owned();
    let object = env
        .home()
        .join(format!("store/targets/web/backups/{id}.tar.zst.age"));
    let stored = std::fs::read(&object).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    let out = env.path("out");
    env.ok(&["restore", &id, "--to", s(&out)]);
    assert_trees_equal(&site, &out.join("site"), true);
    let shown = env.ok(&["show", &id]);
    assert!(
        shown.contains(&format!(
            "encrypted   to {}",
            made["fingerprint"].as_str().unwrap()
        )),
        "{shown}"
    );
    // Downloaded, it is the age file as stored, named for what it is.
    let got = env.json(&["download", &id]);
    let file = env.path(&format!("{id}.tar.zst.age"));
    assert_eq!(
        got["file"].as_str(),
        Some(format!("{id}.tar.zst.age").as_str())
    );
    assert!(std::fs::read(&file).unwrap() == stored, "{got}");

    // Without the identity the backup is there but does not restore.
    with("", &recipient);
    let err = env.fails(&["restore", &id, "--to", s(&env.path("out2"))], 4);
    assert!(
        err.contains("no identity matches this backup's recipients"),
        "{err}"
    );
    assert!(!env.path("out2").exists());

    // An identity file others can read, and a recipient that is not one,
    // are refused by name before anything runs.
    with("identity = \"ops.txt\"\n", &recipient);
    std::fs::set_permissions(&id_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = env.fails(&["list"], 2);
    assert!(
        err.contains(s(&id_file)) && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&id_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    with("", "age1notarecipient");
    let err = env.fails(&["list"], 2);
    assert!(
        err.contains("encrypt_to") && err.contains("age1notarecipient"),
        "{err}"
    );
}

#[test]
fn list_shows_the_targets_this_installation_runs_and_the_fleet_on_request() {
    let env = Env::new();
    shop(&env);
    let web = env.json(&["backup", "web"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same installation, now running another target only: web's
    // backup stays in the store and the catalog.
    std::fs::write(
        env.path("cairn.toml"),
        "[[target]]\nname = \"api\"\n\
         [[target.component]]\nname = \"config\"\nkind = \"file\"\npath = \"srv/app.toml\"\n",
    )
    .unwrap();
    let api = env.json(&["backup", "api"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids = |args: &[&str]| -> Vec<String> {
        env.json(args)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&["list"]), [api.as_str()]);
    assert_eq!(
        ids(&["list", "--all-targets"]),
        [api.as_str(), web.as_str()]
    );
    assert_eq!(ids(&["list", "--target", "web"]), [web.as_str()]);
    let text = env.ok(&["list", "--all-targets"]);
    assert!(text.contains(&web) && text.contains("web"), "{text}");
}

#[test]
fn cat_and_restore_path_take_single_files_out_of_a_backup() {
    let env = Env::new();
    shop(&env);
    let id = env.json(&["backup", "web"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(env.path("srv/app.toml"), "port = 2\n").unwrap();
    assert_eq!(env.ok(&["cat", &id, "config/app.toml"]), "port = 1\n");
    assert_eq!(env.ok(&["cat", &id, "/site/index.html"]), "<h1>v1</h1>");
    let err = env.fails(&["cat", &id, "site/nope.html"], 3);
    assert!(err.contains("site/nope.html"), "{err}");
    let err = env.fails(&["cat", &id, "site"], 2);
    assert!(err.contains("is a folder"), "{err}");
    env.fails(&["cat", &id, "site/../../etc/passwd"], 2);

    let out = env.path("one");
    env.ok(&["restore", &id, "--path", "site", "--to", s(&out)]);
    assert_eq!(
        std::fs::read_to_string(out.join("site/index.html")).unwrap(),
        "<h1>v1</h1>"
    );
    assert!(!out.join("config").exists() && !out.join("db").exists());
    let err = env.fails(
        &[
            "restore",
            &id,
            "--path",
            "site/nope",
            "--to",
            s(&env.path("two")),
        ],
        3,
    );
    assert!(err.contains("site/nope"), "{err}");
    assert!(!env.path("two").exists());
    // --path goes with --to.
    let out = env.run(&["restore", &id, "--path", "site"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(env.path("srv/app.toml")).unwrap(),
        "port = 2\n",
        "nothing restored in place"
    );
}
