//! What the dashboard shows, read in a few queries: jobs by type and status, the running jobs, the
//! recent failures, and the timeliness per day.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use swath_domain::JobStatus;

use super::DbError;

/// Jobs of one type in one status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusCount {
    /// The job type.
    pub job_type: String,
    /// The status's name.
    pub status: String,
    /// How many.
    pub jobs: i64,
}

/// A job in flight or ended in an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobLine {
    /// The job.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its type.
    pub job_type: String,
    /// Its status's name.
    pub status: String,
    /// Its attempt.
    pub attempt: i32,
    /// Since when it is in that status.
    pub since: DateTime<Utc>,
    /// The error's subtype, for failures.
    pub error_subtype: Option<String>,
    /// The error's message, for failures.
    pub error_message: Option<String>,
    /// Manual retries of it so far.
    pub retries: i64,
}

/// Timeliness of one job type's jobs whose input was published on one day, in hours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinessDay {
    /// The day the inputs were published (UTC).
    pub day: NaiveDate,
    /// The job type.
    pub job_type: String,
    /// Jobs counted.
    pub jobs: i64,
    /// Median hours from sensing to the input's publication in the catalogue.
    pub sensing_to_input_h: Option<f64>,
    /// 90th percentile of the same.
    pub sensing_to_input_p90_h: Option<f64>,
    /// Median hours from the input's publication to the outputs' publication (published jobs).
    pub input_to_output_h: Option<f64>,
    /// 90th percentile of the same.
    pub input_to_output_p90_h: Option<f64>,
}

/// Counts by type and status, by type then status.
pub async fn status_counts(pool: &PgPool) -> Result<Vec<StatusCount>, DbError> {
    Ok(super::jobs::count_by_type_and_status(pool)
        .await?
        .into_iter()
        .map(|(job_type, status, jobs)| StatusCount {
            job_type,
            status: status.name().to_string(),
            jobs,
        })
        .collect())
}

/// Up to `limit` jobs a worker or the executor holds now (queued to post-processing), oldest first.
pub async fn running(pool: &PgPool, limit: i64) -> Result<Vec<JobLine>, DbError> {
    let statuses: Vec<i16> = [
        JobStatus::Queued,
        JobStatus::Started,
        JobStatus::PreProcessing,
        JobStatus::Processing,
        JobStatus::PostProcessing,
    ]
    .iter()
    .map(|s| s.id())
    .collect();
    job_lines(pool, &statuses, "status_changed_at ASC", limit).await
}

/// Up to `limit` jobs in an error status, most recent first.
pub async fn failures(pool: &PgPool, limit: i64) -> Result<Vec<JobLine>, DbError> {
    let statuses = vec![JobStatus::InternalError.id(), JobStatus::ExternalError.id()];
    job_lines(pool, &statuses, "status_changed_at DESC", limit).await
}

async fn job_lines(
    pool: &PgPool,
    statuses: &[i16],
    order: &str,
    limit: i64,
) -> Result<Vec<JobLine>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT j.id, j.name, j.job_type, j.status, j.attempt, j.status_changed_at,
                j.status_error_subtype, j.status_message,
                (SELECT count(*) FROM jobs r WHERE r.retry_of = j.id) AS retries
         FROM jobs j WHERE j.status = ANY ($1) ORDER BY {order}, j.id LIMIT $2"
    ))
    .bind(statuses)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(JobLine {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                job_type: r.try_get("job_type")?,
                status: status_name(r.try_get("status")?),
                attempt: r.try_get("attempt")?,
                since: r.try_get("status_changed_at")?,
                error_subtype: r.try_get("status_error_subtype")?,
                error_message: r.try_get("status_message")?,
                retries: r.try_get("retries")?,
            })
        })
        .collect()
}

/// Timeliness per job type and day of input publication, over the `days` days up to the newest
/// input publication (so that a quiet or historical catalogue still shows its last month).
pub async fn timeliness(pool: &PgPool, days: i32) -> Result<Vec<TimelinessDay>, DbError> {
    let rows = sqlx::query(
        "WITH newest AS (SELECT max(input_published_at) AS at FROM jobs),
         measured AS (
             SELECT job_type, (input_published_at AT TIME ZONE 'UTC')::date AS day,
                    (extract(epoch FROM input_published_at - measured_at) / 3600)::float8 AS to_input,
                    (extract(epoch FROM output_published_at - input_published_at) / 3600)::float8 AS to_output
             FROM jobs, newest
             WHERE input_published_at IS NOT NULL AND measured_at IS NOT NULL
               AND input_published_at > newest.at - make_interval(days => $1))
         SELECT job_type, day, count(*) AS jobs,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY to_input) AS to_input,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY to_input) AS to_input_p90,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY to_output) AS to_output,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY to_output) AS to_output_p90
         FROM measured GROUP BY 1, 2 ORDER BY 2, 1",
    )
    .bind(days)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TimelinessDay {
                day: r.try_get("day")?,
                job_type: r.try_get("job_type")?,
                jobs: r.try_get("jobs")?,
                sensing_to_input_h: r.try_get("to_input")?,
                sensing_to_input_p90_h: r.try_get("to_input_p90")?,
                input_to_output_h: r.try_get("to_output")?,
                input_to_output_p90_h: r.try_get("to_output_p90")?,
            })
        })
        .collect()
}

fn status_name(id: i16) -> String {
    JobStatus::from_id(id)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|_| format!("unknown ({id})"))
}
