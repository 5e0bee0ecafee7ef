//! The completeness report over HTTP, relative to the API prefix (read token):
//!
//! `GET /reports/completeness?type=T&from=DATE&to=DATE[&tiles=32TLR,32TLS][&check_catalogue=true]`
//!
//! answers a [`CompletenessReport`] (see [`crate::reports`]). Every bad parameter (unknown,
//! repeated, missing, malformed, a window longer than [`crate::reports::MAX_WINDOW_DAYS`] days) is
//! a 400 naming it; a catalogue that cannot be listed is a 503.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};

use super::auth::ReadAccess;
use super::{ApiContext, ApiError};
use crate::reports::{
    completeness, list_catalogue_inputs, CompletenessReport, CompletenessRequest, ReportError,
};

/// The routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new().route("/reports/completeness", get(report))
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Db(e) => e.into(),
            e => ApiError::Unavailable(e.to_string()),
        }
    }
}

async fn report(
    _: ReadAccess,
    State(ctx): State<ApiContext>,
    RawQuery(query): RawQuery,
) -> Result<Json<CompletenessReport>, ApiError> {
    let (mut job_type, mut from, mut to, mut tiles, mut check) = (None, None, None, None, None);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match name.as_ref() {
            "type" => &mut job_type,
            "from" => &mut from,
            "to" => &mut to,
            "tiles" => &mut tiles,
            "check_catalogue" => &mut check,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "{other}: unknown parameter (known: type, from, to, tiles, check_catalogue)"
                )))
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::BadRequest(format!("{name}: given twice")));
        }
    }
    let required = |name: &str, v: Option<String>| {
        v.ok_or_else(|| ApiError::BadRequest(format!("{name}: required")))
    };
    let (job_type, from, to) = (
        required("type", job_type)?,
        required("from", from)?,
        required("to", to)?,
    );
    let check = match check.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "check_catalogue: {other:?} is neither true nor false"
            )))
        }
    };
    let registry = &ctx.state.registry;
    let request = CompletenessRequest::parse(registry, &job_type, &from, &to, tiles.as_deref())
        .map_err(ApiError::BadRequest)?;
    let listed = if check {
        let template = registry
            .get(&request.job_type)
            .ok_or_else(|| ApiError::BadRequest(format!("type: unknown job type {job_type:?}")))?;
        let options = ctx
            .operator
            .catalogue_options
            .clone()
            .unwrap_or_else(|| crate::config::Settings::default().catalogue_options());
        let catalogue = crate::catalogue::open(&ctx.operator.catalogue, &options)
            .map_err(|e| ApiError::Unavailable(format!("catalogue: {e}")))?;
        Some(list_catalogue_inputs(template.as_ref(), catalogue.as_ref(), &request).await?)
    } else {
        None
    };
    let report = completeness(
        &ctx.state.pool,
        &request,
        ctx.state.timeliness_target_hours,
        listed,
    )
    .await?;
    Ok(Json(report))
}
