//! Atomic uploads per product: an attempt killed or failing during its upload leaves nothing at a
//! product's final path (or the previous complete product), and the next attempt of the job
//! deletes its staging leftovers and commits a product holding exactly its own files. With the
//! `file://` store and the in-process S3 server (faults injected).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use support::{read_tree, within, S3Fixture, BUCKET};
use swath_domain::template::TaskOutput;
use swath_storage::{FileStore, S3Store, Store};
use swath_worker::products::{find_products, upload_products_to, FoundProduct};
use uuid::Uuid;

const MIB: usize = 1024 * 1024;
const PRODUCT: &str = "FSC_20210413T101347_S2A_T34VEM_V100_1";

/// A work directory holding one `fsc` product with `files` (and its metadata file).
fn work_with(dir: &Path, name: &str, files: &BTreeMap<String, Vec<u8>>) -> PathBuf {
    let work = dir.join(name);
    let product = work.join("outputs/fsc").join(PRODUCT);
    std::fs::create_dir_all(&product).unwrap();
    std::fs::write(product.join("dias_catalog_submit.json"), "{}").unwrap();
    for (key, content) in files {
        let path = product.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    work
}

fn files(version: u64, names: &[&str]) -> BTreeMap<String, Vec<u8>> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.to_string(),
                support::bytes(version * 100 + i as u64, 1000),
            )
        })
        .collect()
}

fn kinds(prefix: &str) -> Vec<TaskOutput> {
    vec![TaskOutput {
        kind: "fsc".into(),
        destination_prefix: prefix.into(),
    }]
}

fn stores(prefix: &str, store: Arc<dyn Store>) -> BTreeMap<String, Arc<dyn Store>> {
    BTreeMap::from([(prefix.to_owned(), store)])
}

/// Publishes the product of `work` as attempt `attempt` of job `uid`.
async fn publish(
    work: &Path,
    prefix: &str,
    store: Arc<dyn Store>,
    uid: Uuid,
    attempt: i32,
) -> Result<(), swath_domain::attempt::AttemptFailure> {
    let kinds = kinds(prefix);
    let found = find_products(work, &kinds)?;
    upload(&found, prefix, store, uid, attempt).await
}

async fn upload(
    found: &[FoundProduct],
    prefix: &str,
    store: Arc<dyn Store>,
    uid: Uuid,
    attempt: i32,
) -> Result<(), swath_domain::attempt::AttemptFailure> {
    let products = upload_products_to(
        found,
        &kinds(prefix),
        &stores(prefix, store),
        uid,
        attempt,
        1,
    )
    .await?;
    assert_eq!(products.len(), 1);
    Ok(())
}

/// The objects (key, bytes) under `prefix` of `store`, read back through the store.
async fn objects(store: &dyn Store, prefix: &str, scratch: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    for object in store.list(prefix).await.unwrap() {
        let dest = scratch.join(Uuid::new_v4().to_string());
        store.download(&object, &dest).await.unwrap();
        found.insert(
            object.key[prefix.len()..].to_owned(),
            std::fs::read(&dest).unwrap(),
        );
    }
    found
}

/// Replaces a checked file of `work`'s product with a link: its upload then fails, after the
/// files before it (in key order) were uploaded.
fn swap_for_a_link(work: &Path, key: &str) {
    let path = work.join("outputs/fsc").join(PRODUCT).join(key);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
}

#[tokio::test]
async fn file_store_a_failed_upload_publishes_nothing_and_the_next_attempt_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let prefix = format!("file://{}/FSC", root.display());
    let store: Arc<dyn Store> = Arc::new(FileStore::new(root.join("FSC")));
    let uid = Uuid::new_v4();

    // Attempt 1 uploads a.tif and b.tif, then fails on z.tif.
    let v1 = files(1, &["a.tif", "b.tif", "z.tif"]);
    let work = work_with(dir.path(), "w1", &v1);
    let found = find_products(&work, &kinds(&prefix)).unwrap();
    swap_for_a_link(&work, "z.tif");
    let error = upload(&found, &prefix, store.clone(), uid, 1)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("z.tif"), "{error}");
    let stored = read_tree(&root);
    assert!(
        stored.keys().all(|k| k.starts_with("FSC/.swath-staging/")),
        "something beside the staging: {:?}",
        stored.keys()
    );
    assert!(!stored.is_empty(), "the failure came after some uploads");
    assert!(!root.join("FSC").join(PRODUCT).exists());

    // Attempt 2 cleans the leftovers and commits its product.
    let v2 = files(2, &["a.tif", "c.tif"]);
    publish(
        &work_with(dir.path(), "w2", &v2),
        &prefix,
        store.clone(),
        uid,
        2,
    )
    .await
    .unwrap();
    let expected: BTreeMap<_, _> = v2
        .iter()
        .map(|(k, v)| (format!("FSC/{PRODUCT}/{k}"), v.clone()))
        .collect();
    assert_eq!(read_tree(&root), expected);

    // Attempt 3 fails midway: the product of attempt 2 stays whole.
    let v3 = files(3, &["a.tif", "b.tif", "z.tif"]);
    let work = work_with(dir.path(), "w3", &v3);
    let found = find_products(&work, &kinds(&prefix)).unwrap();
    swap_for_a_link(&work, "z.tif");
    upload(&found, &prefix, store.clone(), uid, 3)
        .await
        .unwrap_err();
    let committed: BTreeMap<_, _> = read_tree(&root)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("FSC/.swath-staging/"))
        .collect();
    assert_eq!(committed, expected);

    // Attempt 4 replaces it with exactly its own files.
    let v4 = files(4, &["b.tif", "sub/d.tif"]);
    publish(&work_with(dir.path(), "w4", &v4), &prefix, store, uid, 4)
        .await
        .unwrap();
    let expected: BTreeMap<_, _> = v4
        .iter()
        .map(|(k, v)| (format!("FSC/{PRODUCT}/{k}"), v.clone()))
        .collect();
    assert_eq!(read_tree(&root), expected);
}

