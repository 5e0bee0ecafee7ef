//! The test server's S3 implementation: `s3s-fs` with S3's directory markers, capped listing pages
//! and injected faults.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;
use s3s::dto::*;
use s3s::stream::ByteStream;
use s3s::{s3_error, S3Request, S3Response, S3Result, StdError, S3};
use tokio::sync::oneshot;

/// Faults to inject into the test server, and what it observed.
#[derive(Debug, Default)]
pub struct Faults {
    page_limit: Mutex<Option<usize>>,
    list_requests: AtomicUsize,
    get_stall: Mutex<Option<Trip>>,
    part_stall: Mutex<Option<Trip>>,
    part_failure: Mutex<Option<usize>>,
    markers: Mutex<BTreeSet<(String, String)>>,
}

/// A fault that lets `pass` requests through, then fires once and tells the test.
#[derive(Debug)]
struct Trip {
    pass: usize,
    fired: Option<oneshot::Sender<()>>,
}

impl Trip {
    /// Counts one request; true for the one that trips.
    fn count(slot: &Mutex<Option<Trip>>) -> Option<oneshot::Sender<()>> {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        let trip = slot.as_mut()?;
        if trip.pass > 0 {
            trip.pass -= 1;
            return None;
        }
        slot.take().and_then(|t| t.fired)
    }
}

impl Faults {
    /// Answers at most `keys` keys per `ListObjectsV2` page, whatever the client asks for.
    pub fn limit_list_pages(&self, keys: usize) {
        *lock(&self.page_limit) = Some(keys.max(1));
    }

    /// `ListObjectsV2` requests answered so far.
    pub fn list_requests(&self) -> usize {
        self.list_requests.load(Ordering::SeqCst)
    }

    /// Lets `pass` `GetObject` requests through; the next one sends half of its body and then
    /// stalls forever. The receiver fires once that half is sent.
    pub fn stall_get_object(&self, pass: usize) -> oneshot::Receiver<()> {
        let (fired, receiver) = oneshot::channel();
        *lock(&self.get_stall) = Some(Trip {
            pass,
            fired: Some(fired),
        });
        receiver
    }

    /// Lets `pass` `UploadPart` requests through; the next one never answers. The receiver fires
    /// when it arrives.
    pub fn stall_upload_part(&self, pass: usize) -> oneshot::Receiver<()> {
        let (fired, receiver) = oneshot::channel();
        *lock(&self.part_stall) = Some(Trip {
            pass,
            fired: Some(fired),
        });
        receiver
    }

    /// Lets `pass` `UploadPart` requests through; every later one fails with 503.
    pub fn fail_upload_part(&self, pass: usize) {
        *lock(&self.part_failure) = Some(pass);
    }

