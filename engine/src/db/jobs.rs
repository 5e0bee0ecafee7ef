//! The `jobs` table: inserting new jobs in batches, reading and listing them.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};
use swath_domain::job::JobResults;
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use uuid::Uuid;

use super::DbError;

/// The columns of `jobs` in the order [`job_from_row`] reads them.
pub const JOB_COLUMNS: &str = "id, uid, job_type, name, product_id, tile_id, input_path, measured_at, \
    input_published_at, output_path, output_published_at, priority::text AS priority, status, \
    status_changed_at, status_error_subtype, status_message, params, results, attempt, max_attempts, \
    next_attempt_at, parent_id, spawned_by, retry_of, campaign_id, input_withdrawn_at, input_withdrawal_reason, depends_on, recheck_at, software_version, executor_ref, service_id, tag, \
    lease_expires_at, created_at";

/// Decodes one row selected with [`JOB_COLUMNS`].
pub fn job_from_row(row: &PgRow) -> Result<Job, DbError> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |problem: String| DbError::Corrupt {
        job_id: id,
        problem,
    };
    let status: i16 = row.try_get("status")?;
    let priority: String = row.try_get("priority")?;
    let results: Option<serde_json::Value> = row.try_get("results")?;
    Ok(Job {
        id,
        uid: row.try_get("uid")?,
        job_type: row.try_get("job_type")?,
        name: row.try_get("name")?,
        product_id: row.try_get("product_id")?,
        tile_id: row.try_get("tile_id")?,
        input_path: row.try_get("input_path")?,
        measured_at: row.try_get("measured_at")?,
        input_published_at: row.try_get("input_published_at")?,
        output_path: row.try_get("output_path")?,
        output_published_at: row.try_get("output_published_at")?,
        priority: priority
            .parse::<JobPriority>()
            .map_err(|e| corrupt(e.to_string()))?,
        status: JobStatus::from_id(status).map_err(|e| corrupt(e.to_string()))?,
        status_changed_at: row.try_get("status_changed_at")?,
        status_error_subtype: row.try_get("status_error_subtype")?,
        status_message: row.try_get("status_message")?,
        params: row.try_get("params")?,
        results: results
            .map(serde_json::from_value::<JobResults>)
            .transpose()
            .map_err(|e| corrupt(format!("results: {e}")))?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        parent_id: row.try_get("parent_id")?,
        spawned_by: row.try_get("spawned_by")?,
        retry_of: row.try_get("retry_of")?,
        campaign_id: row.try_get("campaign_id")?,
        input_withdrawn_at: row.try_get("input_withdrawn_at")?,
        input_withdrawal_reason: row.try_get("input_withdrawal_reason")?,
        depends_on: row.try_get("depends_on")?,
        recheck_at: row.try_get("recheck_at")?,
        software_version: row.try_get("software_version")?,
        executor_ref: row.try_get("executor_ref")?,
        service_id: row.try_get("service_id")?,
        tag: row.try_get("tag")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// What the worker protocol needs of a job: who it is and where it stands, without its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHead {
    /// Its id.
    pub id: i64,
    /// Its job type.
    pub job_type: String,
    /// Its status.
    pub status: JobStatus,
    /// Its current attempt.
    pub attempt: i32,
    /// Attempts it may have.
    pub max_attempts: i32,
}

impl From<&Job> for JobHead {
    fn from(job: &Job) -> Self {
        JobHead {
            id: job.id,
            job_type: job.job_type.clone(),
            status: job.status,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
        }
    }
}

/// A job that an insert created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertedJob {
    /// Its id.
    pub id: i64,
    /// Its unique id.
    pub uid: Uuid,
    /// Its name.
    pub name: String,
    /// Its first status.
    pub status: JobStatus,
}

