//! The worker's trust boundary on the outputs, end to end: the orchestrator's API and dispatch
//! round, the local executor running the real `swath-worker` with the process runtime (and the
//! Docker one), the stand-in script misbehaving as its parameter file says (`STANDIN_ATTACK`), and
//! an in-process S3 server holding the inputs and receiving the products. The Docker test needs
//! the stand-in image built from the current `worker/standin/` (`scripts/tools-docker.sh`; another
//! tag can be named by `TEST_STANDIN_IMAGE`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sqlx::PgPool;
use swath_domain::{Job, JobStatus};
use swath_engine::db::jobs::get_job;

use support::worker_world::{self, dispatch, ended, exit_code, Runtime, World};

/// The stand-in script on the host.
fn standin_script() -> String {
    support::workspace_root()
        .join("worker/standin/run.sh")
        .display()
        .to_string()
}

/// The job type settings that run the stand-in with `runtime`: the script on the host, or the
/// stand-in image (`TEST_STANDIN_IMAGE` when set).
fn job_types(runtime: Runtime) -> String {
    match runtime {
        Runtime::Process => format!(
            "[test_job]\nprocessing_timeout_secs = 60\ncommand = [\"/bin/sh\", \"{}\"]\n",
            standin_script()
        ),
        Runtime::Docker => format!(
            "[test_job]\nprocessing_timeout_secs = 60\nimage = \"{}\"\n",
            std::env::var("TEST_STANDIN_IMAGE")
                .unwrap_or_else(|_| swath_domain::types::STAND_IN_IMAGE.to_string())
        ),
    }
}

/// A world whose worker runs the stand-in with `runtime`.
async fn world(pool: &PgPool, runtime: Runtime) -> World {
    worker_world::world(pool, runtime, &job_types(runtime), None).await
}

/// A ready `test_job` (`outputs-<name>`, one attempt) whose input product tells the stand-in
/// `params`.
async fn ready_job(world: &World, pool: &PgPool, name: &str, params: &str) -> Job {
    worker_world::ready_job(world, pool, "outputs", name, params, 1).await
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

#[sqlx::test(migrations = "../sql")]
async fn a_product_holding_a_symlink_to_a_root_only_file_is_refused_and_nothing_is_published(
    pool: PgPool,
) {
    symlink_to_a_root_only_file(&pool, Runtime::Process).await;
}

#[sqlx::test(migrations = "../sql")]
async fn docker_a_product_holding_a_symlink_to_a_root_only_file_is_refused(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
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

#[sqlx::test(migrations = "../sql")]
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

#[sqlx::test(migrations = "../sql")]
/// An `fsc_rlie` job whose params no longer decode (they lack `l1c_id`: written by an older
/// version, or by hand) gets no task: it fails with the decoding error, not with the worker's exit.
async fn an_fsc_rlie_job_without_its_product_fails_with_the_reason(pool: PgPool) {
    let settings = format!(
        "{}[fsc_rlie]\nworker_flavor = \"eo1.xsmall\"\n",
        job_types(Runtime::Process)
    );
    let world = worker_world::world(&pool, Runtime::Process, &settings, None).await;
    let mut new = swath_domain::NewJob::new("fsc_rlie", "fsc-undecodable", 1);
    new.input_path = Some("/eodata/Sentinel-2/MSI/L1C/2021/04/13/S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408.SAFE".into());
    new.tile_id = Some("32TLR".into());
    new.measured_at = Some("2021-04-13T10:10:21Z".parse().unwrap());
    new.params = serde_json::json!({"mission": "S2B", "baseline": "N0300"});
    let id = swath_engine::db::jobs::insert_jobs(&pool, &[new])
        .await
        .unwrap()[0]
        .id;
    support::drive(
        &pool,
        get_job(&pool, id).await.unwrap(),
        &[JobStatus::Configured, JobStatus::Ready],
    )
    .await;
    assert_eq!(
        worker_world::dispatch_types(&world, &pool, &["fsc_rlie"]).await,
        1
    );
    let done = ended(&world, &pool, id).await;
    let message = done.status_message.unwrap_or_default();
    assert_eq!(
        (done.status, done.status_error_subtype.as_deref()),
        (JobStatus::InternalError, Some("params")),
        "{message}"
    );
    assert!(
        message.starts_with(&format!("no task for job {id}: "))
            && message.contains("missing field `l1c_id`"),
        "{message}"
    );
}
