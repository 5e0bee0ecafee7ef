//! Ingesting the shipped sample catalogue through the real job types and the PostgreSQL context.

use sqlx::PgPool;
use swath_domain::context::JobContext;
use swath_domain::{JobStatus, NewJob};
use swath_engine::catalogue::local::list_directory;
use swath_engine::catalogue::CataloguePage;
use swath_engine::config::Settings;
use swath_engine::db::context::PgJobContext;
use swath_engine::db::jobs::{insert_jobs, list_jobs, JobFilter};
use swath_engine::pipeline::ingest::ingest_page;

use support::drive;

fn sample_catalogue() -> Vec<swath_domain::listing::CatalogueProduct> {
    list_directory(&support::workspace_root().join("samples/catalogue")).unwrap()
}

#[sqlx::test(migrations = "../sql")]
async fn ingesting_the_same_listing_twice_creates_nothing_new(pool: PgPool) {
    let registry = Settings::default().registry().unwrap();
    let fsc = registry.get("fsc_rlie").unwrap();
    let page = CataloguePage {
        products: sample_catalogue(),
        ..Default::default()
    };
    let first = ingest_page(&pool, fsc.as_ref(), "dir:samples", &page)
        .await
        .unwrap();
    // 32TLR twice, the 29UNV N0500 pair (one job of both partial-tile products) and the S2C one;
    // the 2015 product and the superseded N0301 pair (one job) are recorded cancelled; the month-13
    // name is quarantined.
    assert_eq!(
        (
            first.created,
            first.cancelled,
            first.superseded,
            first.quarantined.len()
        ),
        (4, 2, 0, 1)
    );
    let second = ingest_page(&pool, fsc.as_ref(), "dir:samples", &page)
        .await
        .unwrap();
    assert_eq!(
        (second.created, second.cancelled, second.already_known),
        (0, 0, 8)
    );

    let jobs = list_jobs(
        &pool,
        &JobFilter {
            job_type: Some("fsc_rlie".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(jobs.len(), 6);
    let old = jobs
        .iter()
        .find(|j| j.tile_id.as_deref() == Some("31UFS"))
        .unwrap();
    assert_eq!(old.status, JobStatus::Cancelled);
    assert!(old
        .status_message
        .as_deref()
        .unwrap()
        .contains("reprocessing campaign"));
    let superseded: Vec<_> = jobs
        .iter()
        .filter(|j| {
            j.status_message
                .as_deref()
                .is_some_and(|m| m.contains("superseded by"))
        })
        .collect();
    assert_eq!(superseded.len(), 1);
    assert!(superseded.iter().all(|j| j.name.contains("_N0301_")));
    let first_date = jobs
        .iter()
        .find(|j| j.name.ends_with("T32TLR_20210413T122408"))
        .unwrap();
    assert_eq!(
        first_date.input_published_at.unwrap().to_rfc3339(),
        "2021-04-13T12:51:00+00:00"
    );
    assert!(first_date
        .input_path
        .as_deref()
        .unwrap()
        .ends_with("T32TLR_20210413T122408.SAFE"));
    assert_eq!(first_date.params["cloud_cover"], 14.0);
}

#[sqlx::test(migrations = "../sql")]
async fn a_newer_version_cancels_the_waiting_job_in_the_same_commit(pool: PgPool) {
    let registry = Settings::default().registry().unwrap();
    let fsc = registry.get("fsc_rlie").unwrap();
    let footprint = serde_json::json!({"type": "Polygon", "coordinates": [[[-8.0, 53.52], [-6.4, 53.52], [-6.4, 54.15], [-8.0, 54.15], [-8.0, 53.52]]]});
    let product = |name: &str, published: &str| swath_domain::listing::CatalogueProduct {
        catalogue_id: None,
        name: name.into(),
        input_path: format!("/eodata/{name}.SAFE"),
        published_at: published.parse().unwrap(),
        sensing_start: None,
        sensing_end: None,
        footprint: Some(footprint.clone()),
        cloud_cover: None,
        size_bytes: None,
    };
    let old = CataloguePage {
        products: vec![product(
            "S2B_MSIL1C_20211002T113319_N0301_R080_T29UNV_20211002T141024",
            "2021-10-02T15:00:00Z",
        )],
        ..Default::default()
    };
    ingest_page(&pool, fsc.as_ref(), "test", &old)
        .await
        .unwrap();
    let new = CataloguePage {
        products: vec![product(
            "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20211002T203816",
            "2021-10-02T21:00:00Z",
        )],
        ..Default::default()
    };
    let report = ingest_page(&pool, fsc.as_ref(), "test", &new)
        .await
        .unwrap();
    assert_eq!((report.created, report.superseded), (1, 1));
    let jobs = list_jobs(
        &pool,
        &JobFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (newer, older) = (&jobs[0], &jobs[1]);
    assert_eq!(older.status, JobStatus::Cancelled);
    assert_eq!(older.status_message.as_deref(), Some("superseded by a newer version of its input: S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20211002T203816"));
    assert_eq!(newer.status, JobStatus::Initialized);
    assert_eq!(newer.params["supersedes"], serde_json::json!([older.id]));
    // Listing both again changes nothing.
    let again = ingest_page(&pool, fsc.as_ref(), "test", &new)
        .await
        .unwrap();
    assert_eq!(
        (again.created, again.superseded, again.already_known),
        (0, 0, 1)
    );
}

#[sqlx::test(migrations = "../sql")]
async fn the_context_finds_products_and_the_previous_job_of_a_tile(pool: PgPool) {
    let day = |d: u32| {
        format!("2021-04-{d:02}T10:00:00Z")
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let job = |name: &str, d: u32| {
        let mut j = NewJob::new("fsc_rlie", name, 3);
        j.product_id = Some(name.into());
        j.tile_id = Some("32TLR".into());
        j.measured_at = Some(day(d));
        j
    };
    let ids = insert_jobs(&pool, &[job("d1", 1), job("d3", 3), job("d5", 5)])
        .await
        .unwrap();
    let ctx = PgJobContext::new(pool.clone());

    let found = ctx
        .jobs_with_products("fsc_rlie", &["d3".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[1].id]
    );
    assert!(ctx
        .jobs_with_products("rlie_s1", &["d3".into()])
        .await
        .unwrap()
        .is_empty());

    let prev = ctx
        .previous_job_on_tile("fsc_rlie", "32TLR", day(5), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(prev.name, "d3");
    assert!(ctx
        .previous_job_on_tile("fsc_rlie", "32TLR", day(1), &[])
        .await
        .unwrap()
        .is_none());

    // An excluded status is skipped; a retried original gives way to its retry.
    let d3 = swath_engine::db::jobs::get_job(&pool, ids[1].id)
        .await
        .unwrap();
    let d3 = drive(&pool, d3, &[JobStatus::InternalError]).await;
    let prev = ctx
        .previous_job_on_tile("fsc_rlie", "32TLR", day(5), &[JobStatus::InternalError])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(prev.name, "d1");
    let mut retry = job("d3-retry-1", 3);
    retry.retry_of = Some(d3.id);
    let retry = insert_jobs(&pool, &[retry]).await.unwrap();
    let prev = ctx
        .previous_job_on_tile("fsc_rlie", "32TLR", day(5), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(prev.id, retry[0].id);
    // Retries never count as existing products: the original stands for the product.
    let found = ctx
        .jobs_with_products("fsc_rlie", &["d3".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[sqlx::test(migrations = "../sql")]
async fn bad_rows_are_refused_by_the_schema(pool: PgPool) {
    for (name, job_type) in [
        ("has space", "test_job"),
        ("", "test_job"),
        ("ok", "Bad-Type"),
    ] {
        let job = NewJob::new(job_type, name, 3);
        let err = insert_jobs(&pool, &[job]).await.unwrap_err();
        assert!(
            err.to_string().contains("violates check constraint"),
            "{name:?}/{job_type:?}: {err}"
        );
    }
    let mut job = NewJob::new("test_job", "zero-attempts", 0);
    job.params = serde_json::json!({});
    assert!(insert_jobs(&pool, &[job]).await.is_err());
    let mut job = NewJob::new("test_job", "params-array", 3);
    job.params = serde_json::json!([1, 2]);
    assert!(insert_jobs(&pool, &[job]).await.is_err());
    let mut job = NewJob::new("test_job", "orphan", 3);
    job.parent_id = Some(424_242);
    let err = insert_jobs(&pool, &[job]).await.unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing half-inserted");
}

#[sqlx::test(migrations = "../sql")]
async fn a_job_cannot_start_in_a_status_the_state_machine_forbids(pool: PgPool) {
    let ok = NewJob::new("test_job", "fine", 3);
    let mut bad = NewJob::new("test_job", "starts-done", 3);
    bad.initial_status = JobStatus::Done;
    let err = insert_jobs(&pool, &[ok, bad]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid job status transition (new) -> done"),
        "{err}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "the whole batch is refused");
}
