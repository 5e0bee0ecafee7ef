//! The campaigns API: creating campaigns (every refusal with its message, a name taken, the read
//! token refused), pausing, resuming and cancelling them (state rules; a cancel cancels the jobs not
//! yet started and leaves running ones alone), and the exact progress counted from jobs placed in
//! given statuses. Every answer is checked against the OpenAPI description (`support::operator`).

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::{JobStatus, NewJob};
use swath_engine::config::{Secret, Settings};
use swath_engine::db::jobs::{get_job, insert_jobs};

use support::operator::{move_to, reload, settings, Body, Operator, READ, WRITE};
use JobStatus::*;

/// A campaign job named `name` of campaign `campaign`, moved to `status`.
async fn campaign_job(pool: &PgPool, campaign: i64, name: &str, status: JobStatus) -> i64 {
    let mut new = NewJob::new("test_job", name, 3);
    new.product_id = Some(format!("P-{name}"));
    new.tile_id = Some("32TLR".into());
    new.params = json!({"product": name, "mission": "S2"});
    new.campaign_id = Some(campaign);
    let inserted = insert_jobs(pool, &[new]).await.expect("insert");
    let job = get_job(pool, inserted[0].id).await.unwrap();
    let job = if status == Initialized {
        job
    } else if support::operator::FLOW.contains(&status) {
        move_to(pool, job, status).await
    } else if status == Cancelled {
        move_to(pool, job, Cancelled).await
    } else {
        let job = move_to(pool, job, Processing).await;
        move_to(pool, job, status).await
    };
    job.id
}

fn request() -> Value {
    json!({"type": "test_job", "from": "2021-04-01", "to": "2021-05-01"})
}

