//! Manual retries: `POST /jobs/{id}/retry` and, for several jobs, `POST /retries` with
//! `{"ids": [...]}`, which answers per id the new job or the error (each id is retried on its own;
//! no new parent is created). Both need the write token. The rules are in [`crate::db::retries`].

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use swath_domain::Job;

use super::auth::WriteAccess;
use super::input::{ApiJson, ApiPath};
use super::{ApiContext, ApiError};
use crate::db::retries::{retry_job, Retried, RetryError};
use crate::metrics::record_transitions;

/// Most ids in one batch.
pub const MAX_BATCH: usize = 1000;

/// The retry routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/jobs/{id}/retry", post(retry_one))
        .route("/retries", post(retry_many))
}

/// A retry that was created.
#[derive(Debug, Serialize)]
pub struct RetryAnswer {
    /// The new job.
    pub job: Job,
    /// The original job it retries.
    pub original_id: i64,
    /// Which retry of the original it is (1 for the first).
    pub retry_number: i64,
    /// The parent that waits for this retry again (it had failed because of the retried child).
    pub resumed_parent_id: Option<i64>,
}

impl From<Retried> for RetryAnswer {
    fn from(r: Retried) -> Self {
        RetryAnswer {
            job: r.job,
            original_id: r.original,
            retry_number: r.n,
            resumed_parent_id: r.resumed_parent,
        }
    }
}

impl From<RetryError> for ApiError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::NotFound(_) => ApiError::NotFound(e.to_string()),
            RetryError::Db(e) => e.into(),
            other => ApiError::Conflict(other.to_string()),
        }
    }
}

async fn retry_one(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let retried = retry_job(&ctx.state.pool, id, ctx.operator.retry_cap).await?;
    record_transitions(retried.transitions.iter().copied());
    tracing::info!(job_id = id, job_type = %retried.job.job_type, retry = retried.job.id, "job retried");
    let location = format!("/api/v1/jobs/{}", retried.job.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(RetryAnswer::from(retried)),
    ))
}

/// The ids of a batch retry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The jobs to retry, each once.
    pub ids: Vec<i64>,
}

/// The outcome of one id of a batch.
#[derive(Debug, Serialize)]
pub struct BatchItem {
    /// The job asked for.
    pub id: i64,
    /// The new job, when it was retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_id: Option<i64>,
    /// Why it was not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status the error would have had alone (404, 409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// The outcomes of a batch, in the order of the ids.
#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    /// One per id.
    pub results: Vec<BatchItem>,
    /// How many were retried.
    pub retried: usize,
    /// How many were not.
    pub failed: usize,
}

/// Checks the ids of a batch: at least one, at most [`MAX_BATCH`], none twice.
fn check_ids(ids: &[i64]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::BadRequest(
            "ids: at least one job id is needed".into(),
        ));
    }
    if ids.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "ids: at most {MAX_BATCH} job ids per batch"
        )));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    let mut reported = HashSet::new();
    let twice: Vec<String> = ids
        .iter()
        .filter(|id| !seen.insert(**id) && reported.insert(**id))
        .map(i64::to_string)
        .collect();
    if !twice.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "ids: each job may be given once; given more than once: {}",
            twice.join(", ")
        )));
    }
    Ok(())
}

async fn retry_many(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiJson(request): ApiJson<BatchRequest>,
) -> Result<Json<BatchAnswer>, ApiError> {
    check_ids(&request.ids)?;
    let mut results = Vec::with_capacity(request.ids.len());
    for &id in &request.ids {
        let item = match retry_job(&ctx.state.pool, id, ctx.operator.retry_cap).await {
            Ok(retried) => {
                record_transitions(retried.transitions.iter().copied());
                tracing::info!(job_id = id, retry = retried.job.id, "job retried");
                BatchItem {
                    id,
                    retry_id: Some(retried.job.id),
                    error: None,
                    status: None,
                }
            }
            Err(e) => {
                let error = ApiError::from(e);
                let status = match &error {
                    ApiError::NotFound(_) => 404,
                    ApiError::Conflict(_) => 409,
                    _ => 500,
                };
                let message = if status == 500 {
                    tracing::error!(
                        job_id = id,
                        error = format!("{error:#}"),
                        "batch retry failed"
                    );
                    "internal error".to_string()
                } else {
                    error.to_string()
                };
                BatchItem {
                    id,
                    retry_id: None,
                    error: Some(message),
                    status: Some(status),
                }
            }
        };
        results.push(item);
    }
    let retried = results.iter().filter(|r| r.retry_id.is_some()).count();
    Ok(Json(BatchAnswer {
        failed: results.len() - retried,
        retried,
        results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_need_distinct_ids() {
        assert!(check_ids(&[1, 2, 3]).is_ok());
        let err = check_ids(&[]).unwrap_err().to_string();
        assert!(err.starts_with("ids: at least one"), "{err}");
        let err = check_ids(&[4, 5, 4, 4, 6, 5, 4]).unwrap_err().to_string();
        assert!(err.ends_with("given more than once: 4, 5"), "{err}");
        assert!(check_ids(&vec![1; MAX_BATCH + 1]).is_err());
    }
}
