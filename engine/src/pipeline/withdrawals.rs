//! Following products withdrawn from the catalogue (CDSE `DeletedProducts`).
//!
//! Every `SWATH_WITHDRAWAL_INTERVAL_SECS`, the leader reads the catalogue's withdrawals from its
//! cursor (`withdrawal_cursors`) to now, page by page. For each withdrawn product, every job whose
//! product it is, or whose inputs list it (fsc_rlie's merged partial-tile products):
//!
//! - not started yet (initialized, configured, ready, which includes a failed attempt waiting for
//!   its retry: `ready` with a later `next_attempt_at`) is cancelled through the cancel path
//!   ([`cancel_job_where`], so its history records why, and only while it has not started) and
//!   flagged. A job caught in `external_error` (the state machine does not cancel from there) or
//!   dispatched meanwhile is only flagged;
//! - in flight, done, or in any other status is only flagged (`input_withdrawn_at` and the reason),
//!   never touched otherwise; a done job flagged is logged at warn: its products were made from an
//!   input the catalogue no longer offers.
//!
//! The cursor moves after each page's changes are made. Every change is idempotent (a cancelled job
//! is not cancelled again, a flagged job is not flagged again), so a page read twice, after a crash
//! or through the restart of a split window, changes nothing more.
//!
//! Catalogues that cannot list withdrawals (STAC, a local directory) answer "not supported": the
//! round logs it and does nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::PgPool;
use swath_domain::JobStatus;
use uuid::Uuid;

