//! What a job type may ask of the orchestrator: database lookups, behind a small trait.
//!
//! The orchestrator implements [`JobContext`] on top of PostgreSQL; tests may implement it on top of a
//! real database too. Job types never see a connection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::job::Job;
use crate::status::JobStatus;

/// A lookup that failed (database unreachable, timeout...). Always worth retrying later.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ContextError {
    /// What was being looked up.
    pub what: String,
    /// The underlying failure.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Lookups available to job types.
#[async_trait]
pub trait JobContext: Send + Sync {
    /// Jobs of `job_type` (retries excluded) whose input product id is one of `product_ids`.
    async fn jobs_with_products(
        &self,
        job_type: &str,
        product_ids: &[String],
    ) -> Result<Vec<Job>, ContextError>;

    /// Jobs of `job_type` (retries excluded) sensed at any of `times`: the products listed before,
    /// and other versions or duplicates of new products.
    async fn jobs_measured_at(
        &self,
        job_type: &str,
        times: &[DateTime<Utc>],
    ) -> Result<Vec<Job>, ContextError>;

    /// The most recent job of `job_type` on `tile` measured strictly before `before`, skipping jobs in
    /// any of `excluded` statuses and retried originals (their retry stands for them).
    async fn previous_job_on_tile(
        &self,
        job_type: &str,
        tile: &str,
        before: DateTime<Utc>,
        excluded: &[JobStatus],
    ) -> Result<Option<Job>, ContextError>;
}
