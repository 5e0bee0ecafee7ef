//! The operator API, endpoint by endpoint: listing and showing jobs, cancelling them (propagated to
//! the executor), creating children, the probes and the description; with auth failures, malformed
//! requests and unknown ids. Every answer is checked against the API's OpenAPI description
//! (`support::operator`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::JobStatus;
use swath_engine::config::{Secret, Settings};
use swath_engine::executor::{AttemptOutcome, DispatchRequest, Executor, ExecutorError};

use support::operator::{move_to, reload, settings, test_job, Body, Operator, READ, WRITE};
use JobStatus::*;

/// An executor that records the attempts it is asked to stop.
#[derive(Default)]
struct Recorder {
    stopped: Mutex<Vec<String>>,
}

#[async_trait]
impl Executor for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    async fn capacity(&self) -> Result<BTreeMap<String, usize>, ExecutorError> {
        Ok(BTreeMap::new())
    }
    async fn dispatch(&self, _: &DispatchRequest) -> Result<String, ExecutorError> {
        Err(ExecutorError::Refused("not in these tests".into()))
    }
    async fn outcome(&self, _: &str) -> Result<AttemptOutcome, ExecutorError> {
        Ok(AttemptOutcome::Running)
    }
    async fn stop(&self, reference: &str) -> Result<(), ExecutorError> {
        self.stopped.lock().unwrap().push(reference.to_string());
        Ok(())
    }
}

fn ids(answer: &support::operator::Answer) -> Vec<i64> {
    answer.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

#[sqlx::test(migrations = "../sql")]
async fn probes_and_the_description_are_open(pool: PgPool) {
    let op = Operator::start(
        &pool,
        &Settings {
            api_read_token: Some(Secret::new(READ)),
            ..settings()
        },
        None,
    )
    .await;
    assert_eq!(op.get("/health").await.body, json!({"status": "ok"}));
    assert_eq!(op.get("/ready").await.body, json!({"status": "ready"}));
    let doc = op.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body, *support::openapi::swath().document());
}

#[sqlx::test(migrations = "../sql")]
async fn readiness_fails_without_the_database(pool: PgPool) {
    let lost = sqlx::postgres::PgPoolOptions::new()
        .connect(&support::database_url(&pool))
        .await
        .unwrap();
    let op = Operator::start(&lost, &settings(), None).await;
    lost.close().await;
    let answer = op.get("/ready").await;
    assert_eq!(answer.status, 503);
    assert!(
        answer.error().starts_with("not ready"),
        "{}",
        answer.error()
    );
    assert_eq!(op.get("/health").await.status, 200);
}

#[sqlx::test(migrations = "../sql")]
async fn jobs_are_listed_with_filters_and_a_stable_cursor(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(test_job(&pool, &format!("job-{i}"), None, None).await);
    }
    move_to(&pool, made[1].clone(), Ready).await;
    move_to(&pool, made[2].clone(), Done).await;
    let child = test_job(&pool, "child", Some(made[0].id), None).await;
    sqlx::query(
        "UPDATE jobs SET tile_id = '31UFS', measured_at = '2022-01-01T00:00:00Z' WHERE id = $1",
    )
    .bind(made[3].id)
    .execute(&pool)
    .await
    .unwrap();

    let all = op.get("/jobs").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["jobs"].as_array().unwrap().len(), 8);
    assert_eq!(all.body["next_cursor"], Value::Null);
    assert_eq!(ids(&all)[0], child.id, "newest first");

    // Pages of 3 go through every job once, in order.
    let mut seen = Vec::new();
    let mut path = "/jobs?limit=3".to_string();
    loop {
        let page = op.get(&path).await;
        assert!(page.body["jobs"].as_array().unwrap().len() <= 3);
        seen.extend(ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/jobs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));

    let by = |q: &str| {
        let op = &op;
        let q = q.to_string();
        async move { ids(&op.get(&format!("/jobs?{q}")).await) }
    };
    assert_eq!(by("status=ready").await, vec![made[1].id]);
    assert_eq!(by("status=done,ready").await, vec![made[2].id, made[1].id]);
    assert_eq!(
        by("status=done&status=ready").await,
        vec![made[2].id, made[1].id]
    );
    assert_eq!(by("tile=T31UFS").await, vec![made[3].id]);
    assert_eq!(by(&format!("parent={}", made[0].id)).await, vec![child.id]);
    assert_eq!(by("type=test_job&limit=1").await.len(), 1);
    assert_eq!(by("type=fsc_rlie").await.len(), 0);
    assert_eq!(
        by("measured_after=2021-12-31T00:00:00Z&measured_before=2022-01-02T00:00:00%2B00:00").await,
        vec![made[3].id]
    );
    assert_eq!(by("created_after=2000-01-01T00:00:00Z").await.len(), 8);
    assert_eq!(by("created_before=2000-01-01T00:00:00Z").await.len(), 0);
}

