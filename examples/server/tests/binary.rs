//! The `cairn-server` binary as an operator runs it: its refusal to listen
//! on a public address without tokens, `cairn-server token`, and a graceful
//! shutdown with a restore running (let it finish within the grace period,
//! else cancel it and leave the target as it was).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_cairn-server");
const TOKEN: &str = "cairn_binary_test_token";

/// A state folder with a target `svc` (one folder), whose restores run
/// `pre_restore` first, and the server settings given.
fn setup(dir: &Path, pre_restore: &str, server: &str) -> PathBuf {
    let data = dir.join("svc");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("app.conf"), "version = 1\n").unwrap();
    let config = dir.join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[[target]]\nname = \"svc\"\npre_restore = {pre_restore:?}\n\
             [[target.component]]\nname = \"data\"\nkind = \"dir\"\npath = {data:?}\n\n\
             [server]\n{server}\n"
        ),
    )
    .unwrap();
    config
}

fn hashed_token() -> String {
    format!(
        "[[server.token]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"backups:admin\"]\n",
        hex::encode(Sha256::digest(TOKEN.as_bytes()))
    )
}

struct Running {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

/// Starts the binary on a free loopback port and waits for it to listen.
fn start(dir: &Path, config: &Path) -> Running {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env("CAIRN_HOME", dir.join("home"))
        .env("CAIRN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.split("local=").nth(1) {
                let addr = at.split_whitespace().next().unwrap_or_default().to_owned();
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("the server did not start:\n{}", log.lock().unwrap()));
    Running {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

impl Running {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let doc: Value = res.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {doc}");
        doc
    }

    async fn job_state(&self, id: &str) -> String {
        let doc = self
            .call(reqwest::Method::GET, &format!("/v1/jobs/{id}"), None)
            .await;
        doc["state"].as_str().unwrap().to_owned()
    }

    async fn wait_for(&self, id: &str, states: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.job_state(id).await;
            if states.contains(&state.as_str()) {
                return state;
            }
            assert!(Instant::now() < deadline, "job {id} stuck in {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status (within `limit`).
    fn terminate(mut self, limit: Duration) -> (ExitStatus, Duration, String) {
        let asked = Instant::now();
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                let log = self.log.lock().unwrap().clone();
                return (status, asked.elapsed(), log);
            }
            if asked.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "no exit within {limit:?} of SIGTERM:\n{}",
                    self.log.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A backup of `svc`, then a change to its data, then a restore of that
/// backup started and seen running (in its pre-restore hook). Returns the
/// restore's job id.
async fn restore_running(server: &Running, data: &Path) -> String {
    let job = server
        .call(
            reqwest::Method::POST,
            "/v1/targets/svc/backups",
            Some(json!({})),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(
        server.wait_for(id, &["succeeded", "failed"]).await,
        "succeeded"
    );
    let done = server
        .call(reqwest::Method::GET, &format!("/v1/jobs/{id}"), None)
        .await;
    let backup = done["result"]["backup_id"].as_str().unwrap().to_owned();
    std::fs::write(data.join("app.conf"), "version = 2\n").unwrap();
    let restore = server
        .call(
            reqwest::Method::POST,
            &format!("/v1/backups/{backup}/restore"),
            Some(json!({"confirm": true})),
        )
        .await;
    let id = restore["id"].as_str().unwrap().to_owned();
    server.wait_for(&id, &["running"]).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_running_restore_finish_within_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(
        tmp.path(),
        "sleep 2",
        &format!("shutdown_grace = \"30s\"\n{}", hashed_token()),
    );
    let server = start(tmp.path(), &config);
    let job = restore_running(&server, &tmp.path().join("svc")).await;
    let (status, took, log) = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("waiting for running jobs"), "{log}");
    assert!(took >= Duration::from_millis(500), "did not wait: {took:?}");
    // The restore finished: the data is the backup's again.
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("svc/app.conf")).unwrap(),
        "version = 1\n"
    );
    let again = start(tmp.path(), &config);
    assert_eq!(again.job_state(&job).await, "succeeded");
    let (status, _, _) = again.terminate(Duration::from_secs(10));
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_a_restore_still_running_after_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(
        tmp.path(),
        "sleep 3",
        &format!("shutdown_grace = \"1s\"\n{}", hashed_token()),
    );
    let server = start(tmp.path(), &config);
    let job = restore_running(&server, &tmp.path().join("svc")).await;
    let (status, _, log) = server.terminate(Duration::from_secs(40));
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("grace period over"), "{log}");
    // Cancelled before it changed anything: the target is as it was.
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("svc/app.conf")).unwrap(),
        "version = 2\n"
    );
    let again = start(tmp.path(), &config);
    assert_eq!(again.job_state(&job).await, "cancelled");
    let (status, _, _) = again.terminate(Duration::from_secs(10));
    assert!(status.success());
}

#[test]
fn a_public_address_needs_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), "true", "");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .env("CAIRN_HOME", tmp.path().join("home"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
    assert!(err.contains("cairn-server token"), "{err}");
    // With a token it listens there.
    let config = setup(tmp.path(), "true", &hashed_token());
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .env("CAIRN_HOME", tmp.path().join("home"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("listening"));
    child.kill().unwrap();
    child.wait().unwrap();
    let listening = listening.expect("a listening line");
    assert!(listening.contains("local=0.0.0.0:"), "{listening}");
    assert!(listening.contains("auth=true"), "{listening}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_makes_a_token_the_server_accepts() {
    let out = Command::new(BIN)
        .args(["token", "--name", "ci", "--scope", "backups:read"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cairn_"))
        .expect("the token")
        .to_owned();
    let toml_part = &text[text.find("[[server.token]]").expect("the TOML lines")..];
    // Only the hash goes into the file.
    assert!(!toml_part.contains(&token));
    assert!(toml_part.contains(&hex::encode(Sha256::digest(token.as_bytes()))));
    assert!(
        toml_part.contains("scopes = [\"backups:read\"]"),
        "{toml_part}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), "true", toml_part);
    let server = start(tmp.path(), &config);
    let client = reqwest::Client::new();
    let get = |t: &str, path: &str| {
        client
            .get(format!("{}{path}", server.base))
            .bearer_auth(t)
            .send()
    };
    assert_eq!(get(&token, "/v1/backups").await.unwrap().status(), 200);
    assert_eq!(
        get("cairn_other", "/v1/backups").await.unwrap().status(),
        401
    );
    // A read token cannot start a backup.
    let res = client
        .post(format!("{}/v1/targets/svc/backups", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let (status, _, _) = server.terminate(Duration::from_secs(10));
    assert!(status.success());

    // An unknown scope is a usage error.
    let out = Command::new(BIN)
        .args(["token", "--name", "ci", "--scope", "backups:everything"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
