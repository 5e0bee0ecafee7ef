//! The worker's side of the worker API over HTTP: `test_job`s made ready or dispatched as the
//! dispatcher would, and the requests a worker sends (task, status and result reports, the
//! exchange of its bootstrap secret).

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::db::jobs::{get_job, insert_jobs};

use super::{drive, token_for_ready};

/// The steps a worker reports after `started`, up to its result.
pub const STEPS_AFTER_START: [&str; 3] = ["pre_processing", "processing", "post_processing"];

/// Every step a worker reports before its result.
pub const ALL_STEPS: [&str; 4] = ["started", "pre_processing", "processing", "post_processing"];

/// A `test_job` called `name` (two attempts) reading `input_path`, taken to `ready`.
pub async fn ready_test_job(pool: &PgPool, name: &str, input_path: &str) -> Job {
    let mut new = NewJob::new("test_job", name, 2);
    new.params = json!({"product": "S2B_MSIL1C_20240301T101019_N0510_R022_T32TLR_20240301T120100", "mission": "S2"});
    new.input_path = Some(input_path.into());
    let id = insert_jobs(pool, &[new]).await.unwrap()[0].id;
    drive(
        pool,
        get_job(pool, id).await.unwrap(),
        &[JobStatus::Configured, JobStatus::Ready],
    )
    .await
}

/// A queued `test_job` reading `input_path` (as if just dispatched), and the token of its attempt.
pub async fn dispatched(pool: &PgPool, name: &str, input_path: &str) -> (Job, String) {
    let ready = ready_test_job(pool, name, input_path).await;
    let token = token_for_ready(pool, &ready).await;
    let job = drive(
        pool,
        get_job(pool, ready.id).await.unwrap(),
        &[JobStatus::Queued],
    )
    .await;
    (job, token)
}

/// The URL of endpoint `what` of attempt `attempt` of `job`.
pub fn url(base: &str, job: &Job, attempt: i32, what: &str) -> String {
    format!("{base}/worker/jobs/{}/attempts/{attempt}/{what}", job.id)
}

/// Posts `body` to `url` with `token`; returns the status and the JSON answer (null if none).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Asks for the task of attempt `attempt` of `job` with `token`; returns the status and the JSON
/// answer (null if none).
pub async fn get_task(
    client: &reqwest::Client,
    base: &str,
    job: &Job,
    attempt: i32,
    token: &str,
) -> (StatusCode, Value) {
    let r = client
        .get(url(base, job, attempt, "task"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Reports `status` for attempt `attempt` of `job` with `token`.
pub async fn report(
    client: &reqwest::Client,
    base: &str,
    job: &Job,
    attempt: i32,
    token: &str,
    status: &str,
) -> (StatusCode, Value) {
    post(
        client,
        &url(base, job, attempt, "status"),
        token,
        json!({ "status": status }),
    )
    .await
}

/// Reserves `products` (`(kind, path)`) for attempt `attempt` of `job` with `token`, as a worker
/// does before it uploads them.
pub async fn reserve(
    client: &reqwest::Client,
    base: &str,
    job: &Job,
    attempt: i32,
    token: &str,
    products: &[(&str, &str)],
) -> (StatusCode, Value) {
    let products: Vec<Value> = products
        .iter()
        .map(|(kind, path)| json!({"kind": kind, "path": path}))
        .collect();
    post(
        client,
        &url(base, job, attempt, "products"),
        token,
        json!({ "products": products }),
    )
    .await
}

/// Reports each of `steps` in turn for attempt 1 of `job` with `token`, whatever the answers.
pub async fn report_steps(
    client: &reqwest::Client,
    base: &str,
    job: &Job,
    token: &str,
    steps: &[&str],
) {
    for step in steps {
        report(client, base, job, 1, token, step).await;
    }
}

/// Asserts an error answer: its status, and an error message containing `fragment`.
pub fn assert_error(code: StatusCode, body: &Value, expected: StatusCode, fragment: &str) {
    assert_eq!(code, expected, "{body}");
    assert!(body["error"].as_str().unwrap().contains(fragment), "{body}");
}
