//! The file format: what parses, what is refused and how the error reads.

use std::time::Duration;

use cairn_config::{ErrorKind, File, duration};

#[test]
fn durations_parse_and_bad_ones_name_the_key() {
    assert_eq!(duration("x", "90s").unwrap(), Duration::from_secs(90));
    assert_eq!(duration("x", "1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(duration("x", "7d").unwrap(), Duration::from_secs(7 * 86400));
    for bad in ["", "0s", "5", "h", "5w", "-1h", "99999999999999999999d"] {
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
        [[server.token]]
        name = "ci"
        sha256 = "00"
        scopes = ["backups:read"]
        "#,
    )
    .unwrap();
    assert_eq!(file.server.listen.as_deref(), Some("0.0.0.0:8420"));
    assert_eq!(file.server.tokens[0].scopes, ["backups:read"]);
    let err = toml::from_str::<File>("[server]\nlisten_on = \"x\"\n").unwrap_err();
    assert!(err.message().contains("listen_on"), "{err}");
}
