//! Reprocessing campaigns over HTTP, relative to the API prefix:
//!
//! | route | does |
//! |---|---|
//! | `GET /campaigns` | every campaign, newest first, each with its progress (`?limit=`, default 100) |
//! | `POST /campaigns` | creates a campaign (write token): 201 with it; a running `swath serve` lists its window |
//! | `GET /campaigns/{id}` | one campaign with its progress |
//! | `POST /campaigns/{id}/pause` | no new dispatch (write token); answers the campaign and its jobs already claimed |
//! | `POST /campaigns/{id}/resume` | dispatch again (write token) |
//! | `POST /campaigns/{id}/cancel` | cancels it and its jobs not yet started (write token); answers how many |
//!
//! A request is checked by [`CampaignRequest::check`], as on the command line.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{ReadAccess, WriteAccess};
use super::input::{ApiJson, ApiPath, OptionalJson};
use super::job_writes::cancel_reason;
use super::{ApiContext, ApiError};
use crate::campaigns::{load_report, load_reports, CampaignReport, CampaignRequest, Requester};
use crate::db::campaigns::{
    create_campaign, get_campaign, list_campaigns, pause_campaign, resume_campaign, CampaignError,
};
use crate::pipeline::campaign::cancel_campaign_and_jobs;

/// The routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/{id}", get(show))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
}

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        match e {
            CampaignError::NotFound(_) => ApiError::NotFound(e.to_string()),
            CampaignError::NameTaken(_) | CampaignError::NotNow { .. } => {
                ApiError::Conflict(e.to_string())
            }
            CampaignError::Db(e) => ApiError::Internal(e.into()),
        }
    }
}

/// `?limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
}

/// The campaigns, newest first.
#[derive(Debug, Serialize)]
pub struct CampaignList {
    /// The campaigns.
    pub campaigns: Vec<CampaignReport>,
}

async fn list(
    _: ReadAccess,
    State(ctx): State<ApiContext>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CampaignList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: must be between 1 and 1000, not {limit}"
        )));
    }
    let pool = &ctx.state.pool;
    let campaigns = load_reports(pool, list_campaigns(pool, limit).await?).await?;
    Ok(Json(CampaignList { campaigns }))
}

async fn create(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiJson(request): ApiJson<CampaignRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let new = request
        .check(
            &ctx.state.registry,
            &ctx.operator.catalogue,
            Requester::WriteToken,
        )
        .map_err(ApiError::BadRequest)?;
    let campaign = create_campaign(&ctx.state.pool, &new).await?;
    let location = format!("/api/v1/campaigns/{}", campaign.id);
    let report = load_report(&ctx.state.pool, campaign).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(report),
    ))
}

async fn show(
    _: ReadAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignReport>, ApiError> {
    let campaign = get_campaign(&ctx.state.pool, id).await?;
    Ok(Json(load_report(&ctx.state.pool, campaign).await?))
}

/// The answer to a pause.
#[derive(Debug, Serialize)]
pub struct PauseAnswer {
    /// The campaign, now paused.
    pub campaign: CampaignReport,
    /// Its jobs claimed by a dispatch round before the pause, which that round still dispatches.
    pub claimed: i64,
}

async fn pause(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PauseAnswer>, ApiError> {
    let paused = pause_campaign(&ctx.state.pool, id).await?;
    Ok(Json(PauseAnswer {
        campaign: load_report(&ctx.state.pool, paused.campaign).await?,
        claimed: paused.claimed,
    }))
}

async fn resume(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignReport>, ApiError> {
    let campaign = resume_campaign(&ctx.state.pool, id).await?;
    Ok(Json(load_report(&ctx.state.pool, campaign).await?))
}

/// The optional body of a cancel.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, recorded on the campaign and in its jobs' history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer to a cancel.
#[derive(Debug, Serialize)]
pub struct CancelAnswer {
    /// The campaign, now cancelled.
    pub campaign: CampaignReport,
    /// Its jobs not yet started that were cancelled.
    pub cancelled_jobs: usize,
}

async fn cancel(
    _: WriteAccess,
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<i64>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> Result<Json<CancelAnswer>, ApiError> {
    let reason = cancel_reason("cancelled through the API", body.reason.as_deref())?;
    let executor = ctx.operator.executor.as_deref();
    let (campaign, cancelled_jobs) =
        cancel_campaign_and_jobs(&ctx.state.pool, executor, id, &reason).await?;
    Ok(Json(CancelAnswer {
        campaign: load_report(&ctx.state.pool, campaign).await?,
        cancelled_jobs,
    }))
}
