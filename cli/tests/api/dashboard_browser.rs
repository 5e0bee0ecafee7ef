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

/// A Sentinel-1 product name, long enough to push a column off-screen if it were not cut.
const S1_NAME: &str = "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A";

/// The completeness report the view is tested with: the endpoint is built elsewhere, so the test
/// answers it in the page (see [`FAKE_COMPLETENESS`]), in exactly the shape it will have.
fn completeness_fixture(failed_job: i64) -> serde_json::Value {
    let cell = |tile: &str, day: &str, state: &str| {
        json!({"tile": tile, "day": day, "inputs": 3, "jobs": 3, "done_with_products": 2,
               "done_without_product": 0, "failed": u8::from(state == "failed"), "cancelled": 0,
               "waiting": u8::from(state == "waiting"), "published": 2, "published_late": 1,
               "withdrawn": 0, "state": state})
    };
    json!({
        "job_type": "test_job", "from": "2021-04-12", "to": "2021-04-14",
        "timeliness_target_hours": 3.0,
        "cells": [
            cell("32TLR", "2021-04-12", "complete"),
            cell("32TLR", "2021-04-13", "gaps"),
            cell("32TLR", "2021-04-14", "waiting"),
            cell("31UFQ", "2021-04-12", "failed"),
            cell("31UFQ", "2021-04-13", "empty"),
            cell("31UFQ", "2021-04-14", "complete"),
        ],
        "gaps": [
            {"tile": "32TLR", "day": "2021-04-13", "product": S1_NAME, "job_id": failed_job,
             "reason": "job failed", "detail": "internal_error: the DEM tile is missing"},
            {"tile": "32TLR", "day": "2021-04-13", "product": "S2B_MSIL1C_20210413T103021_N0300_R108_T32TLR",
             "job_id": null, "reason": "no job", "detail": "<b>skipped</b> by the listing"},
        ],
        "catalogue_check": null
    })
}

/// Installed in the page through WebDriver: a `window.fetch` that answers
/// `/api/v1/reports/completeness` with the fixture (`arguments[0]`) and passes every other URL to
/// the real API. The view is a hash route, so the wrapper stays for the rest of the test.
const FAKE_COMPLETENESS: &str = "
    const fixture = arguments[0];
    const real = window.fetch.bind(window);
    window.completenessQueries = [];
    window.fetch = (url, options) => {
      if (String(url).startsWith('/api/v1/reports/completeness')) {
        window.completenessQueries.push(String(url));
        return Promise.resolve(new Response(JSON.stringify(fixture),
          {status: 200, headers: {'Content-Type': 'application/json'}}));
      }
      return real(url, options);
    };
    return true;";

/// No horizontal scrolling: neither the page nor any shown section is wider than the window.
const FITS: &str =
    "return {page: document.documentElement.scrollWidth <= document.documentElement.clientWidth,
    sections: [...document.querySelectorAll('main:not([hidden]) section')]
      .filter(s => s.scrollWidth > s.clientWidth).map(s => s.querySelector('h2').textContent)};";

async fn save_shot(browser: &Browser, name: &str) {
    let shot = browser.screenshot().await;
    assert!(shot.starts_with(b"\x89PNG"));
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    std::fs::write(&path, &shot).unwrap();
    println!("screenshot: {}", path.display());
}

async fn assert_fits(browser: &Browser, what: &str) {
    let fits = browser.eval(FITS, json!([])).await;
    assert_eq!(
        fits,
        json!({"page": true, "sections": []}),
        "no horizontal scrolling: {what}"
    );
}

async fn sql(pool: &PgPool, query: &str, id: i64) {
    sqlx::query(query).bind(id).execute(pool).await.unwrap();
}

