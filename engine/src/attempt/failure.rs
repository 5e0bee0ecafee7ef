//! The retry policy: what a failed attempt does to its job.
//!
//! - An external failure (exit code 2, storage or executor trouble, a timeout) starts a new attempt
//!   after an exponential backoff with jitter, until `max_attempts`; the last one ends in
//!   `internal_error` with the reason and the last error.
//! - An internal failure is an `internal_error` at once.
//!
//! Every attempt's error stays in the job's history: each external failure is recorded as its own
//! `external_error` change (subtype and message) before the job moves on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use swath_domain::attempt::AttemptFailure;
use swath_domain::JobStatus;
use uuid::Uuid;

use crate::db::jobs::JobHead;
use crate::db::status::StatusChange;
use crate::db::status_batch::ChangeChain;

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

impl StatusTimeouts {
    /// The limit of `status`, if it has one.
    pub fn limit(&self, status: JobStatus) -> Option<Duration> {
        self.0.iter().find(|(s, _)| *s == status).map(|(_, d)| *d)
    }
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

/// The status changes that record `failure` of `job`'s current attempt (as seen by the caller) and
/// apply the policy, to be applied together; and what the policy does. The changes are made by
/// `service_id` when given.
///
/// An external failure is recorded as `external_error` (unless the job is there already), then the
/// job goes back to `ready` for a new attempt after a backoff, or to `internal_error` once its
/// attempts are exhausted. An internal failure is an `internal_error` at once.
pub fn plan_failure(
    job: &JobHead,
    failure: &AttemptFailure,
    backoff: AttemptBackoff,
    service_id: Option<Uuid>,
) -> (ChangeChain, FailureOutcome) {
    let by = |change: StatusChange| match service_id {
        Some(id) => change.by(id),
        None => change,
    };
    let change = |from: JobStatus, to: JobStatus| StatusChange::new(job.id, from, job.attempt, to);
    let (subtype, message) = (failure.subtype(), failure.message());
    if !failure.is_external() {
        return (
            ChangeChain::new(by(change(job.status, JobStatus::InternalError)
                .error(subtype, message)
                .release())),
            FailureOutcome::Failed,
        );
    }
    let recorded = (job.status != JobStatus::ExternalError)
        .then(|| by(change(job.status, JobStatus::ExternalError).error(subtype, message)));
    let (next, outcome) = if job.attempt < job.max_attempts {
        let delay = crate::backoff::jittered(backoff.base, backoff.max, job.attempt.max(1) as u32);
        let not_before =
            Utc::now() + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: JobStatus, attempt: i32, max_attempts: i32) -> JobHead {
        JobHead {
            id: 7,
            job_type: "test".into(),
            status,
            attempt,
            max_attempts,
        }
    }

    /// `(from, to, error subtype)` of each change.
    fn steps(chain: &ChangeChain) -> Vec<(JobStatus, JobStatus, Option<&str>)> {
        chain
            .changes()
            .iter()
            .map(|c| (c.from, c.to, c.error_subtype.as_deref()))
            .collect()
    }

    #[test]
    fn each_failure_ends_the_attempt_as_the_policy_says() {
        use JobStatus::*;
        let storage = AttemptFailure::external("storage", "S3 down");
        let bug = AttemptFailure::internal("exit code 1", "bug");
        let backoff = AttemptBackoff::default();
        // (job, failure, changes, a new attempt)
        let cases = [
            (
                head(Processing, 1, 3),
                &storage,
                vec![
                    (Processing, ExternalError, Some("storage")),
                    (ExternalError, Ready, None),
                ],
                Some(2),
            ),
            (
                head(ExternalError, 2, 3),
                &storage,
                vec![(ExternalError, Ready, None)],
                Some(3),
            ),
            (
                head(Queued, 3, 3),
                &storage,
                vec![
                    (Queued, ExternalError, Some("storage")),
                    (ExternalError, InternalError, Some("attempts exhausted")),
                ],
                None,
            ),
            (
                head(Processing, 1, 3),
                &bug,
                vec![(Processing, InternalError, Some("exit code 1"))],
                None,
            ),
        ];
        for (job, failure, expected, retried) in cases {
            let (chain, outcome) = plan_failure(&job, failure, backoff, None);
            assert_eq!(steps(&chain), expected, "{job:?} {failure}");
            match (outcome, retried) {
                (FailureOutcome::Retried { attempt, .. }, Some(next)) => assert_eq!(attempt, next),
                (FailureOutcome::Failed, None) => {}
                (outcome, _) => panic!("{job:?} {failure}: {outcome:?}"),
            }
            let last = chain.changes().last().unwrap();
            assert!(last.release, "the last change releases the job");
            assert_eq!(
                last.next_attempt.is_some(),
                retried.is_some(),
                "only a retry starts an attempt"
            );
        }
    }

    #[test]
    fn changes_are_made_by_the_service_when_given() {
        let me = Uuid::new_v4();
        let (chain, _) = plan_failure(
            &head(JobStatus::Started, 1, 2),
            &AttemptFailure::external("timeout", "slow"),
            AttemptBackoff::default(),
            Some(me),
        );
        assert!(chain.changes().iter().all(|c| c.service_id == Some(me)));
        let exhausted = plan_failure(
            &head(JobStatus::Started, 2, 2),
            &AttemptFailure::external("timeout", "slow"),
            AttemptBackoff::default(),
            None,
        )
        .0;
        assert_eq!(
            exhausted.changes()[1].message.as_deref(),
            Some("2 attempts failed; the last one: timeout: slow")
        );
    }
}
