//! Bulk operations by filter: `POST /jobs/retry` and `POST /jobs/cancel` retry or cancel every job
//! matching the filters of the body, which are those of `GET /jobs` (checked by the same code,
//! [`super::job_filter`]) with `status` as a list, plus `"dry_run": true` to see what would be done.
//! Both need the write token.
//!
//! - A body without any filter is refused, so that nobody acts on the whole archive by mistake.
//! - At most `bulk_max_jobs` jobs are acted on per call ([`super::OperatorApi::bulk_max_jobs`]):
//!   when more match, the call is refused with a 409 and nothing changes. Matching jobs are counted
//!   only up to the cap and one more, so that a broad filter never reads the archive beyond that.
//! - A dry run answers the count (`"capped": true` when more than the cap match: then `count` is
//!   the cap plus one, a lower bound) and the first ids, newest first; nothing changes.
//! - Otherwise each matching job, newest first, is retried (as by `POST /retries`) or cancelled (as
//!   by `POST /jobs/{id}/cancel`) on its own, and the answer has one outcome per job: the new job or
//!   what the attempt became, else the error with the status it would have had alone. Only the
//!   latest job of a chain of retries can be retried, so a job and its retry matching together give
//!   one retry and one 409, and calling it again gives only 409s: never a second retry.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::WriteAccess;
use super::input::ApiJson;
use super::job_filter::{add_status, check_ranges, filter_parameter};
use super::job_writes::cancel_reason;
use super::retries::BatchItem;
use super::{ApiContext, ApiError};
use crate::db::jobs::{count_jobs, job_ids, JobFilter};
use crate::db::retries::retry_job;
use crate::metrics::record_transitions;
use crate::pipeline::cancel::{cancel_job, AttemptStop};

/// Ids a dry run shows at most.
pub const DRY_RUN_IDS: i64 = 100;

/// How many ids a dry run shows with cap `cap`: at most [`DRY_RUN_IDS`], and no more than it
/// counts (the cap and one more).
pub fn dry_run_ids(cap: u32) -> i64 {
    DRY_RUN_IDS.min(i64::from(cap) + 1)
}

/// The message of a refusal because more than `cap` jobs match.
pub fn too_many_message(cap: u32) -> String {
    format!(
        "more than {cap} jobs match; at most {cap} per call (setting bulk_max_jobs): narrow the filter"
    )
}

/// The bulk routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/jobs/retry", post(bulk_retry))
        .route("/jobs/cancel", post(bulk_cancel))
}

/// The body of a bulk operation: the filters of `GET /jobs` (every one given must match) and
/// whether to only count.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Only this job type.
    #[serde(default, rename = "type")]
    pub job_type: Option<String>,
    /// Only these statuses, by name.
    #[serde(default)]
    pub status: Option<Vec<String>>,
    /// Only this tile.
    #[serde(default)]
    pub tile: Option<String>,
    /// Only the children attached to this job.
    #[serde(default)]
    pub parent: Option<i64>,
    /// Only jobs sensed at or after this time (RFC 3339).
    #[serde(default)]
    pub measured_after: Option<String>,
    /// Only jobs sensed before this time.
    #[serde(default)]
    pub measured_before: Option<String>,
    /// Only jobs created at or after this time.
    #[serde(default)]
    pub created_after: Option<String>,
    /// Only jobs created before this time.
    #[serde(default)]
    pub created_before: Option<String>,
    /// Only jobs whose status changed at or after this time.
    #[serde(default)]
    pub changed_after: Option<String>,
    /// Only jobs of this campaign.
    #[serde(default)]
    pub campaign: Option<i64>,
    /// Only count and show the matching jobs.
    #[serde(default)]
    pub dry_run: bool,
    /// Why (cancel only), recorded in each job's history.
    #[serde(default)]
    pub reason: Option<String>,
}

