//! `cairn`: backups and restores of directories, files and live SQLite
//! databases, from a terminal. A thin layer over the `cairn` crate: it
//! parses the command line and the configuration, opens a `Vault`, runs one
//! operation, and turns the outcome into output and an exit code.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod background;
mod fail;
mod init;
mod render;
mod run;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{BackupArgs, Cli, Command};
use crate::fail::Fail;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = ui::Ui::new(cli.json, cli.quiet, cli.verbose);
    // The background process of `backup --no-wait` reports on its one
    // line of standard output, which its parent reads.
    let detached = matches!(
        cli.command,
        Command::Backup(BackupArgs { detached: true, .. })
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
    match runtime.block_on(run::run(cli.command, cli.config.as_deref(), &ui)) {
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