#[sqlx::test(migrations = "../sql")]
async fn the_dashboard_searches_jobs_shows_a_job_and_the_completeness_grid(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Browser) {
        return;
    }
    // A failed Sentinel-1 job with a long name and a long error, a child, a retry, a withdrawn
    // input and a Nomad reference; a running job with a long name; jobs in another tile.
    let parent = operator::test_job(&pool, S1_NAME, None, None).await;
    let child = operator::test_job(&pool, "child-of-the-s1-job", Some(parent.id), None).await;
    let parent = operator::move_to(&pool, parent, JobStatus::Processing).await;
    let failed = operator::move_to(&pool, parent, JobStatus::InternalError)
        .await
        .id;
    let long_error = format!(
        "exit code 3: the DEM tile is missing for {S1_NAME}: {}",
        "gdalwarp could not open /vsis3/dem/copernicus/30m/N46E007.tif; ".repeat(3)
    );
    sqlx::query(
        "UPDATE jobs SET status_message = $2, executor_ref = 'test_job/dispatch-1765000000-3f2a',
             input_withdrawn_at = '2021-04-20T08:00:00Z', input_withdrawal_reason = 'Duplicated product'
         WHERE id = $1",
    )
    .bind(failed)
    .bind(&long_error)
    .execute(&pool)
    .await
    .unwrap();
    let retry = operator::test_job(&pool, "s1-retry-1", None, None).await.id;
    sqlx::query("UPDATE jobs SET retry_of = $2 WHERE id = $1")
        .bind(retry)
        .bind(failed)
        .execute(&pool)
        .await
        .unwrap();
    let running_name = format!(
        "S1B_IW_SLC__1SDV_20210413T051212_20210413T051239_026456_0328A1_{}",
        "9C3F".repeat(4)
    );
    let running = operator::test_job(&pool, &running_name, None, None).await;
    let running = operator::move_to(&pool, running, JobStatus::Processing)
        .await
        .id;
    let other_tile = seed(&pool, "other-tile", 3, JobStatus::Done).await;
    for id in &other_tile {
        sql(
            &pool,
            "UPDATE jobs SET tile_id = '31UFQ' WHERE id = $1",
            *id,
        )
        .await;
    }
    let ready_other = seed(&pool, "ready-other", 1, JobStatus::Ready).await[0];
    sql(
        &pool,
        "UPDATE jobs SET tile_id = '31UFQ' WHERE id = $1",
        ready_other,
    )
    .await;

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

    // The long names are cut, whole in their title, and nothing scrolls sideways.
    let titles = browser
        .eval(
            "const name = (table, id) => document.querySelector(`#${table} tr[data-job-id='${id}'] .job-name`);
             const f = name('failures', arguments[0]), r = name('running', arguments[1]);
             return {failure: f.title, running: r.title, cut: f.scrollWidth > f.clientWidth,
                     error: document.querySelector(`#failures tr[data-job-id='${arguments[0]}'] .error`).textContent};",
            json!([failed, running]),
        )
        .await;
    assert_eq!(titles["failure"], format!("{failed} {S1_NAME}"), "{titles}");
    assert_eq!(
        titles["running"],
        format!("{running} {running_name}"),
        "{titles}"
    );
    assert!(
        titles["error"].as_str().unwrap().contains("N46E007.tif"),
        "{titles}"
    );
    assert_fits(&browser, "dashboard at 1400 px").await;
    save_shot(&browser, "dashboard-1400").await;
    browser.set_window_size(1024, 1300).await;
    assert_fits(&browser, "dashboard at 1024 px").await;
    save_shot(&browser, "dashboard-1024").await;
    browser.set_window_size(1400, 1300).await;

    // Search by status and tile.
    let search = |statuses: &'static str, tile: &'static str| {
        format!(
            "location.hash = '#/jobs';
             const form = document.getElementById('search-form');
             form.elements.tile.value = '{tile}';
             for (const o of form.elements.status.options) o.selected = '{statuses}'.split(',').includes(o.value);
             document.getElementById('search-results').tBodies[0].replaceChildren();
             delete document.getElementById('search-summary').dataset.loaded;
             form.querySelector('button[type=submit]').click();
             return true;"
        )
    };
    let found = "const s = document.getElementById('search-summary');
        return s.dataset.loaded === 'true'
          && [...document.querySelectorAll('#search-results tbody tr')].map(r => Number(r.dataset.jobId));";
    browser
        .eval(&search("internal_error", "32TLR"), json!([]))
        .await;
    let rows = browser.wait_for("the search", found).await;
    assert_eq!(rows, json!([failed]));
    browser
        .eval(&search("done,ready", "31UFQ"), json!([]))
        .await;
    let rows = browser.wait_for("the search", found).await;
    let mut expected = other_tile.clone();
    expected.push(ready_other);
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(rows, json!(expected), "newest first");
    let hash = browser.eval("return location.hash;", json!([])).await;
    assert_eq!(hash, "#/jobs?tile=31UFQ&status=ready%2Cdone");
    // Paging: one job a page, then the next page through the cursor.
    browser
        .eval(
            "location.hash = '#/jobs?tile=31UFQ&limit=2'; return true;",
            json!([]),
        )
        .await;
    browser.wait_for("the first page", "return document.getElementById('search-summary').dataset.count === '2' && !document.getElementById('search-more').hidden;").await;
    browser.click("#search-more").await;
    let rows = browser.wait_for("the next page", "return document.getElementById('search-summary').dataset.count === '4' && document.getElementById('search-more').hidden && [...document.querySelectorAll('#search-results tbody tr')].map(r => Number(r.dataset.jobId));").await;
    assert_eq!(rows, json!(expected));
    assert_fits(&browser, "search results at 1400 px").await;
    save_shot(&browser, "dashboard-search-1400").await;
    // The API's message for a bad filter.
    browser.eval(&search("", "no such tile!"), json!([])).await;
    let error = browser
        .wait_for(
            "the refusal",
            "const e = document.getElementById('search-error'); return !e.hidden && e.textContent;",
        )
        .await;
    assert!(error.as_str().unwrap().starts_with("tile: "), "{error}");
    assert_fits(&browser, "search at 1400 px").await;

    // The failed job's page, from the failures table.
    browser
        .eval("location.hash = '#/'; return true;", json!([]))
        .await;
    browser
        .click(&format!("#failures a.job-link[data-job-id='{failed}']"))
        .await;
    let shown = format!("return document.getElementById('job-body').dataset.jobId === '{failed}';");
    browser.wait_for("the job page", &shown).await;
    let page = browser
        .eval(
            "const text = id => document.getElementById(id)?.textContent;
             return {hash: location.hash,
               timeline: [...document.querySelectorAll('#timeline tbody tr')].map(r => r.dataset.status),
               errors: [...document.querySelectorAll('#attempts .attempt-error')].map(e => e.textContent),
               withdrawn: text('job-withdrawn'), logs: text('job-logs'),
               children: [...document.querySelectorAll('#job-children a.job-link')].map(a => Number(a.dataset.jobId)),
               retries: [...document.querySelectorAll('#job-retries a.job-link')].map(a => Number(a.dataset.jobId)),
               message: document.querySelector('[data-field=message]').textContent};",
            json!([]),
        )
        .await;
    assert_eq!(page["hash"], format!("#/jobs/{failed}"));
    assert_eq!(
        page["timeline"],
        json!([
            "initialized",
            "configured",
            "ready",
            "queued",
            "started",
            "pre_processing",
            "processing",
            "internal_error"
        ]),
        "{page}"
    );
    assert!(
        page["errors"][0]
            .as_str()
            .unwrap()
            .contains("test: internal_error"),
        "{page}"
    );
    assert!(
        page["withdrawn"]
            .as_str()
            .unwrap()
            .contains("Duplicated product"),
        "{page}"
    );
    assert!(
        page["logs"]
            .as_str()
            .unwrap()
            .contains("test_job/dispatch-1765000000-3f2a"),
        "{page}"
    );
    assert_eq!(page["children"], json!([child.id]));
    assert_eq!(page["retries"], json!([retry]));
    assert_eq!(page["message"], format!("test: {long_error}"));
    assert_fits(&browser, "job page at 1400 px").await;
    save_shot(&browser, "dashboard-job-1400").await;
    browser.set_window_size(1024, 1300).await;
    assert_fits(&browser, "job page at 1024 px").await;
    save_shot(&browser, "dashboard-job-1024").await;
    browser.set_window_size(1400, 1300).await;

    // Its links navigate, and the back button comes back.
    browser.click("#job-children a.job-link").await;
    browser
        .wait_for(
            "the child's page",
            &format!(
                "return document.getElementById('job-body').dataset.jobId === '{}';",
                child.id
            ),
        )
        .await;
    let parent_link = browser
        .eval(
            "return Number(document.querySelector('#job-related a.job-link').dataset.jobId);",
            json!([]),
        )
        .await;
    assert_eq!(parent_link, failed);
    browser
        .eval("history.back(); return true;", json!([]))
        .await;
    browser.wait_for("the failed job again", &shown).await;
    browser.click("#job-retries a.job-link").await;
    browser
        .wait_for(
            "the retry's page",
            &format!(
                "return document.getElementById('job-body').dataset.jobId === '{retry}'
                && document.querySelector('#job-related a.job-link').dataset.jobId === '{failed}';"
            ),
        )
        .await;

    // The completeness grid, from the fixture.
    browser
        .eval(FAKE_COMPLETENESS, json!([completeness_fixture(failed)]))
        .await;
    browser
        .eval(
            "location.hash = '#/completeness?type=test_job&from=2021-04-12&to=2021-04-14'; return true;",
            json!([]),
        )
        .await;
    let cells = browser
        .wait_for(
            "the grid",
            "const grid = document.getElementById('completeness-grid');
             return grid.dataset.loaded === 'true' && [...grid.querySelectorAll('td.cell')]
               .map(td => `${td.dataset.tile} ${td.dataset.day} ${td.className}`);",
        )
        .await;
    assert_eq!(
        cells,
        json!([
            "31UFQ 2021-04-12 cell state-failed",
            "31UFQ 2021-04-13 cell state-empty",
            "31UFQ 2021-04-14 cell state-complete",
            "32TLR 2021-04-12 cell state-complete",
            "32TLR 2021-04-13 cell state-gaps",
            "32TLR 2021-04-14 cell state-waiting",
        ])
    );
    let queries = browser
        .eval("return window.completenessQueries;", json!([]))
        .await;
    assert_eq!(
        queries,
        json!(["/api/v1/reports/completeness?type=test_job&from=2021-04-12&to=2021-04-14"])
    );
    browser
        .click("#completeness-grid td[data-tile='32TLR'][data-day='2021-04-13']")
        .await;
    let details = browser
        .wait_for(
            "the cell's details",
            "const d = document.getElementById('cell-details');
             return d.dataset.loaded === 'true' && {
               gaps: [...d.querySelectorAll('#cell-gaps tbody tr')].map(r => r.dataset.product),
               bold: d.querySelectorAll('b').length,
               jobs: [...d.querySelectorAll('#cell-jobs tbody tr')].map(r => Number(r.dataset.jobId))};",
        )
        .await;
    assert_eq!(
        details["gaps"],
        json!([S1_NAME, "S2B_MSIL1C_20210413T103021_N0300_R108_T32TLR"])
    );
    assert_eq!(details["bold"], 0, "the detail is text");
    // The jobs of tile 32TLR measured on 2021-04-13 (all the seeded jobs are).
    let mut cell_jobs: Vec<i64> = serde_json::from_value(details["jobs"].clone()).unwrap();
    cell_jobs.sort();
    let mut tile_jobs = vec![failed, child.id, retry, running];
    tile_jobs.sort();
    assert_eq!(cell_jobs, tile_jobs);
    assert_fits(&browser, "completeness at 1400 px").await;
    save_shot(&browser, "dashboard-completeness-1400").await;
    browser.set_window_size(1024, 1300).await;
    assert_fits(&browser, "completeness at 1024 px").await;
    save_shot(&browser, "dashboard-completeness-1024").await;

    browser.close().await;
}
