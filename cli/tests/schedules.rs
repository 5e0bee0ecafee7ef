//! The background jobs against a real database: healing refuses before a successful initial sync and
//! runs after it, through cron ticks and the API; a dump is readable and complete (on a directory
//! and on S3), holds what the jobs table holds and is streamed in bounded memory; two instances
//! racing for ticks fire each once; a tick missed while every instance was down fires once on
//! recovery.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use swath_domain::{JobStatus, NewJob};
use swath_engine::catalogue;
use swath_engine::config::{Secret, Settings};
use swath_engine::db::schedules::ScheduleKind;
use swath_engine::db::schedules::{runs, schedule, RunRow};
use swath_engine::db::services::register;
use swath_engine::db::services::Instance;
use swath_engine::schedule::dump::{read_dump, write_dump};
use swath_engine::schedule::runner::{prepare, scheduler_loop, Scheduler};
use tokio::sync::watch;

use support::api::spawn_api_with;
use support::operator;

/// A scheduler of a new instance, running until the returned sender says stop.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    instance: Instance,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

async fn start(pool: &PgPool, settings: &Settings) -> Running {
    let schedule_settings = settings.schedule_settings().unwrap();
    let registry = settings.registry().unwrap();
    let instance = Instance::new("test");
    register(pool, &instance).await.unwrap();
    prepare(pool, &schedule_settings).await.unwrap();
    let scheduler = Arc::new(Scheduler {
        pool: pool.clone(),
        instance: instance.clone(),
        settings: schedule_settings,
        job_types: settings
            .job_types
            .iter()
            .map(|n| registry.get(n).unwrap().clone())
            .collect(),
        catalogue: catalogue::open(&settings.catalogue, &settings.catalogue_options()).unwrap(),
        shutdown_timeout: Duration::from_secs(5),
    });
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        scheduler_loop(scheduler, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });
    Running {
        stop,
        task,
        instance,
    }
}

/// Waits (bounded) until the runs of `kind` satisfy `done`, and returns them (oldest first).
async fn runs_until(
    pool: &PgPool,
    kind: ScheduleKind,
    done: impl Fn(&[RunRow]) -> bool,
) -> Vec<RunRow> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = runs(pool, kind, 1000).await.unwrap();
        all.reverse();
        if done(&all) {
            return all;
        }
        assert!(Instant::now() < deadline, "{kind} runs: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A directory catalogue with one entry per `(name, published_at)`.
fn catalogue_dir(dir: &Path, products: &[(&str, DateTime<Utc>)]) -> String {
    for (name, published) in products {
        let entry = dir.join(name);
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(
            entry.join(swath_engine::catalogue::local::LISTING_FILE),
            serde_json::json!({ "published_at": published }).to_string(),
        )
        .unwrap();
    }
    format!("dir:{}", dir.display())
}

fn settings_for(catalogue: String) -> Settings {
    Settings {
        job_types: vec!["test_job".into()],
        catalogue,
        cron_pattern_healing_job: "* * * * * *".into(),
        enable_dump_file_creation: false,
        initial_sync_from: "2024-01-01".into(),
        api_write_token: Some(Secret::new(operator::WRITE)),
        ..Settings::default()
    }
}

/// A `POST` with the write token.
async fn post(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = client
        .post(url)
        .bearer_auth(operator::WRITE)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = "../sql")]
