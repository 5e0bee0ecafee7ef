//! Test support for job types: an in-memory [`JobContext`] over a list of jobs, and builders.
//!
//! The orchestrator's PostgreSQL context answers the same questions; its integration tests check
//! that both agree on the same data.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::context::{ContextError, JobContext};
use crate::job::{Job, NewJob};
use crate::listing::CatalogueProduct;
use crate::status::JobStatus;

/// Jobs held in memory.
#[derive(Debug, Default)]
pub struct MemoryContext {
    pub jobs: Vec<Job>,
}

#[async_trait]
impl JobContext for MemoryContext {
    async fn jobs_with_products(
        &self,
        job_type: &str,
        product_ids: &[String],
    ) -> Result<Vec<Job>, ContextError> {
        Ok(self
            .jobs
            .iter()
            .filter(|j| j.job_type == job_type && j.retry_of.is_none())
            .filter(|j| {
                j.product_id
                    .as_ref()
                    .is_some_and(|p| product_ids.contains(p))
            })
            .cloned()
            .collect())
    }

    async fn jobs_measured_at(
        &self,
        job_type: &str,
        times: &[DateTime<Utc>],
    ) -> Result<Vec<Job>, ContextError> {
        Ok(self
            .jobs
            .iter()
            .filter(|j| j.job_type == job_type && j.retry_of.is_none())
            .filter(|j| j.measured_at.is_some_and(|m| times.contains(&m)))
            .cloned()
            .collect())
    }

    async fn previous_job_on_tile(
        &self,
        job_type: &str,
        tile: &str,
        before: DateTime<Utc>,
        excluded: &[JobStatus],
    ) -> Result<Option<Job>, ContextError> {
        let retried: Vec<i64> = self.jobs.iter().filter_map(|j| j.retry_of).collect();
        Ok(self
            .jobs
            .iter()
            .filter(|j| j.job_type == job_type && j.tile_id.as_deref() == Some(tile))
            .filter(|j| j.measured_at.is_some_and(|m| m < before))
            .filter(|j| !excluded.contains(&j.status) && !retried.contains(&j.id))
            .max_by_key(|j| (j.measured_at, j.id))
            .cloned())
    }
}

/// The job that inserting `new` with id `id` would create.
pub fn job_from_new(new: &NewJob, id: i64) -> Job {
    let now = Utc::now();
    Job {
        id,
        uid: Uuid::new_v4(),
        job_type: new.job_type.clone(),
        name: new.name.clone(),
        product_id: new.product_id.clone(),
        tile_id: new.tile_id.clone(),
        input_path: new.input_path.clone(),
        measured_at: new.measured_at,
        input_published_at: new.input_published_at,
        output_path: None,
        output_published_at: None,
        priority: new.priority,
        status: new.initial_status,
        status_changed_at: now,
        status_error_subtype: None,
        status_message: new.initial_message.clone(),
        params: new.params.clone(),
        results: None,
        attempt: 1,
        max_attempts: new.max_attempts,
        next_attempt_at: None,
        parent_id: new.parent_id,
        spawned_by: new.spawned_by,
        retry_of: new.retry_of,
        campaign_id: new.campaign_id,
        input_withdrawn_at: None,
        input_withdrawal_reason: None,
        depends_on: None,
        recheck_at: None,
        software_version: new.software_version.clone(),
        executor_ref: None,
        service_id: None,
        tag: None,
        lease_expires_at: None,
        created_at: now,
    }
}

/// A catalogue entry for `name`, published at `published`.
pub fn listed(name: &str, published: &str) -> CatalogueProduct {
    CatalogueProduct {
        catalogue_id: None,
        name: name.to_string(),
        input_path: format!("/eodata/test/{name}"),
        published_at: published.parse().unwrap(),
        sensing_start: None,
        sensing_end: None,
        footprint: None,
        cloud_cover: Some(12.5),
        size_bytes: None,
    }
}
