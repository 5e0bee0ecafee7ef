//! The children a job creates when it is processed (`JobTemplate::children_when_processed`), made
//! ready to be stored with its move to `processed`: attached children get `parent_id`, best-effort
//! children `spawned_by`, and each gets the attempts of its own job type. A job whose children
//! cannot be made ends in `internal_error` instead, with its results.

use swath_domain::children::ChildKind;
use swath_domain::job::JobResults;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::{Job, JobStatus, NewJob};

use crate::db::status::StatusChange;
use crate::db::status_batch::ChangeChain;

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

/// `chain` (whose last change moves `job` to `processed` with `results`) with the children the job
/// creates, stored in the same transaction; if they cannot be made, the job ends in
/// `internal_error` with its results instead. `job` is the whole job as read.
pub fn with_children(
    registry: &JobTypeRegistry,
    job: &Job,
    results: &JobResults,
    mut chain: ChangeChain,
) -> ChangeChain {
    let mut processed = job.clone();
    processed.status = JobStatus::Processed;
    processed.results = Some(results.clone());
    let last = chain.last_mut();
    match children_of(registry, &processed) {
        Ok(children) => {
            *last = last.clone().spawn(children);
            chain
        }
        Err(reason) => {
            tracing::error!(job_id = job.id, %reason, "cannot create the children of a processed job");
            let failed = StatusChange {
                to: JobStatus::InternalError,
                ..last.clone()
            }
            .error("children", format!("cannot create its children: {reason}"));
            ChangeChain::new(failed)
        }
    }
}
