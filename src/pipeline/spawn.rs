//! The children a job creates when it is processed (`JobTemplate::children_when_processed`), made
//! ready to be stored with its move to `processed`: attached children get `parent_id`, best-effort
//! children `spawned_by`, and each gets the attempts of its own job type.

use swath_job_types::children::ChildKind;
use swath_job_types::registry::JobTypeRegistry;
use swath_job_types::{Job, JobStatus, NewJob};

/// The children of `job`, as it enters `processed` with its results, or why they cannot be made.
pub fn children_of(registry: &JobTypeRegistry, job: &Job) -> Result<Vec<NewJob>, String> {
    let job_type = registry
        .get(&job.job_type)
        .ok_or_else(|| format!("job type {} is not served here", job.job_type))?;
    let children = job_type
        .children_when_processed(job)
        .map_err(|e| e.to_string())?;
    children
        .into_iter()
        .map(|child| {
            let mut new = child.job;
            let child_type = registry.get(&new.job_type).ok_or_else(|| {
                format!(
                    "{} creates a child of job type {}, which is not registered",
                    job.job_type, new.job_type
                )
            })?;
            new.max_attempts = child_type.spec().max_attempts;
            new.initial_status = JobStatus::Initialized;
            match child.kind {
                ChildKind::Attached => {
                    new.parent_id = Some(job.id);
                    new.spawned_by = None;
                }
                ChildKind::BestEffort => {
                    new.parent_id = None;
                    new.spawned_by = Some(job.id);
                }
            }
            Ok(new)
        })
        .collect()
}

/// Whether jobs of `job_type` may create children when processed.
pub fn spawns_children(registry: &JobTypeRegistry, job_type: &str) -> bool {
    registry
        .get(job_type)
        .is_some_and(|t| !t.child_job_types().is_empty())
}
