//! Queries of the configuration loop: new jobs, waiting jobs that are due, and recording a wait.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use swath_domain::{Job, JobStatus};

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::{status_is, DbError};

/// Statuses in which a job no longer changes what the jobs waiting for it need; reaching one wakes
/// them up (the `jobs_wake_dependents` trigger lists the same ids).
pub const SETTLED: [JobStatus; 6] = [
    JobStatus::Processed,
    JobStatus::StartPublication,
    JobStatus::Published,
    JobStatus::Done,
    JobStatus::InternalError,
    JobStatus::Cancelled,
];

/// Up to `limit` new (`initialized`) jobs of `job_type`, oldest sensing first.
pub async fn new_jobs<'e>(
    db: impl PgExecutor<'e>,
    job_type: &str,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE job_type = $1 AND {initialized}
         ORDER BY measured_at NULLS LAST, id LIMIT $2",
        initialized = status_is("status", JobStatus::Initialized)
    ))
    .bind(job_type)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(job_from_row).collect()
}

/// Up to `limit` waiting (`configured`) jobs of `job_type` that are due for another look: the job
/// they wait for settled, or their safety recheck time passed.
pub async fn due_waiting_jobs<'e>(
    db: impl PgExecutor<'e>,
    job_type: &str,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE job_type = $1 AND {configured} AND (recheck_at IS NULL OR recheck_at <= clock_timestamp())
         ORDER BY recheck_at NULLS FIRST, measured_at, id LIMIT $2",
        configured = status_is("status", JobStatus::Configured)
    ))
    .bind(job_type)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(job_from_row).collect()
}

/// Records that configured job `job_id` (at `attempt`) waits for `on`, with new `params` if given.
/// It is due again at `recheck_at`, or at once if `on` has already settled (which closes the race
/// with a dependency that settles while the decision is being made). Returns false if the job is no
/// longer configured at that attempt.
pub async fn set_waiting(
    conn: &mut PgConnection,
    job_id: i64,
    attempt: i32,
    on: Option<i64>,
    recheck_at: DateTime<Utc>,
    params: Option<&serde_json::Value>,
) -> Result<bool, DbError> {
    let settled: Vec<i16> = SETTLED.iter().map(|s| s.id()).collect();
    // Lock the dependency's row first: a settling change of it either committed before (and is seen
    // below) or waits for this transaction (and its trigger then sees the new `depends_on`).
    if let Some(on) = on {
        sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR SHARE")
            .bind(on)
            .execute(&mut *conn)
            .await?;
    }
    let done = sqlx::query(
        "UPDATE jobs SET depends_on = $3,
                recheck_at = CASE WHEN (SELECT d.status FROM jobs d WHERE d.id = $3) = ANY ($4)
                                  THEN clock_timestamp() ELSE $5 END,
                params = coalesce($6, params)
         WHERE id = $1 AND status = $7 AND attempt = $2",
    )
    .bind(job_id)
    .bind(attempt)
    .bind(on)
    .bind(&settled)
    .bind(recheck_at)
    .bind(params)
    .bind(JobStatus::Configured.id())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
