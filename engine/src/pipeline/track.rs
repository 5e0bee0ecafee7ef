//! Track: follow dispatched attempts through their executor, and settle those whose worker could
//! not report (see [`crate::attempt::executor`] for what each executor outcome and a timeout mean).
//! A timed-out or lost attempt is stopped once its failure is recorded, so that it never runs
//! beside its retry.
//!
//! Every change is a compare-and-set on the status and attempt seen at the start of the round, so a
//! report the worker made meanwhile wins and the round's view of it is dropped.

use sqlx::PgPool;

use super::retry::record_failure;
use crate::attempt::executor::{failure_of, overrun, stop_after, timeout_failure};
use crate::attempt::failure::{AttemptBackoff, StatusTimeouts};
use crate::db::tracking::in_flight_jobs;
use crate::db::tracking::TrackScope;
use crate::db::DbError;
use crate::executor::{AttemptOutcome, Executor};

/// What one tracking round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackReport {
    /// Attempts looked at.
    pub tracked: usize,
    /// Attempts settled here (retried or failed).
    pub settled: usize,
    /// Attempts stopped for a timeout.
    pub timed_out: usize,
}

/// One round over up to `limit` jobs in flight (only those of `owner` when given).
pub async fn track_round(
    pool: &PgPool,
    executor: &dyn Executor,
    timeouts: &StatusTimeouts,
    backoff: AttemptBackoff,
    owner: Option<uuid::Uuid>,
    limit: i64,
) -> Result<TrackReport, DbError> {
    track_round_in(pool, executor, timeouts, backoff, owner.into(), limit).await
}

/// One round over up to `limit` jobs in flight within `scope`.
pub async fn track_round_in(
    pool: &PgPool,
    executor: &dyn Executor,
    timeouts: &StatusTimeouts,
    backoff: AttemptBackoff,
    scope: TrackScope,
    limit: i64,
) -> Result<TrackReport, DbError> {
    let mut report = TrackReport::default();
    let prefix = format!("{}/", executor.name());
    for job in in_flight_jobs(pool, &prefix, scope, limit).await? {
        let Some(reference) = job.executor_ref.clone() else {
            continue;
        };
        report.tracked += 1;
        let outcome = match executor.outcome(&reference).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(job_id = job.id, job_type = %job.job_type, executor = executor.name(), error = %e, "cannot read the attempt's outcome");
                continue;
            }
        };
        let (failure, timed_out) = match failure_of(&outcome) {
            Some(failure) => (failure, false),
            None => {
                let now = chrono::Utc::now();
                let Some(limit) = overrun(timeouts, job.status, job.status_changed_at, now) else {
                    continue;
                };
                // Still waiting for a place to run: say why, when the executor knows.
                let pending_reason = match outcome {
                    AttemptOutcome::Pending => executor.pending_reason(&reference).await,
                    _ => None,
                };
                (timeout_failure(job.status, limit, pending_reason), true)
            }
        };
        match record_failure(pool, &job, &failure, backoff, None).await {
            Ok(_) => {
                report.settled += 1;
                // Stopped only once the failure is recorded: a worker that reported progress
                // meanwhile keeps running.
                if timed_out {
                    report.timed_out += 1;
                }
                if timed_out || stop_after(&outcome) {
                    if let Err(e) = executor.stop(&reference).await {
                        tracing::warn!(job_id = job.id, job_type = %job.job_type, error = %e, "cannot stop a timed-out or lost attempt; it was retried anyway");
                    }
                }
            }
            // The worker reported meanwhile: its report stands.
            Err(DbError::LostRace { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
