//! Opening a store from a URL and typed options.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{Error, ErrorKind, Op};
use crate::store::Store;

/// Which kind of backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A directory on a local filesystem.
    Local,
    /// Process memory (tests, dry runs).
    Memory,
    /// Amazon S3 or a compatible server.
    S3,
    /// Azure Blob Storage (or Azurite).
    Azure,
}

/// How transient faults are retried: exponential backoff from `init_backoff`
/// up to `max_backoff`, at most `max_retries` times and never past `timeout`
/// after the first attempt. Only faults that may pass are retried: 5xx and 429
/// answers, timeouts, connection failures; a 4xx answer is final at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: usize,
    /// Give up this long after the first attempt.
    pub timeout: Duration,
    /// The first pause.
    pub init_backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_retries: 8,
            timeout: Duration::from_secs(120),
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl Retry {
    fn config(self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: self.init_backoff,
                max_backoff: self.max_backoff,
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.timeout,
        }
    }
}

/// Options of a store, beyond its URL. Anything left `None` falls back to the
/// usual environment variables of the backend (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, … for S3;
/// `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, … for Azure), and
/// then to the backend's defaults.
#[derive(Clone, Default)]
pub struct StoreOptions {
    /// The server's base URL (an S3-compatible server; an Azure account URL
    /// such as `http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: Option<String>,
    /// The S3 region.
    pub region: Option<String>,
    /// The S3 access key id.
    pub access_key_id: Option<String>,
    /// The S3 secret access key.
    pub secret_access_key: Option<String>,
    /// The S3 session token.
    pub session_token: Option<String>,
    /// The Azure storage account.
    pub azure_account: Option<String>,
    /// The Azure storage account key.
    pub azure_access_key: Option<String>,
    /// Use Azurite's well-known account and key (at `AZURITE_BLOB_STORAGE_URL`,
    /// default `http://127.0.0.1:10000`).
    pub azure_use_emulator: bool,
    /// Allow plain `http://` endpoints (emulators on loopback).
    pub allow_http: bool,
    /// Retrying of transient faults.
    pub retry: Retry,
    /// Timeout of one request (default 30 s).
    pub request_timeout: Option<Duration>,
    /// Timeout of connecting (default 5 s).
    pub connect_timeout: Option<Duration>,
    /// Size of each multipart upload part (default 8 MiB; S3 needs ≥ 5 MiB).
    pub part_size: Option<usize>,
    /// Parts uploaded at once (default 3). Upload memory is about
    /// `part_size × (upload_concurrency + 1)`.
    pub upload_concurrency: Option<usize>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("StoreOptions")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &secret(&self.secret_access_key))
            .field("session_token", &secret(&self.session_token))
            .field("azure_account", &self.azure_account)
            .field("azure_access_key", &secret(&self.azure_access_key))
            .field("azure_use_emulator", &self.azure_use_emulator)
            .field("allow_http", &self.allow_http)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .finish()
    }
}

/// The default multipart part size.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// The default number of parts in flight.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 3;

/// Whether a boolean environment variable is set to true.
fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

impl StoreOptions {
    /// The HTTP client options; `allow_http` also honours the backend's
    /// environment variable (`AWS_ALLOW_HTTP`, `AZURE_ALLOW_HTTP`), which the
    /// client options given here would otherwise replace.
    fn client(&self, allow_http_var: &str) -> ClientOptions {
        ClientOptions::new()
            .with_allow_http(self.allow_http || env_flag(allow_http_var))
            .with_timeout(self.request_timeout.unwrap_or(Duration::from_secs(30)))
            .with_connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(5)))
    }
}

