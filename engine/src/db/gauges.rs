//! The state of the whole system read at each metrics scrape: catalogue lag, instances and their
//! heartbeats, manual retries (jobs by type and status are [`super::jobs::count_by_type_and_status`]).
//! Catalogue lag and manual retries come from the summaries of [`super::summaries`]: no scan of
//! `jobs`.

use sqlx::{PgPool, Row};

use super::DbError;

/// Seconds from the newest catalogue publication date ingested to now, per job type (negative when
/// the catalogue's clock is ahead).
pub async fn catalogue_lag(pool: &PgPool) -> Result<Vec<(String, f64)>, DbError> {
    super::summaries::catalogue_lag(pool).await
}

/// An instance that is alive, or stopped or declared dead in the last day.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentInstance {
    /// Its id.
    pub id: String,
    /// Its machine.
    pub host: String,
    /// Its name.
    pub name: String,
    /// `alive`, `stopped` or `dead`.
    pub state: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age: f64,
}

/// The instances alive, and those stopped or declared dead in the last day.
pub async fn recent_instances(pool: &PgPool) -> Result<Vec<RecentInstance>, DbError> {
    let rows = sqlx::query(
        "SELECT id::text AS id, host, name, state,
                extract(epoch FROM now() - heartbeat_at)::float8 AS age
         FROM services WHERE state = 'alive' OR ended_at > now() - interval '1 day'",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecentInstance {
                id: row.try_get("id")?,
                host: row.try_get("host")?,
                name: row.try_get("name")?,
                state: row.try_get("state")?,
                heartbeat_age: row.try_get("age")?,
            })
        })
        .collect()
}

/// How many jobs a manual retry created.
pub async fn manual_retries(pool: &PgPool) -> Result<i64, DbError> {
    super::summaries::manual_retries(pool).await
}

/// How many instances hold an unexpired leader lease: 1 normally, 0 while no instance leads (the
/// lease is one row, so never more than 1).
pub async fn leaders(pool: &PgPool) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*)::int8 FROM cluster_leader
         WHERE service_id IS NOT NULL AND expires_at > clock_timestamp()",
    )
    .fetch_one(pool)
    .await?)
}

/// Seconds since the oldest ready job of each job type entered `ready` (types with no ready job
/// are left out). Reads only the ready jobs, through the partial indexes of the ready queue
/// (`jobs_ready_queue_own`, `jobs_ready_campaign`): the cost is the size of the queue, never the
/// size of the archive.
pub async fn oldest_ready(pool: &PgPool) -> Result<Vec<(String, f64)>, DbError> {
    let rows = sqlx::query(
        "SELECT job_type, extract(epoch FROM now() - min(entered))::float8 AS age
         FROM (SELECT job_type, min(status_changed_at) AS entered FROM jobs
               WHERE status = 3 AND campaign_id IS NULL GROUP BY 1
               UNION ALL
               SELECT job_type, min(status_changed_at) FROM jobs
               WHERE status = 3 AND campaign_id IS NOT NULL GROUP BY 1) AS ready
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("job_type")?, row.try_get("age")?)))
        .collect()
}

/// The publication outbox's backlog: messages written and not yet confirmed by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PublicationBacklog {
    /// Unconfirmed messages.
    pub messages: i64,
    /// Seconds since the oldest of them was written (0 when there is none).
    pub oldest_age: f64,
}

/// The unconfirmed messages of the outbox, through its partial index `publications_unconfirmed`
/// (confirmed rows, the archive, are not read).
pub async fn publication_backlog(pool: &PgPool) -> Result<PublicationBacklog, DbError> {
    let row = sqlx::query(
        "SELECT count(*)::int8 AS messages,
                coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age
         FROM publications WHERE confirmed_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(PublicationBacklog {
        messages: row.try_get("messages")?,
        oldest_age: row.try_get("age")?,
    })
}

/// Published jobs of one job type whose inputs were published since the start of yesterday (UTC),
/// and how many of them took longer than the timeliness target from input to output publication.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecentTimeliness {
    /// The job type.
    pub job_type: String,
    /// Published jobs.
    pub published: i64,
    /// Those over the target.
    pub late: i64,
}

/// The timeliness of yesterday's and today's inputs (UTC days of input publication) per job type,
/// from the timeliness histograms (`job_timeliness`, two days of buckets: no read of `jobs`). A
/// job is late when its whole bucket lies at or above `target_hours`; a bucket (15 minutes wide up
/// to 72 hours, 6 hours wide beyond) that straddles the target counts as on time, so a target that
/// is a whole number of quarter hours is exact.
pub async fn recent_timeliness(
    pool: &PgPool,
    target_hours: f64,
) -> Result<Vec<RecentTimeliness>, DbError> {
    let target_micros = (target_hours * 3_600_000_000.0).round() as i64;
    let rows = sqlx::query(
        "SELECT job_type,
                sum(jobs)::int8 AS published,
                coalesce(sum(jobs) FILTER (WHERE CASE
                    WHEN bucket < -288 THEN NULL
                    WHEN bucket < 288 THEN bucket::int8 * 900000000
                    ELSE 259200000000 + (bucket::int8 - 288) * 21600000000
                END >= $1), 0)::int8 AS late
         FROM job_timeliness
         WHERE measure = 2 AND day >= (now() AT TIME ZONE 'UTC')::date - 1
         GROUP BY 1 HAVING sum(jobs) <> 0 ORDER BY 1",
    )
    .bind(target_micros)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecentTimeliness {
                job_type: row.try_get("job_type")?,
                published: row.try_get("published")?,
                late: row.try_get("late")?,
            })
        })
        .collect()
}
