//! Whole attempts: the orchestrator's API and dispatch round, the local executor running the real
//! `swath-worker`, the stand-in scientific image in a real Docker engine, and an in-process S3
//! server holding the inputs and receiving the products. Run `scripts/tools-docker.sh` and
//! `scripts/tools-storage.sh` first (the test command does).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath::config::Settings;
use swath::db::claim::Claimant;
use swath::db::history::job_history;
use swath::db::jobs::{get_job, insert_jobs};
use swath::executor::local::{LocalExecutor, WorkerCommand};
use swath::executor::{AttemptOutcome, Executor};
use swath::pipeline::dispatch::dispatch_round;
use swath::pipeline::retry::{AttemptBackoff, StatusTimeouts};
use swath::pipeline::track::track_round;
use swath_job_types::job::JobResults;
use swath_job_types::{Job, JobPriority, JobStatus, NewJob};
use swath_worker::storage::testing::{TestServer, TEST_ACCESS_KEY, TEST_SECRET_KEY};

use support::api::{spawn_api_with, TestApi};
use support::drive;

/// The `swath-worker` binary built beside the tests.
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("swath-worker");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p swath-worker` (the test command builds the workspace)",
        path.display()
    );
    path
}

/// The S3 server, the API, an executor and the settings of one test.
struct World {
    s3: TestServer,
    _s3_root: tempfile::TempDir,
    _work: tempfile::TempDir,
    _api: TestApi,
    executor: LocalExecutor,
    settings: Settings,
}

async fn world(pool: &PgPool, job_type_settings: &str, xsmall_memory_mb: u64) -> World {
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = TestServer::start(s3_root.path()).await.unwrap();
    s3.create_bucket("eodata").unwrap();
    s3.create_bucket("hrsi").unwrap();
    let mut flavors = swath_job_types::flavor::default_flavors();
    flavors[0].memory_mb = xsmall_memory_mb;
    flavors[0].local_slots = 4;
    let settings = Settings {
        eodata_url: "s3://eodata".into(),
        output_url: "s3://hrsi/products".into(),
        flavors,
        job_type_settings: toml::from_str(job_type_settings).unwrap(),
        ..Settings::default()
    };
    let api = spawn_api_with(pool, &settings).await;
    let work = tempfile::tempdir().unwrap();
    let env = BTreeMap::from([
        ("SWATH_WORKER_S3_ENDPOINT".to_string(), s3.endpoint()),
        ("AWS_ACCESS_KEY_ID".to_string(), TEST_ACCESS_KEY.to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            TEST_SECRET_KEY.to_string(),
        ),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("SWATH_WORKER_RUNTIME".to_string(), "docker".to_string()),
        (
            "SWATH_WORKER_REQUEST_TIMEOUT_SECS".to_string(),
            "10".to_string(),
        ),
    ]);
    let executor = LocalExecutor::new(
        WorkerCommand {
            program: worker_binary(),
            args: vec!["run".into()],
        },
        api.base.trim_end_matches("/api/v1").to_string(),
        work.path().to_path_buf(),
        settings.flavors.clone(),
    )
    .with_worker_env(env);
    World {
        s3,
        _s3_root: s3_root,
        _work: work,
        _api: api,
        executor,
        settings,
    }
}

/// The stand-in's default command and image, with a short deadline for the deadline test.
const STAND_IN: &str = r#"[test_job]
processing_timeout_secs = 60
"#;

/// A ready `test_job` whose input product (in the eodata bucket) tells the stand-in `params`.
async fn ready_job(world: &World, pool: &PgPool, name: &str, params: &str) -> Job {
    let product = format!("S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_{name}.SAFE");
    let key = format!("Sentinel-2/MSI/L1C/2021/04/13/{product}");
    for (file, content) in [
        ("manifest.safe", "<manifest/>".to_string()),
        ("GRANULE/B03.jp2", "x".repeat(4096)),
        ("standin.params", params.to_string()),
    ] {
        let path = world.s3.object_path("eodata", &format!("{key}/{file}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let mut new = NewJob::new("test_job", format!("e2e-{name}"), 2);
    new.priority = JobPriority::Nrt;
    new.input_path = Some(format!("/eodata/{key}"));
    new.params = serde_json::json!({ "product": product, "mission": "S2" });
    let inserted = insert_jobs(pool, &[new]).await.unwrap();
    let job = get_job(pool, inserted[0].id).await.unwrap();
    drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await
}

async fn dispatch(world: &World, pool: &PgPool) -> usize {
    let registry = world.settings.registry().unwrap();
    let claimant = Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: serde_json::json!({"host": "test"}),
        lease: Duration::from_secs(600),
    };
    dispatch_round(
        pool,
        &world.executor,
        &registry,
        &["test_job".to_string()],
        &world.settings.flavors,
        &claimant,
        AttemptBackoff::default(),
    )
    .await
    .unwrap()
    .queued
}

/// Tracks until job `id` satisfies `done` (bounded); the worker's exit code is settled by the
/// tracking round as `swath serve` would.
async fn until(world: &World, pool: &PgPool, id: i64, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = get_job(pool, id).await.unwrap();
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} stuck in {}: {:?}",
            job.status,
            job.status_message
        );
        track_round(
            pool,
            &world.executor,
            &StatusTimeouts::default(),
            AttemptBackoff::default(),
            None,
            100,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until the worker behind `reference` exits, and returns its exit code.
async fn exit_code(world: &World, reference: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match world.executor.outcome(reference).await.unwrap() {
            AttemptOutcome::Exited(code) => return code,
            AttemptOutcome::Running | AttemptOutcome::Pending => {}
            other => panic!("the worker ended as {other:?}"),
        }
        assert!(Instant::now() < deadline, "the worker did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Containers of `job` still present in the engine.
fn containers_of(job: &Job) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("name=swath-{}-", job.id),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("the docker CLI runs");
    let uid = job.uid.simple().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|name| name.ends_with(&uid[..12]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[sqlx::test(migrations = "./sql")]
async fn a_whole_attempt_stages_runs_uploads_and_reports(pool: PgPool) {
    let world = world(&pool, STAND_IN, 256).await;
    let job = ready_job(&world, &pool, "ok", "STANDIN_PRODUCTS=test_product\n").await;
    assert_eq!(dispatch(&world, &pool).await, 1);
    let reference = get_job(&pool, job.id).await.unwrap().executor_ref.unwrap();
    let done = until(&world, &pool, job.id, |j| j.status == JobStatus::Processed).await;
    assert_eq!(exit_code(&world, &reference).await, 0);
    let statuses: Vec<_> = job_history(&pool, job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.status)
        .collect();
    assert!(statuses.ends_with(&[
        JobStatus::Queued,
        JobStatus::Started,
        JobStatus::PreProcessing,
        JobStatus::Processing,
        JobStatus::PostProcessing,
        JobStatus::Processed
    ]));
    assert!(
        done.software_version
            .as_deref()
            .unwrap()
            .starts_with("sha256:"),
        "the image digest is recorded: {:?}",
        done.software_version
    );
    let results: JobResults = done.results.unwrap();
    assert_eq!(results.return_code, Some(0));
    let product = &results.products[0];
    assert_eq!(product.kind, "test_product");
    assert!(product
        .path
        .starts_with(&format!("products/test/{}/", job.uid)));
    assert!(
        product.infos["productIdentifier"].is_string(),
        "{}",
        product.infos
    );
    assert!(product.size_bytes.unwrap() > 0);

    // An independent S3 client reads what the worker uploaded; the metadata stayed out.
    let aws = PathBuf::from("/usr/bin/aws");
    assert!(
        aws.is_file(),
        "/usr/bin/aws is missing: run scripts/tools-storage.sh"
    );
    // Asynchronously: the S3 server runs on this test's runtime.
    let listing = tokio::process::Command::new(aws)
        .args([
            "--endpoint-url",
            &world.s3.endpoint(),
            "s3",
            "ls",
            "--recursive",
            &format!("s3://hrsi/{}/", product.path),
        ])
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .await
        .unwrap();
    let errors = String::from_utf8_lossy(&listing.stderr).to_string();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let sizes: u64 = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    assert_eq!(sizes, product.size_bytes.unwrap(), "{listing} {errors}");
    assert!(!listing.contains("dias_catalog_submit.json"), "{listing}");
    assert_eq!(containers_of(&job), "", "the container was removed");
}

#[sqlx::test(migrations = "./sql")]
async fn each_class_of_exit_code_ends_the_attempt_as_its_table_says(pool: PgPool) {
    let world = world(&pool, STAND_IN, 256).await;
    let none = ready_job(&world, &pool, "none", "STANDIN_EXIT=203\n").await;
    let bug = ready_job(&world, &pool, "bug", "STANDIN_EXIT=5\n").await;
    let flaky = ready_job(&world, &pool, "flaky", "STANDIN_EXIT=150\n").await;
    assert_eq!(dispatch(&world, &pool).await, 3);
    let reference = |j: &Job| j.executor_ref.clone().unwrap();
    let (none_ref, bug_ref, flaky_ref) = (
        reference(&get_job(&pool, none.id).await.unwrap()),
        reference(&get_job(&pool, bug.id).await.unwrap()),
        reference(&get_job(&pool, flaky.id).await.unwrap()),
    );
    let none = until(&world, &pool, none.id, |j| j.status == JobStatus::Processed).await;
    let results: JobResults = none.results.unwrap();
    assert!(results.products.is_empty(), "no product, no error");
    assert_eq!(exit_code(&world, &none_ref).await, 0);
    let bug = until(&world, &pool, bug.id, |j| {
        j.status == JobStatus::InternalError
    })
    .await;
    assert_eq!(bug.status_error_subtype.as_deref(), Some("exit code 5"));
    assert_eq!(exit_code(&world, &bug_ref).await, 0, "reported and final");
    let flaky = until(&world, &pool, flaky.id, |j| j.attempt == 2).await;
    assert_eq!(
        flaky.status,
        JobStatus::Ready,
        "an external error: a new attempt"
    );
    assert_eq!(exit_code(&world, &flaky_ref).await, 2, "retry");
}

#[sqlx::test(migrations = "./sql")]
async fn deadline_and_memory_limit_are_enforced(pool: PgPool) {
    let world = world(&pool, "[test_job]\nprocessing_timeout_secs = 2\n", 64).await;
    let slow = ready_job(&world, &pool, "slow", "STANDIN_SLEEP=120\n").await;
    let greedy = ready_job(&world, &pool, "greedy", "STANDIN_ALLOC_MB=256\n").await;
    assert_eq!(dispatch(&world, &pool).await, 2);
    let slow = until(&world, &pool, slow.id, |j| j.attempt == 2).await;
    let deadline = support::last_external_error(&pool, slow.id).await;
    assert_eq!(deadline.error_subtype.as_deref(), Some("deadline"));
    let greedy = until(&world, &pool, greedy.id, |j| {
        j.status == JobStatus::InternalError
    })
    .await;
    assert_eq!(
        greedy.status_error_subtype.as_deref(),
        Some("out of memory")
    );
    assert_eq!(containers_of(&slow), "");
    assert_eq!(containers_of(&greedy), "");
}

#[sqlx::test(migrations = "./sql")]
async fn sigterm_in_the_middle_of_processing_removes_the_container_and_asks_for_a_retry(
    pool: PgPool,
) {
    let world = world(&pool, STAND_IN, 256).await;
    let job = ready_job(&world, &pool, "stopped", "STANDIN_SLEEP=120\n").await;
    assert_eq!(dispatch(&world, &pool).await, 1);
    let processing = until(&world, &pool, job.id, |j| j.status == JobStatus::Processing).await;
    let reference = processing.executor_ref.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while containers_of(&job).is_empty() {
        assert!(Instant::now() < deadline, "the container started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.executor.stop(&reference).await.unwrap();
    assert_eq!(exit_code(&world, &reference).await, 2);
    assert_eq!(containers_of(&job), "", "the container was removed");
    let after = until(&world, &pool, job.id, |j| j.attempt == 2).await;
    assert_eq!(after.status, JobStatus::Ready);
}

#[sqlx::test(migrations = "./sql")]
async fn storage_failing_during_staging_asks_for_a_retry_and_reports_no_product(pool: PgPool) {
    let world = world(&pool, STAND_IN, 256).await;
    let job = ready_job(&world, &pool, "cut", "STANDIN_PRODUCTS=test_product\n").await;
    let stalled = world.s3.faults().stall_get_object(1);
    assert_eq!(dispatch(&world, &pool).await, 1);
    let reference = get_job(&pool, job.id).await.unwrap().executor_ref.unwrap();
    tokio::time::timeout(Duration::from_secs(60), stalled)
        .await
        .expect("the worker started staging")
        .unwrap();
    world.s3.stop().await;
    assert_eq!(exit_code(&world, &reference).await, 2);
    let after = until(&world, &pool, job.id, |j| j.attempt == 2).await;
    assert_eq!(after.status, JobStatus::Ready);
    assert!(after.results.is_none(), "nothing is reported as output");
    let error = support::last_external_error(&pool, job.id).await;
    assert_eq!(error.error_subtype.as_deref(), Some("storage"));
}
