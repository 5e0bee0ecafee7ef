//! Retention: the status history of finished jobs (done, internal error, cancelled) older than the
//! retention goes, except each job's last change, in batches; so do the records of instances and
//! background runs that ended before it.

use std::time::Duration;

use sqlx::PgExecutor;

use super::{terminal_status_ids, DbError};

/// Deletes up to `batch` history rows older than `older_than` of jobs in a final status, never the
/// last change of a job. Returns how many went.
pub async fn prune_history<'e>(
    db: impl PgExecutor<'e>,
    older_than: Duration,
    batch: i64,
) -> Result<u64, DbError> {
    let deleted = sqlx::query(
        "WITH doomed AS (
             SELECT h.id FROM job_status_changes h
             JOIN jobs j ON j.id = h.job_id
             WHERE h.time < clock_timestamp() - make_interval(secs => $1)
               AND j.status = ANY ($3)
               AND EXISTS (SELECT 1 FROM job_status_changes later
                           WHERE later.job_id = h.job_id AND later.id > h.id)
             LIMIT $2
         )
         DELETE FROM job_status_changes WHERE id IN (SELECT id FROM doomed)",
    )
    .bind(older_than.as_secs_f64())
    .bind(batch)
    .bind(terminal_status_ids())
    .execute(db)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// Deletes the records of instances and background runs that ended more than `older_than` ago.
/// Returns how many rows went.
pub async fn prune_ended<'e>(
    db: impl PgExecutor<'e>,
    older_than: Duration,
) -> Result<u64, DbError> {
    let (services, runs): (i64, i64) = sqlx::query_as(
        "WITH services AS (
             DELETE FROM services
             WHERE state <> 'alive' AND ended_at < clock_timestamp() - make_interval(secs => $1)
             RETURNING 1
         ),
         runs AS (
             DELETE FROM schedule_runs
             WHERE state <> 'running' AND finished_at < clock_timestamp() - make_interval(secs => $1)
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM services), (SELECT count(*) FROM runs)",
    )
    .bind(older_than.as_secs_f64())
    .fetch_one(db)
    .await?;
    Ok((services + runs) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::history::job_history;
    use crate::db::jobs::insert_jobs;
    use sqlx::PgPool;
    use swath_domain::{JobStatus, NewJob};

    #[sqlx::test(migrations = "../sql")]
    async fn old_history_of_finished_jobs_goes_but_each_last_change_stays(pool: PgPool) {
        let jobs = insert_jobs(
            &pool,
            &[
                NewJob::new("test_job", "finished", 3),
                NewJob::new("test_job", "waiting", 3),
            ],
        )
        .await
        .unwrap();
        let (finished, waiting) = (jobs[0].id, jobs[1].id);
        for status in [JobStatus::Configured, JobStatus::Cancelled] {
            sqlx::query("UPDATE jobs SET status = $2 WHERE id = $1")
                .bind(finished)
                .bind(status.id())
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("UPDATE jobs SET status = $2 WHERE id = $1")
            .bind(waiting)
            .bind(JobStatus::Configured.id())
            .execute(&pool)
            .await
            .unwrap();
        // Nothing is old enough yet.
        assert_eq!(
            prune_history(&pool, Duration::from_secs(3600), 100)
                .await
                .unwrap(),
            0
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pruned = prune_history(&pool, Duration::from_millis(10), 1)
            .await
            .unwrap()
            + prune_history(&pool, Duration::from_millis(10), 100)
                .await
                .unwrap();
        assert_eq!(pruned, 2, "initialized and configured of the cancelled job");
        let kept: Vec<JobStatus> = job_history(&pool, finished)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.status)
            .collect();
        assert_eq!(kept, [JobStatus::Cancelled]);
        assert_eq!(
            job_history(&pool, waiting).await.unwrap().len(),
            2,
            "not finished: kept"
        );
    }
}
