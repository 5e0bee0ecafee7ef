//! The jobs an instance tracks through their executor (those in flight, from `queued` to
//! `post_processing`), and applying what a tracking round or a failure decides.

use sqlx::PgPool;
use swath_domain::{Job, JobStatus};

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::DbError;

/// Which attempts in flight an instance tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackScope {
    /// Every one.
    All,
    /// Only those of this instance: an executor that lives in one instance (like the local one)
    /// knows only its own attempts.
    Owned(uuid::Uuid),
    /// Those of this instance, and those whose owner's lease ran out (its instance is gone or
    /// stuck): for an executor whose attempts outlive an instance (like Nomad).
    OwnedOrOrphaned(uuid::Uuid),
}

impl From<Option<uuid::Uuid>> for TrackScope {
    fn from(owner: Option<uuid::Uuid>) -> Self {
        owner.map_or(TrackScope::All, TrackScope::Owned)
    }
}

/// Up to `limit` jobs in flight (queued to post-processing) dispatched through `executor_prefix`
/// (e.g. `local/`) within `scope`, oldest change first.
pub async fn in_flight_jobs(
    pool: &PgPool,
    executor_prefix: &str,
    scope: TrackScope,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    let (owner, orphans) = match scope {
        TrackScope::All => (None, false),
        TrackScope::Owned(id) => (Some(id), false),
        TrackScope::OwnedOrOrphaned(id) => (Some(id), true),
    };
    // In flight: from `queued` to `post_processing`, whose ids are consecutive.
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE status BETWEEN $5 AND $6 AND starts_with(executor_ref, $2)
           AND ($3::uuid IS NULL OR service_id = $3
                OR ($4 AND (service_id IS NULL OR lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())))
         ORDER BY status_changed_at LIMIT $1"
    ))
    .bind(limit)
    .bind(executor_prefix)
    .bind(owner)
    .bind(orphans)
    .bind(JobStatus::Queued.id())
    .bind(JobStatus::PostProcessing.id())
    .fetch_all(pool)
    .await?;
    rows.iter().map(job_from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_statuses_are_consecutive() {
        let in_flight: Vec<i16> = swath_domain::status::ALL_STATUSES
            .iter()
            .filter(|s| **s == JobStatus::Queued || s.is_running())
            .map(|s| s.id())
            .collect();
        let range: Vec<i16> = (JobStatus::Queued.id()..=JobStatus::PostProcessing.id()).collect();
        assert_eq!(in_flight, range);
    }

    #[test]
    fn a_scope_comes_from_an_optional_owner() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(TrackScope::from(None), TrackScope::All);
        assert_eq!(TrackScope::from(Some(id)), TrackScope::Owned(id));
    }
}
