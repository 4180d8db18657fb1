//! Output: text or JSON, progress bars on a terminal, confirmations.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use cairn::{Job, JobHandle};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::fail::{Fail, Kind};

/// How to talk to the user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
    color: bool,
}

impl Ui {
    pub(crate) fn new(json: bool, quiet: bool, verbose: bool) -> Self {
        let color = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Self {
            json,
            quiet,
            verbose,
            color,
        }
    }

    /// Prints a result: its JSON form with `--json`, nothing with `-q`,
    /// else `text`.
    pub(crate) fn out<T: Serialize + ?Sized>(&self, value: &T, text: impl FnOnce() -> String) {
        self.listed(value, std::iter::empty::<String>(), text);
    }

    /// Prints a result that names what it made or found: its JSON form with
    /// `--json`, those `ids` one per line with `-q` (what scripts feed to
    /// the next command), else `text`.
    pub(crate) fn listed<T, I>(&self, value: &T, ids: I, text: impl FnOnce() -> String)
    where
        T: Serialize + ?Sized,
        I: IntoIterator,
        I::Item: std::fmt::Display,
    {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot encode the result: {e}"),
            }
        } else if self.quiet {
            for id in ids {
                println!("{id}");
            }
        } else {
            let t = text();
            if !t.is_empty() {
                println!("{t}");
            }
        }
    }

    /// Prints one item of a stream: a compact JSON line with `--json`,
    /// nothing with `-q`, else `text`.
    pub(crate) fn line<T: Serialize + ?Sized>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot encode the result: {e}"),
            }
        } else if !self.quiet {
            println!("{}", text());
        }
    }

    /// A note on standard error (not with `--quiet` or `--json`).
    pub(crate) fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("{text}");
        }
    }

    /// Reports a failure: one line and a hint on standard error (also as
    /// JSON with `--json`).
    pub(crate) fn fail(&self, f: &Fail) {
        if self.json {
            eprintln!("{}", f.to_json());
            return;
        }
        let label = if self.color {
            "\x1b[1;31merror:\x1b[0m"
        } else {
            "error:"
        };
        eprintln!("{label} {}", f.message);
        if let Some(h) = &f.hint {
            let label = if self.color {
                "\x1b[1mhint:\x1b[0m"
            } else {
                "hint:"
            };
            eprintln!("{label} {h}");
        }
        if self.verbose {
            eprintln!("({}, exit code {})", f.kind.as_str(), f.kind.exit_code());
        }
    }

    /// Asks before something destructive. With `yes`, goes ahead; on a
    /// terminal, asks; otherwise refuses.
    pub(crate) fn confirm(&self, what: &str, yes: bool) -> Result<(), Fail> {
        if yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() || self.json {
            return Err(Fail::new(Kind::Usage, format!("{what}: not confirmed"))
                .hint("add --yes to confirm when not on a terminal"));
        }
        eprint!("{what}. Type 'yes' to go on: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Fail::new(Kind::Other, e.to_string()))?;
        if line.trim() == "yes" {
            Ok(())
        } else {
            Err(Fail::new(Kind::Usage, format!("{what}: not confirmed")))
        }
    }

    /// Waits for a job, with a progress bar on a terminal; Ctrl-C cancels
    /// it (cleanly: the job undoes what it did) and waits for the end.
    pub(crate) async fn wait(&self, handle: JobHandle) -> Job {
        // Registered before anything is drawn, so that a Ctrl-C from the
        // moment the bar shows reaches the handler, not the default action.
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        let bar = (!self.quiet && !self.json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let mut rx = handle.subscribe();
        let mut cancelled = false;
        loop {
            let job = rx.borrow_and_update().clone();
            if let Some(bar) = &bar {
                bar.set_message(format!("{:?}", job.progress.phase).to_lowercase());
                if let Some(t) = job.progress.total_bytes {
                    bar.set_length(t);
                }
                bar.set_position(job.progress.processed_bytes);
            }
            if job.state.is_terminal() {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                return job;
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return handle.status();
                    }
                }
                Some(()) = async {
                    match interrupt.as_mut() {
                        Some(i) => i.recv().await,
                        None => std::future::pending().await,
                    }
                }, if !cancelled => {
                    cancelled = true;
                    handle.cancel();
                    if let Some(bar) = &bar {
                        bar.println("cancelling: undoing what the job did...");
                    }
                }
            }
        }
    }
}

/// The failure of a job that did not succeed.
pub(crate) fn job_failure(job: &Job) -> Option<Fail> {
    match job.state {
        cairn::JobState::Succeeded => None,
        cairn::JobState::Cancelled => Some(Fail::new(
            Kind::Other,
            format!("{} {} was cancelled; nothing was changed", job.kind, job.id),
        )),
        _ => {
            let (code, message) = job.error.as_ref().map_or(("internal", "failed"), |e| {
                (e.code.as_str(), e.message.as_str())
            });
            Some(
                Fail::new(
                    Kind::of_code(code),
                    format!("{} {}: {message}", job.kind, job.id),
                )
                .hint(format!("`cairn job {}` shows the job", job.id)),
            )
        }
    }
}
