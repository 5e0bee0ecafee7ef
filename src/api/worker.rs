//! The worker protocol: a worker fetches the task of its attempt and reports its statuses and its
//! result. Every request carries the per-attempt token issued at dispatch
//! (`Authorization: Bearer ...`) and names its attempt; a request for an attempt that is no longer
//! the job's current one is refused with 409 and changes nothing.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use swath_job_types::exit_codes::ExitClass;
use swath_job_types::job::{JobResults, OutputProduct};
use swath_job_types::template::WorkerTask;
use swath_job_types::{Job, JobStatus};

use super::{ApiError, ApiState};
use crate::db::jobs::get_job;
use crate::db::status::{change_status, change_status_on, StatusChange};
use crate::db::tokens::{job_for_token, TokenCheck};
use crate::db::DbError;
use crate::pipeline::retry::{record_failure, Failure};

/// The worker routes, relative to the API prefix.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/worker/jobs/{id}/attempts/{attempt}/task", get(task))
        .route("/worker/jobs/{id}/attempts/{attempt}/status", post(status))
        .route("/worker/jobs/{id}/attempts/{attempt}/result", post(result))
}

/// A status a worker reports.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// `started`, `pre_processing`, `processing` or `post_processing`.
    pub status: JobStatus,
    /// What the worker is doing.
    #[serde(default)]
    pub message: Option<String>,
}

/// An error a worker reports with a failed result.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedError {
    /// Short class (`storage`, `docker`, `exit code 1`...).
    pub subtype: String,
    /// What happened.
    pub message: String,
}

/// The result of an attempt.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResultReport {
    /// How the attempt ended.
    pub outcome: ExitClass,
    /// Exit code of the scientific code, if it ran.
    #[serde(default)]
    pub return_code: Option<i32>,
    /// Products written (success only).
    #[serde(default)]
    pub products: Vec<OutputProduct>,
    /// What ran (image digest...).
    #[serde(default)]
    pub software_version: Option<String>,
    /// The error, for failed outcomes.
    #[serde(default)]
    pub error: Option<ReportedError>,
}

/// The job's state after a report.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ReportAnswer {
    /// The job's status now.
    pub status: JobStatus,
    /// The job's attempt now (higher than the reported one after a retry was scheduled).
    pub attempt: i32,
}

/// Checks the bearer token for attempt `attempt` of job `id`, and returns the job.
async fn authorize(
    state: &ApiState,
    headers: &HeaderMap,
    id: i64,
    attempt: i32,
) -> Result<Job, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
    match job_for_token(&state.pool, id, attempt, token).await? {
        (TokenCheck::UnknownJob, _) => Err(ApiError::NotFound(format!("job {id} not found"))),
        (TokenCheck::Refused, _) => Err(ApiError::Unauthorized(format!(
            "the token is not valid for attempt {attempt} of job {id}"
        ))),
        (TokenCheck::Valid { current_attempt }, _) if current_attempt != attempt => {
            Err(ApiError::Conflict(format!(
                "attempt {attempt} of job {id} is stale: the job is at attempt {current_attempt}"
            )))
        }
        (TokenCheck::Valid { .. }, Some(job)) => Ok(job),
        (TokenCheck::Valid { .. }, None) => Err(ApiError::Internal(anyhow::anyhow!(
            "a valid token without its job {id}"
        ))),
    }
}

