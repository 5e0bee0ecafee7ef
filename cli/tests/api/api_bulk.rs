//! Bulk operations by filter: `POST /jobs/retry` and `POST /jobs/cancel` (dry runs, the cap, the
//! filters of the list with `changed_after` and `campaign`, auth and malformed bodies), and
//! `swath jobs retry|cancel` by filter. Every answer is checked against the API's OpenAPI
//! description (`support::operator`).

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::config::{Secret, Settings};
use swath_engine::db::jobs::{get_job, insert_jobs};

use support::operator::{move_to, reload, settings, test_job, Body, Operator, READ, WRITE};
use JobStatus::*;

/// A job of `job_type` on `tile` that ended in `internal_error`.
async fn failed(pool: &PgPool, job_type: &str, name: &str, tile: &str) -> Job {
    let mut new = NewJob::new(job_type, name, 3);
    new.product_id = Some(format!("P-{name}"));
    new.tile_id = Some(tile.into());
    new.measured_at = Some("2021-04-13T10:10:21Z".parse().unwrap());
    let inserted = insert_jobs(pool, &[new]).await.expect("insert");
    let job = get_job(pool, inserted[0].id).await.expect("read back");
    move_to(pool, job, InternalError).await
}

/// Every job: (id, status, retry_of), by id.
async fn snapshot(pool: &PgPool) -> Vec<(i64, i16, Option<i64>)> {
    sqlx::query_as("SELECT id, status, retry_of FROM jobs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The retries of job `id`.
async fn retries_of(pool: &PgPool, id: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM jobs WHERE retry_of = $1 ORDER BY id")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}

fn ids_of(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[sqlx::test(migrations = "../sql")]
async fn bulk_retry_retries_exactly_the_matching_jobs_once(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let mut matching = Vec::new();
    for i in 0..3 {
        matching.push(failed(&pool, "test_job", &format!("a{i}"), "32TLR").await);
    }
    let other_tile = failed(&pool, "test_job", "b", "31UFS").await;
    let other_type = failed(&pool, "fsc_rlie", "c", "32TLR").await;
    let running = move_to(
        &pool,
        test_job(&pool, "running", None, None).await,
        Processing,
    )
    .await;
    let newest_first: Vec<i64> = matching.iter().rev().map(|j| j.id).collect();
    let filter = json!({"type": "test_job", "status": ["internal_error"], "tile": "T32TLR"});

    // A dry run counts and shows, and changes nothing.
    let before = snapshot(&pool).await;
    let mut dry = filter.clone();
    dry["dry_run"] = json!(true);
    let answer = op.post("/jobs/retry", &dry).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"count": 3, "capped": false, "ids": newest_first})
    );
    assert_eq!(snapshot(&pool).await, before, "a dry run changes nothing");

    // The real call retries each matching job once, newest first; the others are untouched.
    let answer = op.post("/jobs/retry", &filter).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["count"], 3);
    assert_eq!(answer.body["retried"], 3);
    assert_eq!(answer.body["failed"], 0);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        newest_first
    );
    for (result, &id) in results.iter().zip(&newest_first) {
        let retries = retries_of(&pool, id).await;
        assert_eq!(retries.len(), 1, "job {id}: {retries:?}");
        assert_eq!(result["retry_id"].as_i64(), Some(retries[0]));
        let retry = reload(&pool, retries[0]).await;
        assert_eq!(retry.retry_of, Some(id));
        assert_eq!(retry.status, Initialized);
    }
    for job in [&other_tile, &other_type, &running] {
        assert!(retries_of(&pool, job.id).await.is_empty(), "{}", job.name);
        assert_eq!(reload(&pool, job.id).await.status, job.status);
    }
    assert_eq!(snapshot(&pool).await.len(), before.len() + 3);

    // Again: the same jobs match, each already retried: a 409 each, never a second retry.
    let after_first = snapshot(&pool).await;
    let answer = op.post("/jobs/retry", &filter).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["count"], 3);
    assert_eq!(answer.body["retried"], 0);
    assert_eq!(answer.body["failed"], 3);
    for result in answer.body["results"].as_array().unwrap() {
        assert_eq!(result["status"], 409, "{result}");
        assert!(result.get("retry_id").is_none(), "{result}");
        assert!(
            result["error"]
                .as_str()
                .unwrap()
                .contains("was retried already"),
            "{result}"
        );
    }
    assert_eq!(snapshot(&pool).await, after_first);

    // The filters of the list, with changed_after, reach the same jobs.
    let listed = op
        .get("/jobs?type=test_job&status=internal_error&tile=32TLR&changed_after=2000-01-01T00:00:00Z")
        .await;
    let listed: Vec<i64> = listed.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, newest_first);
}

