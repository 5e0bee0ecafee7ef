//! The products the scientific code wrote, checked, and their atomic upload.
//!
//! Contract with the scientific code: each product is a directory
//! `/work/outputs/<kind>/<product id>/` holding its files and a metadata file
//! `dias_catalog_submit.json` (as the original's processing chains write it). The metadata file is
//! read into the product's `infos` and is not uploaded; everything else is uploaded under
//! `<destination prefix>/<product id>/`.
//!
//! The outputs are written by third-party code, and read by the worker (root under Nomad's
//! `raw_exec`): [`find_products`] reads them without following any link, and refuses (internal
//! error `outputs`, naming the path relative to the work directory) any symbolic link, device,
//! fifo or socket, any regular file with a hard link outside the work directory, and any name that
//! could not be an object key segment (see [`check_name`]). Nothing is uploaded unless every
//! product passed; the upload then opens each file again without following links and only if it
//! still is the inode that was checked.
//!
//! Uploads are atomic per product ([`upload_products`]): each product is uploaded under
//! `<destination prefix>/.swath-staging/<job tag>/<attempt>-<product index>/`, where the job tag is
//! the first 16 hex digits of the job's uid (64 bits: unique among the jobs writing under one
//! prefix). Staging sits beside the products so that a `file://` store renames within one file
//! system, and is named by tag and index rather than by uid and product id so that staged keys are
//! no longer than the final ones (keys are bounded). Each product is then verified (every object
//! listed with the uploaded size, and checksum where the store gives one), then committed into
//! `<destination prefix>/<product id>/` (see [`swath_storage::Store::commit`]). A product is
//! reported only after its commit. Staging leftovers of earlier attempts of the job (killed during
//! an upload) are deleted before the next attempt uploads.

mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use swath_domain::job::OutputProduct;
use swath_domain::protocol::{path_in_store, PlannedProduct};
use swath_domain::template::TaskOutput;
use uuid::Uuid;

use swath_domain::attempt::AttemptFailure;
use swath_storage::{open_store, upload_files, ObjectInfo, SourceFile, Store};

pub use self::walk::{check_name, MAX_KEY_BYTES, MAX_NAME_BYTES};

/// The metadata file each product directory holds.
pub const METADATA_FILE: &str = "dias_catalog_submit.json";
/// The directory, under each destination prefix, where products are uploaded before their commit.
pub const STAGING_DIR: &str = ".swath-staging";
/// The largest metadata file read.
const MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;

/// One product found in the outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundProduct {
    /// Its kind.
    pub kind: String,
    /// Its id (the directory name).
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The metadata the code wrote.
    pub infos: serde_json::Value,
    /// Its files to upload (every regular file but the metadata file), as checked.
    pub files: Vec<ProductFile>,
}

/// A file of a product, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFile {
    /// The file as it was checked (path, size, identity).
    pub source: SourceFile,
    /// Its key relative to the product directory, `/`-separated.
    pub key: String,
}

/// The products under `<work>/outputs` for the task's output kinds; a kind may have none (the job
/// type decides whether that is normal). A product without readable metadata, or anything the
/// boundary refuses (see the module's documentation), is an internal error `outputs`.
pub fn find_products(
    work: &Path,
    kinds: &[TaskOutput],
) -> Result<Vec<FoundProduct>, AttemptFailure> {
    let mut found = Vec::new();
    for product in walk::checked_products(work, kinds)? {
        let meta = product
            .files
            .iter()
            .find(|f| f.key == METADATA_FILE)
            .ok_or_else(|| {
                AttemptFailure::internal(
                    "outputs",
                    format!(
                        "product {} has no {METADATA_FILE} (in {})",
                        product.id,
                        walk::relative(work, &product.dir)
                    ),
                )
            })?;
        let infos = read_metadata(work, &meta.source)?;
        let files = product
            .files
            .into_iter()
            .filter(|f| f.key != METADATA_FILE)
            .collect();
        found.push(FoundProduct {
            kind: product.kind,
            id: product.id,
            dir: product.dir,
            infos,
            files,
        });
    }
    Ok(found)
}

/// The metadata file's JSON, read through the checked file.
fn read_metadata(work: &Path, source: &SourceFile) -> Result<serde_json::Value, AttemptFailure> {
    use std::io::Read;
    let shown = walk::relative(work, &source.path);
    let fail = |e: String| AttemptFailure::internal("outputs", format!("{shown}: {e}"));
    if source.size > MAX_METADATA_BYTES {
        return Err(fail(format!(
            "{} bytes, more than the {MAX_METADATA_BYTES} read from a metadata file",
            source.size
        )));
    }
    let mut text = String::new();
    source
        .open()
        .map_err(|e| fail(e.to_string()))?
        .take(MAX_METADATA_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))
}

/// The tag of job `uid` in staging keys: the first 16 hex digits of its uid.
fn job_tag(uid: Uuid) -> String {
    uid.simple().to_string()[..16].to_owned()
}

