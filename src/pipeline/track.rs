//! Track: follow dispatched attempts through their executor, and settle those whose worker could
//! not report. The worker reports its own statuses and result; this round covers what it cannot:
//!
//! | executor says | and the job is still in flight | becomes |
//! |---|---|---|
//! | exited 0 | no result was reported | internal error |
//! | exited 2 | (the worker asks for a retry) | external error: a new attempt |
//! | exited with another code | | internal error |
//! | failed without an exit code, or unknown | | external error: a new attempt |
//! | lost | | stopped (a replacement must not run), external error |
//! | still pending or running past its status timeout | | stopped, external error |
//!
//! Every change is a compare-and-set on the status and attempt seen at the start of the round, so a
//! report the worker made meanwhile wins and the round's view of it is dropped.

use sqlx::PgPool;
use swath_job_types::Job;

use super::retry::{record_failure, AttemptBackoff, Failure, StatusTimeouts};
use crate::db::jobs::{job_from_row, JOB_COLUMNS};
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

/// Which attempts in flight an instance tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackScope {
    /// Every one.
    All,
    /// Only those of this instance: an executor that lives in one instance (like the local one)
    /// knows only its own attempts.
    Owned(uuid::Uuid),
    /// Those of this instance, and those whose owner's lease ran out (its instance is gone or
    /// stuck): for an executor whose attempts outlive an instance (like Nomad).
    OwnedOrOrphaned(uuid::Uuid),
}

impl From<Option<uuid::Uuid>> for TrackScope {
    fn from(owner: Option<uuid::Uuid>) -> Self {
        owner.map_or(TrackScope::All, TrackScope::Owned)
    }
}

/// Up to `limit` jobs in flight (queued to post-processing) dispatched through `executor_prefix`
/// (e.g. `local/`), oldest change first; only those of `owner` when given (an executor that lives in
/// one instance, like the local one, knows only its own attempts).
pub async fn in_flight_jobs(
    pool: &PgPool,
    executor_prefix: &str,
    owner: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    in_flight_jobs_in(pool, executor_prefix, owner.into(), limit).await
}

/// Up to `limit` jobs in flight dispatched through `executor_prefix` within `scope`, oldest change
/// first.
pub async fn in_flight_jobs_in(
    pool: &PgPool,
    executor_prefix: &str,
    scope: TrackScope,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    let (owner, orphans) = match scope {
        TrackScope::All => (None, false),
        TrackScope::Owned(id) => (Some(id), false),
        TrackScope::OwnedOrOrphaned(id) => (Some(id), true),
    };
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE status BETWEEN 4 AND 8 AND starts_with(executor_ref, $2)
           AND ($3::uuid IS NULL OR service_id = $3
                OR ($4 AND (service_id IS NULL OR lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())))
         ORDER BY status_changed_at LIMIT $1"
    ))
    .bind(limit)
    .bind(executor_prefix)
    .bind(owner)
    .bind(orphans)
    .fetch_all(pool)
    .await?;
    rows.iter().map(job_from_row).collect()
}

/// The failure an executor outcome means for a job still in flight, if any.
pub fn failure_of(outcome: &AttemptOutcome) -> Option<Failure> {
    let external = |subtype: &str, message: String| {
        Some(Failure::External {
            subtype: subtype.into(),
            message,
        })
    };
    match outcome {
        AttemptOutcome::Pending | AttemptOutcome::Running => None,
        AttemptOutcome::Exited(0) => Some(Failure::Internal {
            subtype: "worker".into(),
            message: "the worker exited with code 0 without reporting a result".into(),
        }),
        AttemptOutcome::Exited(2) => external(
            "exit code 2",
            "the worker exited with code 2 (retry)".into(),
        ),
        AttemptOutcome::Exited(code) => Some(Failure::Internal {
            subtype: format!("exit code {code}"),
            message: format!("the worker exited with code {code}"),
        }),
        AttemptOutcome::Failed(reason) => external(
            "executor",
            format!("the attempt ended without an exit code: {reason}"),
        ),
        AttemptOutcome::Lost => external("lost", "the executor lost the attempt".into()),
        AttemptOutcome::Unknown => {
            external("vanished", "the executor does not know the attempt".into())
        }
    }
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
    for job in in_flight_jobs_in(pool, &prefix, scope, limit).await? {
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
        let mut failure = failure_of(&outcome);
        let mut timed_out = false;
        // A lost attempt may be replaced by the executor (Nomad re-places lost batch allocations):
        // it is stopped like a timed-out one, so that it never runs beside its retry.
        let lost = outcome == AttemptOutcome::Lost;
        if failure.is_none() {
            let limit = timeouts
                .0
                .iter()
                .find(|(s, _)| *s == job.status)
                .map(|(_, d)| *d);
            let age = (chrono::Utc::now() - job.status_changed_at)
                .to_std()
                .unwrap_or_default();
            if let Some(limit) = limit.filter(|l| age > *l) {
                timed_out = true;
                let mut message = format!(
                    "no progress in {} for more than {} s",
                    job.status,
                    limit.as_secs()
                );
                // Still waiting for a place to run: say why, when the executor knows.
                if outcome == AttemptOutcome::Pending {
                    if let Some(reason) = executor.pending_reason(&reference).await {
                        message.push_str(": ");
                        message.push_str(&reason);
                    }
                }
                failure = Some(Failure::External {
                    subtype: "timeout".into(),
                    message,
                });
            }
        }
        let Some(failure) = failure else { continue };
        match record_failure(pool, &job, &failure, backoff, None).await {
            Ok(_) => {
                report.settled += 1;
                // Stopped only once the failure is recorded: a worker that reported progress
                // meanwhile keeps running.
                if timed_out {
                    report.timed_out += 1;
                }
                if timed_out || lost {
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
