//! One shape for the long-running loops of an instance (configuration, dispatch, tracking,
//! publication, heartbeat, leader, background jobs, ingestion, the HTTP API): a [`Service`] has a
//! name and runs until its shutdown token is cancelled. `startup` starts them all from one table
//! and stops them in two groups.

use async_trait::async_trait;
pub use tokio_util::sync::CancellationToken;

/// A loop of a running instance.
#[async_trait]
pub trait Service: Send + 'static {
    /// Its name in logs (`dispatch`, `tracking`...).
    fn name(&self) -> &'static str;

    /// Runs until `shutdown` is cancelled, then ends its current step and returns. A step in
    /// progress when the instance gives up waiting is rolled back and done again by the next one.
    async fn run(self: Box<Self>, shutdown: CancellationToken);
}
