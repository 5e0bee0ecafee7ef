//! The initial sync and healing: the poller over an explicit publication window, page after page,
//! for each enabled job type. Ingestion is idempotent, so that a window listed again creates only
//! what is missing; every page is committed with its cursor as it comes, so that a run that fails
//! or is abandoned keeps what it did.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use swath_domain::JobTemplate;

use crate::catalogue::Catalogue;
use crate::pipeline::poller::{poll, PollReport, PollWindow};

/// The window one job type lists.
#[derive(Clone)]
pub struct ScanTarget {
    /// The job type.
    pub job_type: Arc<dyn JobTemplate>,
    /// Start of the publication window (inclusive).
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
}

/// The windows of an initial sync at `now`: from `from` (else the job type's processing start date,
/// else `lookback` before now) to `to` (else now).
pub fn initial_sync_targets(
    job_types: &[Arc<dyn JobTemplate>],
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    lookback: Duration,
    now: DateTime<Utc>,
) -> Vec<ScanTarget> {
    let back = chrono::TimeDelta::from_std(lookback).unwrap_or(chrono::TimeDelta::days(7));
    job_types
        .iter()
        .map(|job_type| ScanTarget {
            job_type: Arc::clone(job_type),
            from: from
                .or(job_type.spec().processing_start_date)
                .unwrap_or(now - back),
            to: to.unwrap_or(now),
        })
        .collect()
}

/// The windows of a healing run at `now`: the last `window`.
pub fn healing_targets(
    job_types: &[Arc<dyn JobTemplate>],
    window: Duration,
    now: DateTime<Utc>,
) -> Vec<ScanTarget> {
    let back = chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::days(7));
    job_types
        .iter()
        .map(|job_type| ScanTarget {
            job_type: Arc::clone(job_type),
            from: now - back,
            to: now,
        })
        .collect()
}

/// A scan that failed for at least one job type; the others were scanned, and every committed page
/// stays.
#[derive(Debug, thiserror::Error)]
#[error("{}", .failures.join("; "))]
pub struct ScanError {
    /// What was done, as in a successful run.
    pub result: serde_json::Value,
    /// One message per job type that failed.
    pub failures: Vec<String>,
}

/// Lists every target's window of `catalogue` and ingests it. The result tells, per job type, the
/// window, the pages and the counts.
pub async fn scan(
    pool: &PgPool,
    catalogue: &dyn Catalogue,
    targets: &[ScanTarget],
) -> Result<serde_json::Value, ScanError> {
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for target in targets {
        let name = target.job_type.spec().name.clone();
        if target.from >= target.to {
            done.push(json!({"job_type": name, "from": target.from, "to": target.to, "skipped": "empty window"}));
            continue;
        }
        let window = PollWindow::Explicit {
            from: target.from,
            to: target.to,
        };
        match poll(pool, &target.job_type, catalogue, window, &mut |_| {}).await {
            Ok(report) => {
                tracing::info!(job_type = %name, pages = report.pages, created = report.ingest.created, "scan of the window done");
                done.push(summary(&report));
            }
            Err(e) => {
                tracing::warn!(job_type = %name, error = %e, "scan of the window failed");
                let mut partial = summary(&e.done);
                partial["error"] = json!(format!("{e}: {}", e.error));
                done.push(partial);
                failures.push(format!("{name}: {e}: {}", e.error));
            }
        }
    }
    let result = json!({ "source": catalogue.source(), "job_types": done });
    if failures.is_empty() {
        Ok(result)
    } else {
        Err(ScanError { result, failures })
    }
}

fn summary(report: &PollReport) -> serde_json::Value {
    let i = &report.ingest;
    json!({
        "job_type": i.job_type, "from": report.from, "to": report.to, "pages": report.pages,
        "listed": i.listed, "created": i.created, "cancelled": i.cancelled,
        "superseded": i.superseded, "already_known": i.already_known,
        "skipped": i.skipped.len(), "quarantined": i.quarantined.len(),
    })
}
