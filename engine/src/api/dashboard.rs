//! The web dashboard: a page with its script and style bundled into the binary (no external
//! asset), at `/dashboard`, and the data it draws at `GET /api/v1/dashboard`: reprocessing campaigns
//! (active, or ended in the last [`CAMPAIGN_DAYS`] days) with their progress, jobs by type and
//! status, running jobs, recent failures and timeliness per day.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::ReadAccess;
use super::{ApiContext, ApiError};
use crate::campaigns::{load_reports, CampaignReport};
use crate::db::campaigns::list_campaigns;
use crate::db::dashboard::{self, JobLine, StatusCount, TimelinessDay};

/// Running jobs and failures shown at most.
const LINES: i64 = 50;
/// Days of timeliness shown.
const DAYS: i32 = 30;
/// Days an ended campaign stays shown.
pub const CAMPAIGN_DAYS: i64 = 30;
/// Campaigns read at most (newest first).
const CAMPAIGNS: i64 = 200;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// What the page draws.
#[derive(Debug, Serialize)]
pub struct Dashboard {
    /// When it was read.
    pub generated_at: DateTime<Utc>,
    /// Campaigns not over, and those that ended in the last [`CAMPAIGN_DAYS`] days, newest first.
    pub campaigns: Vec<CampaignReport>,
    /// Jobs by type and status.
    pub counts: Vec<StatusCount>,
    /// Jobs in flight, oldest first.
    pub running: Vec<JobLine>,
    /// Jobs in an error status, newest first.
    pub failures: Vec<JobLine>,
    /// Timeliness per job type and day of input publication.
    pub timeliness: Vec<TimelinessDay>,
    /// The target line, in hours.
    pub timeliness_target_hours: f64,
}

/// The page and its assets, at the root.
pub fn page_routes() -> Router<ApiContext> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route(
            "/dashboard",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// The data route, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new().route("/dashboard", get(data))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
}

async fn data(_: ReadAccess, State(ctx): State<ApiContext>) -> Result<Json<Dashboard>, ApiError> {
    let pool = &ctx.state.pool;
    let (counts, running, failures, timeliness) = tokio::try_join!(
        dashboard::status_counts(pool),
        dashboard::running(pool, LINES),
        dashboard::failures(pool, LINES),
        dashboard::timeliness(pool, DAYS),
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    let now = Utc::now();
    let shown_since = now - chrono::TimeDelta::days(CAMPAIGN_DAYS);
    let shown = list_campaigns(pool, CAMPAIGNS)
        .await?
        .into_iter()
        .filter(|c| {
            !c.state.is_final() || c.finished_at.unwrap_or(c.state_changed_at) >= shown_since
        })
        .collect();
    let campaigns = load_reports(pool, shown).await?;
    Ok(Json(Dashboard {
        generated_at: now,
        campaigns,
        counts,
        running,
        failures,
        timeliness,
        timeliness_target_hours: ctx.state.timeliness_target_hours,
    }))
}
