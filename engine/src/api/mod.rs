//! The HTTP API, under `/api/v1`, described by the OpenAPI document it serves (`openapi`):
//! - the operator API: jobs listed and shown (`jobs`), cancelled and given children (`job_writes`),
//!   retried one by one or in batches (`retries`), retried or cancelled by filter (`bulk`, with the
//!   filters of the list: `job_filter`), reprocessing campaigns (`campaigns`), the completeness
//!   report (`completeness`; not to be confused with the worker `reports`), health and readiness
//!   (`health`), with bearer tokens (`auth`);
//! - the worker protocol (`worker`), whose concurrent reports are checked and applied in groups
//!   (`reports`, over `batcher`).
//!
//! Errors are JSON `{"error": "..."}` with a 4xx status for client faults (the message says what
//! is wrong), and an opaque 500 (full chain logged) otherwise; unknown routes and methods are JSON
//! too (`input`).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use sqlx::PgPool;
use swath_domain::registry::JobTypeRegistry;

use crate::attempt::failure::AttemptBackoff;
use crate::config::{DEFAULT_BULK_MAX_JOBS, DEFAULT_RETRY_CAP};
use crate::db::DbError;
use crate::executor::Executor;

pub mod auth;
pub mod batcher;
pub mod bulk;
pub mod campaigns;
pub mod completeness;
pub mod dashboard;
pub mod health;
pub mod input;
pub mod job_filter;
pub mod job_writes;
pub mod jobs;
pub mod known;
pub mod metrics;
pub mod openapi;
pub mod reports;
pub mod retries;
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
    /// The dashboard's timeliness target, in hours.
    pub timeliness_target_hours: f64,
}

/// What the operator API needs beyond [`ApiState`]. The default has no token (writes are refused,
/// reads are open), the default retry and bulk caps and no executor (cancelled attempts are not stopped).
#[derive(Clone)]
pub struct OperatorApi {
    /// The bearer tokens of reads and writes.
    pub tokens: auth::ApiTokens,
    /// Retries an original job may have.
    pub retry_cap: u32,
    /// Most jobs one bulk retry or cancel by filter acts on (setting `bulk_max_jobs`).
    pub bulk_max_jobs: u32,
    /// Where attempts run, to stop the attempt of a cancelled job.
    pub executor: Option<Arc<dyn Executor>>,
    /// The catalogue a campaign lists when its request names none (the `catalogue` setting), and
    /// the one the completeness report's catalogue check lists.
    pub catalogue: String,
    /// How the catalogue check reaches the catalogue (the settings' defaults when `None`).
    pub catalogue_options: Option<crate::catalogue::CatalogueOptions>,
}

impl Default for OperatorApi {
    fn default() -> Self {
        OperatorApi {
            tokens: auth::ApiTokens::default(),
            retry_cap: DEFAULT_RETRY_CAP,
            bulk_max_jobs: DEFAULT_BULK_MAX_JOBS,
            executor: None,
            catalogue: crate::config::Settings::default().catalogue,
            catalogue_options: None,
        }
    }
}

/// What the handlers share: the [`ApiState`], the operator API's settings and the batchers of
/// worker reports.
#[derive(Clone)]
pub struct ApiContext {
    /// The state given to [`router`].
    pub state: ApiState,
    /// Tokens, retry cap and executor of the operator API.
    pub operator: Arc<OperatorApi>,
    /// The batchers of worker reports (one set per router).
    pub reports: Arc<reports::Reports>,
}

/// The API's routes, with the default [`OperatorApi`] (writes refused).
pub fn router(state: ApiState) -> Router {
    router_with(state, OperatorApi::default())
}

/// The API's routes.
pub fn router_with(state: ApiState, operator: OperatorApi) -> Router {
    let reports = Arc::new(reports::Reports::new(state.pool.clone()));
    let api = worker::routes()
        .merge(jobs::routes())
        .merge(job_writes::routes())
        .merge(retries::routes())
        .merge(bulk::routes())
        .merge(health::routes())
        .merge(openapi::routes())
        .merge(dashboard::routes())
        .merge(schedules::routes())
        .merge(campaigns::routes())
        .merge(completeness::routes());
    Router::new()
        .nest("/api/v1", api)
        .merge(metrics::routes())
        .merge(dashboard::page_routes())
        .fallback(input::no_route)
        .method_not_allowed_fallback(input::no_method)
        .with_state(ApiContext {
            state,
            operator: Arc::new(operator),
            reports,
        })
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
    /// Valid credentials (or none possible) that do not allow the request.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the resource's state (stale attempt, forbidden transition).
    #[error("{0}")]
    Conflict(String),
    /// The method is not served on this path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is larger than the API accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency is not available (readiness).
    #[error("{0}")]
    Unavailable(String),
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
            ApiError::Unauthorized(_) => {
                let body = Json(serde_json::json!({"error": self.to_string()}));
                let challenge = [(
                    axum::http::header::WWW_AUTHENTICATE,
                    "Bearer realm=\"swath\"",
                )];
                return (StatusCode::UNAUTHORIZED, challenge, body).into_response();
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
