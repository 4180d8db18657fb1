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
    // Verification: one byte of the archive flipped in the store.
    let key = env.json(&["show", &id])["archive_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = env.home().join("store").join(key);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
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
    let other = cairn_integrity::SigningKey::generate().unwrap();
    let other_pub = env.path("other.pem");
    std::fs::write(&other_pub, other.public_key().to_public_key_pem().unwrap()).unwrap();
    env.fails(&["verify", s(&file), "--public-key", s(&other_pub)], 4);
    // Tampered: exit 4.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 0x10;
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