/// The staging prefix of every attempt of job `uid`, relative to a destination prefix.
pub fn job_staging_prefix(uid: Uuid) -> String {
    format!("{STAGING_DIR}/{}/", job_tag(uid))
}

/// The staging prefix of the `index`th product of attempt `attempt` of job `uid`, relative to its
/// destination prefix.
pub fn product_staging_prefix(uid: Uuid, attempt: i32, index: usize) -> String {
    format!("{STAGING_DIR}/{}/{attempt}-{index}/", job_tag(uid))
}

/// The products as the orchestrator reserves them before their upload: kind and path in the store
/// (the path the result reports, see [`upload_products_to`]).
pub fn planned_products(
    products: &[FoundProduct],
    destinations: &[TaskOutput],
) -> Result<Vec<PlannedProduct>, AttemptFailure> {
    products
        .iter()
        .map(|product| {
            let destination = destination_of(product, destinations)?;
            Ok(PlannedProduct {
                kind: product.kind.clone(),
                path: product_path(destination, &product.id),
            })
        })
        .collect()
}

/// The destination of `product`'s kind among the task's outputs.
fn destination_of<'d>(
    product: &FoundProduct,
    destinations: &'d [TaskOutput],
) -> Result<&'d TaskOutput, AttemptFailure> {
    destinations
        .iter()
        .find(|d| d.kind == product.kind)
        .ok_or_else(|| {
            AttemptFailure::internal("outputs", format!("no destination for {}", product.kind))
        })
}

/// The path in its store of product `id` committed under `destination`.
fn product_path(destination: &TaskOutput, id: &str) -> String {
    let root = destination.destination_prefix.trim_end_matches('/');
    path_in_store(&format!("{root}/{id}"))
}

/// Deletes the products that the committed ones replaced at another path (the same product with
/// another quality flag, see `swath_domain::identity`): each `(new path, old path)` where both are
/// under one destination prefix. Failures are logged, not fatal: the replacement is committed and
/// announced, and the old path is no longer the product's.
pub async fn delete_replaced(replaced: &[(String, String)], destinations: &[TaskOutput]) {
    for (new, old) in replaced {
        let parent = |path: &str| path.rsplit_once('/').map(|(p, _)| p.to_owned());
        let destination = destinations.iter().find(|d| {
            let prefix = path_in_store(d.destination_prefix.trim_end_matches('/'));
            parent(new).as_deref() == Some(prefix.as_str())
                && parent(old).as_deref() == Some(prefix.as_str())
        });
        let (Some(destination), Some((_, old_id))) = (destination, old.rsplit_once('/')) else {
            tracing::warn!(%new, %old, "the replaced product is not beside its replacement; it is left in place");
            continue;
        };
        let root = destination.destination_prefix.trim_end_matches('/');
        let deleted = match open_store(root) {
            Ok(store) => store.delete_prefix(&format!("{old_id}/")).await,
            Err(e) => Err(e),
        };
        match deleted {
            Ok(()) => tracing::info!(%new, %old, "replaced product deleted"),
            Err(e) => tracing::warn!(%new, %old, error = %e, "cannot delete the replaced product"),
        }
    }
}

/// Uploads every product (without its metadata file), each committed into place only when all of
/// its objects are uploaded and verified, and describes them; nothing is described unless every
/// product was committed.
///
/// Before anything is uploaded, the staging leftovers of job `uid` (its earlier attempts, killed
/// during their upload) are deleted under every destination prefix of the task; at the end this
/// attempt's staging prefix is deleted too.
pub async fn upload_products(
    products: &[FoundProduct],
    destinations: &[TaskOutput],
    uid: Uuid,
    attempt: i32,
    parallelism: usize,
) -> Result<Vec<OutputProduct>, AttemptFailure> {
    let mut stores: BTreeMap<String, Arc<dyn Store>> = BTreeMap::new();
    for destination in destinations {
        let root = destination.destination_prefix.trim_end_matches('/');
        if !stores.contains_key(root) {
            let store = open_store(root).map_err(AttemptFailure::from)?;
            stores.insert(root.to_owned(), Arc::from(store));
        }
    }
    upload_products_to(products, destinations, &stores, uid, attempt, parallelism).await
}

