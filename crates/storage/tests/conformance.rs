//! The conformance suite of `cairn-testkit` against every backend: memory, a
//! local directory, moto (S3), s3s-fs in-process (S3 with signature checks)
//! and Azurite (Azure Blob). The emulators come from `scripts/emulators.sh`;
//! without them these tests skip loudly, and fail under `CI=true`.

use cairn_storage::{Store, StoreOptions};
use cairn_testkit::conformance::{Caps, run};
use cairn_testkit::storage::{
    S3sServer, azure_options, create_azure_container, create_s3_bucket, emulator_endpoint,
    s3_options,
};

const LOCAL: Caps = Caps {
    presigns: false,
    checks_signatures: false,
    atomic_create: true,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let store = Store::open("memory://", &StoreOptions::default()).unwrap();
    // Two handles on one in-memory store, as two tasks of one process see it.
    run(&store, &store.clone(), LOCAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("store");
    let url = url.to_str().unwrap();
    let store = Store::open(url, &StoreOptions::default()).unwrap();
    let twin = Store::open(&format!("file://{url}"), &StoreOptions::default()).unwrap();
    run(&store, &twin, LOCAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moto() {
    let Some(endpoint) = emulator_endpoint("CAIRN_TEST_S3_ENDPOINT", "the S3 emulator (moto)")
    else {
        return;
    };
    let bucket = create_s3_bucket(&endpoint, "moto", "moto").await;
    let opts = s3_options(&endpoint, "moto", "moto");
    let url = format!("s3://{bucket}/some/prefix");
    let store = Store::open(&url, &opts).unwrap();
    let twin = Store::open(&url, &opts).unwrap();
    // moto checks no signatures: the signature tests run against s3s-fs.
    let caps = Caps {
        presigns: true,
        checks_signatures: false,
        atomic_create: true,
    };
    run(&store, &twin, caps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_s3s_in_process() {
    let server = S3sServer::start("bucket").await;
    let opts = server.options();
    let store = Store::open("s3://bucket/p", &opts).unwrap();
    let twin = Store::open("s3://bucket/p", &opts).unwrap();
    // s3s-fs checks put-if-absent then writes, so racing writers can both
    // succeed: the lease race runs against moto, Azurite and the local stores.
    let caps = Caps {
        presigns: true,
        checks_signatures: true,
        atomic_create: false,
    };
    run(&store, &twin, caps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_azurite() {
    let Some(account_url) =
        emulator_endpoint("CAIRN_TEST_AZURE_ENDPOINT", "the Azure emulator (Azurite)")
    else {
        return;
    };
    let container = create_azure_container(&account_url).await;
    let opts = azure_options(&account_url);
    let url = format!("az://{container}/some/prefix");
    let store = Store::open(&url, &opts).unwrap();
    let twin = Store::open(&url, &opts).unwrap();
    let caps = Caps {
        presigns: true,
        checks_signatures: true,
        atomic_create: true,
    };
    run(&store, &twin, caps).await;
}
