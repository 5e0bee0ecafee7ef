//! The local-directory catalogue: one product per directory entry (the embedded default).
//!
//! An entry is usually a `.SAFE` directory. An optional `swath-listing.json` inside it gives what a
//! real catalogue would (publication date, cloud cover, footprint); without it the entry's
//! modification time stands for the publication date.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use swath_domain::listing::CatalogueProduct;

use super::{Catalogue, CatalogueError, CataloguePage, CatalogueQuery, PageCursor};

/// Name of the optional metadata file inside an entry.
pub const LISTING_FILE: &str = "swath-listing.json";

/// A directory that cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum LocalCatalogueError {
    /// The directory or an entry cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An entry's metadata file is not valid.
    #[error("{path}: invalid {LISTING_FILE}: {source}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingMetadata {
    published_at: DateTime<Utc>,
    #[serde(default)]
    cloud_cover: Option<f64>,
    #[serde(default)]
    footprint: Option<serde_json::Value>,
}

/// Lists `dir`: one product per entry, ordered by publication date then name. Hidden entries are
/// ignored.
pub fn list_directory(dir: &Path) -> Result<Vec<CatalogueProduct>, LocalCatalogueError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LocalCatalogueError::Io { path, source }
    };
    let dir = dir.canonicalize().map_err(io(dir))?;
    let mut products = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let metadata_path = path.join(LISTING_FILE);
        let metadata = if metadata_path.is_file() {
            let text = std::fs::read_to_string(&metadata_path).map_err(io(&metadata_path))?;
            Some(
                serde_json::from_str::<ListingMetadata>(&text).map_err(|source| {
                    LocalCatalogueError::Metadata {
                        path: metadata_path,
                        source,
                    }
                })?,
            )
        } else {
            None
        };
        let published_at = match &metadata {
            Some(m) => m.published_at,
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(io(&path))?
                .into(),
        };
        products.push(CatalogueProduct {
            catalogue_id: None,
            name,
            input_path: format!("file://{}", path.display()),
            published_at,
            sensing_start: None,
            sensing_end: None,
            footprint: metadata.as_ref().and_then(|m| m.footprint.clone()),
            cloud_cover: metadata.as_ref().and_then(|m| m.cloud_cover),
            size_bytes: None,
        });
    }
    products.sort_by(|a, b| (a.published_at, &a.name).cmp(&(b.published_at, &b.name)));
    Ok(products)
}

/// A directory as a catalogue: one page holding the entries published inside the query's window.
#[derive(Debug, Clone)]
pub struct LocalDirectoryCatalogue {
    dir: PathBuf,
}

impl LocalDirectoryCatalogue {
    /// The catalogue of `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalDirectoryCatalogue { dir: dir.into() }
    }
}

#[async_trait]
impl Catalogue for LocalDirectoryCatalogue {
    fn source(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    async fn page(
        &self,
        query: &CatalogueQuery,
        _cursor: Option<&PageCursor>,
    ) -> Result<CataloguePage, CatalogueError> {
        let dir = self.dir.clone();
        let listed = tokio::task::spawn_blocking(move || list_directory(&dir))
            .await
            .map_err(|e| CatalogueError::Config(format!("listing task failed: {e}")))??;
        let products = listed
            .into_iter()
            .filter(|p| {
                p.published_at >= query.published_from && p.published_at < query.published_to
            })
            .collect();
        Ok(CataloguePage {
            products,
            invalid: Vec::new(),
            next: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_entries_with_and_without_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir
            .path()
            .join("S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(
            a.join(LISTING_FILE),
            r#"{"published_at": "2023-08-23T09:26:23.105134Z", "cloud_cover": 95.1}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("plain-file"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let products = list_directory(dir.path()).unwrap();
        assert_eq!(products.len(), 2);
        assert_eq!(products[0].cloud_cover, Some(95.1));
        assert!(products[0].input_path.starts_with("file:///"));
        assert_eq!(products[1].name, "plain-file");
    }

    #[test]
    fn bad_metadata_and_missing_directories_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("X.SAFE");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join(LISTING_FILE), r#"{"published": "yesterday"}"#).unwrap();
        let err = list_directory(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("invalid swath-listing.json") && err.contains("published"),
            "{err}"
        );
        let err = list_directory(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read"), "{err}");
    }
}
