//! Post-processing: uploading an output directory or a list of checked files, reported only when
//! complete.

use std::path::Path;
use std::sync::Arc;

use tokio::task::{JoinError, JoinSet};

use super::local::local_tree;
use super::{open_store, ObjectInfo, SourceFile, StorageError, Store};

/// Uploads every regular file under `src_dir` to `dest_url` (a prefix), relative paths becoming
/// keys, at most `parallelism` files at once (large files also in parallel parts).
///
/// Returns the uploaded objects, sorted by key, only when every file was uploaded; on failure no
/// list is returned, files being uploaded are finished or aborted before returning, and no
/// multipart upload is left open.
pub async fn upload_dir(
    src_dir: &Path,
    dest_url: &str,
    parallelism: usize,
) -> Result<Vec<ObjectInfo>, StorageError> {
    let store: Arc<dyn Store> = Arc::from(open_store(dest_url)?);
    upload_dir_to(src_dir, store, parallelism).await
}

/// [`upload_dir`] to an open store: keys relative to its root. Links under `src_dir` are refused,
/// never followed.
pub async fn upload_dir_to(
    src_dir: &Path,
    store: Arc<dyn Store>,
    parallelism: usize,
) -> Result<Vec<ObjectInfo>, StorageError> {
    let root = src_dir.to_path_buf();
    let files = tokio::task::spawn_blocking(move || local_tree(&root, false))
        .await
        .map_err(|e| StorageError::local(src_dir, std::io::Error::other(e)))??;
    let files = files.into_iter().map(|f| (f.source, f.key)).collect();
    upload_files(files, store, parallelism).await
}

/// Uploads each checked file as its key (relative to the store's root), at most `parallelism` at
/// once; the same guarantees as [`upload_dir`]. A file that is no longer the one that was checked
/// fails the upload (see [`SourceFile::open`]).
pub async fn upload_files(
    files: Vec<(SourceFile, String)>,
    store: Arc<dyn Store>,
    parallelism: usize,
) -> Result<Vec<ObjectInfo>, StorageError> {
    let mut pending = files.into_iter();
    let mut running = JoinSet::new();
    let mut uploaded = Vec::new();
    let mut failure = None;
    loop {
        // After a failure no new upload starts, and the running ones are waited for.
        while failure.is_none() && running.len() < parallelism.max(1) {
            let Some((source, key)) = pending.next() else {
                break;
            };
            let store = Arc::clone(&store);
            running.spawn(async move { store.upload_file(&source, &key).await });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match task_result(joined, Path::new(&store.url())) {
            Ok(object) => uploaded.push(object),
            Err(e) => {
                tracing::warn!(error = %e, "upload failed");
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    uploaded.sort_by(|a, b| a.key.cmp(&b.key));
    tracing::info!(url = %store.url(), objects = uploaded.len(), "outputs uploaded");
    Ok(uploaded)
}

/// The result of a transfer task; a panic in it is resumed here.
pub(crate) fn task_result<T>(
    joined: Result<Result<T, StorageError>, JoinError>,
    dir: &Path,
) -> Result<T, StorageError> {
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StorageError::local(dir, std::io::Error::other(e))),
    }
}
