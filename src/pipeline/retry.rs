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

use super::transitions;
use crate::db::jobs::JobHead;
use crate::db::status::{StatusChange, StatusTransaction};
use crate::db::status_batch::ChangeChain;
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
    let (chain, outcome) = failure_chain(&JobHead::from(job), failure, backoff, service_id);
    let mut tx = StatusTransaction::begin(pool).await?;
    let mut job = job.clone();
    for change in chain.changes() {
        job = tx.change(change).await?;
    }
    transitions::commit(tx).await?;
    Ok((job, outcome))
}

/// The status changes that record a failure of `job`'s current attempt (as seen by the caller) and
/// apply the policy, to be applied together; and what the policy does.
///
/// An external failure is recorded as `external_error` (unless the job is there already), then the
/// job goes back to `ready` for a new attempt after a backoff, or to `internal_error` once its
/// attempts are exhausted. Any other failure is an `internal_error` at once.
pub fn failure_chain(
    job: &JobHead,
    failure: &Failure,
    backoff: AttemptBackoff,
    service_id: Option<Uuid>,
) -> (ChangeChain, FailureOutcome) {
    let by = |change: StatusChange| match service_id {
        Some(id) => change.by(id),
        None => change,
    };
    let change = |from: JobStatus, to: JobStatus| StatusChange::new(job.id, from, job.attempt, to);
    match failure {
        Failure::Internal { subtype, message } => (
            ChangeChain::new(by(change(job.status, JobStatus::InternalError)
                .error(subtype, message)
                .release())),
            FailureOutcome::Failed,
        ),
        Failure::External { subtype, message } => {
            let recorded = (job.status != JobStatus::ExternalError)
                .then(|| by(change(job.status, JobStatus::ExternalError).error(subtype, message)));
            let (next, outcome) = if job.attempt < job.max_attempts {
                let delay =
                    crate::backoff::jittered(backoff.base, backoff.max, job.attempt.max(1) as u32);
                let not_before = Utc::now()
                    + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1));
                let retry = by(change(JobStatus::ExternalError, JobStatus::Ready)
                    .message(format!(
                        "attempt {} of {} after {subtype}: retry in {} s",
                        job.attempt + 1,
                        job.max_attempts,
                        delay.as_secs()
                    ))
                    .next_attempt(Some(not_before))
                    .release());
                let outcome = FailureOutcome::Retried {
                    attempt: job.attempt + 1,
                    not_before,
                };
                (retry, outcome)
            } else {
                let reason = format!(
                    "{} attempts failed; the last one: {subtype}: {message}",
                    job.max_attempts
                );
                let end = by(change(JobStatus::ExternalError, JobStatus::InternalError)
                    .error("attempts exhausted", reason)
                    .release());
                (end, FailureOutcome::Failed)
            };
            let chain = match recorded {
                Some(recorded) => ChangeChain::new(recorded).then(next),
                None => ChangeChain::new(next),
            };
            (chain, outcome)
        }
    }
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