/// Inserts `jobs` in one statement (one round trip); jobs whose (type, name) already exists are
/// skipped. Returns the jobs actually created. A job whose first status the state machine refuses
/// fails the whole statement, so nothing is half-inserted.
pub async fn insert_jobs<'e>(
    db: impl PgExecutor<'e>,
    jobs: &[NewJob],
) -> Result<Vec<InsertedJob>, DbError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&NewJob) -> Option<&str>| jobs.iter().map(f).collect::<Vec<_>>();
    let times = |f: fn(&NewJob) -> Option<DateTime<Utc>>| jobs.iter().map(f).collect::<Vec<_>>();
    let ids = |f: fn(&NewJob) -> Option<i64>| jobs.iter().map(f).collect::<Vec<_>>();
    let rows = sqlx::query(
        "INSERT INTO jobs (job_type, name, product_id, tile_id, input_path, measured_at, input_published_at,
                           priority, status, status_message, params, max_attempts, parent_id, spawned_by,
                           retry_of, software_version, campaign_id)
         SELECT t.job_type, t.name, t.product_id, t.tile_id, t.input_path, t.measured_at, t.input_published_at,
                t.priority::job_priority, t.status, t.status_message, t.params::jsonb, t.max_attempts,
                t.parent_id, t.spawned_by, t.retry_of, t.software_version, t.campaign_id
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::timestamptz[], $8::text[], $9::smallint[], $10::text[], $11::text[], $12::int[],
                     $13::bigint[], $14::bigint[], $15::bigint[], $16::text[], $17::bigint[])
              WITH ORDINALITY AS t (job_type, name, product_id, tile_id, input_path, measured_at,
                     input_published_at, priority, status, status_message, params, max_attempts, parent_id,
                     spawned_by, retry_of, software_version, campaign_id, position)
         ORDER BY t.position
         ON CONFLICT (job_type, name) DO NOTHING
         RETURNING id, uid, name, status",
    )
    .bind(jobs.iter().map(|j| j.job_type.as_str()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>())
    .bind(col(|j| j.product_id.as_deref()))
    .bind(col(|j| j.tile_id.as_deref()))
    .bind(col(|j| j.input_path.as_deref()))
    .bind(times(|j| j.measured_at))
    .bind(times(|j| j.input_published_at))
    .bind(jobs.iter().map(|j| j.priority.as_str()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.initial_status.id()).collect::<Vec<_>>())
    .bind(col(|j| j.initial_message.as_deref()))
    .bind(jobs.iter().map(|j| j.params.to_string()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
    .bind(ids(|j| j.parent_id))
    .bind(ids(|j| j.spawned_by))
    .bind(ids(|j| j.retry_of))
    .bind(col(|j| j.software_version.as_deref()))
    .bind(ids(|j| j.campaign_id))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let status: i16 = row.try_get("status")?;
            Ok(InsertedJob {
                id,
                uid: row.try_get("uid")?,
                name: row.try_get("name")?,
                status: JobStatus::from_id(status).map_err(|e| DbError::Corrupt {
                    job_id: id,
                    problem: e.to_string(),
                })?,
            })
        })
        .collect()
}

/// The job with this id.
pub async fn get_job<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Job, DbError> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(DbError::NotFound(id))?;
    job_from_row(&row)
}

/// Filters for [`list_jobs`]; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this job type.
    pub job_type: Option<String>,
    /// Only these statuses (any of them).
    pub statuses: Vec<JobStatus>,
    /// Only this tile.
    pub tile_id: Option<String>,
    /// Only children attached to this parent.
    pub parent_id: Option<i64>,
    /// Only jobs sensed at or after this time.
    pub measured_after: Option<DateTime<Utc>>,
    /// Only jobs sensed before this time.
    pub measured_before: Option<DateTime<Utc>>,
    /// Only jobs created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only jobs created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only jobs whose status changed at or after this time (`status_changed_at`).
    pub changed_after: Option<DateTime<Utc>>,
    /// Only jobs of this reprocessing campaign (`campaign_id`).
    pub campaign_id: Option<i64>,
    /// Only jobs whose input the catalogue withdrew (`true`), or did not (`false`).
    pub withdrawn: Option<bool>,
    /// Only jobs with an id below this one (cursor for the next page).
    pub before_id: Option<i64>,
    /// At most this many jobs.
    pub limit: i64,
}