impl BulkRequest {
    /// The filter of the body, each parameter checked as `GET /jobs` checks it; a body without any
    /// filter is refused.
    pub fn filter(&self, ctx: &ApiContext) -> Result<JobFilter, ApiError> {
        let mut filter = JobFilter::default();
        let mut given = 0;
        let parent = self.parent.map(|id| id.to_string());
        let campaign = self.campaign.map(|id| id.to_string());
        for (name, value) in [
            ("type", self.job_type.as_deref()),
            ("tile", self.tile.as_deref()),
            ("parent", parent.as_deref()),
            ("measured_after", self.measured_after.as_deref()),
            ("measured_before", self.measured_before.as_deref()),
            ("created_after", self.created_after.as_deref()),
            ("created_before", self.created_before.as_deref()),
            ("changed_after", self.changed_after.as_deref()),
            ("campaign", campaign.as_deref()),
        ] {
            if let Some(value) = value {
                filter_parameter(ctx, &mut filter, name, value)?;
                given += 1;
            }
        }
        if let Some(statuses) = &self.status {
            if statuses.is_empty() {
                return Err(ApiError::BadRequest(
                    "status: at least one status name is needed (or leave status out)".into(),
                ));
            }
            for name in statuses {
                add_status(&mut filter, name)?;
            }
            given += 1;
        }
        if given == 0 {
            return Err(ApiError::BadRequest(
                "at least one filter is needed (type, status, tile, parent, measured_after, \
                 measured_before, created_after, created_before, changed_after, campaign)"
                    .into(),
            ));
        }
        check_ranges(&filter)?;
        Ok(filter)
    }
}

/// What a dry run answers.
#[derive(Debug, Serialize)]
pub struct DryRunAnswer {
    /// How many jobs match, counted up to the cap and one more.
    pub count: i64,
    /// Whether more jobs match than one call may act on (`count` is then the cap plus one).
    pub capped: bool,
    /// The first matching ids, newest first (at most [`DRY_RUN_IDS`], and at most `count`).
    pub ids: Vec<i64>,
}

/// What a bulk retry answers when it retried.
#[derive(Debug, Serialize)]
pub struct BulkRetryAnswer {
    /// How many jobs matched (and were tried).
    pub count: usize,
    /// One per job, newest first.
    pub results: Vec<BatchItem>,
    /// How many were retried.
    pub retried: usize,
    /// How many were not.
    pub failed: usize,
}

