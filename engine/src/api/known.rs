//! The attempts whose token this instance has checked, with where their jobs stood after this
//! instance last changed them: a worker's next report then needs neither a token check nor a read,
//! only its compare-and-set.
//!
//! This loosens nothing:
//! - a token issued for an attempt stays valid for that attempt as long as its job exists
//!   (`attempt_tokens` is append-only; its rows go only with their job), and a request must still
//!   present the very token that was checked;
//! - the remembered state is only the expectation of the compare-and-set, which applies only if the
//!   job is still in that status at that attempt: exactly when a fresh read would have planned the
//!   same change. A stale attempt, a deleted job or a job moved by someone else fails it, and the
//!   request then goes the full way (token checked and job read again), which gives today's answer.

use std::collections::HashMap;
use std::sync::Mutex;

use swath_domain::JobStatus;

use crate::db::jobs::JobHead;
use crate::db::status_batch::JobState;
use crate::db::tokens::{digest, matches_any};

/// Most attempts remembered; beyond, the memory starts afresh.
const CAPACITY: usize = 65_536;

/// Remembered attempts, by (job, attempt).
#[derive(Default)]
pub struct KnownAttempts {
    attempts: Mutex<HashMap<(i64, i32), Known>>,
}

struct Known {
    digest: Vec<u8>,
    job: JobHead,
}

impl KnownAttempts {
    /// The job as last left by this instance, if `token` is the one checked for attempt `attempt`.
    pub fn get(&self, job_id: i64, attempt: i32, token: &str) -> Option<JobHead> {
        let attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let known = attempts.get(&(job_id, attempt))?;
        matches_any(std::slice::from_ref(&known.digest), token).then(|| known.job.clone())
    }

    /// Remembers that `token` opens `job`'s attempt and that a change left the job in `after`; an
    /// attempt that has ended, or moved to another attempt, is forgotten.
    pub fn update(&self, token: &str, job: &JobHead, after: JobState) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let key = (job.id, job.attempt);
        let in_flight = after.status == JobStatus::Queued || after.status.is_running();
        if after.attempt != job.attempt || !in_flight {
            attempts.remove(&key);
            return;
        }
        if attempts.len() >= CAPACITY && !attempts.contains_key(&key) {
            attempts.clear();
        }
        let job = JobHead {
            status: after.status,
            ..job.clone()
        };
        attempts.insert(
            key,
            Known {
                digest: digest(token),
                job,
            },
        );
    }

    /// Forgets attempt `attempt` of job `job_id`.
    pub fn forget(&self, job_id: i64, attempt: i32) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        attempts.remove(&(job_id, attempt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus) -> JobHead {
        JobHead {
            id: 7,
            job_type: "test_job".into(),
            status,
            attempt: 2,
            max_attempts: 3,
        }
    }

    fn state(status: JobStatus, attempt: i32) -> JobState {
        JobState {
            id: 7,
            status,
            attempt,
        }
    }

    #[test]
    fn only_the_checked_token_of_an_attempt_in_flight_is_remembered() {
        let known = KnownAttempts::default();
        assert_eq!(known.get(7, 2, "secret"), None);
        known.update(
            "secret",
            &job(JobStatus::Queued),
            state(JobStatus::Started, 2),
        );
        assert_eq!(known.get(7, 2, "secret"), Some(job(JobStatus::Started)));
        assert_eq!(known.get(7, 2, "another"), None, "another token");
        assert_eq!(known.get(7, 1, "secret"), None, "another attempt");

        known.update(
            "secret",
            &job(JobStatus::PostProcessing),
            state(JobStatus::Processed, 2),
        );
        assert_eq!(known.get(7, 2, "secret"), None, "the attempt ended");
        known.update(
            "secret",
            &job(JobStatus::Started),
            state(JobStatus::Ready, 3),
        );
        assert_eq!(known.get(7, 2, "secret"), None, "a new attempt started");

        known.update(
            "secret",
            &job(JobStatus::Queued),
            state(JobStatus::Started, 2),
        );
        known.forget(7, 2);
        assert_eq!(known.get(7, 2, "secret"), None);
    }
}
