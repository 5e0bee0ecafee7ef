//! The work directory's disk use, watched while the code runs. Nomad places an attempt by its
//! flavor's `ephemeral_disk` but does not enforce it, so the runtime itself stops a run whose work
//! directory grows past the spec's disk limit.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the work directory is measured during a run.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Bytes that the files under `dir` occupy on disk: allocated blocks (a sparse file counts what it
/// uses), each inode once (hard links), without following symbolic links. Entries that vanish or
/// cannot be read while walking are skipped: the measure is a lower bound.
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = HashSet::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    total
}

/// Resolves with the bytes used once `work_dir` holds more than `limit_mb` MiB; never resolves when
/// `limit_mb` is 0 (no limit).
pub(crate) async fn exceeded(work_dir: PathBuf, limit_mb: u64) -> u64 {
    if limit_mb == 0 {
        return std::future::pending().await;
    }
    let limit = limit_mb.saturating_mul(1 << 20);
    let mut interval = tokio::time::interval(CHECK_INTERVAL);
    loop {
        interval.tick().await;
        let dir = work_dir.clone();
        let used = tokio::task::spawn_blocking(move || disk_usage(&dir))
            .await
            .unwrap_or(0);
        if used > limit {
            return used;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_allocated_blocks_once_per_inode_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let empty = disk_usage(dir.path());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/data"), vec![1u8; 1 << 20]).unwrap();
        std::fs::hard_link(dir.path().join("sub/data"), dir.path().join("again")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("usr")).unwrap();
        let used = disk_usage(dir.path()) - empty;
        assert!((1 << 20..2 << 20).contains(&used), "{used}");
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        assert!(disk_usage(dir.path()) - empty < 2 << 20);
    }
}
