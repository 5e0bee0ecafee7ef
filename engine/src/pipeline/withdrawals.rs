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
//! Catalogues that cannot list withdrawals (STAC, a local directory) answer "not supported": for
//! them a withdrawal is a product that disappears from a re-listing. Each round lists their recent
//! publications again ([`Relisting`]) per job type, and the jobs whose product is no longer listed
//! are treated as above, with the reason [`NO_LONGER_LISTED`]: only after the whole window was
//! listed without a failure, and never when most of the window's jobs lost their product at once
//! (a listing gone wrong, logged as an error).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::PgPool;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::{JobStatus, JobTemplate};
use uuid::Uuid;

use super::cancel::{cancel_job_where, CancelError};
use crate::catalogue::{
    collection_for, Catalogue, CatalogueError, CatalogueQuery, Withdrawal, WithdrawalQuery,
};
use crate::db::services::leader;
use crate::db::withdrawals::{
    checked_until, earliest_input, flag_withdrawn, jobs_of_product, products_published_in,
    set_checked_until,
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

/// Why a product that disappears from a re-listing is counted as withdrawn.
pub const NO_LONGER_LISTED: &str = "no longer listed by the catalogue";

/// How a catalogue that does not list its withdrawals (STAC, a directory) is followed: its recent
/// publications are listed again and compared with the jobs made from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relisting {
    /// How far back the publications are listed again.
    pub window: Duration,
    /// How recent publications are left out (a catalogue may list them late or in pieces).
    pub settle: Duration,
}

/// What a re-listing round found, per job type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelistingReport {
    /// Products listed again.
    pub listed: usize,
    /// Jobs of the window.
    pub jobs: usize,
    /// Jobs whose product is no longer listed (and were cancelled or flagged).
    pub gone: usize,
    /// Whether the round refused to act because too much was missing.
    pub refused: bool,
}

/// Lists the publications of `relisting.window` of `catalogue` again for `job_type`, and treats the
/// products of its jobs that are no longer listed as withdrawn (cancelled if not started, flagged
/// otherwise), at `now`. Nothing changes unless the whole window was listed without a failure, and
/// nothing changes either when more than half of the window's jobs (and more than 3) lost their
/// product at once: that is a listing gone wrong (a filter, an outage answered with empty pages),
/// not withdrawals, and it is logged as such.
pub async fn follow_disappearances(
    pool: &PgPool,
    job_type: &dyn JobTemplate,
    catalogue: &dyn Catalogue,
    relisting: Relisting,
    now: DateTime<Utc>,
) -> Result<RelistingReport, WithdrawalError> {
    let mut report = RelistingReport::default();
    if !job_type.ingests() {
        return Ok(report);
    }
    let back = |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
    let to = now - back(relisting.settle);
    let from = to - back(relisting.window);
    let spec = job_type.spec();
    let (collection, product_type) = collection_for(&catalogue.source(), spec.input_product_type);
    let query = CatalogueQuery {
        collection,
        product_type,
        bbox: job_type.area_of_interest_bbox(),
        published_from: from,
        published_to: to,
    };
    // Every name the catalogue lists, usable or not, as listed and canonical.
    let mut listed: HashSet<String> = HashSet::new();
    let mut cursor = None;
    loop {
        let page = catalogue.page(&query, cursor.as_ref()).await?;
        for product in &page.products {
            report.listed += 1;
            listed.insert(product.name.clone());
            if let Ok(name) = swath_domain::product::ProductName::parse(&product.name) {
                listed.insert(name.canonical());
            }
        }
        for entry in &page.invalid {
            listed.insert(entry.name.clone());
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Sensed at most a month before its publication, for the index to bound the read.
    let sensed_from = from - chrono::TimeDelta::days(31);
    let jobs = products_published_in(pool, &spec.name, from, to, sensed_from).await?;
    report.jobs = jobs.len();
    let gone: Vec<&(i64, String)> = jobs.iter().filter(|(_, p)| !listed.contains(p)).collect();
    if gone.len() > 3 && gone.len() * 2 > jobs.len() {
        tracing::error!(job_type = %spec.name, source = %catalogue.source(), gone = gone.len(), jobs = jobs.len(),
            "the re-listing misses the products of most jobs of its window: taken for a listing gone wrong, nothing changed");
        report.refused = true;
        return Ok(report);
    }
    let mut withdrawals = WithdrawalReport::default();
    for (_, product) in gone {
        let withdrawal = Withdrawal {
            name: product.clone(),
            deleted_at: now,
            cause: NO_LONGER_LISTED.to_string(),
        };
        apply(pool, &withdrawal, &mut withdrawals).await?;
        report.gone += 1;
    }
    Ok(report)
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
    /// The job types whose jobs a re-listing is compared with (catalogues without withdrawals).
    pub registry: Arc<JobTypeRegistry>,
    /// Their names.
    pub job_types: Vec<String>,
    /// How catalogues without withdrawals are listed again.
    pub relisting: Relisting,
}

impl WithdrawalService {
    /// One re-listing round over every job type, for a catalogue that does not list withdrawals.
    async fn relisting_round(&self) {
        for name in &self.job_types {
            let Some(job_type) = self.registry.get(name) else {
                continue;
            };
            match follow_disappearances(
                &self.pool,
                job_type.as_ref(),
                self.catalogue.as_ref(),
                self.relisting,
                Utc::now(),
            )
            .await
            {
                Ok(r) => {
                    tracing::info!(job_type = %name, listed = r.listed, jobs = r.jobs, gone = r.gone,
                    refused = r.refused, "re-listing round done")
                }
                Err(e) => tracing::error!(job_type = %name, error = %e,
                    "re-listing round failed; nothing changed for the failed listing; trying again next round"),
            }
        }
    }
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
                        tracing::info!(%why, "withdrawals are followed by listing recent publications again");
                        unsupported_logged = true;
                    }
                    tokio::select! {
                        _ = self.relisting_round() => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "withdrawals round failed; trying again next round")
                }
            }
        }
    }
}
