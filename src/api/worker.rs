//! The worker protocol: a worker exchanges the bootstrap secret of its dispatch for its attempt
//! token, fetches the task of its attempt and reports its statuses and its result. Every request
//! names its attempt; a request for an attempt that is no longer the job's current one is refused
//! with 409 and changes nothing.
//!
//! The dispatch hands the worker a one-time bootstrap secret (on Nomad, the dispatch payload, which
//! anyone allowed to read the job can read until garbage collection). The worker's first call,
//! `POST .../token` with the bootstrap secret as bearer, registers an attempt token the worker chose
//! at random; every later request carries that token (`Authorization: Bearer ...`). The exchange is
//! one compare-and-set: of concurrent exchanges exactly one wins, and afterwards the bootstrap
//! secret opens nothing (401 on the exchange and on every other endpoint). The same exchange sent
//! again with the same attempt token (its answer was lost) is answered as a success, which gives the
//! sender nothing it did not have.
//!
//! A second run of the same attempt (Nomad restarting the task after the first run exchanged the
//! secret) chooses another attempt token: its exchange is refused with 401 and `"superseded": true`,
//! and the worker stops at once and exits 0 as superseded, touching nothing. If the first run
//! reported the attempt's result, nothing changes; if it died without one, the executor's tracking
//! settles the attempt (an exit 0 without a result is an internal error).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use swath_job_types::exit_codes::ExitClass;
use swath_job_types::job::JobResults;
use swath_job_types::protocol::{path_in_store, AttemptTask};
use swath_job_types::template::JobTypeError;
use swath_job_types::Job;
use swath_job_types::JobStatus;

use super::input::ApiPath;
use super::tasks::TaskBuildError;
use super::{ApiContext, ApiError};
use crate::db::jobs::{get_job, JobHead};
use crate::db::status::StatusChange;
use crate::db::status_batch::ChangeChain;
use crate::db::tokens::{
    exchange_bootstrap_token, job_for_token, Exchange, PresentedToken, TokenCheck,
};
use crate::pipeline::retry::{failure_chain, Failure};
use crate::pipeline::spawn::{children_of, spawns_children};

/// The worker routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/worker/jobs/{id}/attempts/{attempt}/token", post(exchange))
        .route("/worker/jobs/{id}/attempts/{attempt}/task", get(task))
        .route("/worker/jobs/{id}/attempts/{attempt}/status", post(status))
        .route("/worker/jobs/{id}/attempts/{attempt}/result", post(result))
}

pub use swath_job_types::protocol::{ReportAnswer, ReportedError, ResultReport, StatusReport};

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))
}