async fn healing_refuses_before_a_successful_initial_sync_and_runs_after(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let old: DateTime<Utc> = "2024-02-01T10:00:00Z".parse().unwrap();
    let recent = now - chrono::TimeDelta::days(1);
    let catalogue = catalogue_dir(
        dir.path(),
        &[
            (
                "S2B_MSIL1C_20240105T101021_N0510_R022_T32TLR_20240105T122408.SAFE",
                old,
            ),
            (
                "S2B_MSIL1C_20240106T101021_N0510_R022_T32TLS_20240106T122408.SAFE",
                old,
            ),
            (
                "S2A_MSIL1C_20250105T101021_N0511_R022_T32TLR_20250105T122408.SAFE",
                recent,
            ),
            (
                "S2A_MSIL1C_20250106T101021_N0511_R022_T32TLS_20250106T122408.SAFE",
                recent,
            ),
        ],
    );
    let settings = settings_for(catalogue);
    let api = spawn_api_with(&pool, &settings).await;
    let client = reqwest::Client::new();
    let scheduler = start(&pool, &settings).await;

    // Before any initial sync: the cron ticks are refused with the reason, and so is the API.
    let refused = runs_until(&pool, ScheduleKind::Healing, |r| r.len() >= 2).await;
    for run in &refused {
        assert_eq!(
            (run.state.as_str(), run.trigger.as_str()),
            ("refused", "cron")
        );
        assert!(run
            .message
            .as_deref()
            .unwrap()
            .contains("waits for a successful initial sync"));
    }
    let (status, body) = post(&client, &format!("{}/healing-jobs", api.base)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("SWATH_HEAL_MUST_WAIT_FOR_INITIAL_SYNC"),
        "{body}"
    );
    // The initial sync is disabled (SWATH_START_INITIAL_SYNC=false): the API says so.
    let (status, body) = post(&client, &format!("{}/initial-sync-jobs", api.base)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("SWATH_START_INITIAL_SYNC=false"),
        "{body}"
    );
    assert_eq!(count_jobs(&pool).await, 0, "healing created nothing");
    scheduler.stop().await;

    // Restarted with the initial sync enabled: it runs at start-up over its whole window.
    let settings = Settings {
        start_initial_sync: true,
        ..settings
    };
    let scheduler = start(&pool, &settings).await;
    let synced = runs_until(&pool, ScheduleKind::InitialSync, |r| {
        r.iter().any(|r| r.state == "succeeded")
    })
    .await;
    assert_eq!(synced.len(), 1, "{synced:#?}");
    assert_eq!(synced[0].trigger, "request");
    assert_eq!(
        synced[0].result.as_ref().unwrap()["job_types"][0]["created"],
        4
    );
    assert_eq!(count_jobs(&pool).await, 4);

    // Two recent jobs go missing: the next healing tick scans its trailing window and creates
    // them again; the old products, outside the window, are not listed.
    let deleted = sqlx::query("DELETE FROM jobs WHERE name LIKE 'test-S2A%'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 2);
    let healed = runs_until(&pool, ScheduleKind::Healing, |r| {
        created_by(r) == 2 && r.last().is_some_and(|r| r.state == "succeeded")
    })
    .await;
    for run in healed.iter().filter(|r| r.state == "succeeded") {
        let result = &run.result.as_ref().unwrap()["job_types"][0];
        assert_eq!(result["listed"], 2, "only the trailing window: {result}");
    }
    assert_eq!(count_jobs(&pool).await, 4);
    assert!(healed
        .iter()
        .filter(|r| r.state == "succeeded")
        .all(|r| r.service_id == scheduler.instance.service_id));

    // On request too; then the records of healing runs are deleted on request.
    let (status, body) = post(&client, &format!("{}/healing-jobs", api.base)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        support::openapi::swath().check_response("POST", "/api/v1/healing-jobs", 202, Some(&body)),
        Ok(())
    );
    runs_until(&pool, ScheduleKind::Healing, |r| {
        r.iter()
            .any(|r| r.trigger == "request" && r.state != "running")
    })
    .await;
    scheduler.stop().await;
    let listed: Value = client
        .get(format!("{}/healing-jobs?limit=3", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["schedule"]["cron_pattern"], "* * * * * *");
    assert_eq!(listed["runs"].as_array().unwrap().len(), 3);
    let described = support::openapi::swath();
    assert_eq!(
        described.check_response("GET", "/api/v1/healing-jobs", 200, Some(&listed)),
        Ok(())
    );
    let r = client
        .delete(format!("{}/healing-jobs", api.base))
        .bearer_auth(operator::WRITE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body["deleted"].as_u64().unwrap() >= 3, "{body}");
    assert_eq!(
        described.check_response("DELETE", "/api/v1/healing-jobs", 200, Some(&body)),
        Ok(())
    );
    assert!(runs(&pool, ScheduleKind::Healing, 10)
        .await
        .unwrap()
        .is_empty());
    // Deleting the initial sync's records makes healing wait again.
    let r = client
        .delete(format!("{}/initial-sync-jobs", api.base))
        .bearer_auth(operator::WRITE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = post(&client, &format!("{}/healing-jobs", api.base)).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// Jobs created by the succeeded healing runs of `runs`.
fn created_by(runs: &[RunRow]) -> u64 {
    runs.iter()
        .filter(|r| r.state == "succeeded")
        .filter_map(|r| r.result.as_ref()?["job_types"][0]["created"].as_u64())
        .sum()
}

async fn count_jobs(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `n` test jobs, some moved along, with parameters and results.
async fn inventory(pool: &PgPool, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            let mut job = NewJob::new("test_job", format!("dump-{i:05}"), 3);
            job.params = serde_json::json!({"product": format!("P{i}"), "mission": "S2"});
            job
        })
        .collect();
    swath_engine::db::jobs::insert_jobs(pool, &jobs)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET status = 2 WHERE id % 3 = 0")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET status = 16 WHERE id % 3 = 0 AND id % 2 = 0")
        .execute(pool)
        .await
        .unwrap();
}

/// Every job of the database, as the dump must hold it.
async fn all_jobs(pool: &PgPool) -> Vec<swath_domain::Job> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM jobs ORDER BY id",
        swath_engine::db::jobs::JOB_COLUMNS
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| swath_engine::db::jobs::job_from_row(r).unwrap())
        .collect()
}

