//! The file format: what parses, what is refused and how the error reads;
//! the state folder made on first use, by several processes at once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cairn_config::{ErrorKind, File, duration, parse};

#[test]
fn durations_parse_and_bad_ones_name_the_key() {
    assert_eq!(duration("x", "90s").unwrap(), Duration::from_secs(90));
    assert_eq!(duration("x", "1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(duration("x", "7d").unwrap(), Duration::from_secs(7 * 86400));
    // One syntax with retention's keep_within: weeks too.
    assert_eq!(duration("x", "1w").unwrap(), Duration::from_secs(7 * 86400));
    for bad in [
        "",
        "0s",
        "5",
        "h",
        "5 fortnights",
        "-1h",
        "99999999999999999999d",
        "1000000h",
    ] {
        let e = duration("every", bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.to_string().starts_with("every:"), "{e}");
    }
}

#[test]
fn the_server_section_parses_and_unknown_keys_are_refused() {
    let file: File = toml::from_str(
        r#"
        [server]
        listen = "0.0.0.0:8420"
        max_upload_bytes = 1048576
        request_timeout = "45s"
        [[server.token]]
        name = "ci"
        sha256 = "00"
        scopes = ["backups:read"]
        "#,
    )
    .unwrap();
    assert_eq!(file.server.listen.as_deref(), Some("0.0.0.0:8420"));
    assert_eq!(file.server.tokens[0].scopes, ["backups:read"]);
    assert_eq!(
        file.server.request_timeout.unwrap().0,
        Duration::from_secs(45)
    );
    let err = toml::from_str::<File>("[server]\nlisten_on = \"x\"\n").unwrap_err();
    assert!(err.message().contains("listen_on"), "{err}");
}

const TARGET: &str = "[[target]]\nname = \"web\"\n[[target.component]]\nname = \"site\"\nkind = \"dir\"\npath = \"/srv/site\"\n";

#[test]
fn every_error_is_one_line_naming_the_file_the_line_and_the_key() {
    let with_target = |extra: &str| format!("{TARGET}{extra}");
    // (file, line, key path, what the message says)
    let cases: Vec<(String, usize, &str, &str)> = vec![
        // Unknown keys, at each level.
        ("jobtimeout = \"5m\"\n".into(), 1, "jobtimeout", "unknown field `jobtimeout`"),
        ("[store_options]\nregin = \"x\"\n".into(), 2, "store_options.regin", "unknown field `regin`"),
        (
            "[[target]]\nname = \"web\"\nevry = \"5h\"\n".into(),
            3,
            "target[0].evry",
            "unknown field `evry`",
        ),
        (with_target("size = 3\n"), 7, "target[0].component[0].size", "unknown field `size`"),
        (
            with_target("[target.retention]\nkeep_lats = 3\n"),
            8,
            "target[0].retention.keep_lats",
            "unknown field `keep_lats`",
        ),
        ("[server]\nlisten_on = \"x\"\n".into(), 2, "server.listen_on", "unknown field `listen_on`"),
        (
            "[[server.token]]\nname = \"ci\"\nsha256 = \"00\"\nscopes = []\nscope = 1\n".into(),
            5,
            "server.token[0].scope",
            "unknown field `scope`",
        ),
        // Wrong types, at each level.
        ("job_timeout = 5\n".into(), 1, "job_timeout", "invalid type: integer `5`, expected a string"),
        ("[store_options]\nallow_http = \"yes\"\n".into(), 2, "store_options.allow_http", "invalid type"),
        ("[[target]]\nname = 7\n".into(), 2, "target[0].name", "invalid type"),
        (
            with_target("[target.retention]\nkeep_last = \"ten\"\n"),
            8,
            "target[0].retention.keep_last",
            "invalid type: string \"ten\", expected u32",
        ),
        (with_target("optional = \"no\"\n"), 7, "target[0].component[0].optional", "invalid type"),
        ("[server]\nlisten = 8080\n".into(), 2, "server.listen", "invalid type"),
        // Bad durations.
        ("job_timeout = \"5 fortnights\"\n".into(), 1, "job_timeout", "is not a duration"),
        (
            "[[target]]\nname = \"web\"\nevery = \"0s\"\n".into(),
            3,
            "target[0].every",
            "is zero",
        ),
        (
            with_target("[target.retention]\nkeep_within = \"soon\"\n"),
            8,
            "target[0].retention.keep_within",
            "\"soon\" is not a duration",
        ),
        ("[server]\nshutdown_grace = \"-1s\"\n".into(), 2, "server.shutdown_grace", "cannot be negative"),
        // Bad names and kinds.
        ("[[target]]\nname = \"Web!\"\n".into(), 2, "target[0].name", "invalid target name \"Web!\""),
        (
            "[[target]]\nname = \"web\"\n[[target.component]]\nname = \"a/b\"\nkind = \"dir\"\npath = \"x\"\n".into(),
            4,
            "target[0].component[0].name",
            "invalid component name",
        ),
        (
            "[[target]]\nname = \"web\"\n[[target.component]]\nname = \"site\"\nkind = \"folder\"\npath = \"x\"\n".into(),
            5,
            "target[0].component[0].kind",
            "unknown variant `folder`, expected one of `dir`, `file`, `sqlite`",
        ),
        ("origin = \"Not An Origin\"\n".into(), 1, "origin", "invalid origin id"),
        (
            "[[target]]\nname = \"web\"\nverify_after_write = \"always\"\n".into(),
            3,
            "target[0].verify_after_write",
            "unknown variant `always`",
        ),
        (
            "[[target]]\nname = \"web\"\nmax_depth = \"deep\"\n".into(),
            3,
            "target[0].max_depth",
            "invalid type",
        ),
        (
            "[[target]]\nname = \"web\"\nfull_every = \"often\"\n".into(),
            3,
            "target[0].full_every",
            "is not a duration",
        ),
        // A missing key.
        (
            "[[target]]\nname = \"web\"\n[[target.component]]\nname = \"site\"\nkind = \"dir\"\n".into(),
            3,
            "target[0].component[0]",
            "missing field `path`",
        ),
        // Not TOML at all.
        ("store = \n".into(), 1, "", "string values must be quoted"),
    ];
    let file = Path::new("/etc/cairn/cairn.toml");
    for (text, line, key, what) in &cases {
        let e = parse(file, text).expect_err(text);
        let shown = e.to_string();
        assert_eq!(e.kind(), ErrorKind::Usage, "{shown}");
        assert!(!shown.contains('\n'), "more than one line: {shown}");
        let at = format!("/etc/cairn/cairn.toml:{line}:");
        assert!(shown.starts_with(&at), "{shown} should start with {at}");
        if !key.is_empty() {
            assert!(
                shown.contains(&format!(" {key}: ")),
                "{shown} should name {key}"
            );
        }
        assert!(shown.contains(what), "{shown} should say {what}");
    }
    // A good file parses, with every duration form.
    let good = with_target(
        "[target.retention]\nkeep_last = 3\nkeep_within = \"1w\"\n[[target]]\nname = \"db\"\nevery = \"1h30m\"\ncooldown = \"1w\"\nmax_depth = 3\nfull_every = \"7d\"\n[[target.component]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"db.sqlite\"\n",
    );
    let parsed = parse(file, &good).unwrap();
    assert_eq!(parsed.targets.len(), 2);
    assert_eq!(parsed.targets[1].max_depth, Some(3));
    assert_eq!(
        parsed.targets[1].full_every.unwrap().0,
        Duration::from_secs(7 * 86_400)
    );
    assert_eq!(
        parsed.targets[1].every.unwrap().0,
        Duration::from_secs(5400)
    );
}

/// A state folder in a temporary directory, used through `$CAIRN_HOME`
/// by child processes (the environment of this one is shared by its tests).
fn home() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    (tmp, home)
}

#[test]
fn first_use_by_many_at_once_makes_one_key_and_one_origin() {
    for round in 0..10 {
        let (_tmp, home) = home();
        let key_path = home.join("key.pem");
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (home, key_path, barrier) = (home.clone(), key_path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let key = cairn_config::key(&key_path, Some(&home)).map(|k| k.key_id());
                    let origin = cairn_config::create_once(&home.join("origin"), b"org_x", 0o644);
                    (key, origin)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let ids: Vec<_> = results
            .iter()
            .map(|(k, _)| k.as_ref().map_err(ToString::to_string).cloned())
            .collect();
        assert!(ids.iter().all(Result::is_ok), "round {round}: {ids:?}");
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "round {round}: several keys {ids:?}"
        );
        let made = results
            .iter()
            .filter(|(_, o)| matches!(o, Ok(true)))
            .count();
        assert_eq!(made, 1, "round {round}: the origin was made {made} times");
        // Nothing half-written is left beside them.
        let names: Vec<_> = std::fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}

#[test]
fn a_damaged_key_is_refused_naming_the_file_and_a_rotation_is_kept_trusted() {
    let (_tmp, home) = home();
    let path = home.join("key.pem");
    let key = cairn_config::key(&path, Some(&home)).unwrap();
    assert_eq!(
        std::fs::read_to_string(home.join("signer")).unwrap().trim(),
        key.key_id().to_string()
    );
    // One bit of the PEM's base64 flipped: still a key, another one.
    let pem = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = pem.lines().collect();
    let mut body: Vec<u8> = lines[1].bytes().collect();
    let at = body.len() - 4;
    body[at] = if body[at] == b'A' { b'B' } else { b'A' };
    let damaged = format!(
        "{}\n{}\n{}\n",
        lines[0],
        String::from_utf8(body).unwrap(),
        lines[2]
    );
    std::fs::write(&path, damaged).unwrap();
    let err = cairn_config::key(&path, Some(&home)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains("is not this installation's key"), "{shown}");
    assert_eq!(err.remedy(), Some(cairn_config::Remedy::RotateKey));
    assert!(
        err.hint_text().unwrap().contains("a key rotation"),
        "{:?}",
        err.hint_text()
    );

    // The right key back, then a rotation made on purpose.
    std::fs::write(&path, &pem).unwrap();
    let rotated = cairn_config::rotate_key(&path, &home, None).unwrap();
    assert_eq!(rotated.old, key.key_id().to_string());
    let new = cairn_config::key(&path, Some(&home)).unwrap();
    assert_eq!(rotated.new, new.key_id().to_string());
    let trusted = cairn_config::trusted_keys(&home, &[]).unwrap();
    assert_eq!(trusted, [key.public_key()]);
    assert!(rotated.retired.exists());
}
