//! Cancelling a job: `cancelled` is recorded with a compare-and-set (fenced by status and attempt),
//! then the attempt in flight, if any, is stopped through its executor.
//!
//! The stop comes after the record, so that a worker that reports meanwhile is refused (409) and the
//! dispatcher, which records its dispatch with a compare-and-set too, stops an attempt it started
//! for a job cancelled in between. A failed stop leaves the job cancelled: the worker's next report
//! is refused and it ends.

use serde::Serialize;
use sqlx::PgPool;
use swath_domain::{Job, JobStatus};

use super::transitions::change_status_on;
use crate::db::chaining::awaiting_children;
use crate::db::jobs::get_job;
use crate::db::status::StatusChange;
use crate::db::DbError;
use crate::executor::Executor;

/// How often a cancel is tried again when the job moves under it.
const ATTEMPTS: usize = 5;

/// Why a job cannot be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(i64),
    /// The job is finished (or in a status the state machine does not let go to `cancelled`).
    #[error("job {id} is {status}: {why}")]
    NotCancellable {
        /// The job.
        id: i64,
        /// Its status.
        status: JobStatus,
        /// Why that status cannot be cancelled.
        why: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What happened to the attempt of a cancelled job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "stop")]
pub enum AttemptStop {
    /// No attempt was dispatched (or it had ended).
    NotDispatched,
    /// The executor was asked to stop it.
    Requested {
        /// The executor's reference.
        reference: String,
    },
    /// The executor could not stop it; its worker ends at its next report, which is refused.
    Failed {
        /// The executor's reference.
        reference: String,
        /// Why.
        error: String,
    },
    /// This instance has no executor to stop it with; its worker ends at its next report.
    NoExecutor {
        /// The executor's reference.
        reference: String,
    },
}

/// A cancelled job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cancelled {
    /// The job, now `cancelled`.
    pub job: Job,
    /// Its attempt's fate.
    pub attempt: AttemptStop,
}

/// Why a job in `status` (waiting for its attached children when `awaiting`) cannot be cancelled,
/// if it cannot.
fn refusal(status: JobStatus, awaiting: bool) -> Option<&'static str> {
    match status {
        JobStatus::Processed if awaiting => Some(
            "its own work is complete and it waits for its attached children, which can be cancelled",
        ),
        JobStatus::Done | JobStatus::InternalError | JobStatus::Cancelled => {
            Some("a finished job cannot be cancelled")
        }
        JobStatus::Published => Some(
            "its products are published and it waits for its attached children, which can be cancelled",
        ),
        s if !JobStatus::can_transition(Some(s), JobStatus::Cancelled) => {
            Some("it is between attempts and is not cancelled from this status")
        }
        _ => None,
    }
}

/// Cancels job `id` for `reason`, then stops its attempt through `executor`.
pub async fn cancel_job(
    pool: &PgPool,
    executor: Option<&dyn Executor>,
    id: i64,
    reason: &str,
) -> Result<Cancelled, CancelError> {
    cancel_job_where(pool, executor, id, reason, |_| true).await
}

/// Like [`cancel_job`], but only while the job's status (as read before each try) satisfies
/// `allowed`: a job that moved to another status meanwhile is refused as not cancellable.
pub async fn cancel_job_where(
    pool: &PgPool,
    executor: Option<&dyn Executor>,
    id: i64,
    reason: &str,
    allowed: impl Fn(JobStatus) -> bool,
) -> Result<Cancelled, CancelError> {
    let mut job = get_job(pool, id).await.map_err(|e| match e {
        DbError::NotFound(id) => CancelError::NotFound(id),
        other => CancelError::Db(other),
    })?;
    let mut tries = 0;
    let (before, cancelled) = loop {
        if !allowed(job.status) {
            return Err(CancelError::NotCancellable {
                id,
                status: job.status,
                why: "it moved to a status this cancellation does not touch",
            });
        }
        let awaiting = job.status == JobStatus::Processed && awaiting_children(pool, id).await?;
        if let Some(why) = refusal(job.status, awaiting) {
            return Err(CancelError::NotCancellable {
                id,
                status: job.status,
                why,
            });
        }
        let change = StatusChange::of(&job, JobStatus::Cancelled)
            .message(reason.to_string())
            .release();
        match change_status_on(pool, &change).await {
            Ok(after) => break (job, after),
            // The job moved (a worker's report, a dispatch): look again.
            Err(DbError::LostRace { .. }) if tries < ATTEMPTS => {
                tries += 1;
                job = get_job(pool, id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let in_flight = before.status == JobStatus::Queued || before.status.is_running();
    let attempt = match (in_flight, before.executor_ref.clone(), executor) {
        (false, _, _) | (true, None, _) => AttemptStop::NotDispatched,
        (true, Some(reference), None) => AttemptStop::NoExecutor { reference },
        (true, Some(reference), Some(executor)) => match executor.stop(&reference).await {
            Ok(()) => AttemptStop::Requested { reference },
            Err(e) => {
                tracing::warn!(job_id = id, %reference, error = %e, "cannot stop the attempt of a cancelled job");
                AttemptStop::Failed {
                    reference,
                    error: e.to_string(),
                }
            }
        },
    };
    tracing::info!(job_id = id, from = %before.status, ?attempt, "job cancelled");
    Ok(Cancelled {
        job: cancelled,
        attempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_and_published_parents_cannot_be_cancelled() {
        use JobStatus::*;
        for status in [Done, InternalError, Cancelled, Published, ExternalError] {
            assert!(refusal(status, false).is_some(), "{status}");
        }
        assert!(
            refusal(Processed, true).is_some(),
            "waiting for its children"
        );
        for status in [
            Initialized,
            Configured,
            Ready,
            Queued,
            Started,
            PreProcessing,
            Processing,
            PostProcessing,
            Processed,
            StartPublication,
            ErrorChecked,
        ] {
            assert!(refusal(status, false).is_none(), "{status}");
        }
    }
}
