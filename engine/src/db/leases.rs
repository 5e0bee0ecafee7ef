//! Who owns a job: the jobs of instances that are gone (their lease ran out and their instance is
//! not alive), handing them back or adopting them, and what an instance lets go when it stops.
//! Each change is a compare-and-set on the owner, status and attempt that were read.

use std::time::Duration;

use sqlx::PgExecutor;
use swath_domain::{Job, JobStatus};
use uuid::Uuid;

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::{status_between, status_in_flight, status_is, DbError};

/// Up to `limit` claimed or dispatched jobs (ready to post-processing) whose owner is not an alive
/// instance and whose lease ran out, oldest first.
pub async fn orphaned_jobs<'e>(db: impl PgExecutor<'e>, limit: i64) -> Result<Vec<Job>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs j
         WHERE j.service_id IS NOT NULL AND {claimed_or_in_flight}
           AND (j.lease_expires_at IS NULL OR j.lease_expires_at < clock_timestamp())
           AND NOT EXISTS (SELECT 1 FROM services s WHERE s.id = j.service_id AND s.state = 'alive')
         ORDER BY j.id LIMIT $1",
        claimed_or_in_flight =
            status_between("j.status", JobStatus::Ready, JobStatus::PostProcessing)
    ))
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(job_from_row).collect()
}

/// Clears the owner of `job` (as read: same owner, status and attempt) so that any instance may
/// claim it. Returns whether it did.
pub async fn release<'e>(db: impl PgExecutor<'e>, job: &Job) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE jobs SET service_id = NULL, tag = NULL, lease_expires_at = NULL
         WHERE id = $1 AND service_id = $2 AND status = $3 AND attempt = $4",
    )
    .bind(job.id)
    .bind(job.service_id)
    .bind(job.status.id())
    .bind(job.attempt)
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Makes `service_id` (with `tag`) the owner of `job` (as read), with a fresh lease. Returns whether
/// it did.
pub async fn adopt<'e>(
    db: impl PgExecutor<'e>,
    job: &Job,
    service_id: Uuid,
    tag: &serde_json::Value,
    lease: Duration,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE jobs SET service_id = $5, tag = $6,
             lease_expires_at = clock_timestamp() + make_interval(secs => $7)
         WHERE id = $1 AND service_id IS NOT DISTINCT FROM $2 AND status = $3 AND attempt = $4",
    )
    .bind(job.id)
    .bind(job.service_id)
    .bind(job.status.id())
    .bind(job.attempt)
    .bind(service_id)
    .bind(tag)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// What a stopping instance lets go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Ready jobs it had claimed and not dispatched: free for anyone at once.
    pub claims: u64,
    /// Dispatched jobs: their leases end now, so that the others take them over at once.
    pub dispatched: u64,
}

/// Lets go of what `service_id` owns: its claims of ready jobs are cleared, the leases of its
/// dispatched jobs end now.
pub async fn release_all<'e>(
    db: impl PgExecutor<'e>,
    service_id: Uuid,
) -> Result<Released, DbError> {
    let (claims, dispatched): (i64, i64) = sqlx::query_as(&format!(
        "WITH claims AS (
             UPDATE jobs SET service_id = NULL, tag = NULL, lease_expires_at = NULL
             WHERE service_id = $1 AND {ready}
             RETURNING 1
         ),
         dispatched AS (
             UPDATE jobs SET lease_expires_at = clock_timestamp()
             WHERE service_id = $1 AND {in_flight}
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM claims), (SELECT count(*) FROM dispatched)",
        ready = status_is("status", JobStatus::Ready),
        in_flight = status_in_flight("status")
    ))
    .bind(service_id)
    .fetch_one(db)
    .await?;
    Ok(Released {
        claims: claims as u64,
        dispatched: dispatched as u64,
    })
}

/// How many dispatched jobs (queued to post-processing) `service_id` owns.
pub async fn owned_in_flight<'e>(
    db: impl PgExecutor<'e>,
    service_id: Uuid,
) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT count(*) FROM jobs WHERE service_id = $1 AND {in_flight}",
        in_flight = status_in_flight("status")
    ))
    .bind(service_id)
    .fetch_one(db)
    .await?)
}
