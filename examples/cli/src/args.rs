//! The command line: every command and its arguments.

use std::path::PathBuf;

use cairn::{BackupKind, VerifyTier};
use clap::{Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (store unreachable, a job failed, ...)
  2  usage error (bad arguments or configuration)
  3  not found (target, backup or job)
  4  verification failed (tampered, truncated or foreign-key archive)
  5  conflict (target busy, backup in use, cooldown not over)

Without a configuration file, `cairn backup ./some/dir` keeps everything in
the state folder ($CAIRN_HOME, else $XDG_DATA_HOME/cairn, else
~/.local/share/cairn): the store, the catalog, the signing key (mode 0600).
`cairn init` writes an annotated cairn.toml for anything more.";

/// Backups and restores of a service's directories, files and live SQLite databases.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// The configuration file (default: ./cairn.toml, then $CAIRN_HOME/cairn.toml).
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Print one JSON document (or JSON lines for streams) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Print only what was asked for (ids), no progress.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Say more (causes, paths, timings).
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write an annotated cairn.toml (targets, store, retention, schedules, hooks).
    Init {
        /// Where to write it.
        #[arg(long, default_value = "cairn.toml")]
        output: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Back up a configured target, or a directory (zero configuration).
    #[command(
        after_help = "Examples:\n  cairn backup ./site\n  cairn backup web --label 'before deploy 42'\n  cairn backup shop --include uploads --no-wait"
    )]
    Backup(BackupArgs),
    /// List backups, newest first.
    #[command(
        after_help = "Examples:\n  cairn list\n  cairn list --target web --limit 5\n  cairn list --cursor <next from the previous page>"
    )]
    List {
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Continue after a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Include soft-deleted backups.
        #[arg(long)]
        deleted: bool,
        /// Every target in the store, also those this installation does
        /// not run (a fleet sharing the store), followed from it first.
        /// Without it: the targets this installation runs, or --target.
        #[arg(long)]
        all_targets: bool,
    },
    /// Show one backup (with --manifest: its authenticated manifest).
    Show {
        id: String,
        /// Read the signed manifest from the store: components, every entry, skipped files.
        #[arg(long)]
        manifest: bool,
    },
    /// Restore a backup in place (asks first), into another directory, or as a dry run.
    #[command(
        after_help = "Examples:\n  cairn restore bkp_01J... --dry-run\n  cairn restore bkp_01J... --to /tmp/look\n  cairn restore bkp_01J... --include db --yes"
    )]
    Restore {
        id: String,
        /// Only these components; repeatable.
        #[arg(long)]
        include: Vec<String>,
        /// Unpack into this directory (must not exist or be empty) instead.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Only this file or folder (`component/relative/path`, as `cairn
        /// show --manifest` lists it), with --to.
        #[arg(long, requires = "to")]
        path: Option<String>,
        /// Only list what would be created, replaced and deleted.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        /// Restore a backup made by another installation or target.
        #[arg(long)]
        force: bool,
        /// Restore onto this target instead of the backup's own.
        #[arg(long)]
        target: Option<String>,
    },
    /// Verify a backup (quick, sample or full), or an archive file.
    #[command(
        after_help = "Examples:\n  cairn verify bkp_01J... --tier sample\n  cairn verify backup.tar.zst --public-key cairn.pub.pem   (checks backup.tar.zst.seal too, if present)"
    )]
    Verify {
        /// A backup id, or the path of an archive file.
        id: String,
        #[arg(long, value_enum, default_value_t = VerifyTier::Full)]
        tier: VerifyTier,
        /// For a file: the public key (PEM) that must have signed it
        /// (default: a key this installation trusts).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Soft-delete a backup (recoverable with undelete for 24 h).
    Delete {
        id: String,
        #[arg(long)]
        yes: bool,
    },
    /// Bring a soft-deleted backup back.
    Undelete { id: String },
    /// Pin a backup: never evicted, never deleted.
    Pin { id: String },
    /// Unpin a backup.
    Unpin { id: String },
    /// Apply retention to a target now.
    Prune {
        target: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        yes: bool,
    },
    /// Restore a target to its pinned `factory` backup (or empty it).
    Reset {
        target: String,
        #[arg(long)]
        yes: bool,
    },
    /// Ingest a .tar, .tar.gz or .tar.zst as a backup of a target.
    Upload {
        file: PathBuf,
        #[arg(long)]
        target: String,
        #[arg(long)]
        label: Option<String>,
    },
    /// Copy a backup's archive to a file (a Cairn archive: GNU tar reads it).
    /// Write one file of a backup to standard output, checked against the
    /// signed manifest before a byte is written.
    #[command(
        after_help = "Examples:\n  cairn cat bkp_01J... config/app.toml\n  cairn cat bkp_01J... site/index.html > index.html"
    )]
    Cat {
        id: String,
        /// `component/relative/path`, as `cairn show --manifest` lists it.
        path: String,
    },
    Download {
        id: String,
        /// Where (default: ID.tar.zst, or ID.tar.zst.age for an encrypted backup).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// A signed, expiring download URL (S3 and Azure stores).
    Url {
        id: String,
        /// How long it is valid.
        #[arg(long, default_value = "15m")]
        ttl: String,
    },
    /// Automatic backups of a target: enable, disable (starts the cooldown), status.
    Schedule {
        #[arg(value_enum)]
        action: ScheduleAction,
        target: String,
    },
    /// The last restore of a target.
    RestoreStatus { target: String },
    /// Signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Recent jobs.
    Jobs {
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One job; with --watch, follows it until it ends (JSON lines with --json).
    #[command(
        after_help = "Examples:\n  cairn job 01J...\n  cairn job 01J... --watch --json | jq .progress.percent"
    )]
    Job {
        id: String,
        /// Print the job each time it changes until it ends; the exit code
        /// is the job's (0 if it succeeded).
        #[arg(long)]
        watch: bool,
    },
    /// Ask a running job to stop (in this or another process); it undoes what it did.
    Cancel { id: String },
}

