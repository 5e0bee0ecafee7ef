//! Whole attempts: the orchestrator's API and dispatch round, the local executor running the real
//! `swath-worker`, the stand-in scientific image in a real Docker engine, and an in-process S3
//! server holding the inputs and receiving the products. Run `scripts/tools-docker.sh` and
//! `scripts/tools-storage.sh` first (the test command does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath_domain::job::JobResults;
use swath_domain::{Job, JobStatus};
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::get_job;
use swath_engine::executor::Executor;
use swath_s3_test_server::{TEST_ACCESS_KEY, TEST_SECRET_KEY};

use support::worker_world::{self, dispatch, exit_code, until, world, Runtime, World};

/// The stand-in's default command and image, with a short deadline for the deadline test.
const STAND_IN: &str = r#"[test_job]
processing_timeout_secs = 60
"#;

/// A ready `test_job` (`e2e-<name>`, two attempts) whose input product tells the stand-in
/// `params`.
async fn ready_job(world: &World, pool: &PgPool, name: &str, params: &str) -> Job {
    worker_world::ready_job(world, pool, "e2e", name, params, 2).await
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

#[sqlx::test(migrations = "../sql")]
async fn a_whole_attempt_stages_runs_uploads_and_reports(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let world = world(&pool, Runtime::Docker, STAND_IN, Some(256)).await;
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

#[sqlx::test(migrations = "../sql")]
async fn each_class_of_exit_code_ends_the_attempt_as_its_table_says(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let world = world(&pool, Runtime::Docker, STAND_IN, Some(256)).await;
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

#[sqlx::test(migrations = "../sql")]
async fn the_deadline_is_enforced(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let world = world(
        &pool,
        Runtime::Docker,
        "[test_job]\nprocessing_timeout_secs = 2\n",
        Some(64),
    )
    .await;
    let slow = ready_job(&world, &pool, "slow", "STANDIN_SLEEP=120\n").await;
    assert_eq!(dispatch(&world, &pool).await, 1);
    let slow = until(&world, &pool, slow.id, |j| j.attempt == 2).await;
    let deadline = support::last_external_error(&pool, slow.id).await;
    assert_eq!(deadline.error_subtype.as_deref(), Some("deadline"));
    assert_eq!(containers_of(&slow), "");
}

/// The memory limit, with a deadline far enough away that a slow container start cannot turn the
/// out-of-memory kill into a deadline.
#[sqlx::test(migrations = "../sql")]
async fn the_memory_limit_is_enforced(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let world = world(&pool, Runtime::Docker, STAND_IN, Some(64)).await;
    let greedy = ready_job(&world, &pool, "greedy", "STANDIN_ALLOC_MB=256\n").await;
    assert_eq!(dispatch(&world, &pool).await, 1);
    let greedy = until(&world, &pool, greedy.id, |j| {
        j.status == JobStatus::InternalError
    })
    .await;
    assert_eq!(
        greedy.status_error_subtype.as_deref(),
        Some("out of memory")
    );
    assert_eq!(containers_of(&greedy), "");
}

#[sqlx::test(migrations = "../sql")]
async fn sigterm_in_the_middle_of_processing_removes_the_container_and_asks_for_a_retry(
    pool: PgPool,
) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let world = world(&pool, Runtime::Docker, STAND_IN, Some(256)).await;
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

#[sqlx::test(migrations = "../sql")]
async fn storage_failing_during_staging_asks_for_a_retry_and_reports_no_product(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let world = world(&pool, Runtime::Docker, STAND_IN, Some(256)).await;
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