    fn part_fails(&self) -> bool {
        let mut failure = lock(&self.part_failure);
        match failure.as_mut() {
            Some(0) => true,
            Some(pass) => {
                *pass -= 1;
                false
            }
            None => false,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `s3s-fs` behind [`Faults`].
pub(super) struct FaultyFs {
    inner: s3s_fs::FileSystem,
    root: PathBuf,
    faults: Arc<Faults>,
}

impl FaultyFs {
    pub(super) fn new(inner: s3s_fs::FileSystem, root: &Path, faults: Arc<Faults>) -> FaultyFs {
        FaultyFs {
            inner,
            root: root.to_path_buf(),
            faults,
        }
    }

    /// What a key naming one of s3s-fs's directories is: a marker (an empty object), or nothing
    /// (s3s-fs would answer 500 when reading it as a file). `None`: a file, for s3s-fs.
    fn directory(&self, bucket: &str, key: &str) -> Option<S3Result<()>> {
        if !self.root.join(bucket).join(key).is_dir() {
            return None;
        }
        let marker = (bucket.to_owned(), key.to_owned());
        if lock(&self.faults.markers).contains(&marker) {
            Some(Ok(()))
        } else {
            Some(Err(s3_error!(NoSuchKey)))
        }
    }
}

/// The ETag of empty content.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

#[async_trait::async_trait]
impl S3 for FaultyFs {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.faults.list_requests.fetch_add(1, Ordering::SeqCst);
        if req.input.delimiter.is_some() {
            return self.inner.list_objects_v2(req).await;
        }
        // s3s-fs lists files only: list everything, add the markers, then page as S3 does.
        let input = req.input.clone();
        let everything = req.map_input(|mut i| {
            i.continuation_token = None;
            i.start_after = None;
            i.max_keys = Some(i32::MAX);
            i
        });
        let listed = self.inner.list_objects_v2(everything).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut objects = listed.output.contents.unwrap_or_default();
        for (bucket, key) in lock(&self.faults.markers).iter() {
            if *bucket == input.bucket && key.starts_with(&prefix) {
                objects.push(Object {
                    key: Some(key.clone()),
                    size: Some(0),
                    last_modified: Some(Timestamp::from(SystemTime::now())),
                    ..Default::default()
                });
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        objects.dedup_by(|a, b| a.key == b.key);
        let after = input
            .continuation_token
            .clone()
            .max(input.start_after.clone());
        if let Some(after) = after {
            objects.retain(|o| o.key.as_deref().is_some_and(|k| k > after.as_str()));
        }
        let asked = input
            .max_keys
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(1000);
        let limit = lock(&self.faults.page_limit).map_or(asked, |cap| asked.min(cap));
        let truncated = objects.len() > limit;
        objects.truncate(limit);
        let next = if truncated {
            objects.last().and_then(|o| o.key.clone())
        } else {
            None
        };
        let output = ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            max_keys: Some(input.max_keys.unwrap_or(1000)),
            key_count: Some(i32::try_from(objects.len()).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            is_truncated: Some(truncated),
            next_continuation_token: next,
            contents: (!objects.is_empty()).then_some(objects),
            start_after: input.start_after,
            encoding_type: input.encoding_type,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if let Some(marker) = self.directory(&req.input.bucket, &req.input.key) {
            marker?;
            let empty = futures_util::stream::empty::<Result<Bytes, std::io::Error>>();
            return Ok(S3Response::new(GetObjectOutput {
                body: Some(StreamingBlob::wrap(empty)),
                content_length: Some(0),
                e_tag: Some(ETag::Strong(EMPTY_MD5.to_owned())),
                ..Default::default()
            }));
        }
        let mut response = self.inner.get_object(req).await?;
        if let Some(fired) = Trip::count(&self.faults.get_stall) {
            let length = response
                .output
                .content_length
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(0);
            if let Some(body) = response.output.body.take() {
                response.output.body = Some(StreamingBlob::new(StallHalfway {
                    inner: body,
                    remaining: length / 2,
                    fired: Some(fired),
                }));
            }
        }
        Ok(response)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let marker = (req.input.bucket.clone(), req.input.key.clone());
        let response = self.inner.put_object(req).await?;
        if marker.1.ends_with('/') {
            lock(&self.faults.markers).insert(marker);
        }
        Ok(response)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let marker = (req.input.bucket.clone(), req.input.key.clone());
        let response = self.inner.delete_object(req).await?;
        lock(&self.faults.markers).remove(&marker);
        Ok(response)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        if let Some(fired) = Trip::count(&self.faults.part_stall) {
            let _ = fired.send(());
            std::future::pending::<()>().await;
        }
        if self.faults.part_fails() {
            return Err(s3_error!(ServiceUnavailable, "injected part failure"));
        }
        self.inner.upload_part(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.inner.copy_object(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        if let Some(marker) = self.directory(&req.input.bucket, &req.input.key) {
            marker?;
            return Ok(S3Response::new(HeadObjectOutput {
                content_length: Some(0),
                e_tag: Some(ETag::Strong(EMPTY_MD5.to_owned())),
                ..Default::default()
            }));
        }
        self.inner.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.inner.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.inner.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.inner.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }
}

/// A body that sends its first `remaining` bytes, then stalls forever.
struct StallHalfway {
    inner: StreamingBlob,
    remaining: usize,
    fired: Option<oneshot::Sender<()>>,
}

impl Stream for StallHalfway {
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            if let Some(fired) = this.fired.take() {
                let _ = fired.send(());
            }
            // Never woken: the connection is dropped by the test.
            return Poll::Pending;
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(mut chunk))) => {
                chunk.truncate(this.remaining);
                this.remaining -= chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

impl ByteStream for StallHalfway {}
