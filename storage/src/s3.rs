//! The `s3://` store, through `aws-sdk-s3`: any S3-compatible server, path-style requests.
//!
//! A product is committed from its staging prefix by a server-side copy of each object
//! (`CopyObject`), then the deletion of the final prefix's objects that are not part of it, then
//! of the staged objects. S3 has no multi-object transaction: a kill during the commit leaves the
//! final prefix with some objects of the new product beside objects of the previous one (or none),
//! and the staged objects in place; the attempt reports nothing, and the next attempt deletes the
//! staged leftovers, uploads again and commits over the mixed prefix, which leaves it holding
//! exactly the new product.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ServerSideEncryption};
use aws_sdk_s3::Client;
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::local::{PartialFile, SourceFile};
use super::s3_errors::from_sdk;
use super::s3_settings::{check_endpoint, sdk_client, MIB, MIN_PART_SIZE};
use super::{object_url, s3_multipart, ObjectInfo, S3Settings, StorageError, Store};

/// A bucket, or a prefix of it, on an S3-compatible server.
#[derive(Debug, Clone)]
pub struct S3Store {
    pub(crate) client: Client,
    pub(crate) bucket: String,
    /// Without leading or trailing `/`; empty for the whole bucket.
    prefix: String,
    pub(crate) settings: S3Settings,
}

impl S3Store {
    /// The store of `s3://bucket/prefix` with `settings`.
    pub fn new(bucket: &str, prefix: &str, settings: S3Settings) -> Result<S3Store, StorageError> {
        let prefix = prefix.trim_matches('/').to_owned();
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let config = |reason: String| StorageError::Config {
            url: url.clone(),
            reason,
        };
        if let Some(endpoint) = &settings.endpoint {
            check_endpoint(endpoint).map_err(config)?;
        }
        if settings.part_size < MIN_PART_SIZE {
            return Err(config(format!(
                "part size {} is below S3's minimum of 5 MiB",
                settings.part_size
            )));
        }
        Ok(S3Store {
            client: sdk_client(&settings),
            bucket: bucket.to_owned(),
            prefix,
            settings,
        })
    }

    /// The SDK client, for operations this store does not offer.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The full key in the bucket of `key` (relative to the root).
    pub(crate) fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    pub(crate) fn key_url(&self, key: &str) -> String {
        object_url(&self.url(), key)
    }

