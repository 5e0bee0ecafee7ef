//! `GET /api/v1/reports/completeness`: the exact JSON shape the dashboard reads (checked against
//! the OpenAPI description by `support::operator`), counts from jobs placed in given statuses and
//! a skipped product, the read token, and a 400 naming every bad parameter.

use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::{JobStatus, NewJob};
use swath_engine::config::{Secret, Settings};
use swath_engine::db::jobs::{get_job, insert_jobs};

use support::operator::{move_to, settings, Body, Operator, READ, WRITE};
use JobStatus::*;

/// A `test_job` on `tile` sensed on `day` at 10:00, moved to `status`.
async fn job(pool: &PgPool, name: &str, tile: &str, day: &str, status: JobStatus) -> i64 {
    let mut new = NewJob::new("test_job", name, 3);
    new.product_id = Some(format!("P-{name}"));
    new.tile_id = Some(tile.into());
    new.measured_at = Some(format!("{day}T10:00:00Z").parse().unwrap());
    new.input_published_at = Some(format!("{day}T12:00:00Z").parse().unwrap());
    new.params = json!({"product": name, "mission": "S2"});
    let inserted = insert_jobs(pool, &[new]).await.expect("insert");
    let job = get_job(pool, inserted[0].id).await.unwrap();
    let job = match status {
        Initialized => job,
        Cancelled => move_to(pool, job, Cancelled).await,
        s if support::operator::FLOW.contains(&s) => move_to(pool, job, s).await,
        s => {
            let job = move_to(pool, job, Processing).await;
            move_to(pool, job, s).await
        }
    };
    job.id
}

const PATH: &str = "/reports/completeness?type=test_job&from=2024-03-01&to=2024-03-03";

