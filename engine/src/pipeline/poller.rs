//! The poller: walks a catalogue window page by page for one job type, ingesting each page and
//! moving the persisted cursor only past pages that were fully processed.
//!
//! A continuous run starts at the cursor minus an overlap window (late publications are caught, and
//! re-listed products cost nothing since ingestion is idempotent); a first run starts a configured
//! look-back before now. A backfill names its own window and never rewinds the cursor.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use swath_domain::JobTemplate;

use super::ingest::{commit_page, plan_page, IngestError, IngestReport, PagePlan};
use crate::catalogue::{collection_for, Catalogue, CatalogueError, CatalogueQuery};
use crate::db::ingestion::cursor;
use crate::db::DbError;

/// Which publication window to list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PollWindow {
    /// From the cursor minus `overlap` (or now minus `initial_lookback` on a first run) until now.
    Continuous {
        /// How far before the cursor to start again.
        overlap: Duration,
        /// How far back a first run starts.
        initial_lookback: Duration,
    },
    /// Exactly this window (a backfill).
    Explicit {
        /// Start (inclusive).
        from: DateTime<Utc>,
        /// End (exclusive).
        to: DateTime<Utc>,
    },
}

/// What a poll did.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    /// The catalogue source.
    pub source: String,
    /// The window listed.
    pub from: DateTime<Utc>,
    /// End of the window.
    pub to: DateTime<Utc>,
    /// Pages fully processed.
    pub pages: usize,
    /// Totals over those pages.
    pub ingest: IngestReport,
}

/// Why a poll stopped early. Every page before the failure is committed, with the cursor past it.
#[derive(Debug, thiserror::Error)]
#[error("polling {source} for {job_type} stopped after {pages} page(s): {error}", source = .done.source, job_type = .done.ingest.job_type, pages = .done.pages)]
pub struct PollError {
    /// What was done before the failure.
    pub done: Box<PollReport>,
    /// The failure.
    #[source]
    pub error: PollFailure,
}

/// The failure that stopped a poll.
#[derive(Debug, thiserror::Error)]
pub enum PollFailure {
    /// The catalogue failed (after retries).
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// A page could not be ingested.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Lists `window` of `catalogue` for `job_type` and ingests it, calling `on_page` after each page.
pub async fn poll(
    pool: &PgPool,
    shared_job_type: &Arc<dyn JobTemplate>,
    catalogue: &dyn Catalogue,
    window: PollWindow,
    on_page: &mut (dyn FnMut(&PollReport) + Send),
) -> Result<PollReport, PollError> {
    let job_type: &dyn JobTemplate = shared_job_type.as_ref();
    let source = catalogue.source();
    let spec = job_type.spec();
    let now = Utc::now();
    let mut report = PollReport {
        source: source.clone(),
        from: now,
        to: now,
        pages: 0,
        ingest: IngestReport {
            job_type: spec.name.clone(),
            ..Default::default()
        },
    };
    // Jobs of this type are created by other jobs (children): there is no catalogue to list.
    if !job_type.ingests() {
        tracing::debug!(job_type = %spec.name, "not polled: its jobs are created by other jobs");
        return Ok(report);
    }
    let fail = |report: &PollReport, error: PollFailure| PollError {
        done: Box::new(report.clone()),
        error,
    };
    (report.from, report.to) = match window {
        PollWindow::Explicit { from, to } => (from, to),
        PollWindow::Continuous {
            overlap,
            initial_lookback,
        } => {
            let saved = cursor(pool, &spec.name, &source)
                .await
                .map_err(|e: DbError| fail(&report, PollFailure::Ingest(e.into())))?;
            let back =
                |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
            let from = match saved {
                Some(c) => c
                    .checked_sub_signed(back(overlap))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                None => now
                    .checked_sub_signed(back(initial_lookback))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
            };
            (from, now)
        }
    };
    let (collection, product_type) = collection_for(&source, spec.input_product_type);
    let query = CatalogueQuery {
        collection,
        product_type,
        bbox: job_type.area_of_interest_bbox(),
        published_from: report.from,
        published_to: report.to,
    };
    tracing::info!(job_type = %spec.name, %source, from = %report.from, to = %report.to, "polling the catalogue");
    // Page k is listed and planned while page k-1 commits; a plan that may depend on what page k-1
    // creates is made again once that is committed.
    let mut committing: Option<PagePlan> = None;
    let mut next = None;
    loop {
        let fetch_and_plan = async {
            let page = catalogue.page(&query, next.as_ref()).await?;
            // Planned on another worker thread, so that its CPU work overlaps the commit's.
            let (pool, job_type) = (pool.clone(), shared_job_type.clone());
            let planned = tokio::spawn(async move {
                let plan = plan_page(&pool, job_type.as_ref(), &page).await;
                (page, plan)
            });
            let (page, plan) = planned.await.map_err(|e| {
                IngestError::Db(DbError::Sqlx(sqlx::Error::Protocol(format!(
                    "planning task failed: {e}"
                ))))
            })?;
            Ok::<_, PollFailure>((page, plan?))
        };
        let (fetched, committed_times) = match committing.take() {
            None => (fetch_and_plan.await, None),
            Some(previous) => {
                let times = previous.sensing_times();
                let (fetched, committed) = tokio::join!(
                    fetch_and_plan,
                    commit(pool, job_type, &source, previous, &mut report, on_page)
                );
                committed.map_err(|e| fail(&report, e.into()))?;
                (fetched, Some(times))
            }
        };
        let (page, mut plan) = fetched.map_err(|e| fail(&report, e))?;
        if committed_times.is_some_and(|times| plan.depends_on(&times)) {
            plan = plan_page(pool, job_type, &page)
                .await
                .map_err(|e| fail(&report, e.into()))?;
        }
        match page.next {
            Some(cursor) => {
                next = Some(cursor);
                committing = Some(plan);
            }
            None => {
                commit(pool, job_type, &source, plan, &mut report, on_page)
                    .await
                    .map_err(|e| fail(&report, e.into()))?;
                return Ok(report);
            }
        }
    }
}

async fn commit(
    pool: &PgPool,
    job_type: &dyn JobTemplate,
    source: &str,
    plan: PagePlan,
    report: &mut PollReport,
    on_page: &mut (dyn FnMut(&PollReport) + Send),
) -> Result<(), IngestError> {
    let ingested = commit_page(pool, job_type, source, plan).await?;
    report.pages += 1;
    report.ingest.absorb(ingested);
    on_page(report);
    Ok(())
}
