//! The HTTP API, under `/api/v1`. For now it serves the worker protocol (`worker`), whose concurrent
//! reports are checked and applied in groups (`reports`, over `batcher`); errors are JSON
//! `{"error": "..."}` with a 4xx status for client faults, and an opaque 500 (full chain logged)
//! otherwise.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use sqlx::PgPool;
use swath_job_types::registry::JobTypeRegistry;

use crate::db::DbError;
use crate::pipeline::retry::AttemptBackoff;

pub mod batcher;
pub mod known;
pub mod reports;
pub mod schedules;
pub mod tasks;
pub mod worker;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The database.
    pub pool: PgPool,
    /// The job types this instance serves.
    pub registry: Arc<JobTypeRegistry>,
    /// Backoff between attempts of a job.
    pub backoff: AttemptBackoff,
    /// Where workers read and write, and the flavors' limits.
    pub tasks: tasks::TaskLocations,
}

/// What the handlers share: the [`ApiState`] and the batchers of worker reports.
#[derive(Clone)]
pub struct ApiContext {
    /// The state given to [`router`].
    pub state: ApiState,
    /// The batchers of worker reports (one set per router).
    pub reports: Arc<reports::Reports>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let reports = Arc::new(reports::Reports::new(state.pool.clone()));
    Router::new()
        .nest("/api/v1", worker::routes())
        .nest("/api/v1", schedules::routes())
        .with_state(ApiContext { state, reports })
}

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the resource's state (stale attempt, forbidden transition).
    #[error("{0}")]
    Conflict(String),
    /// Our fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound(id) => ApiError::NotFound(format!("job {id} not found")),
            DbError::LostRace { .. } | DbError::InvalidTransition { .. } => {
                ApiError::Conflict(e.to_string())
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({"error": "internal error"})),
                )
                    .into_response();
            }
        };
        (status, Json(serde_json::json!({"error": self.to_string()}))).into_response()
    }
}
