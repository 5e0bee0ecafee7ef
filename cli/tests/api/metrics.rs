//! `/metrics`: parsed by a Prometheus text-format parser, with the numbers of a seeded database
//! (jobs by type and status, queue depth, catalogue lag) and of what the instance did (transitions,
//! attempts, retries, dispatch and publication latencies).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use sqlx::PgPool;
use swath_domain::publication::PublicationTarget;
use swath_domain::JobStatus;
use swath_engine::attempt::failure::AttemptBackoff;
use swath_engine::config::Encoding;
use swath_engine::config::Settings;
use swath_engine::db::claim::Claimant;
use swath_engine::db::publications::start_publications;
use swath_engine::executor::local::{LocalExecutor, WorkerCommand};
use swath_engine::pipeline::dispatch::dispatch_round;
use swath_engine::publish::file::FilePublisher;
use swath_engine::publish::publish_round;

use support::api::spawn_api;
use support::{drive, new_test_job, path_to, processed};

/// Reads and parses `/metrics` of the API at `base` (`.../api/v1`).
async fn scrape(base: &str) -> Scrape {
    let url = base.replace("/api/v1", "/metrics");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The samples of metric `name`, by the value of label `key` (and `key2` when given).
fn by_label<'a>(
    scrape: &'a Scrape,
    name: &str,
    keys: &[&str],
) -> BTreeMap<Vec<String>, &'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| {
            let key = keys
                .iter()
                .map(|k| s.labels.get(k).unwrap_or_default().to_string())
                .collect();
            (key, s)
        })
        .collect()
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{} is not a number: {other:?}", sample.metric),
    }
}

