//! An in-process S3 server on 127.0.0.1, for `bench stage` and the storage tests.
//!
//! It is `s3s-fs` (objects are files under a root directory, one directory per bucket) served by
//! hyper on a random port, with SigV4 authentication against fixed test credentials, behind
//! [`Faults`]: listing pages can be capped, directory markers are listed as real S3 lists them, and
//! failures can be injected (a download cut halfway, a part upload that never answers or fails).
//! [`TestServer::stop`] drops the listener and every open connection, as a crashed server would.

mod faults;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use self::faults::Faults;
use self::faults::FaultyFs;
use swath_storage::{S3Settings, S3Store, StorageError};

/// Access key id the test server accepts.
pub const TEST_ACCESS_KEY: &str = "swath-test-access-key";
/// Secret access key the test server accepts.
pub const TEST_SECRET_KEY: &str = "swath-test-secret-key";

/// A running in-process S3 server; stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    root: PathBuf,
    faults: Arc<Faults>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl TestServer {
    /// Starts a server keeping its objects under `root` (created if missing) on a random port
    /// of 127.0.0.1, its tasks on the current Tokio runtime.
    pub async fn start(root: &Path) -> std::io::Result<TestServer> {
        std::fs::create_dir_all(root)?;
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|e| std::io::Error::other(format!("s3s-fs on {}: {e:?}", root.display())))?;
        let faults = Arc::new(Faults::default());
        let service = {
            let mut builder = S3ServiceBuilder::new(FaultyFs::new(fs, root, Arc::clone(&faults)));
            builder.set_auth(SimpleAuth::from_single(TEST_ACCESS_KEY, TEST_SECRET_KEY));
            builder.build()
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, service, stopped));
        Ok(TestServer {
            addr,
            root: root.to_path_buf(),
            faults,
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a bucket (a directory under the root).
    pub fn create_bucket(&self, bucket: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join(bucket))
    }

    /// Where the server keeps the object `key` of `bucket`.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// The fault injection and observation handle.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Client settings for this server: its endpoint and credentials, and short retry delays.
    pub fn settings(&self) -> S3Settings {
        let mut settings = S3Settings::new(TEST_ACCESS_KEY, TEST_SECRET_KEY);
        settings.endpoint = Some(self.endpoint());
        settings.initial_backoff = Duration::from_millis(20);
        settings.connect_timeout = Duration::from_secs(5);
        settings.idle_timeout = Duration::from_secs(20);
        settings
    }

    /// A store of `s3://bucket/prefix` on this server with [`TestServer::settings`].
    pub fn store(&self, bucket: &str, prefix: &str) -> Result<S3Store, StorageError> {
        S3Store::new(bucket, prefix, self.settings())
    }

    /// Stops the server: the port is closed and every open connection dropped, mid-transfer
    /// included. Returns once everything is closed.
    pub async fn stop(&self) {
        self.shutdown.send_replace(true);
        let task = self.task.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn serve(listener: TcpListener, service: S3Service, mut stopped: watch::Receiver<bool>) {
    let builder = ConnBuilder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    let connection_stop = stopped.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let connection = builder
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                let mut stop = connection_stop.clone();
                connections.spawn(async move {
                    tokio::select! {
                        _ = connection => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
            _ = stopped.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}
