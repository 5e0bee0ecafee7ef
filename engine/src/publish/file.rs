//! The JSON-lines file publisher, the embedded default: each message is one line
//! `{"message_id", "routing_key", "body"}` appended to a file, confirmed once the file is synced.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{PublishError, Publisher};
use crate::config::Encoding;
use crate::db::publications::Outgoing;

/// Appends messages to a file.
pub struct FilePublisher {
    path: PathBuf,
    routing_key: String,
    encoding: Encoding,
    lock: Mutex<()>,
}

impl FilePublisher {
    /// A publisher appending to `path`, naming `routing_key` in each line.
    pub fn new(path: PathBuf, routing_key: String, encoding: Encoding) -> Self {
        FilePublisher {
            path,
            routing_key,
            encoding,
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl Publisher for FilePublisher {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn publish(&self, messages: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        let _one_writer = self.lock.lock().await;
        let mut lines = Vec::new();
        for m in messages {
            let body = String::from_utf8(self.encoding.body(&m.message)).unwrap_or_default();
            let line = serde_json::json!({
                "message_id": m.message_id,
                "routing_key": self.routing_key,
                "body": serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
            });
            lines.extend(line.to_string().into_bytes());
            lines.push(b'\n');
        }
        let written = async {
            if let Some(dir) = self.path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await?;
            file.write_all(&lines).await?;
            file.sync_data().await
        }
        .await;
        let answer = written
            .map_err(|e| PublishError(format!("cannot append to {}: {e}", self.path.display())));
        messages.iter().map(|_| answer.clone()).collect()
    }
}
