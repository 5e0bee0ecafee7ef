//! What the dashboard shows, read in a few queries: jobs by type and status, the running jobs, the
//! recent failures, and the timeliness per day. Nothing here reads the archive: counts and
//! timeliness come from the summaries of [`super::summaries`], and the two job lists are `LIMIT`ed
//! reads of partial indexes (`jobs_in_flight`, `jobs_failures`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use swath_domain::JobStatus;

use super::summaries::quantile_hours;
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

/// Timeliness of one job type's jobs whose input was published on one day, in hours. The median
/// and 90th percentiles are computed from histograms ([`super::summaries::quantile_hours`]): exact
/// when the durations within each histogram bucket are equal, otherwise within the bucket's width
/// (a quarter of an hour up to 72 hours, 6 hours up to 30 days).
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
    // The predicate is written out so that the partial index `jobs_in_flight` serves it.
    let statuses = super::status_in_flight("j.status");
    job_lines(pool, &statuses, "j.status_changed_at ASC, j.id", limit).await
}

/// Up to `limit` jobs in an error status, most recent first.
pub async fn failures(pool: &PgPool, limit: i64) -> Result<Vec<JobLine>, DbError> {
    // Written out to match the partial index `jobs_failures` (status_changed_at DESC, id).
    let statuses = format!(
        "j.status IN ({}, {})",
        JobStatus::InternalError.id(),
        JobStatus::ExternalError.id()
    );
    job_lines(pool, &statuses, "j.status_changed_at DESC, j.id", limit).await
}

/// Up to `limit` jobs matching `predicate`, in `order`, each with its number of manual retries
/// (counted on the partial index `jobs_retry_of`).
async fn job_lines(
    pool: &PgPool,
    predicate: &str,
    order: &str,
    limit: i64,
) -> Result<Vec<JobLine>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT j.id, j.name, j.job_type, j.status, j.attempt, j.status_changed_at,
                j.status_error_subtype, j.status_message,
                (SELECT count(*) FROM jobs r WHERE r.retry_of = j.id) AS retries
         FROM jobs j WHERE {predicate} ORDER BY {order} LIMIT $1"
    ))
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

/// Timeliness per job type and UTC day of input publication, over the `days` days up to the day of
/// the newest input publication (so that a quiet or historical catalogue still shows its last
/// month), from the daily histograms the triggers keep.
pub async fn timeliness(pool: &PgPool, days: i32) -> Result<Vec<TimelinessDay>, DbError> {
    let histograms = super::summaries::timeliness_histograms(pool, days).await?;
    Ok(histograms
        .into_iter()
        .map(|((day, job_type), h)| TimelinessDay {
            day,
            job_type,
            jobs: h.sensing_to_input.iter().map(|b| b.jobs).sum(),
            sensing_to_input_h: quantile_hours(&h.sensing_to_input, 0.5),
            sensing_to_input_p90_h: quantile_hours(&h.sensing_to_input, 0.9),
            input_to_output_h: quantile_hours(&h.input_to_output, 0.5),
            input_to_output_p90_h: quantile_hours(&h.input_to_output, 0.9),
        })
        .collect())
}

fn status_name(id: i16) -> String {
    JobStatus::from_id(id)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|_| format!("unknown ({id})"))
}