#[sqlx::test(migrations = "../sql")]
async fn more_jobs_than_the_cap_are_refused_and_counted_by_a_dry_run(pool: PgPool) {
    let op = Operator::start(
        &pool,
        &Settings {
            bulk_max_jobs: 3,
            ..settings()
        },
        None,
    )
    .await;
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(failed(&pool, "test_job", &format!("f{i}"), "32TLR").await);
    }
    let before = snapshot(&pool).await;
    for path in ["/jobs/retry", "/jobs/cancel"] {
        let answer = op.post(path, &json!({"status": ["internal_error"]})).await;
        assert_eq!(answer.status, 409, "{path}: {}", answer.body);
        assert_eq!(
            answer.error(),
            "more than 3 jobs match; at most 3 per call (setting bulk_max_jobs): narrow the filter"
        );
        assert_eq!(snapshot(&pool).await, before, "{path}: nothing changes");

        // The dry run counts up to the cap and one more, and says that it stopped there.
        let answer = op
            .post(
                path,
                &json!({"status": ["internal_error"], "dry_run": true}),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["count"], 4);
        assert_eq!(answer.body["capped"], true);
        let newest: Vec<i64> = jobs.iter().rev().take(4).map(|j| j.id).collect();
        assert_eq!(ids_of(&answer.body["ids"]), newest);
    }
    assert_eq!(snapshot(&pool).await, before);

    // Narrowed to the cap, it goes through.
    // The three oldest: those created before the fourth.
    let fourth: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM jobs WHERE id = $1")
            .bind(jobs[3].id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let oldest_three = fourth.to_rfc3339();
    let answer = op
        .post(
            "/jobs/retry",
            &json!({"status": ["internal_error"], "created_before": oldest_three}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["count"], 3);
    assert_eq!(answer.body["retried"], 3);
}

#[sqlx::test(migrations = "../sql")]
async fn bulk_cancel_by_campaign_and_change_time(pool: PgPool) {
    let op = Operator::start(
        &pool,
        &Settings {
            api_read_token: Some(Secret::new(READ)),
            ..settings()
        },
        None,
    )
    .await;
    let campaign: i64 = sqlx::query_scalar(
        "INSERT INTO campaigns (name, job_type, source, window_from, window_to, max_in_flight)
         VALUES ('winter', 'test_job', 'dir:/samples', '2021-01-01T00:00:00Z', '2021-04-01T00:00:00Z', 5) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let stale = move_to(&pool, test_job(&pool, "stale", None, None).await, Ready).await;
    let ready = move_to(&pool, test_job(&pool, "ready", None, None).await, Ready).await;
    let running = move_to(
        &pool,
        test_job(&pool, "running", None, None).await,
        Processing,
    )
    .await;
    let done = move_to(&pool, test_job(&pool, "done", None, None).await, Done).await;
    let outside = move_to(&pool, test_job(&pool, "outside", None, None).await, Ready).await;
    sqlx::query("UPDATE jobs SET campaign_id = $1 WHERE id = ANY($2)")
        .bind(campaign)
        .bind(vec![stale.id, ready.id, running.id, done.id])
        .execute(&pool)
        .await
        .unwrap();
    // Its status changed long ago (the state machine's triggers, which would see a change, are
    // set aside for this one statement).
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET status_changed_at = '2020-01-01T00:00:00Z' WHERE id = $1")
        .bind(stale.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let since = "2025-01-01T00:00:00Z";
    let filter = json!({"campaign": campaign, "changed_after": since});
    let matching = vec![done.id, running.id, ready.id];

    // The list takes the same filters.
    let listed = op
        .call(
            Method::GET,
            &format!("/jobs?campaign={campaign}&changed_after={since}"),
            Some(READ),
            Body::Empty,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed: Vec<i64> = listed.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, matching);
    let listed = op
        .call(
            Method::GET,
            &format!("/jobs?campaign={campaign}"),
            Some(READ),
            Body::Empty,
        )
        .await;
    assert_eq!(listed.body["jobs"].as_array().unwrap().len(), 4);

    // Writes need the write token.
    let before = snapshot(&pool).await;
    let refused = op
        .call(
            Method::POST,
            "/jobs/cancel",
            Some(READ),
            Body::Json(&filter),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = op
        .call(Method::POST, "/jobs/retry", None, Body::Json(&filter))
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    // Bodies are checked as the list's query is, and need a filter.
    for (body, expected) in [
        (json!({}), "at least one filter is needed"),
        (json!({"dry_run": true}), "at least one filter is needed"),
        (
            json!({"campaign": campaign, "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"status": ["finished"]}),
            "status: unknown status \"finished\"",
        ),
        (
            json!({"status": []}),
            "status: at least one status name is needed",
        ),
        (json!({"type": "snow"}), "type: unknown job type \"snow\""),
        (
            json!({"tile": "32-TLR"}),
            "tile: \"32-TLR\" is not a tile id",
        ),
        (json!({"parent": -3}), "parent: \"-3\" is not a job id"),
        (
            json!({"campaign": 0}),
            "campaign: \"0\" is not a campaign id",
        ),
        (
            json!({"changed_after": "yesterday"}),
            "changed_after: \"yesterday\" is not an RFC 3339 date-time",
        ),
        (
            json!({"created_after": "2022-01-02T00:00:00Z", "created_before": "2022-01-01T00:00:00Z"}),
            "created_after must be before created_before",
        ),
        (json!({"campaign": "one"}), "campaign: invalid type"),
        (
            json!({"tile": "a\u{0}b"}),
            "tile: NUL characters are not allowed",
        ),
    ] {
        let answer = op.post("/jobs/cancel", &body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(
            answer.error().contains(expected),
            "{body}: {}",
            answer.error()
        );
    }
    let answer = op
        .post("/jobs/retry", &json!({"campaign": campaign, "reason": "x"}))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(snapshot(&pool).await, before, "refusals change nothing");

    // The dry run, then the cancel: the finished job answers a 409, the others are cancelled.
    let mut dry = filter.clone();
    dry["dry_run"] = json!(true);
    let answer = op.post("/jobs/cancel", &dry).await;
    assert_eq!(
        answer.body,
        json!({"count": 3, "capped": false, "ids": matching})
    );
    assert_eq!(snapshot(&pool).await, before);
    let mut body = filter.clone();
    body["reason"] = json!("wrong window");
    let answer = op
        .call(Method::POST, "/jobs/cancel", Some(WRITE), Body::Json(&body))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["count"], 3);
    assert_eq!(answer.body["cancelled"], 2);
    assert_eq!(answer.body["failed"], 1);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results[0]["id"].as_i64(), Some(done.id));
    assert_eq!(results[0]["status"], 409);
    assert!(results[1]["attempt"]["stop"].is_string(), "{}", results[1]);
    assert_eq!(results[2]["attempt"], json!({"stop": "not_dispatched"}));
    for job in [&ready, &running] {
        let job = reload(&pool, job.id).await;
        assert_eq!(job.status, Cancelled);
        assert_eq!(
            job.status_message.as_deref(),
            Some("cancelled through the API (bulk): wrong window")
        );
    }
    assert_eq!(reload(&pool, done.id).await.status, Done);
    assert_eq!(
        reload(&pool, stale.id).await.status,
        Ready,
        "changed before"
    );
    assert_eq!(reload(&pool, outside.id).await.status, Ready, "not in it");
}

#[sqlx::test(migrations = "../sql")]
async fn the_command_line_retries_and_cancels_by_filter(pool: PgPool) {
    let url = support::database_url(&pool);
    let a = failed(&pool, "test_job", "a", "32TLR").await;
    let b = failed(&pool, "test_job", "b", "31UFS").await;
    let other = failed(&pool, "fsc_rlie", "c", "32TLR").await;
    let before = snapshot(&pool).await;

    let out = support::swath(
        &[
            "jobs",
            "retry",
            "--status",
            "internal_error",
            "--type",
            "test_job",
            "--dry-run",
        ],
        Some(&url),
    );
    let stdout = support::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        support::stderr(&out)
    );
    assert!(stdout.contains("2 job(s) match"), "{stdout}");
    assert!(
        stdout.contains(&format!("first ids (newest first): {} {}", b.id, a.id)),
        "{stdout}"
    );
    assert_eq!(snapshot(&pool).await, before, "a dry run changes nothing");

    // Over the cap (from the settings): refused with the API's message, nothing changes.
    let out = support::swath_env(
        &[
            "jobs",
            "retry",
            "--status",
            "internal_error",
            "--since",
            "1h",
        ],
        Some(&url),
        &[("SWATH_BULK_MAX_JOBS", "2")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::stderr(&out).contains(
            "more than 2 jobs match; at most 2 per call (setting bulk_max_jobs): narrow the filter"
        ),
        "{}",
        support::stderr(&out)
    );
    assert_eq!(snapshot(&pool).await, before);

    // The real retry: one line per job; then again, each already retried: exit code 1.
    let args = [
        "jobs",
        "retry",
        "--status",
        "internal_error",
        "--type",
        "test_job",
        "--since",
        "1h",
    ];
    let out = support::swath(&args, Some(&url));
    let stdout = support::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        support::stderr(&out)
    );
    for job in [&a, &b] {
        assert!(
            stdout.contains(&format!("{}: retried as job", job.id)),
            "{stdout}"
        );
        assert_eq!(retries_of(&pool, job.id).await.len(), 1);
    }
    assert!(retries_of(&pool, other.id).await.is_empty());
    let out = support::swath(&args, Some(&url));
    let stdout = support::stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}: error: job {} was retried already",
            a.id, a.id
        )),
        "{stdout}"
    );
    assert_eq!(retries_of(&pool, a.id).await.len(), 1);

    // Cancel by filter: the new retries (initialized) of one tile.
    let retry_of_a = retries_of(&pool, a.id).await[0];
    let out = support::swath(
        &[
            "jobs",
            "cancel",
            "--status",
            "initialized",
            "--tile",
            "T32TLR",
            "--reason",
            "bad batch",
        ],
        Some(&url),
    );
    let stdout = support::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        support::stderr(&out)
    );
    assert!(
        stdout.contains(&format!("{retry_of_a}: cancelled; no attempt was running")),
        "{stdout}"
    );
    let cancelled = reload(&pool, retry_of_a).await;
    assert_eq!(cancelled.status, Cancelled);
    assert_eq!(
        cancelled.status_message.as_deref(),
        Some("cancelled from the command line: bad batch")
    );
    let retry_of_b = retries_of(&pool, b.id).await[0];
    assert_eq!(reload(&pool, retry_of_b).await.status, Initialized);

    // Ids and filters exclude each other.
    let out = support::swath(
        &["jobs", "cancel", &a.id.to_string(), "--status", "ready"],
        Some(&url),
    );
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
}