#[sqlx::test(migrations = "../sql")]
async fn a_dump_is_readable_and_complete(pool: PgPool) {
    inventory(&pool, 2345).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        job_types: vec!["test_job".into()],
        dump_url: format!("file://{}", dir.path().join("dumps").display()),
        // Only on request here.
        cron_pattern_dump_job: "0 0 0 1 1 *".into(),
        enable_healing_job_operation: false,
        api_write_token: Some(Secret::new(operator::WRITE)),
        ..Settings::default()
    };
    let api = spawn_api_with(&pool, &settings).await;
    let scheduler = start(&pool, &settings).await;
    // Asking for a run is a write: refused without the token, and nothing runs.
    let anonymous = reqwest::Client::new()
        .post(format!("{}/dump-jobs", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(runs(&pool, ScheduleKind::Dump, 10)
        .await
        .unwrap()
        .is_empty());
    let (status, body) = post(&reqwest::Client::new(), &format!("{}/dump-jobs", api.base)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = runs_until(&pool, ScheduleKind::Dump, |r| {
        r.iter().any(|r| r.state == "succeeded")
    })
    .await;
    scheduler.stop().await;
    let result = done[0].result.clone().unwrap();
    assert_eq!(result["jobs"], 2345);
    let url = result["url"].as_str().unwrap();
    let path = url.strip_prefix("file://").unwrap();
    assert!(path.ends_with(".jsonl.gz"), "{path}");
    let dumped = read_dump(Path::new(path)).unwrap();
    assert_eq!(dumped, all_jobs(&pool).await, "every job, field for field");
    assert!(dumped.iter().any(|j| j.status == JobStatus::Cancelled));
    // Nothing else was left beside it (the temporary file is renamed into place).
    let files: Vec<_> = std::fs::read_dir(dir.path().join("dumps"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    let row = schedule(&pool, ScheduleKind::Dump).await.unwrap();
    assert!(row.last_success_at.is_some() && row.last_error.is_none());
}

/// The lines of a dump file, decompressed.
fn dump_lines(path: &Path) -> Vec<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).unwrap();
    std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file))
        .lines()
        .map(Result::unwrap)
        .collect()
}