impl Store {
    /// Opens the store at `url`:
    ///
    /// - a plain path or `file:///abs/path`: a local directory (created if missing);
    /// - `memory://`: process memory;
    /// - `s3://bucket/prefix`: S3 or a compatible server;
    /// - `az://container/prefix` (or `azure://`): Azure Blob Storage.
    ///
    /// Opening does not contact the server; the first operation does.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a URL of an unknown scheme, without a bucket or container,
    /// with credentials or options the backend refuses, or for a local path that cannot be
    /// created.
    pub fn open(url: &str, options: &StoreOptions) -> Result<Self, Error> {
        let config_error = |msg: String| Error::new(Op::Open, redact(url), ErrorKind::Config, msg);
        let part_size = options.part_size.unwrap_or(DEFAULT_PART_SIZE);
        if part_size < MIN_PART_SIZE {
            return Err(config_error(format!(
                "part_size {part_size} is below the 5 MiB S3 minimum"
            )));
        }
        let concurrency = options
            .upload_concurrency
            .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY)
            .max(1);
        let mut local_dir = None;
        let mut local_fs = None;
        let (backend, inner, signer, root): Opened = if let Some(rest) =
            url.strip_prefix("memory://")
        {
            (
                Backend::Memory,
                Arc::new(InMemory::new()),
                None,
                rest.to_owned(),
            )
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = split_bucket(rest)
                .ok_or_else(|| config_error("expected s3://BUCKET[/PREFIX]".to_owned()))?;
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(options.retry.config())
                .with_client_options(options.client("AWS_ALLOW_HTTP"));
            if let Some(v) = &options.endpoint {
                b = b.with_endpoint(v);
            }
            if let Some(v) = &options.region {
                b = b.with_region(v);
            }
            if let Some(v) = &options.access_key_id {
                b = b.with_access_key_id(v);
            }
            if let Some(v) = &options.secret_access_key {
                b = b.with_secret_access_key(v);
            }
            if let Some(v) = &options.session_token {
                b = b.with_token(v);
            }
            let s3 = Arc::new(
                b.build()
                    .map_err(|e| Error::store(Op::Open, redact(url), e))?,
            );
            (Backend::S3, s3.clone(), Some(s3), prefix.to_owned())
        } else if let Some(rest) = url
            .strip_prefix("az://")
            .or_else(|| url.strip_prefix("azure://"))
        {
            let (container, prefix) = split_bucket(rest)
                .ok_or_else(|| config_error("expected az://CONTAINER[/PREFIX]".to_owned()))?;
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .with_retry(options.retry.config())
                .with_client_options(options.client("AZURE_ALLOW_HTTP"));
            if options.azure_use_emulator {
                b = b.with_use_emulator(true);
            }
            if let Some(v) = &options.endpoint {
                b = b.with_endpoint(v.clone());
            }
            if let Some(v) = &options.azure_account {
                b = b.with_account(v);
            }
            if let Some(v) = &options.azure_access_key {
                b = b.with_access_key(v);
            }
            let az = Arc::new(
                b.build()
                    .map_err(|e| Error::store(Op::Open, redact(url), e))?,
            );
            (Backend::Azure, az.clone(), Some(az), prefix.to_owned())
        } else {
            let dir = match url.strip_prefix("file://") {
                Some(path) if path.starts_with('/') => path,
                Some(_) => {
                    return Err(config_error(
                        "a file:// URL needs an absolute path (file:///srv/backups)".to_owned(),
                    ));
                }
                None if url.contains("://") => {
                    return Err(config_error(
                        "unknown scheme; use a path, file://, memory://, s3:// or az://".to_owned(),
                    ));
                }
                None => url,
            };
            std::fs::create_dir_all(dir)
                .map_err(|e| config_error(format!("cannot create the store directory: {e}")))?;
            local_dir = Some(std::path::PathBuf::from(dir));
            let local = Arc::new(
                LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| Error::store(Op::Open, url, e))?
                    .with_automatic_cleanup(true),
            );
            local_fs = Some(Arc::clone(&local));
            (Backend::Local, local, None, String::new())
        };
        let root = Path::parse(root.trim_matches('/'))
            .map_err(|e| config_error(format!("invalid prefix: {e}")))?;
        let store = Self::from_parts(
            backend,
            inner,
            signer,
            root,
            redact(url),
            part_size,
            concurrency,
        );
        Ok(match (local_dir, local_fs) {
            (Some(dir), Some(fs)) => store.with_local(dir, fs),
            _ => store,
        })
    }
}

/// A backend, its store, its URL signer if it can presign, its root prefix.
type Opened = (
    Backend,
    Arc<dyn ObjectStore>,
    Option<Arc<dyn Signer>>,
    String,
);

/// `bucket/prefix` → (`bucket`, `prefix`); the bucket must not be empty.
fn split_bucket(rest: &str) -> Option<(&str, &str)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix))
}

/// The URL without any `user:password@` or query string, for messages.
fn redact(url: &str) -> String {
    let no_query = url.split('?').next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => no_query.to_owned(),
        },
        None => no_query.to_owned(),
    }
}
