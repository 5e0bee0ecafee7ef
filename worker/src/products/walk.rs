//! The checked walk of the outputs: nothing is followed, everything unexpected is refused.
//!
//! Linux semantics this relies on: `symlink_metadata` (`lstat(2)`) describes a symbolic link itself,
//! never its target, so the walk never leaves the tree it started in; a regular file's link count
//! (`st_nlink`) counts every directory entry naming its inode on the file system, so a file whose
//! count is higher than the entries found for it in the whole work directory has a name outside it
//! (a hard link to a file the code could not otherwise reach).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use swath_domain::protocol::path_in_store;
use swath_domain::template::TaskOutput;

use super::{ProductFile, STAGING_DIR};
use swath_domain::attempt::AttemptFailure;
use swath_storage::local_file_kind as file_kind;
use swath_storage::SourceFile;

/// The longest name of a product directory or file, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// The longest object key, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest staging prefix of a product, relative to its destination prefix:
/// `.swath-staging/<16 hex digits>/<attempt>-<index>/`.
const STAGING_PREFIX_BYTES: usize = STAGING_DIR.len() + 1 + 16 + 1 + 11 + 1 + 20 + 1;

/// A product directory walked and checked.
pub(super) struct Walked {
    pub kind: String,
    pub id: String,
    pub dir: PathBuf,
    /// Every regular file, the metadata file included.
    pub files: Vec<ProductFile>,
}

/// Why `name` cannot name a product directory or file (a segment of an object key), if it cannot:
/// empty, `.` or `..`, a `/` or `\`, a control character, or longer than [`MAX_NAME_BYTES`].
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty name".into());
    }
    if name == "." || name == ".." {
        return Err(format!("the name `{name}`"));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\')) {
        return Err(format!("`{c}` in the name {name:?}"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("a control character in the name {name:?}"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a name of {} bytes (at most {MAX_NAME_BYTES})",
            name.len()
        ));
    }
    Ok(())
}

/// `path` relative to the work directory, for messages.
pub(super) fn relative(work: &Path, path: &Path) -> String {
    path.strip_prefix(work)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The walk of one attempt's outputs.
struct Walk<'a> {
    work: &'a Path,
    /// `outputs/`, resolved.
    outputs: PathBuf,
    /// Directory entries found in the work directory per (device, inode), for files with more
    /// than one link.
    links: HashMap<(u64, u64), u64>,
}

impl Walk<'_> {
    fn refuse(&self, path: &Path, what: impl std::fmt::Display) -> AttemptFailure {
        AttemptFailure::internal("outputs", format!("`{}` {what}", relative(self.work, path)))
    }

    /// What is wrong with a path that is neither a directory nor a regular file.
    fn refuse_kind(&self, path: &Path, meta: &std::fs::Metadata) -> AttemptFailure {
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path)
                .map(|t| format!(" (to `{}`)", t.display()))
                .unwrap_or_default();
            self.refuse(
                path,
                format!("is a symbolic link{target}: links are not followed, products hold regular files and directories only"),
            )
        } else {
            self.refuse(
                path,
                format!(
                    "is {}: products hold regular files and directories only",
                    file_kind(meta)
                ),
            )
        }
    }

    fn metadata(&self, path: &Path) -> Result<std::fs::Metadata, AttemptFailure> {
        std::fs::symlink_metadata(path)
            .map_err(|e| self.refuse(path, format!("cannot be read: {e}")))
    }

    /// The entries of `dir` with their checked names, sorted.
    fn entries(&self, dir: &Path) -> Result<Vec<(String, PathBuf)>, AttemptFailure> {
        let mut entries = Vec::new();
        let listing = std::fs::read_dir(dir)
            .map_err(|e| self.refuse(dir, format!("cannot be listed: {e}")))?;
        for entry in listing {
            let entry = entry.map_err(|e| self.refuse(dir, format!("cannot be listed: {e}")))?;
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| self.refuse(&path, format!("has a name that is not UTF-8 ({n:?})")))?;
            check_name(&name).map_err(|why| self.refuse(&path, format!("has {why}")))?;
            entries.push((name, path));
        }
        entries.sort();
        Ok(entries)
    }

    /// Checks that `path`, resolved, is still under `outputs/`.
    fn inside(&self, path: &Path) -> Result<(), AttemptFailure> {
        let resolved = path
            .canonicalize()
            .map_err(|e| self.refuse(path, format!("cannot be resolved: {e}")))?;
        if resolved.starts_with(&self.outputs) {
            Ok(())
        } else {
            Err(self.refuse(
                path,
                format!("resolves to `{}`, outside outputs/", resolved.display()),
            ))
        }
    }

    /// Every regular file of the product directory `dir`, checked; `store_base` is the key of the
    /// destination prefix in its store and `id` the product's (for the length bound).
    fn product_files(
        &self,
        dir: &Path,
        store_base: &str,
        id: &str,
    ) -> Result<Vec<ProductFile>, AttemptFailure> {
        let mut files = Vec::new();
        let mut dirs = vec![(dir.to_path_buf(), String::new())];
        while let Some((current, prefix)) = dirs.pop() {
            for (name, path) in self.entries(&current)? {
                let key = format!("{prefix}{name}");
                let meta = self.metadata(&path)?;
                if meta.is_dir() {
                    self.inside(&path)?;
                    dirs.push((path, format!("{key}/")));
                } else if meta.is_file() {
                    self.inside(&path)?;
                    let full = store_base.len() + 1 + id.len() + 1 + key.len();
                    let staged = store_base.len() + 1 + STAGING_PREFIX_BYTES + key.len();
                    if full.max(staged) > MAX_KEY_BYTES {
                        return Err(self.refuse(
                            &path,
                            format!(
                                "would be stored as a key of {full} bytes (up to {staged} while staged), over S3's limit of {MAX_KEY_BYTES}"
                            ),
                        ));
                    }
                    let seen = self
                        .links
                        .get(&(meta.dev(), meta.ino()))
                        .copied()
                        .unwrap_or(1);
                    if meta.nlink() > seen {
                        return Err(self.refuse(
                            &path,
                            format!(
                                "is a hard link to a file outside the work directory ({} links, {seen} inside it)",
                                meta.nlink()
                            ),
                        ));
                    }
                    files.push(ProductFile {
                        source: SourceFile::from_metadata(&path, &meta),
                        key,
                    });
                } else {
                    return Err(self.refuse_kind(&path, &meta));
                }
            }
        }
        files.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(files)
    }
}

