//! Pre-processing: staging an input prefix into a local directory with bounded parallel downloads.

use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::upload::task_result;
use super::url::local_path;
use super::{open_store, StorageError, Store};

/// What [`stage`] downloaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageReport {
    /// Objects downloaded.
    pub objects: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Downloads every object under `source_url` (a prefix) into `dest_dir`, keys becoming relative
/// paths, at most `parallelism` at once.
///
/// A prefix without objects (directory markers do not count) is an error
/// ([`StorageError::MissingInput`]) when `required`, and an empty report otherwise; a missing
/// bucket is an error either way. Keys are all checked before the first download (no `..`, no
/// empty segment). On failure, the downloads under way are cancelled: files already complete
/// stay, and no partial file remains, under a final or a temporary name.
pub async fn stage(
    source_url: &str,
    dest_dir: &Path,
    parallelism: usize,
    required: bool,
) -> Result<StageReport, StorageError> {
    let store: Arc<dyn Store> = Arc::from(open_store(source_url)?);
    stage_from(store, dest_dir, parallelism, required).await
}

/// [`stage`] from an open store: every object under its root.
pub async fn stage_from(
    store: Arc<dyn Store>,
    dest_dir: &Path,
    parallelism: usize,
    required: bool,
) -> Result<StageReport, StorageError> {
    let url = store.url();
    let objects = store.list("").await?;
    if objects.is_empty() {
        if required {
            return Err(StorageError::MissingInput { url });
        }
        tracing::info!(url = %url, "optional input is absent");
        return Ok(StageReport::default());
    }
    // Every key is checked before anything is downloaded.
    let mut planned = Vec::with_capacity(objects.len());
    for object in objects {
        let path = local_path(dest_dir, &object.key, &url)?;
        planned.push((object, path));
    }
    let report = StageReport {
        objects: planned.len(),
        bytes: planned.iter().map(|(o, _)| o.size).sum(),
    };
    let mut pending = planned.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < parallelism.max(1) {
            let Some((object, path)) = pending.next() else {
                break;
            };
            let store = Arc::clone(&store);
            running.spawn(async move { store.download(&object, &path).await });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        if let Err(e) = task_result(joined, dest_dir) {
            // Cancelled downloads remove their temporary files when dropped.
            running.shutdown().await;
            return Err(e);
        }
    }
    tracing::info!(url = %url, objects = report.objects, bytes = report.bytes, "input staged");
    Ok(report)
}
