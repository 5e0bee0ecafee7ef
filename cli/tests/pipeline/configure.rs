//! The configuration loop on real job types and a real database: the tile time series of
//! `fsc_rlie`, wake-ups when a dependency settles (and no scanning otherwise), and bad jobs.

use std::time::Duration;

use sqlx::PgPool;
use swath_domain::listing::CatalogueProduct;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::catalogue::CataloguePage;
use swath_engine::config::Settings;
use swath_engine::db::configure::set_waiting;
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::{get_job, list_jobs, JobFilter};
use swath_engine::pipeline::configure::{configure_round, ConfigureReport, ConfigureSettings};
use swath_engine::pipeline::ingest::ingest_page;

use support::drive;

fn product(name: &str, published: &str) -> CatalogueProduct {
    CatalogueProduct {
        catalogue_id: None,
        name: name.into(),
        input_path: format!("/eodata/test/{name}.SAFE"),
        published_at: published.parse().unwrap(),
        sensing_start: None,
        sensing_end: None,
        footprint: None,
        cloud_cover: Some(10.0),
        size_bytes: None,
    }
}

/// Three dates of tile 32TLR, ingested through the real job type.
async fn time_series(pool: &PgPool) -> Vec<Job> {
    let registry = Settings::default().registry().unwrap();
    let page = CataloguePage {
        products: [1, 5, 9]
            .iter()
            .map(|d| {
                product(
                    &format!(
                        "S2B_MSIL1C_202104{d:02}T101021_N0300_R022_T32TLR_202104{d:02}T122408"
                    ),
                    &format!("2021-04-{d:02}T13:00:00Z"),
                )
            })
            .collect(),
        ..Default::default()
    };
    ingest_page(
        pool,
        registry.get("fsc_rlie").unwrap().as_ref(),
        "test",
        &page,
    )
    .await
    .unwrap();
    let mut jobs = list_jobs(
        pool,
        &JobFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    jobs.sort_by_key(|j| j.measured_at);
    jobs
}

async fn round(pool: &PgPool, job_type: &str) -> ConfigureReport {
    let registry = Settings::default().registry().unwrap();
    configure_round(
        pool,
        registry.get(job_type).unwrap().as_ref(),
        ConfigureSettings::default(),
    )
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../sql")]
async fn a_tile_time_series_advances_as_each_date_is_processed(pool: PgPool) {
    let jobs = time_series(&pool).await;
    let report = round(&pool, "fsc_rlie").await;
    assert_eq!(
        (report.examined, report.ready, report.waiting),
        (3, 1, 2),
        "{report:?}"
    );
    let [d1, d5, d9] = [0, 1, 2].map(|i| jobs[i].id);
    let (j1, j5, j9) = (
        get_job(&pool, d1).await.unwrap(),
        get_job(&pool, d5).await.unwrap(),
        get_job(&pool, d9).await.unwrap(),
    );
    assert_eq!(j1.status, JobStatus::Ready);
    assert_eq!(j1.params["maja_mode"], "init");
    assert_eq!(
        (j5.status, j5.depends_on),
        (JobStatus::Configured, Some(d1))
    );
    assert_eq!(
        (j9.status, j9.depends_on),
        (JobStatus::Configured, Some(d5))
    );
    let history: Vec<JobStatus> = job_history(&pool, d1)
        .await
        .unwrap()
        .iter()
        .map(|h| h.status)
        .collect();
    assert_eq!(
        history,
        vec![
            JobStatus::Initialized,
            JobStatus::Configured,
            JobStatus::Ready
        ]
    );
    let waiting = job_history(&pool, d5).await.unwrap();
    assert!(
        waiting[1]
            .error_message
            .as_deref()
            .unwrap()
            .contains(&format!("waiting for job {d1}")),
        "{waiting:?}"
    );

    // Nothing changed: nothing is examined again (no scan of the waiting jobs).
    assert_eq!(round(&pool, "fsc_rlie").await, ConfigureReport::default());

    // The first date is processed: only its dependent is woken, and continues its L2A.
    use JobStatus::*;
    drive(
        &pool,
        j1,
        &[
            Queued,
            Started,
            PreProcessing,
            Processing,
            PostProcessing,
            Processed,
        ],
    )
    .await;
    let report = round(&pool, "fsc_rlie").await;
    assert_eq!((report.examined, report.ready), (1, 1), "{report:?}");
    let j5 = get_job(&pool, d5).await.unwrap();
    assert_eq!(
        (j5.status, j5.depends_on, j5.recheck_at),
        (Ready, None, None)
    );
    assert_eq!(j5.params["maja_mode"], "nominal");
    assert_eq!(j5.params["previous_job_id"], d1);
    assert_eq!(
        get_job(&pool, d9).await.unwrap().status,
        Configured,
        "the third date still waits for the second"
    );

    // The second date fails for good: the third is woken and starts a new series from the first.
    let j5 = drive(&pool, j5, &[Queued, Started, InternalError]).await;
    assert_eq!(j5.status, InternalError);
    let report = round(&pool, "fsc_rlie").await;
    assert_eq!((report.examined, report.ready), (1, 1), "{report:?}");
    let j9 = get_job(&pool, d9).await.unwrap();
    assert_eq!(j9.status, Ready);
    assert_eq!(
        j9.params["previous_job_id"], d1,
        "the failed date is skipped"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn independent_job_types_are_ready_at_once_and_bad_jobs_fail_with_the_reason(pool: PgPool) {
    let mut good = NewJob::new("test_job", "good", 3);
    good.params = serde_json::json!({"product": "x", "mission": null});
    good.input_path = Some("/x".into());
    let mut bad = NewJob::new("test_job", "bad", 3);
    bad.params = serde_json::json!({"unexpected": true});
    swath_engine::db::jobs::insert_jobs(&pool, &[good, bad])
        .await
        .unwrap();
    let report = round(&pool, "test_job").await;
    assert_eq!(
        (report.examined, report.ready, report.failed),
        (2, 1, 1),
        "{report:?}"
    );
    let jobs = list_jobs(
        &pool,
        &JobFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let bad = jobs.iter().find(|j| j.name == "bad").unwrap();
    assert_eq!(bad.status, JobStatus::InternalError);
    assert_eq!(bad.status_error_subtype.as_deref(), Some("configuration"));
    assert!(
        bad.status_message
            .as_deref()
            .unwrap()
            .contains("params do not match"),
        "{:?}",
        bad.status_message
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_wait_on_an_already_settled_job_is_due_at_once(pool: PgPool) {
    let jobs = time_series(&pool).await;
    round(&pool, "fsc_rlie").await;
    let j1 = get_job(&pool, jobs[0].id).await.unwrap();
    let j1 = drive(&pool, j1, &[JobStatus::Cancelled]).await;
    // The decision "wait for job 1" lands after job 1 settled: it must not wait for a wake-up that
    // already happened.
    let j9 = get_job(&pool, jobs[2].id).await.unwrap();
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let mut conn = pool.acquire().await.unwrap();
    assert!(
        set_waiting(&mut conn, j9.id, j9.attempt, Some(j1.id), later, None)
            .await
            .unwrap()
    );
    let j9 = get_job(&pool, j9.id).await.unwrap();
    assert!(
        j9.recheck_at.unwrap() <= chrono::Utc::now(),
        "due now, not in an hour"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn job_changes_are_announced_to_listeners(pool: PgPool) {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen("swath_jobs").await.unwrap();
    time_series(&pool).await;
    let note = tokio::time::timeout(Duration::from_secs(30), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(note.channel(), "swath_jobs");
}
