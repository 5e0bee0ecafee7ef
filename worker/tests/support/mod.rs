//! Helpers shared by the storage tests: an in-process S3 server per test, generated trees of
//! files, and the independent clients the tests compare with.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use swath_s3_test_server::TestServer;
use swath_storage::{S3Store, StorageError};
use tempfile::TempDir;

/// The bucket every test server starts with.
pub const BUCKET: &str = "data";

/// A test server with its directory; both go away when dropped.
pub struct S3Fixture {
    pub dir: TempDir,
    pub server: TestServer,
}

impl S3Fixture {
    /// Starts a server with the bucket [`BUCKET`].
    pub async fn start() -> S3Fixture {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(&dir.path().join("server")).await.unwrap();
        server.create_bucket(BUCKET).unwrap();
        S3Fixture { dir, server }
    }

    /// A store of `s3://data/prefix` on the server.
    pub fn store(&self, prefix: &str) -> S3Store {
        self.server.store(BUCKET, prefix).unwrap()
    }

    /// A fresh directory inside the fixture's.
    pub fn local_dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// Puts `bytes` as `key` with the SDK directly (not through the code under test).
    pub async fn put(&self, key: &str, bytes: &[u8]) {
        self.store("")
            .client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot put {key}: {e:?}"));
    }
}

/// `len` deterministic pseudo-random bytes, different for each `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Writes every `(relative path, bytes)` under `dir`.
pub fn write_tree(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// Every regular file under `dir`, by `/`-separated relative path.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return files;
    }
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(current) = dirs.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap();
                let key: Vec<_> = rel
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                files.insert(key.join("/"), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Awaits `future`, failing the test if it takes longer than `seconds`.
pub async fn within<T>(seconds: u64, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {seconds} s"))
}

/// The path of an external tool installed from Debian; fails the test, naming the package, when
/// it is missing.
pub fn require_tool(path: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{} is missing: install Debian's `{package}` (bash scripts/tools-storage.sh)",
        path.display()
    );
    path
}

/// Asserts that `error` is transient and names `url`.
pub fn assert_transient(error: &StorageError, url: &str) {
    assert!(error.is_transient(), "not transient: {error:?}");
    assert!(
        error.to_string().contains(url),
        "`{url}` not named: {error}"
    );
}

/// Asserts that `error` is permanent and names `url`.
pub fn assert_permanent(error: &StorageError, url: &str) {
    assert!(!error.is_transient(), "transient: {error:?}");
    assert!(
        error.to_string().contains(url),
        "`{url}` not named: {error}"
    );
}
