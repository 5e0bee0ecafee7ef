//! How an attempt ends when its worker could not report: what its executor says of it, or that it
//! made no progress for too long.
//!
//! | executor says | and the job is still in flight | failure |
//! |---|---|---|
//! | exited 0 | no result was reported | internal (`worker`) |
//! | exited 2 | (the worker asks for a retry) | external (`exit code 2`) |
//! | exited with another code | | internal (`exit code N`) |
//! | failed without an exit code | | external (`executor`) |
//! | lost | | external (`lost`); the attempt is stopped |
//! | unknown | | external (`vanished`) |
//! | still pending or running past its status timeout | | external (`timeout`); the attempt is stopped |

use std::time::Duration;

use chrono::{DateTime, Utc};
use swath_domain::attempt::AttemptFailure;
use swath_domain::JobStatus;

use super::failure::StatusTimeouts;
use crate::executor::AttemptOutcome;

/// The failure an executor outcome means for a job still in flight, if any.
pub fn failure_of(outcome: &AttemptOutcome) -> Option<AttemptFailure> {
    match outcome {
        AttemptOutcome::Pending | AttemptOutcome::Running => None,
        AttemptOutcome::Exited(0) => Some(AttemptFailure::internal(
            "worker",
            "the worker exited with code 0 without reporting a result",
        )),
        AttemptOutcome::Exited(2) => Some(AttemptFailure::external(
            "exit code 2",
            "the worker exited with code 2 (retry)",
        )),
        AttemptOutcome::Exited(code) => Some(AttemptFailure::internal(
            format!("exit code {code}"),
            format!("the worker exited with code {code}"),
        )),
        AttemptOutcome::Failed(reason) => Some(AttemptFailure::external(
            "executor",
            format!("the attempt ended without an exit code: {reason}"),
        )),
        AttemptOutcome::Lost => Some(AttemptFailure::external(
            "lost",
            "the executor lost the attempt",
        )),
        AttemptOutcome::Unknown => Some(AttemptFailure::external(
            "vanished",
            "the executor does not know the attempt",
        )),
    }
}

/// The limit a job in `status` since `since` has overrun at `now`, if it has.
pub fn overrun(
    timeouts: &StatusTimeouts,
    status: JobStatus,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let age = (now - since).to_std().unwrap_or_default();
    timeouts.limit(status).filter(|limit| age > *limit)
}

/// The failure of an attempt that stayed in `status` for more than `limit`; `pending_reason` is
/// why it still waits for a place to run, when the executor knows.
pub fn timeout_failure(
    status: JobStatus,
    limit: Duration,
    pending_reason: Option<String>,
) -> AttemptFailure {
    let mut message = format!(
        "no progress in {status} for more than {} s",
        limit.as_secs()
    );
    if let Some(reason) = pending_reason {
        message.push_str(": ");
        message.push_str(&reason);
    }
    AttemptFailure::external("timeout", message)
}

/// Whether an attempt that ended with `outcome` must be stopped once its failure is recorded: the
/// executor may replace a lost attempt (Nomad re-places lost batch allocations), which must never
/// run beside its retry.
pub fn stop_after(outcome: &AttemptOutcome) -> bool {
    *outcome == AttemptOutcome::Lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_executor_outcome_has_its_failure() {
        let cases = [
            (AttemptOutcome::Pending, None),
            (AttemptOutcome::Running, None),
            (AttemptOutcome::Exited(0), Some((false, "worker"))),
            (AttemptOutcome::Exited(2), Some((true, "exit code 2"))),
            (AttemptOutcome::Exited(1), Some((false, "exit code 1"))),
            (AttemptOutcome::Exited(137), Some((false, "exit code 137"))),
            (
                AttemptOutcome::Failed("OOM killed".into()),
                Some((true, "executor")),
            ),
            (AttemptOutcome::Lost, Some((true, "lost"))),
            (AttemptOutcome::Unknown, Some((true, "vanished"))),
        ];
        for (outcome, expected) in cases {
            let failure = failure_of(&outcome);
            let seen = failure.as_ref().map(|f| (f.is_external(), f.subtype()));
            assert_eq!(seen, expected, "{outcome:?}");
            assert_eq!(stop_after(&outcome), outcome == AttemptOutcome::Lost);
        }
        let failed = failure_of(&AttemptOutcome::Failed("OOM killed".into())).unwrap();
        assert_eq!(
            failed.message(),
            "the attempt ended without an exit code: OOM killed"
        );
    }

    #[test]
    fn a_status_held_past_its_limit_is_a_timeout() {
        let timeouts = StatusTimeouts::default();
        let now = Utc::now();
        let queued_for = |minutes| now - chrono::TimeDelta::minutes(minutes);
        assert_eq!(
            overrun(&timeouts, JobStatus::Queued, queued_for(30), now),
            None
        );
        assert_eq!(
            overrun(&timeouts, JobStatus::Queued, queued_for(61), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            overrun(&timeouts, JobStatus::Ready, queued_for(6000), now),
            None,
            "a status without a limit never times out"
        );
        let failure = timeout_failure(
            JobStatus::Queued,
            Duration::from_secs(3600),
            Some("no node has the image".into()),
        );
        assert_eq!(
            failure,
            AttemptFailure::external(
                "timeout",
                "no progress in queued for more than 3600 s: no node has the image"
            )
        );
        assert_eq!(
            timeout_failure(JobStatus::Processing, Duration::from_secs(60), None).message(),
            "no progress in processing for more than 60 s"
        );
    }
}
