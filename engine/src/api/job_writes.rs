//! Changing jobs: `POST /jobs/{id}/cancel` (propagated to the executor) and
//! `POST /jobs/{id}/children` (a child job, attached or best effort). Both need the write token.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use swath_domain::children::ChildKind;
use swath_domain::{Job, JobPriority, NewJob};

use super::auth::WriteAccess;
use super::input::{check_json, check_text, check_year, ApiJson, ApiPath, OptionalJson};
use super::{ApiContext, ApiError};
use crate::db::chaining::{create_child, ChildError};
use crate::db::jobs::get_job;
use crate::db::DbError;
use crate::pipeline::cancel::{cancel_job, AttemptStop, CancelError};

/// The write routes on one job, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/jobs/{id}/cancel", post(cancel))
        .route("/jobs/{id}/children", post(new_child))
}

/// The optional body of a cancel.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, recorded in the job's history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer to a cancel.
#[derive(Debug, Serialize)]
pub struct CancelAnswer {
    /// The job, now `cancelled`.
    pub job: Job,
    /// What happened to its attempt in flight.
    pub attempt: AttemptStop,
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound(_) => ApiError::NotFound(e.to_string()),
            CancelError::NotCancellable { .. } => ApiError::Conflict(e.to_string()),
            CancelError::Db(e) => e.into(),
        }
    }
}

/// The reason recorded for a cancel asked through the API: `how`, then the caller's `reason` if it
/// gave one (checked: at most 1000 characters, no control characters).
pub(crate) fn cancel_reason(how: &str, reason: Option<&str>) -> Result<String, ApiError> {
    Ok(match reason {
        Some(reason) => {
            check_text("reason", reason, 1000)?;
            format!("{how}: {reason}")
        }
        None => how.to_string(),
    })
}

async fn cancel(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> Result<Json<CancelAnswer>, ApiError> {
    let reason = cancel_reason("cancelled through the API", body.reason.as_deref())?;
    let executor = ctx.operator.executor.as_deref();
    let cancelled = cancel_job(&ctx.state.pool, executor, id, &reason).await?;
    Ok(Json(CancelAnswer {
        job: cancelled.job,
        attempt: cancelled.attempt,
    }))
}

fn attached() -> ChildKind {
    ChildKind::Attached
}

/// A child job to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildRequest {
    /// Its job type (a registered one).
    pub job_type: String,
    /// Its name, unique within the job type.
    pub name: String,
    /// `attached` (the default: the parent is done only when it is) or `best_effort`.
    #[serde(default = "attached")]
    pub kind: ChildKind,
    /// Its input product.
    #[serde(default)]
    pub product_id: Option<String>,
    /// Its tile.
    #[serde(default)]
    pub tile_id: Option<String>,
    /// Where its input lives.
    #[serde(default)]
    pub input_path: Option<String>,
    /// Its sensing time.
    #[serde(default)]
    pub measured_at: Option<DateTime<Utc>>,
    /// Its priority (the parent's when not given).
    #[serde(default)]
    pub priority: Option<JobPriority>,
    /// Its type-specific parameters (an object, checked by the job type).
    #[serde(default)]
    pub params: Option<serde_json::Value>,
}

/// The answer to a created job.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The job.
    pub job: Job,
}

impl From<ChildError> for ApiError {
    fn from(e: ChildError) -> Self {
        match e {
            ChildError::ParentNotFound(_) => ApiError::NotFound(e.to_string()),
            ChildError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            ChildError::Refused(_) | ChildError::NameTaken { .. } => {
                ApiError::Conflict(e.to_string())
            }
            ChildError::Db(e) => e.into(),
        }
    }
}

/// Checks `request` and makes the job it asks for, with `parent`'s priority by default.
fn child_job(ctx: &ApiContext, parent: &Job, request: ChildRequest) -> Result<NewJob, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let job_type = ctx.state.registry.get(&request.job_type).ok_or_else(|| {
        bad(format!(
            "job_type: unknown job type {:?} (known: {})",
            request.job_type,
            ctx.state.registry.names().join(", ")
        ))
    })?;
    check_text("name", &request.name, 255)?;
    if request.name.is_empty()
        || request
            .name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "name: a non-empty name without white space or control characters is needed".into(),
        ));
    }
    for (field, value, max) in [
        ("product_id", &request.product_id, 255),
        ("input_path", &request.input_path, 4096),
    ] {
        if let Some(v) = value {
            check_text(field, v, max)?;
        }
    }
    // Where the input lives is checked against the configured stores when the task is built; a
    // path that climbs out of its directory or names nothing is refused here already.
    if let Some(input) = &request.input_path {
        if input.trim().is_empty() || input.split('/').any(|segment| segment == "..") {
            return Err(bad(format!(
                "input_path: {input:?} is empty or has a `..` segment"
            )));
        }
    }
    let tile_id = match request.tile_id {
        Some(tile) => {
            let normalized = tile.trim_start_matches(['T', 't']).to_ascii_uppercase();
            if normalized.is_empty()
                || normalized.len() > 16
                || !normalized.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                check_text("tile_id", &tile, 64)?;
                return Err(bad(format!(
                    "tile_id: {tile:?} is not a tile id such as 32TLR"
                )));
            }
            Some(normalized)
        }
        None => None,
    };
    if let Some(at) = request.measured_at {
        check_year("measured_at", at)?;
    }
    let params = request
        .params
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    if !params.is_object() {
        return Err(bad("params: an object is needed".into()));
    }
    check_json("params", &params)?;
    job_type.check_params(&params).map_err(bad)?;
    let mut job = NewJob::new(request.job_type, request.name, job_type.spec().max_attempts);
    job.product_id = request.product_id;
    job.tile_id = tile_id;
    job.input_path = request.input_path;
    job.measured_at = request.measured_at;
    job.priority = request.priority.unwrap_or(parent.priority);
    job.params = params;
    job.initial_message = Some(format!(
        "child of job {} created through the API",
        parent.id
    ));
    Ok(job)
}

async fn new_child(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<ChildRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let parent = get_job(&ctx.state.pool, id).await.map_err(|e| match e {
        DbError::NotFound(id) => ApiError::NotFound(format!("job {id} not found")),
        other => other.into(),
    })?;
    let kind = request.kind;
    let job = child_job(&ctx, &parent, request)?;
    let created = create_child(&ctx.state.pool, id, kind, job).await?;
    let location = format!("/api/v1/jobs/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Created { job: created }),
    ))
}