/// Directory entries per (device, inode) under `work`, for the regular files with more than one
/// link; links are not followed.
fn count_links(work: &Path) -> Result<HashMap<(u64, u64), u64>, AttemptFailure> {
    let fail = |path: &Path, e: std::io::Error| {
        AttemptFailure::internal(
            "outputs",
            format!("cannot walk `{}`: {e}", relative(work, path)),
        )
    };
    let mut links = HashMap::new();
    let mut dirs = vec![work.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| fail(&dir, e))? {
            let path = entry.map_err(|e| fail(&dir, e))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| fail(&path, e))?;
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() && meta.nlink() > 1 {
                *links.entry((meta.dev(), meta.ino())).or_insert(0) += 1;
            }
        }
    }
    Ok(links)
}

/// The product directories under `<work>/outputs/<kind>/` for each of `kinds`, walked and checked.
pub(super) fn checked_products(
    work: &Path,
    kinds: &[TaskOutput],
) -> Result<Vec<Walked>, AttemptFailure> {
    let outputs = work.join("outputs");
    let meta = match std::fs::symlink_metadata(&outputs) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        other => other,
    };
    let mut walk = Walk {
        work,
        outputs: PathBuf::new(),
        links: HashMap::new(),
    };
    let meta = meta.map_err(|e| walk.refuse(&outputs, format!("cannot be read: {e}")))?;
    if !meta.is_dir() {
        return Err(walk.refuse_kind(&outputs, &meta));
    }
    walk.outputs = outputs
        .canonicalize()
        .map_err(|e| walk.refuse(&outputs, format!("cannot be resolved: {e}")))?;
    walk.links = count_links(work)?;
    let mut found = Vec::new();
    for output in kinds {
        let kind_dir = outputs.join(&output.kind);
        check_name(&output.kind).map_err(|why| walk.refuse(&kind_dir, format!("has {why}")))?;
        let meta = match std::fs::symlink_metadata(&kind_dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(walk.refuse(&kind_dir, format!("cannot be read: {e}"))),
            Ok(meta) => meta,
        };
        if !meta.is_dir() {
            return Err(walk.refuse_kind(&kind_dir, &meta));
        }
        walk.inside(&kind_dir)?;
        let store_base = path_in_store(output.destination_prefix.trim_end_matches('/'));
        for (id, dir) in walk.entries(&kind_dir)? {
            let meta = walk.metadata(&dir)?;
            if meta.is_file() {
                // Not a product; never read.
                continue;
            }
            if !meta.is_dir() {
                return Err(walk.refuse_kind(&dir, &meta));
            }
            walk.inside(&dir)?;
            let files = walk.product_files(&dir, &store_base, &id)?;
            found.push(Walked {
                kind: output.kind.clone(),
                id,
                dir,
                files,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_key_segments_are_refused() {
        for name in ["FSC_1", "a.tif", "x y", "é"] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        for (name, words) in [
            ("", "empty"),
            (".", "`.`"),
            ("..", "`..`"),
            ("a/b", "`/`"),
            ("..\\x", "`\\`"),
            ("a\nb", "control character"),
            ("a\u{7f}", "control character"),
            (long.as_str(), "256 bytes"),
        ] {
            let why = check_name(name).unwrap_err();
            assert!(why.contains(words), "{name:?}: {why}");
        }
    }
}