/// `cairn backup`.
#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// A target name, or a directory to back up as its own target.
    pub(crate) target: String,
    /// A label for the backup.
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Back up only these components (optional ones included); repeatable.
    #[arg(long)]
    pub(crate) include: Vec<String>,
    /// Why it is made.
    #[arg(long, value_enum, default_value_t = BackupKind::Manual)]
    pub(crate) kind: BackupKind,
    /// A full backup, even when the target's chain rule (max_depth,
    /// full_every) would make it incremental to the newest backup.
    #[arg(long)]
    pub(crate) full: bool,
    /// Read every file instead of trusting unchanged size, times and inode;
    /// what did not change is still not stored again.
    #[arg(long)]
    pub(crate) full_read: bool,
    /// Wait for the backup to end, with progress (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub(crate) wait: bool,
    /// Start the backup in a background process, print its job and
    /// return at once (`cairn job ID --watch` follows it).
    #[arg(long, overrides_with = "wait")]
    pub(crate) no_wait: bool,
    /// Internal: this process is the background process of `--no-wait`.
    #[arg(long, hide = true)]
    pub(crate) detached: bool,
}

/// What `cairn schedule` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScheduleAction {
    /// Turn automatic backups on (refused during the cooldown).
    Enable,
    /// Turn them off (starts the cooldown).
    Disable,
    /// Show how they stand.
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a new signing key (PKCS#8 PEM, mode 0600).
    Generate {
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print the public key (PEM) that verifies this installation's backups.
    ExportPublic,
    /// Write a new age identity (mode 0600) and print its recipient, for
    /// `encrypt_to` (on the hosts that write backups) and `identity` (where
    /// they are restored). Backups encrypted to it cannot be restored
    /// without it: keep a copy offline.
    AgeGenerate {
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Start signing with a new key on purpose; the old key stays trusted
    /// for the backups it signed (its public key is kept in the state folder).
    Rotate {
        /// Sign with this key (PKCS#8 PEM) instead of a new one.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Recreate the backup records from the store (after losing the catalog),
    /// with every host's pins, deletes and purges.
    Rebuild,
    /// Follow the store: the backups other hosts sharing it published and
    /// the decisions they recorded (`cairn list` does this first).
    Sync {
        /// Every target in the store, also those this installation does not run.
        #[arg(long)]
        all_targets: bool,
    },
}
