//! Ingest: turn one page of catalogue products into jobs, for one job type, in one insert.

use sqlx::PgPool;
use swath_job_types::listing::CatalogueProduct;
use swath_job_types::template::{JobTypeError, RejectedProduct};
use swath_job_types::{JobStatus, JobTemplate};

use crate::db::context::PgJobContext;
use crate::db::jobs::insert_jobs;
use crate::db::DbError;

/// What ingesting one page did for one job type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// The job type.
    pub job_type: String,
    /// Jobs created `initialized`.
    pub created: usize,
    /// Jobs created `cancelled` (e.g. inputs sensed before the processing start date).
    pub cancelled: usize,
    /// Products that already had a job, in the database or earlier in the same page.
    pub already_known: usize,
    /// Products that are not for this job type.
    pub skipped: Vec<RejectedProduct>,
    /// Products that could not be understood.
    pub rejected: Vec<RejectedProduct>,
}

/// An ingest step that failed; nothing of the page was inserted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The job type could not decide.
    #[error(transparent)]
    JobType(#[from] JobTypeError),
    /// The insert failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates the jobs `job_type` wants for `products`. Idempotent: a second run creates nothing.
pub async fn ingest_page(
    pool: &PgPool,
    job_type: &dyn JobTemplate,
    products: &[CatalogueProduct],
) -> Result<IngestReport, IngestError> {
    let ctx = PgJobContext::new(pool.clone());
    let plan = job_type.get_jobs_to_create(&ctx, products).await?;
    let inserted = insert_jobs(pool, &plan.jobs).await?;
    for rejected in &plan.rejected {
        tracing::warn!(job_type = %job_type.spec().name, product = %rejected.name, reason = %rejected.reason, "product rejected");
    }
    let cancelled = inserted
        .iter()
        .filter(|j| j.status == JobStatus::Cancelled)
        .count();
    let matched = products.len() - plan.skipped.len() - plan.rejected.len();
    Ok(IngestReport {
        job_type: job_type.spec().name.clone(),
        created: inserted.len() - cancelled,
        cancelled,
        already_known: matched.saturating_sub(inserted.len()),
        skipped: plan.skipped,
        rejected: plan.rejected,
    })
}
