//! `backup --no-wait`: the backup runs in a background process.

use cairn::{Job, JobHandle};

use crate::fail::{Fail, Kind};
use crate::ui::Ui;

/// `backup --no-wait`: runs this same command again as a background
/// process (its own process group, so a Ctrl-C here does not reach it;
/// no terminal) and returns once it has started the job. The child says
/// how that went in one JSON line: the job, or an error document.
pub(crate) fn detach(ui: &Ui) -> Result<(), Fail> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    let exe = std::env::current_exe()
        .map_err(|e| Fail::new(Kind::Other, format!("cannot find the cairn binary: {e}")))?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1).filter(|a| a != "--no-wait"))
        .arg("--detached")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Fail::new(
                Kind::Other,
                format!("cannot start the background process: {e}"),
            )
        })?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| Fail::new(Kind::Other, format!("background process: {e}")))?;
    }
    let doc: serde_json::Value = serde_json::from_str(&line).map_err(|_| {
        Fail::new(
            Kind::Other,
            "the background process ended before starting the backup",
        )
    })?;
    if let Some(e) = doc.get("error").filter(|e| e.is_object()) {
        let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
        let mut fail = Fail::new(Kind::from_name(&text("code")), text("message"));
        fail.hint = e["hint"].as_str().map(str::to_owned);
        return Err(fail);
    }
    let job: Job = serde_json::from_value(doc)
        .map_err(|e| Fail::new(Kind::Other, format!("background process: {e}")))?;
    ui.listed(&job, [&job.id], || {
        format!(
            "{}  started in the background (pid {}); `cairn job {} --watch` follows it",
            job.id,
            child.id(),
            job.id
        )
    });
    Ok(())
}

/// In the background process: says on its one line of standard output
/// that the job started (the parent reads it and returns), then waits for
/// the job; its outcome is in the catalog.
#[allow(clippy::print_stdout)]
pub(crate) async fn report_and_wait(handle: JobHandle) -> Result<(), Fail> {
    use std::io::Write;
    // Nothing is written after this line: the parent has gone.
    println!(
        "{}",
        serde_json::to_string(&handle.status()).unwrap_or_default()
    );
    let _ = std::io::stdout().flush();
    handle.wait().await;
    Ok(())
}
