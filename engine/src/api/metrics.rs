//! `GET /metrics`: the Prometheus metrics ([`crate::metrics`]) in the OpenMetrics text format. Like
//! every read of the API, it needs the read token when one is configured (Prometheus sends it with
//! `authorization: {credentials: ...}` in its scrape configuration).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::auth::ReadAccess;
use super::{ApiContext, ApiError};

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics route, at the root (where Prometheus looks by default).
pub fn routes() -> Router<ApiContext> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(
    _: ReadAccess,
    State(ctx): State<ApiContext>,
) -> Result<impl IntoResponse, ApiError> {
    let text = crate::metrics::render(
        &ctx.state.pool,
        &ctx.state.registry,
        ctx.state.timeliness_target_hours,
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(([(CONTENT_TYPE, OPENMETRICS)], text))
}
