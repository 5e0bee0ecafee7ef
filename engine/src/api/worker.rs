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
use swath_domain::attempt::AttemptFailure;
use swath_domain::exit_codes::ExitClass;
use swath_domain::protocol::{AttemptTask, ProductReservation, ReservedProducts};
use swath_domain::template::{JobTemplate, JobTypeError};
use swath_domain::Job;
use swath_domain::JobStatus;

use super::input::ApiPath;
use super::reports::Reports;
use super::tasks::TaskBuildError;
use super::{ApiContext, ApiError};
use crate::attempt::children::{spawns_children, with_children};
use crate::attempt::report::{
    check_status, plan_no_task, plan_result, plan_status, refused_paths, with_products_refused,
};
use crate::attempt::{Plan, Refusal, ResultPlan, ResultRules};
use crate::db::campaigns::reprocessed_jobs;
use crate::db::chaining::children_of_type;
use crate::db::jobs::{get_job, JobHead};
use crate::db::products::{not_held, reserve, Reservation};
use crate::db::status_batch::ChangeChain;
use crate::db::tokens::{
    exchange_bootstrap_token, job_for_token, Exchange, PresentedToken, TokenCheck,
};

/// The worker routes, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/worker/jobs/{id}/attempts/{attempt}/token", post(exchange))
        .route("/worker/jobs/{id}/attempts/{attempt}/task", get(task))
        .route("/worker/jobs/{id}/attempts/{attempt}/status", post(status))
        .route(
            "/worker/jobs/{id}/attempts/{attempt}/products",
            post(products),
        )
        .route("/worker/jobs/{id}/attempts/{attempt}/result", post(result))
}

pub use swath_domain::protocol::{ReportAnswer, ResultReport, StatusReport};

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

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(m) => ApiError::BadRequest(m),
            Refusal::Conflict(m) => ApiError::Conflict(m),
            Refusal::Internal(m) => ApiError::Internal(anyhow::anyhow!(m)),
        }
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
    let recorded = fail_without_task(
        &ctx.reports,
        &ctx.state.pool,
        JobHead::from(job),
        attempt,
        &AttemptFailure::internal(subtype, &message),
    )
    .await;
    if let Err(e) = recorded {
        return e;
    }
    ctx.reports.known.forget(job.id, attempt);
    ApiError::Conflict(message)
}

/// How many times [`fail_without_task`] reads the job again after losing a race.
const NO_TASK_TRIES: usize = 3;

/// Records `failure` for attempt `attempt` of the job whose head was read as `head`, because the
/// worker gets no task. The head may be stale: the dispatcher starts the worker before it records
/// `ready -> queued`, so the worker may ask for its task (and the job be read `ready`) just before
/// the dispatch is recorded. A lost race is then tried again from the job as it now is, while it is
/// at the same attempt and not ended: otherwise the worker would exit without a task and the
/// executor's tracking would only see an exit 0 without a result, losing the reason.
pub async fn fail_without_task(
    reports: &Reports,
    pool: &sqlx::PgPool,
    head: JobHead,
    attempt: i32,
    failure: &AttemptFailure,
) -> Result<(), ApiError> {
    let mut head = head;
    for _ in 0..NO_TASK_TRIES {
        let lost = match reports.apply(plan_no_task(&head, failure)).await {
            Ok(_) => return Ok(()),
            Err(lost @ ApiError::Conflict(_)) => lost,
            Err(e) => return Err(e),
        };
        let now = JobHead::from(&get_job(pool, head.id).await?);
        let live =
            matches!(now.status, JobStatus::Ready | JobStatus::Queued) || now.status.is_running();
        if now.attempt != attempt || !live || now.status == head.status {
            return Err(lost);
        }
        head = now;
    }
    Err(ApiError::Conflict(format!(
        "job {}: its status kept changing while its refusal was recorded",
        head.id
    )))
}

/// Reserves the products a worker is about to upload (see [`ProductReservation`]). They are
/// checked against the attempt's task first (kinds and prefixes, as a result's are). A product that
/// another live job holds ends the job in `internal_error` (subtype `collision`, naming the other
/// job and the product) and is answered 409: the worker stops without uploading anything.
async fn products(
    State(ctx): State<ApiContext>,
    ApiPath((id, attempt)): ApiPath<(i64, i32)>,
    headers: HeaderMap,
    payload: Result<Json<ProductReservation>, JsonRejection>,
) -> Result<Json<ReservedProducts>, ApiError> {
    let request = body(payload)?;
    let token = bearer(&headers)?;
    let head = authorize(&ctx, token, id, attempt).await?;
    if request.products.is_empty() {
        return Ok(Json(ReservedProducts {
            products: Vec::new(),
        }));
    }
    let job = get_job(&ctx.state.pool, id).await?;
    let job_type = ctx.state.registry.get(&job.job_type).ok_or_else(|| {
        ApiError::Conflict(format!(
            "job type {} is not served by this instance",
            job.job_type
        ))
    })?;
    let refused = outside_task(
        &ctx,
        job_type.as_ref(),
        &job,
        request
            .products
            .iter()
            .map(|p| (p.kind.as_str(), p.path.as_str())),
    );
    if let Some(reason) = refused {
        return Err(ApiError::BadRequest(reason));
    }
    let replaceable = replaceable_jobs(&ctx, &job).await?;
    match reserve(&ctx.state.pool, id, attempt, &request.products, &replaceable).await? {
        Reservation::Granted(products) => Ok(Json(ReservedProducts { products })),
        Reservation::Stale { status, attempt: current } => Err(ApiError::Conflict(format!(
            "attempt {attempt} of job {id} is not running (the job is {status} at attempt {current}): nothing was reserved"
        ))),
        Reservation::Refused(collision) => {
            let message = collision.to_string();
            tracing::warn!(job_id = id, attempt, %message, "products collide with another job's; the job fails");
            let failure = AttemptFailure::internal("collision", &message);
            ctx.reports.apply(plan_no_task(&head, &failure)).await?;
            ctx.reports.known.forget(id, attempt);
            Err(ApiError::Conflict(message))
        }
    }
}

