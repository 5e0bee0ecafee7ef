//! The retry policy: what a failed attempt does to its job.
//!
//! - An external error (exit code 2, storage or executor trouble, a timeout) starts a new attempt
//!   after an exponential backoff with jitter, until `max_attempts`; the last one ends in
//!   `internal_error` with the reason and the last error.
//! - Any other failure is an `internal_error` at once.
//!
//! Every attempt's error stays in the job's history: each failure is recorded as its own
//! `external_error` change (subtype and message) before the job moves on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use swath_job_types::{Job, JobStatus};
use uuid::Uuid;

use crate::db::status::{change_status, StatusChange};
use crate::db::DbError;

/// Backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptBackoff {
    /// Delay after the first failed attempt; it doubles with each attempt (with jitter).
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for AttemptBackoff {
    fn default() -> Self {
        AttemptBackoff {
            base: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        }
    }
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Something outside the job failed: worth another attempt.
    External {
        /// Short class (`exit code 2`, `storage`, `timeout`...).
        subtype: String,
        /// What happened.
        message: String,
    },
    /// A bug or bad input: final.
    Internal {
        /// Short class.
        subtype: String,
        /// What happened.
        message: String,
    },
}

/// What the policy did with the job.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureOutcome {
    /// A new attempt is ready, not before this time.
    Retried {
        /// The new attempt.
        attempt: i32,
        /// When it may be dispatched.
        not_before: DateTime<Utc>,
    },
    /// The job ended in `internal_error`.
    Failed,
}

/// Records a failure of `job`'s current attempt (as seen by the caller) and applies the policy, in one
/// transaction. Fails with `LostRace` when the job moved on meanwhile (e.g. a stale report).
pub async fn record_failure(
    pool: &PgPool,
    job: &Job,
    failure: &Failure,
    backoff: AttemptBackoff,
    service_id: Option<Uuid>,
) -> Result<(Job, FailureOutcome), DbError> {
    let mut tx = pool.begin().await?;
    let by = |change: StatusChange| match service_id {
        Some(id) => change.by(id),
        None => change,
    };
    let (job, outcome) = match failure {
        Failure::Internal { subtype, message } => {
            let failed = change_status(
                &mut tx,
                &by(StatusChange::of(job, JobStatus::InternalError)
                    .error(subtype, message)
                    .release()),
            )
            .await?;
            (failed, FailureOutcome::Failed)
        }
        Failure::External { subtype, message } => {
            let failed = if job.status == JobStatus::ExternalError {
                job.clone()
            } else {
                change_status(
                    &mut tx,
                    &by(StatusChange::of(job, JobStatus::ExternalError).error(subtype, message)),
                )
                .await?
            };
            if failed.attempt < failed.max_attempts {
                let delay = crate::backoff::jittered(
                    backoff.base,
                    backoff.max,
                    failed.attempt.max(1) as u32,
                );
                let not_before = Utc::now()
                    + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1));
                let retried = change_status(
                    &mut tx,
                    &by(StatusChange::of(&failed, JobStatus::Ready)
                        .message(format!(
                            "attempt {} of {} after {subtype}: retry in {} s",
                            failed.attempt + 1,
                            failed.max_attempts,
                            delay.as_secs()
                        ))
                        .next_attempt(Some(not_before))
                        .release()),
                )
                .await?;
                let attempt = retried.attempt;
                (
                    retried,
                    FailureOutcome::Retried {
                        attempt,
                        not_before,
                    },
                )
            } else {
                let reason = format!(
                    "{} attempts failed; the last one: {subtype}: {message}",
                    failed.max_attempts
                );
                let ended = change_status(
                    &mut tx,
                    &by(StatusChange::of(&failed, JobStatus::InternalError)
                        .error("attempts exhausted", reason)
                        .release()),
                )
                .await?;
                (ended, FailureOutcome::Failed)
            }
        }
    };
    tx.commit().await?;
    Ok((job, outcome))
}

/// How long a job may stay in a status before its attempt counts as failed.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusTimeouts(pub Vec<(JobStatus, Duration)>);

impl Default for StatusTimeouts {
    /// The original monitor's limits: queued 60 min, started and pre-processing 30 min, processing
    /// 270 min, plus post-processing 60 min (the original had none).
    fn default() -> Self {
        StatusTimeouts(vec![
            (JobStatus::Queued, Duration::from_secs(60 * 60)),
            (JobStatus::Started, Duration::from_secs(30 * 60)),
            (JobStatus::PreProcessing, Duration::from_secs(30 * 60)),
            (JobStatus::Processing, Duration::from_secs(270 * 60)),
            (JobStatus::PostProcessing, Duration::from_secs(60 * 60)),
        ])
    }
}