/// Jobs matching `filter`, newest first. The statement holds only the filters given, so that the
/// planner reads the index that serves them in order and stops at the page (`jobs_type_status_id`
/// for a type and a status): its cost is the page's, not the archive's.
pub async fn list_jobs<'e>(
    db: impl PgExecutor<'e>,
    filter: &JobFilter,
) -> Result<Vec<Job>, DbError> {
    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE true"
    ));
    push_conditions(&mut query, filter);
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(filter.limit.max(0));
    let rows = query.build().fetch_all(db).await?;
    rows.iter().map(job_from_row).collect()
}

/// Appends ` AND <condition>` for each filter given (and none for the others), so that a statement
/// holds only the filters given. The limit is not one of them.
fn push_conditions(query: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, filter: &JobFilter) {
    if let Some(job_type) = &filter.job_type {
        query.push(" AND job_type = ").push_bind(job_type.clone());
    }
    let statuses: Vec<i16> = filter.statuses.iter().map(|s| s.id()).collect();
    match statuses.as_slice() {
        [] => {}
        [status] => {
            query.push(" AND status = ").push_bind(*status);
        }
        _ => {
            query
                .push(" AND status = ANY (")
                .push_bind(statuses.clone())
                .push(")");
        }
    }
    if let Some(tile) = &filter.tile_id {
        query.push(" AND tile_id = ").push_bind(tile.clone());
    }
    if let Some(parent) = filter.parent_id {
        query.push(" AND parent_id = ").push_bind(parent);
    }
    if let Some(campaign) = filter.campaign_id {
        query.push(" AND campaign_id = ").push_bind(campaign);
    }
    match filter.withdrawn {
        Some(true) => {
            query.push(" AND input_withdrawn_at IS NOT NULL");
        }
        Some(false) => {
            query.push(" AND input_withdrawn_at IS NULL");
        }
        None => {}
    }
    if let Some(before) = filter.before_id {
        query.push(" AND id < ").push_bind(before);
    }
    for (column, operator, at) in [
        ("measured_at", ">=", filter.measured_after),
        ("measured_at", "<", filter.measured_before),
        ("created_at", ">=", filter.created_after),
        ("created_at", "<", filter.created_before),
        ("status_changed_at", ">=", filter.changed_after),
    ] {
        if let Some(at) = at {
            query
                .push(format!(" AND {column} {operator} "))
                .push_bind(at);
        }
    }
}

/// How many jobs match `filter` (its limit aside), counting at most `at_most`: the count stops
/// there, so that it never reads more of the archive than that (a count of `at_most` means "at
/// least that many").
pub async fn count_jobs<'e>(
    db: impl PgExecutor<'e>,
    filter: &JobFilter,
    at_most: i64,
) -> Result<i64, DbError> {
    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE true",
    );
    push_conditions(&mut query, filter);
    query
        .push(" LIMIT ")
        .push_bind(at_most.max(0))
        .push(") AS matching");
    Ok(query.build_query_scalar::<i64>().fetch_one(db).await?)
}

/// The ids of the jobs matching `filter`, newest first, at most `filter.limit` of them.
pub async fn job_ids<'e>(db: impl PgExecutor<'e>, filter: &JobFilter) -> Result<Vec<i64>, DbError> {
    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT id FROM jobs WHERE true");
    push_conditions(&mut query, filter);
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(filter.limit.max(0));
    Ok(query.build_query_scalar::<i64>().fetch_all(db).await?)
}

/// Number of jobs per (job type, status), by type then status, from the summary the triggers keep
/// ([`super::summaries::job_counts`]): the cost of the summary, not of the table.
pub async fn count_by_type_and_status<'e>(
    db: impl PgExecutor<'e>,
) -> Result<Vec<(String, JobStatus, i64)>, DbError> {
    super::summaries::job_counts(db).await
}
