//! The `file://` store through the public URL functions, and URLs that name no store.

mod support;

use std::collections::BTreeMap;

use support::{assert_permanent, read_tree, write_tree};
use swath_storage::{open_store, stage, upload_dir, StorageError, PARTIAL_SUFFIX};

fn file_url(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_and_uploads_directories_like_the_s3_store() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("eodata/S1A.SAFE");
    let mut tree = BTreeMap::new();
    for i in 0..25u64 {
        tree.insert(
            format!("measurement/s1a-iw{}-{i:02}.tiff", i % 3),
            support::bytes(i, 1000 + 37 * i as usize),
        );
    }
    tree.insert("manifest.safe".to_owned(), b"<xfdu/>".to_vec());
    tree.insert("empty".to_owned(), Vec::new());
    write_tree(&source, &tree);
    // An empty folder and a file being written by someone else are not inputs.
    std::fs::create_dir_all(source.join("annotation/calibration")).unwrap();
    std::fs::write(source.join(format!(".x.tiff.1{PARTIAL_SUFFIX}")), b"half").unwrap();

    let inputs = dir.path().join("work/inputs");
    let report = stage(&file_url(&source), &inputs, 4, true).await.unwrap();
    assert_eq!(report.objects, tree.len());
    assert_eq!(
        report.bytes,
        tree.values().map(|c| c.len() as u64).sum::<u64>()
    );
    assert_eq!(read_tree(&inputs), tree);

    let outputs_url = file_url(&dir.path().join("products/run-1"));
    let uploaded = upload_dir(&inputs, &outputs_url, 3).await.unwrap();
    let keys: Vec<_> = uploaded.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, tree.keys().cloned().collect::<Vec<_>>());
    assert_eq!(read_tree(&dir.path().join("products/run-1")), tree);

    // Listing through the store sees the same objects and sizes.
    let store = open_store(&outputs_url).unwrap();
    let listed = store.list("measurement/").await.unwrap();
    assert_eq!(listed.len(), 25);
    assert!(listed.iter().all(|o| o.size == tree[&o.key].len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_input_fails_and_a_missing_optional_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir.path().join("aux/absent"));
    let dest = dir.path().join("inputs");

    let error = stage(&url, &dest, 2, true).await.unwrap_err();
    assert!(
        matches!(error, StorageError::MissingInput { .. }),
        "{error:?}"
    );
    assert_permanent(&error, &url);

    let report = stage(&url, &dest, 2, false).await.unwrap();
    assert_eq!((report.objects, report.bytes), (0, 0));
    assert!(read_tree(&dest).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_that_name_no_store_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("inputs");
    for (url, reason) in [
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("ftp://x", "unsupported scheme `ftp`"),
        ("file://relative/path", "absolute path"),
        ("file:relative", "absolute path"),
        ("/abs/path/without/scheme", "not a URL"),
    ] {
        let error = stage(url, &dest, 2, true).await.unwrap_err();
        assert!(
            matches!(error, StorageError::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
        assert_permanent(&error, url);
        assert!(error.to_string().contains(reason), "{url}: {error}");

        let error = upload_dir(dir.path(), url, 2).await.unwrap_err();
        assert!(
            matches!(error, StorageError::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
    }
    assert!(!dest.exists());
}