/// Why `products` (`(kind, path)`) of `job` fall outside its attempt's task, rebuilt as the task
/// endpoint builds it (see [`refused_paths`]), if they do.
fn outside_task<'a>(
    ctx: &ApiContext,
    job_type: &dyn JobTemplate,
    job: &Job,
    products: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let task = job_type
        .worker_task(job)
        .map_err(|e| e.to_string())
        .and_then(|task| {
            ctx.state
                .tasks
                .attempt_task(job, task)
                .map_err(|e| e.to_string())
        });
    match task {
        Ok(task) => refused_paths(products, &task.task.outputs),
        Err(e) => Some(format!(
            "the attempt's task cannot be rebuilt to check its products: {e}"
        )),
    }
}

/// The jobs whose products `job` may replace: those its job type names (a re-run replaces the
/// run it completes), those of the same product that a reprocessing campaign's job reprocesses, and
/// for a follow-up, the follow-ups of the same type of the jobs its parent replaces (the quicklook
/// of a re-run replaces the quicklook of the earlier run).
async fn replaceable_jobs(ctx: &ApiContext, job: &Job) -> Result<Vec<i64>, ApiError> {
    let mut replaceable = replaced_by(ctx, job).await?;
    if let Some(parent_id) = job.parent_id.or(job.spawned_by) {
        let parent = get_job(&ctx.state.pool, parent_id).await?;
        let earlier_runs = replaced_by(ctx, &parent).await?;
        replaceable.extend(children_of_type(&ctx.state.pool, &earlier_runs, &job.job_type).await?);
    }
    Ok(replaceable)
}

/// The jobs whose products `job` itself replaces (see [`replaceable_jobs`]).
async fn replaced_by(ctx: &ApiContext, job: &Job) -> Result<Vec<i64>, ApiError> {
    let mut replaced = match ctx.state.registry.get(&job.job_type) {
        Some(job_type) => job_type
            .replaced_jobs(job)
            .map_err(|e| ApiError::Internal(e.into()))?,
        None => Vec::new(),
    };
    replaced.extend(reprocessed_jobs(&ctx.state.pool, job).await?);
    Ok(replaced)
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

async fn result(
    State(ctx): State<ApiContext>,
    ApiPath((id, attempt)): ApiPath<(i64, i32)>,
    headers: HeaderMap,
    payload: Result<Json<ResultReport>, JsonRejection>,
) -> Result<Json<ReportAnswer>, ApiError> {
    let report = body(payload)?;
    let token = bearer(&headers)?;
    // A failure is planned from the job's attempts as read, and a success that creates children
    // from the whole job: both go the full way.
    // Products are checked against the attempt's task, which needs the whole job: a result with
    // products goes the full way too.
    let known = known_way(&ctx, id, attempt, token, |job| {
        let fast = report.succeeded()
            && report.products.is_empty()
            && !spawns_children(&ctx.state.registry, &job.job_type);
        fast.then(|| plan_report(&ctx, job, &report).ok())?
            .map(|plan| plan.chain)
    });
    if let Some(answer) = known.await {
        return Ok(Json(answer));
    }
    let job = authorize(&ctx, token, id, attempt).await?;
    let report = match check_products(&ctx, &job, &report).await? {
        None => report,
        Some(reason) => {
            tracing::warn!(job_id = id, attempt, %reason, "a worker reported products outside its task; the attempt fails");
            with_products_refused(&report, reason)
        }
    };
    let ResultPlan {
        mut chain,
        processed,
    } = plan_report(&ctx, &job, &report)?;
    if let Some(results) = processed {
        if spawns_children(&ctx.state.registry, &job.job_type) {
            let full = get_job(&ctx.state.pool, job.id).await?;
            chain = with_children(&ctx.state.registry, &full, &results, chain);
        }
    }
    apply_plan(&ctx, token, &job, Plan::Change(chain))
        .await
        .map(Json)
}

/// What `report` does to `job` as read, under its job type's rules and this instance's backoff.
fn plan_report(
    ctx: &ApiContext,
    job: &JobHead,
    report: &ResultReport,
) -> Result<ResultPlan, Refusal> {
    let job_type = ctx.state.registry.get(&job.job_type);
    let rules = job_type.map(|t| ResultRules {
        exit_codes: t.exit_codes(),
        output_products: &t.spec().output_products,
    });
    plan_result(job, report, rules, ctx.state.backoff)
}

/// Why the products of a successful `report` for `head` (in `post_processing`) are refused, if they
/// are: checked against the attempt's task, rebuilt as the task endpoint builds it (see
/// [`refused_paths`]). The attempt then ends as an internal error and nothing is kept to
/// publish.
async fn check_products(
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
    let refused = outside_task(
        ctx,
        job_type.as_ref(),
        &job,
        report
            .products
            .iter()
            .map(|p| (p.kind.as_str(), p.path.as_str())),
    );
    if refused.is_some() {
        return Ok(refused);
    }
    // Every product must have been reserved for the job before its upload.
    let paths: Vec<String> = report.products.iter().map(|p| p.path.clone()).collect();
    let missing = not_held(&ctx.state.pool, head.id, &paths).await?;
    Ok(missing.first().map(|(path, holder)| match holder {
        Some(other) => {
            format!("product {path} belongs to job {other}: two jobs may not write one product")
        }
        None => format!("product {path} was not reserved before its upload (POST .../products)"),
    }))
}
