//! The `job_status_changes` history: read-only here, since only the database trigger writes it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Row};
use swath_domain::JobStatus;
use uuid::Uuid;

use super::DbError;

/// One status change of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChangeRecord {
    /// History row id (the ordering key).
    pub id: i64,
    /// Status before the change (`None` for the first one).
    pub previous_status: Option<JobStatus>,
    /// Status entered.
    pub status: JobStatus,
    /// Attempt at the time of the change.
    pub attempt: i32,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Error subtype, for error statuses.
    pub error_subtype: Option<String>,
    /// Message recorded with the change.
    pub error_message: Option<String>,
    /// Orchestrator instance that made the change.
    pub service_id: Option<Uuid>,
}

/// The full history of a job, oldest first.
pub async fn job_history<'e>(
    db: impl PgExecutor<'e>,
    job_id: i64,
) -> Result<Vec<StatusChangeRecord>, DbError> {
    let rows = sqlx::query(
        "SELECT id, previous_status, status, attempt, time, error_subtype, error_message, service_id
         FROM job_status_changes WHERE job_id = $1 ORDER BY id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await?;
    let status = |id: i16| {
        JobStatus::from_id(id).map_err(|e| DbError::Corrupt {
            job_id,
            problem: e.to_string(),
        })
    };
    rows.iter()
        .map(|row| {
            Ok(StatusChangeRecord {
                id: row.try_get("id")?,
                previous_status: row
                    .try_get::<Option<i16>, _>("previous_status")?
                    .map(status)
                    .transpose()?,
                status: status(row.try_get("status")?)?,
                attempt: row.try_get("attempt")?,
                time: row.try_get("time")?,
                error_subtype: row.try_get("error_subtype")?,
                error_message: row.try_get("error_message")?,
                service_id: row.try_get("service_id")?,
            })
        })
        .collect()
}
