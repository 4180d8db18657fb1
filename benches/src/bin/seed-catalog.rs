//! Fills a catalog with synthetic backup records, for the benchmarks that
//! list many backups (scripts/bench-server.sh).
//!
//!   seed-catalog CATALOG TARGET COUNT
//!
//! The catalog is created if missing; the target's records are replaced.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use cairn_benches::catalog_record;
use cairn_catalog::Catalog;
use cairn_manifest::TargetName;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [catalog, target, count] = args.as_slice() else {
        eprintln!("usage: seed-catalog CATALOG TARGET COUNT");
        return ExitCode::from(2);
    };
    let (Ok(name), Ok(count)) = (TargetName::parse(target), count.parse::<u64>()) else {
        eprintln!("seed-catalog: TARGET must be a target name and COUNT a number");
        return ExitCode::from(2);
    };
    let rows: Vec<_> = (0..count).map(|n| catalog_record(n, target)).collect();
    let result =
        Catalog::open(catalog).and_then(|c| c.replace_target_backups(&name, &rows).map(|_| ()));
    match result {
        Ok(()) => {
            println!("{count} backups of {target} in {catalog}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seed-catalog: {e}");
            ExitCode::from(1)
        }
    }
}
