//! Claiming ready jobs for dispatch: `FOR UPDATE SKIP LOCKED` in priority order, stamped with the
//! claiming instance and a lease, in one short statement.
//!
//! A claim does not change the status: the job stays `ready` until its dispatch is recorded
//! (`ready -> queued`). If the instance dies in between, the lease runs out and another instance
//! claims the job again; it dispatches with the same idempotency token (`<uid>-<attempt>`), so the
//! executor does not run it twice.

use std::time::Duration;

use sqlx::PgPool;
use swath_domain::{Job, JobStatus};
use uuid::Uuid;

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::{status_in_flight, status_is, DbError};

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

/// The statement that serializes claims (and campaign pauses and resumes): a campaign's free slots
/// are counted and taken by one claimer at a time.
pub(crate) const CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('swath_claims'))";

/// Claims up to `limit` ready jobs of `job_types` that are due (their next attempt time passed) and
/// not leased by someone else: `nrt` first, then `delayed`, then `reprocessing`, oldest input first.
///
/// A job of a campaign is claimed unless its campaign is `paused` (or `cancelled` before the job was
/// created: those jobs are being cancelled with it), and only into the campaign's free slots:
/// `max_in_flight` less its jobs in flight (`queued` to `post_processing`) and those claimed by
/// other instances and not dispatched yet. A campaign that is over still lets its jobs run at its
/// pace: those its failed listing had created, and the retries of its jobs asked for later. Claims take
/// [`CLAIM_LOCK`] first and count in a statement that starts after it, so two instances never
/// both fill the same free slot.
pub async fn claim_ready_jobs(
    pool: &PgPool,
    claimant: &Claimant,
    job_types: &[String],
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    if limit <= 0 || job_types.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    sqlx::query(CLAIM_LOCK).execute(&mut *tx).await?;
    let due = "job_type = ANY ($1)
               AND (next_attempt_at IS NULL OR next_attempt_at <= clock_timestamp())
               AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp() OR service_id = $3)";
    let rows = sqlx::query(&format!(
        "WITH budget AS (
             SELECT c.id, c.state, c.state_changed_at, c.max_in_flight
                    - (SELECT count(*) FROM jobs f WHERE f.campaign_id = c.id AND {in_flight})
                    - (SELECT count(*) FROM jobs f
                       WHERE f.campaign_id = c.id AND {claimed_ready} AND f.lease_expires_at IS NOT NULL
                         AND f.lease_expires_at >= clock_timestamp() AND f.service_id <> $3) AS free
             FROM campaigns c
             WHERE c.state <> 'paused'
               AND EXISTS (SELECT 1 FROM jobs r WHERE r.campaign_id = c.id AND {ready})
         ),
         candidates AS (
             (SELECT id FROM jobs
              WHERE {ready} AND campaign_id IS NULL AND {due}
              ORDER BY priority, input_published_at NULLS LAST, id
              LIMIT $2)
             UNION ALL
             (SELECT own.id FROM budget b CROSS JOIN LATERAL (
                  SELECT id FROM jobs
                  WHERE {ready} AND campaign_id = b.id AND {due}
                    AND (b.state <> 'cancelled' OR created_at > b.state_changed_at)
                  ORDER BY priority, input_published_at NULLS LAST, id
                  LIMIT greatest(b.free, 0)) own)
         ),
         claimable AS (
             SELECT id FROM jobs
             WHERE id IN (SELECT id FROM candidates) AND {ready} AND {due}
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
        ready = status_is("status", JobStatus::Ready),
        in_flight = status_in_flight("f.status"),
        claimed_ready = status_is("f.status", JobStatus::Ready),
    ))
    .bind(job_types)
    .bind(limit)
    .bind(claimant.service_id)
    .bind(&claimant.tag)
    .bind(claimant.lease.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter().map(job_from_row).collect()
}
