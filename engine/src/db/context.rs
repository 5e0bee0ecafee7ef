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
}

impl PgJobContext {
    /// A context on `pool`.
    pub fn new(pool: PgPool) -> Self {
        PgJobContext { pool }
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
             WHERE job_type = $1 AND product_id = ANY ($2) AND retry_of IS NULL ORDER BY id"
        ))
        .bind(job_type)
        .bind(product_ids)
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
            "SELECT {JOB_COLUMNS} FROM jobs WHERE job_type = $1 AND measured_at = ANY ($2) AND retry_of IS NULL ORDER BY id"
        ))
        .bind(job_type)
        .bind(times)
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
