//! Dispatch: claim ready jobs up to the executor's free capacity per flavor, start each attempt with
//! its idempotency token and a fresh worker token, and record `ready -> queued` with the executor's
//! reference. No transaction is held across a call to the executor.
//!
//! If this instance dies after starting an attempt and before recording it, the claim's lease runs
//! out, another instance claims the job again and dispatches the same token: the executor answers
//! with the attempt it already started, which is then recorded. The attempt never runs twice.

use std::sync::Arc;

use sqlx::PgPool;
use swath_job_types::flavor::WorkerFlavor;
use swath_job_types::registry::JobTypeRegistry;
use swath_job_types::JobStatus;

use super::retry::{record_failure, AttemptBackoff, Failure};
use crate::db::claim::{claim_ready_jobs, Claimant};
use crate::db::status::{change_status_on, StatusChange};
use crate::db::tokens::issue_attempt_token;
use crate::db::DbError;
use crate::executor::{DispatchRequest, Executor, ExecutorError};

/// What one dispatch round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Jobs claimed.
    pub claimed: usize,
    /// Attempts started and recorded `queued`.
    pub queued: usize,
    /// Jobs left claimed for a later round (the executor was busy or unavailable, or the job moved on).
    pub deferred: usize,
    /// Jobs the executor refused (recorded as internal errors).
    pub refused: usize,
}

/// Records the executor reference of attempt `attempt` of job `job_id` when nobody did.
async fn record_reference(
    pool: &PgPool,
    job_id: i64,
    attempt: i32,
    reference: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE jobs SET executor_ref = $3 WHERE id = $1 AND attempt = $2 AND executor_ref IS NULL",
    )
    .bind(job_id)
    .bind(attempt)
    .bind(reference)
    .execute(pool)
    .await?;
    Ok(())
}

/// One round: for every flavor with free slots, claim that many ready jobs of the job types that run
/// on it, and dispatch them.
pub async fn dispatch_round(
    pool: &PgPool,
    executor: &dyn Executor,
    registry: &JobTypeRegistry,
    enabled: &[String],
    flavors: &[WorkerFlavor],
    claimant: &Claimant,
    backoff: AttemptBackoff,
) -> Result<DispatchReport, DbError> {
    let mut report = DispatchReport::default();
    let capacity = match executor.capacity().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(executor = executor.name(), error = %e, "executor capacity unknown; dispatching nothing this round");
            return Ok(report);
        }
    };
    for flavor in flavors {
        let free = capacity.get(&flavor.name).copied().unwrap_or(0);
        let types: Vec<String> = enabled
            .iter()
            .filter(|t| {
                registry
                    .get(t)
                    .is_some_and(|jt| jt.spec().worker_flavor == flavor.name)
            })
            .cloned()
            .collect();
        if free == 0 || types.is_empty() {
            continue;
        }
        let jobs = claim_ready_jobs(pool, claimant, &types, free as i64).await?;
        report.claimed += jobs.len();
        for job in jobs {
            let Some(job_type) = registry.get(&job.job_type).map(Arc::clone) else {
                continue;
            };
            let Some(worker_token) = issue_attempt_token(
                pool,
                job.id,
                job.attempt,
                claimant.service_id,
                claimant.lease,
            )
            .await?
            else {
                report.deferred += 1;
                continue;
            };
            let request = DispatchRequest {
                job_id: job.id,
                job_type: job.job_type.clone(),
                attempt: job.attempt,
                idempotency_token: job.attempt_token(),
                worker_token,
                flavor: flavor.clone(),
                nomad_job: job_type.spec().nomad_job.clone(),
            };
            match executor.dispatch(&request).await {
                Ok(reference) => {
                    let change = StatusChange::of(&job, JobStatus::Queued)
                        .executor_ref(&reference)
                        .message(format!("dispatched to {} as {reference}", executor.name()))
                        .by(claimant.service_id);
                    match change_status_on(pool, &change).await {
                        Ok(_) => report.queued += 1,
                        // The worker started first and recorded the dispatch itself: add the reference.
                        Err(DbError::LostRace {
                            actual,
                            actual_attempt,
                            ..
                        }) if actual_attempt == job.attempt
                            && (actual == JobStatus::Queued || actual.is_running()) =>
                        {
                            record_reference(pool, job.id, job.attempt, &reference).await?;
                            report.queued += 1;
                        }
                        // The job moved on (cancelled...): the attempt must not run.
                        Err(DbError::LostRace { .. }) => {
                            if let Err(e) = executor.stop(&reference).await {
                                tracing::warn!(job_id = job.id, error = %e, "cannot stop an attempt whose job moved on");
                            }
                            report.deferred += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(ExecutorError::Unavailable(reason)) => {
                    tracing::warn!(job_id = job.id, executor = executor.name(), %reason, "dispatch failed; the job stays claimed for a later round");
                    report.deferred += 1;
                }
                Err(ExecutorError::Refused(reason)) => {
                    let failure = Failure::Internal {
                        subtype: "dispatch".into(),
                        message: reason,
                    };
                    match record_failure(pool, &job, &failure, backoff, Some(claimant.service_id))
                        .await
                    {
                        Ok(_) => report.refused += 1,
                        Err(DbError::LostRace { .. }) => report.deferred += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(report)
}
