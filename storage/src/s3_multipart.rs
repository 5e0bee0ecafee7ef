//! Multipart uploads with parts sent in parallel, aborted whenever they do not complete.

use std::path::Path;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use futures_util::{StreamExt, TryFutureExt, TryStreamExt};

use super::local::PinnedFile;
use super::s3::{plain_md5, S3Store};
use super::s3_errors::from_sdk;
use super::{ObjectInfo, StorageError};

/// S3's limit on the number of parts of one upload.
const MAX_PARTS: u64 = 10_000;

/// Uploads the open file `pinned` (`size` bytes, at `shown` for messages) as `key` in parts of the
/// store's part size (grown if the file would need more than 10,000 parts). On any failure the
/// upload is aborted before returning, so that no object and no stored part remain.
pub(crate) async fn upload(
    store: &S3Store,
    pinned: &PinnedFile,
    shown: &Path,
    key: &str,
    size: u64,
) -> Result<ObjectInfo, StorageError> {
    let src = pinned.path();
    let url = store.key_url(key);
    let full_key = store.full_key(key);
    let created = store
        .client
        .create_multipart_upload()
        .bucket(&store.bucket)
        .key(&full_key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .map_err(|e| from_sdk(e, &url))?;
    let Some(upload_id) = created.upload_id().map(str::to_owned) else {
        return Err(StorageError::Rejected {
            url,
            code: "CreateMultipartUpload".to_owned(),
            message: "no upload id in the answer".to_owned(),
        });
    };
    let mut guard = AbortGuard {
        client: store.client.clone(),
        bucket: store.bucket.clone(),
        key: full_key.clone(),
        upload_id: upload_id.clone(),
        armed: true,
    };
    let result = send_parts(store, src, &full_key, &upload_id, size, &url)
        .await
        .map_err(|e| match e {
            // The descriptor's path means nothing to a reader: name the file.
            StorageError::Local { source, .. } => StorageError::local(shown, source),
            other => other,
        });
    match result {
        Ok(e_tag) => {
            guard.armed = false;
            Ok(ObjectInfo {
                key: key.to_owned(),
                size,
                checksum: plain_md5(e_tag.as_deref()).map(|m| format!("md5:{m}")),
            })
        }
        Err(e) => {
            guard.armed = false;
            if let Err(abort) = guard.abort().await {
                tracing::warn!(url = %url, error = %abort, "cannot abort the multipart upload");
            }
            Err(e)
        }
    }
}

/// One multipart upload in progress.
struct Upload<'a> {
    store: &'a S3Store,
    src: &'a Path,
    full_key: &'a str,
    upload_id: &'a str,
    url: &'a str,
}

/// Uploads every part then completes the upload; returns the object's ETag.
async fn send_parts(
    store: &S3Store,
    src: &Path,
    full_key: &str,
    upload_id: &str,
    size: u64,
    url: &str,
) -> Result<Option<String>, StorageError> {
    let upload = Upload {
        store,
        src,
        full_key,
        upload_id,
        url,
    };
    let part_size = store.settings.part_size.max(size.div_ceil(MAX_PARTS));
    let count = size.div_ceil(part_size).max(1);
    let mut parts: Vec<CompletedPart> = futures_util::stream::iter(1..=count)
        .map(|number| {
            let offset = (number - 1) * part_size;
            let length = part_size.min(size - offset);
            upload
                .send_part(number, offset, length)
                .map_err(move |e| e.context(&format!("part {number} of {count}")))
        })
        .buffer_unordered(store.settings.part_concurrency.max(1))
        .try_collect()
        .await?;
    parts.sort_by_key(|p| p.part_number());
    let completed = store
        .client
        .complete_multipart_upload()
        .bucket(&store.bucket)
        .key(full_key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| from_sdk(e, url))?;
    Ok(completed.e_tag().map(str::to_owned))
}

impl Upload<'_> {
    async fn send_part(
        &self,
        number: u64,
        offset: u64,
        length: u64,
    ) -> Result<CompletedPart, StorageError> {
        let part_number = i32::try_from(number).unwrap_or(i32::MAX);
        let body = ByteStream::read_from()
            .path(self.src)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| StorageError::local(self.src, std::io::Error::other(e)))?;
        let output = self
            .store
            .client
            .upload_part()
            .bucket(&self.store.bucket)
            .key(self.full_key)
            .upload_id(self.upload_id)
            .part_number(part_number)
            .content_length(i64::try_from(length).unwrap_or(i64::MAX))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(body)
            .send()
            .await
            .map_err(|e| from_sdk(e, self.url))?;
        Ok(CompletedPart::builder()
            .part_number(part_number)
            .set_e_tag(output.e_tag().map(str::to_owned))
            .set_checksum_crc32(output.checksum_crc32().map(str::to_owned))
            .build())
    }
}

/// Aborts a multipart upload that is dropped before completing or being aborted (a cancelled
/// upload), in a task of its own.
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl AbortGuard {
    async fn abort(&self) -> Result<(), StorageError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(e, &format!("s3://{}/{}", self.bucket, self.key)))
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let guard = AbortGuard {
            client: self.client.clone(),
            bucket: std::mem::take(&mut self.bucket),
            key: std::mem::take(&mut self.key),
            upload_id: std::mem::take(&mut self.upload_id),
            armed: false,
        };
        runtime.spawn(async move {
            if let Err(e) = guard.abort().await {
                tracing::warn!(error = %e, "cannot abort a cancelled multipart upload");
            }
        });
    }
}
