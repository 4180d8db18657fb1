//! Fills a catalog with synthetic backup records, for the benchmarks that
//! list many backups (scripts/bench-server.sh).
//!
//! ```text
//! seed-catalog CATALOG TARGET COUNT [TARGETS]
//! ```
//!
//! The catalog is created if missing; the target's records are replaced.
//! With TARGETS, COUNT backups are spread over that many targets named
//! `TARGET-0`, `TARGET-1`, … (a fleet for the dashboard's overview).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use cairn_benches::catalog_record;
use cairn_catalog::Catalog;
use cairn_manifest::TargetName;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (catalog, target, count, targets) = match args.as_slice() {
        [c, t, n] => (c, t, n, None),
        [c, t, n, k] => (c, t, n, Some(k)),
        _ => {
            eprintln!("usage: seed-catalog CATALOG TARGET COUNT [TARGETS]");
            return ExitCode::from(2);
        }
    };
    let targets = match targets.map(|k| k.parse::<u64>()) {
        None => None,
        Some(Ok(k)) if k > 0 => Some(k),
        Some(_) => {
            eprintln!("seed-catalog: TARGETS must be a number above 0");
            return ExitCode::from(2);
        }
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("seed-catalog: COUNT must be a number");
        return ExitCode::from(2);
    };
    let names: Vec<String> = match targets {
        None => vec![target.clone()],
        Some(k) => (0..k).map(|i| format!("{target}-{i}")).collect(),
    };
    let Ok(parsed) = names
        .iter()
        .map(|t| TargetName::parse(t))
        .collect::<Result<Vec<_>, _>>()
    else {
        eprintln!("seed-catalog: {target:?} does not make target names");
        return ExitCode::from(2);
    };
    let per = count / names.len() as u64;
    let result = Catalog::open(catalog).and_then(|c| {
        // Numbered across targets: ids stay unique.
        for (i, (t, name)) in (0u64..).zip(names.iter().zip(&parsed)) {
            let rows: Vec<_> = (0..per).map(|n| catalog_record(i * per + n, t)).collect();
            c.replace_target_backups(name, &rows)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            println!(
                "{} backups of {} target(s) {target}… in {catalog}",
                per * names.len() as u64,
                names.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seed-catalog: {e}");
            ExitCode::from(1)
        }
    }
}