#[sqlx::test(migrations = "../sql")]
async fn bad_list_queries_name_the_parameter(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    for (query, expected) in [
        ("status=finished", "status: unknown status \"finished\""),
        ("status=12", "status: unknown status \"12\""),
        ("type=snow", "type: unknown job type \"snow\""),
        ("tile=32-TLR", "tile: \"32-TLR\" is not a tile id"),
        ("parent=abc", "parent: \"abc\" is not a job id"),
        ("parent=-3", "parent: \"-3\" is not a job id"),
        ("limit=0", "limit: \"0\" is not a number from 1 to 1000"),
        ("limit=1001", "limit:"),
        ("cursor=xyz", "cursor: not a cursor this API gave"),
        (
            "created_after=yesterday",
            "created_after: \"yesterday\" is not an RFC 3339 date-time",
        ),
        (
            "measured_before=0000-01-01T00:00:00Z",
            "measured_before: the year must be between",
        ),
        (
            "created_after=2022-01-02T00:00:00Z&created_before=2022-01-01T00:00:00Z",
            "created_after must be before created_before",
        ),
        ("type=test_job&type=fsc_rlie", "type: given more than once"),
        ("colour=red", "unknown query parameter \"colour\""),
        ("campaign=0", "campaign: \"0\" is not a campaign id"),
        ("campaign=x", "campaign: \"x\" is not a campaign id"),
        (
            "changed_after=soon",
            "changed_after: \"soon\" is not an RFC 3339 date-time",
        ),
        ("campaign=1&campaign=2", "campaign: given more than once"),
        ("tile=%00", "tile: NUL characters are not allowed"),
    ] {
        let answer = op.get(&format!("/jobs?{query}")).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert!(
            answer.error().starts_with(expected) || answer.error().contains(expected),
            "{query}: {}",
            answer.error()
        );
    }
}

