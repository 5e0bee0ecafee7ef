//! Products withdrawn from the catalogue (CDSE OData `DeletedProducts`), served by a local server
//! in the CDSE response format (`testing/data/odata/deleted_products_page_*.json`; where the format
//! comes from is in `testing/data/README.md`: the entry shape of a real CDSE `Products` page plus
//! the documented `DeletionDate` and `DeletionCause`).
//!
//! A withdrawn input cancels its job if it has not started, and only flags it otherwise; unknown
//! products change nothing; an unusable entry is skipped and its page still applied; next links are
//! followed on the catalogue's origin only; reading the same withdrawals again changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use swath_domain::status::JobStatus;
use swath_domain::Job;
use swath_engine::catalogue::http::{HttpFetcher, RetryPolicy};
use swath_engine::catalogue::odata::ODataCatalogue;
use swath_engine::catalogue::{Catalogue, CatalogueError};
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::{get_job, list_jobs, JobFilter};
use swath_engine::db::withdrawals::checked_until;
use swath_engine::pipeline::withdrawals::{
    follow_disappearances, follow_withdrawals, withdrawal_reason, Relisting, WithdrawalError,
    WithdrawalReport, NO_LONGER_LISTED,
};

use support::catalogue_server::{CatalogueServer, Reply};
use support::{drive, new_test_job};

/// Where CDSE's recorded next link points; the tests point it at their own server.
const CDSE: &str = "https://catalogue.dataspace.copernicus.eu";

const WAITING: &str = "S2A_MSIL1C_20210404T112111_N0500_R037_T31VEG_20230209T101305";
const DONE: &str = "S2B_MSIL1C_20230105T103329_N0509_R108_T32TLR_20230105T115827";
const PARTIAL: &str = "S2A_MSIL1C_20230110T103401_N0509_R108_T32TLS_20230110T124440";
const MERGED_JOB: &str = "S2A_MSIL1C_20230110T103401_N0509_R108_T32TLS_20230110T112233";
const UNKNOWN: &str = "S2B_MSIL1C_20220612T103629_N0400_R008_T31TCH_20220612T140419";

/// A job's life from `initialized` to `done`.
const LIFE: [JobStatus; 11] = [
    JobStatus::Configured,
    JobStatus::Ready,
    JobStatus::Queued,
    JobStatus::Started,
    JobStatus::PreProcessing,
    JobStatus::Processing,
    JobStatus::PostProcessing,
    JobStatus::Processed,
    JobStatus::StartPublication,
    JobStatus::Published,
    JobStatus::Done,
];

fn page(n: usize) -> Value {
    let text = match n {
        1 => include_str!("../../../testing/data/odata/deleted_products_page_1.json"),
        _ => include_str!("../../../testing/data/odata/deleted_products_page_2.json"),
    };
    serde_json::from_str(text).unwrap()
}

/// The recorded first page, its next link moved to `base`.
fn first_page_on(base: &str) -> Value {
    let mut p = page(1);
    let link = p["@odata.nextLink"].as_str().unwrap().replace(CDSE, base);
    p["@odata.nextLink"] = Value::String(link);
    p
}

fn odata_of(server: &CatalogueServer) -> ODataCatalogue {
    let http = HttpFetcher::new(
        Duration::from_secs(10),
        RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(10),
        },
    )
    .unwrap();
    ODataCatalogue::new(&format!("{}/odata/v1", server.base), http, 3).unwrap()
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// The jobs: one waiting on `WAITING`, one done on `DONE`, one processing a merged datatake whose
/// inputs list `PARTIAL`; all published from 2023-01-01.
async fn jobs(pool: &PgPool) -> (Job, Job, Job) {
    let waiting = new_test_job(pool, WAITING).await;
    let done = new_test_job(pool, DONE).await;
    let done = drive(pool, done, &LIFE).await;
    assert_eq!(done.status, JobStatus::Done);
    let merged = new_test_job(pool, MERGED_JOB).await;
    let merged = drive(pool, merged, &LIFE[..6]).await;
    assert_eq!(merged.status, JobStatus::Processing);
    // Like fsc_rlie's merged jobs: the tile and sensing time of the datatake its partials share.
    sqlx::query(
        "UPDATE jobs SET params = jsonb_set(coalesce(params, '{}'), '{inputs}', $2),
             tile_id = '32TLS', measured_at = '2023-01-10T10:34:01Z'
         WHERE id = $1",
    )
    .bind(merged.id)
    .bind(serde_json::json!([
        {"l1c_id": MERGED_JOB, "input_path": format!("/eodata/{MERGED_JOB}.SAFE")},
        {"l1c_id": PARTIAL, "input_path": format!("/eodata/{PARTIAL}.SAFE")},
    ]))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE jobs SET input_published_at = '2023-01-01T00:00:00Z'")
        .execute(pool)
        .await
        .unwrap();
    (waiting, done, merged)
}

