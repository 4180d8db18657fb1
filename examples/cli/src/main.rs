//! `cairn`: backups and restores of directories, files and live SQLite
//! databases, from a terminal. A thin layer over the `cairn` crate: it
//! parses the command line and the configuration, opens a `Vault`, runs one
//! operation, and turns the outcome into output and an exit code.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod fail;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::fail::Fail;

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
    config: Option<PathBuf>,
    /// Print one JSON document (or JSON lines for streams) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Print only what was asked for (ids), no progress.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Say more (causes, paths, timings).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = ui::Ui::new(cli.json, cli.quiet, cli.verbose);
    // The background process of `backup --no-wait` reports on its one
    // line of standard output, which its parent reads.
    let detached = matches!(
        cli.command,
        commands::Command::Backup { detached: true, .. }
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            ui.fail(&Fail::new(fail::Kind::Other, format!("cannot start: {e}")));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli.command, cli.config.as_deref(), &ui)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if detached => {
            println!("{}", f.to_json());
            ExitCode::from(f.kind.exit_code())
        }
        Err(f) => {
            ui.fail(&f);
            ExitCode::from(f.kind.exit_code())
        }
    }
}
