//! Reading jobs: `GET /jobs` (filters and cursor pagination) and `GET /jobs/{id}` (the job with its
//! history, attempts and their errors, children, retries, outputs and publications).

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use swath_domain::job::OutputProduct;
use swath_domain::{Job, JobStatus};

use super::auth::ReadAccess;
use super::input::{check_text, query_pairs, ApiPath};
use super::job_filter::{check_ranges, filter_parameter, FILTER_PARAMETERS};
use super::{ApiContext, ApiError};
use crate::db::chaining::{awaiting_children, blocking_child, BlockingChild};
use crate::db::history::{job_history, StatusChangeRecord};
use crate::db::jobs::{get_job, list_jobs, JobFilter};
use crate::db::queries::{publications_of, related_jobs, JobSummary, PublicationRecord};

/// Jobs per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// Most jobs per page.
pub const MAX_LIMIT: i64 = 1000;

/// The read routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(show))
}

/// A page of jobs.
#[derive(Debug, Serialize)]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

const CURSOR_PREFIX: &str = "j1:";

fn encode_cursor(before_id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{before_id}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(CURSOR_PREFIX)?.parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::BadRequest("cursor: not a cursor this API gave (use next_cursor)".into())
        })
}

/// The parameters of `GET /jobs` besides the filters ([`FILTER_PARAMETERS`]).
const PAGE_PARAMETERS: &[&str] = &["limit", "cursor"];

