//! The dashboard in a real headless Chromium: loaded against a seeded database, it shows the seeded
//! numbers (jobs by type and status, running jobs, failures, timeliness against the target), and
//! its retry button retries a failed job through the API with the operator's token (and is refused
//! without it). A screenshot is
//! kept as a test artifact (`dashboard.png` in cargo's test temporary directory).

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sqlx::PgPool;
use swath_domain::JobStatus;

use support::api::spawn_api_with;
use support::operator;
use support::webdriver::Browser;

/// Seeds `n` test jobs moved to `status` (errors from `processing`), named `<prefix>-<i>`, and
/// returns their ids.
async fn seed(pool: &PgPool, prefix: &str, n: usize, status: JobStatus) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut job = operator::test_job(pool, &format!("{prefix}-{i}"), None, None).await;
        if !operator::FLOW.contains(&status) {
            job = operator::move_to(pool, job, JobStatus::Processing).await;
        }
        ids.push(operator::move_to(pool, job, status).await.id);
    }
    ids
}

/// Sets a job's sensing, input publication and output publication times.
async fn times(pool: &PgPool, id: i64, sensed: DateTime<Utc>, input_h: f64, output_h: Option<f64>) {
    let ms = |h: f64| TimeDelta::milliseconds((h * 3_600_000.0) as i64);
    let input = sensed + ms(input_h);
    sqlx::query(
        "UPDATE jobs SET measured_at = $2, input_published_at = $3, output_published_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(sensed)
    .bind(input)
    .bind(output_h.map(|h| input + ms(h)))
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../sql")]
async fn the_dashboard_shows_the_seeded_numbers_and_retries_a_failure(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Browser) {
        return;
    }
    // 4 done over two days, 2 running, 1 failed, 3 waiting.
    let done = seed(&pool, "done", 4, JobStatus::Done).await;
    let running = seed(&pool, "running", 2, JobStatus::Processing).await;
    let failed = seed(&pool, "failed", 1, JobStatus::InternalError).await;
    seed(&pool, "ready", 3, JobStatus::Ready).await;
    let day1: DateTime<Utc> = "2026-11-01T10:00:00Z".parse().unwrap();
    let day2 = day1 + TimeDelta::days(1);
    // Day 1: sensing to input 1 h and 2 h (median 1.5), input to output 2 h and 4 h (median 3).
    times(&pool, done[0], day1, 1.0, Some(2.0)).await;
    times(&pool, done[1], day1, 2.0, Some(4.0)).await;
    // Day 2: 0.5 h and 0.5 h; 1 h and 1 h.
    times(&pool, done[2], day2, 0.5, Some(1.0)).await;
    times(&pool, done[3], day2, 0.5, Some(1.0)).await;
    sqlx::query(
        "UPDATE jobs SET status_message = 'exit code 3: the DEM tile is missing' WHERE id = $1",
    )
    .bind(failed[0])
    .execute(&pool)
    .await
    .unwrap();

    let api = spawn_api_with(&pool, &operator::settings()).await;
    let root = api.base.trim_end_matches("/api/v1").to_string();
    let browser = Browser::start().await;
    browser.goto(&format!("{root}/")).await;
    browser
        .wait_for(
            "the dashboard's data",
            "return document.getElementById('updated').dataset.loaded === 'true';",
        )
        .await;

    // Jobs by type and status, as the cells show them.
    let cells = browser
        .eval(
            "const cells = {};
             for (const td of document.querySelectorAll('#counts td[data-status]')) {
               cells[td.dataset.type + '/' + td.dataset.status] = Number(td.textContent);
             }
             return cells;",
            json!([]),
        )
        .await;
    assert_eq!(cells["test_job/done"], 4, "{cells}");
    assert_eq!(cells["test_job/processing"], 2, "{cells}");
    assert_eq!(cells["test_job/internal_error"], 1, "{cells}");
    assert_eq!(cells["test_job/ready"], 3, "{cells}");
    assert_eq!(cells["test_job/total"], 10, "{cells}");
    let total = browser
        .eval(
            "return document.getElementById('total-jobs').textContent;",
            json!([]),
        )
        .await;
    assert_eq!(total, "10 jobs");

    // Running jobs and failures, with the failure's message.
    let running_rows = browser
        .eval(
            "return [...document.querySelectorAll('#running tbody tr')].map(r => Number(r.dataset.jobId));",
            json!([]),
        )
        .await;
    let mut shown: Vec<i64> = serde_json::from_value(running_rows).unwrap();
    shown.sort();
    assert_eq!(shown, running);
    let failure = browser
        .eval(
            "const row = document.querySelector('#failures tbody tr');
             return {id: Number(row.dataset.jobId), error: row.querySelector('.error').textContent};",
            json!([]),
        )
        .await;
    assert_eq!(failure["id"], failed[0]);
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("the DEM tile is missing"),
        "{failure}"
    );

    // Timeliness: medians per day, and the target line at 3 hours.
    let points = browser
        .eval(
            "return [...document.querySelectorAll('svg circle.point.median')].map(c => ({
               chart: c.ownerSVGElement.id, day: c.dataset.day, hours: Number(c.dataset.hours)}));",
            json!([]),
        )
        .await;
    let median = |chart: &str, day: &str| -> f64 {
        points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["chart"] == chart && p["day"] == day)
            .and_then(|p| p["hours"].as_f64())
            .unwrap_or_else(|| panic!("no {chart} point on {day}: {points}"))
    };
    assert!((median("chart-input", "2026-11-01") - 1.5).abs() < 1e-6);
    assert!((median("chart-output", "2026-11-01") - 3.0).abs() < 1e-6);
    assert!((median("chart-input", "2026-11-02") - 0.5).abs() < 1e-6);
    assert!((median("chart-output", "2026-11-02") - 1.0).abs() < 1e-6);
    let targets = browser
        .eval(
            "return [...document.querySelectorAll('svg line.target')].map(l => Number(l.dataset.hours));",
            json!([]),
        )
        .await;
    assert_eq!(targets, json!([3, 3]));

    // Retry: refused without the token, done with it, and the page says which job retries it.
    browser
        .click(&format!("button.retry[data-job-id='{}']", failed[0]))
        .await;
    let refused = browser
        .wait_for(
            "the refusal",
            "const cell = document.querySelector('#failures .outcome');
             return cell.textContent.startsWith('retry refused') && cell.textContent;",
        )
        .await;
    assert!(refused.as_str().unwrap().contains("Bearer"), "{refused}");
    browser.type_into("#token", operator::WRITE).await;
    browser
        .click(&format!("button.retry[data-job-id='{}']", failed[0]))
        .await;
    let retried = browser
        .wait_for(
            "the retry",
            "const cell = document.querySelector('#failures .outcome[data-retried-as]');
             return cell && Number(cell.dataset.retriedAs);",
        )
        .await;
    let retry: (Option<i64>, String) =
        sqlx::query_as("SELECT retry_of, name FROM jobs WHERE id = $1")
            .bind(retried.as_i64().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(retry, (Some(failed[0]), "failed-0-retry-1".to_string()));

    let screenshot = browser.screenshot().await;
    assert!(screenshot.starts_with(b"\x89PNG"));
    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&artifact, &screenshot).unwrap();
    println!("dashboard screenshot: {}", artifact.display());

    browser.close().await;
}
