//! The `file://` store: a local or mounted directory.
//!
//! A product is committed by renaming its staged directory into place: the final directory is
//! swapped with the staged one in one `renameat2(RENAME_EXCHANGE)` where the file system offers it
//! (ext4, xfs, btrfs, tmpfs...), so that the final path always holds either the previous product or
//! the new one; elsewhere (NFS...) the previous product is renamed aside first, and a kill between
//! the two renames leaves the final path empty (never half-written).

use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::local::{local_tree, PartialFile, SourceFile};
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
        // Objects are regular files: a link in the store is not followed.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&src);
        let mut input = opened.map(tokio::fs::File::from_std).map_err(|e| {
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

    async fn upload_file(&self, src: &SourceFile, key: &str) -> Result<ObjectInfo, StorageError> {
        let dest = local_path(&self.root, key, &self.url())?;
        let size = src.size;
        let mut input = tokio::fs::File::from_std(src.open()?);
        let src = src.path.as_path();
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

    async fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        let dir = local_path(&self.root, prefix.trim_end_matches('/'), &self.url())?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::local(&dir, e)),
        }
    }

    async fn commit(&self, staged: &str, target: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let url = self.url();
        let staged_dir = local_path(&self.root, staged.trim_end_matches('/'), &url)?;
        let target_dir = local_path(&self.root, target.trim_end_matches('/'), &url)?;
        tokio::task::spawn_blocking(move || swap_in(&staged_dir, &target_dir))
            .await
            .map_err(|e| StorageError::local(&self.root, std::io::Error::other(e)))??;
        self.list(target).await
    }
}

/// Puts the directory `staged` at `target`, replacing what was there, and removes the replaced
/// directory (or `staged` itself, emptied, when nothing was replaced).
fn swap_in(staged: &Path, target: &Path) -> Result<(), StorageError> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| StorageError::local(parent, e))?;
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return std::fs::rename(staged, target).map_err(|e| StorageError::local(target, e));
        }
        Err(e) => return Err(StorageError::local(target, e)),
        Ok(_) => {}
    }
    match exchange(staged, target) {
        // `staged` now holds the previous product.
        Ok(()) => {}
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
            ) =>
        {
            // No atomic exchange on this file system: the previous product goes aside first.
            let aside = staged.with_extension("replaced");
            std::fs::rename(target, &aside).map_err(|e| StorageError::local(target, e))?;
            std::fs::rename(staged, target).map_err(|e| StorageError::local(target, e))?;
            return std::fs::remove_dir_all(&aside).map_err(|e| StorageError::local(&aside, e));
        }
        Err(e) => return Err(StorageError::local(target, e)),
    }
    std::fs::remove_dir_all(staged).map_err(|e| StorageError::local(staged, e))
}

/// Exchanges two paths atomically: `renameat2(2)` with `RENAME_EXCHANGE`.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags};
    renameat2(None, a, None, b, RenameFlags::RENAME_EXCHANGE)
        .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))
}

/// The regular files under `root` whose relative key starts with `prefix`, sorted by key. Only the
/// directory holding the prefix's last segment is walked.
fn walk(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
    let (base, under) = match prefix.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => {
            let url = format!("file://{}", root.display());
            (local_path(root, dir, &url)?, format!("{dir}/"))
        }
        _ => (root.to_path_buf(), String::new()),
    };
    Ok(local_tree(&base, true)?
        .into_iter()
        .map(|f| (format!("{under}{}", f.key), f.source.size))
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(key, size)| ObjectInfo {
            key,
            size,
            checksum: None,
        })
        .collect())
}
