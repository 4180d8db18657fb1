//! Storage test support: emulator endpoints, buckets and containers made per
//! test, an in-process S3 server that checks signatures (with fault
//! injection), and plain HTTP fetches for signed URLs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_storage::{Retry, StoreOptions};
use object_store::ClientOptions;
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The endpoint of an emulator started by `scripts/emulators.sh`, read from
/// `var` (see `scripts/emulators.sh env`). When it is not set: with
/// `CI=true`, panics (a CI run must not skip); otherwise prints one loud line
/// and returns `None` so the test can return early.
pub fn emulator_endpoint(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "{what} is required under CI=true but {var} is not set (run scripts/emulators.sh start)"
            )
        }
        _ => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "SKIPPED: {what} is not running ({var} unset); start it with scripts/emulators.sh start"
                );
            }
            None
        }
    }
}

/// A bucket or container name no other test uses: lowercase letters, digits
/// and hyphens, 3 to 63 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Retries short enough for tests: a dead server fails in about a second.
pub fn test_retry() -> Retry {
    Retry {
        max_retries: 3,
        timeout: Duration::from_secs(10),
        init_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    }
}

/// Options for an S3-compatible server on loopback.
pub fn s3_options(endpoint: &str, key: &str, secret: &str) -> StoreOptions {
    StoreOptions {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some(key.to_owned()),
        secret_access_key: Some(secret.to_owned()),
        allow_http: true,
        retry: test_retry(),
        ..StoreOptions::default()
    }
}

/// Options for Azurite at `account_url` (`http://127.0.0.1:10000/devstoreaccount1`).
pub fn azure_options(account_url: &str) -> StoreOptions {
    StoreOptions {
        endpoint: Some(account_url.to_owned()),
        azure_account: Some(AZURITE_ACCOUNT.to_owned()),
        azure_access_key: Some(AZURITE_KEY.to_owned()),
        allow_http: true,
        retry: test_retry(),
        ..StoreOptions::default()
    }
}

fn http_client() -> HttpClient {
    ReqwestConnector::default()
        .connect(&ClientOptions::new().with_allow_http(true))
        .expect("an HTTP client")
}

/// Creates a bucket with a SigV4-signed `PUT /bucket`; returns its name.
pub async fn create_s3_bucket(endpoint: &str, key: &str, secret: &str) -> String {
    use object_store::aws::{AwsAuthorizer, AwsCredential};
    let bucket = unique_name("cairn");
    let cred = AwsCredential {
        key_id: key.to_owned(),
        secret_key: secret.to_owned(),
        token: None,
    };
    let mut req = http::Request::builder()
        .method("PUT")
        .uri(format!("{endpoint}/{bucket}"))
        .body(HttpRequestBody::empty())
        .expect("a request");
    AwsAuthorizer::new(&cred, "s3", "us-east-1")
        .try_authorize(&mut req, None)
        .expect("signing");
    let resp = http_client().execute(req).await.expect("create bucket");
    assert!(
        resp.status().is_success(),
        "creating bucket {bucket}: {}",
        resp.status()
    );
    bucket
}

/// Creates an Azure container with a SharedKey-signed request; returns its name.
pub async fn create_azure_container(account_url: &str) -> String {
    use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
    let container = unique_name("cairn");
    let cred = AzureCredential::AccessKey(AzureAccessKey::try_new(AZURITE_KEY).expect("key"));
    let mut req = http::Request::builder()
        .method("PUT")
        .uri(format!("{account_url}/{container}?restype=container"))
        .header("content-length", "0")
        .body(HttpRequestBody::empty())
        .expect("a request");
    AzureAuthorizer::new(&cred, AZURITE_ACCOUNT)
        .try_authorize(&mut req)
        .expect("signing");
    let resp = http_client().execute(req).await.expect("create container");
    assert!(
        resp.status().is_success(),
        "creating container {container}: {}",
        resp.status()
    );
    container
}

/// A plain unauthenticated GET, as a browser or `curl` would fetch a signed
/// URL: the status and the body.
pub async fn http_get(url: &str) -> (u16, Bytes) {
    let req = http::Request::builder()
        .method("GET")
        .uri(url)
        .body(HttpRequestBody::empty())
        .expect("a request");
    let resp = http_client().execute(req).await.expect("GET");
    let status = resp.status().as_u16();
    let body = resp.into_body().bytes().await.expect("body");
    (status, body)
}

/// Faults the in-process S3 server injects: the next `fail_next` requests
/// get `status` instead of an answer.
#[derive(Debug, Default)]
pub struct Faults {
    fail_next: AtomicUsize,
    status: AtomicUsize,
    requests: AtomicUsize,
}

impl Faults {
    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.status.store(usize::from(status), Ordering::SeqCst);
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Requests received so far (answered or failed).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// An S3 server (s3s-fs) in this process, on an ephemeral loopback port, that
/// checks SigV4 signatures and presigned-URL expiry like AWS does.
#[derive(Debug)]
pub struct S3sServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The access key it accepts.
    pub key: &'static str,
    /// The secret it accepts.
    pub secret: &'static str,
    /// Fault injection and request counting.
    pub faults: Arc<Faults>,
    _root: tempfile::TempDir,
}

impl S3sServer {
    /// Starts a server with one bucket, `bucket`, on the current runtime.
    pub async fn start(bucket: &str) -> Self {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let key = "cairn-test-key";
        let secret = "cairn-test-secret";
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join(bucket)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap_or_else(|e| panic!("s3s-fs: {e:?}"));
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let faults = Arc::new(Faults::default());
        let shared = Arc::clone(&faults);
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let service = service.clone();
                let faults = Arc::clone(&shared);
                tokio::spawn(async move {
                    let handler = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let service = service.clone();
                            let faults = Arc::clone(&faults);
                            async move {
                                faults.requests.fetch_add(1, Ordering::SeqCst);
                                let failing = faults
                                    .fail_next
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok();
                                if failing {
                                    let status =
                                        u16::try_from(faults.status.load(Ordering::SeqCst))
                                            .unwrap_or(503);
                                    let body = format!(
                                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InjectedFault</Code><Message>status {status}</Message></Error>"
                                    );
                                    let resp = http::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/xml")
                                        .body(s3s::Body::from(body))
                                        .expect("a response");
                                    return Ok::<_, s3s::HttpError>(resp);
                                }
                                service.call(req.map(s3s::Body::from)).await
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), handler)
                        .await;
                });
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            key,
            secret,
            faults,
            _root: root,
        }
    }

    /// Store options for this server with the right credentials.
    pub fn options(&self) -> StoreOptions {
        s3_options(&self.endpoint, self.key, self.secret)
    }
}
