//! Helpers shared by the job types that create one job per catalogue product.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::context::JobContext;
use crate::job::{JobPriority, NewJob};
use crate::listing::CatalogueProduct;
use crate::status::JobStatus;
use crate::template::{JobTemplate, JobTypeError, JobsToCreate, RejectedProduct};

/// Splits job candidates into jobs, skipped products and rejected ones, dropping those that already
/// exist in the database or earlier in the page. Shared by the job types that key jobs by product.
pub(crate) async fn jobs_from_products(
    template: &dyn JobTemplate,
    ctx: &dyn JobContext,
    products: &[CatalogueProduct],
    build: impl Fn(&CatalogueProduct) -> Result<NewJob, String>,
) -> Result<JobsToCreate, JobTypeError> {
    let mut out = JobsToCreate::default();
    let mut candidates = Vec::new();
    let mut seen = HashSet::new();
    for product in products {
        match build(product) {
            Ok(job) => {
                if seen.insert(job.name.clone()) {
                    candidates.push(job);
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
    let ids: Vec<String> = candidates
        .iter()
        .filter_map(|j| j.product_id.clone())
        .collect();
    let existing: HashSet<String> = ctx
        .jobs_with_products(&template.spec().name, &ids)
        .await?
        .into_iter()
        .filter_map(|j| j.product_id)
        .collect();
    let start = template.spec().processing_start_date;
    for mut job in candidates {
        if job
            .product_id
            .as_ref()
            .is_some_and(|p| existing.contains(p))
        {
            continue;
        }
        let reprocessed = matches!((job.measured_at, start), (Some(m), Some(s)) if m < s);
        template.job_pre_insertion_setup(&mut job, reprocessed);
        out.jobs.push(job);
    }
    Ok(out)
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