#[sqlx::test(migrations = "../sql")]
async fn a_job_is_shown_with_everything_about_it(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let parent = test_job(&pool, "parent", None, None).await;
    let child = test_job(&pool, "child", Some(parent.id), None).await;
    let preview = test_job(&pool, "preview", None, Some(parent.id)).await;
    // Two attempts: an external error, then a success with a product, published.
    let job = move_to(&pool, parent, Processing).await;
    let job = swath_engine::db::status::change_status_on(
        &pool,
        &swath_engine::db::status::StatusChange::of(&job, ExternalError)
            .error("exit code 2", "storage down"),
    )
    .await
    .unwrap();
    let job = swath_engine::db::status::change_status_on(
        &pool,
        &swath_engine::db::status::StatusChange::of(&job, Ready).next_attempt(None),
    )
    .await
    .unwrap();
    let job = move_to(&pool, job, PostProcessing).await;
    let results = json!({"return_code": 0, "outcome": "success", "products": [{"kind": "test_product",
        "path": "TEST/2021/04/13/TEST_20210413T101021_S2B_T32TLR_V100_1", "size_bytes": 3, "completed_at": "2021-04-13T12:00:00Z",
        "infos": {"wkt": "POLYGON((0 0,1 0,1 1,0 0))", "resolution": 20}, "published_at": null}]});
    swath_engine::db::status::change_status_on(
        &pool,
        &swath_engine::db::status::StatusChange::of(&job, Processed).results(results, None),
    )
    .await
    .unwrap();
    let registry = Settings::default().registry().unwrap();
    swath_engine::db::publications::start_publications(&pool, &registry, &Default::default(), 10)
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM publications")
        .fetch_all(&pool)
        .await
        .unwrap();
    swath_engine::db::publications::confirm(&pool, &ids, chrono::Utc::now())
        .await
        .unwrap();

    let shown = op.get(&format!("/jobs/{}", job.id)).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let body = &shown.body;
    assert_eq!(
        body["job"]["status"], "published",
        "waiting for its child: {body:#}"
    );
    assert_eq!(body["waiting_for_children"], true);
    assert_eq!(body["blocking_child"]["id"], child.id);
    assert_eq!(body["children"][0]["id"], child.id);
    assert_eq!(body["spawned"][0]["id"], preview.id);
    assert_eq!(body["retry_count"], 0);
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["errors"][0]["subtype"], "exit code 2");
    assert_eq!(attempts[0]["errors"][0]["message"], "storage down");
    assert_eq!(attempts[1]["last_status"], "published");
    assert_eq!(
        body["outputs"][0]["path"],
        "TEST/2021/04/13/TEST_20210413T101021_S2B_T32TLR_V100_1"
    );
    assert_eq!(
        body["publications"][0]["product_id"],
        "TEST_20210413T101021_S2B_T32TLR_V100_1"
    );
    assert!(body["publications"][0]["confirmed_at"].is_string());
    assert!(body["history"].as_array().unwrap().len() >= 12);

    let missing = op.get("/jobs/424242").await;
    assert_eq!(
        (missing.status, missing.error()),
        (404, "job 424242 not found")
    );
    assert_eq!(op.get("/jobs/-1").await.status, 404);
    let bad = op.get("/jobs/seven").await;
    assert_eq!(bad.status, 400);
    assert!(bad.error().starts_with("path:"), "{}", bad.error());
    assert_eq!(op.get("/jobs/99999999999999999999").await.status, 400);
}

#[sqlx::test(migrations = "../sql")]
async fn reads_need_a_token_only_when_one_is_configured(pool: PgPool) {
    let job = test_job(&pool, "a", None, None).await;
    let closed = Operator::start(
        &pool,
        &Settings {
            api_read_token: Some(Secret::new(READ)),
            ..settings()
        },
        None,
    )
    .await;
    for path in ["/jobs".to_string(), format!("/jobs/{}", job.id)] {
        let none = closed.get(&path).await;
        assert_eq!(none.status, 401, "{path}");
        assert_eq!(none.headers["www-authenticate"], "Bearer realm=\"swath\"");
        let wrong = closed
            .call(
                Method::GET,
                &path,
                Some("wrong-token-0123456789"),
                Body::Empty,
            )
            .await;
        assert_eq!(wrong.status, 401);
        for token in [READ, WRITE] {
            let ok = closed
                .call(Method::GET, &path, Some(token), Body::Empty)
                .await;
            assert_eq!(ok.status, 200, "{path} with {token}");
        }
    }
    let read_writes = closed
        .call(
            Method::POST,
            &format!("/jobs/{}/cancel", job.id),
            Some(READ),
            Body::Empty,
        )
        .await;
    assert_eq!(read_writes.status, 403);
    assert_eq!(read_writes.error(), "the read token does not allow writes");
    // Without a read token, reads are open.
    let open = Operator::with_write_token(&pool).await;
    assert_eq!(open.get("/jobs").await.status, 200);
}

