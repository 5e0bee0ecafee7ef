//! Product identity end to end: `fsc_rlie` jobs run by the real `swath-worker` (process runtime,
//! the stand-in script on the host) against an in-process S3 server, then put in the publication
//! outbox. A product's identity is its name without the quality flag: two live jobs never write one
//! identity, a re-run at the same baseline replaces the product whole and is announced as an
//! update, a newer processing baseline is a new product.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sqlx::PgPool;
use swath_domain::publication::PublicationTarget;
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::publications::{start_publications, unconfirmed, Outgoing};

use support::drive;
use support::worker_world::{self, dispatch_types, ended, Runtime, World};

/// Sensing time, tile and day of the jobs below: one acquisition.
const SENSING: &str = "20210413T101021";
const FSC: &str = "FSC_20210413T101021_S2B_T32TLR";
const RLIE: &str = "RLIE_20210413T101021_S2B_T32TLR";
const FSC_DIR: &str = "products/CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13";
const RLIE_DIR: &str = "products/CLMS/Pan-European/High_Resolution_Layers/Ice/RLIE/2021/04/13";

/// A world whose worker runs the stand-in script on the host for `fsc_rlie` jobs.
async fn world(pool: &PgPool) -> World {
    let script = support::workspace_root().join("worker/standin/run.sh");
    let settings = format!(
        "[fsc_rlie]\nprocessing_timeout_secs = 60\nworker_flavor = \"{}\"\ncommand = [\"/bin/sh\", \"{}\"]\n",
        swath_domain::flavor::default_flavors()[0].name,
        script.display()
    );
    worker_world::world(pool, Runtime::Process, &settings, None).await
}

