//! Local files: written under a temporary name and renamed once complete, listed as a tree without
//! following links, and opened for upload only if they still are the file that was checked.

use std::fs::Metadata;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
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

/// A local regular file to upload, as it was when checked: where it is, its size and its identity
/// (device and inode numbers).
///
/// [`SourceFile::open`] opens it without following a symbolic link in its last component
/// (`O_NOFOLLOW`) and refuses what it opened unless it is the same inode, still a regular file of
/// the same size: a process that replaced the file with a link, or another file, after the check
/// cannot make an upload read anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes when checked.
    pub size: u64,
    /// Its device number.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
}

impl SourceFile {
    /// Reads what `path` is, without following a link: only a regular file is accepted.
    pub fn inspect(path: &Path) -> Result<SourceFile, StorageError> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| StorageError::local(path, e))?;
        if !meta.file_type().is_file() {
            return Err(StorageError::local(
                path,
                std::io::Error::new(
                    ErrorKind::InvalidInput,
                    format!("is {}, not a regular file", file_kind(&meta)),
                ),
            ));
        }
        Ok(SourceFile::from_metadata(path, &meta))
    }

    /// The file at `path` described by `meta` (its `symlink_metadata`, a regular file).
    pub fn from_metadata(path: &Path, meta: &Metadata) -> SourceFile {
        SourceFile {
            path: path.to_path_buf(),
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Opens the file for reading, refusing a link or anything but the inode that was checked.
    pub fn open(&self) -> Result<std::fs::File, StorageError> {
        let refuse = |what: String| {
            StorageError::local(
                &self.path,
                std::io::Error::new(ErrorKind::InvalidData, what),
            )
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
            .map_err(|e| {
                // ELOOP: the last component is a symbolic link (open(2), O_NOFOLLOW).
                if e.raw_os_error() == Some(libc::ELOOP) {
                    refuse("replaced by a symbolic link since it was checked; not followed".into())
                } else {
                    StorageError::local(&self.path, e)
                }
            })?;
        let meta = file
            .metadata()
            .map_err(|e| StorageError::local(&self.path, e))?;
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) || !meta.file_type().is_file() {
            return Err(refuse(format!(
                "replaced since it was checked (inode {}:{} then {} {}:{})",
                self.dev,
                self.ino,
                file_kind(&meta),
                meta.dev(),
                meta.ino()
            )));
        }
        if meta.len() != self.size {
            return Err(refuse(format!(
                "changed since it was checked: {} then {} bytes",
                self.size,
                meta.len()
            )));
        }
        Ok(file)
    }
}

/// An opened, checked [`SourceFile`], also reachable by a path that names the open file itself
/// (`/proc/self/fd/<n>`) for readers that take a path, such as the S3 SDK's retryable bodies:
/// opening that path opens the very inode the descriptor refers to, whatever happens to the file's
/// name meanwhile (proc(5), `/proc/pid/fd`).
#[derive(Debug)]
pub(crate) struct PinnedFile {
    /// Kept open: `path` names it while it is.
    _open: std::fs::File,
    path: PathBuf,
}

impl PinnedFile {
    /// A path that reopens the open file while `self` lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl SourceFile {
    /// Opens the file as [`SourceFile::open`] does, and keeps it open for readers by path.
    pub(crate) fn pin(&self) -> Result<PinnedFile, StorageError> {
        use std::os::fd::AsRawFd;
        let file = self.open()?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if !path.exists() {
            return Err(StorageError::local(
                &self.path,
                std::io::Error::other(
                    "cannot reach the open file through /proc/self/fd: is /proc mounted?",
                ),
            ));
        }
        Ok(PinnedFile { _open: file, path })
    }
}

/// What a file is, for messages: `a directory`, `a symbolic link`, `a fifo`...
pub fn file_kind(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_fifo() {
        "a fifo"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "an unknown kind of file"
    }
}

/// One regular file of a local tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalFile {
    /// The file, as listed.
    pub source: SourceFile,
    /// Its key: the path relative to the tree's root, with `/` separators.
    pub key: String,
}

/// The regular files under `root`, sorted by key; temporary files are skipped. Links are never
/// followed: a symbolic link, device, fifo or socket under `root` is an error naming it. A missing
/// `root` is an empty tree when `missing_is_empty`, an error otherwise.
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
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| StorageError::local(&path, e))?;
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() {
                let key = relative_key(root, &path)?;
                files.push(LocalFile {
                    source: SourceFile::from_metadata(&path, &meta),
                    key,
                });
            } else {
                return Err(StorageError::local(
                    &path,
                    std::io::Error::new(
                        ErrorKind::InvalidInput,
                        format!("is {}: not followed", file_kind(&meta)),
                    ),
                ));
            }
        }
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}