/// The filter of a `GET /jobs` query string; the limit asks for one job more than the page, to know
/// whether another page follows. Each filter is checked by [`filter_parameter`], as the bodies of
/// the bulk operations are.
fn list_filter(ctx: &ApiContext, query: Option<&str>) -> Result<(JobFilter, i64), ApiError> {
    let mut filter = JobFilter::default();
    let mut limit = DEFAULT_LIMIT;
    let mut seen: Vec<&str> = Vec::new();
    let bad = |name: &str, problem: String| ApiError::BadRequest(format!("{name}: {problem}"));
    for (name, value) in query_pairs(query) {
        let Some(&known) = FILTER_PARAMETERS
            .iter()
            .chain(PAGE_PARAMETERS)
            .find(|p| **p == name)
        else {
            check_text("query", &name, 64)?;
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter {name:?} (known: {})",
                FILTER_PARAMETERS
                    .iter()
                    .chain(PAGE_PARAMETERS)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        check_text(known, &value, 256)?;
        if known != "status" {
            if seen.contains(&known) {
                return Err(bad(known, "given more than once".into()));
            }
            seen.push(known);
        }
        match known {
            "limit" => {
                limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(
                            known,
                            format!("{value:?} is not a number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => filter.before_id = Some(decode_cursor(&value)?),
            _ => filter_parameter(ctx, &mut filter, known, &value)?,
        }
    }
    check_ranges(&filter)?;
    filter.limit = limit + 1;
    Ok((filter, limit))
}

async fn list(
    _: ReadAccess,
    State(ctx): State<ApiContext>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobPage>, ApiError> {
    let (filter, limit) = list_filter(&ctx, query.as_deref())?;
    let mut jobs = list_jobs(&ctx.state.pool, &filter).await?;
    let next_cursor = if jobs.len() as i64 > limit {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| encode_cursor(j.id))
    } else {
        None
    };
    Ok(Json(JobPage { jobs, next_cursor }))
}

/// One attempt of a job, from its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// The attempt number.
    pub attempt: i32,
    /// Its first status change.
    pub first_change_at: DateTime<Utc>,
    /// Its last status change.
    pub last_change_at: DateTime<Utc>,
    /// The status it reached last.
    pub last_status: JobStatus,
    /// Its errors, oldest first.
    pub errors: Vec<AttemptError>,
}

/// An error recorded during an attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptError {
    /// `internal_error` or `external_error`.
    pub status: JobStatus,
    /// Short class.
    pub subtype: Option<String>,
    /// What happened.
    pub message: Option<String>,
    /// When.
    pub time: DateTime<Utc>,
}

/// The attempts of a job, from its history (oldest first).
pub fn attempts(history: &[StatusChangeRecord]) -> Vec<AttemptRecord> {
    let mut attempts: Vec<AttemptRecord> = Vec::new();
    for change in history {
        let record = match attempts.last_mut() {
            Some(last) if last.attempt == change.attempt => last,
            _ => {
                attempts.push(AttemptRecord {
                    attempt: change.attempt,
                    first_change_at: change.time,
                    last_change_at: change.time,
                    last_status: change.status,
                    errors: Vec::new(),
                });
                attempts.last_mut().expect("just pushed")
            }
        };
        record.last_change_at = change.time;
        record.last_status = change.status;
        if matches!(
            change.status,
            JobStatus::InternalError | JobStatus::ExternalError
        ) {
            record.errors.push(AttemptError {
                status: change.status,
                subtype: change.error_subtype.clone(),
                message: change.error_message.clone(),
                time: change.time,
            });
        }
    }
    attempts
}

/// A child that keeps its parent from being done.
#[derive(Debug, Serialize)]
pub struct Blocking {
    /// The child.
    pub id: i64,
    /// Its status.
    pub status: JobStatus,
    /// Its job type.
    pub job_type: String,
    /// Its name.
    pub name: String,
}

impl From<BlockingChild> for Blocking {
    fn from(b: BlockingChild) -> Self {
        Blocking {
            id: b.id,
            status: b.status,
            job_type: b.job_type,
            name: b.name,
        }
    }
}

/// One job and everything about it.
#[derive(Debug, Serialize)]
pub struct JobDetails {
    /// The job.
    pub job: Job,
    /// Whether its own work is complete and it waits for its attached children to be done.
    pub waiting_for_children: bool,
    /// The attached child that keeps it from being done, if any.
    pub blocking_child: Option<Blocking>,
    /// Its status history, oldest first.
    pub history: Vec<StatusChangeRecord>,
    /// Its attempts with their errors.
    pub attempts: Vec<AttemptRecord>,
    /// Children attached to it.
    pub children: Vec<JobSummary>,
    /// Best-effort children it created.
    pub spawned: Vec<JobSummary>,
    /// Its retries (for an original job).
    pub retries: Vec<JobSummary>,
    /// How many retries it has.
    pub retry_count: usize,
    /// Its output products.
    pub outputs: Vec<OutputProduct>,
    /// Its publication messages.
    pub publications: Vec<PublicationRecord>,
}

/// Everything about job `id`, read in one transaction (a consistent view).
pub async fn job_details(ctx: &ApiContext, id: i64) -> Result<JobDetails, ApiError> {
    let mut tx = ctx
        .state
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(crate::db::DbError::from)?;
    let job = get_job(&mut *tx, id).await?;
    let history = job_history(&mut *tx, id).await?;
    let related = related_jobs(&mut *tx, id).await?;
    let publications = publications_of(&mut *tx, id).await?;
    let waiting = awaiting_children(&mut *tx, id).await?;
    let blocking = if related.children.is_empty() {
        None
    } else {
        blocking_child(&mut *tx, id).await?.map(Blocking::from)
    };
    tx.commit().await.map_err(crate::db::DbError::from)?;
    Ok(JobDetails {
        waiting_for_children: waiting && !job.status.is_terminal(),
        blocking_child: blocking,
        attempts: attempts(&history),
        history,
        retry_count: related.retries.len(),
        children: related.children,
        spawned: related.spawned,
        retries: related.retries,
        outputs: job
            .results
            .as_ref()
            .map(|r| r.products.clone())
            .unwrap_or_default(),
        publications,
        job,
    })
}

async fn show(
    _: ReadAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobDetails>, ApiError> {
    Ok(Json(job_details(&ctx, id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::job_filter::status_by_name;

    fn change(attempt: i32, status: JobStatus, subtype: Option<&str>) -> StatusChangeRecord {
        StatusChangeRecord {
            id: 0,
            previous_status: None,
            status,
            attempt,
            time: Utc::now(),
            error_subtype: subtype.map(String::from),
            error_message: subtype.map(|s| format!("{s} happened")),
            service_id: None,
        }
    }

    #[test]
    fn attempts_group_the_history_and_keep_their_errors() {
        use JobStatus::*;
        let history = [
            change(1, Initialized, None),
            change(1, Ready, None),
            change(1, Queued, None),
            change(1, ExternalError, Some("exit code 2")),
            change(2, Ready, None),
            change(2, Started, None),
            change(2, InternalError, Some("exit code 1")),
        ];
        let found = attempts(&history);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].last_status, ExternalError);
        assert_eq!(found[0].errors[0].subtype.as_deref(), Some("exit code 2"));
        assert_eq!(found[1].attempt, 2);
        assert_eq!(found[1].errors.len(), 1);
        assert_eq!(found[1].last_status, InternalError);
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor("42").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x1:42")).is_err());
        assert!(status_by_name("done").is_some());
        assert!(status_by_name("12").is_none());
    }
}
