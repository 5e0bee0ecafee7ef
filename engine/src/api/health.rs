//! Health and readiness probes: `GET /health` answers as long as the process serves requests;
//! `GET /ready` also checks that the database answers and has every migration this binary knows.
//! Both are open (no token), for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{ApiContext, ApiError};

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The probes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// A probe's answer.
#[derive(Debug, Serialize)]
pub struct Probe {
    /// `ok` or `ready`.
    pub status: &'static str,
}

async fn health() -> Json<Probe> {
    Json(Probe { status: "ok" })
}

async fn ready(State(ctx): State<ApiContext>) -> Result<Json<Probe>, ApiError> {
    let check = tokio::time::timeout(READY_TIMEOUT, crate::db::check_schema(&ctx.state.pool));
    match check.await {
        Ok(Ok(())) => Ok(Json(Probe { status: "ready" })),
        Ok(Err(e)) => {
            tracing::warn!(error = format!("{e:#}"), "not ready");
            Err(ApiError::Unavailable(format!("not ready: {e}")))
        }
        Err(_) => Err(ApiError::Unavailable(format!(
            "not ready: the database did not answer within {} s",
            READY_TIMEOUT.as_secs()
        ))),
    }
}
