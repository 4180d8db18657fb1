//! The server on a real socket, driven by a real HTTP client (reqwest):
//! the lifecycle on a local store and on the S3 emulator, errors and auth,
//! idempotency, Server-Sent Events, signed URLs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn::{
    ComponentName, ComponentSpec, OriginId, SigningKey, StoreOptions, TargetConfig, TargetName,
    Vault,
};
use cairn_server::auth::{Scope, Token, Tokens, UrlKey};
use cairn_server::metrics::Metrics;
use cairn_server::{AppState, HttpLimits, app, serve};
use cairn_testkit::storage::{create_s3_bucket, emulator_endpoint, s3_options};
use cairn_testkit::{TreeOptions, assert_trees_equal, noise, random_tree};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const READ: &str = "cairn_read_token";
const WRITE: &str = "cairn_write_token";
const ADMIN: &str = "cairn_admin_token";

struct Server {
    base: String,
    state: AppState,
    http: reqwest::Client,
    tmp: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

fn token(name: &str, secret: &str, scope: Scope) -> Token {
    Token {
        name: name.to_owned(),
        hash: Sha256::digest(secret.as_bytes()).into(),
        scope,
    }
}

impl Server {
    async fn start(store: Option<(String, StoreOptions)>, max_upload: u64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("svc/data");
        std::fs::create_dir_all(tmp.path().join("svc")).unwrap();
        random_tree(&data, 11, &TreeOptions::default().entries(40)).unwrap();
        let (url, opts) = store.unwrap_or_else(|| {
            (
                tmp.path().join("store").to_str().unwrap().to_owned(),
                StoreOptions::default(),
            )
        });
        let key = SigningKey::generate().unwrap();
        // Kept for tests that open another installation with the same key.
        std::fs::write(
            tmp.path().join("key.pem"),
            key.to_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        let vault = Vault::builder()
            .store(url)
            .store_options(opts)
            .catalog(tmp.path().join("state/catalog.db"))
            .signing_key(key)
            .origin(OriginId::parse("org_api").unwrap())
            .target(
                // Hourly automatic backups: none runs unless a test calls
                // `Vault::schedule_due`.
                TargetConfig::new(TargetName::parse("svc").unwrap())
                    .component(ComponentSpec::dir(
                        ComponentName::parse("data").unwrap(),
                        data,
                    ))
                    .every(Duration::from_secs(3600)),
            )
            .observe(Arc::clone(&metrics) as _)
            .open()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState {
            vault,
            url_key: UrlKey::new(&[7u8; 32]).unwrap(),
            base_url: base.clone(),
            max_upload,
            metrics,
            fleet: Arc::default(),
            sessions: Arc::default(),
        };
        let tokens = Tokens(vec![
            token("reader", READ, Scope::Read),
            token("writer", WRITE, Scope::Write),
            token("admin", ADMIN, Scope::Admin),
        ]);
        let router = app(state.clone(), tokens, &HttpLimits::default());
        let state_for_tests = state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            serve(
                listener,
                router,
                &state.vault,
                async {
                    let _ = rx.await;
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        });
        Self {
            base,
            state: state_for_tests,
            http: reqwest::Client::new(),
            tmp,
            stop: Some(tx),
            done: Some(done),
        }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("svc/data")
    }

    /// Another installation on this server's store, with its key: its
    /// catalog in `dir`, `origin`, one target `(name, component)` of the
    /// folder `data`, backed up once. Returns it and that backup's id.
    async fn other_host(
        &self,
        dir: &std::path::Path,
        origin: &str,
        (target, component): (&str, &str),
        data: PathBuf,
    ) -> (Vault, String) {
        let pem = std::fs::read_to_string(self.tmp.path().join("key.pem")).unwrap();
        let host = Vault::builder()
            .store(self.tmp.path().join("store").to_str().unwrap())
            .catalog(dir.join("catalog.db"))
            .signing_key(SigningKey::from_pkcs8_pem(&pem).unwrap())
            .origin(OriginId::parse(origin).unwrap())
            .target(
                TargetConfig::new(TargetName::parse(target).unwrap()).component(
                    ComponentSpec::dir(ComponentName::parse(component).unwrap(), data),
                ),
            )
            .open()
            .await
            .unwrap();
        let job = host
            .backup(target, cairn::BackupRequest::new())
            .await
            .unwrap()
            .wait()
            .await;
        let id = job.result.unwrap().backup_id().unwrap().to_owned();
        (host, id)
    }

    fn req(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// Sends `body` as is, with `content_type` when given: for bodies the
    /// JSON helpers cannot send (malformed, mislabelled, absent, oversized).
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req = self.req(method, path, token);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req.body(body).send().await.unwrap()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status();
        let header = res
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .expect("every response has X-Request-Id");
        let doc: Value = res.json().await.unwrap();
        // At the top of a document, inside `error` of an error; never in a
        // failed job's own `error`.
        let in_body = if status.is_success() {
            assert!(doc["error"].get("request_id").is_none(), "{doc}");
            doc.get("request_id")
        } else {
            doc["error"].get("request_id")
        };
        let in_body = in_body
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no request_id where expected: {doc}"));
        assert_eq!(in_body, header);
        (status, doc)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, READ, None).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, ADMIN, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Polls a job until it ends.
    async fn finish(&self, job: &Value) -> Value {
        let path = job["links"]["self"].as_str().unwrap().to_owned();
        loop {
            let (status, doc) = self.get(&path).await;
            assert_eq!(status, StatusCode::OK);
            if ["succeeded", "failed", "cancelled"].contains(&doc["state"].as_str().unwrap()) {
                return doc;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap();
    }
}

async fn lifecycle(server: Server) {
    // Create: 202, Location, links.
    let res = server
        .req(reqwest::Method::POST, "/v1/targets/svc/backups", WRITE)
        .json(&json!({"label": "first"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    assert_eq!(job["links"]["events"], format!("{location}/events"));
    let done = server.finish(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let id = done["result"]["backup_id"].as_str().unwrap().to_owned();

    // List and get.
    let (_, page) = server.get("/v1/backups?target=svc&limit=10").await;
    assert_eq!(page["items"][0]["id"], id);
    assert_eq!(page["has_more"], false);
    let (status, record) = server.get(&format!("/v1/backups/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["label"], "first");
    assert_eq!(record["origin"], "org_api");
    let size = record["archive"]["size_bytes"].as_u64().unwrap();
    let sha = record["archive"]["sha256"].as_str().unwrap().to_owned();
    // The first backup is full: no chain, and it stored its whole archive.
    assert_eq!(record["parent"], Value::Null);
    assert_eq!(record["depth"], 0);
    assert_eq!(record["chain"], serde_json::json!([]));
    assert_eq!(record["stored_bytes"], size);
    assert_eq!(record["encrypted"], false);
    assert_eq!(record["recipients"], serde_json::json!([]));
    let (_, manifest) = server.get(&format!("/v1/backups/{id}/manifest")).await;
    assert!(manifest.is_object());
    assert_eq!(manifest["version"], "2.1", "the engine writes format 2.1");
    // Paged: the pages put together are the whole list, in order.
    let all = manifest["entries"].as_array().unwrap().clone();
    let total: u64 = manifest["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["entries"].as_u64().unwrap())
        .sum();
    assert_eq!(all.len() as u64, total);
    let mut paged = Vec::new();
    for offset in (0..all.len()).step_by(2) {
        let (status, page) = server
            .get(&format!(
                "/v1/backups/{id}/manifest?offset={offset}&limit=2"
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        paged.extend(page["entries"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(paged, all);
    for bad in ["limit=0", "limit=100001", "offset=-1", "limit=x"] {
        let (status, _) = server
            .get(&format!("/v1/backups/{id}/manifest?{bad}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Download: whole (digest checked) and a range.
    let bytes = server
        .req(
            reqwest::Method::GET,
            &format!("/v1/backups/{id}/archive"),
            WRITE,
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha);
    let part = server
        .req(
            reqwest::Method::GET,
            &format!("/v1/backups/{id}/archive"),
            WRITE,
        )
        .header("range", "bytes=100-1123")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-1123/{size}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(100..1124));
    // Past the end, several ranges, malformed: 416 with the size.
    for range in [format!("bytes={size}-"), "bytes=0-1,3-4".into(), "@".into()] {
        let bad = server
            .req(
                reqwest::Method::GET,
                &format!("/v1/backups/{id}/archive"),
                WRITE,
            )
            .header("range", &range)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            bad.headers()["content-range"],
            format!("bytes */{size}").as_str()
        );
    }

    // A signed URL: no token needed while it lives.
    let (status, link) = server.get(&format!("/v1/backups/{id}/download")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "download needs backups:write"
    );
    let (status, link) = {
        let _ = link;
        server
            .call(
                reqwest::Method::GET,
                &format!("/v1/backups/{id}/download?ttl_seconds=60"),
                WRITE,
                None,
            )
            .await
    };
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["size_bytes"], size);
    let got = reqwest::get(link["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got, bytes);

    // Verify.
    let (status, job) = server
        .post(
            &format!("/v1/backups/{id}/verify"),
            WRITE,
            json!({"tier": "full"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = server.finish(&job).await;
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["result"]["ok"], true, "{done}");

    // Restore: refused without confirm (422), then done; status reported.
    let before = server.tmp.path().join("before");
    copy_tree(&server.data(), &before);
    std::fs::write(server.data().join("added-later"), "x").unwrap();
    let (status, err) = server
        .post(&format!("/v1/backups/{id}/restore"), ADMIN, json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "invalid");
    let (status, _) = server
        .post(
            &format!("/v1/backups/{id}/restore"),
            WRITE,
            json!({"confirm": true}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "restore needs backups:admin");
    let (status, job) = server
        .post(
            &format!("/v1/backups/{id}/restore"),
            ADMIN,
            json!({"confirm": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = server.finish(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(!server.data().join("added-later").exists());
    assert_trees_equal(&before, &server.data(), true);
    let (_, status) = server.get("/v1/targets/svc/restore-status").await;
    assert_eq!(status["status"], "completed");
    let (_, target) = server.get("/v1/targets/svc").await;
    assert_eq!(target["restore_status"]["status"], "completed");
    assert!(target["current_job"].is_null());
    server.stop().await;
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_a_local_store() {
    lifecycle(Server::start(None, 1 << 30).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_the_s3_emulator() {
    let Some(endpoint) = emulator_endpoint("CAIRN_TEST_S3_ENDPOINT", "the S3 emulator (moto)")
    else {
        return;
    };
    let bucket = create_s3_bucket(&endpoint, "moto", "moto").await;
    let store = (
        format!("s3://{bucket}/cairn"),
        s3_options(&endpoint, "moto", "moto"),
    );
    lifecycle(Server::start(Some(store), 1 << 30).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_each_class_of_error() {
    let server = Server::start(None, 1 << 20).await;
    // A client's sane X-Request-Id is kept, in the header and the body;
    // anything else (too long, a character outside the pattern) is replaced.
    let long = "a".repeat(65);
    for (sent, kept) in [
        ("client-7.a_B", true),
        (long.as_str(), false),
        ("a b", false),
    ] {
        let res = server
            .req(reqwest::Method::GET, "/v1/targets", READ)
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["request_id"], header);
        assert_eq!(header == sent, kept, "{sent} -> {header}");
        assert!(kept || header.starts_with("req_"), "{header}");
    }
    // 401 without or with a wrong token, with the challenge header.
    for t in ["", "nope"] {
        let res = server
            .req(reqwest::Method::GET, "/v1/backups", t)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["error"]["code"], "unauthorized");
    }
    // 403: a reader cannot start a backup.
    let (status, doc) = server
        .post("/v1/targets/svc/backups", READ, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(doc["error"]["code"], "forbidden");
    // 404s.
    let (status, _) = server
        .get("/v1/backups/bkp_00000000000000000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/v1/targets/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, doc) = server.get("/v1/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{doc}");
    // 400: bad JSON, unknown field, bad query.
    const BACKUPS: &str = "/v1/targets/svc/backups";
    const JSON: Option<&str> = Some("application/json");
    let res = server
        .raw(reqwest::Method::POST, BACKUPS, WRITE, JSON, "{not json")
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["error"]["request_id"].is_string(), "{doc}");
    // Every body is a JSON object of known fields and types: anything else
    // is 400, never 422 (kept for well-formed requests refused).
    for body in [
        json!({"lable": "typo"}),
        json!({"kind": 7}),
        json!({"kind": "uploaded"}),
        json!({"includes": ["Not A Name"]}),
        json!([null, null]),
        json!("manual"),
    ] {
        let (status, doc) = server
            .post("/v1/targets/svc/backups", WRITE, body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {doc}");
        assert_eq!(doc["error"]["code"], "bad_request");
    }
    // A body that is not declared JSON: 415; an empty or `null` optional
    // body is no body (a backup of everything).
    let res = server
        .raw(
            reqwest::Method::POST,
            BACKUPS,
            WRITE,
            Some("text/plain"),
            "{}",
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A required body: absent is 415 without a JSON content type, 400 with
    // one; over the 1 MiB limit, 413.
    let pin = |content_type: Option<&'static str>, body: Vec<u8>| {
        server.raw(
            reqwest::Method::PUT,
            "/v1/backups/bkp_00000000000000000000000000/pin",
            ADMIN,
            content_type,
            body,
        )
    };
    assert_eq!(
        pin(None, Vec::new()).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        pin(JSON, Vec::new()).await.status(),
        StatusCode::BAD_REQUEST
    );
    let mut big = b"{\"pinned\": true, \"x\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 << 20));
    big.extend(b"\"}");
    let res = pin(JSON, big).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The rest of the body was not read: the server closes the connection
    // and says so, so that the client's next request takes a new one.
    assert_eq!(res.headers()["connection"], "close");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["error"]["code"], "too_large");
    let res = server
        .raw(reqwest::Method::POST, BACKUPS, WRITE, JSON, "null")
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    server.finish(&res.json().await.unwrap()).await;
    // Well formed but refused before any job starts: 422.
    let (status, doc) = server
        .post(
            "/v1/targets/svc/backups",
            WRITE,
            json!({"label": "x".repeat(257)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{doc}");
    for query in ["limit=0", "limit=1001", "kind=dir", "target=Bad.Name"] {
        let (status, _) = server.get(&format!("/v1/backups?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
    let (status, _) = server.get("/v1/jobs?target=Bad.Name").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 409: a second job on a busy target.
    std::fs::write(server.data().join("big.bin"), noise(96 << 20, 3)).unwrap();
    let (status, first) = server
        .post("/v1/targets/svc/backups", WRITE, json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, doc) = server
        .post("/v1/targets/svc/backups", WRITE, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{doc}");
    assert_eq!(doc["error"]["code"], "conflict");
    let done = server.finish(&first).await;
    let id = done["result"]["backup_id"].as_str().unwrap().to_owned();

    // 409: delete while a restore holds the backup.
    let (status, restore) = server
        .post(
            &format!("/v1/backups/{id}/restore"),
            ADMIN,
            json!({"confirm": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, doc) = server.delete(&format!("/v1/backups/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{doc}");
    assert_eq!(server.finish(&restore).await["state"], "succeeded");
    std::fs::remove_file(server.data().join("big.bin")).unwrap();

    // A component the backup lacks: 422 before any job starts.
    let (status, doc) = server
        .post(
            &format!("/v1/backups/{id}/restore"),
            ADMIN,
            json!({"confirm": true, "includes": ["nope"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{doc}");

    // 409 for a request the resource's state refuses: a pinned backup to
    // delete, an ended job to cancel.
    let pin_path = format!("/v1/backups/{id}/pin");
    let pin = |pinned: bool| {
        server.call(
            reqwest::Method::PUT,
            &pin_path,
            ADMIN,
            Some(json!({ "pinned": pinned })),
        )
    };
    assert_eq!(pin(true).await.0, StatusCode::OK);
    let (status, doc) = server.delete(&format!("/v1/backups/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{doc}");
    assert_eq!(pin(false).await.0, StatusCode::OK);
    let (_, jobs) = server.get("/v1/jobs?state=succeeded&limit=1").await;
    let ended = jobs["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, doc) = server
        .post(&format!("/v1/jobs/{ended}/cancel"), WRITE, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{doc}");

    // 409: re-enabling automatic backups before the cooldown ends.
    let put = |body: Value| {
        server.call(
            reqwest::Method::PUT,
            "/v1/targets/svc/schedule",
            ADMIN,
            Some(body),
        )
    };
    let (status, schedule) = put(json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(schedule["cooldown_until"].is_string(), "{schedule}");
    let (status, doc) = put(json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(doc["error"]["code"], "cooldown");
    // The interval: a whole number, also written with a zero fraction
    // (JSON Schema's integer); a fraction of a second is malformed.
    let (status, schedule) = put(json!({"every_seconds": 7200.0})).await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    assert_eq!(schedule["every_seconds"], 7200);
    let (status, _) = put(json!({"every_seconds": 1.5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = put(json!({"every_seconds": 4_000_000_000u64})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "over 100 years");

    // Retention: replaced, read back; a bad policy is 422.
    let (status, policy) = server
        .call(
            reqwest::Method::PUT,
            "/v1/targets/svc/retention",
            ADMIN,
            Some(json!({"keep_last": 5, "keep_daily": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(
        server.get("/v1/targets/svc/retention").await.1["keep_last"],
        5
    );
    let (status, _) = server
        .call(
            reqwest::Method::PUT,
            "/v1/targets/svc/retention",
            ADMIN,
            Some(json!({"keep_last": -1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // 413: an upload beyond the limit (1 MiB here), declared or streamed.
    // Declared: refused from the headers alone, before any body is sent (a
    // raw request, as a client using `Expect: 100-continue` would wait).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "POST /v1/targets/svc/uploads HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer {WRITE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            2 << 20
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("\"too_large\""), "{answer}");
    }
    // A real tarball, so that the ingest reads on until the limit stops it.
    let src = server.tmp.path().join("up");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), noise(2 << 20, 9)).unwrap();
    let tarball = server.tmp.path().join("up.tar");
    assert!(
        std::process::Command::new("tar")
            .arg("-cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let tar = std::fs::read(&tarball).unwrap();
    let chunks = futures::stream::iter(
        tar.chunks(256 << 10)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let res = server
        .req(reqwest::Method::POST, "/v1/targets/svc/uploads", WRITE)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Not an archive: 422.
    let res = server
        .req(reqwest::Method::POST, "/v1/targets/svc/uploads", WRITE)
        .body(vec![1u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Its failed job reads as a job: the request id at the top, the job's
    // own error untouched.
    let (_, failed) = server.get("/v1/jobs?state=failed").await;
    let job = &failed["items"][0];
    assert_eq!(job["kind"], "upload", "{failed}");
    let (status, doc) = server.get(job["links"]["self"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["error"]["code"], "verification_failed", "{doc}");
    assert!(doc["error"].get("request_id").is_none(), "{doc}");

    // Metrics count what happened.
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("cairn_jobs_total{kind=\"backup\",state=\"succeeded\"} 2"),
        "{text}"
    );
    assert!(text.contains("cairn_http_requests_total{status=\"4xx\"}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_events_and_signed_urls() {
    let server = Server::start(None, 1 << 30).await;
    std::fs::write(server.data().join("big.bin"), noise(48 << 20, 5)).unwrap();
    // The same key and body: the same job; another body: 409.
    let send = |body: Value| {
        server
            .req(reqwest::Method::POST, "/v1/targets/svc/backups", WRITE)
            .header("idempotency-key", "deploy-7")
            .json(&body)
            .send()
    };
    let one: Value = send(json!({"label": "d7"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again = send(json!({"label": "d7"})).await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let two: Value = again.json().await.unwrap();
    assert_eq!(one["id"], two["id"]);
    let other = send(json!({"label": "other"})).await.unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);

    // Events: in order, to the end.
    let text = server
        .req(
            reqwest::Method::GET,
            one["links"]["events"].as_str().unwrap(),
            READ,
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut events = Vec::new();
    let mut current = (String::new(), String::new(), String::new());
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            current.0 = v.to_owned();
        } else if let Some(v) = line.strip_prefix("id: ") {
            current.1 = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            current.2 = v.to_owned();
        } else if line.is_empty() && !current.0.is_empty() {
            events.push(std::mem::take(&mut current));
        }
    }
    assert!(!events.is_empty(), "{text}");
    let ids: Vec<u64> = events.iter().map(|e| e.1.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let jobs: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.2).unwrap())
        .collect();
    let percents: Vec<u64> = jobs
        .iter()
        .map(|j| j["progress"]["percent"].as_u64().unwrap())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    let last = events.last().unwrap();
    assert_eq!(last.0, "end");
    assert_eq!(jobs.last().unwrap()["state"], "succeeded");
    assert!(events[..events.len() - 1].iter().all(|e| e.0 == "job"));
    let id = jobs.last().unwrap()["result"]["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A signed URL: altered or expired, 403.
    let (_, link) = server
        .call(
            reqwest::Method::GET,
            &format!("/v1/backups/{id}/download?ttl_seconds=1"),
            WRITE,
            None,
        )
        .await;
    let url = link["url"].as_str().unwrap().to_owned();
    let altered = url.replace("sig=", "sig=00");
    assert_eq!(
        reqwest::get(&altered).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let later = url.replace("expires=", "expires=9");
    assert_eq!(
        reqwest::get(&later).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["error"]["code"], "forbidden");

    // The OpenAPI document lists every route of SPEC §8. It is served as
    // generated: the request id in the header only, no foreign field.
    let res = server
        .raw(reqwest::Method::GET, "/v1/openapi.json", READ, None, "")
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-request-id").is_some());
    let api: Value = res.json().await.unwrap();
    assert!(api.get("request_id").is_none(), "{}", api["request_id"]);
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/targets",
        "/v1/targets/{target}",
        "/v1/targets/{target}/backups",
        "/v1/backups",
        "/v1/backups/{id}",
        "/v1/backups/{id}/manifest",
        "/v1/backups/{id}/archive",
        "/v1/backups/{id}/download",
        "/v1/backups/{id}/undelete",
        "/v1/backups/{id}/pin",
        "/v1/backups/{id}/restore",
        "/v1/backups/{id}/verify",
        "/v1/targets/{target}/uploads",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/cancel",
        "/v1/targets/{target}/restore-status",
        "/v1/targets/{target}/schedule",
        "/v1/targets/{target}/retention",
        "/v1/targets/{target}/prune",
        "/v1/targets/{target}/reset-factory",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            api["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    // The errors the layers add are documented where they apply: auth and
    // a time limit on ordinary routes, no time limit on streams, the body
    // errors where there is a JSON body.
    let responses = |path: &str, method: &str| {
        let r = &api["paths"][path][method]["responses"];
        let mut codes: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
        codes.sort();
        codes
    };
    let has = |codes: &[String], c: &str| codes.iter().any(|x| x == c);
    let create = responses("/v1/targets/{target}/backups", "post");
    for c in [
        "202", "400", "401", "403", "404", "408", "409", "413", "415", "422", "500",
    ] {
        assert!(has(&create, c), "create lacks {c}: {create:?}");
    }
    let events = responses("/v1/jobs/{id}/events", "get");
    assert!(has(&events, "401") && !has(&events, "408") && !has(&events, "415"));
    // Every target name, in a path or a query, has the engine's name rule.
    let mut targets = 0;
    for item in api["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == "target" {
                    assert_eq!(p["schema"]["pattern"], cairn_server::schema::NAME_PATTERN);
                    targets += 1;
                }
            }
        }
    }
    assert_eq!(
        targets, 12,
        "10 routes under /v1/targets/{{target}}, 2 filters"
    );
    let health = responses("/healthz", "get");
    assert_eq!(health, ["200"]);
    assert_eq!(
        api["paths"]["/v1/backups"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "kind")
            .unwrap()["schema"]["enum"],
        json!(["manual", "scheduled", "pre_deploy", "uploaded"])
    );
    // A reset must be confirmed, and the document says so.
    let reset = &api["components"]["schemas"]["ResetBody"];
    assert_eq!(
        reset["properties"]["confirm"]["enum"],
        json!([true]),
        "{reset}"
    );
    assert_eq!(reset["required"], json!(["confirm"]), "{reset}");
    // What the request-id layer and the job routes add is documented on
    // every response: the header everywhere, `request_id` required at the
    // top of JSON documents (errors carry it inside `error`), `Location`
    // on 201/202.
    let mut json_bodies = 0;
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().unwrap() {
                let at = format!("{method} {path} {status}");
                assert!(r["headers"].get("X-Request-Id").is_some(), "{at}");
                if status == "201" || status == "202" {
                    assert!(r["headers"].get("Location").is_some(), "{at}");
                }
                let schema = &r["content"]["application/json"]["schema"];
                if schema.is_null() || schema["$ref"] == "#/components/schemas/ErrorBody" {
                    continue;
                }
                let document = match schema["$ref"].as_str() {
                    Some(r) => {
                        let name = r.strip_prefix("#/components/schemas/").unwrap();
                        &api["components"]["schemas"][name]
                    }
                    None => schema,
                };
                let required = document["required"].as_array().unwrap();
                assert!(required.contains(&json!("request_id")), "{at}: {document}");
                json_bodies += 1;
            }
        }
    }
    assert!(json_bodies >= 20, "{json_bodies} success documents");
    // The documents inside others keep their shape.
    let job = &api["components"]["schemas"]["JobView"];
    assert!(job["properties"].get("request_id").is_none(), "{job}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_are_counted_like_those_started_over_http() {
    let server = Server::start(None, 1 << 20).await;
    let ids = server.state.vault.schedule_due().await.unwrap();
    assert_eq!(ids.len(), 1, "the hourly backup is due at once");
    let job = json!({"links": {"self": format!("/v1/jobs/{}", ids[0])}});
    let done = server.finish(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, backup) = server
        .get(&format!(
            "/v1/backups/{}",
            done["result"]["backup_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(backup["kind"], "scheduled");
    // Counted in /metrics, from start to end (the vault tells its observer
    // just after the job's end is in the catalog).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("cairn_jobs_started_total{kind=\"backup\"} 1"),
            "{text}"
        );
        if text.contains("cairn_jobs_total{kind=\"backup\",state=\"succeeded\"} 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Within the hour, the next pass starts nothing.
    assert!(server.state.vault.schedule_due().await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_loop_starts_a_due_backup_once() {
    let server = Server::start(None, 1 << 20).await;
    let scheduler = tokio::spawn(
        server
            .state
            .vault
            .clone()
            .run_scheduler(Duration::from_millis(20)),
    );
    let backup_jobs = || async {
        let (_, jobs) = server.get("/v1/jobs").await;
        jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "backup")
            .cloned()
            .collect::<Vec<Value>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        if let Some(job) = backup_jobs().await.pop() {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled backup");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = server.finish(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let id = done["result"]["backup_id"].as_str().unwrap();
    let (_, backup) = server.get(&format!("/v1/backups/{id}")).await;
    assert_eq!(backup["kind"], "scheduled", "{backup}");
    // Dozens of ticks later, the hourly schedule has started nothing more.
    tokio::time::sleep(Duration::from_millis(600)).await;
    scheduler.abort();
    let jobs = backup_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_the_start_foreign_backups_at_once_and_truncated_archives() {
    let server = Server::start(None, 1 << 30).await;
    let (status, job) = server
        .post("/v1/targets/svc/backups", WRITE, json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The running job names its backup from the start, and the backup has
    // a record while it is made.
    let id = job["resource"]["id"].as_str().unwrap().to_owned();
    assert_eq!(job["resource"]["type"], "backup");
    let (status, record) = server.get(&format!("/v1/backups/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ["creating", "uploading", "ready"].contains(&record["status"].as_str().unwrap()),
        "{record}"
    );
    let done = server.finish(&job).await;
    assert_eq!(done["result"]["backup_id"], id.as_str());
    assert_eq!(
        done["progress"]["processed_bytes"],
        done["progress"]["total_bytes"]
    );
    let (_, record) = server.get(&format!("/v1/backups/{id}")).await;
    assert_eq!(record["status"], "ready");
    assert_eq!(record["status_message"], Value::Null);
    assert_eq!(record["component_kinds"], json!({"data": "dir"}));
    assert!(
        record["origin_identity"]["hostname"].is_string(),
        "{record}"
    );
    assert!(
        record["origin_identity"]["software_version"]
            .as_str()
            .unwrap()
            .starts_with("cairn/"),
        "{record}"
    );
    let (status, page) = server.get("/v1/backups?status=ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (status, page) = server.get("/v1/backups?status=creating").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["items"].as_array().unwrap().is_empty());

    // A backup of another installation (same key, same store, another
    // origin) is refused before any job starts.
    let other = tempfile::tempdir().unwrap();
    let (foreign, theirs) = server
        .other_host(
            other.path(),
            "org_elsewhere",
            ("svc", "data"),
            server.data(),
        )
        .await;
    drop(foreign);
    server.state.vault.rebuild_catalog().await.unwrap();
    let jobs_before = server.get("/v1/jobs").await.1["items"]
        .as_array()
        .unwrap()
        .len();
    let (status, err) = server
        .post(
            &format!("/v1/backups/{theirs}/restore"),
            ADMIN,
            json!({"confirm": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "foreign_origin");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("org_elsewhere"),
        "{err}"
    );
    let jobs = server.get("/v1/jobs").await.1["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(jobs, jobs_before, "a job was started");

    // A truncated archive: 422 verification_failed, at once, target unchanged.
    let archive = server
        .tmp
        .path()
        .join("store")
        .join(record["archive"]["key"].as_str().unwrap());
    let len = std::fs::metadata(&archive).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&archive)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let before = cairn_testkit::snapshot(&server.data()).unwrap();
    let (status, err) = server
        .post(
            &format!("/v1/backups/{id}/restore"),
            ADMIN,
            json!({"confirm": true}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "verification_failed");
    let (status, err) = server.get(&format!("/v1/backups/{id}/manifest")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "verification_failed");
    assert!(cairn_testkit::snapshot(&server.data()).unwrap() == before);
    let jobs_after = server.get("/v1/jobs").await.1["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(jobs_after, jobs_before, "a job was started");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_backup_shows_its_chain_and_downloads_whole() {
    let server = Server::start(None, 1 << 30).await;
    // Files younger than 2 s are read again by the next backup: let them age.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let backup = || async {
        let (status, job) = server
            .post("/v1/targets/svc/backups", WRITE, json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let done = server.finish(&job).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        done["result"].clone()
    };
    let first = backup().await;
    let second = backup().await;
    let (full, id) = (
        first["backup_id"].as_str().unwrap(),
        second["backup_id"].as_str().unwrap(),
    );
    assert_eq!(second["parent"], full, "{second}");
    assert_eq!(second["depth"], 1);
    assert!(second["reused_files"].as_u64().unwrap() > 0, "{second}");
    let (_, record) = server.get(&format!("/v1/backups/{id}")).await;
    assert_eq!(record["parent"], full);
    assert_eq!(record["depth"], 1);
    assert_eq!(record["chain"], json!([full]));
    assert!(record["stored_bytes"].as_u64().unwrap() < record["data_bytes"].as_u64().unwrap());

    // The download is a whole archive, assembled; a range of it is 416.
    let res = server
        .req(
            reqwest::Method::GET,
            &format!("/v1/backups/{id}/archive"),
            WRITE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("etag").is_none());
    let whole = res.bytes().await.unwrap();
    let file = server.tmp.path().join("whole.tar.zst");
    std::fs::write(&file, &whole).unwrap();
    // Signed by the server's own key: its vault verifies every byte.
    let checked = server.state.vault.verify_file(&file, None).await.unwrap();
    assert_eq!(checked.backup_id, id);
    assert_eq!(checked.entries, record["entries"].as_u64().unwrap());
    let res = server
        .req(
            reqwest::Method::GET,
            &format!("/v1/backups/{id}/archive"),
            WRITE,
        )
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incremental"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_view_lists_every_target_of_the_store_on_request() {
    let server = Server::start(None, 1 << 30).await;
    let (_, job) = server
        .post("/v1/targets/svc/backups", WRITE, json!({}))
        .await;
    let ours = server.finish(&job).await["result"]["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another host of the fleet (same store, key and origin) runs a target
    // this server does not, and pins its backup.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("web")).unwrap();
    std::fs::write(other.path().join("web/index.html"), b"<p>hi</p>").unwrap();
    let (host, theirs) = server
        .other_host(
            other.path(),
            "org_api",
            ("web", "site"),
            other.path().join("web"),
        )
        .await;
    host.pin(&theirs).await.unwrap();
    host.shutdown(Duration::from_secs(5)).await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // By default: the targets this server runs, even once it holds more.
    let (status, page) = server.get("/v1/backups").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), [ours.as_str()]);
    let (_, page) = server.get("/v1/backups?all_targets=true").await;
    assert_eq!(ids(&page), [theirs.as_str(), ours.as_str()], "{page}");
    assert_eq!(page["items"][0]["target"], "web");
    assert_eq!(page["items"][0]["pinned"], true, "the other host's pin");
    let (_, page) = server.get("/v1/backups").await;
    assert_eq!(ids(&page), [ours.as_str()], "followed, still not listed");
    let (_, page) = server.get("/v1/backups?target=web").await;
    assert_eq!(ids(&page), [theirs.as_str()], "a target named is listed");
    let (_, page) = server.get("/v1/backups?all_targets=true&target=svc").await;
    assert_eq!(ids(&page), [ours.as_str()]);
    let (status, record) = server.get(&format!("/v1/backups/{theirs}")).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    let (status, _) = server.get(&format!("/v1/backups/{theirs}/manifest")).await;
    assert_eq!(status, StatusCode::OK, "inspected like any other");

    // Read-only here: restoring it in place is refused before a job.
    let (status, err) = server
        .post(
            &format!("/v1/backups/{theirs}/restore"),
            ADMIN,
            json!({"confirm": true}),
        )
        .await;
    assert!(status.is_client_error(), "{status} {err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("web"),
        "names the target it belongs to: {err}"
    );
    let (status, err) = server.get("/v1/backups?all_targets=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_or_a_folder_comes_out_of_a_backup_verified() {
    let server = Server::start(None, 1 << 30).await;
    let (_, job) = server
        .post("/v1/targets/svc/backups", WRITE, json!({}))
        .await;
    let id = server.finish(&job).await["result"]["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let data = server.data();
    let file = walkdir::WalkDir::new(&data)
        .into_iter()
        .map(Result::unwrap)
        .find(|e| e.file_type().is_file() && e.metadata().unwrap().len() > 20)
        .unwrap();
    let saved = std::fs::read(file.path()).unwrap();
    let rel = file.path().strip_prefix(&data).unwrap().to_str().unwrap();
    let get = |path: &str, token: &'static str, range: Option<&'static str>| {
        let mut req = server
            .req(
                reqwest::Method::GET,
                &format!("/v1/backups/{id}/files"),
                token,
            )
            .query(&[("path", path)]);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send()
    };
    let path = format!("data/{rel}");
    let res = get(&path, WRITE, None).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert_eq!(res.bytes().await.unwrap(), saved);
    let res = get(&path, WRITE, Some("bytes=5-14")).await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 5-14/{}", saved.len()).as_str()
    );
    assert_eq!(res.bytes().await.unwrap(), saved[5..15]);
    let res = get(&path, WRITE, Some("bytes=99999999-")).await.unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // A folder: a tar.zst of its subtree, as saved.
    let res = get("data", WRITE, None).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/zstd");
    let tarball = res.bytes().await.unwrap();
    let out = server.tmp.path().join("folder");
    std::fs::create_dir_all(&out).unwrap();
    let raw = zstd::decode_all(&tarball[..]).unwrap();
    tar::Archive::new(&raw[..]).unpack(&out).unwrap();
    assert_eq!(std::fs::read(out.join("data").join(rel)).unwrap(), saved);

    // Refusals, each by what is wrong.
    let code = |res: reqwest::Response| async move {
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        (status, body["error"]["code"].as_str().unwrap().to_owned())
    };
    let (status, c) = code(get("data/no/such", WRITE, None).await.unwrap()).await;
    assert_eq!((status, c.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let (status, c) = code(get("data/../../etc/passwd", WRITE, None).await.unwrap()).await;
    assert_eq!(
        (status, c.as_str()),
        (StatusCode::NOT_FOUND, "not_found"),
        "in no backup"
    );
    let (status, _) = code(get(&path, READ, None).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "data needs a write token");
    let res = server
        .req(
            reqwest::Method::GET,
            "/v1/backups/bkp_01M8T52VMXMY14VNSVSVDYVFX4/files?path=data",
            WRITE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_logs_in_checks_csrf_and_keeps_to_scopes() {
    let server = Server::start(None, 1 << 30).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", server.base);
    let res = http.get(url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
    let login = |token: &'static str| {
        let http = http.clone();
        let at = url("/login");
        async move {
            let res = http
                .post(at)
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            let status = res.status();
            let cookie = res
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, cookie)
        }
    };
    let (status, cookie) = login("cairn_wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());
    let (status, cookie) = login(ADMIN).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = |path: &str, session: &str| http.get(url(path)).header("cookie", session).send();
    let res = page("/", &session).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"));
    let body = res.text().await.unwrap();
    assert!(body.contains("href=\"/targets/svc\"") && body.contains("Back up now"));
    let csrf = |body: &str| {
        let at = body.find("name=\"csrf\" value=\"").unwrap() + 19;
        body[at..at + 64].to_owned()
    };
    let token = csrf(&body);
    let post = |path: &str, session: &str, fields: Vec<(&str, String)>| {
        http.post(url(path))
            .header("cookie", session)
            .form(&fields)
            .send()
    };
    // A post without the CSRF token, or with a wrong one, changes nothing.
    for fields in [vec![], vec![("csrf", "0".repeat(64))]] {
        let res = post("/targets/svc/backup", &session, fields).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.text().await.unwrap().contains("CSRF"));
    }
    assert!(
        server
            .state
            .vault
            .jobs(None, &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
    let res = post(
        "/targets/svc/backup",
        &session,
        vec![("csrf", token.clone())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let job = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(job.starts_with("/jobs/job_"), "{job}");
    // Refused forms say why and change nothing: a restore whose
    // confirmation does not name the target, a policy that is not one.
    let done = server
        .finish(&json!({"links": {"self": format!("/v1{job}")}}))
        .await;
    let backup = done["result"]["backup_id"].as_str().unwrap().to_owned();
    let res = post(
        &format!("/backups/{backup}/restore"),
        &session,
        vec![("csrf", token.clone()), ("confirm", "other".to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("name, svc, to confirm the restore")
    );
    let restores = server.state.vault.jobs(None, &[], 10).await.unwrap();
    assert!(restores.iter().all(|j| j.kind != cairn::JobKind::Restore));
    let res = post(
        "/targets/svc/retention",
        &session,
        vec![
            ("csrf", token.clone()),
            ("policy", "{\"keep_last\": -1}".to_owned()),
            ("action", "save".to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("retention:"));

    // The cookie reads the API; it changes nothing there.
    let res = page("/v1/backups", &session).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .post(url("/v1/targets/svc/backups"))
        .header("cookie", &session)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A read session: no controls, and its posts are refused.
    let (_, reader) = login(READ).await;
    let reader = reader.unwrap().split(';').next().unwrap().to_owned();
    let body = page("/", &reader).await.unwrap().text().await.unwrap();
    assert!(!body.contains("Back up now"));
    let res = post("/targets/svc/backup", &reader, vec![("csrf", csrf(&body))])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("lacks the scope"));

    // Logged out: the session is gone.
    let res = post("/logout", &session, vec![("csrf", token)])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = page("/", &session).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    server.stop().await;
}
