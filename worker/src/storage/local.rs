//! Local files: written under a temporary name and renamed once complete, and listed as a tree.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tokio::fs::File;

use super::url::relative_key;
use super::StorageError;

/// Suffix of the temporary names of files being written; such a file is never complete.
pub const PARTIAL_SUFFIX: &str = ".swath-partial";

/// Whether a file name is the temporary name of a file being written.
pub(crate) fn is_partial_name(name: &str) -> bool {
    name.ends_with(PARTIAL_SUFFIX)
}

/// A file being written beside its final path; removed when dropped before [`PartialFile::commit`].
#[derive(Debug)]
pub(crate) struct PartialFile {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Creates the parent directories of `dest` and an empty temporary file beside it.
    pub(crate) async fn create(dest: &Path) -> Result<(PartialFile, File), StorageError> {
        let parent = dest.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StorageError::local(parent, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let temp = parent.join(format!(".{name}.{}{PARTIAL_SUFFIX}", &unique[..12]));
        // Created synchronously: a cancellation cannot come between the file and its guard.
        let file = std::fs::File::create(&temp).map_err(|e| StorageError::local(&temp, e))?;
        let file = File::from_std(file);
        Ok((
            PartialFile {
                temp,
                dest: dest.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    /// The temporary path.
    pub(crate) fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Gives the file its final name; call only once its content is verified.
    pub(crate) async fn commit(mut self) -> Result<(), StorageError> {
        tokio::fs::rename(&self.temp, &self.dest)
            .await
            .map_err(|e| StorageError::local(&self.dest, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the name already says the file is incomplete.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn is_visible_under_its_final_name_only_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b.bin");
        let (partial, mut file) = PartialFile::create(&dest).await.unwrap();
        file.write_all(b"data").await.unwrap();
        file.flush().await.unwrap();
        assert!(!dest.exists());
        let temp = partial.temp_path().to_path_buf();
        assert!(is_partial_name(
            &temp.file_name().unwrap().to_string_lossy()
        ));
        partial.commit().await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
        assert!(!temp.exists());

        let (partial, _file) = PartialFile::create(&dir.path().join("c.bin"))
            .await
            .unwrap();
        let temp = partial.temp_path().to_path_buf();
        assert!(temp.exists());
        drop(partial);
        assert!(!temp.exists());
        assert!(!dir.path().join("c.bin").exists());
    }
}

/// One regular file of a local tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its key: the path relative to the tree's root, with `/` separators.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The regular files under `root`, sorted by key; temporary files are skipped and symbolic links
/// followed, as a reader of the directory would. A missing `root` is an empty tree when
/// `missing_is_empty`, an error otherwise.
pub(crate) fn local_tree(
    root: &Path,
    missing_is_empty: bool,
) -> Result<Vec<LocalFile>, StorageError> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if missing_is_empty && e.kind() == ErrorKind::NotFound && dir == root => {
                return Ok(files)
            }
            Err(e) => return Err(StorageError::local(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::local(&dir, e))?;
            let path = entry.path();
            if is_partial_name(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|e| StorageError::local(&path, e))?;
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() {
                let key = relative_key(root, &path)?;
                files.push(LocalFile {
                    path,
                    key,
                    size: meta.len(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}
