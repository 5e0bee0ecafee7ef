//! Object storage of one attempt: staging inputs into the work directory and uploading outputs.
//!
//! Two stores sit behind the [`Store`] trait: S3 (`s3://bucket/prefix`, through `aws-sdk-s3`, any
//! S3-compatible server, path style) and a local or mounted directory (`file:///abs/path`). A store is
//! rooted at the URL it was opened with: keys are relative to that root and use `/` as separator, and
//! the root names a directory-like prefix (`s3://b/p` holds `p/...`, never `p2/...`).
//!
//! Guarantees that the rest of the worker relies on:
//! - a downloaded file appears under its final name only once it is complete and verified (size, and
//!   the store's checksum where it gives one); until then it lives under a temporary name ending in
//!   [`PARTIAL_SUFFIX`], removed when the download fails;
//! - [`upload_dir`] returns the uploaded objects only when every file was uploaded; a multipart upload
//!   that fails is aborted so that no partial object appears;
//! - a local file is uploaded only if it is a regular file that is still the inode that was listed
//!   (opened with `O_NOFOLLOW`, device and inode compared, see [`SourceFile`]): links are never
//!   followed when reading a tree to upload;
//! - [`Store::commit`] moves a staged tree into place as a whole (see the stores for how atomic
//!   that is);
//! - every [`StorageError`] names the URL it concerns and says whether retrying may help
//!   ([`StorageError::is_transient`]).

mod error;
mod file;
mod local;
mod s3;
mod s3_errors;
mod s3_multipart;
mod s3_settings;
mod stage;
mod upload;
mod url;

use std::path::Path;

use async_trait::async_trait;

pub use self::error::StorageError;
pub use self::file::FileStore;
pub use self::local::{file_kind as local_file_kind, SourceFile, PARTIAL_SUFFIX};
pub use self::s3::S3Store;
pub use self::s3_settings::S3Settings;
pub use self::stage::{stage, stage_from, StageReport};
pub use self::upload::{upload_dir, upload_dir_to, upload_files};

/// One object of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store's root, `/`-separated.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Content checksum given by the store, as `algorithm:value` (`md5:<hex>`), when it gives one.
    pub checksum: Option<String>,
}

/// An object store rooted at a URL.
#[async_trait]
pub trait Store: Send + Sync {
    /// The root URL, for messages.
    fn url(&self) -> String;

    /// Every object whose key (relative to the root) starts with `prefix`, following every page of
    /// the listing, sorted by key. Directory markers (keys ending in `/`) are skipped.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Downloads `object` to `dest`: written under a temporary name beside `dest`, verified against
    /// the listed size (and checksum where the store gives one), then renamed. Parent directories
    /// are created.
    async fn download(&self, object: &ObjectInfo, dest: &Path) -> Result<(), StorageError>;

    /// Uploads the local file `src` as `key` (relative to the root); large files go in parallel
    /// multipart uploads where the store has them. `src` must be a regular file: a link is refused,
    /// not followed.
    async fn upload(&self, src: &Path, key: &str) -> Result<ObjectInfo, StorageError> {
        let source = SourceFile::inspect(src)?;
        self.upload_file(&source, key).await
    }

    /// Uploads the checked local file `src` as `key`: only if it still is the inode that was
    /// checked (see [`SourceFile::open`]).
    async fn upload_file(&self, src: &SourceFile, key: &str) -> Result<ObjectInfo, StorageError>;

    /// Deletes every object under `prefix` (a directory-like prefix ending in `/`); nothing there is
    /// no error.
    async fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError>;

    /// Makes the objects under `staged` (a prefix ending in `/`) the whole content of `target`
    /// (another one): objects under `target` that are not among them are deleted, and `staged` is
    /// left empty. Returns the objects now under `target`.
    async fn commit(&self, staged: &str, target: &str) -> Result<Vec<ObjectInfo>, StorageError>;
}

/// Opens the store named by `url`: `s3://bucket[/prefix]` or `file:///absolute/path`.
///
/// S3 settings come from the environment (see [`S3Settings::from_env`]): `SWATH_WORKER_S3_ENDPOINT`
/// or `AWS_ENDPOINT_URL`, `AWS_REGION` (default `us-east-1`), `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and optionally `AWS_SESSION_TOKEN`. Requests are always path style.
pub fn open_store(url: &str) -> Result<Box<dyn Store>, StorageError> {
    match url::Location::parse(url)? {
        url::Location::S3 { bucket, prefix } => {
            let settings = S3Settings::from_env().map_err(|reason| StorageError::Config {
                url: url.to_owned(),
                reason,
            })?;
            Ok(Box::new(S3Store::new(&bucket, &prefix, settings)?))
        }
        url::Location::File { root } => Ok(Box::new(FileStore::new(root))),
    }
}

/// Joins a store's root URL and a key relative to it.
pub fn object_url(root_url: &str, key: &str) -> String {
    if key.is_empty() {
        root_url.to_owned()
    } else {
        format!("{}/{key}", root_url.trim_end_matches('/'))
    }
}
