//! Dispatch: claim ready jobs up to the executor's free capacity per flavor, start each attempt with
//! its idempotency token and a fresh bootstrap secret (which the worker exchanges once for its
//! attempt token), and record `ready -> queued` with the executor's reference. A round writes in
//! batches: one statement claims its jobs, one issues the bootstrap secrets of all of them, one records all their dispatches (each job still a compare-and-set of its own).
//! The executor is called per job in between, and no transaction is held across a call to it.
//! Once the executor says it is busy or unreachable for a flavor, the round stops there for that
//! flavor: the jobs left stay claimed for the next round.
//!
//! If this instance dies after starting an attempt and before recording it, the claim's lease runs
//! out, another instance claims the job again and dispatches the same token: the executor answers
//! with the attempt it already started, which is then recorded. The attempt never runs twice.

use std::sync::Arc;

use sqlx::PgPool;
use swath_domain::attempt::AttemptFailure;
use swath_domain::flavor::WorkerFlavor;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::template::JobTemplate;
use swath_domain::{Job, JobStatus};

use super::retry::record_failure;
use crate::attempt::failure::AttemptBackoff;
use crate::db::claim::{claim_ready_jobs, Claimant};
use crate::db::dispatch::record_references;
use crate::db::status::StatusChange;
use crate::db::status_batch::ChangeChain;
use crate::db::tokens::issue_bootstrap_tokens;
use crate::db::DbError;
use crate::executor::{DispatchRequest, Executor, ExecutorError};
use crate::pipeline::transitions::apply_chains;

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
        let jobs: Vec<(Job, Arc<dyn JobTemplate>)> = jobs
            .into_iter()
            .filter_map(|job| {
                let job_type = registry.get(&job.job_type).map(Arc::clone)?;
                Some((job, job_type))
            })
            .collect();
        let attempts: Vec<(i64, i32)> = jobs.iter().map(|(j, _)| (j.id, j.attempt)).collect();
        let tokens =
            issue_bootstrap_tokens(pool, &attempts, claimant.service_id, claimant.lease).await?;
        let mut started = Vec::with_capacity(jobs.len());
        let mut failed = None;
        let claimed = jobs.len();
        for (i, ((job, job_type), token)) in jobs.iter().zip(tokens).enumerate() {
            let Some(worker_token) = token else {
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
                Ok(reference) => started.push((job, reference)),
                // Busy or unreachable for this flavor: the jobs left stay claimed for a later
                // round instead of each being refused in turn.
                Err(ExecutorError::Unavailable(reason)) => {
                    tracing::warn!(job_id = job.id, job_type = %job.job_type, executor = executor.name(), flavor = %flavor.name, %reason,
                        deferred = claimed - i, "dispatch failed; the jobs left stay claimed for a later round");
                    report.deferred += claimed - i;
                    break;
                }
                Err(ExecutorError::Refused(reason)) => {
                    let failure = AttemptFailure::Internal {
                        subtype: "dispatch".into(),
                        message: reason,
                    };
                    match record_failure(pool, job, &failure, backoff, Some(claimant.service_id))
                        .await
                    {
                        Ok(_) => report.refused += 1,
                        Err(DbError::LostRace { .. }) => report.deferred += 1,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        // The attempts started so far are recorded even when the round stops early.
        record_dispatches(pool, executor, claimant, &started, &mut report).await?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(report)
}

/// Records `ready -> queued` with its reference for every attempt of `started`, in one statement.
/// A worker that recorded its dispatch first keeps its state and only the reference is added; an
/// attempt whose job moved on is stopped.
async fn record_dispatches(
    pool: &PgPool,
    executor: &dyn Executor,
    claimant: &Claimant,
    started: &[(&Job, String)],
    report: &mut DispatchReport,
) -> Result<(), DbError> {
    let chains: Vec<ChangeChain> = started
        .iter()
        .map(|(job, reference)| {
            StatusChange::of(job, JobStatus::Queued)
                .executor_ref(reference)
                .message(format!("dispatched to {} as {reference}", executor.name()))
                .by(claimant.service_id)
                .into()
        })
        .collect();
    let outcomes = apply_chains(pool, &chains).await;
    let mut references = Vec::new();
    let mut failed = None;
    for ((job, reference), outcome) in started.iter().zip(outcomes) {
        match outcome {
            Ok(_) => {
                report.queued += 1;
                let waited = (chrono::Utc::now() - job.status_changed_at)
                    .to_std()
                    .unwrap_or_default();
                crate::metrics::observe_dispatch(&job.job_type, waited);
            }
            // The worker started first and recorded the dispatch itself: add the reference.
            Err(DbError::LostRace {
                actual,
                actual_attempt,
                ..
            }) if actual_attempt == job.attempt
                && (actual == JobStatus::Queued || actual.is_running()) =>
            {
                references.push((job.id, job.attempt, reference.clone()));
                report.queued += 1;
            }
            // The job moved on (cancelled...): the attempt must not run.
            Err(DbError::LostRace { .. }) => {
                if let Err(e) = executor.stop(reference).await {
                    tracing::warn!(job_id = job.id, job_type = %job.job_type, error = %e, "cannot stop an attempt whose job moved on");
                }
                report.deferred += 1;
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    record_references(pool, &references).await?;
    failed.map_or(Ok(()), Err)
}
