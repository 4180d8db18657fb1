//! `cairn init`: an annotated configuration file.

use std::path::Path;

use crate::fail::{Fail, Kind};
use crate::ui::Ui;

const TEMPLATE: &str = r#"# Cairn configuration. Paths are relative to this file.
# Every key is optional except the targets' names and components.

# Where archives go: a path, file:///..., s3://bucket/prefix, az://container/prefix.
# store = "/var/backups/cairn"
# [store_options]                 # for S3 / Azure (or use AWS_* / AZURE_* variables)
# endpoint = "http://127.0.0.1:9000"
# region = "us-east-1"
# allow_http = false

# The catalog (SQLite) and the signing key (PKCS#8 PEM, mode 0600, made on
# first use); by default both live in the state folder ($CAIRN_HOME).
# catalog = "state/catalog.db"
# key = "state/key.pem"
# origin = "org_myservice_prod"   # names this installation (checked on restore)
# job_timeout = "2h"

# Encryption at rest (docs/encryption.md): backups are stored as age files
# encrypted to these recipients (make one with `cairn key age-generate`);
# this host needs no secret to back up. Restores need an identity file.
# A backup whose recipients' identities are ALL lost cannot be restored by
# anyone: keep a recovery identity offline and list its recipient too.
# encrypt_to = ["age1...ops", "age1...recovery"]
# identity = "state/age-ops.txt"  # or a list; mode 0600
# require_encryption = true       # never write or restore in place a plain backup

[[target]]
name = "web"                      # [a-z0-9][a-z0-9_-]{0,62}
every = "6h"                      # automatic backups (needs a running scheduler)
# min_interval = "1h"             # floor between scheduled backups
# cooldown = "72h"                # re-enabling after a disable waits this long
# pre_restore = "systemctl stop web"
# post_restore = "systemctl start web"
# hook_timeout = "5m"
# verify_after_write = "sample"   # quick | sample | full

[[target.component]]
name = "site"
kind = "dir"                      # dir | file | sqlite
path = "/srv/web/site"

[[target.component]]
name = "db"
kind = "sqlite"                   # a consistent snapshot while the service writes
path = "/srv/web/web.db"

[[target.component]]
name = "uploads"
kind = "dir"
path = "/srv/web/uploads"
optional = true                   # only when asked for (--include uploads)

[target.retention]                # see docs/retention.md
keep_last = 30
# keep_daily = 7
# keep_weekly = 4
# keep_monthly = 12
# keep_within = "2d"
# timezone = "Europe/Paris"

[server]                          # cairn-server only; the CLI ignores it
listen = "127.0.0.1:8420"         # beyond loopback, tokens are required
# max_upload_bytes = 17179869184  # larger uploads get 413
# request_timeout = "30s"
# shutdown_grace = "60s"          # running jobs may finish within it
# log_json = true
# [[server.token]]                # `cairn-server token --name ci --scope backups:read`
# name = "ci"                     # prints a token and the lines to put here
# sha256 = "<hex of the token's SHA-256>"
# scopes = ["backups:read", "backups:write"]
"#;

pub(crate) fn init(output: &Path, force: bool, ui: &Ui) -> Result<(), Fail> {
    if output.exists() && !force {
        return Err(
            Fail::new(Kind::Usage, format!("{} exists", output.display()))
                .hint("add --force to replace it"),
        );
    }
    // The template must stay a valid configuration.
    toml::from_str::<cairn_config::File>(TEMPLATE).map_err(|e| {
        Fail::new(
            Kind::Other,
            format!("the built-in template is invalid: {e}"),
        )
    })?;
    std::fs::write(output, TEMPLATE)
        .map_err(|e| Fail::new(Kind::Other, format!("{}: {e}", output.display())))?;
    ui.out(&serde_json::json!({ "config": output }), || {
        format!(
            "wrote {}: edit its targets, then `cairn backup web`",
            output.display()
        )
    });
    Ok(())
}
