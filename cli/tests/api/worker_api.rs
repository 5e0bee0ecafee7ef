//! The worker protocol over HTTP: tokens, fencing by attempt, status and result reports.

use swath_engine::config::Settings;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::{get_job, insert_jobs};

use support::api::spawn_api;
use support::worker_http::{
    self, assert_error, get_task, post, ready_test_job, report, report_steps, reserve, url,
    ALL_STEPS, STEPS_AFTER_START,
};
use support::{bootstrap_for_ready, drive, token_for_ready};

/// Where the jobs of these tests read their input.
const INPUT: &str = "/eodata/test/S2B.SAFE";

/// A queued `test_job` (as if just dispatched) and the token of its attempt.
async fn dispatched(pool: &PgPool, name: &str) -> (Job, String) {
    worker_http::dispatched(pool, name, INPUT).await
}

#[sqlx::test(migrations = "../sql")]
async fn a_worker_fetches_its_task_and_reports_a_whole_attempt(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (job, token) = dispatched(&pool, "whole").await;

    let (code, task) = get_task(&client, &api.base, &job, 1, &token).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(task["job_id"], job.id);
    assert_eq!(task["attempt"], 1);
    // Catalogue paths become URLs of the eodata store, outputs URLs of the output store.
    assert_eq!(task["inputs"][0]["source"], "s3://eodata/test/S2B.SAFE");
    assert_eq!(task["outputs"][0]["kind"], "test_product");
    let output = Settings::default().task_locations().output_url;
    assert_eq!(
        task["outputs"][0]["destination_prefix"],
        format!("{output}/test/{}/", job.uid)
    );
    assert_eq!(task["flavor"], "eo1.xsmall");
    assert_eq!(
        (task["cpus"].as_u64(), task["memory_mb"].as_u64()),
        (Some(1), Some(500))
    );
    assert_eq!(task["uid"], job.uid.to_string());
    assert!(task["exit_codes"]["rules"].as_array().unwrap().len() >= 4);

    for status in ["started", "pre_processing", "processing", "post_processing"] {
        let (code, answer) = post(
            &client,
            &url(&api.base, &job, 1, "status"),
            &token,
            json!({"status": status, "message": format!("now {status}")}),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{status}: {answer}");
        assert_eq!(answer["status"], status);
    }
    let product = product_path(&job, "TEST_V100_1");
    let result = json!({
        "outcome": "success", "return_code": 0, "software_version": "stand-in@sha256:abc",
        "products": [{"kind": "test_product", "path": product, "size_bytes": 1024,
                      "completed_at": "2024-03-01T13:00:00Z", "infos": {"wkt": "POLYGON ((0 0, 1 0, 1 1, 0 0))", "resolution": 20}, "published_at": null}]
    });
    let (code, answer) = reserve(
        &client,
        &api.base,
        &job,
        1,
        &token,
        &[("test_product", &product)],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(answer["products"][0]["identity"], "TEST_V100", "{answer}");
    let (code, answer) = post(&client, &url(&api.base, &job, 1, "result"), &token, result).await;
    assert_eq!(
        (code, answer["status"].as_str()),
        (StatusCode::OK, Some("processed")),
        "{answer}"
    );
    let job = get_job(&pool, job.id).await.unwrap();
    assert_eq!(job.software_version.as_deref(), Some("stand-in@sha256:abc"));
    assert_eq!(job.results.unwrap().products[0].path, product);
    let history: Vec<(JobStatus, Option<String>)> = job_history(&pool, job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.status, h.error_message))
        .collect();
    assert_eq!(
        history[5],
        (JobStatus::PreProcessing, Some("now pre_processing".into()))
    );
    assert_eq!(history.last().unwrap().0, JobStatus::Processed);
}

#[sqlx::test(migrations = "../sql")]
async fn tokens_attempts_and_bodies_are_checked(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (job, token) = dispatched(&pool, "checked").await;
    let (other, other_token) = dispatched(&pool, "other").await;
    let started = json!({"status": "started"});

    let r = client
        .get(url(&api.base, &job, 1, "task"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    let (code, body) = report(&client, &api.base, &job, 1, &other_token, "started").await;
    assert_eq!(
        code,
        StatusCode::UNAUTHORIZED,
        "another job's token: {body}"
    );
    let (code, _) = post(
        &client,
        &format!("{}/worker/jobs/987654/attempts/1/status", api.base),
        &token,
        started.clone(),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // A token opens only its own attempt.
    let (code, body) = report(&client, &api.base, &job, 2, &token, "started").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("attempt 2 of job"),
        "{body}"
    );

    for bad in [
        json!({"status": "done"}),
        json!({"status": "finished"}),
        json!({"state": "started"}),
        json!([1]),
    ] {
        let (code, body) = post(
            &client,
            &url(&api.base, &job, 1, "status"),
            &token,
            bad.clone(),
        )
        .await;
        assert!(code.is_client_error(), "{bad}: {code}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: a message says what is wrong: {body}"
        );
    }
    let r = client
        .post(url(&api.base, &job, 1, "status"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A forbidden transition is a conflict, and the job is untouched.
    let (code, body) = report(&client, &api.base, &job, 1, &token, "processing").await;
    assert_error(code, &body, StatusCode::CONFLICT, "queued -> processing");
    assert_eq!(
        get_job(&pool, job.id).await.unwrap().status,
        JobStatus::Queued
    );
    assert_eq!(
        get_job(&pool, other.id).await.unwrap().status,
        JobStatus::Queued
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_failed_attempt_is_retried_and_its_worker_is_fenced_off(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (job, token) = dispatched(&pool, "retried").await;
    let (code, _) = report(&client, &api.base, &job, 1, &token, "started").await;
    assert_eq!(code, StatusCode::OK);
    let failure = json!({"outcome": "external_error", "error": {"subtype": "storage", "message": "bucket unreachable"}});
    let (code, answer) = post(
        &client,
        &url(&api.base, &job, 1, "result"),
        &token,
        failure.clone(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["status"].as_str(), answer["attempt"].as_i64()),
        (Some("ready"), Some(2))
    );

    // The worker of attempt 1 is now stale: whatever it reports is refused and changes nothing.
    let before = job_history(&pool, job.id).await.unwrap().len();
    for (what, body) in [
        ("status", json!({"status": "processing"})),
        ("result", failure.clone()),
    ] {
        let (code, body) = post(&client, &url(&api.base, &job, 1, what), &token, body).await;
        assert_eq!(code, StatusCode::CONFLICT, "{what}: {body}");
    }
    // Its token does not open attempt 2 either: the next dispatch issues a new one.
    let (code, _) = report(&client, &api.base, &job, 2, &token, "started").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(job_history(&pool, job.id).await.unwrap().len(), before);

    // Attempt 2 (the last: max_attempts = 2) fails with an exit code: the job ends with the reason.
    let token = token_for_ready(&pool, &get_job(&pool, job.id).await.unwrap()).await;
    let job = drive(
        &pool,
        get_job(&pool, job.id).await.unwrap(),
        &[JobStatus::Queued],
    )
    .await;
    report(&client, &api.base, &job, 2, &token, "started").await;
    let (code, answer) = post(
        &client,
        &url(&api.base, &job, 2, "result"),
        &token,
        json!({"outcome": "external_error", "return_code": 150}),
    )
    .await;
    assert_eq!(
        (code, answer["status"].as_str()),
        (StatusCode::OK, Some("internal_error")),
        "{answer}"
    );
    let job = get_job(&pool, job.id).await.unwrap();
    assert!(
        job.status_message
            .as_deref()
            .unwrap()
            .contains("exit code 150"),
        "{:?}",
        job.status_message
    );

    // A result that lies about its products is refused.
    let (other, other_token) = dispatched(&pool, "liar").await;
    report_steps(&client, &api.base, &other, &other_token, &ALL_STEPS).await;
    let (code, body) = post(&client, &url(&api.base, &other, 1, "result"), &other_token,
        json!({"outcome": "success", "products": [{"kind": "fsc", "path": "x", "size_bytes": 1, "completed_at": null, "published_at": null}]})).await;
    // The attempt ends as an internal error naming the product: nothing is kept to publish.
    assert_eq!(
        (code, body["status"].as_str()),
        (StatusCode::OK, Some("internal_error")),
        "{body}"
    );
    let other = get_job(&pool, other.id).await.unwrap();
    assert!(
        other.status_message.as_deref().unwrap().contains("\"fsc\""),
        "{:?}",
        other.status_message
    );
}

/// The path in the output store of a product `id` written under the task's output prefix of job
/// `job` (a `test_job`), as a worker reports it.
fn product_path(job: &Job, id: &str) -> String {
    let output = Settings::default().task_locations().output_url;
    let root = output.strip_prefix("file:///").unwrap();
    format!("{root}/test/{}/{id}", job.uid)
}

/// Reports every step of attempt 1 of `job`, then a success with one `test_product` at `path`;
/// returns the answer to the result.
async fn attempt_with_product(
    client: &reqwest::Client,
    base: &str,
    job: &Job,
    token: &str,
    path: &str,
) -> (StatusCode, Value) {
    report_steps(client, base, job, token, &ALL_STEPS).await;
    // A reservation outside the task is refused (400); the result is checked all the same.
    reserve(client, base, job, 1, token, &[("test_product", path)]).await;
    let product = json!({"kind": "test_product", "path": path, "size_bytes": 1,
        "completed_at": null, "infos": {}, "published_at": null});
    let result = json!({"outcome": "success", "return_code": 0, "products": [product]});
    post(client, &url(base, job, 1, "result"), token, result).await
}

/// A worker reports products where it pleases: outside its task's output prefix (another job's
/// directory, a `..` escape, an absolute path, a sibling whose name only starts like the prefix).
/// Each result ends its attempt as an internal error naming the product and the expected prefix;
/// nothing is stored to publish. A product under the prefix is accepted.
#[sqlx::test(migrations = "../sql")]
async fn a_reported_product_outside_the_tasks_prefix_fails_the_attempt(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let mut n = 0;
    // Each makes the reported path from the job.
    let attacks: [fn(&Job) -> String; 5] = [
        |_| "test/x/TEST_V100_1".to_string(),
        |job| product_path(job, "../../other/TEST_V100_1"),
        |job| format!("/{}", product_path(job, "TEST_V100_1")),
        |job| {
            product_path(job, "TEST_V100_1").replace(&job.uid.to_string(), &format!("{}x", job.uid))
        },
        |job| product_path(job, ""),
    ];
    for attack in &attacks {
        n += 1;
        let (job, token) = dispatched(&pool, &format!("outside-{n}")).await;
        let path = attack(&job);
        let (code, body) = attempt_with_product(&client, &api.base, &job, &token, &path).await;
        assert_eq!(
            (code, body["status"].as_str()),
            (StatusCode::OK, Some("internal_error")),
            "{path}: {body}"
        );
        let job = get_job(&pool, job.id).await.unwrap();
        assert_eq!(job.status, JobStatus::InternalError);
        assert!(job.results.is_none(), "{path}: no product is kept");
        let prefix = product_path(&job, "");
        let message = job.status_message.unwrap();
        assert!(
            message.contains(&format!("{path:?}")) && message.contains(&format!("{prefix:?}")),
            "{path}: the message names the product and the expected prefix: {message}"
        );
    }
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM publications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(published, 0, "nothing is published");

    let (job, token) = dispatched(&pool, "inside").await;
    let path = product_path(&job, "TEST_V100_1");
    let (code, body) = attempt_with_product(&client, &api.base, &job, &token, &path).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (StatusCode::OK, Some("processed")),
        "{body}"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn late_repeated_and_early_reports_are_handled(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();

    // A worker may start before its dispatcher records the dispatch.
    let mut new = NewJob::new("test_job", "early", 3);
    new.params = json!({"product": "x", "mission": null});
    new.input_path = Some("/x".into());
    let id = insert_jobs(&pool, &[new]).await.unwrap()[0].id;
    let ready = drive(
        &pool,
        get_job(&pool, id).await.unwrap(),
        &[JobStatus::Configured, JobStatus::Ready],
    )
    .await;
    let token = token_for_ready(&pool, &ready).await;
    let (code, answer) = report(&client, &api.base, &ready, 1, &token, "started").await;
    assert_eq!(
        (code, answer["status"].as_str()),
        (StatusCode::OK, Some("started")),
        "{answer}"
    );
    let history = job_history(&pool, id).await.unwrap();
    assert_eq!(history[3].status, JobStatus::Queued);
    assert_eq!(
        history[3].error_message.as_deref(),
        Some("dispatch confirmed by the worker's start")
    );

    // The same report again (its answer was lost) is acknowledged and changes nothing.
    let (code, answer) = report(&client, &api.base, &ready, 1, &token, "started").await;
    assert_eq!(
        (code, answer["status"].as_str()),
        (StatusCode::OK, Some("started"))
    );
    assert_eq!(job_history(&pool, id).await.unwrap().len(), history.len());

    // Text that PostgreSQL cannot store is a bad request, not a server error.
    let (code, body) = post(
        &client,
        &url(&api.base, &ready, 1, "status"),
        &token,
        json!({"status": "pre_processing", "message": "a\u{0}b"}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    // Once the attempt succeeded, a late failure report cannot reopen it.
    report_steps(&client, &api.base, &ready, &token, &STEPS_AFTER_START).await;
    let (code, _) = post(
        &client,
        &url(&api.base, &ready, 1, "result"),
        &token,
        json!({"outcome": "no_product", "return_code": 200}),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = post(&client, &url(&api.base, &ready, 1, "result"), &token, json!({"outcome": "external_error", "error": {"subtype": "upload", "message": "could not report"}})).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    let job = get_job(&pool, id).await.unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Processed, 1));
}

#[sqlx::test(migrations = "../sql")]
async fn no_token_is_issued_for_a_job_that_is_no_longer_ready_and_claimed(pool: PgPool) {
    let mut new = NewJob::new("test_job", "cancelled", 3);
    new.params = json!({"product": "x", "mission": null});
    let id = insert_jobs(&pool, &[new]).await.unwrap()[0].id;
    let ready = drive(
        &pool,
        get_job(&pool, id).await.unwrap(),
        &[JobStatus::Configured, JobStatus::Ready],
    )
    .await;
    let owner = uuid::Uuid::new_v4();
    let lease = std::time::Duration::from_secs(60);
    // Not claimed by this owner.
    assert!(
        swath_engine::db::tokens::issue_bootstrap_token(&pool, id, 1, owner, lease)
            .await
            .unwrap()
            .is_none()
    );
    token_for_ready(&pool, &ready).await;
    drive(&pool, ready, &[JobStatus::Cancelled]).await;
    let claimed_by: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT service_id FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        swath_engine::db::tokens::issue_bootstrap_token(&pool, id, 1, claimed_by.unwrap(), lease)
            .await
            .unwrap()
            .is_none(),
        "cancelled"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn concurrent_reports_are_applied_together_each_with_its_own_answer(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for i in 0..8 {
        workers.push(dispatched(&pool, &format!("batched-{i}")).await);
    }
    // Attempt 1 of the stale job failed and attempt 2 started: its worker is late.
    let (stale, stale_token) = dispatched(&pool, "stale").await;
    let (retried, _) = swath_engine::pipeline::retry::record_failure(
        &pool,
        &stale,
        &swath_domain::attempt::AttemptFailure::External {
            subtype: "storage".into(),
            message: "unreachable".into(),
        },
        swath_engine::attempt::failure::AttemptBackoff::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(retried.attempt, 2);
    let stale_history = job_history(&pool, stale.id).await.unwrap().len();

    let reports = workers
        .iter()
        .enumerate()
        .map(|(i, (job, token))| {
            // One worker skips a step: the state machine refuses it, and only it.
            let status = if i == 3 { "processing" } else { "started" };
            (job.clone(), token.clone(), 1, json!({"status": status}))
        })
        .chain([(stale.clone(), stale_token, 1, json!({"status": "started"}))]);
    let answers = futures_util::future::join_all(reports.map(|(job, token, attempt, body)| {
        let (client, base) = (client.clone(), api.base.clone());
        async move { post(&client, &url(&base, &job, attempt, "status"), &token, body).await }
    }))
    .await;
    for (i, (code, answer)) in answers.iter().enumerate() {
        match i {
            3 => {
                assert_eq!(*code, StatusCode::CONFLICT, "{answer}");
                assert!(
                    answer["error"]
                        .as_str()
                        .unwrap()
                        .contains("queued -> processing"),
                    "{answer}"
                );
            }
            8 => {
                assert_eq!(*code, StatusCode::CONFLICT, "{answer}");
                assert!(
                    answer["error"].as_str().unwrap().contains("is stale"),
                    "{answer}"
                );
            }
            _ => assert_eq!(
                (*code, answer["status"].as_str()),
                (StatusCode::OK, Some("started")),
                "{i}: {answer}"
            ),
        }
    }
    assert_eq!(
        get_job(&pool, workers[3].0.id).await.unwrap().status,
        JobStatus::Queued
    );
    assert_eq!(
        job_history(&pool, stale.id).await.unwrap().len(),
        stale_history,
        "a stale report changes nothing"
    );

    // The rest of each attempt, all workers at once.
    for step in ["pre_processing", "processing", "post_processing"] {
        let answers = futures_util::future::join_all(
            workers
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3)
                .map(|(_, (job, token))| {
                    let (client, base) = (client.clone(), api.base.clone());
                    async move { report(&client, &base, job, 1, token, step).await }
                }),
        )
        .await;
        for (code, answer) in answers {
            assert_eq!(
                (code, answer["status"].as_str()),
                (StatusCode::OK, Some(step)),
                "{answer}"
            );
        }
    }
    let results =
        futures_util::future::join_all(workers.iter().enumerate().filter(|(i, _)| *i != 3).map(
            |(_, (job, token))| {
                let (client, base) = (client.clone(), api.base.clone());
                async move {
                    post(
                        &client,
                        &url(&base, job, 1, "result"),
                        token,
                        json!({"outcome": "no_product", "return_code": 200}),
                    )
                    .await
                }
            },
        ))
        .await;
    for (code, answer) in results {
        assert_eq!(
            (code, answer["status"].as_str()),
            (StatusCode::OK, Some("processed")),
            "{answer}"
        );
    }
    for (i, (job, _)) in workers.iter().enumerate().filter(|(i, _)| *i != 3) {
        let statuses: Vec<JobStatus> = job_history(&pool, job.id)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.status)
            .collect();
        assert_eq!(
            statuses[3..],
            [
                JobStatus::Queued,
                JobStatus::Started,
                JobStatus::PreProcessing,
                JobStatus::Processing,
                JobStatus::PostProcessing,
                JobStatus::Processed
            ],
            "job {i}: one history row per change"
        );
    }
}

#[sqlx::test(migrations = "../sql")]
async fn a_worker_the_api_already_knows_is_fenced_like_any_other(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (cancelled, cancelled_token) = dispatched(&pool, "known-cancelled").await;
    let (retried, retried_token) = dispatched(&pool, "known-retried").await;
    let (other, _) = dispatched(&pool, "known-other").await;
    for (job, token) in [(&cancelled, &cancelled_token), (&retried, &retried_token)] {
        let (code, _) = report(&client, &api.base, job, 1, token, "started").await;
        assert_eq!(code, StatusCode::OK);
    }
    // Both attempts are known to the API now; the jobs move on behind its back.
    let cancelled = drive(
        &pool,
        get_job(&pool, cancelled.id).await.unwrap(),
        &[JobStatus::Cancelled],
    )
    .await;
    let retried = drive(
        &pool,
        get_job(&pool, retried.id).await.unwrap(),
        &[JobStatus::ExternalError, JobStatus::Ready],
    )
    .await;
    let before = (
        job_history(&pool, cancelled.id).await.unwrap().len(),
        job_history(&pool, retried.id).await.unwrap().len(),
    );

    let (code, body) = report(
        &client,
        &api.base,
        &cancelled,
        1,
        &cancelled_token,
        "pre_processing",
    )
    .await;
    assert_error(
        code,
        &body,
        StatusCode::CONFLICT,
        "cancelled -> pre_processing",
    );
    for (what, body) in [
        ("status", json!({"status": "pre_processing"})),
        ("status", json!({"status": "started"})),
        ("result", json!({"outcome": "no_product"})),
    ] {
        let (code, body) = post(
            &client,
            &url(&api.base, &retried, 1, what),
            &retried_token,
            body,
        )
        .await;
        assert_eq!(code, StatusCode::CONFLICT, "{what}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("is stale"),
            "{body}"
        );
    }
    // A known token opens only its own attempt of its own job.
    let (code, _) = report(&client, &api.base, &other, 1, &cancelled_token, "started").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (
            job_history(&pool, cancelled.id).await.unwrap().len(),
            job_history(&pool, retried.id).await.unwrap().len(),
        ),
        before,
        "refused reports change nothing"
    );
    assert_eq!(
        get_job(&pool, other.id).await.unwrap().status,
        JobStatus::Queued
    );
}

/// A `test_job` taken to `ready` and the bootstrap secret its dispatch hands to the worker.
async fn ready_with_bootstrap(pool: &PgPool, name: &str) -> (Job, String) {
    let ready = ready_test_job(pool, name, INPUT).await;
    let bootstrap = bootstrap_for_ready(pool, &ready).await;
    (ready, bootstrap)
}

async fn exchange(
    client: &reqwest::Client,
    base: &str,
    job: &Job,
    attempt: i32,
    bootstrap: &str,
    token: &str,
) -> (StatusCode, Value) {
    post(
        client,
        &url(base, job, attempt, "token"),
        bootstrap,
        json!({ "token": token }),
    )
    .await
}

/// Exchanges `bootstrap` for a new random attempt token.
async fn exchange_fresh(
    client: &reqwest::Client,
    base: &str,
    job: &Job,
    attempt: i32,
    bootstrap: &str,
) -> (StatusCode, Value) {
    let token = swath_engine::db::tokens::new_token();
    exchange(client, base, job, attempt, bootstrap, &token).await
}

/// The dispatch hands the worker a bootstrap secret (on Nomad, the payload anyone allowed to read
/// the job can read): it opens nothing but one exchange for the attempt token the worker chose, and
/// once exchanged it is void. Replaying it, on the exchange or any other endpoint, answers 401.
#[sqlx::test(migrations = "../sql")]
async fn a_bootstrap_secret_is_exchanged_once_then_opens_nothing(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (job, bootstrap) = ready_with_bootstrap(&pool, "bootstrap").await;
    // The bootstrap secret is not an attempt token.
    assert_eq!(
        get_task(&client, &api.base, &job, 1, &bootstrap).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Bad exchanges change nothing.
    let (code, body) = exchange(&client, &api.base, &job, 1, &bootstrap, "short").await;
    assert_error(code, &body, StatusCode::BAD_REQUEST, "token:");
    let (code, body) = exchange(&client, &api.base, &job, 1, &bootstrap, &bootstrap).await;
    assert_error(code, &body, StatusCode::BAD_REQUEST, "must differ");
    let unknown = swath_engine::db::tokens::new_token();
    let (code, body) = exchange_fresh(&client, &api.base, &job, 1, &unknown).await;
    assert_error(
        code,
        &body,
        StatusCode::UNAUTHORIZED,
        "not valid for attempt 1",
    );
    assert_eq!(body["superseded"], Value::Null, "{body}");
    let (code, _) = exchange_fresh(&client, &api.base, &job, 2, &bootstrap).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "issued for attempt 1 only");
    let missing = Job {
        id: 999_999,
        ..job.clone()
    };
    let (code, _) = exchange_fresh(&client, &api.base, &missing, 1, &bootstrap).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // The exchange.
    let token = swath_engine::db::tokens::new_token();
    let (code, body) = exchange(&client, &api.base, &job, 1, &bootstrap, &token).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        (body["job_id"].as_i64(), body["attempt"].as_i64()),
        (Some(job.id), Some(1))
    );
    assert_eq!(
        get_task(&client, &api.base, &job, 1, &token).await.0,
        StatusCode::OK
    );
    let (code, body) = report(&client, &api.base, &job, 1, &token, "started").await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // Replays of the bootstrap secret: 401 everywhere.
    let (code, body) = exchange_fresh(&client, &api.base, &job, 1, &bootstrap).await;
    assert_error(code, &body, StatusCode::UNAUTHORIZED, "already exchanged");
    assert_eq!(body["superseded"], true, "{body}");
    assert_eq!(
        get_task(&client, &api.base, &job, 1, &bootstrap).await.0,
        StatusCode::UNAUTHORIZED
    );
    for (what, report) in [
        ("status", json!({"status": "pre_processing"})),
        (
            "result",
            json!({"outcome": "internal_error", "return_code": 1}),
        ),
    ] {
        let (code, body) = post(&client, &url(&api.base, &job, 1, what), &bootstrap, report).await;
        assert_error(
            code,
            &body,
            StatusCode::UNAUTHORIZED,
            "not valid for attempt 1",
        );
    }
    // The same exchange sent again (its answer was lost) succeeds and gives nothing new.
    let (code, body) = exchange(&client, &api.base, &job, 1, &bootstrap, &token).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let job = get_job(&pool, job.id).await.unwrap();
    assert_eq!(
        job.status,
        JobStatus::Started,
        "the replays changed nothing"
    );

    // Only digests are stored.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT sha256 FROM worker_bootstrap_tokens UNION ALL SELECT attempt_sha256 FROM worker_bootstrap_tokens UNION ALL SELECT sha256 FROM attempt_tokens",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 3);
    for secret in [&bootstrap, &token] {
        assert!(stored.iter().all(|s| s.as_slice() != secret.as_bytes()));
    }
}

/// Two runs of one attempt exchange its bootstrap secret at the same time (a replay racing the
/// worker, or Nomad restarting the task): exactly one gets an attempt token. A second secret of the
/// same attempt (a dispatch repeated after a crash) cannot be exchanged after the first.
#[sqlx::test(migrations = "../sql")]
async fn concurrent_exchanges_give_one_attempt_token(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (job, bootstrap) = ready_with_bootstrap(&pool, "raced").await;
    let tokens: Vec<String> = (0..8)
        .map(|_| swath_engine::db::tokens::new_token())
        .collect();
    let answers = futures_util::future::join_all(
        tokens
            .iter()
            .map(|t| exchange(&client, &api.base, &job, 1, &bootstrap, t)),
    )
    .await;
    let winners: Vec<&String> = tokens
        .iter()
        .zip(&answers)
        .filter(|(_, (code, _))| *code == StatusCode::OK)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (token, (code, body)) in tokens.iter().zip(&answers) {
        if token != winners[0] {
            assert_eq!(
                (*code, body["superseded"].as_bool()),
                (StatusCode::UNAUTHORIZED, Some(true)),
                "{body}"
            );
            assert_eq!(
                get_task(&client, &api.base, &job, 1, token).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
    }
    assert_eq!(
        get_task(&client, &api.base, &job, 1, winners[0]).await.0,
        StatusCode::OK
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM attempt_tokens WHERE job_id = $1")
        .bind(job.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "one attempt token for the attempt");

    // A second bootstrap secret of the same attempt.
    let again = bootstrap_for_ready(&pool, &job).await;
    let (code, body) = exchange_fresh(&client, &api.base, &job, 1, &again).await;
    assert_error(code, &body, StatusCode::UNAUTHORIZED, "already exchanged");
}

/// An attempt token opens its attempt only: after a retry, the token of attempt 1 is refused for
/// attempt 2, and attempt 1's secrets cannot be exchanged any more.
#[sqlx::test(migrations = "../sql")]
async fn an_attempt_token_is_refused_for_the_next_attempt(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (job, bootstrap) = ready_with_bootstrap(&pool, "retried").await;
    let first = swath_engine::db::tokens::new_token();
    let (code, body) = exchange(&client, &api.base, &job, 1, &bootstrap, &first).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let unused = bootstrap_for_ready(&pool, &job).await;
    let job = drive(
        &pool,
        get_job(&pool, job.id).await.unwrap(),
        &[
            JobStatus::Queued,
            JobStatus::Started,
            JobStatus::ExternalError,
            JobStatus::Ready,
        ],
    )
    .await;
    assert_eq!(job.attempt, 2);
    let second_bootstrap = bootstrap_for_ready(&pool, &job).await;
    assert_eq!(
        get_task(&client, &api.base, &job, 2, &first).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (code, body) = report(&client, &api.base, &job, 2, &first, "started").await;
    assert_error(
        code,
        &body,
        StatusCode::UNAUTHORIZED,
        "not valid for attempt 2",
    );
    // Attempt 1's token still names its own attempt, which is stale.
    assert_eq!(
        get_task(&client, &api.base, &job, 1, &first).await.0,
        StatusCode::CONFLICT
    );
    // Attempt 1's secrets: not valid for attempt 2, stale for attempt 1.
    let (code, _) = exchange_fresh(&client, &api.base, &job, 2, &unused).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, body) = exchange_fresh(&client, &api.base, &job, 1, &unused).await;
    assert_error(code, &body, StatusCode::CONFLICT, "stale");
    // Attempt 2's own secret works.
    let second = swath_engine::db::tokens::new_token();
    let (code, body) = exchange(&client, &api.base, &job, 2, &second_bootstrap, &second).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        get_task(&client, &api.base, &job, 2, &second).await.0,
        StatusCode::OK
    );
}

/// Nomad restarts a worker's task after the first run exchanged the bootstrap secret: the second
/// run, given the same secret, cannot get a token. It stops at once as superseded (exit 0, with a
/// log line saying why), touching nothing, instead of trying again.
#[sqlx::test(migrations = "../sql")]
async fn a_second_run_of_an_attempt_exits_as_superseded(pool: PgPool) {
    let worker = support::worker_world::worker_binary();
    let api = spawn_api(&pool).await;
    let client = reqwest::Client::new();
    let (job, bootstrap) = ready_with_bootstrap(&pool, "restarted").await;
    // The first run.
    let first = swath_engine::db::tokens::new_token();
    let (code, body) = exchange(&client, &api.base, &job, 1, &bootstrap, &first).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = report(&client, &api.base, &job, 1, &first, "started").await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // The second run, with the same dispatch payload.
    let work = tempfile::tempdir().unwrap();
    let orchestrator = api.base.trim_end_matches("/api/v1").to_string();
    let run = tokio::process::Command::new(&worker)
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SWATH_WORKER_JOB_ID", job.id.to_string())
        .env("SWATH_WORKER_ATTEMPT", "1")
        .env("SWATH_WORKER_TOKEN", &bootstrap)
        .env("SWATH_WORKER_ORCHESTRATOR_URL", &orchestrator)
        .env("SWATH_WORKER_WORK_ROOT", work.path())
        .env("SWATH_WORKER_RUNTIME", "process")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the second run stops")
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{logs}");
    assert!(logs.contains("superseded"), "{logs}");
    assert!(logs.contains("already exchanged"), "{logs}");
    let after = get_job(&pool, job.id).await.unwrap();
    assert_eq!(
        (after.status, after.attempt),
        (JobStatus::Started, 1),
        "the second run changed nothing"
    );
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "no work directory was made"
    );
    // The first run goes on with its token.
    assert_eq!(
        get_task(&client, &api.base, &job, 1, &first).await.0,
        StatusCode::OK
    );
}

/// The dispatcher starts a worker before it records `ready -> queued`: a worker may read its job
/// `ready` when it asks for its task, and the dispatch be recorded before the refusal of a task
/// that cannot be built. The refusal must still fail the job with its reason (not leave it queued
/// for the tracking to see a worker that exited 0 without a result). The dispatch is held here by
/// a transaction that has changed the job's row and not committed yet.
#[sqlx::test(migrations = "../sql")]
async fn a_task_refused_while_the_dispatch_is_recorded_fails_the_job_with_the_reason(pool: PgPool) {
    use std::time::{Duration, Instant};
    let api = spawn_api(&pool).await;
    let ready = ready_test_job(&pool, "racing", INPUT).await;
    sqlx::query("UPDATE jobs SET params = '{\"mission\": \"S2\"}' WHERE id = $1")
        .bind(ready.id)
        .execute(&pool)
        .await
        .unwrap();
    let ready = get_job(&pool, ready.id).await.unwrap();
    let token = token_for_ready(&pool, &ready).await;

    let mut dispatch = pool.begin().await.unwrap();
    swath_engine::db::status::change_status(
        &mut dispatch,
        &swath_engine::db::status::StatusChange::of(&ready, JobStatus::Queued),
    )
    .await
    .unwrap();
    let asked = {
        let (base, job, token) = (api.base.clone(), ready.clone(), token.clone());
        tokio::spawn(async move { get_task(&reqwest::Client::new(), &base, &job, 1, &token).await })
    };
    // The API read the job `ready` and waits for the row to record its refusal.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refusal never waited for the dispatch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dispatch.commit().await.unwrap();

    let (code, body) = asked.await.unwrap();
    let job = get_job(&pool, ready.id).await.unwrap();
    assert_eq!(
        (job.status, job.status_error_subtype.as_deref()),
        (JobStatus::InternalError, Some("params")),
        "{code} {body}"
    );
    let message = job.status_message.unwrap_or_default();
    assert!(
        message.starts_with(&format!("no task for job {}: ", ready.id))
            && message.contains("missing field `product`"),
        "{message}"
    );
    assert_error(code, &body, StatusCode::CONFLICT, &message);
}
