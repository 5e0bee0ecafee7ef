//! The S3 store against the in-process S3 server: staging, uploading, verification, and outputs
//! read back by Debian's `aws` CLI.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use md5::{Digest, Md5};
use support::{read_tree, require_tool, write_tree, S3Fixture, BUCKET};
use swath_storage::{
    stage_from, upload_dir_to, ObjectInfo, S3Store, StorageError, Store, PARTIAL_SUFFIX,
};

const MIB: usize = 1024 * 1024;

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A product-like tree: nested folders, files of many sizes, one empty file.
fn product_tree(files: usize) -> BTreeMap<String, Vec<u8>> {
    let mut tree = BTreeMap::new();
    for i in 0..files {
        let path = format!("GRANULE/L1C_{}/IMG_DATA/B{i:02}.jp2", i % 3);
        tree.insert(path, support::bytes(i as u64, 1 + i * 997));
    }
    tree.insert("MTD_MSIL1C.xml".to_owned(), b"<metadata/>".to_vec());
    tree.insert("empty.txt".to_owned(), Vec::new());
    tree
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_every_page_of_a_prefix_skipping_markers_and_recreating_folders() {
    let s3 = S3Fixture::start().await;
    let tree = product_tree(40);
    for (path, content) in &tree {
        s3.put(&format!("in/S2A.SAFE/{path}"), content).await;
    }
    // Directory markers as consoles and other tools create them, and neighbours of the prefix.
    for marker in [
        "in/",
        "in/S2A.SAFE/",
        "in/S2A.SAFE/GRANULE/",
        "in/S2A.SAFE/AUX_DATA/",
    ] {
        s3.put(marker, b"").await;
    }
    s3.put("in/S2A.SAFE2/other.jp2", b"not this product").await;
    s3.put("in/S2A.SAF", b"nor this").await;
    // 46 keys under the prefix in pages of at most 7: the client must follow the tokens.
    s3.server.faults().limit_list_pages(7);
    let listed_before = s3.server.faults().list_requests();

    let dest = s3.local_dir("inputs");
    let store: Arc<dyn Store> = Arc::new(s3.store("in/S2A.SAFE"));
    let report = stage_from(store, &dest, 4, true).await.unwrap();

    assert!(
        s3.server.faults().list_requests() - listed_before >= 7,
        "the listing was not paged"
    );
    assert_eq!(report.objects, tree.len());
    assert_eq!(
        report.bytes,
        tree.values().map(|c| c.len() as u64).sum::<u64>()
    );
    assert_eq!(read_tree(&dest), tree);
    assert!(dest.join("GRANULE/L1C_2/IMG_DATA").is_dir());
    // A marker is no file and makes no folder.
    assert!(!dest.join("AUX_DATA").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_verified_against_size_and_checksum() {
    let s3 = S3Fixture::start().await;
    let content = support::bytes(7, 100_000);
    s3.put("in/a.bin", &content).await;
    let store = s3.store("in");
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, content.len() as u64);
    let dir = s3.local_dir("inputs");

    let wrong_size = ObjectInfo {
        size: 99_999,
        ..listed[0].clone()
    };
    let e = store
        .download(&wrong_size, &dir.join("a.bin"))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::Integrity { .. }), "{e:?}");
    assert!(e.to_string().contains("s3://data/in/a.bin"), "{e}");

    let wrong_md5 = ObjectInfo {
        checksum: Some(format!("md5:{}", md5_hex(b"other bytes"))),
        ..listed[0].clone()
    };
    let e = store
        .download(&wrong_md5, &dir.join("a.bin"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::Integrity { message, .. } if message.contains("MD5")),
        "{e:?}"
    );
    // Neither left a file behind, complete-looking or temporary.
    assert!(read_tree(&dir).is_empty(), "{:?}", read_tree(&dir).keys());

    store
        .download(&listed[0], &dir.join("a.bin"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.join("a.bin")).unwrap(), content);
}