async fn job(pool: &PgPool, id: i64) -> Job {
    get_job(pool, id).await.unwrap()
}

#[sqlx::test(migrations = "../sql")]
async fn withdrawn_inputs_cancel_waiting_jobs_and_flag_the_others(pool: PgPool) {
    let (waiting, done, merged) = jobs(&pool).await;
    let server = CatalogueServer::start(|seen, _, base| {
        if seen.query.contains_key("$skip") {
            Reply::Json(page(2))
        } else {
            Reply::Json(first_page_on(base))
        }
    })
    .await;
    let odata = odata_of(&server);
    let until = at("2024-01-01T00:00:00Z");
    let report = follow_withdrawals(&pool, &odata, until).await.unwrap();
    assert_eq!(
        report,
        WithdrawalReport {
            pages: 2,
            withdrawals: 4,
            invalid: 1,
            unknown: 1,
            cancelled: 1,
            flagged: 3,
        }
    );
    // Both pages were read, from the earliest input's publication, filtered and ordered by
    // deletion date.
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.path == "/odata/v1/DeletedProducts"));
    assert_eq!(
        seen[0].query["$filter"],
        "DeletionDate ge 2023-01-01T00:00:00.000000Z and DeletionDate lt 2024-01-01T00:00:00.000000Z"
    );
    assert_eq!(seen[0].query["$orderby"], "DeletionDate asc");
    assert_eq!(seen[1].query["$skip"], "3");

    // The waiting job: cancelled with the reason, through the cancel path (its history says so).
    let reason = withdrawal_reason(at("2023-10-02T08:15:12.345Z"), "Duplicated product");
    assert_eq!(
        reason,
        "input withdrawn by the catalogue on 2023-10-02T08:15:12Z: Duplicated product"
    );
    let w = job(&pool, waiting.id).await;
    assert_eq!(w.status, JobStatus::Cancelled);
    assert_eq!(w.status_message.as_deref(), Some(reason.as_str()));
    assert_eq!(w.input_withdrawn_at, Some(at("2023-10-02T08:15:12.345Z")));
    assert_eq!(w.input_withdrawal_reason.as_deref(), Some(reason.as_str()));
    let history = job_history(&pool, waiting.id).await.unwrap();
    assert_eq!(history.last().unwrap().status, JobStatus::Cancelled);

    // The done job: flagged only.
    let d = job(&pool, done.id).await;
    assert_eq!(d.status, JobStatus::Done);
    assert_eq!(d.input_withdrawn_at, Some(at("2023-11-20T09:00:01.5Z")));
    assert_eq!(
        d.input_withdrawal_reason.as_deref(),
        Some("input withdrawn by the catalogue on 2023-11-20T09:00:01Z: Obsolete product or Other")
    );
    // The job in flight whose merged inputs list the withdrawn partial: flagged only.
    let m = job(&pool, merged.id).await;
    assert_eq!(m.status, JobStatus::Processing);
    assert_eq!(m.attempt, merged.attempt);
    assert_eq!(
        m.input_withdrawal_reason.as_deref(),
        Some("input withdrawn by the catalogue on 2023-11-21T17:30:00Z: Missing checksum")
    );
    // The unknown product made no job; the malformed entry changed nothing.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
    let unknown: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE product_id = $1")
        .bind(UNKNOWN)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unknown, 0);
    assert_eq!(
        checked_until(&pool, &odata.source()).await.unwrap(),
        Some(until)
    );

    // The flagged jobs are listed as such.
    let flagged = list_jobs(
        &pool,
        &JobFilter {
            withdrawn: Some(true),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut ids: Vec<i64> = flagged.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, vec![waiting.id, done.id, merged.id]);

    // Once more over a later window that lists the same withdrawals: nothing changes.
    let before: Vec<Job> = vec![job(&pool, waiting.id).await, d, m];
    let history_len = history.len();
    let later = at("2024-02-01T00:00:00Z");
    let again = follow_withdrawals(&pool, &odata, later).await.unwrap();
    assert_eq!((again.pages, again.withdrawals), (2, 4));
    assert_eq!((again.cancelled, again.flagged), (0, 0));
    assert!(server.seen()[2].query["$filter"]
        .starts_with("DeletionDate ge 2024-01-01T00:00:00.000000Z"));
    for b in before {
        assert_eq!(job(&pool, b.id).await, b);
    }
    assert_eq!(
        job_history(&pool, waiting.id).await.unwrap().len(),
        history_len
    );
    assert_eq!(
        checked_until(&pool, &odata.source()).await.unwrap(),
        Some(later)
    );
}

