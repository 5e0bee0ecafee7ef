//! The `file://` store: a local or mounted directory.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::local::{local_tree, PartialFile};
use super::url::local_path;
use super::{object_url, ObjectInfo, StorageError, Store};

/// A store whose objects are the regular files under a directory.
///
/// It gives no checksums: downloads are verified by size. Files being written by an upload carry
/// temporary names and are never listed.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A store rooted at the absolute directory `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        FileStore { root: root.into() }
    }

    fn key_url(&self, key: &str) -> String {
        object_url(&self.url(), key)
    }
}

#[async_trait]
impl Store for FileStore {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || walk(&root, &prefix))
            .await
            .map_err(|e| StorageError::local(&self.root, std::io::Error::other(e)))?
    }

    async fn download(&self, object: &ObjectInfo, dest: &Path) -> Result<(), StorageError> {
        let src = local_path(&self.root, &object.key, &self.url())?;
        let mut input = tokio::fs::File::open(&src).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                StorageError::NotFound {
                    url: self.key_url(&object.key),
                    message: e.to_string(),
                }
            } else {
                StorageError::local(&src, e)
            }
        })?;
        let (partial, mut output) = PartialFile::create(dest).await?;
        let copied = tokio::io::copy(&mut input, &mut output)
            .await
            .map_err(|e| StorageError::local(partial.temp_path(), e))?;
        output
            .flush()
            .await
            .map_err(|e| StorageError::local(partial.temp_path(), e))?;
        if copied != object.size {
            return Err(StorageError::Integrity {
                url: self.key_url(&object.key),
                message: format!("listed with {} bytes, read {copied}", object.size),
            });
        }
        partial.commit().await
    }

    async fn upload(&self, src: &Path, key: &str) -> Result<ObjectInfo, StorageError> {
        let dest = local_path(&self.root, key, &self.url())?;
        let mut input = tokio::fs::File::open(src)
            .await
            .map_err(|e| StorageError::local(src, e))?;
        let size = input
            .metadata()
            .await
            .map_err(|e| StorageError::local(src, e))?
            .len();
        let (partial, mut output) = PartialFile::create(&dest).await?;
        let copied = tokio::io::copy(&mut input, &mut output)
            .await
            .map_err(|e| StorageError::local(partial.temp_path(), e))?;
        output
            .flush()
            .await
            .map_err(|e| StorageError::local(partial.temp_path(), e))?;
        if copied != size {
            return Err(StorageError::local(
                src,
                std::io::Error::other(format!(
                    "changed while uploaded: {size} then {copied} bytes"
                )),
            ));
        }
        partial.commit().await?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size,
            checksum: None,
        })
    }
}

/// The regular files under `root` whose relative key starts with `prefix`, sorted by key.
fn walk(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
    Ok(local_tree(root, true)?
        .into_iter()
        .filter(|f| f.key.starts_with(prefix))
        .map(|f| ObjectInfo {
            key: f.key,
            size: f.size,
            checksum: None,
        })
        .collect())
}