    async fn read_body(
        &self,
        object: &ObjectInfo,
        response: GetObjectOutput,
        dest: &Path,
    ) -> Result<(), StorageError> {
        let url = self.key_url(&object.key);
        let integrity = |message: String| StorageError::Integrity {
            url: url.clone(),
            message,
        };
        let expected_md5 = expected_md5(object, &response);
        let mut md5 = expected_md5.as_ref().map(|_| Md5::new());
        let (partial, file) = PartialFile::create(dest).await?;
        let local = |e| StorageError::local(partial.temp_path(), e);
        let mut out = tokio::io::BufWriter::with_capacity(MIB as usize, file);
        let mut body = response.body;
        let mut received = 0u64;
        loop {
            let chunk = match tokio::time::timeout(self.settings.idle_timeout, body.next()).await {
                Err(_) => {
                    return Err(StorageError::Timeout {
                        url,
                        message: format!(
                            "no data for {:?} after {received} bytes",
                            self.settings.idle_timeout
                        ),
                    })
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(StorageError::Unavailable {
                        url,
                        message: format!(
                            "transfer failed after {received} of {} bytes: {}",
                            object.size,
                            DisplayErrorContext(&e)
                        ),
                    })
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            received += chunk.len() as u64;
            if received > object.size {
                return Err(integrity(format!(
                    "listed with {} bytes, received more",
                    object.size
                )));
            }
            if let Some(md5) = md5.as_mut() {
                md5.update(&chunk);
            }
            out.write_all(&chunk).await.map_err(local)?;
        }
        out.flush().await.map_err(local)?;
        if received != object.size {
            return Err(integrity(format!(
                "listed with {} bytes, received {received}",
                object.size
            )));
        }
        if let (Some(expected), Some(md5)) = (expected_md5, md5) {
            let actual = hex(&md5.finalize());
            if actual != expected {
                return Err(integrity(format!(
                    "MD5 {actual} differs from the store's {expected}"
                )));
            }
        }
        drop(out);
        partial.commit().await
    }
}

/// Requests of a commit or deletion sent at once.
const COPY_CONCURRENCY: usize = 8;
/// The largest object `CopyObject` copies (5 GiB).
const MAX_COPY_SIZE: u64 = 5 * 1024 * 1024 * 1024;

impl S3Store {
    /// Copies the object `from` to `to` (keys relative to the root) on the server.
    async fn copy(&self, from: &ObjectInfo, to: &str) -> Result<(), StorageError> {
        let url = self.key_url(to);
        if from.size > MAX_COPY_SIZE {
            return Err(StorageError::Rejected {
                url,
                code: "CopyObject".to_owned(),
                message: format!(
                    "{} is {} bytes: objects over 5 GiB cannot be copied into place",
                    self.key_url(&from.key),
                    from.size
                ),
            });
        }
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.full_key(to))
            .copy_source(format!(
                "{}/{}",
                self.bucket,
                encode_copy_source(&self.full_key(&from.key))
            ))
            .send()
            .await
            .map_err(|e| from_sdk(e, &url))?;
        Ok(())
    }

    /// Deletes the object `key`.
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| from_sdk(e, &self.key_url(key)))?;
        Ok(())
    }

    /// Deletes every object of `keys`, several at once.
    async fn delete_all(&self, keys: Vec<&str>) -> Result<(), StorageError> {
        let deletions: Vec<_> = keys.into_iter().map(|key| self.delete(key)).collect();
        futures_util::stream::iter(deletions)
            .buffer_unordered(COPY_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}

/// A key as `x-amz-copy-source` takes it: percent-encoded, `/` kept.
fn encode_copy_source(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The MD5 an object's bytes must have: the listed checksum, or a plain (single-part, not
/// KMS- or customer-key-encrypted) ETag.
fn expected_md5(object: &ObjectInfo, response: &GetObjectOutput) -> Option<String> {
    if let Some(md5) = object
        .checksum
        .as_deref()
        .and_then(|c| c.strip_prefix("md5:"))
    {
        return Some(md5.to_owned());
    }
    let encrypted_with_key = matches!(
        response.server_side_encryption(),
        Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
    ) || response.sse_customer_algorithm().is_some();
    if encrypted_with_key {
        return None;
    }
    plain_md5(response.e_tag())
}

/// The MD5 in an ETag that is one (32 hex digits, quotes allowed).
pub(crate) fn plain_md5(etag: Option<&str>) -> Option<String> {
    let etag = etag?.trim_matches('"');
    (etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| etag.to_ascii_lowercase())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl Store for S3Store {
    fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let url = self.key_url(prefix);
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(format!("{root}{prefix}"))
                .set_max_keys(self.settings.list_page_size)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| from_sdk(e, &url))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&root)) else {
                    continue;
                };
                if key.is_empty() || key.ends_with('/') {
                    continue;
                }
                objects.push(ObjectInfo {
                    key: key.to_owned(),
                    size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                    checksum: plain_md5(object.e_tag()).map(|m| format!("md5:{m}")),
                });
            }
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            match page.next_continuation_token() {
                Some(next) if Some(next) != token.as_deref() => token = Some(next.to_owned()),
                _ => {
                    return Err(StorageError::Rejected {
                        url,
                        code: "ListObjectsV2".to_owned(),
                        message: "a truncated listing page without a new continuation token"
                            .to_owned(),
                    })
                }
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn download(&self, object: &ObjectInfo, dest: &Path) -> Result<(), StorageError> {
        let url = self.key_url(&object.key);
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(&object.key))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| from_sdk(e, &url))?;
        if let Some(length) = response.content_length() {
            if u64::try_from(length).ok() != Some(object.size) {
                return Err(StorageError::Integrity {
                    url,
                    message: format!(
                        "listed with {} bytes, the store now serves {length}",
                        object.size
                    ),
                });
            }
        }
        self.read_body(object, response, dest).await
    }

    async fn upload_file(&self, src: &SourceFile, key: &str) -> Result<ObjectInfo, StorageError> {
        // Every read of the body (retries included) goes through the file opened and checked here.
        let pinned = src.pin()?;
        let size = src.size;
        if size > self.settings.multipart_threshold {
            return s3_multipart::upload(self, &pinned, &src.path, key, size).await;
        }
        let url = self.key_url(key);
        let body = ByteStream::read_from()
            .path(pinned.path())
            .length(aws_sdk_s3::primitives::Length::Exact(size))
            .build()
            .await
            .map_err(|e| StorageError::local(&src.path, std::io::Error::other(e)))?;
        let output = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(body)
            .send()
            .await
            .map_err(|e| from_sdk(e, &url))?;
        drop(pinned);
        Ok(ObjectInfo {
            key: key.to_owned(),
            size,
            checksum: plain_md5(output.e_tag()).map(|m| format!("md5:{m}")),
        })
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        let objects = self.list(prefix).await?;
        self.delete_all(objects.iter().map(|o| o.key.as_str()).collect())
            .await
    }

    async fn commit(&self, staged: &str, target: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let objects = self.list(staged).await?;
        let wanted: BTreeMap<String, &ObjectInfo> = objects
            .iter()
            .map(|o| (format!("{target}{}", &o.key[staged.len()..]), o))
            .collect();
        let copies: Vec<_> = wanted
            .iter()
            .map(|(to, from)| self.copy(from, to))
            .collect();
        futures_util::stream::iter(copies)
            .buffer_unordered(COPY_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let present = self.list(target).await?;
        self.delete_all(
            present
                .iter()
                .filter(|o| !wanted.contains_key(&o.key))
                .map(|o| o.key.as_str())
                .collect(),
        )
        .await?;
        let committed = self.list(target).await?;
        let listed: Vec<&str> = committed.iter().map(|o| o.key.as_str()).collect();
        let expected: Vec<&str> = wanted.keys().map(String::as_str).collect();
        if listed != expected {
            return Err(StorageError::Integrity {
                url: self.key_url(target),
                message: format!("after the commit it lists {listed:?}, expected {expected:?}"),
            });
        }
        for object in &committed {
            let from = wanted[&object.key];
            let same_md5 = match (&from.checksum, &object.checksum) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if object.size != from.size || !same_md5 {
                return Err(StorageError::Integrity {
                    url: self.key_url(&object.key),
                    message: format!(
                        "copied from {} ({} bytes, {:?}) but lists {} bytes, {:?}",
                        self.key_url(&from.key),
                        from.size,
                        from.checksum,
                        object.size,
                        object.checksum
                    ),
                });
            }
        }
        self.delete_all(objects.iter().map(|o| o.key.as_str()).collect())
            .await?;
        Ok(committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(
            encode_copy_source("a/b c/ü+x.tif"),
            "a/b%20c/%C3%BC%2Bx.tif"
        );
    }

    #[test]
    fn only_plain_etags_are_md5s() {
        assert_eq!(
            plain_md5(Some("\"0123456789ABCDEF0123456789abcdef\"")).as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            plain_md5(Some("\"0123456789abcdef0123456789abcdef-3\"")),
            None
        );
        assert_eq!(plain_md5(None), None);
    }
}