/// A second page that fails keeps the first page's changes, and the cursor at its last deletion.
#[sqlx::test(migrations = "../sql")]
async fn a_failed_page_keeps_the_pages_before_it(pool: PgPool) {
    let (waiting, done, _) = jobs(&pool).await;
    let server = CatalogueServer::start(|seen, _, base| {
        if seen.query.contains_key("$skip") {
            Reply::Status(400, "no".into())
        } else {
            Reply::Json(first_page_on(base))
        }
    })
    .await;
    let odata = odata_of(&server);
    let err = follow_withdrawals(&pool, &odata, at("2024-01-01T00:00:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WithdrawalError::Catalogue(CatalogueError::Refused { status: 400, .. })
        ),
        "{err}"
    );
    assert_eq!(job(&pool, waiting.id).await.status, JobStatus::Cancelled);
    assert_eq!(job(&pool, done.id).await.input_withdrawn_at, None);
    assert_eq!(
        checked_until(&pool, &odata.source()).await.unwrap(),
        Some(at("2023-10-03T11:40:00Z"))
    );
}

/// Attack: the page's next link points to another origin (another loopback address standing for
/// another host). It is not followed, nothing of the page is applied and the cursor stays.
#[sqlx::test(migrations = "../sql")]
async fn a_next_link_to_another_origin_is_not_followed(pool: PgPool) {
    let (waiting, _, _) = jobs(&pool).await;
    let other = CatalogueServer::start_on([127, 0, 0, 2], |_, _, _| Reply::Json(page(2))).await;
    let other_base = other.base.clone();
    let server =
        CatalogueServer::start(move |_, _, _| Reply::Json(first_page_on(&other_base))).await;
    let odata = odata_of(&server);
    let err = follow_withdrawals(&pool, &odata, at("2024-01-01T00:00:00Z"))
        .await
        .unwrap_err();
    match &err {
        WithdrawalError::Catalogue(CatalogueError::ForeignLink { link, expected, .. }) => {
            assert!(link.starts_with(&other.base), "{link}");
            assert_eq!(expected, &server.base);
        }
        other => panic!("{other}"),
    }
    assert!(
        other.seen().is_empty(),
        "the other origin got {:?}",
        other.seen()
    );
    assert_eq!(server.seen().len(), 1);
    assert_eq!(job(&pool, waiting.id).await.status, JobStatus::Initialized);
    assert_eq!(checked_until(&pool, &odata.source()).await.unwrap(), None);
}

/// STAC and local catalogues do not list withdrawals: the round says so and changes nothing.
#[sqlx::test(migrations = "../sql")]
async fn catalogues_without_withdrawals_say_so(pool: PgPool) {
    let (waiting, _, _) = jobs(&pool).await;
    let local = swath_engine::catalogue::local::LocalDirectoryCatalogue::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/catalogue"
    ));
    let http = HttpFetcher::new(Duration::from_secs(1), RetryPolicy::default()).unwrap();
    let stac = swath_engine::catalogue::stac::StacCatalogue::new(
        "http://127.0.0.1:9/v1",
        http,
        3,
        Duration::from_secs(60),
    )
    .unwrap();
    for catalogue in [&local as &dyn Catalogue, &stac] {
        let err = follow_withdrawals(&pool, catalogue, at("2024-01-01T00:00:00Z"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                WithdrawalError::Catalogue(CatalogueError::Unsupported(_))
            ),
            "{err}"
        );
        assert_eq!(
            checked_until(&pool, &catalogue.source()).await.unwrap(),
            None
        );
    }
    assert_eq!(job(&pool, waiting.id).await.status, JobStatus::Initialized);
}

/// The loop reads withdrawals on the leader only: of two instances running it, the follower never
/// asks its catalogue, and the leader's rounds cancel the waiting job.
#[sqlx::test(migrations = "../sql")]
async fn only_the_leader_follows_withdrawals(pool: PgPool) {
    use std::sync::Arc;
    use swath_engine::db::services::{register, try_lead, Instance};
    use swath_engine::pipeline::withdrawals::WithdrawalService;
    use swath_engine::service::{CancellationToken, Service};

    let (waiting, _, _) = jobs(&pool).await;
    let serve = |seen: &support::catalogue_server::Seen, _: usize, base: &str| {
        if seen.query.contains_key("$skip") {
            Reply::Json(page(2))
        } else {
            Reply::Json(first_page_on(base))
        }
    };
    let leader_server = CatalogueServer::start(serve).await;
    let follower_server = CatalogueServer::start(serve).await;
    let leading = Instance::new("leader");
    let following = Instance::new("follower");
    register(&pool, &leading).await.unwrap();
    register(&pool, &following).await.unwrap();
    assert!(
        try_lead(&pool, leading.service_id, Duration::from_secs(600))
            .await
            .unwrap()
    );
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for (instance, server) in [(&leading, &leader_server), (&following, &follower_server)] {
        let service = Box::new(WithdrawalService {
            pool: pool.clone(),
            catalogue: Arc::new(odata_of(server)),
            service_id: instance.service_id,
            interval: Duration::from_millis(20),
            registry: Arc::new(
                swath_engine::config::Settings::default()
                    .registry()
                    .unwrap(),
            ),
            job_types: Vec::new(),
            relisting: Relisting {
                window: Duration::from_secs(48 * 3600),
                settle: Duration::ZERO,
            },
        });
        tasks.push(tokio::spawn(service.run(shutdown.clone())));
    }
    // Two rounds of the leader (the second reads from its cursor, so one or two requests): by then
    // the follower has ticked as often.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while leader_server.seen().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader did not read withdrawals"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        follower_server.seen().is_empty(),
        "{:?}",
        follower_server.seen()
    );
    assert_eq!(job(&pool, waiting.id).await.status, JobStatus::Cancelled);
}