#[sqlx::test(migrations = "../sql")]
async fn a_dump_streams_the_jobs_table_in_bounded_memory(pool: PgPool) {
    use swath_engine::schedule::dump::BUFFER_BYTES;
    inventory(&pool, 300).await;
    // Every field set somewhere, and text that JSON and CSV must both carry through untouched.
    sqlx::query(
        r#"UPDATE jobs SET
             product_id = 'S2A_MSIL1C_' || id, tile_id = '32TLR', input_path = 's3://in/' || id,
             measured_at = '2021-04-13T10:13:47.123456Z', input_published_at = now(),
             output_path = 'out/' || id, output_published_at = now(), priority = 'delayed',
             status_message = E'line one
line "two",	tab \ backslash  é ✓',
             status_error_subtype = 'odd,"subtype"',
             params = params || jsonb_build_object('note', E'abc
"d"'),
             results = '{"return_code": 0, "products": [{"kind": "fsc", "path": "a/b", "size_bytes": 12,
                         "completed_at": "2026-12-01T10:00:00Z", "infos": {"x": [1, 2.5]},
                         "published_at": null}]}',
             max_attempts = 5, next_attempt_at = now(), recheck_at = now(),
             software_version = 'sha256:abc', executor_ref = 'nomad/' || id,
             service_id = gen_random_uuid(), tag = '{"host": "h", "name": "n"}',
             lease_expires_at = now() + interval '1 hour'
           WHERE id % 7 = 0"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE jobs j SET parent_id = p.id, spawned_by = p.id FROM jobs p WHERE p.id = j.id - 1 AND j.id % 11 = 0")
        .execute(&pool)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let small = write_dump(&pool, &url, "small.jsonl.gz").await.unwrap();
    assert_eq!(small.jobs, 300);
    let path = dir.path().join("small.jsonl.gz");
    let jobs = all_jobs(&pool).await;
    assert_eq!(
        read_dump(&path).unwrap(),
        jobs,
        "every job, field for field"
    );
    // Each line holds exactly the fields of the model.
    let lines = dump_lines(&path);
    assert_eq!(lines.len(), jobs.len());
    for (line, job) in lines.iter().zip(&jobs) {
        let dumped: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let model = serde_json::to_value(job).unwrap();
        let fields: Vec<&String> = dumped.keys().collect();
        let expected: Vec<&String> = model.as_object().unwrap().keys().collect();
        assert_eq!(fields, expected, "job {}", job.id);
    }

    // Ten times the jobs: many times the buffer goes through, never more than it at once.
    let more: Vec<NewJob> = (0..3000)
        .map(|i| {
            let mut job = NewJob::new("test_job", format!("more-{i:05}"), 3);
            job.params =
                serde_json::json!({"product": format!("P{i}"), "padding": "x".repeat(300)});
            job
        })
        .collect();
    swath_engine::db::jobs::insert_jobs(&pool, &more)
        .await
        .unwrap();
    let large = write_dump(&pool, &url, "large.jsonl.gz").await.unwrap();
    assert_eq!(large.jobs, 3300);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(large.jobs, count as u64);
    let path = dir.path().join("large.jsonl.gz");
    assert_eq!(read_dump(&path).unwrap(), all_jobs(&pool).await);
    let lines = dump_lines(&path);
    let longest = lines.iter().map(|l| l.len() + 1).max().unwrap() as u64;
    assert_eq!(
        large.uncompressed_bytes,
        lines.iter().map(|l| l.len() as u64 + 1).sum::<u64>()
    );
    assert!(
        large.uncompressed_bytes > 8 * BUFFER_BYTES as u64,
        "{} bytes: not enough to tell streaming from collecting",
        large.uncompressed_bytes
    );
    for report in [&small, &large] {
        assert!(
            report.peak_buffered_bytes <= BUFFER_BYTES as u64 + longest,
            "{report:?} held more than the buffer and a line"
        );
    }
}

