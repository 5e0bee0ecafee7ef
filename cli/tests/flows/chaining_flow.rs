//! The whole flow of an `fsc_rlie` job and the jobs it spawns, with the real pieces: configuration,
//! dispatch to the local executor running the real `swath-worker`, the stand-in image in a real
//! Docker engine, an in-process S3 server, and publication to a JSON-lines file. The processed job
//! creates a quicklook (best effort) and a product check (attached); both read its products back
//! from the output store; the job is published, waits for its check, and is done after it. Run
//! `scripts/tools-docker.sh` and `scripts/tools-storage.sh` first (the test command does). The image
//! is `TEST_STANDIN_IMAGE` when set (e.g. one built with `SWATH_STANDIN_IMAGE=<tag>
//! scripts/tools-docker.sh`), else the stand-in's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath_domain::listing::CatalogueProduct;
use swath_domain::JobStatus;
use swath_engine::attempt::failure::{AttemptBackoff, StatusTimeouts};
use swath_engine::config::Settings;
use swath_engine::db::claim::Claimant;
use swath_engine::db::context::PgJobContext;
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::publications::start_publications;
use swath_engine::executor::local::{LocalExecutor, WorkerCommand};
use swath_engine::pipeline::configure::configure_round;
use swath_engine::pipeline::dispatch::dispatch_round;
use swath_engine::pipeline::track::track_round;
use swath_engine::publish::file::FilePublisher;
use swath_engine::publish::publish_round;
use swath_s3_test_server::{TestServer, TEST_ACCESS_KEY, TEST_SECRET_KEY};

/// A job as read back: id, type, parent, spawned by, status, results.
type Row = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    i16,
    serde_json::Value,
);

const L1C: &str = "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T121553";