async fn create(op: &Operator, body: &Value) -> i64 {
    let created = op.post("/campaigns", body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_i64().unwrap()
}

#[sqlx::test(migrations = "../sql")]
async fn a_campaign_is_created_with_its_defaults(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let created = op.post("/campaigns", &request()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let c = &created.body;
    let id = c["id"].as_i64().unwrap();
    assert_eq!(
        created.headers["location"],
        format!("/api/v1/campaigns/{id}").as_str()
    );
    assert_eq!(c["name"], "test_job-2021-04-01-2021-05-01");
    assert_eq!(c["job_type"], "test_job");
    assert_eq!(c["from"], "2021-04-01T00:00:00Z");
    assert_eq!(c["to"], "2021-05-01T00:00:00Z");
    assert_eq!(c["tiles"], Value::Null);
    assert_eq!(c["reprocess"], false);
    assert_eq!(c["image"], Value::Null);
    assert_eq!(c["max_in_flight"], 10);
    assert_eq!(c["state"], "listing");
    assert_eq!(c["source"], Settings::default().catalogue.as_str());
    assert_eq!(c["progress"]["jobs"], 0);
    assert_eq!(c["progress"]["eta_seconds"], Value::Null);

    let full = op
        .post(
            "/campaigns",
            &json!({"name": "winter 2021 (tiles)", "type": "test_job",
                    "from": "2021-01-01T00:00:00+01:00", "to": "2021-03-01T00:00:00Z",
                    "tiles": ["T32TLR", "32tls", "32TLR"], "reprocess": true,
                    "image": "swath-standin:1.2", "max_in_flight": 3,
                    "source": Settings::default().catalogue}),
        )
        .await;
    assert_eq!(full.status, 201, "{}", full.body);
    let c = &full.body;
    assert_eq!(c["name"], "winter 2021 (tiles)");
    assert_eq!(c["from"], "2020-12-31T23:00:00Z");
    assert_eq!(c["tiles"], json!(["32TLR", "32TLS"]));
    assert_eq!(c["reprocess"], true);
    assert_eq!(c["image"], "swath-standin:1.2");
    assert_eq!(c["max_in_flight"], 3);
    assert_eq!(c["source"], Settings::default().catalogue.as_str());

    // Newest first.
    let list = op.get("/campaigns").await;
    assert_eq!(list.status, 200);
    let names: Vec<&str> = list.body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["winter 2021 (tiles)", "test_job-2021-04-01-2021-05-01"]
    );
    let one = op.get(&format!("/campaigns/{id}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["name"], "test_job-2021-04-01-2021-05-01");

    // The name is taken.
    let again = op.post("/campaigns", &request()).await;
    assert_eq!(again.status, 409);
    assert!(
        again.error().contains("exists already"),
        "{}",
        again.error()
    );
}

#[sqlx::test(migrations = "../sql")]
async fn every_bad_request_is_refused_naming_the_field(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let with = |changes: Value| {
        let mut body = request();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let long = "x".repeat(129);
    let cases: Vec<(Value, &str)> = vec![
        (
            with(json!({"type": "nope"})),
            "type: unknown job type \"nope\" (known: ",
        ),
        (
            with(json!({"type": "fsc_rlie_quicklook"})),
            "type: job type \"fsc_rlie_quicklook\" does not list catalogues",
        ),
        (
            with(json!({"from": "April"})),
            "from: \"April\" is neither a date",
        ),
        (
            with(json!({"to": "2021-13-01"})),
            "to: \"2021-13-01\" is neither a date",
        ),
        (
            with(json!({"to": "2021-04-01"})),
            "to: the window's end (2021-04-01T00:00:00+00:00) must be after its start",
        ),
        (
            with(json!({"from": "2021-06-01", "to": "2021-05-01"})),
            "to: the window's end",
        ),
        (
            with(json!({"tiles": ["32TLR", "32 TLS"]})),
            "tiles: \"32 TLS\" is not a tile id such as 32TLR",
        ),
        (with(json!({"tiles": []})), "tiles: give at least one tile"),
        (
            with(json!({"max_in_flight": 0})),
            "max_in_flight: must be between 1 and 10000, not 0",
        ),
        (
            with(json!({"max_in_flight": 10001})),
            "max_in_flight: must be between 1 and 10000, not 10001",
        ),
        (
            with(json!({"name": ""})),
            "name: an empty name is not allowed",
        ),
        (
            with(json!({"name": long})),
            "name: at most 128 bytes are allowed",
        ),
        (
            with(json!({"name": "a\u{7}b"})),
            "name: control characters are not allowed",
        ),
        (
            with(json!({"name": "a\u{0}b"})),
            "name: NUL characters are not allowed",
        ),
        (
            with(json!({"image": "my image:1"})),
            "image: \"my image:1\" is not an image reference",
        ),
        (
            with(json!({"image": "img\n"})),
            "image: \"img\\n\" is not an image reference",
        ),
        (with(json!({"colour": "red"})), "unknown field `colour`"),
        (
            json!({"type": "test_job", "from": "2021-04-01"}),
            "missing field `to`",
        ),
        (with(json!({"reprocess": "yes"})), "reprocess"),
    ];
    for (body, message) in cases {
        let answer = op.post("/campaigns", &body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(
            answer.error().contains(message),
            "{body}: {:?} does not say {message:?}",
            answer.error()
        );
    }
    let known = op.post("/campaigns", &with(json!({"type": "nope"}))).await;
    assert!(
        known.error().contains("fsc_rlie") && known.error().contains("test_job"),
        "{}",
        known.error()
    );
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM campaigns")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(none, 0);
}

#[sqlx::test(migrations = "../sql")]
async fn writes_need_the_write_token(pool: PgPool) {
    let op = Operator::start(
        &pool,
        &Settings {
            api_read_token: Some(Secret::new(READ)),
            ..settings()
        },
        None,
    )
    .await;
    let id = create(&op, &request()).await;
    for (path, body) in [
        ("/campaigns".to_string(), Body::Json(&request())),
        (format!("/campaigns/{id}/pause"), Body::Empty),
        (format!("/campaigns/{id}/resume"), Body::Empty),
        (format!("/campaigns/{id}/cancel"), Body::Empty),
    ] {
        let refused = op.call(Method::POST, &path, Some(READ), body).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(
            refused.error().contains("read token"),
            "{}",
            refused.error()
        );
    }
    let anonymous = op
        .call(
            Method::POST,
            &format!("/campaigns/{id}/pause"),
            None,
            Body::Empty,
        )
        .await;
    assert_eq!(anonymous.status, 401);
    // Reads need a token here, and the read token does.
    assert_eq!(op.get("/campaigns").await.status, 401);
    let read = op
        .call(
            Method::GET,
            &format!("/campaigns/{id}"),
            Some(READ),
            Body::Empty,
        )
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["state"], "listing");
}

#[sqlx::test(migrations = "../sql")]
async fn pause_resume_and_cancel_follow_the_state_rules(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let id = create(&op, &request()).await;

    let paused = op.post_empty(&format!("/campaigns/{id}/pause")).await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.body["campaign"]["state"], "paused");
    assert_eq!(paused.body["claimed"], 0);
    let again = op.post_empty(&format!("/campaigns/{id}/pause")).await;
    assert_eq!(again.status, 409);
    assert!(again.error().contains("is paused"), "{}", again.error());

    // The listing is not finished: it resumes listing.
    let resumed = op.post_empty(&format!("/campaigns/{id}/resume")).await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.body["state"], "listing");

    // Listed: pause and resume make it running, and a running campaign cannot be resumed.
    sqlx::query("UPDATE campaigns SET listing_finished_at = now() WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        op.post_empty(&format!("/campaigns/{id}/pause"))
            .await
            .status,
        200
    );
    let running = op.post_empty(&format!("/campaigns/{id}/resume")).await;
    assert_eq!(running.body["state"], "running");
    let refused = op.post_empty(&format!("/campaigns/{id}/resume")).await;
    assert_eq!(refused.status, 409);
    assert_eq!(
        refused.error(),
        format!("campaign {id} is running: it cannot be resumed")
    );

    // A cancel cancels the jobs not started, and leaves a running one alone.
    let waiting = [
        campaign_job(&pool, id, "w-init", Initialized).await,
        campaign_job(&pool, id, "w-ready", Ready).await,
    ];
    let started = campaign_job(&pool, id, "running", Processing).await;
    let other = op
        .post(
            "/campaigns",
            &json!({"name": "other", "type": "test_job",
        "from": "2021-04-01", "to": "2021-05-01"}),
        )
        .await;
    let other_id = other.body["id"].as_i64().unwrap();
    let untouched = campaign_job(&pool, other_id, "other-ready", Ready).await;
    let cancelled = op
        .post(
            &format!("/campaigns/{id}/cancel"),
            &json!({"reason": "wrong window"}),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["cancelled_jobs"], 2);
    assert_eq!(cancelled.body["campaign"]["state"], "cancelled");
    assert!(cancelled.body["campaign"]["state_message"]
        .as_str()
        .unwrap()
        .contains("wrong window"));
    for job in waiting {
        assert_eq!(reload(&pool, job).await.status, Cancelled);
    }
    assert_eq!(reload(&pool, started).await.status, Processing);
    assert_eq!(reload(&pool, untouched).await.status, Ready);
    assert_eq!(cancelled.body["campaign"]["progress"]["cancelled"], 2);
    assert_eq!(cancelled.body["campaign"]["progress"]["in_flight"], 1);

    for action in ["pause", "resume", "cancel"] {
        let over = op.post_empty(&format!("/campaigns/{id}/{action}")).await;
        assert_eq!(over.status, 409, "{action}: {}", over.body);
        assert!(over.error().contains("is cancelled"), "{}", over.error());
    }
    for action in ["pause", "resume", "cancel"] {
        let missing = op.post_empty(&format!("/campaigns/987654/{action}")).await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.error(), "campaign 987654 not found");
    }
    assert_eq!(op.get("/campaigns/987654").await.status, 404);
    assert_eq!(op.get("/campaigns/abc").await.status, 400);
    let bad = op
        .call(
            Method::POST,
            &format!("/campaigns/{other_id}/cancel"),
            Some(WRITE),
            Body::Json(&json!({"why": "x"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.error().contains("unknown field `why`"),
        "{}",
        bad.error()
    );
}

#[sqlx::test(migrations = "../sql")]
async fn the_progress_counts_the_jobs_by_stage(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let id = create(&op, &request()).await;
    let other = create(
        &op,
        &json!({"name": "other", "type": "test_job", "from": "2021-04-01", "to": "2021-05-01"}),
    )
    .await;
    for (name, status) in [
        ("a", Initialized),
        ("b", Configured),
        ("c", Ready),
        ("d", Processing),
        ("e", Queued),
        ("f", Published),
        ("g", Done),
        ("h", Done),
        ("i", InternalError),
        ("j", Cancelled),
    ] {
        campaign_job(&pool, id, name, status).await;
    }
    // Another campaign's job and a job outside campaigns are not counted.
    campaign_job(&pool, other, "x", Done).await;
    support::operator::test_job(&pool, "outside", None, None).await;
    sqlx::query(
        "UPDATE campaigns SET products_listed = 17, jobs_created = 10, pages = 2,
             skipped = '{\"already has a job\": 4, \"outside the campaign''s tiles\": 3}',
             listing_finished_at = now(), state = 'running'
         WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();

    let shown = op.get(&format!("/campaigns/{id}")).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let p = &shown.body["progress"];
    let expected = json!({
        "products_listed": 17, "jobs_created": 10, "skipped_total": 7,
        "skipped": {"already has a job": 4, "outside the campaign's tiles": 3},
        "jobs": 10, "waiting": 3, "in_flight": 2, "publishing": 1, "done": 2, "failed": 1,
        "cancelled": 1, "ended_last_hour": 3,
    });
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&p[k], v, "{k}: {p}");
    }
    // 3 ended in the last hour; 6 remain: two hours.
    assert_eq!(p["eta_seconds"], 2 * 3600);
    assert!(p["per_hour"].as_f64().unwrap() > 0.0);

    let list = op.get("/campaigns").await;
    let listed = list.body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(listed["progress"], *p);
    let other_listed = &list.body["campaigns"][0];
    assert_eq!(other_listed["id"], other);
    assert_eq!(other_listed["progress"]["done"], 1);
    assert_eq!(other_listed["progress"]["jobs"], 1);
    assert_eq!(op.get("/campaigns?limit=0").await.status, 400);
    let one = op.get("/campaigns?limit=1").await;
    assert_eq!(one.body["campaigns"].as_array().unwrap().len(), 1);
}

/// A write token allows operating campaigns, not choosing what runs or what is fetched: through the
/// API a campaign may pin another version of its job type's image, not another image (which would run
/// with the workers' storage credentials), and lists the configured catalogue only (any other URL
/// would make the orchestrator fetch it from inside the network).
#[sqlx::test(migrations = "../sql")]
async fn a_write_token_cannot_make_campaigns_run_other_images_or_fetch_other_urls(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let image = swath_domain::types::STAND_IN_IMAGE;
    let repository = image.split(['@', ':']).next().unwrap();
    for (field, value, expected) in [
        ("image", "evil.example/miner:latest", "image: "),
        ("image", "docker.io/library/alpine@sha256:0123", "image: "),
        ("image", &format!("{repository}x:1.0"), "image: "),
        (
            "source",
            "odata+http://169.254.169.254/latest/meta-data/",
            "source: ",
        ),
        ("source", "dir:/etc", "source: "),
    ] {
        let mut body = request();
        body[field] = json!(value);
        let refused = op.post("/campaigns", &body).await;
        assert_eq!(refused.status, 400, "{field} {value}: {}", refused.body);
        assert!(refused.error().starts_with(expected), "{}", refused.error());
    }
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM campaigns")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(none, 0, "nothing was created");

    // Another version of the job type's own image, and the configured catalogue named explicitly.
    let mut body = request();
    body["image"] = json!(format!("{repository}@sha256:{}", "ab".repeat(32)));
    body["source"] = json!(Settings::default().catalogue);
    let created = op.post("/campaigns", &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
}
