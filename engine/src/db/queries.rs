//! Read-only queries behind the API's view of one job: the jobs related to it (attached children,
//! best-effort children, retries) and its publications.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};
use swath_domain::JobStatus;

use super::DbError;

/// A job in a list of related jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    /// Its id.
    pub id: i64,
    /// Its job type.
    pub job_type: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
    /// Since when.
    pub status_changed_at: DateTime<Utc>,
    /// The message of its last status change.
    pub status_message: Option<String>,
    /// Its attempt.
    pub attempt: i32,
    /// The parent it is attached to.
    pub parent_id: Option<i64>,
    /// The job that created it as a best-effort child.
    pub spawned_by: Option<i64>,
    /// The original it retries.
    pub retry_of: Option<i64>,
}

const SUMMARY_COLUMNS: &str = "id, job_type, name, status, status_changed_at, status_message, \
    attempt, parent_id, spawned_by, retry_of";

fn summary(row: &PgRow) -> Result<JobSummary, DbError> {
    let id: i64 = row.try_get("id")?;
    let status: i16 = row.try_get("status")?;
    Ok(JobSummary {
        id,
        job_type: row.try_get("job_type")?,
        name: row.try_get("name")?,
        status: JobStatus::from_id(status).map_err(|e| DbError::Corrupt {
            job_id: id,
            problem: e.to_string(),
        })?,
        status_changed_at: row.try_get("status_changed_at")?,
        status_message: row.try_get("status_message")?,
        attempt: row.try_get("attempt")?,
        parent_id: row.try_get("parent_id")?,
        spawned_by: row.try_get("spawned_by")?,
        retry_of: row.try_get("retry_of")?,
    })
}

/// The jobs related to one job, oldest first in each list.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RelatedJobs {
    /// Children attached to it (it is done only when they are).
    pub children: Vec<JobSummary>,
    /// Best-effort children it created.
    pub spawned: Vec<JobSummary>,
    /// Its retries (a retry's own list is empty: retries are listed by their original).
    pub retries: Vec<JobSummary>,
}

/// The jobs related to job `id`, in one query.
pub async fn related_jobs<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<RelatedJobs, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE parent_id = $1 OR spawned_by = $1 OR retry_of = $1
         ORDER BY id"
    ))
    .bind(id)
    .fetch_all(db)
    .await?;
    let mut related = RelatedJobs::default();
    for row in &rows {
        let job = summary(row)?;
        if job.retry_of == Some(id) {
            related.retries.push(job);
        } else if job.parent_id == Some(id) {
            related.children.push(job);
        } else {
            related.spawned.push(job);
        }
    }
    Ok(related)
}

/// One row of the publication outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicationRecord {
    /// The outbox row.
    pub id: i64,
    /// The product kind.
    pub kind: String,
    /// The message id (the product's title).
    pub product_id: String,
    /// When the message was written.
    pub created_at: DateTime<Utc>,
    /// How many times it was sent.
    pub sent_count: i32,
    /// When it was last sent.
    pub last_sent_at: Option<DateTime<Utc>>,
    /// When the publisher confirmed it.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Republications the catalogue asked for.
    pub republish_count: i32,
    /// The last error (a failed send, a refusal by the catalogue).
    pub last_error: Option<String>,
    /// The message.
    pub message: serde_json::Value,
}

/// The publications of job `id`, oldest first.
pub async fn publications_of<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
) -> Result<Vec<PublicationRecord>, DbError> {
    let rows = sqlx::query(
        "SELECT id, kind, product_id, created_at, sent_count, last_sent_at, confirmed_at,
                republish_count, last_error, message
         FROM publications WHERE job_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PublicationRecord {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                product_id: r.try_get("product_id")?,
                created_at: r.try_get("created_at")?,
                sent_count: r.try_get("sent_count")?,
                last_sent_at: r.try_get("last_sent_at")?,
                confirmed_at: r.try_get("confirmed_at")?,
                republish_count: r.try_get("republish_count")?,
                last_error: r.try_get("last_error")?,
                message: r.try_get("message")?,
            })
        })
        .collect()
}
