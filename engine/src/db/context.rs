//! [`JobContext`] on PostgreSQL: the lookups job types may make.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use swath_domain::context::{ContextError, JobContext};
use swath_domain::{Job, JobStatus};

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::DbError;

/// Job-type lookups answered from the database.
#[derive(Debug, Clone)]
pub struct PgJobContext {
    pool: PgPool,
    campaign: Option<CampaignView>,
}

/// How a campaign's listing sees the jobs that exist: as continuous ingestion does, except for the
/// jobs it is there to replace, which it does not see (so the job type plans their products again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignView {
    /// The campaign: its own jobs are always seen (a page listed again creates nothing).
    pub id: i64,
    /// Whether it processes again products whose jobs ended (done, failed or cancelled). Without
    /// it, only the jobs created `cancelled` because their input was sensed before the processing
    /// start date (left to reprocessing campaigns) are not seen.
    pub reprocess: bool,
}

impl CampaignView {
    /// The predicate on `jobs` of the jobs this view sees, with the campaign id as `$3` and the ended
    /// statuses as `$4`.
    const SEEN: &'static str = "($3::bigint IS NULL OR campaign_id = $3
        OR (CASE WHEN $5 THEN status <> ALL ($4)
                 ELSE NOT (status = ANY ($4) AND params->>'reprocessing_context' = 'before_processing_start_date') END))";
}

impl PgJobContext {
    /// A context on `pool`.
    pub fn new(pool: PgPool) -> Self {
        PgJobContext {
            pool,
            campaign: None,
        }
    }

    /// A context on `pool` for the listing of a campaign.
    pub fn for_campaign(pool: PgPool, view: CampaignView) -> Self {
        PgJobContext {
            pool,
            campaign: Some(view),
        }
    }

    /// The statuses `$4` of [`CampaignView::SEEN`]: those of ended jobs when reprocessing, else
    /// `cancelled` only.
    fn hidden_statuses(&self) -> Vec<i16> {
        let statuses: &[JobStatus] = match self.campaign {
            Some(CampaignView {
                reprocess: true, ..
            }) => &[
                JobStatus::Done,
                JobStatus::InternalError,
                JobStatus::ErrorChecked,
                JobStatus::Cancelled,
            ],
            _ => &[JobStatus::Cancelled],
        };
        statuses.iter().map(|s| s.id()).collect()
    }
}

fn lookup_failed(what: &str, err: impl Into<DbError>) -> ContextError {
    ContextError {
        what: what.to_string(),
        source: Box::new(err.into()),
    }
}

#[async_trait]
impl JobContext for PgJobContext {
    async fn jobs_with_products(
        &self,
        job_type: &str,
        product_ids: &[String],
    ) -> Result<Vec<Job>, ContextError> {
        let what = "looking up existing jobs by product";
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE job_type = $1 AND product_id = ANY ($2) AND retry_of IS NULL AND {seen} ORDER BY id",
            seen = CampaignView::SEEN
        ))
        .bind(job_type)
        .bind(product_ids)
        .bind(self.campaign.map(|c| c.id))
        .bind(self.hidden_statuses())
        .bind(self.campaign.is_some_and(|c| c.reprocess))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| lookup_failed(what, e))?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(|e| lookup_failed(what, e)))
            .collect()
    }

    async fn jobs_measured_at(
        &self,
        job_type: &str,
        times: &[DateTime<Utc>],
    ) -> Result<Vec<Job>, ContextError> {
        let what = "looking up jobs by sensing time";
        if times.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE job_type = $1 AND measured_at = ANY ($2) AND retry_of IS NULL AND {seen} ORDER BY id",
            seen = CampaignView::SEEN
        ))
        .bind(job_type)
        .bind(times)
        .bind(self.campaign.map(|c| c.id))
        .bind(self.hidden_statuses())
        .bind(self.campaign.is_some_and(|c| c.reprocess))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| lookup_failed(what, e))?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(|e| lookup_failed(what, e)))
            .collect()
    }

    async fn previous_job_on_tile(
        &self,
        job_type: &str,
        tile: &str,
        before: DateTime<Utc>,
        excluded: &[JobStatus],
    ) -> Result<Option<Job>, ContextError> {
        let what = "looking up the previous job of the tile";
        let excluded: Vec<i16> = excluded.iter().map(|s| s.id()).collect();
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs j
             WHERE job_type = $1 AND tile_id = $2 AND measured_at < $3 AND status <> ALL ($4)
               AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.retry_of = j.id)
             ORDER BY measured_at DESC, id DESC
             LIMIT 1"
        ))
        .bind(job_type)
        .bind(tile)
        .bind(before)
        .bind(&excluded)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| lookup_failed(what, e))?;
        row.map(|r| job_from_row(&r).map_err(|e| lookup_failed(what, e)))
            .transpose()
    }
}