/// The job (or its head) behind a token check for attempt `attempt` of job `id`, or the refusal.
fn checked<J>(check: (TokenCheck, Option<J>), id: i64, attempt: i32) -> Result<J, ApiError> {
    match check {
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

/// Checks `token` for attempt `attempt` of job `id` (with the requests waiting at the same time), and
/// returns the job's head.
async fn authorize(
    ctx: &ApiContext,
    token: &str,
    id: i64,
    attempt: i32,
) -> Result<JobHead, ApiError> {
    let presented = PresentedToken {
        job_id: id,
        attempt,
        token: token.to_string(),
    };
    checked(ctx.reports.check(presented).await?, id, attempt)
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

/// The body of a token exchange: the attempt token the worker chose.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchange {
    /// The attempt token, from 32 to 256 characters among `A-Z a-z 0-9 - _`.
    pub token: String,
}

/// The answer to an exchange: the attempt the token now opens.
#[derive(Debug, serde::Serialize)]
pub struct TokenExchanged {
    /// The job.
    pub job_id: i64,
    /// The attempt.
    pub attempt: i32,
}

/// Checks that an attempt token a worker chose is long enough to be a secret and fits a header.
fn check_attempt_token(token: &str, bootstrap: &str) -> Result<(), ApiError> {
    let charset = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !(32..=256).contains(&token.len()) || !charset {
        return Err(ApiError::BadRequest(
            "token: an attempt token of 32 to 256 characters among A-Z a-z 0-9 - _ is needed"
                .into(),
        ));
    }
    if token == bootstrap {
        return Err(ApiError::BadRequest(
            "token: the attempt token must differ from the bootstrap secret".into(),
        ));
    }
    Ok(())
}

/// Exchanges the bootstrap secret (the bearer) for the attempt token in the body.
async fn exchange(
    State(ctx): State<ApiContext>,
    ApiPath((id, attempt)): ApiPath<(i64, i32)>,
    headers: HeaderMap,
    payload: Result<Json<TokenExchange>, JsonRejection>,
) -> Result<Json<TokenExchanged>, Response> {
    let request = body(payload).map_err(IntoResponse::into_response)?;
    let bootstrap = bearer(&headers).map_err(IntoResponse::into_response)?;
    check_attempt_token(&request.token, bootstrap).map_err(IntoResponse::into_response)?;
    let outcome = exchange_bootstrap_token(&ctx.state.pool, id, attempt, bootstrap, &request.token)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match outcome {
        Exchange::Exchanged => Ok(Json(TokenExchanged {
            job_id: id,
            attempt,
        })),
        Exchange::UnknownJob => {
            Err(ApiError::NotFound(format!("job {id} not found")).into_response())
        }
        Exchange::Refused => Err(ApiError::Unauthorized(format!(
            "the bootstrap secret is not valid for attempt {attempt} of job {id}"
        ))
        .into_response()),
        Exchange::Stale { current_attempt } => Err(ApiError::Conflict(format!(
            "attempt {attempt} of job {id} is stale: the job is at attempt {current_attempt}"
        ))
        .into_response()),
        Exchange::AlreadyExchanged => {
            tracing::warn!(job_id = id, attempt, "a used bootstrap secret was presented again (a replay, or a second run of the attempt)");
            let body = Json(serde_json::json!({
                "error": format!(
                    "the bootstrap secret of attempt {attempt} of job {id} was already exchanged and is void: another run of this attempt holds its attempt token"
                ),
                "superseded": true,
            }));
            let challenge = [(
                axum::http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"swath\"",
            )];
            Err((StatusCode::UNAUTHORIZED, challenge, body).into_response())
        }
    }
}

async fn task(
    State(ctx): State<ApiContext>,
    ApiPath((id, attempt)): ApiPath<(i64, i32)>,
    headers: HeaderMap,
) -> Result<Json<AttemptTask>, ApiError> {
    let token = bearer(&headers)?;
    let job = checked(
        job_for_token(&ctx.state.pool, id, attempt, token).await?,
        id,
        attempt,
    )?;
    let job_type = ctx.state.registry.get(&job.job_type).ok_or_else(|| {
        ApiError::Conflict(format!(
            "job type {} is not served by this instance",
            job.job_type
        ))
    })?;
    let task = match job_type.worker_task(&job) {
        Ok(task) => task,
        // Parameters that fail the job type's checks (an identifier that is not a product name, a
        // path): the job can never run. It fails with the reason, and the worker gets no task.
        Err(invalid @ (JobTypeError::InvalidParams { .. } | JobTypeError::InvalidJob { .. })) => {
            return Err(refuse_task(&ctx, &job, attempt, "params", invalid.to_string()).await)
        }
        Err(e) => return Err(ApiError::Conflict(format!("no task for job {id}: {e}"))),
    };
    match ctx.state.tasks.attempt_task(&job, task) {
        Ok(task) => Ok(Json(task)),
        // An input outside the configured stores: the job can never run either.
        Err(refused @ TaskBuildError::InputRefused { .. }) => {
            Err(refuse_task(&ctx, &job, attempt, "input", refused.to_string()).await)
        }
        Err(e) => Err(ApiError::Conflict(format!("no task for job {id}: {e}"))),
    }
}

/// Fails `job` (at `attempt`) as an internal error with subtype `subtype` and `why` in its message,
/// because no task can ever be built for it; the answer to the worker is the 409 that ends its run
/// without touching anything (or the error of recording the failure).
async fn refuse_task(
    ctx: &ApiContext,
    job: &Job,
    attempt: i32,
    subtype: &str,
    why: String,
) -> ApiError {
    let message = format!("no task for job {}: {why}", job.id);
    tracing::warn!(job_id = job.id, %message, "task refused");
    let failed = StatusChange::new(job.id, job.status, job.attempt, JobStatus::InternalError)
        .error(subtype, &message);
    if let Err(e) = ctx.reports.apply(ChangeChain::new(failed)).await {
        return e;
    }
    ctx.reports.known.forget(job.id, attempt);
    ApiError::Conflict(message)
}

async fn status(
    State(ctx): State<ApiContext>,
    ApiPath((id, attempt)): ApiPath<(i64, i32)>,
    headers: HeaderMap,
    payload: Result<Json<StatusReport>, JsonRejection>,
) -> Result<Json<ReportAnswer>, ApiError> {
    let report = body(payload)?;
    let token = bearer(&headers)?;
    let known = known_way(&ctx, id, attempt, token, |job| {
        check_status(&report).ok()?;
        match plan_status(job, &report) {
            Plan::Change(chain) => Some(chain),
            Plan::Unchanged(_) => None,
        }
    });
    if let Some(answer) = known.await {
        return Ok(Json(answer));
    }
    let mut job = authorize(&ctx, token, id, attempt).await?;
    check_status(&report)?;
    // The dispatcher may record the dispatch while this report is applied: a lost race at the same
    // attempt is applied again to the job as it is now (a few times at most). The job is read again
    // through the token check, so that a report never reaches a later attempt.
    for _ in 0..3 {
        match apply_plan(&ctx, token, &job, plan_status(&job, &report)).await {
            Err(ApiError::Conflict(_)) if job.status == JobStatus::Ready => {
                job = authorize(&ctx, token, id, attempt).await?;
            }
            other => return other.map(Json),
        }
    }
    apply_plan(&ctx, token, &job, plan_status(&job, &report))
        .await
        .map(Json)
}

/// What a report does to a job as it was read.
enum Plan {
    /// Nothing: the answer is the job as it is.
    Unchanged(ReportAnswer),
    /// These changes, applied together.
    Change(ChangeChain),
}

/// The fast way of a report, for an attempt whose token this instance has checked: the change planned
/// by `plan` from the job as this instance last left it is applied at once (see
/// [`super::known`]). `None` when there is no such change or it did not apply: the request then
/// goes the full way.
async fn known_way(
    ctx: &ApiContext,
    id: i64,
    attempt: i32,
    token: &str,
    plan: impl FnOnce(&JobHead) -> Option<ChangeChain>,
) -> Option<ReportAnswer> {
    let job = ctx.reports.known.get(id, attempt, token)?;
    let chain = plan(&job)?;
    match ctx.reports.apply(chain).await {
        Ok(after) => {
            ctx.reports.known.update(token, &job, after);
            Some(ReportAnswer {
                status: after.status,
                attempt: after.attempt,
            })
        }
        Err(_) => {
            ctx.reports.known.forget(id, attempt);
            None
        }
    }
}

/// Applies `plan` to `job` (read with `token`) and remembers where it left the job.
async fn apply_plan(
    ctx: &ApiContext,
    token: &str,
    job: &JobHead,
    plan: Plan,
) -> Result<ReportAnswer, ApiError> {
    let chain = match plan {
        Plan::Unchanged(answer) => return Ok(answer),
        Plan::Change(chain) => chain,
    };
    let after = ctx.reports.apply(chain).await?;
    ctx.reports.known.update(token, job, after);
    Ok(ReportAnswer {
        status: after.status,
        attempt: after.attempt,
    })
}

/// Refuses a status report that is not a worker's to make.
fn check_status(report: &StatusReport) -> Result<(), ApiError> {
    if !report.status.is_running() {
        return Err(ApiError::BadRequest(format!(
            "workers report started, pre_processing, processing or post_processing, not {}; results go to the result endpoint",
            report.status
        )));
    }
    no_nul(report.message.iter())
}

/// What a worker's status report does to `job` as it was read.
fn plan_status(job: &JobHead, report: &StatusReport) -> Plan {
    // The same report again (a retry after a lost answer) is acknowledged, not refused.
    if job.status == report.status {
        return Plan::Unchanged(ReportAnswer {
            status: job.status,
            attempt: job.attempt,
        });
    }
    let mut change = StatusChange::new(job.id, job.status, job.attempt, report.status);
    if let Some(message) = &report.message {
        change = change.message(message.clone());
    }
    // A worker can start before its dispatcher has recorded the dispatch: its start proves that the
    // dispatch happened, so both changes are recorded together (the dispatcher then only adds its
    // reference).
    if job.status == JobStatus::Ready && report.status == JobStatus::Started {
        let queued = StatusChange::new(job.id, JobStatus::Ready, job.attempt, JobStatus::Queued)
            .message("dispatch confirmed by the worker's start");
        return Plan::Change(ChangeChain::new(queued).then(StatusChange {
            from: JobStatus::Queued,
            ..change
        }));
    }
    Plan::Change(ChangeChain::new(change))
}

async fn result(
    State(ctx): State<ApiContext>,
    ApiPath((id, attempt)): ApiPath<(i64, i32)>,
    headers: HeaderMap,
    payload: Result<Json<ResultReport>, JsonRejection>,
) -> Result<Json<ReportAnswer>, ApiError> {
    let report = body(payload)?;
    let token = bearer(&headers)?;
    let succeeded = matches!(report.outcome, ExitClass::Success | ExitClass::NoProduct);
    // A failure is planned from the job's attempts as read, and a success that creates children
    // from the whole job: both go the full way.
    // Products are checked against the attempt's task, which needs the whole job: a result with
    // products goes the full way too.
    let known = known_way(&ctx, id, attempt, token, |job| {
        let fast = succeeded
            && report.products.is_empty()
            && !spawns_children(&ctx.state.registry, &job.job_type);
        fast.then(|| plan_result(&ctx, job, &report).ok())?
    });
    if let Some(answer) = known.await {
        return Ok(Json(answer));
    }
    let job = authorize(&ctx, token, id, attempt).await?;
    let report = match refused_products(&ctx, &job, &report).await? {
        None => report,
        Some(reason) => {
            tracing::warn!(job_id = id, attempt, %reason, "a worker reported products outside its task; the attempt fails");
            ResultReport {
                outcome: ExitClass::InternalError,
                return_code: report.return_code,
                software_version: report.software_version.clone(),
                error: Some(ReportedError {
                    subtype: "products".into(),
                    message: reason,
                }),
                products: Vec::new(),
            }
        }
    };
    let succeeded = matches!(report.outcome, ExitClass::Success | ExitClass::NoProduct);
    let mut chain = plan_result(&ctx, &job, &report)?;
    if succeeded && spawns_children(&ctx.state.registry, &job.job_type) {
        chain = with_children(&ctx, &job, chain).await?;
    }
    apply_plan(&ctx, token, &job, Plan::Change(chain))
        .await
        .map(Json)
}

/// Why the products of a successful `report` for `job` (in `post_processing`) are refused, if they
/// are: each must be of a kind the attempt's task asked for and lie under the task's output prefix
/// for that kind, rebuilt as the task endpoint builds it. The reason names the product and the
/// expected prefix; the attempt then ends as an internal error and nothing is kept to publish.
async fn refused_products(
    ctx: &ApiContext,
    head: &JobHead,
    report: &ResultReport,
) -> Result<Option<String>, ApiError> {
    if report.outcome != ExitClass::Success
        || report.products.is_empty()
        || head.status != JobStatus::PostProcessing
    {
        return Ok(None);
    }
    let Some(job_type) = ctx.state.registry.get(&head.job_type) else {
        // Refused by the result's plan, which names the job type.
        return Ok(None);
    };
    let job = get_job(&ctx.state.pool, head.id).await?;
    let task = job_type
        .worker_task(&job)
        .map_err(|e| e.to_string())
        .and_then(|task| {
            ctx.state
                .tasks
                .attempt_task(&job, task)
                .map_err(|e| e.to_string())
        });
    let task = match task {
        Ok(task) => task.task,
        Err(e) => {
            return Ok(Some(format!(
                "the attempt's task cannot be rebuilt to check its products: {e}"
            )))
        }
    };
    for product in &report.products {
        let Some(output) = task.outputs.iter().find(|o| o.kind == product.kind) else {
            let kinds: Vec<&str> = task.outputs.iter().map(|o| o.kind.as_str()).collect();
            return Ok(Some(format!(
                "product {:?} is of kind {:?}, which the task did not ask for (it asked for {})",
                product.path,
                product.kind,
                kinds.join(", ")
            )));
        };
        let prefix = path_in_store(&output.destination_prefix);
        if let Err(why) = under_prefix(&product.path, &prefix) {
            return Ok(Some(format!(
                "product {:?} ({}) is not under the task's output prefix {prefix:?}: {why}",
                product.path, product.kind
            )));
        }
    }
    Ok(None)
}

/// Checks that `path` (a product's path in its store) lies strictly under `prefix`, comparing whole
/// segments (so that `FSC_x` is not under `FS`): `path` must be relative, without empty, `.` or
/// `..` segments, backslashes or control characters, so that no normalisation can move it.
fn under_prefix(path: &str, prefix: &str) -> Result<(), &'static str> {
    if path.starts_with('/') {
        return Err("the path is absolute");
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err("the path holds a backslash or control characters");
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err("the path has an empty, `.` or `..` segment");
    }
    let wanted: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if wanted.iter().any(|s| *s == "." || *s == "..") {
        return Err("the prefix itself has a `.` or `..` segment");
    }
    if segments.len() <= wanted.len() || segments[..wanted.len()] != wanted[..] {
        return Err("the path does not start with the prefix's segments");
    }
    Ok(())
}

/// `chain` (the move to `processed`) with the children the job creates, stored in the same
/// transaction; if they cannot be made, the job ends in `internal_error` with its results.
async fn with_children(
    ctx: &ApiContext,
    job: &JobHead,
    mut chain: ChangeChain,
) -> Result<ChangeChain, ApiError> {
    let processed = chain.last_mut();
    let mut full = get_job(&ctx.state.pool, job.id).await?;
    full.status = JobStatus::Processed;
    full.results = processed
        .results
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::Internal(e.into()))?;
    match children_of(&ctx.state.registry, &full) {
        Ok(children) => {
            *processed = processed.clone().spawn(children);
            Ok(chain)
        }
        Err(reason) => {
            tracing::error!(job_id = job.id, %reason, "cannot create the children of a processed job");
            let failed = StatusChange {
                to: JobStatus::InternalError,
                ..processed.clone()
            }
            .error("children", format!("cannot create its children: {reason}"));
            Ok(ChangeChain::new(failed))
        }
    }
}

