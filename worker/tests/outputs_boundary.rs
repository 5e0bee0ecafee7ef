//! The outputs as an attack surface: products written by a misbehaving scientific code (links,
//! special files, bad names) are refused before anything is read outside the work directory or
//! uploaded, with an error naming the path.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::read_tree;
use swath_domain::attempt::AttemptFailure;
use swath_domain::job::OutputProduct;
use swath_domain::template::TaskOutput;
use swath_worker::products::{find_products, upload_products};

/// A work directory and a `file://` output store, both in one temporary directory, and a file
/// outside the work directory that only root may read.
struct Attempt {
    dir: tempfile::TempDir,
}

const PRODUCT: &str = "FSC_20210413T101347_S2A_T34VEM_V100_1";
const SECRET: &str = "the content of a root-only file";

impl Attempt {
    /// A work directory holding one well-formed `fsc` product.
    fn new() -> Attempt {
        let dir = tempfile::tempdir().unwrap();
        let attempt = Attempt { dir };
        let product = attempt.product();
        std::fs::create_dir_all(&product).unwrap();
        std::fs::write(product.join("dias_catalog_submit.json"), r#"{"a": 1}"#).unwrap();
        std::fs::write(product.join("raster.tif"), b"raster").unwrap();
        std::fs::create_dir_all(attempt.work().join("inputs")).unwrap();
        let secret = attempt.secret();
        std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
        std::fs::write(&secret, SECRET).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).unwrap();
        attempt
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work/3f0c2a4e-uid")
    }

    fn product(&self) -> PathBuf {
        self.work().join("outputs/fsc").join(PRODUCT)
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("root-only/secret")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn kinds(&self) -> Vec<TaskOutput> {
        vec![TaskOutput {
            kind: "fsc".into(),
            destination_prefix: format!("file://{}/FSC", self.store().display()),
        }]
    }

    /// Finds and uploads the products as the worker does after a successful run.
    async fn publish(&self) -> Result<Vec<OutputProduct>, AttemptFailure> {
        let kinds = self.kinds();
        let found = find_products(&self.work(), &kinds)?;
        upload_products(&found, &kinds, uuid::Uuid::nil(), 1, 2).await
    }

    /// Asserts that publishing fails with an internal `outputs` error whose message holds every
    /// one of `words`, and that nothing reached the store.
    async fn assert_refused(&self, words: &[&str]) {
        let error = self.publish().await.unwrap_err();
        let AttemptFailure::Internal { subtype, message } = &error else {
            panic!("not an internal error: {error}");
        };
        assert_eq!(subtype, "outputs", "{error}");
        for word in words {
            assert!(message.contains(word), "`{word}` not in: {message}");
        }
        let stored = read_tree(&self.store());
        assert!(stored.is_empty(), "uploaded: {:?}", stored.keys());
    }
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[tokio::test]
async fn a_well_formed_product_is_published() {
    let attempt = Attempt::new();
    let products = attempt.publish().await.unwrap();
    assert_eq!(products.len(), 1);
    assert_eq!(products[0].size_bytes, Some(6));
    let stored = read_tree(&attempt.store());
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        vec![&format!("FSC/{PRODUCT}/raster.tif")]
    );
}

#[tokio::test]
async fn a_symlink_to_a_root_only_file_is_refused() {
    let attempt = Attempt::new();
    symlink(&attempt.secret(), &attempt.product().join("stolen.txt"));
    attempt
        .assert_refused(&[
            &format!("outputs/fsc/{PRODUCT}/stolen.txt"),
            "symbolic link",
        ])
        .await;
}

#[tokio::test]
async fn a_symlink_to_the_root_directory_is_refused() {
    let attempt = Attempt::new();
    symlink(Path::new("/"), &attempt.product().join("host"));
    attempt
        .assert_refused(&[&format!("outputs/fsc/{PRODUCT}/host"), "symbolic link"])
        .await;
}

#[tokio::test]
async fn a_symlinked_product_or_kind_directory_is_refused() {
    let attempt = Attempt::new();
    let elsewhere = attempt.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("dias_catalog_submit.json"), "{}").unwrap();
    std::fs::write(elsewhere.join("x.tif"), "outside").unwrap();
    symlink(&elsewhere, &attempt.product().with_file_name("FSC_LINKED"));
    attempt
        .assert_refused(&["outputs/fsc/FSC_LINKED", "symbolic link"])
        .await;

