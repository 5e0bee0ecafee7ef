//! Claiming ready jobs for dispatch: `FOR UPDATE SKIP LOCKED` in priority order, stamped with the
//! claiming instance and a lease, in one short statement.
//!
//! A claim does not change the status: the job stays `ready` until its dispatch is recorded
//! (`ready -> queued`). If the instance dies in between, the lease runs out and another instance
//! claims the job again; it dispatches with the same idempotency token (`<uid>-<attempt>`), so the
//! executor does not run it twice.

use std::time::Duration;

use sqlx::PgExecutor;
use swath_domain::{Job, JobStatus};
use uuid::Uuid;

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::{status_is, DbError};

/// Who claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimant {
    /// The orchestrator instance.
    pub service_id: Uuid,
    /// Its tag (host, name), stored on the jobs it owns.
    pub tag: serde_json::Value,
    /// How long a claim holds before another instance may take the job.
    pub lease: Duration,
}

/// Claims up to `limit` ready jobs of `job_types` that are due (their next attempt time passed) and
/// not leased by someone else: `nrt` first, then `delayed`, then `reprocessing`, oldest input first.
pub async fn claim_ready_jobs<'e>(
    db: impl PgExecutor<'e>,
    claimant: &Claimant,
    job_types: &[String],
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    if limit <= 0 || job_types.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "WITH claimable AS (
             SELECT id FROM jobs
             WHERE {ready} AND job_type = ANY ($1)
               AND (next_attempt_at IS NULL OR next_attempt_at <= clock_timestamp())
               AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp() OR service_id = $3)
             ORDER BY priority, input_published_at NULLS LAST, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         ),
         claimed AS (
             UPDATE jobs j
             SET service_id = $3, tag = $4, lease_expires_at = clock_timestamp() + make_interval(secs => $5)
             FROM claimable c
             WHERE j.id = c.id
             RETURNING j.*
         )
         SELECT {JOB_COLUMNS} FROM claimed
         ORDER BY claimed.priority, claimed.input_published_at NULLS LAST, claimed.id",
        ready = status_is("status", JobStatus::Ready)
    ))
    .bind(job_types)
    .bind(limit)
    .bind(claimant.service_id)
    .bind(&claimant.tag)
    .bind(claimant.lease.as_secs_f64())
    .fetch_all(db)
    .await?;
    rows.iter().map(job_from_row).collect()
}
