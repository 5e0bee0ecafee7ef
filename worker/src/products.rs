//! The products the scientific code wrote, and their upload.
//!
//! Contract with the scientific code: each product is a directory
//! `/work/outputs/<kind>/<product id>/` holding its files and a metadata file
//! `dias_catalog_submit.json` (as the original's processing chains write it). The metadata file is
//! read into the product's `infos` and is not uploaded; everything else is uploaded under
//! `<destination prefix>/<product id>/`.

use std::path::{Path, PathBuf};

use chrono::Utc;
use swath_job_types::job::OutputProduct;
use swath_job_types::template::TaskOutput;

use crate::outcome::WorkerError;
use crate::storage::upload_dir;

/// The metadata file each product directory holds.
pub const METADATA_FILE: &str = "dias_catalog_submit.json";

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
}

/// The products under `outputs` for the task's output kinds; a kind may have none (the job type
/// decides whether that is normal), a product without readable metadata is an internal error.
pub fn find_products(
    outputs: &Path,
    kinds: &[TaskOutput],
) -> Result<Vec<FoundProduct>, WorkerError> {
    let mut found = Vec::new();
    for output in kinds {
        let dir = outputs.join(&output.kind);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(WorkerError::internal(
                    "outputs",
                    format!("cannot read {}: {e}", dir.display()),
                ))
            }
        };
        let mut products: Vec<_> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .collect();
        products.sort_by_key(|e| e.file_name());
        for entry in products {
            let id = entry.file_name().to_string_lossy().into_owned();
            let meta_path = entry.path().join(METADATA_FILE);
            let text = std::fs::read_to_string(&meta_path).map_err(|e| {
                WorkerError::internal(
                    "outputs",
                    format!("product {id} has no readable {METADATA_FILE}: {e}"),
                )
            })?;
            let infos = serde_json::from_str(&text).map_err(|e| {
                WorkerError::internal(
                    "outputs",
                    format!("{} is not JSON: {e}", meta_path.display()),
                )
            })?;
            found.push(FoundProduct {
                kind: output.kind.clone(),
                id,
                dir: entry.path(),
                infos,
            });
        }
    }
    Ok(found)
}

/// The path of `url` inside its bucket or root: `s3://bucket/a/b` gives `a/b`.
fn path_in_store(url: &str) -> String {
    match url.split_once("://") {
        Some(("s3", rest)) => rest.split_once('/').map_or("", |(_, p)| p).to_string(),
        Some((_, rest)) => rest.trim_start_matches('/').to_string(),
        None => url.to_string(),
    }
}

/// Uploads every product (without its metadata file) and describes it; nothing is described unless
/// every product uploaded completely.
pub async fn upload_products(
    products: &[FoundProduct],
    destinations: &[TaskOutput],
    parallelism: usize,
) -> Result<Vec<OutputProduct>, WorkerError> {
    let mut described = Vec::new();
    for product in products {
        let destination = destinations
            .iter()
            .find(|d| d.kind == product.kind)
            .ok_or_else(|| {
                WorkerError::internal("outputs", format!("no destination for {}", product.kind))
            })?;
        // The metadata travels in the result, not in the bucket.
        let meta = product.dir.join(METADATA_FILE);
        let kept = product.dir.with_extension("metadata.json");
        std::fs::rename(&meta, &kept).map_err(|e| {
            WorkerError::internal("outputs", format!("cannot move {}: {e}", meta.display()))
        })?;
        let url = format!(
            "{}/{}",
            destination.destination_prefix.trim_end_matches('/'),
            product.id
        );
        let uploaded = upload_dir(&product.dir, &url, parallelism)
            .await
            .map_err(WorkerError::from)?;
        described.push(OutputProduct {
            kind: product.kind.clone(),
            path: path_in_store(&url),
            size_bytes: Some(uploaded.iter().map(|o| o.size).sum()),
            completed_at: Some(Utc::now()),
            infos: product.infos.clone(),
            published_at: None,
        });
    }
    Ok(described)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_bucket_or_root() {
        assert_eq!(path_in_store("s3://hrsi/CLMS/FSC/x"), "CLMS/FSC/x");
        assert_eq!(path_in_store("file:///data/out/FSC/x"), "data/out/FSC/x");
    }

    #[test]
    fn products_need_their_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let kinds = vec![TaskOutput {
            kind: "fsc".into(),
            destination_prefix: "file:///out".into(),
        }];
        assert!(find_products(dir.path(), &kinds).unwrap().is_empty());
        let product = dir.path().join("fsc/FSC_1");
        std::fs::create_dir_all(&product).unwrap();
        std::fs::write(product.join("a.tif"), b"x").unwrap();
        let err = find_products(dir.path(), &kinds).unwrap_err();
        assert!(
            err.to_string().contains("dias_catalog_submit.json"),
            "{err}"
        );
        std::fs::write(product.join(METADATA_FILE), br#"{"resolution": 20}"#).unwrap();
        let found = find_products(dir.path(), &kinds).unwrap();
        assert_eq!(found[0].id, "FSC_1");
        assert_eq!(found[0].infos["resolution"], 20);
    }
}
