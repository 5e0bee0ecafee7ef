//! The attempt's work directory `/work/<uid>`: created fresh, always removed at the end.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use swath_domain::attempt::AttemptFailure;

/// A work directory that is removed when dropped, whatever happened in between.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `<root>/<uid>` with `inputs/` and `outputs/`, removing leftovers of an interrupted run.
    pub fn create(root: &Path, uid: Uuid) -> Result<WorkDir, AttemptFailure> {
        let path = root.join(uid.to_string());
        let fail = |what: &str, e: std::io::Error| {
            AttemptFailure::external("work directory", format!("{what} {}: {e}", path.display()))
        };
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| fail("cannot clean", e))?;
        }
        for sub in ["inputs", "outputs"] {
            std::fs::create_dir_all(path.join(sub)).map_err(|e| fail("cannot create", e))?;
        }
        Ok(WorkDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the work directory");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_created_clean_and_removed_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let uid = Uuid::new_v4();
        let stale = root.path().join(uid.to_string()).join("outputs");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("half-written.tif"), "x").unwrap();
        let dir = WorkDir::create(root.path(), uid).unwrap();
        assert!(dir.path().join("inputs").is_dir());
        assert!(!dir.path().join("outputs/half-written.tif").exists());
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn an_unwritable_root_is_an_external_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = WorkDir::create(&file, Uuid::new_v4()).unwrap_err();
        assert!(matches!(err, AttemptFailure::External { .. }), "{err}");
    }
}
