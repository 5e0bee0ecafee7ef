//! Manual retries, through the API (one and in batches), the command line and the database: a new
//! job with the same inputs and pinned software, `retry_of` the original; only terminal failures and
//! cancelled jobs, only the latest of a chain, at most the cap.

use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::{Job, JobStatus};
use swath_engine::config::Settings;
use swath_engine::db::retries::{retry_job, RetryError};

use support::operator::{move_to, reload, settings, test_job, Body, Operator, WRITE};
use JobStatus::*;

/// A `test_job` that ran `version` and failed.
async fn failed(pool: &PgPool, name: &str, version: Option<&str>) -> Job {
    let job = test_job(pool, name, None, None).await;
    sqlx::query("UPDATE jobs SET input_path = $2, priority = 'delayed', software_version = $3 WHERE id = $1")
        .bind(job.id)
        .bind(format!("/eodata/test/{name}"))
        .bind(version)
        .execute(pool)
        .await
        .unwrap();
    let job = move_to(pool, reload(pool, job.id).await, Processing).await;
    move_to(pool, job, InternalError).await
}

#[sqlx::test(migrations = "../sql")]
async fn a_retry_is_a_new_job_with_the_same_inputs_and_software(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let original = failed(&pool, "orig", Some("registry/si@sha256:abc")).await;
    let answer = op.post_empty(&format!("/jobs/{}/retry", original.id)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let retry: Job = serde_json::from_value(answer.body["job"].clone()).unwrap();
    assert_eq!(
        answer.headers["location"],
        format!("/api/v1/jobs/{}", retry.id).as_str()
    );
    assert_eq!(answer.body["original_id"], original.id);
    assert_eq!(answer.body["retry_number"], 1);
    assert_eq!(retry.retry_of, Some(original.id));
    assert_eq!(retry.name, "orig-retry-1");
    assert_ne!(retry.uid, original.uid);
    assert_eq!(retry.status, Initialized, "it is configured again");
    assert_eq!(retry.attempt, 1);
    assert_eq!(
        retry.software_version.as_deref(),
        Some("registry/si@sha256:abc")
    );
    for (a, b) in [
        (&retry.product_id, &original.product_id),
        (&retry.tile_id, &original.tile_id),
        (&retry.input_path, &original.input_path),
    ] {
        assert_eq!(a, b);
    }
    assert_eq!(retry.params, original.params);
    assert_eq!(retry.measured_at, original.measured_at);
    assert_eq!(retry.priority, original.priority);
    assert_eq!(retry.max_attempts, original.max_attempts);

    let shown = op.get(&format!("/jobs/{}", original.id)).await;
    assert_eq!(shown.body["retry_count"], 1);
    assert_eq!(shown.body["retries"][0]["id"], retry.id);
}

#[sqlx::test(migrations = "../sql")]
async fn retrying_a_retry_retries_the_original(pool: PgPool) {
    let original = failed(&pool, "orig", None).await;
    let first = retry_job(&pool, original.id, 5).await.unwrap().job;
    move_to(&pool, first.clone(), InternalError).await;
    let second = retry_job(&pool, first.id, 5).await.unwrap();
    assert_eq!(second.original, original.id);
    assert_eq!(second.n, 2);
    assert_eq!(
        second.job.retry_of,
        Some(original.id),
        "always the original"
    );
    assert_eq!(second.job.name, "orig-retry-2");
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE retry_of = $1")
        .bind(original.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counted, 2);
    // The original can be named again once the latest retry failed, and not before.
    let err = retry_job(&pool, original.id, 5).await.unwrap_err();
    assert!(
        matches!(err, RetryError::AlreadyRetried { retry, status: Initialized, .. } if retry == second.job.id),
        "{err}"
    );
    move_to(&pool, second.job, Cancelled).await;
    let third = retry_job(&pool, original.id, 5).await.unwrap();
    assert_eq!(third.n, 3);
}

#[sqlx::test(migrations = "../sql")]
async fn illegal_retries_get_a_clear_error(pool: PgPool) {
    let op = Operator::start(
        &pool,
        &Settings {
            retry_cap: 1,
            ..settings()
        },
        None,
    )
    .await;
    let running = move_to(
        &pool,
        test_job(&pool, "running", None, None).await,
        Processing,
    )
    .await;
    let answer = op.post_empty(&format!("/jobs/{}/retry", running.id)).await;
    assert_eq!(answer.status, 409);
    assert!(
        answer.error().contains(
            "is processing: only jobs that ended in internal_error or cancelled can be retried"
        ),
        "{}",
        answer.error()
    );
    let done = move_to(&pool, test_job(&pool, "done", None, None).await, Done).await;
    assert_eq!(
        op.post_empty(&format!("/jobs/{}/retry", done.id))
            .await
            .status,
        409
    );

    let answer = op.post_empty("/jobs/987654/retry").await;
    assert_eq!(
        (answer.status, answer.error()),
        (404, "job 987654 not found")
    );
    let answer = op.post_empty("/jobs/abc/retry").await;
    assert_eq!(answer.status, 400);
    assert!(answer.error().starts_with("path:"), "{}", answer.error());

    let cancelled = move_to(
        &pool,
        test_job(&pool, "cancelled", None, None).await,
        Cancelled,
    )
    .await;
    let answer = op
        .post_empty(&format!("/jobs/{}/retry", cancelled.id))
        .await;
    assert_eq!(
        answer.status, 201,
        "cancelled jobs can be retried: {}",
        answer.body
    );
    let retry_id = answer.body["job"]["id"].as_i64().unwrap();
    let answer = op
        .post_empty(&format!("/jobs/{}/retry", cancelled.id))
        .await;
    assert_eq!(answer.status, 409);
    assert!(
        answer
            .error()
            .contains(&format!("its retry {retry_id} is initialized")),
        "{}",
        answer.error()
    );
    move_to(&pool, reload(&pool, retry_id).await, InternalError).await;
    let answer = op.post_empty(&format!("/jobs/{retry_id}/retry")).await;
    assert_eq!(answer.status, 409);
    assert!(
        answer.error().contains("the cap (SWATH_RETRY_CAP)"),
        "{}",
        answer.error()
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_batch_answers_per_id_and_refuses_empty_or_repeated_lists(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let a = failed(&pool, "a", None).await;
    let b = move_to(&pool, test_job(&pool, "b", None, None).await, Ready).await;
    let c = failed(&pool, "c", None).await;
    let jobs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    let answer = op
        .post("/retries", &json!({"ids": [a.id, b.id, 424242, c.id]}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["id"], a.id);
    let retry_a = results[0]["retry_id"].as_i64().expect("a was retried");
    assert_eq!(reload(&pool, retry_a).await.retry_of, Some(a.id));
    assert_eq!(results[1]["status"], 409);
    assert!(results[1]["error"].as_str().unwrap().contains("is ready"));
    assert_eq!(results[2]["status"], 404);
    assert!(results[3]["retry_id"].is_i64());
    assert_eq!(
        (
            answer.body["retried"].clone(),
            answer.body["failed"].clone()
        ),
        (json!(2), json!(2))
    );
    let jobs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        jobs_after,
        jobs_before + 2,
        "one job per retry, no new parent"
    );

    for (body, expected) in [
        (json!({"ids": []}), "ids: at least one job id is needed"),
        (json!({"ids": [a.id, c.id, a.id]}), "given more than once"),
        (json!({"ids": ["x"]}), "ids[0]"),
        (json!({"ids": [1], "parent": 3}), "unknown field `parent`"),
        (json!({}), "missing field `ids`"),
    ] {
        let answer = op.post("/retries", &body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(
            answer.error().contains(expected),
            "{body}: {}",
            answer.error()
        );
    }
    let answer = op
        .call(
            reqwest::Method::POST,
            "/retries",
            Some(WRITE),
            Body::Raw("application/json", b"{\"ids\": [1,"),
        )
        .await;
    assert_eq!(answer.status, 400);
    let answer = op
        .call(
            reqwest::Method::POST,
            "/retries",
            Some(WRITE),
            Body::Raw("text/plain", b"1 2 3"),
        )
        .await;
    assert_eq!(answer.status, 415);
}

#[sqlx::test(migrations = "../sql")]
async fn retries_need_the_write_token(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let job = failed(&pool, "a", None).await;
    let path = format!("/jobs/{}/retry", job.id);
    let none = op
        .call(reqwest::Method::POST, &path, None, Body::Empty)
        .await;
    assert_eq!(none.status, 401);
    assert!(none.headers.contains_key("www-authenticate"));
    let wrong = op
        .call(
            reqwest::Method::POST,
            &path,
            Some("not-the-token-at-all"),
            Body::Empty,
        )
        .await;
    assert_eq!(wrong.status, 401);
    let batch = op
        .call(
            reqwest::Method::POST,
            "/retries",
            None,
            Body::Json(&json!({"ids": [job.id]})),
        )
        .await;
    assert_eq!(batch.status, 401, "credentials are checked before the body");
    let closed = Operator::start(&pool, &Settings::default(), None).await;
    let answer = closed
        .call(reqwest::Method::POST, &path, Some(WRITE), Body::Empty)
        .await;
    assert_eq!(answer.status, 403);
    assert!(
        answer.error().contains("SWATH_API_WRITE_TOKEN"),
        "{}",
        answer.error()
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE retry_of IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was retried");
}

#[sqlx::test(migrations = "../sql")]
async fn concurrent_retries_of_one_job_make_one_retry(pool: PgPool) {
    let job = failed(&pool, "a", None).await;
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { retry_job(&pool, job.id, 10).await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => created += 1,
            Err(RetryError::AlreadyRetried { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1);
}

/// A retry runs what its original ran: its task names the pinned image. A failure's software
/// version is kept for that.
#[sqlx::test(migrations = "../sql")]
async fn a_retry_runs_the_software_its_original_ran(pool: PgPool) {
    let api = support::api::spawn_api(&pool).await;
    let http = reqwest::Client::new();
    let job = move_to(&pool, test_job(&pool, "a", None, None).await, Ready).await;
    let token = support::token_for_ready(&pool, &job).await;
    let job = move_to(&pool, job, Processing).await;
    let failure: Value = json!({"outcome": "internal_error", "return_code": 3, "software_version": "sha256:0123abcd"});
    let answer = http
        .post(format!(
            "{}/worker/jobs/{}/attempts/1/result",
            api.base, job.id
        ))
        .bearer_auth(&token)
        .json(&failure)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let failed = reload(&pool, job.id).await;
    assert_eq!(failed.status, InternalError);
    assert_eq!(failed.software_version.as_deref(), Some("sha256:0123abcd"));

    let retry = retry_job(&pool, job.id, 3).await.unwrap().job;
    sqlx::query("UPDATE jobs SET input_path = '/eodata/x' WHERE id = $1")
        .bind(retry.id)
        .execute(&pool)
        .await
        .unwrap();
    let retry = move_to(&pool, reload(&pool, retry.id).await, Ready).await;
    let token = support::token_for_ready(&pool, &retry).await;
    let task: Value = http
        .get(format!(
            "{}/worker/jobs/{}/attempts/1/task",
            api.base, retry.id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["image"], "sha256:0123abcd", "{task}");
    // Not a retry: the job type's image.
    let other = move_to(&pool, test_job(&pool, "b", None, None).await, Ready).await;
    sqlx::query(
        "UPDATE jobs SET input_path = '/eodata/y', software_version = 'sha256:ffff' WHERE id = $1",
    )
    .bind(other.id)
    .execute(&pool)
    .await
    .unwrap();
    let other = reload(&pool, other.id).await;
    let token = support::token_for_ready(&pool, &other).await;
    let task: Value = http
        .get(format!(
            "{}/worker/jobs/{}/attempts/1/task",
            api.base, other.id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["image"], swath_domain::types::STAND_IN_IMAGE);
}

#[sqlx::test(migrations = "../sql")]
async fn the_command_line_retries_by_id_and_reports_each(pool: PgPool) {
    let url = support::database_url(&pool);
    let a = failed(&pool, "a", None).await;
    let running = move_to(&pool, test_job(&pool, "r", None, None).await, Processing).await;
    let out = support::swath(
        &[
            "jobs",
            "retry",
            &a.id.to_string(),
            &running.id.to_string(),
            "99999",
        ],
        Some(&url),
    );
    let stdout = support::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one failed: {stdout}{}",
        support::stderr(&out)
    );
    assert!(
        stdout.contains(&format!("{}: retried as job", a.id)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{}: error: job {} is processing",
            running.id, running.id
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("99999: error: job 99999 not found"),
        "{stdout}"
    );
    let retried: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE retry_of = $1")
        .bind(a.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(retried, 1);

    let b = failed(&pool, "b", None).await;
    let out = support::swath(&["jobs", "retry", &b.id.to_string()], Some(&url));
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let out = support::swath(&["jobs", "retry", "5", "5"], Some(&url));
    assert_eq!(out.status.code(), Some(2));
    assert!(support::stderr(&out).contains("given more than once"));
    let out = support::swath(&["jobs", "retry"], Some(&url));
    assert_eq!(out.status.code(), Some(2), "an empty list is a usage error");
}
