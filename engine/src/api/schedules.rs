//! The background jobs over HTTP, relative to the API prefix:
//!
//! | route | does |
//! |---|---|
//! | `POST /initial-sync-jobs`, `/healing-jobs`, `/dump-jobs` | asks for a run now: 202 with the request time; an instance fires it at once. 409 with the reason when it is disabled, a run is in progress, or (healing) no initial sync has succeeded while healing must wait for one |
//! | `DELETE` on the same routes | deletes the records of the finished runs of that kind (a run in progress stays; dump files stay in storage): 200 with the count |
//! | `GET` on the same routes | the schedule and its last runs (`?limit=`, default 20) |

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{ReadAccess, WriteAccess};
use super::{ApiContext, ApiError};
use crate::db::schedules::{delete_runs, request, runs, schedule, Requested, ScheduleKind};

/// The routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route(
            "/initial-sync-jobs",
            get(|r, c, q| list(r, c, q, ScheduleKind::InitialSync))
                .post(|w, c| trigger(w, c, ScheduleKind::InitialSync))
                .delete(|w, c| delete(w, c, ScheduleKind::InitialSync)),
        )
        .route(
            "/healing-jobs",
            get(|r, c, q| list(r, c, q, ScheduleKind::Healing))
                .post(|w, c| trigger(w, c, ScheduleKind::Healing))
                .delete(|w, c| delete(w, c, ScheduleKind::Healing)),
        )
        .route(
            "/dump-jobs",
            get(|r, c, q| list(r, c, q, ScheduleKind::Dump))
                .post(|w, c| trigger(w, c, ScheduleKind::Dump))
                .delete(|w, c| delete(w, c, ScheduleKind::Dump)),
        )
}

async fn trigger(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    kind: ScheduleKind,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    match request(&ctx.state.pool, kind).await? {
        Requested::Requested(at) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "message": format!("{} requested; an instance runs it now", kind.label()),
                "schedule": kind.id(), "requested_at": at,
            })),
        )),
        Requested::AlreadyRequested(at) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "message": format!("{} already requested and about to run", kind.label()),
                "schedule": kind.id(), "requested_at": at,
            })),
        )),
        Requested::Refused(reason) => Err(ApiError::Conflict(reason)),
    }
}

async fn delete(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    kind: ScheduleKind,
) -> Result<Json<Value>, ApiError> {
    let deleted = delete_runs(&ctx.state.pool, kind).await?;
    Ok(Json(json!({
        "message": format!("{deleted} finished {} run(s) deleted", kind.label()),
        "schedule": kind.id(), "deleted": deleted,
    })))
}

/// `?limit=N`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list(
    _: ReadAccess,
    State(ctx): State<ApiContext>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    kind: ScheduleKind,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and 1000, not {limit}"
        )));
    }
    let row = schedule(&ctx.state.pool, kind).await?;
    let runs = runs(&ctx.state.pool, kind, limit).await?;
    Ok(Json(json!({ "schedule": row, "runs": runs })))
}
