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

/// A campaign of `test_job` created in the database, in `state`.
async fn seed_campaign(pool: &PgPool, name: &str, state: &str) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO campaigns (name, job_type, source, window_from, window_to, max_in_flight, state,
             listing_finished_at, products_listed, jobs_created, skipped)
         VALUES ($1, 'test_job', 'file:///catalogue', '2021-04-01', '2021-05-01', 10, $2,
             now(), 12, 7, '{\"already has a job\": 3, \"outside the campaign''s tiles\": 2}')
         RETURNING id",
    )
    .bind(name)
    .bind(state)
    .fetch_one(pool)
    .await
    .unwrap();
    id
}

/// `n` jobs of campaign `campaign` moved to `status`.
async fn seed_campaign_jobs(
    pool: &PgPool,
    campaign: i64,
    prefix: &str,
    n: usize,
    status: JobStatus,
) {
    for id in seed(pool, prefix, n, status).await {
        sqlx::query("UPDATE jobs SET campaign_id = $2 WHERE id = $1")
            .bind(id)
            .bind(campaign)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrations = "../sql")]
async fn the_dashboard_shows_campaigns_and_pauses_one(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Browser) {
        return;
    }
    // A running campaign with a long name that would be HTML if it were not escaped: 2 done,
    // 1 failed, 1 in flight, 3 waiting.
    let long_name = format!(
        "<b>reprocessing</b> of the whole Alps for the winter 2020-2021 {}",
        "with-a-long-suffix-".repeat(2)
    );
    let main = seed_campaign(&pool, &long_name, "running").await;
    seed_campaign_jobs(&pool, main, "c-done", 2, JobStatus::Done).await;
    seed_campaign_jobs(&pool, main, "c-failed", 1, JobStatus::InternalError).await;
    seed_campaign_jobs(&pool, main, "c-running", 1, JobStatus::Processing).await;
    seed_campaign_jobs(&pool, main, "c-ready", 3, JobStatus::Ready).await;
    let paused = seed_campaign(&pool, "paused one", "paused").await;
    let doomed = seed_campaign(&pool, "cancelled behind the page", "running").await;
    // Ended 40 days ago: not shown. Ended 2 days ago: shown.
    let old = seed_campaign(&pool, "old", "completed").await;
    let recent = seed_campaign(&pool, "recently cancelled", "cancelled").await;
    for (id, days) in [(old, 40), (recent, 2)] {
        sqlx::query(
            "UPDATE campaigns SET finished_at = now() - make_interval(days => $2),
                 state_changed_at = now() - make_interval(days => $2) WHERE id = $1",
        )
        .bind(id)
        .bind(days)
        .execute(&pool)
        .await
        .unwrap();
    }

    let api = spawn_api_with(&pool, &operator::settings()).await;
    let root = api.base.trim_end_matches("/api/v1").to_string();
    let browser = Browser::start().await;
    browser.goto(&format!("{root}/dashboard")).await;
    browser
        .wait_for(
            "the dashboard's data",
            "return document.getElementById('updated').dataset.loaded === 'true';",
        )
        .await;

    let rows = browser
        .eval(
            "return [...document.querySelectorAll('#campaigns tbody tr')].map(r => Number(r.dataset.campaignId));",
            json!([]),
        )
        .await;
    assert_eq!(
        rows,
        json!([recent, doomed, paused, main]),
        "newest first, the old one left out"
    );

    let row = browser
        .eval(
            "const row = document.querySelector(`#campaigns tr[data-campaign-id='${arguments[0]}']`);
             const cells = {};
             for (const td of row.querySelectorAll('td[data-field]')) cells[td.dataset.field] = td.textContent;
             const name = row.querySelector('.name');
             return {cells, name: name.textContent, title: name.title, bold: row.querySelectorAll('b').length,
                     truncated: name.scrollWidth > name.clientWidth,
                     percent: Number(row.querySelector('.bar').dataset.percent),
                     label: row.querySelector('.bar-label').textContent,
                     button: row.querySelector('button.campaign-action').dataset.action,
                     disabled: row.querySelector('button.campaign-action').disabled};",
            json!([main]),
        )
        .await;
    assert_eq!(row["cells"]["done"], "2", "{row}");
    assert_eq!(row["cells"]["failed"], "1", "{row}");
    assert_eq!(row["cells"]["in_flight"], "1", "{row}");
    assert_eq!(row["cells"]["waiting"], "3", "{row}");
    assert_eq!(row["cells"]["skipped"], "5", "{row}");
    assert_eq!(row["cells"]["state"], "running", "{row}");
    // 3 of 7 jobs ended.
    assert_eq!(row["percent"], 43, "{row}");
    assert!(
        row["label"].as_str().unwrap().starts_with("43% · 3/7 jobs"),
        "{row}"
    );
    assert_ne!(
        row["cells"]["eta"], "–",
        "3 ended in the last hour: an ETA {row}"
    );
    // The name is text (no element made of it), truncated, and whole on hover.
    assert_eq!(row["name"], long_name.as_str());
    assert_eq!(row["bold"], 0);
    assert_eq!(row["truncated"], true, "{row}");
    assert!(
        row["title"].as_str().unwrap().starts_with(&long_name),
        "{row}"
    );
    // Without a token the buttons are disabled.
    assert_eq!(row["button"], "pause");
    assert_eq!(row["disabled"], true);

    let layout = "return {page: document.documentElement.scrollWidth <= document.documentElement.clientWidth,
                          section: (s => s.scrollWidth <= s.clientWidth)(document.getElementById('campaigns-section'))};";
    let fits = browser.eval(layout, json!([])).await;
    assert_eq!(
        fits,
        json!({"page": true, "section": true}),
        "no horizontal scrolling at 1400 px"
    );
    let artifact = |width: u32| {
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("dashboard-campaigns-{width}.png"))
    };
    let shot = browser.screenshot().await;
    std::fs::write(artifact(1400), &shot).unwrap();
    println!("campaigns screenshot: {}", artifact(1400).display());

    // With the token: pause the running campaign.
    browser.type_into("#token", operator::WRITE).await;
    browser
        .wait_for(
            "the buttons enabled",
            "return !document.querySelector('#campaigns button.campaign-action').disabled;",
        )
        .await;
    browser
        .click(&format!(
            "button.campaign-action[data-campaign-id='{main}']"
        ))
        .await;
    browser
        .wait_for(
            "the pause",
            &format!(
                "const row = document.querySelector(\"#campaigns tr[data-campaign-id='{main}']\");
                 return row.querySelector('[data-field=state]').textContent === 'paused'
                   && row.querySelector('button.campaign-action').dataset.action === 'resume';"
            ),
        )
        .await;
    let state: String = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
        .bind(main)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "paused");

    // A campaign cancelled behind the page's back: the API's refusal is shown.
    sqlx::query("UPDATE campaigns SET state = 'cancelled' WHERE id = $1")
        .bind(doomed)
        .execute(&pool)
        .await
        .unwrap();
    browser
        .click(&format!(
            "button.campaign-action[data-campaign-id='{doomed}']"
        ))
        .await;
    let refused = browser
        .wait_for(
            "the refusal",
            &format!(
                "const note = document.querySelector(\".outcome[data-campaign-id='{doomed}']\");
                 return note && note.textContent.startsWith('pause refused') && note.textContent;"
            ),
        )
        .await;
    assert_eq!(
        refused,
        format!("pause refused: campaign {doomed} is cancelled: it cannot be paused")
    );

    browser.set_window_size(1024, 1300).await;
    let fits = browser.eval(layout, json!([])).await;
    assert_eq!(
        fits,
        json!({"page": true, "section": true}),
        "no horizontal scrolling at 1024 px"
    );
    let shot = browser.screenshot().await;
    std::fs::write(artifact(1024), &shot).unwrap();
    println!("campaigns screenshot: {}", artifact(1024).display());

    browser.close().await;
}