#[sqlx::test(migrations = "../sql")]
async fn metrics_show_the_seeded_jobs_and_what_the_instance_did(pool: PgPool) {
    let api = spawn_api(&pool).await;

    // Seeded: two ready test jobs, one initialized, one cancelled; the newest input published an
    // hour ago.
    let mut ready = Vec::new();
    for name in ["ready-1", "ready-2"] {
        let job = new_test_job(&pool, name).await;
        ready.push(drive(&pool, job, &path_to(JobStatus::Ready)[1..]).await);
    }
    new_test_job(&pool, "initialized").await;
    let cancelled = new_test_job(&pool, "cancelled").await;
    drive(&pool, cancelled, &[JobStatus::Cancelled]).await;
    sqlx::raw_sql(
        "UPDATE jobs SET input_published_at = now() - interval '1 hour' WHERE name = 'ready-1';
         UPDATE jobs SET input_published_at = now() - interval '5 hours' WHERE name = 'ready-2'",
    )
    .execute(&pool)
    .await
    .unwrap();

    // One live instance whose last heartbeat was 5 s ago, and one that stopped.
    let alive = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO services (id, host, name, heartbeat_at) VALUES ($1, 'node-1', 'swath serve', now() - interval '5 seconds')",
    )
    .bind(alive)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO services (id, host, name, state, ended_at) VALUES ($1, 'node-2', 'swath serve', 'stopped', now())",
    )
    .bind(uuid::Uuid::new_v4())
    .execute(&pool)
    .await
    .unwrap();

    let before = scrape(&api.base).await;
    let ages = by_label(
        &before,
        "swath_instance_heartbeat_age_seconds",
        &["service_id", "host"],
    );
    assert_eq!(ages.len(), 1, "only live instances have a heartbeat age");
    let age = number(ages[&vec![alive.to_string(), "node-1".to_string()]]);
    assert!((5.0..120.0).contains(&age), "age {age}");
    let instances = by_label(&before, "swath_instances", &["state"]);
    assert_eq!(number(instances[&vec!["alive".to_string()]]), 1.0);
    assert_eq!(number(instances[&vec!["stopped".to_string()]]), 1.0);
    assert_eq!(number(instances[&vec!["dead".to_string()]]), 0.0);
    let jobs = by_label(&before, "swath_jobs", &["job_type", "status"]);
    let count = |status: &str| {
        jobs.get(&vec!["test_job".to_string(), status.to_string()])
            .map(|s| number(s))
    };
    assert_eq!(count("ready"), Some(2.0));
    assert_eq!(count("initialized"), Some(1.0));
    assert_eq!(count("cancelled"), Some(1.0));
    assert_eq!(count("done"), None, "no job is done");
    let settings = Settings::default();
    let registry = settings.registry().unwrap();
    let flavor = registry
        .get("test_job")
        .unwrap()
        .spec()
        .worker_flavor
        .clone();
    let queue = by_label(&before, "swath_queue_depth", &["flavor"]);
    assert_eq!(number(queue[&vec![flavor.clone()]]), 2.0);
    // Every flavor of the job types is reported, even when nothing waits for it.
    let fsc_flavor = registry
        .get("fsc_rlie")
        .unwrap()
        .spec()
        .worker_flavor
        .clone();
    if fsc_flavor != flavor {
        assert_eq!(number(queue[&vec![fsc_flavor]]), 0.0);
    }
    let lag = number(
        by_label(&before, "swath_catalogue_lag_seconds", &["job_type"])
            [&vec!["test_job".to_string()]],
    );
    assert!((3590.0..3700.0).contains(&lag), "lag {lag}");
    assert_eq!(
        number(
            &before
                .samples
                .iter()
                .find(|s| s.metric == "swath_manual_retries")
                .unwrap()
                .clone()
        ),
        0.0
    );
    let transitions = |scrape: &Scrape, from: &str, to: &str| {
        by_label(scrape, "swath_status_transitions_total", &["from", "to"])
            .get(&vec![from.to_string(), to.to_string()])
            .map(|s| number(s))
            .unwrap_or(0.0)
    };
    // Counters are per process and tests share it: compare before and after.
    let queued_before = transitions(&before, "ready", "queued");

    // Dispatch the ready jobs (to a worker that does nothing), then publish a processed job.
    let executor = LocalExecutor::new(
        WorkerCommand {
            program: "/bin/true".into(),
            args: vec![],
        },
        "http://127.0.0.1:9".into(),
        std::env::temp_dir(),
        settings.flavors.clone(),
    );
    let claimant = Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: serde_json::json!({"name": "metrics test"}),
        lease: Duration::from_secs(60),
    };
    let backoff = AttemptBackoff {
        base: Duration::from_secs(30),
        max: Duration::from_secs(600),
    };
    let report = dispatch_round(
        &pool,
        &executor,
        &registry,
        &["test_job".to_string()],
        &settings.flavors,
        &claimant,
        backoff,
    )
    .await
    .unwrap();
    // The test flavor runs one local attempt at a time.
    assert_eq!(report.queued, 1, "{report:?}");
    let titles = vec!["TEST_20210413T101021_S2B_T32TLR_V100_1".to_string()];
    processed(&pool, "published", &titles).await;
    start_publications(&pool, &registry, &PublicationTarget::default(), 10)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let publisher = FilePublisher::new(dir.path().join("out.jsonl"), "key".into(), Encoding::Json);
    assert_eq!(
        publish_round(&pool, &publisher, 10)
            .await
            .unwrap()
            .confirmed,
        1
    );

    let after = scrape(&api.base).await;
    // The dispatch, and the published job's way to `processed`.
    assert_eq!(transitions(&after, "ready", "queued") - queued_before, 2.0);
    assert_eq!(
        transitions(&after, "published", "done") - transitions(&before, "published", "done"),
        1.0
    );
    let jobs = by_label(&after, "swath_jobs", &["job_type", "status"]);
    assert_eq!(
        number(jobs[&vec!["test_job".to_string(), "queued".to_string()]]),
        1.0
    );
    assert_eq!(
        number(jobs[&vec!["test_job".to_string(), "ready".to_string()]]),
        1.0
    );
    assert_eq!(
        number(jobs[&vec!["test_job".to_string(), "done".to_string()]]),
        1.0
    );
    let queue = by_label(&after, "swath_queue_depth", &["flavor"]);
    assert_eq!(number(queue[&vec![flavor.clone()]]), 1.0);
    let attempts = by_label(&after, "swath_attempts_total", &["job_type"]);
    assert!(number(attempts[&vec!["test_job".to_string()]]) >= 1.0);
    // Histograms: the dispatch waited a little in ready; the publication was confirmed at once.
    for name in [
        "swath_dispatch_latency_seconds",
        "swath_publication_latency_seconds",
    ] {
        let histogram = after
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no {name}"));
        let Value::Histogram(buckets) = &histogram.value else {
            panic!("{name} is not a histogram: {:?}", histogram.value);
        };
        let all = buckets.last().unwrap();
        assert!(
            all.less_than.is_infinite() && all.count >= 1.0,
            "{name}: {buckets:?}"
        );
        let within_a_minute: f64 = buckets
            .iter()
            .filter(|b| b.less_than <= 60.0)
            .map(|b| b.count)
            .fold(0.0, f64::max);
        assert!(within_a_minute >= 1.0, "{name}: {buckets:?}");
    }
}

#[sqlx::test(migrations = "../sql")]
async fn metrics_answer_on_an_empty_database(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let scrape = scrape(&api.base).await;
    assert!(!scrape.samples.iter().any(|s| s.metric == "swath_jobs"));
    let queue = by_label(&scrape, "swath_queue_depth", &["flavor"]);
    assert!(!queue.is_empty() && queue.values().all(|s| number(s) == 0.0));
}
