//! Transient faults are retried with backoff and permanent ones are not,
//! against a real S3 server (s3s-fs, in-process) that injects failures; every
//! error names its operation and key. Also: bad URLs and options.

use bytes::Bytes;
use cairn_storage::{ErrorKind, Op, Store, StoreOptions};
use cairn_testkit::storage::{S3sServer, s3_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_5xx_is_retried_until_it_passes() {
    let server = S3sServer::start("bucket").await;
    let store = Store::open("s3://bucket", &server.options()).unwrap();
    server.faults.fail_next(2, 503);
    let before = server.faults.requests();
    store
        .put("a/b", Bytes::from_static(b"x"))
        .await
        .expect("retried");
    assert_eq!(
        server.faults.requests() - before,
        3,
        "two failures, then success"
    );
    server.faults.fail_next(1, 500);
    assert_eq!(store.get_small("a/b", 10).await.unwrap(), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_that_persist_are_reported_as_transient() {
    let server = S3sServer::start("bucket").await;
    let store = Store::open("s3://bucket", &server.options()).unwrap();
    server.faults.fail_next(100, 503);
    let before = server.faults.requests();
    let err = store
        .put("k/x", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    // The test retry policy allows 3 retries: 4 attempts in all.
    assert_eq!(server.faults.requests() - before, 4);
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.is_transient());
    assert_eq!((err.op(), err.key()), (Op::Put, "k/x"));
    assert!(err.to_string().starts_with("put k/x: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_faults_fail_at_once() {
    let server = S3sServer::start("bucket").await;
    let store = Store::open("s3://bucket", &server.options()).unwrap();
    server.faults.fail_next(1, 403);
    let before = server.faults.requests();
    let err = store.get_small("some/key", 10).await.unwrap_err();
    assert_eq!(server.faults.requests() - before, 1, "a 403 is not retried");
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_denied_not_retried() {
    let server = S3sServer::start("bucket").await;
    let opts = s3_options(&server.endpoint, server.key, "not-the-secret");
    let store = Store::open("s3://bucket", &opts).unwrap();
    let before = server.faults.requests();
    let err = store.put("x", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert_eq!(server.faults.requests() - before, 1);
    // Unsigned presigned-style access is refused too.
    let good = Store::open("s3://bucket", &server.options()).unwrap();
    good.put("x", Bytes::from_static(b"x")).await.unwrap();
    let (status, _) =
        cairn_testkit::storage::http_get(&format!("{}/bucket/x", server.endpoint)).await;
    assert_eq!(status, 403, "anonymous GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_transient() {
    // Bind and drop a listener: nothing answers on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = s3_options(&format!("http://127.0.0.1:{port}"), "k", "s");
    let store = Store::open("s3://bucket", &opts).unwrap();
    let err = store.head("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert_eq!(err.op(), Op::Head);
}

#[test]
fn bad_urls_and_options() {
    let opts = StoreOptions::default();
    for (url, needle) in [
        ("ftp://host/x", "unknown scheme"),
        ("s3://", "s3://BUCKET"),
        ("az://", "az://CONTAINER"),
        ("file://relative/path", "absolute path"),
    ] {
        let err = Store::open(url, &opts).unwrap_err();
        assert_eq!(
            (err.op(), err.kind()),
            (Op::Open, ErrorKind::Config),
            "{url}"
        );
        assert!(err.to_string().contains(needle), "{url}: {err}");
    }
    let small = StoreOptions {
        part_size: Some(1 << 20),
        ..StoreOptions::default()
    };
    let err = Store::open("memory://", &small).unwrap_err();
    assert!(err.to_string().contains("5 MiB"), "{err}");
    // Credentials in a URL never reach an error message.
    let err = Store::open("ftp://user:secret@host/x", &opts).unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
    // Secrets are redacted from Debug output.
    let with_secret = s3_options("http://127.0.0.1:1", "key", "hunter2");
    assert!(!format!("{with_secret:?}").contains("hunter2"));
}