#[sqlx::test(migrations = "../sql")]
async fn an_fsc_rlie_job_spawns_its_follow_ups_and_is_done_after_its_check(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = TestServer::start(s3_root.path()).await.unwrap();
    s3.create_bucket("eodata").unwrap();
    s3.create_bucket("hrsi").unwrap();
    let key = format!("Sentinel-2/MSI/L1C/2021/04/13/{L1C}.SAFE");
    for (file, content) in [
        ("manifest.safe", "<manifest/>".to_string()),
        ("GRANULE/B03.jp2", "x".repeat(4096)),
    ] {
        let path = s3.object_path("eodata", &format!("{key}/{file}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let mut flavors = swath_domain::flavor::default_flavors();
    for f in &mut flavors {
        f.memory_mb = f.memory_mb.min(512);
        f.local_slots = 2;
    }
    let image = std::env::var("TEST_STANDIN_IMAGE")
        .unwrap_or_else(|_| swath_domain::types::STAND_IN_IMAGE.to_string());
    let job_type_settings = ["fsc_rlie", "fsc_rlie_quicklook", "fsc_rlie_check"]
        .into_iter()
        .map(|name| {
            let overrides = swath_domain::types::JobTypeOverrides {
                image: Some(image.clone()),
                ..Default::default()
            };
            (name.to_string(), overrides)
        })
        .collect();
    let settings = Settings {
        eodata_url: "s3://eodata".into(),
        output_url: "s3://hrsi".into(),
        flavors,
        job_type_settings,
        ..Settings::default()
    };
    let registry = settings.registry().unwrap();
    let running = settings.running_job_types().unwrap();
    let api = support::api::spawn_api_with(&pool, &settings).await;
    let work = tempfile::tempdir().unwrap();
    let worker = support::worker_world::worker_binary();
    let executor = LocalExecutor::new(
        WorkerCommand {
            program: worker,
            args: vec!["run".into()],
        },
        api.base.trim_end_matches("/api/v1").to_string(),
        work.path().to_path_buf(),
        settings.flavors.clone(),
    )
    .with_worker_env(BTreeMap::from([
        ("SWATH_WORKER_S3_ENDPOINT".to_string(), s3.endpoint()),
        ("AWS_ACCESS_KEY_ID".to_string(), TEST_ACCESS_KEY.to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            TEST_SECRET_KEY.to_string(),
        ),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("SWATH_WORKER_RUNTIME".to_string(), "docker".to_string()),
    ]));
    let publications = tempfile::NamedTempFile::new().unwrap();
    let publisher = FilePublisher::new(
        publications.path().to_path_buf(),
        "resto".into(),
        swath_engine::config::Encoding::Json,
    );

    // The job, as ingestion creates it.
    let fsc_rlie = registry.get("fsc_rlie").unwrap();
    let listed = CatalogueProduct {
        catalogue_id: None,
        name: format!("{L1C}.SAFE"),
        input_path: format!("/eodata/{key}"),
        published_at: "2021-04-13T13:00:00Z".parse().unwrap(),
        sensing_start: None,
        sensing_end: None,
        footprint: None,
        cloud_cover: Some(3.0),
        size_bytes: None,
    };
    let planned = fsc_rlie
        .get_jobs_to_create(&PgJobContext::new(pool.clone()), &[listed])
        .await
        .unwrap();
    let parent = insert_jobs(&pool, &planned.jobs).await.unwrap()[0].id;

    let claimant = Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: serde_json::json!({"host": "test"}),
        lease: Duration::from_secs(600),
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let job = get_job(&pool, parent).await.unwrap();
        if job.status == JobStatus::Done {
            break;
        }
        assert!(
            Instant::now() < deadline && !job.status.is_terminal(),
            "job {parent} is {}: {:?}",
            job.status,
            job.status_message
        );
        for name in &running {
            configure_round(
                &pool,
                registry.get(name).unwrap().as_ref(),
                settings.configure_settings(),
            )
            .await
            .unwrap();
        }
        dispatch_round(
            &pool,
            &executor,
            &registry,
            &running,
            &settings.flavors,
            &claimant,
            AttemptBackoff::default(),
        )
        .await
        .unwrap();
        track_round(
            &pool,
            &executor,
            &StatusTimeouts::default(),
            AttemptBackoff::default(),
            None,
            100,
        )
        .await
        .unwrap();
        start_publications(&pool, &registry, &settings.publication_target, 100)
            .await
            .unwrap();
        publish_round(&pool, &publisher, 100).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let follow_ups: Vec<Row> = sqlx::query_as(
        "SELECT id, job_type, parent_id, spawned_by, status, results FROM jobs WHERE id <> $1 ORDER BY job_type",
    )
    .bind(parent)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(follow_ups.len(), 2, "{follow_ups:?}");
    let (check, quicklook) = (&follow_ups[0], &follow_ups[1]);
    assert_eq!(
        (check.1.as_str(), check.2, check.3),
        ("fsc_rlie_check", Some(parent), None)
    );
    assert_eq!(
        (quicklook.1.as_str(), quicklook.2, quicklook.3),
        ("fsc_rlie_quicklook", None, Some(parent))
    );
    assert_eq!(check.4, JobStatus::Done.id());
    for (job, kind, under) in [
        (check, "check", "Checks"),
        (quicklook, "quicklook", "Preview"),
    ] {
        let product = &job.5["products"][0];
        assert_eq!(product["kind"], kind, "{}", job.5);
        assert_eq!(
            product["path"],
            format!(
                "CLMS/Pan-European/High_Resolution_Layers/{under}/2021/04/13/{}_20210413T101021_S2B_T32TLR_V100_1",
                kind.to_uppercase()
            ),
            "named after the acquisition of the products it read"
        );
    }
    // The parent was published, then waited for its check, and was done only after it.
    let history = job_history(&pool, parent).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.previous_status, last.status),
        (Some(JobStatus::Published), JobStatus::Done)
    );
    assert_eq!(
        last.error_message.as_deref(),
        Some(format!("every attached child is done (the last one: {})", check.0).as_str())
    );
    let check_done = job_history(&pool, check.0)
        .await
        .unwrap()
        .last()
        .unwrap()
        .time;
    assert!(check_done <= last.time);
    // Only the parent's products were announced.
    let announced = std::fs::read_to_string(publications.path()).unwrap();
    assert_eq!(announced.lines().count(), 2, "{announced}");
}