/// A directory (or STAC) catalogue does not list withdrawals: a product that disappears from a
/// re-listing of recent publications is one. The job of a removed product that waits is cancelled
/// and flagged, a done one is flagged only, the others are untouched; a re-listing that misses most
/// products is taken for a listing gone wrong and changes nothing.
#[sqlx::test(migrations = "../sql")]
async fn products_gone_from_a_relisting_are_withdrawn_unless_most_are(pool: PgPool) {
    use swath_engine::pipeline::poller::{poll, PollWindow};

    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    // Sensed yesterday (the re-listing reads the jobs sensed up to a month before the window).
    let day = (now - chrono::TimeDelta::days(1)).format("%Y%m%d");
    let names: Vec<String> = (0..8)
        .map(|i| format!("S2B_MSIL1C_{day}T10{i:02}19_N0511_R022_T32TLR_{day}T12{i:02}00"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let product = dir.path().join(format!("{name}.SAFE"));
        std::fs::create_dir_all(&product).unwrap();
        let published = now - chrono::TimeDelta::hours(2) - chrono::TimeDelta::minutes(i as i64);
        std::fs::write(
            product.join("swath-listing.json"),
            serde_json::json!({"published_at": published}).to_string(),
        )
        .unwrap();
    }
    let settings = swath_engine::config::Settings {
        catalogue: format!("dir:{}", dir.path().display()),
        ..Default::default()
    };
    let registry = settings.registry().unwrap();
    let fsc = registry.get("fsc_rlie").unwrap();
    let catalogue =
        swath_engine::catalogue::open(&settings.catalogue, &settings.catalogue_options()).unwrap();
    let ingested = poll(
        &pool,
        fsc,
        catalogue.as_ref(),
        PollWindow::Explicit {
            from: now - chrono::TimeDelta::hours(3),
            to: now,
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(ingested.ingest.created, 8, "{ingested:?}");
    let job_of = |name: &str| {
        let pool = pool.clone();
        let name = name.to_string();
        async move {
            list_jobs(
                &pool,
                &JobFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.product_id.as_deref() == Some(name.as_str()))
            .unwrap()
        }
    };
    let done = drive(
        &pool,
        job_of(&names[1]).await,
        &support::path_to(JobStatus::Done),
    )
    .await;
    let relisting = Relisting {
        window: Duration::from_secs(48 * 3600),
        settle: Duration::from_secs(60),
    };

    // Two products disappear: one whose job waits, one whose job is done.
    for name in &names[..2] {
        std::fs::remove_dir_all(dir.path().join(format!("{name}.SAFE"))).unwrap();
    }
    let report = follow_disappearances(
        &pool,
        fsc.as_ref(),
        catalogue.as_ref(),
        relisting,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.listed, report.jobs, report.gone, report.refused),
        (6, 8, 2, false)
    );
    let waiting = job_of(&names[0]).await;
    assert_eq!(waiting.status, JobStatus::Cancelled);
    assert!(waiting
        .status_message
        .as_deref()
        .unwrap()
        .ends_with(NO_LONGER_LISTED));
    assert!(waiting.input_withdrawn_at.is_some());
    let done = get_job(&pool, done.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert!(done
        .input_withdrawal_reason
        .as_deref()
        .unwrap()
        .ends_with(NO_LONGER_LISTED));
    for name in &names[2..] {
        let job = job_of(name).await;
        assert!(job.input_withdrawn_at.is_none() && job.status != JobStatus::Cancelled);
    }

    // Most of what is left disappears at once: nothing changes.
    for name in &names[2..7] {
        std::fs::remove_dir_all(dir.path().join(format!("{name}.SAFE"))).unwrap();
    }
    let report = follow_disappearances(
        &pool,
        fsc.as_ref(),
        catalogue.as_ref(),
        relisting,
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(report.refused, "{report:?}");
    for name in &names[2..] {
        assert!(job_of(name).await.input_withdrawn_at.is_none());
    }
}