#[sqlx::test(migrations = "../sql")]
async fn cancelling_records_and_stops_the_attempt(pool: PgPool) {
    let recorder = Arc::new(Recorder::default());
    let op = Operator::start(
        &pool,
        &settings(),
        Some(recorder.clone() as Arc<dyn Executor>),
    )
    .await;

    let waiting = test_job(&pool, "waiting", None, None).await;
    let answer = op
        .post(
            &format!("/jobs/{}/cancel", waiting.id),
            &json!({"reason": "not needed"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["job"]["status"], "cancelled");
    assert_eq!(answer.body["attempt"], json!({"stop": "not_dispatched"}));
    assert_eq!(
        reload(&pool, waiting.id).await.status_message.as_deref(),
        Some("cancelled through the API: not needed")
    );

    let running = move_to(&pool, test_job(&pool, "running", None, None).await, Queued).await;
    sqlx::query("UPDATE jobs SET executor_ref = 'recorder/abc-1' WHERE id = $1")
        .bind(running.id)
        .execute(&pool)
        .await
        .unwrap();
    move_to(&pool, reload(&pool, running.id).await, Processing).await;
    let answer = op.post_empty(&format!("/jobs/{}/cancel", running.id)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["attempt"],
        json!({"stop": "requested", "reference": "recorder/abc-1"})
    );
    assert_eq!(
        *recorder.stopped.lock().unwrap(),
        vec!["recorder/abc-1".to_string()]
    );
    assert_eq!(reload(&pool, running.id).await.status, Cancelled);

    // Without an executor, the answer says the worker ends at its next report.
    let bare = Operator::with_write_token(&pool).await;
    let other = move_to(&pool, test_job(&pool, "other", None, None).await, Queued).await;
    sqlx::query("UPDATE jobs SET executor_ref = 'local/x-1' WHERE id = $1")
        .bind(other.id)
        .execute(&pool)
        .await
        .unwrap();
    let answer = bare.post_empty(&format!("/jobs/{}/cancel", other.id)).await;
    assert_eq!(answer.body["attempt"]["stop"], "no_executor");
}

#[sqlx::test(migrations = "../sql")]
async fn illegal_cancels_are_refused(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    for (name, status) in [
        ("done", Done),
        ("failed", InternalError),
        ("cancelled", Cancelled),
        ("published", Published),
    ] {
        let job = move_to(&pool, test_job(&pool, name, None, None).await, status).await;
        let answer = op.post_empty(&format!("/jobs/{}/cancel", job.id)).await;
        assert_eq!(answer.status, 409, "{name}: {}", answer.body);
        assert!(
            answer
                .error()
                .starts_with(&format!("job {} is {status}", job.id)),
            "{}",
            answer.error()
        );
        assert_eq!(reload(&pool, job.id).await.status, status, "unchanged");
    }
    // A parent whose own work is complete and that waits for its children.
    let parent = move_to(
        &pool,
        test_job(&pool, "waiting", None, None).await,
        Processed,
    )
    .await;
    test_job(&pool, "its-child", Some(parent.id), None).await;
    let parent = swath_engine::db::status::change_status_on(
        &pool,
        &swath_engine::db::status::StatusChange::of(&parent, Done).message("no product to publish"),
    )
    .await
    .unwrap();
    assert_eq!(parent.status, Processed, "held");
    let answer = op.post_empty(&format!("/jobs/{}/cancel", parent.id)).await;
    assert_eq!(answer.status, 409);
    assert!(
        answer.error().contains("waits for its attached children"),
        "{}",
        answer.error()
    );
    let answer = op.post_empty("/jobs/777777/cancel").await;
    assert_eq!(
        (answer.status, answer.error()),
        (404, "job 777777 not found")
    );
    let job = test_job(&pool, "x", None, None).await;
    let path = format!("/jobs/{}/cancel", job.id);
    for (body, status, expected) in [
        (Body::Raw("application/json", b"{\"reason\": "), 400, "EOF"),
        (
            Body::Raw("application/json", b"{\"why\": \"x\"}"),
            400,
            "unknown field `why`",
        ),
        (
            Body::Raw("application/json", b"{\"reason\": 3}"),
            400,
            "reason",
        ),
        (Body::Raw("text/plain", b"please"), 415, "must be JSON"),
        (
            Body::Json(&json!({"reason": "a\u{0}b"})),
            400,
            "reason: NUL",
        ),
    ] {
        let answer = op.call(Method::POST, &path, Some(WRITE), body).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert!(answer.error().contains(expected), "{}", answer.error());
    }
    let unauthenticated = op.call(Method::POST, &path, None, Body::Empty).await;
    assert_eq!(unauthenticated.status, 401);
    let disabled = Operator::start(&pool, &Settings::default(), None).await;
    assert_eq!(
        disabled
            .call(Method::POST, &path, Some(WRITE), Body::Empty)
            .await
            .status,
        403
    );
    assert_eq!(
        reload(&pool, job.id).await.status,
        Initialized,
        "nothing was cancelled"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn children_are_created_attached_or_best_effort(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let parent = test_job(&pool, "parent", None, None).await;
    sqlx::query("UPDATE jobs SET priority = 'delayed' WHERE id = $1")
        .bind(parent.id)
        .execute(&pool)
        .await
        .unwrap();
    let path = format!("/jobs/{}/children", parent.id);
    let answer = op
        .post(
            &path,
            &json!({"job_type": "test_job", "name": "kid", "tile_id": "T32TLR",
            "measured_at": "2021-04-13T10:10:21Z", "params": {"product": "kid", "mission": "S2"}}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let kid = &answer.body["job"];
    assert_eq!(kid["parent_id"], parent.id);
    assert_eq!(kid["spawned_by"], Value::Null);
    assert_eq!(kid["status"], "initialized");
    assert_eq!(
        kid["priority"], "delayed",
        "the parent's priority by default"
    );
    assert_eq!(kid["tile_id"], "32TLR");
    assert_eq!(
        answer.headers["location"],
        format!("/api/v1/jobs/{}", kid["id"]).as_str()
    );

    let answer = op
        .post(
            &path,
            &json!({"job_type": "test_job", "name": "look", "kind": "best_effort",
            "priority": "nrt", "params": {"product": "look", "mission": null}}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["job"]["spawned_by"], parent.id);
    assert_eq!(answer.body["job"]["parent_id"], Value::Null);
    assert_eq!(answer.body["job"]["priority"], "nrt");

    let shown = op.get(&format!("/jobs/{}", parent.id)).await;
    assert_eq!(shown.body["children"].as_array().unwrap().len(), 1);
    assert_eq!(shown.body["spawned"].as_array().unwrap().len(), 1);
    let listed = op.get(&format!("/jobs?parent={}", parent.id)).await;
    assert_eq!(listed.body["jobs"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrations = "../sql")]
async fn bad_children_are_refused_with_the_reason(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let parent = test_job(&pool, "parent", None, None).await;
    let path = format!("/jobs/{}/children", parent.id);
    let ok = json!({"product": "x", "mission": "S2"});
    for (body, status, expected) in [
        (
            json!({"job_type": "snow", "name": "a"}),
            400,
            "job_type: unknown job type \"snow\"",
        ),
        (
            json!({"job_type": "test_job", "name": "has space", "params": ok}),
            400,
            "name: a non-empty name",
        ),
        (
            json!({"job_type": "test_job", "name": "", "params": ok}),
            400,
            "name: a non-empty name",
        ),
        (
            json!({"job_type": "test_job", "name": "x".repeat(256), "params": ok}),
            400,
            "name: at most 255",
        ),
        (
            json!({"job_type": "test_job", "name": "a\u{0}", "params": ok}),
            400,
            "name: NUL",
        ),
        (
            json!({"job_type": "test_job", "name": "a", "params": [1]}),
            400,
            "params: an object is needed",
        ),
        (
            json!({"job_type": "test_job", "name": "a", "params": {"colour": 1}}),
            400,
            "params: unknown field `colour`",
        ),
        (
            json!({"job_type": "test_job", "name": "a", "params": {"product": "a\u{0}", "mission": null}}),
            400,
            "params: NUL",
        ),
        (
            json!({"job_type": "test_job", "name": "a", "params": ok, "kind": "loose"}),
            400,
            "kind",
        ),
        (
            json!({"job_type": "test_job", "name": "a", "params": ok, "tile_id": "no tile"}),
            400,
            "tile_id:",
        ),
        (
            json!({"job_type": "test_job", "name": "a", "params": ok, "measured_at": "+10000-01-01T00:00:00Z"}),
            400,
            "measured_at",
        ),
        (
            json!({"job_type": "test_job", "name": "a", "params": ok, "parent_id": 4}),
            400,
            "unknown field `parent_id`",
        ),
        (json!({"name": "a"}), 400, "missing field `job_type`"),
    ] {
        let answer = op.post(&path, &body).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert!(
            answer.error().contains(expected),
            "{body}: {}",
            answer.error()
        );
    }
    let child = json!({"job_type": "test_job", "name": "kid", "params": ok});
    assert_eq!(op.post(&path, &child).await.status, 201);
    let taken = op.post(&path, &child).await;
    assert_eq!(taken.status, 409);
    assert!(
        taken
            .error()
            .contains("a test_job job named \"kid\" exists already"),
        "{}",
        taken.error()
    );
    assert_eq!(op.post("/jobs/555555/children", &child).await.status, 404);
    let done = move_to(&pool, test_job(&pool, "done", None, None).await, Done).await;
    let refused = op
        .post(
            &format!("/jobs/{}/children", done.id),
            &json!({"job_type": "test_job", "name": "late", "params": ok}),
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(
        refused
            .error()
            .contains("is done: no child can be attached"),
        "{}",
        refused.error()
    );
    let unauthenticated = op.call(Method::POST, &path, None, Body::Json(&child)).await;
    assert_eq!(unauthenticated.status, 401);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        count, 3,
        "only the parent, its child and the done job exist"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn unknown_routes_and_methods_answer_json(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let answer = op.get("/nothing/here").await;
    assert_eq!(
        (answer.status, answer.error()),
        (404, "no route for GET /api/v1/nothing/here")
    );
    let answer = op
        .call(Method::DELETE, "/jobs", Some(WRITE), Body::Empty)
        .await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.error(), "DELETE is not allowed on /api/v1/jobs");
    let answer = op.call(Method::GET, "/retries", None, Body::Empty).await;
    assert_eq!(answer.status, 405);
}

/// `swath jobs cancel` does what the API's cancel does.
#[sqlx::test(migrations = "../sql")]
async fn the_command_line_cancels_a_job(pool: PgPool) {
    let url = support::database_url(&pool);
    let job = move_to(&pool, test_job(&pool, "ready", None, None).await, Ready).await;
    let out = support::swath(
        &[
            "jobs",
            "cancel",
            &job.id.to_string(),
            "--reason",
            "wrong input",
        ],
        Some(&url),
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out)
            .contains(&format!("job {} cancelled; no attempt was running", job.id)),
        "{}",
        support::stdout(&out)
    );
    let job = reload(&pool, job.id).await;
    assert_eq!(job.status, Cancelled);
    assert_eq!(
        job.status_message.as_deref(),
        Some("cancelled from the command line: wrong input")
    );
    let again = support::swath(&["jobs", "cancel", &job.id.to_string()], Some(&url));
    assert_eq!(again.status.code(), Some(1));
    assert!(
        support::stderr(&again).contains("a finished job cannot be cancelled"),
        "{}",
        support::stderr(&again)
    );
    let unknown = support::swath(&["jobs", "cancel", "8888"], Some(&url));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(support::stderr(&unknown).contains("job 8888 not found"));
}

/// Job parameters name files (inputs the worker stages under their name, paths in the output
/// store): a child whose identifiers are absolute, hold `/` or `..`, or name a product of the wrong
/// kind is refused with 400 naming the field, for every job type that takes identifiers.
#[sqlx::test(migrations = "../sql")]
async fn children_with_unsafe_identifiers_are_refused_naming_the_field(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let parent = test_job(&pool, "parent", None, None).await;
    let path = format!("/jobs/{}/children", parent.id);
    let l1c = "S2A_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T121553";
    let fsc = json!({"l1c_id": l1c, "mission": "S2A", "baseline": "N0300", "relative_orbit": 22,
        "discriminator": "2021-04-13T12:15:53Z", "cloud_cover": null, "nrt": true,
        "reprocessing_context": null, "maja_mode": null, "previous_job_id": null,
        "l2a_path_in": null, "l2a_path_out": null});
    let grd = "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A";
    let s1 = json!({"s1grd_id": grd, "mission": "S1A", "absolute_orbit": 37419,
        "relative_orbit": 15, "datatake_id": 289047, "sensing_stop": "2021-04-12T15:11:36Z",
        "s2tile_ids": ["32TLR"], "reprocessing_context": null});
    let check = json!({"source_job_id": parent.id,
        "products": [{"kind": "fsc", "path": "CLMS/FSC/2021/04/13/FSC_20210413T101021_S2A_T32TLR_V100_1"}]});
    let with = |base: &Value, field: &str, value: Value| {
        let mut params = base.clone();
        params[field] = value;
        params
    };
    let mut n = 0;
    let mut refused = |job_type: &'static str, params: Value, expected: &'static str| {
        n += 1;
        (
            json!({"job_type": job_type, "name": format!("bad-{n}"), "params": params}),
            expected,
        )
    };
    let attacks = [
        // The attack of issue 14: the worker staged the input into /tmp/x.
        refused(
            "fsc_rlie",
            with(&fsc, "l1c_id", json!("/tmp/x")),
            "params.l1c_id",
        ),
        refused(
            "fsc_rlie",
            with(&fsc, "l1c_id", json!("a/b")),
            "params.l1c_id",
        ),
        refused(
            "fsc_rlie",
            with(&fsc, "l1c_id", json!("..")),
            "params.l1c_id",
        ),
        refused(
            "fsc_rlie",
            with(&fsc, "l1c_id", json!(format!("/eodata/x/{l1c}"))),
            "params.l1c_id",
        ),
        refused(
            "fsc_rlie",
            with(
                &fsc,
                "l1c_id",
                json!("S2A_MSIL2A_20210413T101021_N0300_R022_T32TLR_20210413T121553"),
            ),
            "params.l1c_id",
        ),
        refused(
            "fsc_rlie",
            with(&fsc, "l1c_id", json!(grd)),
            "params.l1c_id",
        ),
        refused(
            "fsc_rlie",
            with(&fsc, "l2a_path_in", json!("../../etc/passwd")),
            "params.l2a_path_in",
        ),
        refused(
            "fsc_rlie",
            with(&fsc, "l2a_path_in", json!(format!("/32TLR/L2A/{l1c}"))),
            "params.l2a_path_in",
        ),
        refused(
            "fsc_rlie",
            with(&fsc, "l2a_path_out", json!("32TLR/L2A/x")),
            "params.l2a_path_out",
        ),
        refused(
            "rlie_s1",
            with(&s1, "s1grd_id", json!("/tmp/x")),
            "params.s1grd_id",
        ),
        refused(
            "rlie_s1",
            with(&s1, "s1grd_id", json!(l1c)),
            "params.s1grd_id",
        ),
        refused(
            "rlie_s1",
            with(&s1, "s2tile_ids", json!(["32TLR", "../x"])),
            "params.s2tile_ids[1]",
        ),
        refused(
            "test_job",
            json!({"product": "/tmp/x", "mission": null}),
            "params.product",
        ),
        refused(
            "test_job",
            json!({"product": "a/b", "mission": null}),
            "params.product",
        ),
        refused(
            "test_job",
            json!({"product": "..", "mission": null}),
            "params.product",
        ),
        refused(
            "test_job",
            json!({"product": "", "mission": null}),
            "params.product",
        ),
        refused(
            "fsc_rlie_check",
            with(
                &check,
                "products",
                json!([{"kind": "fsc", "path": "/root/secret"}]),
            ),
            "params.products[0].path",
        ),
        refused(
            "fsc_rlie_quicklook",
            with(
                &check,
                "products",
                json!([{"kind": "fsc", "path": "CLMS/../.."}]),
            ),
            "params.products[0].path",
        ),
        (
            json!({"job_type": "test_job", "name": "bad-path", "input_path": "/eodata/../root",
                "params": {"product": "x", "mission": null}}),
            "input_path",
        ),
    ];
    for (body, expected) in &attacks {
        let answer = op.post(&path, body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(
            answer.error().contains(expected),
            "{body}: the error names {expected}: {}",
            answer.error()
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "no child was created");

    // The same job types with good identifiers are accepted.
    let l2a = format!("32TLR/L2A/{l1c}");
    for (job_type, params) in [
        ("fsc_rlie", with(&fsc, "l2a_path_in", json!(l2a))),
        ("rlie_s1", s1),
        ("test_job", json!({"product": "x.SAFE", "mission": null})),
        ("fsc_rlie_check", check),
    ] {
        let body =
            json!({"job_type": job_type, "name": format!("good-{job_type}"), "params": params});
        let answer = op.post(&path, &body).await;
        assert_eq!(answer.status, 201, "{body}: {}", answer.body);
    }
}
