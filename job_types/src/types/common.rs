//! Helpers shared by the job types that create one job per catalogue product.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::context::JobContext;
use crate::job::{JobPriority, NewJob};
use crate::listing::CatalogueProduct;
use crate::status::JobStatus;
use crate::template::{JobTemplate, JobTypeError, JobsToCreate, RejectedProduct};

/// The products of a page that a job type may turn into jobs, after filtering and after dropping
/// those that already have a job (in the database or earlier in the page). Skipped and rejected
/// products are already sorted into `out`.
pub(crate) struct Candidates {
    /// Skipped and rejected products so far; jobs are added by the caller.
    pub out: JobsToCreate,
    /// New jobs, each with the listed product it comes from.
    pub jobs: Vec<(NewJob, CatalogueProduct)>,
}

/// Builds one candidate job per product with `build` (an `Err` starting with `skip: ` skips the
/// product, any other `Err` rejects it), then drops the products that already have a job.
pub(crate) async fn candidates(
    template: &dyn JobTemplate,
    ctx: &dyn JobContext,
    products: &[CatalogueProduct],
    build: impl Fn(&CatalogueProduct) -> Result<NewJob, String>,
) -> Result<Candidates, JobTypeError> {
    let mut out = JobsToCreate::default();
    let mut jobs = Vec::new();
    let mut seen = HashSet::new();
    for product in products {
        match build(product) {
            Ok(job) => {
                if seen.insert(job.name.clone()) {
                    jobs.push((job, product.clone()));
                }
            }
            Err(reason) => {
                let (list, reason) = match reason.strip_prefix("skip: ") {
                    Some(r) => (&mut out.skipped, r.to_string()),
                    None => (&mut out.rejected, reason),
                };
                list.push(RejectedProduct {
                    name: product.name.clone(),
                    reason,
                });
            }
        }
    }
    let ids: Vec<String> = jobs
        .iter()
        .filter_map(|(j, _)| j.product_id.clone())
        .collect();
    let existing: HashSet<String> = ctx
        .jobs_with_products(&template.spec().name, &ids)
        .await?
        .into_iter()
        .filter_map(|j| j.product_id)
        .collect();
    jobs.retain(|(job, _)| {
        !job.product_id
            .as_ref()
            .is_some_and(|p| existing.contains(p))
    });
    Ok(Candidates { out, jobs })
}

/// Applies the processing start date and the job type's pre-insertion setup, then adds the job.
pub(crate) fn finish(template: &dyn JobTemplate, out: &mut JobsToCreate, mut job: NewJob) {
    let start = template.spec().processing_start_date;
    let reprocessed = matches!((job.measured_at, start), (Some(m), Some(s)) if m < s);
    template.job_pre_insertion_setup(&mut job, reprocessed);
    out.jobs.push(job);
}

/// [`candidates`] then [`finish`] for each: for job types whose products are independent.
pub(crate) async fn jobs_from_products(
    template: &dyn JobTemplate,
    ctx: &dyn JobContext,
    products: &[CatalogueProduct],
    build: impl Fn(&CatalogueProduct) -> Result<NewJob, String>,
) -> Result<JobsToCreate, JobTypeError> {
    let Candidates { mut out, jobs } = candidates(template, ctx, products, build).await?;
    for (job, _) in jobs {
        finish(template, &mut out, job);
    }
    Ok(out)
}

/// Marks a job as created `cancelled` for `reason` (recorded in its history), with `context` as its
/// reprocessing context.
pub(crate) fn mark_cancelled(job: &mut NewJob, reason: String, context: &str) {
    job.priority = JobPriority::Reprocessing;
    job.initial_status = JobStatus::Cancelled;
    job.initial_message = Some(reason);
    if let Some(params) = job.params.as_object_mut() {
        params.insert("reprocessing_context".into(), context.into());
    }
}

/// Marks a job as reprocessed: it starts `cancelled` with the reason recorded.
pub(crate) fn mark_reprocessed(job: &mut NewJob, start: Option<DateTime<Utc>>) {
    job.priority = JobPriority::Reprocessing;
    job.initial_status = JobStatus::Cancelled;
    job.initial_message = Some(match start {
        Some(s) => format!(
            "sensed before the processing start date {}: part of a reprocessing campaign",
            s.format("%Y-%m-%d")
        ),
        None => "part of a reprocessing campaign".to_string(),
    });
}
