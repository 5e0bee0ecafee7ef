//! The worker's trust boundary on the outputs, end to end: the orchestrator's API and dispatch
//! round, the local executor running the real `swath-worker` with the process runtime (and the
//! Docker one), the stand-in script misbehaving as its parameter file says (`STANDIN_ATTACK`), and
//! an in-process S3 server holding the inputs and receiving the products. The Docker test needs
//! the stand-in image built from the current `worker/standin/` (`scripts/tools-docker.sh`; another
//! tag can be named by `TEST_STANDIN_IMAGE`).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath::config::Settings;
use swath::db::claim::Claimant;
use swath::db::jobs::{get_job, insert_jobs};
use swath::executor::local::{LocalExecutor, WorkerCommand};
use swath::executor::{AttemptOutcome, Executor};
use swath::pipeline::dispatch::dispatch_round;
use swath::pipeline::retry::{AttemptBackoff, StatusTimeouts};
use swath::pipeline::track::track_round;
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
        "{} is missing: build it with `cargo build -p swath-worker`",
        path.display()
    );
    path
}

/// The stand-in script on the host.
fn standin_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("worker/standin/run.sh")
        .display()
        .to_string()
}

/// The S3 server, the API, an executor and the settings of one test.
struct World {
    s3: TestServer,
    _s3_root: tempfile::TempDir,
    work: tempfile::TempDir,
    _api: TestApi,
    executor: LocalExecutor,
    settings: Settings,
}

/// Where the worker runs the code.
#[derive(Clone, Copy)]
enum Runtime {
    Process,
    Docker,
}

async fn world(pool: &PgPool, runtime: Runtime) -> World {
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = TestServer::start(s3_root.path()).await.unwrap();
    s3.create_bucket("eodata").unwrap();
    s3.create_bucket("hrsi").unwrap();
    let mut flavors = swath_job_types::flavor::default_flavors();
    flavors[0].local_slots = 2;
    let job_types = match runtime {
        Runtime::Process => format!(
            "[test_job]\nprocessing_timeout_secs = 60\ncommand = [\"/bin/sh\", \"{}\"]\n",
            standin_script()
        ),
        Runtime::Docker => format!(
            "[test_job]\nprocessing_timeout_secs = 60\nimage = \"{}\"\n",
            std::env::var("TEST_STANDIN_IMAGE")
                .unwrap_or_else(|_| swath_job_types::types::STAND_IN_IMAGE.to_string())
        ),
    };
    let settings = Settings {
        eodata_url: "s3://eodata".into(),
        output_url: "s3://hrsi/products".into(),
        flavors,
        job_type_settings: toml::from_str(&job_types).unwrap(),
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
            match runtime {
                Runtime::Process => "process",
                Runtime::Docker => "docker",
            }
            .to_string(),
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
    let mut new = NewJob::new("test_job", format!("outputs-{name}"), 1);
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

/// Tracks until job `id` ends (processed or failed; bounded), as `swath serve` would.
async fn ended(world: &World, pool: &PgPool, id: i64) -> Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = get_job(pool, id).await.unwrap();
        if matches!(
            job.status,
            JobStatus::Processed | JobStatus::InternalError | JobStatus::ExternalError
        ) {
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

/// Every file the S3 server keeps under `dir` (its buckets' objects and upload parts).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(current) = dirs.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

#[sqlx::test(migrations = "./sql")]
async fn a_product_holding_a_symlink_to_a_root_only_file_is_refused_and_nothing_is_published(
    pool: PgPool,
) {
    symlink_to_a_root_only_file(&pool, Runtime::Process).await;
}

#[sqlx::test(migrations = "./sql")]
async fn docker_a_product_holding_a_symlink_to_a_root_only_file_is_refused(pool: PgPool) {
    symlink_to_a_root_only_file(&pool, Runtime::Docker).await;
}

/// The code links a product file to a root-only file of the host (a path that means nothing in
/// a container, but everything to the worker that reads the outputs on the host).
async fn symlink_to_a_root_only_file(pool: &PgPool, runtime: Runtime) {
    let world = world(pool, runtime).await;
    // A root-only file outside the work directory, with content nobody else may read.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    let token = format!("secret-{}", uuid::Uuid::new_v4());
    std::fs::write(&secret, &token).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).unwrap();
    let job = ready_job(
        &world,
        pool,
        "symlink",
        &format!(
            "STANDIN_PRODUCTS=test_product\nSTANDIN_ATTACK=symlink:{}\n",
            secret.display()
        ),
    )
    .await;
    assert_eq!(dispatch(&world, pool).await, 1);
    let reference = get_job(pool, job.id).await.unwrap().executor_ref.unwrap();
    let done = ended(&world, pool, job.id).await;
    assert_eq!(
        done.status,
        JobStatus::InternalError,
        "{:?} {:?}",
        done.status_message,
        done.results
    );
    assert_eq!(done.status_error_subtype.as_deref(), Some("outputs"));
    let message = done.status_message.clone().unwrap_or_default();
    assert!(
        message.contains("stolen.txt") && message.contains("symbolic link"),
        "{message}"
    );
    assert!(done.results.is_none_or(|r| r.products.is_empty()));
    assert_eq!(exit_code(&world, &reference).await, 0, "reported and final");

    // Nothing was uploaded: no object at all in the output bucket, and the secret nowhere.
    let uploaded = files_under(&world.s3.root().join("hrsi"));
    assert!(uploaded.is_empty(), "{uploaded:?}");
    for file in files_under(world.s3.root()) {
        let content = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&content).contains(&token),
            "the secret reached {}",
            file.display()
        );
    }
    // The attempt's work directory is gone, the secret untouched.
    assert_eq!(std::fs::read_dir(world.work.path()).unwrap().count(), 0);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), token);
}

#[sqlx::test(migrations = "./sql")]
/// Two layers refuse an input name that is a path: the job type's parameter check, when the task is
/// built (shown here: the job fails with the field named, and no worker ever stages anything), and
/// the worker's own check of every input name (`attempt::check_input_names`, unit-tested beside it),
/// for a job type that would not check.
async fn an_absolute_input_name_is_refused_before_anything_is_staged(pool: PgPool) {
    let world = world(&pool, Runtime::Process).await;
    let job = ready_job(
        &world,
        &pool,
        "inputname",
        "STANDIN_PRODUCTS=test_product\n",
    )
    .await;
    // The input is named after the job's `product` parameter: make it a path outside the work
    // directory, written straight to the database (the API would refuse it with a 400).
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("staged-here");
    let mut params = job.params.clone();
    params["product"] = serde_json::json!(target.display().to_string());
    sqlx::query("UPDATE jobs SET params = $1 WHERE id = $2")
        .bind(&params)
        .bind(job.id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(dispatch(&world, &pool).await, 1);
    let done = ended(&world, &pool, job.id).await;
    assert!(
        !target.exists(),
        "staged outside the work directory: {:?}",
        std::fs::read_dir(&target).map(|d| d.count())
    );
    assert_eq!(
        done.status,
        JobStatus::InternalError,
        "{:?}",
        done.status_message
    );
    assert_eq!(done.status_error_subtype.as_deref(), Some("params"));
    let message = done.status_message.unwrap_or_default();
    assert!(
        message.contains("params.product")
            && message.contains(&format!("{:?}", target.display().to_string())),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}
