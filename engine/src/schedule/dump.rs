//! The dump: a snapshot of the job inventory, one JSON object per job and per line (the job as the
//! `Job` model serializes it, history aside), gzipped, written to storage (`file:///dir` or
//! `s3://bucket/prefix`, through the worker's storage module).
//!
//! PostgreSQL writes the lines itself (`COPY ... TO STDOUT`, see [`crate::db::dump`]) in one
//! read-only repeatable-read transaction, so that the snapshot is consistent; they are streamed
//! through the compressor into a local temporary file, [`BUFFER_BYTES`] at a time whatever the
//! number of jobs, which is fsynced and then stored under its final key: a dump appears complete or
//! not at all.
//!
//! A dump holds every job (params, paths, errors): it goes to a private place. By default that is a
//! local directory (see [`crate::config::Settings::dump_url`]); a local destination that does not
//! exist yet is created readable by this user only (mode 0700), and the local copy is mode 0600.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::StreamExt;
use sqlx::PgPool;
use swath_domain::Job;
use swath_storage::{object_url, open_store, StorageError};

use crate::db::dump::{begin_snapshot, jobs_as_json_lines};
use crate::db::DbError;

/// Bytes of JSON lines gathered before they are handed to the compressor (on a blocking thread):
/// what a dump holds in memory, plus one line, however many jobs there are.
pub const BUFFER_BYTES: usize = 128 * 1024;

/// A dump written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpReport {
    /// Where it is.
    pub url: String,
    /// Jobs in it.
    pub jobs: u64,
    /// Its compressed size.
    pub bytes: u64,
    /// Its size before compression.
    pub uncompressed_bytes: u64,
    /// The most bytes of lines it held at once before handing them to the compressor: at most
    /// [`BUFFER_BYTES`] plus one line.
    pub peak_buffered_bytes: u64,
}

/// Why a dump could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Reading the jobs failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Writing the local file failed.
    #[error("writing the dump locally: {0}")]
    Io(#[from] std::io::Error),
    /// Storing it failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Removes a temporary file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates the directory of a `file://` destination readable by this user only (mode 0700), with
/// its missing parents, when it does not exist; an existing directory is left as it is, and other
/// destinations need nothing.
pub fn prepare_destination(url: &str) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !url.starts_with("file://") {
        return Ok(());
    }
    let Some(dir) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.to_file_path().ok())
    else {
        // The store refuses it with a clear error when it is opened.
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
}

/// Writes a dump of every job to `key` under the store at `url`.
pub async fn write_dump(pool: &PgPool, url: &str, key: &str) -> Result<DumpReport, DumpError> {
    use std::os::unix::fs::OpenOptionsExt;
    let store = open_store(url)?;
    prepare_destination(url)?;
    let temp = TempFile(std::env::temp_dir().join(format!(
        "swath-dump-{}.jsonl.gz.partial",
        uuid::Uuid::new_v4().simple()
    )));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp.0)?;
    let mut encoder = GzEncoder::new(BufWriter::new(file), Compression::default());
    let mut pending: Vec<u8> = Vec::with_capacity(BUFFER_BYTES);
    let (mut jobs, mut uncompressed, mut peak) = (0u64, 0u64, 0usize);
    let mut tx = begin_snapshot(pool).await?;
    {
        let mut lines = jobs_as_json_lines(&mut tx).await?;
        while let Some(piece) = lines.next().await {
            let piece = piece?;
            let piece = piece.as_ref();
            // One line per job: JSON text holds no raw newline (PostgreSQL escapes them).
            jobs += piece.iter().filter(|&&b| b == b'\n').count() as u64;
            uncompressed += piece.len() as u64;
            pending.extend_from_slice(piece);
            if pending.len() >= BUFFER_BYTES {
                peak = peak.max(pending.len());
                (encoder, pending) = compress(encoder, pending).await?;
            }
        }
    }
    tx.commit().await.map_err(DbError::from)?;
    peak = peak.max(pending.len());
    let (encoder, _) = compress(encoder, pending).await?;
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut writer = encoder.finish()?;
        writer.flush()?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file.metadata()?.len())
    })
    .await
    .map_err(std::io::Error::other)??;
    store.upload(&temp.0, key).await?;
    Ok(DumpReport {
        url: object_url(&store.url(), key),
        jobs,
        bytes,
        uncompressed_bytes: uncompressed,
        peak_buffered_bytes: peak as u64,
    })
}

/// Compresses `pending` on a blocking thread; gives the encoder and the emptied buffer back.
async fn compress<W: Write + Send + 'static>(
    mut encoder: GzEncoder<W>,
    mut pending: Vec<u8>,
) -> std::io::Result<(GzEncoder<W>, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        encoder.write_all(&pending)?;
        pending.clear();
        Ok((encoder, pending))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Reads a dump file back: every job, in order.
pub fn read_dump(path: &Path) -> std::io::Result<Vec<Job>> {
    let reader = BufReader::new(MultiGzDecoder::new(std::fs::File::open(path)?));
    reader
        .lines()
        .map(|line| {
            let line = line?;
            serde_json::from_str(&line)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_new_local_destination_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let dumps = dir.path().join("state").join("dumps");
        prepare_destination(&format!("file://{}", dumps.display())).unwrap();
        for created in [dumps.parent().unwrap(), dumps.as_path()] {
            let mode = std::fs::metadata(created).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", created.display());
        }
        // An existing directory is the operator's: left as it is.
        std::fs::set_permissions(&dumps, std::fs::Permissions::from_mode(0o750)).unwrap();
        prepare_destination(&format!("file://{}", dumps.display())).unwrap();
        let mode = std::fs::metadata(&dumps).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        prepare_destination("s3://private/dumps").unwrap();
    }
}
