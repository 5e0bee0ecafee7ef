//! Input sources at task build: a job whose stored input lies outside the configured stores (a host
//! path, a `..` escape from the eodata store) fails with the reason when its worker asks for the
//! task, and the worker gets no task.

use reqwest::StatusCode;
use sqlx::PgPool;
use swath_domain::JobStatus;
use swath_engine::db::jobs::get_job;

use support::api::spawn_api;
use support::worker_http::{dispatched, get_task};

#[sqlx::test(migrations = "../sql")]
async fn a_job_reading_outside_the_stores_fails_at_task_build_and_no_worker_gets_it(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    for (name, path) in [
        ("host-file", "file:///root"),
        ("dot-dot", "/eodata/../../root"),
        ("encoded-dot-dot", "/eodata/%2e%2e/%2e%2e/root"),
    ] {
        let (job, token) = dispatched(&pool, name, path).await;
        let (status, body) = get_task(&client, &api.base, &job, 1, &token).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert!(body.get("inputs").is_none(), "no task for {path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("{path:?} refused")), "{error}");

        let stored = get_job(&pool, job.id).await.unwrap();
        assert_eq!(stored.status, JobStatus::InternalError, "{path}");
        assert_eq!(stored.status_error_subtype.as_deref(), Some("input"));
        let message = stored.status_message.unwrap_or_default();
        assert!(
            message.contains(&format!("{path:?} refused")) && message.contains("input"),
            "{message}"
        );

        // Asked again (a worker retrying a lost answer): still no task.
        let (again, _) = get_task(&client, &api.base, &job, 1, &token).await;
        assert_ne!(again, StatusCode::OK, "{path}");
    }
}