    let attempt = Attempt::new();
    let kind = attempt.work().join("outputs/fsc");
    std::fs::rename(&kind, attempt.dir.path().join("moved")).unwrap();
    symlink(&attempt.dir.path().join("moved"), &kind);
    attempt
        .assert_refused(&["outputs/fsc", "symbolic link"])
        .await;
}

#[tokio::test]
async fn a_hard_link_to_a_file_outside_the_work_directory_is_refused() {
    let attempt = Attempt::new();
    std::fs::hard_link(attempt.secret(), attempt.product().join("linked.txt")).unwrap();
    attempt
        .assert_refused(&[&format!("outputs/fsc/{PRODUCT}/linked.txt"), "hard link"])
        .await;
}

#[tokio::test]
async fn hard_links_inside_the_work_directory_are_accepted() {
    let attempt = Attempt::new();
    let input = attempt.work().join("inputs/dem.tif");
    std::fs::write(&input, "dem").unwrap();
    std::fs::hard_link(&input, attempt.product().join("dem.tif")).unwrap();
    let products = attempt.publish().await.unwrap();
    assert_eq!(products[0].size_bytes, Some(9));
}

#[tokio::test]
async fn a_fifo_is_refused() {
    let attempt = Attempt::new();
    let fifo = attempt.product().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    attempt
        .assert_refused(&[&format!("outputs/fsc/{PRODUCT}/pipe"), "fifo"])
        .await;
}

#[tokio::test]
async fn bad_product_and_file_names_are_refused() {
    for (dir, file, words) in [
        ("..\\escaped", "x.tif", "`\\`"),
        (PRODUCT, "a\nb.tif", "control character"),
        (PRODUCT, "sub/..\\..\\x.tif", "`\\`"),
    ] {
        let attempt = Attempt::new();
        let path = attempt
            .work()
            .join("outputs/fsc")
            .join(dir)
            .join(file.replace('/', std::path::MAIN_SEPARATOR_STR));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            attempt
                .work()
                .join("outputs/fsc")
                .join(dir)
                .join("dias_catalog_submit.json"),
            "{}",
        )
        .unwrap();
        std::fs::write(&path, "x").unwrap();
        attempt.assert_refused(&[words]).await;
    }
}

#[tokio::test]
async fn an_object_key_over_the_limit_is_refused() {
    let attempt = Attempt::new();
    // Names of 200 bytes nested: each name is fine, the key is not.
    let mut path = attempt.product();
    for _ in 0..5 {
        path = path.join("d".repeat(200));
    }
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("x.tif"), "x").unwrap();
    attempt.assert_refused(&["1024"]).await;
}

#[tokio::test]
async fn a_file_swapped_for_a_link_after_the_check_is_not_read() {
    let attempt = Attempt::new();
    let kinds = attempt.kinds();
    let found = find_products(&attempt.work(), &kinds).unwrap();
    // A process left running by the code replaces a checked file with a link before the upload.
    let raster = attempt.product().join("raster.tif");
    std::fs::remove_file(&raster).unwrap();
    symlink(&attempt.secret(), &raster);
    let error = upload_products(&found, &kinds, uuid::Uuid::nil(), 1, 2)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("raster.tif") && message.contains("symbolic link"),
        "{message}"
    );
    // The same with another regular file in its place (a hard link to the secret, say).
    let attempt = Attempt::new();
    let found = find_products(&attempt.work(), &kinds).unwrap();
    let raster = attempt.product().join("raster.tif");
    std::fs::remove_file(&raster).unwrap();
    std::fs::hard_link(attempt.secret(), &raster).unwrap();
    let error = upload_products(&found, &attempt.kinds(), uuid::Uuid::nil(), 1, 2)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("replaced since it was checked"),
        "{error}"
    );
    let stored = read_tree(&attempt.store());
    assert!(
        stored.values().all(|c| c.as_slice() != SECRET.as_bytes()),
        "the secret was uploaded: {:?}",
        stored.keys()
    );
    assert!(
        !stored
            .keys()
            .any(|k| k.starts_with(&format!("FSC/{PRODUCT}/"))),
        "a product was committed: {:?}",
        stored.keys()
    );
}