#[sqlx::test(migrations = "../sql")]
async fn the_report_has_the_dashboards_shape_and_exact_counts(pool: PgPool) {
    let done = job(&pool, "done", "32TLR", "2024-03-01", Done).await;
    sqlx::query(
        "UPDATE jobs SET output_path = 's3://out/done', output_published_at = input_published_at + interval '4 hours',
                input_withdrawn_at = now(), input_withdrawal_reason = 'deleted by the catalogue: corrupted'
         WHERE id = $1",
    )
    .bind(done)
    .execute(&pool)
    .await
    .unwrap();
    let cancelled = job(&pool, "cancelled", "32TLR", "2024-03-01", Cancelled).await;
    job(&pool, "other-day", "32TLS", "2024-03-02", Configured).await;
    // Outside the window: not counted.
    job(&pool, "too-late", "32TLR", "2024-03-03", Done).await;
    sqlx::query(
        "INSERT INTO skipped_products (job_type, source, name, tile_id, measured_at, reason)
         VALUES ('test_job', 'dir:/x', 'P-skipped', '32TLS', '2024-03-02T10:00:00Z', 'tile 32TLS is not wanted')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let op = Operator::with_write_token(&pool).await;
    let answer = op.get(PATH).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = &answer.body;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(body),
        [
            "catalogue_check",
            "cells",
            "from",
            "gaps",
            "job_type",
            "timeliness_target_hours",
            "to"
        ]
    );
    assert_eq!(body["job_type"], "test_job");
    assert_eq!(body["from"], "2024-03-01");
    assert_eq!(body["to"], "2024-03-03");
    assert_eq!(body["timeliness_target_hours"], 3.0);
    assert_eq!(body["catalogue_check"], Value::Null);
    // Two tiles x two days.
    assert_eq!(body["cells"].as_array().unwrap().len(), 4, "{body:#}");
    assert_eq!(
        body["cells"][0],
        json!({
            "tile": "32TLR", "day": "2024-03-01", "inputs": 2, "jobs": 2, "done_with_products": 1,
            "done_without_product": 0, "failed": 0, "cancelled": 1, "waiting": 0, "published": 1,
            "published_late": 1, "withdrawn": 1, "state": "gaps"
        })
    );
    assert_eq!(body["cells"][1]["state"], "empty");
    assert_eq!(
        body["cells"][3],
        json!({
            "tile": "32TLS", "day": "2024-03-02", "inputs": 2, "jobs": 1, "done_with_products": 0,
            "done_without_product": 0, "failed": 0, "cancelled": 0, "waiting": 1, "published": 0,
            "published_late": 0, "withdrawn": 0, "state": "waiting"
        })
    );
    let gaps: Vec<(Value, Value, Value)> = body["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["product"].clone(),
                g["job_id"].clone(),
                g["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        gaps,
        vec![
            (json!("P-cancelled"), json!(cancelled), json!("cancelled")),
            (json!("P-done"), json!(done), json!("published_late")),
            (json!("P-done"), json!(done), json!("withdrawn")),
            (
                json!("P-other-day"),
                json!(body["gaps"][3]["job_id"]),
                json!("job_waiting")
            ),
            (json!("P-skipped"), Value::Null, json!("skipped")),
        ]
    );
    assert_eq!(body["gaps"][1]["detail"], "4.0 h (target 3 h)");
    assert_eq!(
        body["gaps"][2]["detail"],
        "deleted by the catalogue: corrupted"
    );
    assert_eq!(body["gaps"][3]["detail"], "configured");
    assert_eq!(body["gaps"][4]["detail"], "tile 32TLS is not wanted");
    assert_eq!(
        keys(&body["gaps"][0]),
        ["day", "detail", "job_id", "product", "reason", "tile"]
    );

    // Tiles: only those asked for.
    let answer = op.get(&format!("{PATH}&tiles=32TLS")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["cells"].as_array().unwrap().len(), 2);
}

#[sqlx::test(migrations = "../sql")]
async fn every_bad_parameter_is_a_400_naming_it(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    for (query, named) in [
        ("from=2024-03-01&to=2024-03-03", "type: required"),
        ("type=test_job&to=2024-03-03", "from: required"),
        ("type=test_job&from=2024-03-01", "to: required"),
        (
            "type=nope&from=2024-03-01&to=2024-03-03",
            "type: unknown job type",
        ),
        ("type=test_job&from=yesterday&to=2024-03-03", "from: "),
        ("type=test_job&from=2024-03-01&to=2024-13-03", "to: "),
        (
            "type=test_job&from=2024-03-03&to=2024-03-01",
            "to: 2024-03-01 must be after",
        ),
        (
            "type=test_job&from=2024-01-01&to=2024-06-01",
            "to: the window is 152 days",
        ),
        (
            "type=test_job&from=2024-03-01&to=2024-03-03&tiles=32TLRX",
            "tiles: ",
        ),
        (
            "type=test_job&from=2024-03-01&to=2024-03-03&tiles=,",
            "tiles: no tile",
        ),
        (
            "type=test_job&from=2024-03-01&to=2024-03-03&check_catalogue=maybe",
            "check_catalogue: ",
        ),
        (
            "type=test_job&from=2024-03-01&to=2024-03-03&limit=3",
            "limit: unknown parameter",
        ),
        (
            "type=test_job&type=test_job&from=2024-03-01&to=2024-03-03",
            "type: given twice",
        ),
    ] {
        let answer = op.get(&format!("/reports/completeness?{query}")).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert!(
            answer.error().starts_with(named),
            "{query}: {:?} does not start with {named:?}",
            answer.error()
        );
    }
}

#[sqlx::test(migrations = "../sql")]
async fn a_closed_api_needs_the_read_token(pool: PgPool) {
    let settings = Settings {
        api_read_token: Some(Secret::new(READ)),
        ..settings()
    };
    let op = Operator::start(&pool, &settings, None).await;
    assert_eq!(op.get(PATH).await.status, 401);
    for token in [READ, WRITE] {
        let answer = op
            .call(reqwest::Method::GET, PATH, Some(token), Body::Empty)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}
