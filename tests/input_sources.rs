//! Input sources at task build: a job whose stored input lies outside the configured stores (a host
//! path, a `..` escape from the eodata store) fails with the reason when its worker asks for the
//! task, and the worker gets no task.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use swath::db::jobs::{get_job, insert_jobs};
use swath_job_types::{Job, JobStatus, NewJob};

use support::api::spawn_api;
use support::{drive, token_for_ready};

/// A queued `test_job` reading `input_path` (as if just dispatched), and the token of its attempt.
async fn dispatched(pool: &PgPool, name: &str, input_path: &str) -> (Job, String) {
    let mut new = NewJob::new("test_job", name, 2);
    new.params = json!({"product": "S2B_MSIL1C_20240301T101019_N0510_R022_T32TLR_20240301T120100", "mission": "S2"});
    new.input_path = Some(input_path.into());
    let id = insert_jobs(pool, &[new]).await.unwrap()[0].id;
    let ready = drive(
        pool,
        get_job(pool, id).await.unwrap(),
        &[JobStatus::Configured, JobStatus::Ready],
    )
    .await;
    let token = token_for_ready(pool, &ready).await;
    let job = drive(pool, get_job(pool, id).await.unwrap(), &[JobStatus::Queued]).await;
    (job, token)
}

#[sqlx::test(migrations = "./sql")]
async fn a_job_reading_outside_the_stores_fails_at_task_build_and_no_worker_gets_it(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    for (name, path) in [
        ("host-file", "file:///root"),
        ("dot-dot", "/eodata/../../root"),
        ("encoded-dot-dot", "/eodata/%2e%2e/%2e%2e/root"),
    ] {
        let (job, token) = dispatched(&pool, name, path).await;
        let r = client
            .get(format!(
                "{}/worker/jobs/{}/attempts/1/task",
                api.base, job.id
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert!(body.get("inputs").is_none(), "no task for {path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("{path:?} refused")), "{error}");

        let job = get_job(&pool, job.id).await.unwrap();
        assert_eq!(job.status, JobStatus::InternalError, "{path}");
        assert_eq!(job.status_error_subtype.as_deref(), Some("input"));
        let message = job.status_message.unwrap_or_default();
        assert!(
            message.contains(&format!("{path:?} refused")) && message.contains("input"),
            "{message}"
        );

        // Asked again (a worker retrying a lost answer): still no task.
        let again = client
            .get(format!(
                "{}/worker/jobs/{}/attempts/1/task",
                api.base, job.id
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_ne!(again.status(), StatusCode::OK, "{path}");
    }
}