use super::cancel::{cancel_job_where, CancelError};
use crate::catalogue::{Catalogue, CatalogueError, Withdrawal, WithdrawalQuery};
use crate::db::services::leader;
use crate::db::withdrawals::{
    checked_until, earliest_input, flag_withdrawn, jobs_of_product, set_checked_until,
};
use crate::db::DbError;
use crate::service::{CancellationToken, Service};

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WithdrawalReport {
    /// Pages read.
    pub pages: usize,
    /// Withdrawals listed (usable entries).
    pub withdrawals: usize,
    /// Unusable entries skipped.
    pub invalid: usize,
    /// Withdrawals of products no job has.
    pub unknown: usize,
    /// Jobs cancelled.
    pub cancelled: usize,
    /// Jobs flagged (cancelled ones included).
    pub flagged: usize,
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawalError {
    /// The catalogue failed (or does not list withdrawals); the pages before are applied.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The reason recorded on the jobs of a product withdrawn at `at` for `cause`.
pub fn withdrawal_reason(at: DateTime<Utc>, cause: &str) -> String {
    format!(
        "input withdrawn by the catalogue on {}: {cause}",
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// Whether a job in `status` has not started: it is cancelled when its input is withdrawn.
fn not_started(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Initialized
            | JobStatus::Configured
            | JobStatus::Ready
            | JobStatus::ExternalError
    )
}

/// Applies one withdrawal to the jobs of its product.
async fn apply(
    pool: &PgPool,
    withdrawal: &Withdrawal,
    report: &mut WithdrawalReport,
) -> Result<(), DbError> {
    use swath_domain::product::ProductName;
    // The partial-tile products merged into one job are Sentinel-2 products of its tile and time.
    let (tile, sensed) = match ProductName::parse(&withdrawal.name) {
        Ok(ProductName::S2(name)) => (Some(name.tile.to_string()), Some(name.sensing_start)),
        _ => (None, None),
    };
    let jobs = jobs_of_product(pool, &withdrawal.name, tile.as_deref(), sensed).await?;
    if jobs.is_empty() {
        report.unknown += 1;
        return Ok(());
    }
    let reason = withdrawal_reason(withdrawal.deleted_at, &withdrawal.cause);
    for job in jobs {
        let mut status = job.status;
        if not_started(job.status) {
            match cancel_job_where(pool, None, job.id, &reason, not_started).await {
                Ok(cancelled) => {
                    report.cancelled += 1;
                    status = cancelled.job.status;
                    tracing::info!(job_id = job.id, product = %withdrawal.name, %reason, "job of a withdrawn input cancelled");
                }
                // It moved on (dispatched meanwhile, or not cancellable from where it is): flagged only.
                Err(CancelError::NotCancellable { status: now, .. }) => status = now,
                Err(CancelError::NotFound(_)) => continue,
                Err(CancelError::Db(e)) => return Err(e),
            }
        }
        if flag_withdrawn(pool, job.id, withdrawal.deleted_at, &reason).await? {
            report.flagged += 1;
            if status == JobStatus::Done {
                tracing::warn!(job_id = job.id, job = %job.name, product = %withdrawal.name, %reason, "a done job's input was withdrawn by the catalogue: its products were made from it");
            } else {
                tracing::info!(job_id = job.id, %status, product = %withdrawal.name, %reason, "job flagged: its input was withdrawn");
            }
        }
    }
    Ok(())
}

/// Reads the withdrawals of `catalogue` from its cursor to `until` and applies them, moving the
/// cursor after each page. A first round starts at the earliest publication of a job's input.
pub async fn follow_withdrawals(
    pool: &PgPool,
    catalogue: &dyn Catalogue,
    until: DateTime<Utc>,
) -> Result<WithdrawalReport, WithdrawalError> {
    let source = catalogue.source();
    let mut report = WithdrawalReport::default();
    let since = match checked_until(pool, &source).await? {
        Some(t) => t,
        None => match earliest_input(pool).await? {
            Some(t) => t,
            // No job yet: nothing can be withdrawn from under one (and a product withdrawn
            // before it is listed never becomes a job).
            None => return Ok(report),
        },
    };
    if since >= until {
        return Ok(report);
    }
    let query = WithdrawalQuery { since, until };
    let mut cursor = None;
    loop {
        let page = catalogue.withdrawn(&query, cursor.as_ref()).await?;
        report.pages += 1;
        report.withdrawals += page.withdrawals.len();
        report.invalid += page.invalid.len();
        for withdrawal in &page.withdrawals {
            apply(pool, withdrawal, &mut report).await?;
        }
        match page.next {
            Some(next) => {
                // Everything before the page's last deletion time is applied (entries at that time
                // are read again after a restart; that changes nothing).
                if let Some(last) = page.withdrawals.iter().map(|w| w.deleted_at).max() {
                    set_checked_until(pool, &source, last.min(until)).await?;
                }
                cursor = Some(next);
            }
            None => {
                set_checked_until(pool, &source, until).await?;
                return Ok(report);
            }
        }
    }
}

/// The loop: every `interval`, if this instance (`service_id`) leads the cluster, one round of
/// [`follow_withdrawals`] to now.
pub struct WithdrawalService {
    /// The database.
    pub pool: PgPool,
    /// The catalogue.
    pub catalogue: Arc<dyn Catalogue>,
    /// This instance.
    pub service_id: Uuid,
    /// Time between rounds.
    pub interval: Duration,
}

#[async_trait::async_trait]
impl Service for WithdrawalService {
    fn name(&self) -> &'static str {
        "withdrawals"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unsupported_logged = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match leader(&self.pool).await {
                Ok(Some(id)) if id == self.service_id => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "withdrawals: cannot tell who leads; trying next round");
                    continue;
                }
            }
            let round = follow_withdrawals(&self.pool, self.catalogue.as_ref(), Utc::now());
            let result = tokio::select! {
                r = round => r,
                _ = shutdown.cancelled() => return,
            };
            match result {
                Ok(r) => tracing::info!(
                    pages = r.pages,
                    withdrawals = r.withdrawals,
                    invalid = r.invalid,
                    unknown = r.unknown,
                    cancelled = r.cancelled,
                    flagged = r.flagged,
                    "withdrawals round done"
                ),
                Err(WithdrawalError::Catalogue(CatalogueError::Unsupported(why))) => {
                    if !unsupported_logged {
                        tracing::info!(%why, "withdrawn products are not followed");
                        unsupported_logged = true;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "withdrawals round failed; trying again next round")
                }
            }
        }
    }
}
