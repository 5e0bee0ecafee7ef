//! The world of the end-to-end worker tests: an in-process S3 server holding the inputs and
//! receiving the products, the orchestrator's API, and the local executor running the real
//! `swath-worker` (with the process or the Docker runtime); jobs made ready for the stand-in,
//! dispatched, and tracked until they end as `swath serve` would.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use swath_engine::attempt::failure::{AttemptBackoff, StatusTimeouts};
use swath_engine::config::Settings;
use swath_engine::db::claim::Claimant;
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::executor::local::{LocalExecutor, WorkerCommand};
use swath_engine::executor::{AttemptOutcome, Executor};
use swath_engine::pipeline::dispatch::dispatch_round;
use swath_engine::pipeline::track::track_round;
use swath_s3_test_server::{TestServer, TEST_ACCESS_KEY, TEST_SECRET_KEY};

use super::api::{spawn_api_with, TestApi};
use super::drive;

/// The `swath-worker` binary built beside the tests.
pub fn worker_binary() -> PathBuf {
    super::built_binary("swath-worker", "swath-worker")
}

/// Where the worker runs the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// A process on the host (`SWATH_WORKER_RUNTIME=process`).
    Process,
    /// A container in the Docker engine (`SWATH_WORKER_RUNTIME=docker`).
    Docker,
}

impl Runtime {
    /// The value of `SWATH_WORKER_RUNTIME` that selects this runtime.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Docker => "docker",
        }
    }
}

/// The S3 server, the API, an executor and the settings of one test.
pub struct World {
    /// The S3 server: buckets `eodata` (inputs) and `hrsi` (products).
    pub s3: TestServer,
    _s3_root: tempfile::TempDir,
    /// The executor's work root (the attempts' work directories are made below it).
    pub work: tempfile::TempDir,
    _api: TestApi,
    /// The local executor running `swath-worker`.
    pub executor: LocalExecutor,
    /// The orchestrator's settings.
    pub settings: Settings,
}

/// A world whose worker runs the code with `runtime`, with the job types set by
/// `job_type_settings` (TOML) and, when given, `xsmall_memory_mb` as the memory of the smallest
/// flavor (which has 4 local slots).
pub async fn world(
    pool: &PgPool,
    runtime: Runtime,
    job_type_settings: &str,
    xsmall_memory_mb: Option<u64>,
) -> World {
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = TestServer::start(s3_root.path()).await.unwrap();
    s3.create_bucket("eodata").unwrap();
    s3.create_bucket("hrsi").unwrap();
    let mut flavors = swath_domain::flavor::default_flavors();
    if let Some(memory_mb) = xsmall_memory_mb {
        flavors[0].memory_mb = memory_mb;
    }
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
    // The code runs as `nobody` when the tests run as root: it must reach its work directory.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = BTreeMap::from([
        ("SWATH_WORKER_S3_ENDPOINT".to_string(), s3.endpoint()),
        ("AWS_ACCESS_KEY_ID".to_string(), TEST_ACCESS_KEY.to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            TEST_SECRET_KEY.to_string(),
        ),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        (
            "SWATH_WORKER_RUNTIME".to_string(),
            runtime.name().to_string(),
        ),
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
        work,
        _api: api,
        executor,
        settings,
    }
}

/// A ready `test_job` called `<prefix>-<name>` with `max_attempts` attempts, whose input product
/// (in the eodata bucket) tells the stand-in `params`.
pub async fn ready_job(
    world: &World,
    pool: &PgPool,
    prefix: &str,
    name: &str,
    params: &str,
    max_attempts: i32,
) -> Job {
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
    let mut new = NewJob::new("test_job", format!("{prefix}-{name}"), max_attempts);
    new.priority = JobPriority::Nrt;
    new.input_path = Some(format!("/eodata/{key}"));
    new.params = serde_json::json!({ "product": product, "mission": "S2" });
    let inserted = insert_jobs(pool, &[new]).await.unwrap();
    let job = get_job(pool, inserted[0].id).await.unwrap();
    drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await
}

/// One dispatch round of the ready `test_job`s; returns how many were queued.
pub async fn dispatch(world: &World, pool: &PgPool) -> usize {
    dispatch_types(world, pool, &["test_job"]).await
}

/// One dispatch round of the ready jobs of `job_types`; returns how many were queued.
pub async fn dispatch_types(world: &World, pool: &PgPool, job_types: &[&str]) -> usize {
    let registry = world.settings.registry().unwrap();
    let claimant = Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: serde_json::json!({"host": "test"}),
        lease: Duration::from_secs(600),
    };
    let job_types: Vec<String> = job_types.iter().map(|t| t.to_string()).collect();
    dispatch_round(
        pool,
        &world.executor,
        &registry,
        &job_types,
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
pub async fn until(world: &World, pool: &PgPool, id: i64, done: impl Fn(&Job) -> bool) -> Job {
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

/// Tracks until job `id` ends (processed or failed; bounded), as `swath serve` would.
pub async fn ended(world: &World, pool: &PgPool, id: i64) -> Job {
    until(world, pool, id, |job| {
        matches!(
            job.status,
            JobStatus::Processed | JobStatus::InternalError | JobStatus::ExternalError
        )
    })
    .await
}

/// Waits (bounded) until the worker behind `reference` exits, and returns its exit code.
pub async fn exit_code(world: &World, reference: &str) -> i32 {
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
