//! Configure: decide for each new job whether it is ready, waits, is cancelled or is in error
//! (`configure_batch_jobs`, then `configure_single_job`), and look again at waiting jobs when what
//! they wait for settles.
//!
//! A decision and its status changes are one transaction per job. A lookup that fails (database
//! unreachable) leaves the job as it is for the next round; a job whose parameters the job type
//! cannot read goes to `internal_error` with the reason.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use swath_domain::template::{Configuration, ConfigureOutcome, JobTypeError};
use swath_domain::{Job, JobStatus, JobTemplate};

use super::transitions;
use crate::db::configure::{due_waiting_jobs, new_jobs, set_waiting};
use crate::db::context::PgJobContext;
use crate::db::notifications::Notifications;
use crate::db::status::{StatusChange, StatusTransaction};
use crate::db::DbError;
use crate::service::{CancellationToken, Service};

/// How the configuration loop works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigureSettings {
    /// Jobs examined per query.
    pub batch: i64,
    /// When a waiting job is examined again if nothing wakes it earlier.
    pub recheck_after: Duration,
}

impl Default for ConfigureSettings {
    fn default() -> Self {
        ConfigureSettings {
            batch: 500,
            recheck_after: Duration::from_secs(600),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfigureReport {
    /// Jobs examined.
    pub examined: usize,
    /// Jobs made `ready`.
    pub ready: usize,
    /// Jobs left waiting (`configured`).
    pub waiting: usize,
    /// Jobs cancelled.
    pub cancelled: usize,
    /// Jobs put in `internal_error`.
    pub failed: usize,
    /// Jobs left for the next round (a lookup failed, or another instance changed them first).
    pub deferred: usize,
}

/// One round for `job_type`: new jobs first (as one batch), then the waiting jobs that are due.
pub async fn configure_round(
    pool: &PgPool,
    job_type: &dyn JobTemplate,
    settings: ConfigureSettings,
) -> Result<ConfigureReport, DbError> {
    let name = job_type.spec().name.as_str();
    let ctx = PgJobContext::new(pool.clone());
    let mut report = ConfigureReport::default();

    let mut fresh = new_jobs(pool, name, settings.batch).await?;
    if !fresh.is_empty() {
        if let Err(e) = job_type.configure_batch_jobs(&ctx, &mut fresh).await {
            tracing::warn!(job_type = name, error = %e, "batch configuration failed; retrying next round");
            report.deferred += fresh.len();
            fresh.clear();
        }
    }
    let waiting = due_waiting_jobs(pool, name, settings.batch).await?;
    for job in fresh.into_iter().chain(waiting) {
        report.examined += 1;
        let outcome = match job_type.configure_single_job(&ctx, &job).await {
            Ok(outcome) => outcome,
            Err(JobTypeError::Context(e)) => {
                tracing::warn!(job_id = job.id, job_type = name, error = %e, "configuration lookup failed; retrying next round");
                report.deferred += 1;
                continue;
            }
            Err(e) => ConfigureOutcome {
                decision: Configuration::Error {
                    reason: e.to_string(),
                },
                params: None,
            },
        };
        match apply(pool, &job, outcome, settings).await {
            Ok(Some(status)) => match status {
                JobStatus::Ready => report.ready += 1,
                JobStatus::Configured => report.waiting += 1,
                JobStatus::Cancelled => report.cancelled += 1,
                _ => report.failed += 1,
            },
            Ok(None) => report.deferred += 1,
            // One job that cannot be changed must not stall the others behind it.
            Err(e) => {
                tracing::error!(job_id = job.id, job_type = name, error = %e, "cannot apply the configuration decision");
                report.deferred += 1;
            }
        }
    }
    Ok(report)
}

/// Configures every job type until a round finds nothing more to do, then sleeps until a job
/// changes (`swath_jobs` notifications) or `idle` passes; returns when `stop` resolves.
pub async fn configure_loop(
    pool: &PgPool,
    job_types: &[std::sync::Arc<dyn JobTemplate>],
    settings: ConfigureSettings,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut notifications = Notifications::listen(pool, "swath_jobs").await;
    loop {
        // Drain: rounds until one makes no progress.
        loop {
            let mut progress = false;
            for job_type in job_types {
                match configure_round(pool, job_type.as_ref(), settings).await {
                    Ok(r) => {
                        progress |= r.examined > r.deferred;
                        if r.examined > 0 {
                            tracing::info!(job_type = %job_type.spec().name, examined = r.examined, ready = r.ready,
                                waiting = r.waiting, cancelled = r.cancelled, failed = r.failed, deferred = r.deferred,
                                "configuration round");
                        }
                    }
                    Err(e) => {
                        tracing::error!(job_type = %job_type.spec().name, error = %e, "configuration round failed")
                    }
                }
            }
            if !progress {
                break;
            }
        }
        tokio::select! {
            _ = notifications.notified(idle) => {}
            _ = tokio::time::sleep(idle) => {}
            _ = &mut stop => return,
        }
    }
}

/// Applies a decision to `job` in one transaction; `None` when another actor changed it first.
async fn apply(
    pool: &PgPool,
    job: &Job,
    outcome: ConfigureOutcome,
    settings: ConfigureSettings,
) -> Result<Option<JobStatus>, DbError> {
    let mut tx = StatusTransaction::begin(pool).await?;
    let mut current = job.clone();
    let params = outcome.params;
    let step = |job: &Job, to: JobStatus| StatusChange::of(job, to);
    let result = async {
        match outcome.decision {
            Configuration::Ready => {
                if current.status == JobStatus::Initialized {
                    current = tx.change(&step(&current, JobStatus::Configured)).await?;
                }
                let mut change = step(&current, JobStatus::Ready).waiting(None, None);
                if let Some(p) = &params {
                    change = change.params(p.clone());
                }
                tx.change(&change).await?;
                Ok(Some(JobStatus::Ready))
            }
            Configuration::Wait { reason, on } => {
                if current.status == JobStatus::Initialized {
                    current = tx
                        .change(&step(&current, JobStatus::Configured).message(reason))
                        .await?;
                }
                let recheck = Utc::now()
                    + chrono::TimeDelta::from_std(settings.recheck_after)
                        .unwrap_or(chrono::TimeDelta::minutes(10));
                let recorded = set_waiting(
                    tx.conn(),
                    current.id,
                    current.attempt,
                    on,
                    recheck,
                    params.as_ref(),
                )
                .await?;
                Ok(recorded.then_some(JobStatus::Configured))
            }
            Configuration::Cancel { reason } => {
                tx.change(
                    &step(&current, JobStatus::Cancelled)
                        .message(reason)
                        .waiting(None, None),
                )
                .await?;
                Ok(Some(JobStatus::Cancelled))
            }
            Configuration::Error { reason } => {
                tx.change(
                    &step(&current, JobStatus::InternalError)
                        .error("configuration", reason)
                        .waiting(None, None),
                )
                .await?;
                Ok(Some(JobStatus::InternalError))
            }
        }
    }
    .await;
    match result {
        Ok(Some(status)) => {
            transitions::commit(tx).await?;
            tracing::debug!(job_id = job.id, job_type = %job.job_type, %status, "configured");
            Ok(Some(status))
        }
        // Another actor changed the job first: nothing of this decision is kept.
        Ok(None) | Err(DbError::LostRace { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The configuration loop as a service of a running instance.
pub struct ConfigureService {
    /// The database.
    pub pool: PgPool,
    /// The job types it configures.
    pub job_types: Vec<std::sync::Arc<dyn JobTemplate>>,
    /// How it works.
    pub settings: ConfigureSettings,
    /// Longest sleep between wake-ups.
    pub idle: Duration,
}

#[async_trait::async_trait]
impl Service for ConfigureService {
    fn name(&self) -> &'static str {
        "configuration"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        configure_loop(
            &self.pool,
            &self.job_types,
            self.settings,
            self.idle,
            shutdown.cancelled_owned(),
        )
        .await;
    }
}
