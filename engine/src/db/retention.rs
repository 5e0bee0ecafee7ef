//! Retention and upkeep of the status history, which is partitioned by month (migration
//! `20261207000018_history_partitions`, whose comments hold the whole design):
//!
//! - [`ensure_history_partitions`] creates the partitions of the current month and of the next
//!   ones before rows arrive (rows that landed in the default partition move into their month's
//!   partition when it is created);
//! - [`retire_history_partitions`] drops the monthly partitions older than the retention, after
//!   copying into the archive partition each job's last change and the rows of unfinished jobs;
//! - [`prune_archived_history`] deletes, row by row, what the archive no longer needs to keep;
//! - [`maintain_history`] runs the three, as the leader does every ten minutes.
//!
//! The records of instances and background runs that ended before the retention go too
//! ([`prune_ended`]). [`prune_history`] is the row-by-row retention over the whole history, exact
//! to the second but costly at scale: for one-off use, the leader retires whole months instead.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use super::{terminal_status_ids, DbError};

/// Months of partitions kept ready ahead of the current one.
pub const HISTORY_MONTHS_AHEAD: i32 = 3;

/// How long retiring months may wait for its lock on the history before giving up until the next
/// time: while it waits, status changes queue behind it.
const RETIRE_LOCK_TIMEOUT: &str = "5s";

/// A monthly partition of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMonth {
    /// The partition's table, `job_status_changes_YYYY_MM`.
    pub name: String,
    /// First instant of the month (UTC).
    pub starts: DateTime<Utc>,
    /// First instant of the next month.
    pub ends: DateTime<Utc>,
}

/// The monthly partitions of the history, oldest first (the archive and default partitions aside).
pub async fn history_months<'e>(db: impl PgExecutor<'e>) -> Result<Vec<HistoryMonth>, DbError> {
    let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("SELECT name, starts, ends FROM swath_history_months() ORDER BY starts")
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(name, starts, ends)| HistoryMonth { name, starts, ends })
        .collect())
}

/// Creates the partitions of the current month and of the `months_ahead` next ones (and of any
/// month missing between the newest one and them). Returns how many it created.
pub async fn ensure_history_partitions<'e>(
    db: impl PgExecutor<'e>,
    months_ahead: i32,
) -> Result<u32, DbError> {
    let created: i32 = sqlx::query_scalar("SELECT swath_ensure_history_partitions($1)")
        .bind(months_ahead)
        .fetch_one(db)
        .await?;
    Ok(created.max(0) as u32)
}

/// What retiring whole months did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetiredHistory {
    /// Monthly partitions dropped.
    pub partitions: u32,
    /// Rows of theirs kept in the archive partition (last changes, unfinished jobs).
    pub kept: u64,
}

/// Drops the monthly partitions of the history that ended more than `older_than` ago, keeping in
/// the archive partition each job's last change and every row of the jobs not in a final status.
/// Gives up with an error when the history stays locked by others for a few seconds.
pub async fn retire_history_partitions(
    pool: &PgPool,
    older_than: Duration,
) -> Result<RetiredHistory, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("SET LOCAL lock_timeout = '{RETIRE_LOCK_TIMEOUT}'"))
        .execute(&mut *tx)
        .await?;
    let (partitions, kept): (i32, i64) = sqlx::query_as(
        "SELECT partitions, kept FROM swath_retire_history_partitions(
             clock_timestamp() - make_interval(secs => $1), $2)",
    )
    .bind(older_than.as_secs_f64())
    .bind(terminal_status_ids())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RetiredHistory {
        partitions: partitions.max(0) as u32,
        kept: kept.max(0) as u64,
    })
}

/// Deletes up to `batch` rows of the archive partition older than `older_than` of jobs in a final
/// status, never the last change of a job: the rows kept for a job that was unfinished when its
/// months were retired, once it has finished. Returns how many went.
pub async fn prune_archived_history<'e>(
    db: impl PgExecutor<'e>,
    older_than: Duration,
    batch: i64,
) -> Result<u64, DbError> {
    prune_rows(db, "job_status_changes_archive", older_than, batch).await
}

/// What one round of [`maintain_history`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryMaintenance {
    /// Partitions created ahead.
    pub created: u32,
    /// Whole months retired.
    pub retired: RetiredHistory,
    /// Archived rows deleted.
    pub pruned: u64,
}

/// Creates the partitions ahead, then, with a retention, retires the months older than it and
/// prunes the archive, `batch` rows at a time and `rounds` times at most.
pub async fn maintain_history(
    pool: &PgPool,
    retention: Option<Duration>,
    batch: i64,
    rounds: usize,
) -> Result<HistoryMaintenance, DbError> {
    let mut done = HistoryMaintenance {
        created: ensure_history_partitions(pool, HISTORY_MONTHS_AHEAD).await?,
        ..HistoryMaintenance::default()
    };
    let Some(retention) = retention else {
        return Ok(done);
    };
    done.retired = retire_history_partitions(pool, retention).await?;
    for _ in 0..rounds {
        let n = prune_archived_history(pool, retention, batch).await?;
        done.pruned += n;
        if n < batch as u64 {
            break;
        }
    }
    Ok(done)
}

/// Deletes up to `batch` history rows older than `older_than` of jobs in a final status, never the
/// last change of a job, in every partition. Returns how many went.
pub async fn prune_history<'e>(
    db: impl PgExecutor<'e>,
    older_than: Duration,
    batch: i64,
) -> Result<u64, DbError> {
    prune_rows(db, "job_status_changes", older_than, batch).await
}

/// The row-by-row retention over `table`: the whole history or one of its partitions (a name of
/// this module, never an input). A later change of the job is looked for in the whole history.
async fn prune_rows<'e>(
    db: impl PgExecutor<'e>,
    table: &'static str,
    older_than: Duration,
    batch: i64,
) -> Result<u64, DbError> {
    let deleted = sqlx::query(&format!(
        "WITH doomed AS (
             SELECT h.id FROM {table} h
             JOIN jobs j ON j.id = h.job_id
             WHERE h.time < clock_timestamp() - make_interval(secs => $1)
               AND j.status = ANY ($3)
               AND EXISTS (SELECT 1 FROM job_status_changes later
                           WHERE later.job_id = h.job_id AND later.id > h.id)
             LIMIT $2
         )
         DELETE FROM {table} WHERE id IN (SELECT id FROM doomed)"
    ))
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