/// [`upload_products`] to stores already open: one per destination prefix, by that prefix without
/// its trailing `/`, each rooted at it.
pub async fn upload_products_to(
    products: &[FoundProduct],
    destinations: &[TaskOutput],
    stores: &BTreeMap<String, Arc<dyn Store>>,
    uid: Uuid,
    attempt: i32,
    parallelism: usize,
) -> Result<Vec<OutputProduct>, AttemptFailure> {
    let store_of = |prefix: &str| {
        let root = prefix.trim_end_matches('/');
        stores.get(root).cloned().ok_or_else(|| {
            AttemptFailure::internal("outputs", format!("no store open for `{root}`"))
        })
    };
    // Leftovers of the job's earlier attempts go first, under every destination.
    for destination in destinations {
        store_of(&destination.destination_prefix)?
            .delete_prefix(&job_staging_prefix(uid))
            .await
            .map_err(AttemptFailure::from)?;
    }
    let mut described = Vec::new();
    for (index, product) in products.iter().enumerate() {
        let destination = destination_of(product, destinations)?;
        let root = destination.destination_prefix.trim_end_matches('/');
        let store = store_of(root)?;
        let staged = product_staging_prefix(uid, attempt, index);
        let committed = upload_product(product, store, &staged, parallelism).await?;
        described.push(OutputProduct {
            kind: product.kind.clone(),
            path: product_path(destination, &product.id),
            size_bytes: Some(committed.iter().map(|o| o.size).sum()),
            completed_at: Some(Utc::now()),
            infos: product.infos.clone(),
            published_at: None,
        });
    }
    // Every product is committed: what is left of the staging is only cleaning, and the next
    // attempt of the job would do it.
    for store in stores.values() {
        if let Err(e) = store.delete_prefix(&job_staging_prefix(uid)).await {
            tracing::warn!(url = %store.url(), error = %e, "cannot delete the staging prefix");
        }
    }
    Ok(described)
}

/// Uploads one product under its staging prefix, verifies it and commits it; returns the
/// committed objects.
async fn upload_product(
    product: &FoundProduct,
    store: Arc<dyn Store>,
    staged: &str,
    parallelism: usize,
) -> Result<Vec<ObjectInfo>, AttemptFailure> {
    let target = format!("{}/", product.id);
    let files = product
        .files
        .iter()
        .map(|f| (f.source.clone(), format!("{staged}{}", f.key)))
        .collect();
    let uploaded = upload_files(files, Arc::clone(&store), parallelism)
        .await
        .map_err(AttemptFailure::from)?;
    let listed = store.list(staged).await.map_err(AttemptFailure::from)?;
    verify(&store.url(), staged, &uploaded, staged, &listed)?;
    let committed = store
        .commit(staged, &target)
        .await
        .map_err(AttemptFailure::from)?;
    verify(&store.url(), staged, &uploaded, &target, &committed)?;
    tracing::info!(url = %swath_storage::object_url(&store.url(), &target), objects = committed.len(), "product committed");
    Ok(committed)
}

/// Checks that `listed` (under `prefix`) holds exactly the `uploaded` objects (under `staged`),
/// with their sizes and, where both sides give one, their checksums.
fn verify(
    url: &str,
    staged: &str,
    uploaded: &[ObjectInfo],
    prefix: &str,
    listed: &[ObjectInfo],
) -> Result<(), AttemptFailure> {
    let expected: BTreeMap<String, &ObjectInfo> = uploaded
        .iter()
        .map(|o| (format!("{prefix}{}", &o.key[staged.len()..]), o))
        .collect();
    let found: BTreeMap<&str, &ObjectInfo> = listed.iter().map(|o| (o.key.as_str(), o)).collect();
    let location = swath_storage::object_url(url, prefix);
    let mismatch = |what: String| {
        AttemptFailure::external(
            "storage",
            format!("`{location}` failed verification: {what}"),
        )
    };
    if found.len() != expected.len() || expected.keys().any(|k| !found.contains_key(k.as_str())) {
        return Err(mismatch(format!(
            "lists {:?}, expected {:?}",
            found.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        )));
    }
    for (key, want) in &expected {
        let got = found[key.as_str()];
        let checksums_differ =
            matches!((&want.checksum, &got.checksum), (Some(a), Some(b)) if a != b);
        if got.size != want.size || checksums_differ {
            return Err(mismatch(format!(
                "{key}: uploaded {} bytes ({:?}), lists {} bytes ({:?})",
                want.size, want.checksum, got.size, got.checksum
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_need_their_metadata() {
        let work = tempfile::tempdir().unwrap();
        let kinds = vec![TaskOutput {
            kind: "fsc".into(),
            destination_prefix: "file:///out".into(),
        }];
        assert!(find_products(work.path(), &kinds).unwrap().is_empty());
        let product = work.path().join("outputs/fsc/FSC_1");
        std::fs::create_dir_all(&product).unwrap();
        std::fs::write(product.join("a.tif"), b"x").unwrap();
        let err = find_products(work.path(), &kinds).unwrap_err();
        assert!(
            err.to_string().contains("dias_catalog_submit.json"),
            "{err}"
        );
        std::fs::write(product.join(METADATA_FILE), br#"{"resolution": 20}"#).unwrap();
        let found = find_products(work.path(), &kinds).unwrap();
        assert_eq!(found[0].id, "FSC_1");
        assert_eq!(found[0].infos["resolution"], 20);
        let keys: Vec<_> = found[0].files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, vec!["a.tif"]);
    }
}