/// The changes a worker's result makes to `job` as it was read, or why it is refused.
fn plan_result(
    ctx: &ApiContext,
    job: &JobHead,
    report: &ResultReport,
) -> Result<ChangeChain, ApiError> {
    let id = job.id;
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
    let job_type = ctx.state.registry.get(&job.job_type).ok_or_else(|| {
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
    match report.outcome {
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
                products: report.products.clone(),
            };
            let results =
                serde_json::to_value(results).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(ChangeChain::new(
                StatusChange::new(job.id, job.status, job.attempt, JobStatus::Processed)
                    .results(results, report.software_version.clone())
                    .release(),
            ))
        }
        ExitClass::ExternalError | ExitClass::InternalError
            if !(job.status == JobStatus::Queued || job.status.is_running()) =>
        {
            Err(ApiError::Conflict(format!(
                "job {id} is {}: a failure is reported while the attempt runs",
                job.status
            )))
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
            let mut chain = failure_chain(job, &failure, ctx.state.backoff, None).0;
            // What ran is kept with the failure: a manual retry runs it again.
            chain.first_mut().software_version = report.software_version.clone();
            Ok(chain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_is_under_a_prefix_by_whole_segments_only() {
        let prefix = "hrsi/CLMS/FSC/2021/04/13/";
        assert_eq!(
            under_prefix("hrsi/CLMS/FSC/2021/04/13/FSC_1", prefix),
            Ok(())
        );
        assert_eq!(
            under_prefix("hrsi/CLMS/FSC/2021/04/13/FSC_1/a.tif", prefix),
            Ok(())
        );
        for path in [
            "hrsi/CLMS/FSC/2021/04/13",
            "hrsi/CLMS/FSC/2021/04/13/",
            "hrsi/CLMS/FSC/2021/04/130/FSC_1",
            "hrsi/CLMS/FS/2021/04/13/FSC_1",
            "hrsi/CLMS/FSC/2021/04/13/../14/FSC_1",
            "hrsi/CLMS/FSC/2021/04/13/./FSC_1",
            "hrsi/CLMS/FSC/2021/04/13//FSC_1",
            "/hrsi/CLMS/FSC/2021/04/13/FSC_1",
            "hrsi/CLMS/FSC/2021/04/13/FSC\\..\\x",
            "",
        ] {
            assert!(under_prefix(path, prefix).is_err(), "{path:?}");
        }
        assert!(
            under_prefix("FSC_x/1", "FS").is_err(),
            "not a segment prefix"
        );
        assert!(under_prefix("FS/1", "FS").is_ok());
        assert!(under_prefix("a/../b/1", "a/../b/").is_err());
    }
}