/// Refuses text with NUL characters (PostgreSQL cannot store them).
fn no_nul<'a>(texts: impl Iterator<Item = &'a String>) -> Result<(), ApiError> {
    let mut texts = texts;
    match texts.find(|t| t.contains('\0')) {
        Some(_) => Err(ApiError::BadRequest(
            "text fields may not contain NUL characters".into(),
        )),
        None => Ok(()),
    }
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload
        .map(|Json(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

async fn task(
    State(state): State<ApiState>,
    Path((id, attempt)): Path<(i64, i32)>,
    headers: HeaderMap,
) -> Result<Json<WorkerTask>, ApiError> {
    let job = authorize(&state, &headers, id, attempt).await?;
    let job_type = state.registry.get(&job.job_type).ok_or_else(|| {
        ApiError::Conflict(format!(
            "job type {} is not served by this instance",
            job.job_type
        ))
    })?;
    let task = job_type
        .worker_task(&job)
        .map_err(|e| ApiError::Conflict(format!("no task for job {id}: {e}")))?;
    Ok(Json(task))
}

async fn status(
    State(state): State<ApiState>,
    Path((id, attempt)): Path<(i64, i32)>,
    headers: HeaderMap,
    payload: Result<Json<StatusReport>, JsonRejection>,
) -> Result<Json<ReportAnswer>, ApiError> {
    let report = body(payload)?;
    let job = authorize(&state, &headers, id, attempt).await?;
    if !report.status.is_running() {
        return Err(ApiError::BadRequest(format!(
            "workers report started, pre_processing, processing or post_processing, not {}; results go to the result endpoint",
            report.status
        )));
    }
    no_nul(report.message.iter())?;
    // The dispatcher may record the dispatch while this report is applied: a lost race at the same
    // attempt is applied again to the job as it is now (a few times at most).
    let mut job = job;
    for _ in 0..3 {
        match apply_status(&state, &job, &report).await {
            Err(ApiError::Conflict(_)) if job.status == JobStatus::Ready => {
                job = get_job(&state.pool, id).await?;
                if job.attempt != attempt {
                    break;
                }
            }
            other => return other,
        }
    }
    apply_status(&state, &job, &report).await
}

/// Applies a worker's status report to `job` as it was read.
async fn apply_status(
    state: &ApiState,
    job: &Job,
    report: &StatusReport,
) -> Result<Json<ReportAnswer>, ApiError> {
    // The same report again (a retry after a lost answer) is acknowledged, not refused.
    if job.status == report.status {
        return Ok(Json(ReportAnswer {
            status: job.status,
            attempt: job.attempt,
        }));
    }
    let mut change = StatusChange::of(job, report.status);
    if let Some(message) = &report.message {
        change = change.message(message.clone());
    }
    // A worker can start before its dispatcher has recorded the dispatch: its start proves that the
    // dispatch happened, so both changes are recorded together (the dispatcher then only adds its
    // reference).
    let job = if job.status == JobStatus::Ready && report.status == JobStatus::Started {
        let mut tx = state.pool.begin().await.map_err(DbError::from)?;
        let queued = change_status(
            &mut tx,
            &StatusChange::of(job, JobStatus::Queued)
                .message("dispatch confirmed by the worker's start"),
        )
        .await?;
        let started = change_status(
            &mut tx,
            &StatusChange {
                from: queued.status,
                ..change
            },
        )
        .await?;
        tx.commit().await.map_err(DbError::from)?;
        started
    } else {
        change_status_on(&state.pool, &change).await?
    };
    Ok(Json(ReportAnswer {
        status: job.status,
        attempt: job.attempt,
    }))
}

async fn result(
    State(state): State<ApiState>,
    Path((id, attempt)): Path<(i64, i32)>,
    headers: HeaderMap,
    payload: Result<Json<ResultReport>, JsonRejection>,
) -> Result<Json<ReportAnswer>, ApiError> {
    let report = body(payload)?;
    let job = authorize(&state, &headers, id, attempt).await?;
    no_nul(
        report
            .error
            .iter()
            .flat_map(|e| [&e.subtype, &e.message])
            .chain(report.software_version.iter()),
    )?;
    no_nul(report.products.iter().flat_map(|p| [&p.kind, &p.path]))?;
    if report
        .products
        .iter()
        .any(|p| p.infos.to_string().contains("\\u0000"))
    {
        return Err(ApiError::BadRequest(
            "product infos may not contain NUL characters".into(),
        ));
    }
    let job_type = state.registry.get(&job.job_type).ok_or_else(|| {
        ApiError::Conflict(format!(
            "job type {} is not served by this instance",
            job.job_type
        ))
    })?;
    let described = |fallback: &str| match &report.error {
        Some(e) => (e.subtype.clone(), e.message.clone()),
        None => (
            report
                .return_code
                .map_or_else(|| fallback.to_string(), |c| format!("exit code {c}")),
            report.return_code.map_or_else(
                || "no details".to_string(),
                |c| job_type.exit_codes().describe(c),
            ),
        ),
    };
    let job = match report.outcome {
        ExitClass::Success | ExitClass::NoProduct => {
            if report.outcome == ExitClass::NoProduct && !report.products.is_empty() {
                return Err(ApiError::BadRequest(
                    "a no_product result lists no products".into(),
                ));
            }
            let allowed = &job_type.spec().output_products;
            if let Some(p) = report.products.iter().find(|p| !allowed.contains(&p.kind)) {
                return Err(ApiError::BadRequest(format!(
                    "product kind {:?} is not one of {}'s ({})",
                    p.kind,
                    job.job_type,
                    allowed.join(", ")
                )));
            }
            if job.status != JobStatus::PostProcessing {
                return Err(ApiError::Conflict(format!(
                    "job {id} is {}; a result is reported from post_processing",
                    job.status
                )));
            }
            let results = JobResults {
                return_code: report.return_code,
                outcome: Some(report.outcome),
                products: report.products,
            };
            let results =
                serde_json::to_value(results).map_err(|e| ApiError::Internal(e.into()))?;
            let change = StatusChange::of(&job, JobStatus::Processed)
                .results(results, report.software_version)
                .release();
            change_status_on(&state.pool, &change).await?
        }
        ExitClass::ExternalError | ExitClass::InternalError
            if !(job.status == JobStatus::Queued || job.status.is_running()) =>
        {
            return Err(ApiError::Conflict(format!(
                "job {id} is {}: a failure is reported while the attempt runs",
                job.status
            )));
        }
        ExitClass::ExternalError | ExitClass::InternalError => {
            let external = report.outcome == ExitClass::ExternalError;
            let (subtype, message) = described(if external {
                "external error"
            } else {
                "internal error"
            });
            let failure = if external {
                Failure::External { subtype, message }
            } else {
                Failure::Internal { subtype, message }
            };
            record_failure(&state.pool, &job, &failure, state.backoff, None)
                .await?
                .0
        }
    };
    Ok(Json(ReportAnswer {
        status: job.status,
        attempt: job.attempt,
    }))
}
