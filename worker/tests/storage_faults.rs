//! Failures against the in-process S3 server: the server stopped mid-transfer, failing part
//! uploads, refused credentials, missing buckets and inputs; each classified for retries.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use support::{
    assert_permanent, assert_transient, read_tree, within, write_tree, S3Fixture, BUCKET,
};
use swath_storage::{stage_from, upload_dir_to, S3Store, StorageError, Store};

const MIB: usize = 1024 * 1024;

fn multipart_store(s3: &S3Fixture, prefix: &str, part_concurrency: usize) -> S3Store {
    let mut settings = s3.server.settings();
    settings.multipart_threshold = 5 * MIB as u64;
    settings.part_size = 5 * MIB as u64;
    settings.part_concurrency = part_concurrency;
    S3Store::new(BUCKET, prefix, settings).unwrap()
}

/// The names of the files the server keeps for multipart uploads in progress.
fn pending_upload_files(s3: &S3Fixture) -> Vec<String> {
    std::fs::read_dir(s3.server.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_staging_leaves_only_complete_files_and_is_transient() {
    let s3 = S3Fixture::start().await;
    let mut tree = BTreeMap::new();
    for i in 0..12u64 {
        tree.insert(format!("tiles/t{i:02}.bin"), support::bytes(i, 256 * 1024));
    }
    for (path, content) in &tree {
        s3.put(&format!("in/{path}"), content).await;
    }
    // The fifth download sends half of its bytes, then the server goes away.
    let tripped = s3.server.faults().stall_get_object(4);
    let dest = s3.local_dir("inputs");
    let store: Arc<dyn Store> = Arc::new(s3.store("in"));
    let staging = tokio::spawn({
        let dest = dest.clone();
        async move { stage_from(store, &dest, 3, true).await }
    });
    within(60, "the stalled download", tripped).await.unwrap();
    s3.server.stop().await;

    let error = within(60, "the end of staging", staging)
        .await
        .unwrap()
        .unwrap_err();
    assert_transient(&error, "s3://data/in");
    let staged = read_tree(&dest);
    assert!(
        staged.len() < tree.len(),
        "every object staged: {:?}",
        staged.keys()
    );
    for (path, content) in &staged {
        // Every file under a final name is complete; no temporary file is left either.
        assert_eq!(
            tree.get(path),
            Some(content),
            "{path} is not a complete object"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_upload_reports_nothing_and_leaves_no_object() {
    let s3 = S3Fixture::start().await;
    let src = s3.local_dir("outputs");
    let mut tree = BTreeMap::new();
    tree.insert("big.tif".to_owned(), support::bytes(9, 20 * MIB));
    write_tree(&src, &tree);
    // The second part never gets an answer; then the server goes away.
    let tripped = s3.server.faults().stall_upload_part(1);
    let store: Arc<dyn Store> = Arc::new(multipart_store(&s3, "out", 1));
    let uploading = tokio::spawn({
        let src = src.clone();
        async move { upload_dir_to(&src, store, 2).await }
    });
    within(60, "the stalled part", tripped).await.unwrap();
    s3.server.stop().await;

    let error = within(60, "the end of the upload", uploading)
        .await
        .unwrap()
        .unwrap_err();
    assert_transient(&error, "s3://data/out/big.tif");
    assert!(!s3.server.object_path(BUCKET, "out/big.tif").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_parts_abort_the_multipart_upload() {
    let s3 = S3Fixture::start().await;
    let src = s3.local_dir("outputs");
    let mut tree = BTreeMap::new();
    tree.insert("big.tif".to_owned(), support::bytes(5, 26 * MIB));
    tree.insert("small.json".to_owned(), b"{}".to_vec());
    write_tree(&src, &tree);
    // Two parts are stored, every later one answers 503 (retries included).
    s3.server.faults().fail_upload_part(2);
    let store = Arc::new(multipart_store(&s3, "out", 2));

    let error = within(
        120,
        "the failed upload",
        upload_dir_to(&src, store.clone(), 2),
    )
    .await
    .unwrap_err();
    assert_transient(&error, "s3://data/out/big.tif");
    assert!(
        matches!(error, StorageError::Unavailable { .. }),
        "{error:?}"
    );
    // The upload was aborted: no object, no stored part, no upload in progress.
    assert!(!s3.server.object_path(BUCKET, "out/big.tif").exists());
    assert_eq!(pending_upload_files(&s3), Vec::<String>::new());
    let head = store
        .client()
        .head_object()
        .bucket(BUCKET)
        .key("out/big.tif")
        .send()
        .await;
    assert!(head.is_err(), "the aborted object exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_missing_buckets_are_permanent() {
    let s3 = S3Fixture::start().await;
    s3.put("in/a.bin", b"abc").await;
    let dest = s3.local_dir("inputs");

    let mut settings = s3.server.settings();
    settings.secret_access_key = "not-the-secret".to_owned();
    let store: Arc<dyn Store> = Arc::new(S3Store::new(BUCKET, "in", settings).unwrap());
    let error = stage_from(store, &dest, 2, true).await.unwrap_err();
    assert!(
        matches!(error, StorageError::AccessDenied { .. }),
        "{error:?}"
    );
    assert_permanent(&error, "s3://data/in");

    let store: Arc<dyn Store> = Arc::new(s3.server.store("no-such-bucket", "in").unwrap());
    let error = stage_from(store, &dest, 2, false).await.unwrap_err();
    assert!(matches!(error, StorageError::NotFound { .. }), "{error:?}");
    assert_permanent(&error, "s3://no-such-bucket/in");
    assert!(read_tree(&dest).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_storage_is_transient() {
    let s3 = S3Fixture::start().await;
    let store: Arc<dyn Store> = Arc::new(s3.store("in"));
    s3.server.stop().await;
    let error = stage_from(store, &s3.local_dir("inputs"), 2, true)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::Unavailable { .. }),
        "{error:?}"
    );
    assert_transient(&error, "s3://data/in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_input_fails_and_a_missing_optional_one_does_not() {
    let s3 = S3Fixture::start().await;
    // A folder that only has its marker holds no input.
    s3.put("aux/ECMWF/", b"").await;
    let dest = s3.local_dir("inputs");

    let store: Arc<dyn Store> = Arc::new(s3.store("aux/ECMWF"));
    let error = stage_from(store.clone(), &dest, 2, true).await.unwrap_err();
    assert!(
        matches!(error, StorageError::MissingInput { .. }),
        "{error:?}"
    );
    assert_permanent(&error, "s3://data/aux/ECMWF");

    let report = stage_from(store, &dest, 2, false).await.unwrap();
    assert_eq!((report.objects, report.bytes), (0, 0));
    assert!(read_tree(&dest).is_empty());
}