/// A ready `fsc_rlie` job for the L1C of this acquisition with discriminator `discriminator`, whose
/// input tells the stand-in `params` (its content also seeds the products' bytes), replacing the
/// products of `supersedes`.
async fn ready_job(
    world: &World,
    pool: &PgPool,
    discriminator: &str,
    params: &str,
    supersedes: &[i64],
) -> Job {
    let l1c = format!("S2B_MSIL1C_{SENSING}_N0300_R022_T32TLR_{discriminator}");
    let key = format!("Sentinel-2/MSI/L1C/2021/04/13/{l1c}.SAFE");
    for (file, content) in [
        ("manifest.safe", format!("<manifest name=\"{l1c}\"/>")),
        ("standin.params", params.to_string()),
    ] {
        let path = world.s3.object_path("eodata", &format!("{key}/{file}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let mut new = NewJob::new("fsc_rlie", l1c.clone(), 1);
    new.priority = JobPriority::Nrt;
    new.product_id = Some(l1c.clone());
    new.tile_id = Some("32TLR".into());
    new.measured_at = Some("2021-04-13T10:10:21Z".parse().unwrap());
    new.input_path = Some(format!("/eodata/{key}"));
    new.params = serde_json::json!({"l1c_id": l1c, "mission": "S2B", "baseline": "N0300",
        "relative_orbit": 22, "discriminator": "2021-04-13T12:15:53Z", "cloud_cover": 10.0,
        "nrt": true, "reprocessing_context": null, "maja_mode": "init", "previous_job_id": null,
        "l2a_path_in": null, "l2a_path_out": format!("32TLR/L2A/{l1c}"), "supersedes": supersedes});
    let inserted = insert_jobs(pool, &[new]).await.unwrap();
    let job = get_job(pool, inserted[0].id).await.unwrap();
    drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await
}

/// Dispatches the ready `fsc_rlie` jobs and tracks `job` until it ends.
async fn run(world: &World, pool: &PgPool, job: &Job) -> Job {
    assert_eq!(dispatch_types(world, pool, &["fsc_rlie"]).await, 1);
    ended(world, pool, job.id).await
}

/// The first job of the acquisition, run to `processed`.
async fn first_run(world: &World, pool: &PgPool) -> Job {
    let first = ready_job(world, pool, "20210413T121553", "", &[]).await;
    let first = run(world, pool, &first).await;
    assert_eq!(
        first.status,
        JobStatus::Processed,
        "{:?}",
        first.status_message
    );
    first
}

/// Every object under `dir` of the products bucket, with its bytes.
fn objects(world: &World, dir: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    let root = world.s3.object_path("hrsi", dir);
    let mut found = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.insert(path.strip_prefix(&root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    found
}

/// The products under `dir` of the products bucket: the directories holding objects (the S3
/// server keeps the directories of deleted objects), staging excluded.
fn products_in(world: &World, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = objects(world, dir)
        .into_keys()
        .filter_map(|key| {
            let first = key.components().next()?;
            Some(first.as_os_str().to_string_lossy().into_owned())
        })
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.dedup();
    names
}

/// Moves processed jobs to the outbox; returns every message not yet confirmed, by message id.
async fn outbox(world: &World, pool: &PgPool) -> BTreeMap<String, Outgoing> {
    let registry = world.settings.registry().unwrap();
    start_publications(pool, &registry, &PublicationTarget::default(), 100)
        .await
        .unwrap();
    unconfirmed(pool, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.message_id.clone(), m))
        .collect()
}

fn announcement(message: &Outgoing) -> (&str, i64, &str) {
    let a = &message.message["announcement"];
    (
        a["identity"].as_str().unwrap(),
        a["revision"].as_i64().unwrap(),
        a["operation"].as_str().unwrap(),
    )
}

/// Two live jobs made to write one product (two L1C names of one acquisition, so the stand-in
/// names their products alike, at one path): the second fails with the reason, naming the first
/// job and the product, and uploads nothing; the first job's objects are byte-identical.
#[sqlx::test(migrations = "../sql")]
async fn a_collision_fails_the_second_job_and_leaves_the_first_products_intact(pool: PgPool) {
    let world = world(&pool).await;
    let first = first_run(&world, &pool).await;
    let before: Vec<_> = [FSC_DIR, RLIE_DIR]
        .iter()
        .map(|d| objects(&world, d))
        .collect();
    assert_eq!(products_in(&world, FSC_DIR), vec![format!("{FSC}_V100_1")]);
    assert!(before[0].len() >= 2, "{:?}", before[0].keys());

    // Another input: the stand-in writes other bytes under the same names.
    let second = ready_job(&world, &pool, "20210413T131553", "# another input\n", &[]).await;
    let second = run(&world, &pool, &second).await;
    assert_eq!(second.status, JobStatus::InternalError);
    assert_eq!(second.status_error_subtype.as_deref(), Some("collision"));
    let message = second.status_message.clone().unwrap();
    assert!(
        message.contains(&format!("{FSC}_V100"))
            && message.contains(&format!("job {} ({}, processed)", first.id, first.name)),
        "{message}"
    );
    let after: Vec<_> = [FSC_DIR, RLIE_DIR]
        .iter()
        .map(|d| objects(&world, d))
        .collect();
    assert_eq!(before, after, "the first job's products changed");
    // Nothing of the second job is left, not even staged parts.
    let staged: Vec<_> = objects(&world, "products")
        .into_keys()
        .filter(|k| k.to_string_lossy().contains(".swath-staging"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");

    // Only the first job's products are announced, once each.
    let messages = outbox(&world, &pool).await;
    let ids: Vec<&str> = messages.keys().map(String::as_str).collect();
    assert_eq!(ids, vec![format!("{FSC}_V100#1"), format!("{RLIE}_V100#1")]);
    assert!(messages.values().all(|m| m.job_id == first.id));
}

/// A re-run at the same baseline (the job replaces the first run: a missing partial input
/// arrived) replaces the product whole, even under another quality flag, and is announced as an
/// update of the same identity; a reprocessing with a newer processor (baseline V200) is a new
/// product beside the old one, announced once.
#[sqlx::test(migrations = "../sql")]
async fn a_rerun_replaces_and_updates_and_a_new_baseline_is_a_new_product(pool: PgPool) {
    let world = world(&pool).await;
    let first = first_run(&world, &pool).await;
    let created = outbox(&world, &pool).await;
    assert_eq!(created.len(), 2);
    for m in created.values() {
        assert_eq!(announcement(m).1, 1);
        assert_eq!(announcement(m).2, "create");
    }
    let first_objects = objects(&world, &format!("{FSC_DIR}/{FSC}_V100_1"));

    // The re-run: degraded this time (flag 0), from other input bytes.
    let rerun = ready_job(
        &world,
        &pool,
        "20210413T131553",
        "STANDIN_FLAG=0\n",
        &[first.id],
    )
    .await;
    let rerun = run(&world, &pool, &rerun).await;
    assert_eq!(
        rerun.status,
        JobStatus::Processed,
        "{:?}",
        rerun.status_message
    );
    // One product at the identity: the new one, whole.
    assert_eq!(products_in(&world, FSC_DIR), vec![format!("{FSC}_V100_0")]);
    assert_eq!(
        products_in(&world, RLIE_DIR),
        vec![format!("{RLIE}_V100_0")]
    );
    let replaced = objects(&world, &format!("{FSC_DIR}/{FSC}_V100_0"));
    assert_eq!(replaced.len(), first_objects.len());
    assert_ne!(
        replaced.values().collect::<Vec<_>>(),
        first_objects.values().collect::<Vec<_>>()
    );
    let messages = outbox(&world, &pool).await;
    let update = &messages[&format!("{FSC}_V100#2")];
    assert_eq!(update.job_id, rerun.id);
    assert_eq!(
        announcement(update),
        (format!("{FSC}_V100").as_str(), 2, "update")
    );
    assert_eq!(update.product_id, format!("{FSC}_V100_0"));
    assert!(messages.contains_key(&format!("{RLIE}_V100#2")));

    // A newer processor: a new product beside the replaced one, announced once as new.
    let reprocessed = ready_job(
        &world,
        &pool,
        "20210413T141553",
        "STANDIN_BASELINE=V200\n",
        &[],
    )
    .await;
    let reprocessed = run(&world, &pool, &reprocessed).await;
    assert_eq!(
        reprocessed.status,
        JobStatus::Processed,
        "{:?}",
        reprocessed.status_message
    );
    assert_eq!(
        products_in(&world, FSC_DIR),
        vec![format!("{FSC}_V100_0"), format!("{FSC}_V200_1")]
    );
    let messages = outbox(&world, &pool).await;
    let new = &messages[&format!("{FSC}_V200#1")];
    assert_eq!(new.job_id, reprocessed.id);
    assert_eq!(announcement(new).2, "create");
    // Every announcement has its own message id; each (identity, revision) once.
    let all: Vec<(String, i32)> =
        sqlx::query_as("SELECT identity, revision FROM publications ORDER BY identity, revision")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        all,
        vec![
            (format!("{FSC}_V100"), 1),
            (format!("{FSC}_V100"), 2),
            (format!("{FSC}_V200"), 1),
            (format!("{RLIE}_V100"), 1),
            (format!("{RLIE}_V100"), 2),
            (format!("{RLIE}_V200"), 1),
        ]
    );
}