/// The outcome of one job of a bulk cancel.
#[derive(Debug, Serialize)]
pub struct BulkCancelItem {
    /// The job.
    pub id: i64,
    /// What happened to its attempt, when it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<AttemptStop>,
    /// Why it was not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status the error would have had alone (404, 409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// What a bulk cancel answers when it cancelled.
#[derive(Debug, Serialize)]
pub struct BulkCancelAnswer {
    /// How many jobs matched (and were tried).
    pub count: usize,
    /// One per job, newest first.
    pub results: Vec<BulkCancelItem>,
    /// How many were cancelled.
    pub cancelled: usize,
    /// How many were not.
    pub failed: usize,
}

/// The matching jobs of a call that acts: their ids, newest first, or the refusal when more than
/// `cap` match.
async fn matching_ids(ctx: &ApiContext, mut filter: JobFilter) -> Result<Vec<i64>, ApiError> {
    let cap = ctx.operator.bulk_max_jobs;
    let count = count_jobs(&ctx.state.pool, &filter, i64::from(cap) + 1).await?;
    if count > i64::from(cap) {
        return Err(ApiError::Conflict(too_many_message(cap)));
    }
    filter.limit = i64::from(cap);
    Ok(job_ids(&ctx.state.pool, &filter).await?)
}

/// The answer of a dry run: the count (up to the cap and one more) and the first ids, read in one
/// snapshot so that they agree.
async fn dry_run(ctx: &ApiContext, mut filter: JobFilter) -> Result<DryRunAnswer, ApiError> {
    let cap = i64::from(ctx.operator.bulk_max_jobs);
    let mut tx = ctx
        .state
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(crate::db::DbError::from)?;
    let count = count_jobs(&mut *tx, &filter, cap + 1).await?;
    filter.limit = dry_run_ids(ctx.operator.bulk_max_jobs);
    let ids = job_ids(&mut *tx, &filter).await?;
    tx.commit().await.map_err(crate::db::DbError::from)?;
    Ok(DryRunAnswer {
        count,
        capped: count > cap,
        ids,
    })
}

/// The status and message of a per-job error, as `POST /retries` gives them (500s logged, and
/// answered as "internal error").
fn item_error(id: i64, error: ApiError, what: &str) -> (String, u16) {
    let status = match &error {
        ApiError::NotFound(_) => 404,
        ApiError::Conflict(_) => 409,
        _ => 500,
    };
    if status == 500 {
        tracing::error!(
            job_id = id,
            error = format!("{error:#}"),
            "bulk {what} failed"
        );
        ("internal error".to_string(), status)
    } else {
        (error.to_string(), status)
    }
}

async fn bulk_retry(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiJson(request): ApiJson<BulkRequest>,
) -> Result<Response, ApiError> {
    if request.reason.is_some() {
        return Err(ApiError::BadRequest(
            "reason: only a bulk cancel takes a reason".into(),
        ));
    }
    let filter = request.filter(&ctx)?;
    if request.dry_run {
        return Ok(Json(dry_run(&ctx, filter).await?).into_response());
    }
    let ids = matching_ids(&ctx, filter).await?;
    let mut results = Vec::with_capacity(ids.len());
    for &id in &ids {
        let item = match retry_job(&ctx.state.pool, id, ctx.operator.retry_cap).await {
            Ok(retried) => {
                record_transitions(retried.transitions.iter().copied());
                tracing::info!(job_id = id, retry = retried.job.id, "job retried (bulk)");
                BatchItem {
                    id,
                    retry_id: Some(retried.job.id),
                    error: None,
                    status: None,
                }
            }
            Err(e) => {
                let (error, status) = item_error(id, e.into(), "retry");
                BatchItem {
                    id,
                    retry_id: None,
                    error: Some(error),
                    status: Some(status),
                }
            }
        };
        results.push(item);
    }
    let retried = results.iter().filter(|r| r.retry_id.is_some()).count();
    tracing::info!(count = ids.len(), retried, "bulk retry");
    Ok(Json(BulkRetryAnswer {
        count: ids.len(),
        failed: results.len() - retried,
        retried,
        results,
    })
    .into_response())
}

async fn bulk_cancel(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiJson(request): ApiJson<BulkRequest>,
) -> Result<Response, ApiError> {
    let reason = cancel_reason(
        "cancelled through the API (bulk)",
        request.reason.as_deref(),
    )?;
    let filter = request.filter(&ctx)?;
    if request.dry_run {
        return Ok(Json(dry_run(&ctx, filter).await?).into_response());
    }
    let ids = matching_ids(&ctx, filter).await?;
    let executor = ctx.operator.executor.as_deref();
    let mut results = Vec::with_capacity(ids.len());
    for &id in &ids {
        let item = match cancel_job(&ctx.state.pool, executor, id, &reason).await {
            Ok(cancelled) => BulkCancelItem {
                id,
                attempt: Some(cancelled.attempt),
                error: None,
                status: None,
            },
            Err(e) => {
                let (error, status) = item_error(id, e.into(), "cancel");
                BulkCancelItem {
                    id,
                    attempt: None,
                    error: Some(error),
                    status: Some(status),
                }
            }
        };
        results.push(item);
    }
    let cancelled = results.iter().filter(|r| r.attempt.is_some()).count();
    tracing::info!(count = ids.len(), cancelled, "bulk cancel");
    Ok(Json(BulkCancelAnswer {
        count: ids.len(),
        failed: results.len() - cancelled,
        cancelled,
        results,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_runs_show_no_more_ids_than_they_count() {
        assert_eq!(dry_run_ids(10_000), DRY_RUN_IDS);
        assert_eq!(dry_run_ids(3), 4);
        assert_eq!(
            too_many_message(3),
            "more than 3 jobs match; at most 3 per call (setting bulk_max_jobs): narrow the filter"
        );
    }

    #[test]
    fn bodies_refuse_unknown_fields_and_default_to_acting() {
        let body: BulkRequest =
            serde_json::from_str(r#"{"status": ["internal_error"], "campaign": 3}"#).unwrap();
        assert!(!body.dry_run);
        assert_eq!(body.campaign, Some(3));
        let err = serde_json::from_str::<BulkRequest>(r#"{"ids": [1]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `ids`"), "{err}");
    }
}