fn multipart_store(s3: &S3Fixture, prefix: &str) -> S3Store {
    let mut settings = s3.server.settings();
    settings.multipart_threshold = 5 * MIB as u64;
    settings.part_size = 5 * MIB as u64;
    settings.part_concurrency = 1;
    S3Store::new(BUCKET, prefix, settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_an_upload_killed_midway_publishes_nothing_and_the_next_attempt_cleans_up() {
    let s3 = S3Fixture::start().await;
    let prefix = format!("s3://{BUCKET}/out/FSC");
    let store: Arc<dyn Store> = Arc::new(multipart_store(&s3, "out/FSC"));
    let scratch = s3.local_dir("scratch");
    let uid = Uuid::new_v4();
    let final_prefix = format!("{PRODUCT}/");

    // Attempt 1 of the job: a small file uploaded, then the big one's second part never answers
    // and the attempt is killed.
    let mut v1 = files(1, &["a.tif"]);
    v1.insert("big.tif".into(), support::bytes(7, 12 * MIB));
    let work = work_with(s3.dir.path(), "w1", &v1);
    let stalled = s3.server.faults().stall_upload_part(1);
    let attempt = tokio::spawn({
        let (prefix, store) = (prefix.clone(), store.clone());
        async move { publish(&work, &prefix, store, uid, 1).await }
    });
    within(60, "the stalled part", stalled).await.unwrap();
    attempt.abort();
    assert!(attempt.await.unwrap_err().is_cancelled());
    assert!(
        store.list(&final_prefix).await.unwrap().is_empty(),
        "a product was published"
    );
    let staged = store.list(".swath-staging/").await.unwrap();
    let staged: BTreeSet<_> = staged.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        staged,
        BTreeSet::from([format!(
            ".swath-staging/{}/1-0/a.tif",
            &uid.simple().to_string()[..16]
        )
        .as_str()])
    );

    // Attempt 2 deletes the leftovers and commits its product whole.
    let v2 = files(2, &["a.tif", "b.tif"]);
    publish(
        &work_with(s3.dir.path(), "w2", &v2),
        &prefix,
        store.clone(),
        uid,
        2,
    )
    .await
    .unwrap();
    assert_eq!(objects(&*store, &final_prefix, &scratch).await, v2);
    assert!(store.list(".swath-staging/").await.unwrap().is_empty());

    // Attempt 3 is killed midway: attempt 2's product stays whole.
    let mut v3 = files(3, &["a.tif"]);
    v3.insert("big.tif".into(), support::bytes(8, 12 * MIB));
    let work = work_with(s3.dir.path(), "w3", &v3);
    let stalled = s3.server.faults().stall_upload_part(1);
    let attempt = tokio::spawn({
        let (prefix, store) = (prefix.clone(), store.clone());
        async move { publish(&work, &prefix, store, uid, 3).await }
    });
    within(60, "the stalled part", stalled).await.unwrap();
    attempt.abort();
    assert!(attempt.await.unwrap_err().is_cancelled());
    assert_eq!(objects(&*store, &final_prefix, &scratch).await, v2);

    // Attempt 4 replaces it with exactly its own files, and leaves no staging.
    let mut v4 = files(4, &["c.tif"]);
    v4.insert("big.tif".into(), support::bytes(9, 12 * MIB));
    publish(
        &work_with(s3.dir.path(), "w4", &v4),
        &prefix,
        store.clone(),
        uid,
        4,
    )
    .await
    .unwrap();
    assert_eq!(objects(&*store, &final_prefix, &scratch).await, v4);
    assert!(store.list(".swath-staging/").await.unwrap().is_empty());
}