fn multipart_store(s3: &S3Fixture, prefix: &str) -> S3Store {
    let mut settings = s3.server.settings();
    settings.multipart_threshold = 5 * MIB as u64;
    settings.part_size = 5 * MIB as u64;
    settings.part_concurrency = 3;
    S3Store::new(BUCKET, prefix, settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_a_directory_with_a_large_file_in_parallel_parts() {
    let s3 = S3Fixture::start().await;
    let src = s3.local_dir("outputs");
    let mut tree = BTreeMap::new();
    tree.insert("large.tif".to_owned(), support::bytes(1, 23 * MIB + 12_345));
    tree.insert("meta/product.json".to_owned(), b"{\"ok\":true}".to_vec());
    tree.insert(
        "meta/quicklook/ql.png".to_owned(),
        support::bytes(2, 300_000),
    );
    write_tree(&src, &tree);
    // Leftovers of an interrupted write are no output.
    std::fs::write(src.join(format!(".x.tif.123{PARTIAL_SUFFIX}")), b"half").unwrap();

    let store = Arc::new(multipart_store(&s3, "out/run-1"));
    let uploaded = upload_dir_to(&src, store.clone(), 2).await.unwrap();

    let keys: Vec<_> = uploaded.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        ["large.tif", "meta/product.json", "meta/quicklook/ql.png"]
    );
    for object in &uploaded {
        assert_eq!(
            object.size,
            tree[&object.key].len() as u64,
            "{}",
            object.key
        );
        let on_server = std::fs::read(
            s3.server
                .object_path(BUCKET, &format!("out/run-1/{}", object.key)),
        )
        .unwrap();
        assert!(
            on_server == tree[&object.key],
            "{} differs on the server",
            object.key
        );
    }
    // Single-part uploads report the store's MD5; the large one went in 5 parts.
    assert_eq!(
        uploaded[1].checksum,
        Some(format!("md5:{}", md5_hex(&tree["meta/product.json"])))
    );
    let head = store
        .client()
        .head_object()
        .bucket(BUCKET)
        .key("out/run-1/large.tif")
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().trim_matches('"').ends_with("-5"),
        "not a 5-part upload: {:?}",
        head.e_tag()
    );

    // And the outputs stage back identical.
    let back = s3.local_dir("back");
    stage_from(store, &back, 3, true).await.unwrap();
    assert_eq!(read_tree(&back), tree);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_outputs_are_read_back_by_the_aws_cli() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Clients) {
        return;
    }
    let aws = require_tool("/usr/bin/aws", "awscli");
    let s3 = S3Fixture::start().await;
    let src = s3.local_dir("outputs");
    let mut tree = BTreeMap::new();
    tree.insert("cog.tif".to_owned(), support::bytes(3, 12 * MIB + 7));
    tree.insert(
        "sub/dir/stac.json".to_owned(),
        b"{\"type\":\"Feature\"}".to_vec(),
    );
    tree.insert("small.bin".to_owned(), support::bytes(4, 4096));
    write_tree(&src, &tree);
    let store = Arc::new(multipart_store(&s3, "products/p1"));
    let uploaded = upload_dir_to(&src, store, 2).await.unwrap();
    assert_eq!(uploaded.len(), 3);

    let home = s3.local_dir("aws-home");
    let aws_cli = |args: &[&str]| {
        let mut command = tokio::process::Command::new(&aws);
        command
            .arg("--endpoint-url")
            .arg(s3.server.endpoint())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
            .env("AWS_ACCESS_KEY_ID", swath_s3_test_server::TEST_ACCESS_KEY)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                swath_s3_test_server::TEST_SECRET_KEY,
            )
            .env("AWS_DEFAULT_REGION", "us-east-1");
        command
    };

    let listing = support::within(
        120,
        "aws s3 ls",
        aws_cli(&["s3", "ls", "--recursive", "s3://data/products/p1/"]).output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.status.success(),
        "aws s3 ls: {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    for (key, content) in &tree {
        let line = stdout
            .lines()
            .find(|l| l.ends_with(&format!("products/p1/{key}")))
            .unwrap_or_else(|| panic!("{key} not listed by aws s3 ls:\n{stdout}"));
        assert!(
            line.contains(&format!(" {} ", content.len())),
            "size of {key}: {line}"
        );
    }

    let copy = s3.local_dir("aws-copy");
    let copied = support::within(
        120,
        "aws s3 cp",
        aws_cli(&[
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            "s3://data/products/p1/",
            copy.to_str().unwrap(),
        ])
        .output(),
    )
    .await
    .unwrap();
    assert!(
        copied.status.success(),
        "aws s3 cp: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert_eq!(read_tree(&copy), tree);
}