#[sqlx::test(migrations = "../sql")]
async fn a_dump_goes_to_s3_too(pool: PgPool) {
    use swath_s3_test_server::{TestServer, TEST_ACCESS_KEY, TEST_SECRET_KEY};
    inventory(&pool, 300).await;
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(root.path()).await.unwrap();
    server.create_bucket("inventory").unwrap();
    // The orchestrator reads S3 credentials and endpoint like the worker does.
    std::env::set_var("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY);
    std::env::set_var("AWS_ENDPOINT_URL", server.endpoint());
    let report = write_dump(&pool, "s3://inventory/swath/dumps", "jobs-test.jsonl.gz")
        .await
        .unwrap();
    assert_eq!(report.url, "s3://inventory/swath/dumps/jobs-test.jsonl.gz");
    assert_eq!(report.jobs, 300);
    let stored = server.object_path("inventory", "swath/dumps/jobs-test.jsonl.gz");
    assert_eq!(read_dump(&stored).unwrap(), all_jobs(&pool).await);
}

#[sqlx::test(migrations = "../sql")]
async fn two_instances_racing_for_ticks_fire_each_once(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        job_types: vec!["test_job".into()],
        dump_url: format!("file://{}", dir.path().display()),
        cron_pattern_dump_job: "* * * * * *".into(),
        enable_healing_job_operation: false,
        ..Settings::default()
    };
    let a = start(&pool, &settings).await;
    let b = start(&pool, &settings).await;
    let ids = [a.instance.service_id, b.instance.service_id];
    runs_until(&pool, ScheduleKind::Dump, |r| {
        r.iter().filter(|r| r.state == "succeeded").count() >= 6
    })
    .await;
    a.stop().await;
    b.stop().await;
    let mut all = runs(&pool, ScheduleKind::Dump, 1000).await.unwrap();
    all.sort_by_key(|r| r.tick_at);
    let ticks: Vec<DateTime<Utc>> = all.iter().map(|r| r.tick_at).collect();
    let mut distinct = ticks.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {all:#?}");
    // Every second; a tick is skipped only when the one before fired after it (a loaded machine):
    // then the late one fired once, for both.
    for pair in all.windows(2) {
        let gap = (pair[1].tick_at - pair[0].tick_at).num_milliseconds();
        let late = (pair[0].started_at - pair[0].tick_at).num_milliseconds();
        assert!(
            gap == 1000 || late >= 1000,
            "ticks {ticks:?}, runs {all:#?}"
        );
    }
    // Each succeeded run wrote its own dump.
    let dumps = std::fs::read_dir(dir.path()).unwrap().count();
    let succeeded = all.iter().filter(|r| r.state == "succeeded").count();
    assert_eq!(dumps, succeeded);
    assert!(all.iter().all(|r| ids.contains(&r.service_id)));
}

#[sqlx::test(migrations = "../sql")]
async fn a_tick_missed_while_every_instance_was_down_fires_once(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        job_types: vec!["test_job".into()],
        dump_url: format!("file://{}", dir.path().display()),
        cron_pattern_dump_job: "*/2 * * * * *".into(),
        enable_healing_job_operation: false,
        ..Settings::default()
    };
    prepare(&pool, &settings.schedule_settings().unwrap())
        .await
        .unwrap();
    // Every instance was down for the last ten minutes: 300 ticks were missed.
    let missed: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE schedules SET next_run_time = date_trunc('second', now()) - interval '10 minutes'
         WHERE id = 'dump' RETURNING next_run_time",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let scheduler = start(&pool, &settings).await;
    let fired = runs_until(&pool, ScheduleKind::Dump, |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    scheduler.stop().await;
    let all = runs(&pool, ScheduleKind::Dump, 1000).await.unwrap();
    let old: Vec<_> = all
        .iter()
        .filter(|r| r.tick_at < Utc::now() - chrono::TimeDelta::seconds(30))
        .collect();
    assert_eq!(old.len(), 1, "the missed ticks fire once: {all:#?}");
    assert_eq!(fired[0].tick_at, missed);
    let next = schedule(&pool, ScheduleKind::Dump)
        .await
        .unwrap()
        .next_run_time
        .unwrap();
    assert!(
        next > Utc::now() - chrono::TimeDelta::seconds(3),
        "the next tick is after the recovery: {next}"
    );
}
