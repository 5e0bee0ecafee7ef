//! The completeness report over a local catalogue of fsc_rlie inputs: ingested with an explicit
//! window, some jobs driven to done (with products, one published late), one failed twice (a retry
//! chain counted once), one left waiting, one product skipped (a tile outside the area); the report
//! names each gap with its reason and counts exactly; a product added to the catalogue behind
//! swath's back is reported `never_listed` by the catalogue check; the command line agrees.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::PgPool;
use swath_domain::{JobStatus, JobTemplate};
use swath_engine::catalogue::{open, Catalogue};
use swath_engine::config::Settings;
use swath_engine::db::retries::retry_job;
use swath_engine::pipeline::poller::{poll, PollWindow};
use swath_engine::reports::{
    completeness, list_catalogue_inputs, CellState, CompletenessReport, CompletenessRequest,
    GapReason,
};

use support::operator::{move_to, reload};
use support::{database_url, stderr, stdout, swath_env};

const DONE: &str = "S2B_MSIL1C_20240301T101559_N0510_R022_T32TLR_20240301T120000";
const FAILED: &str = "S2B_MSIL1C_20240301T101559_N0510_R022_T32TLS_20240301T120000";
const WAITING: &str = "S2A_MSIL1C_20240302T102021_N0510_R065_T32TLR_20240302T120000";
const EMPTY_DONE: &str = "S2A_MSIL1C_20240302T102021_N0510_R065_T32TLS_20240302T120000";
const LATE: &str = "S2B_MSIL1C_20240303T101559_N0510_R022_T32TLR_20240303T120000";
/// On a tile outside the fsc_rlie area: skipped, and recorded.
const OUTSIDE: &str = "S2B_MSIL1C_20240303T101559_N0510_R022_T01CCV_20240303T120000";
/// Sensed before the processing start date: created cancelled, and recorded.
const BEFORE_START: &str = "S2B_MSIL1C_20190301T101559_N0510_R022_T32TLR_20190301T120000";
/// An L2A product: plainly not an input, not recorded.
const L2A: &str = "S2B_MSIL2A_20240303T101559_N0510_R022_T32TLS_20240303T120000";
/// Added behind swath's back after the ingestion.
const UNSEEN: &str = "S2B_MSIL1C_20240303T101559_N0510_R022_T32TLS_20240303T120000";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// Writes `products` (name, publication time) into the catalogue directory `dir`.
fn add_products(dir: &Path, products: &[(&str, DateTime<Utc>)]) {
    for (name, published) in products {
        let entry = dir.join(format!("{name}.SAFE"));
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(
            entry.join(swath_engine::catalogue::local::LISTING_FILE),
            serde_json::json!({ "published_at": published }).to_string(),
        )
        .unwrap();
    }
}

fn fsc_rlie() -> Arc<dyn JobTemplate> {
    Settings::default()
        .registry()
        .unwrap()
        .get("fsc_rlie")
        .unwrap()
        .clone()
}

fn catalogue_of(dir: &Path) -> Arc<dyn Catalogue> {
    open(
        &format!("dir:{}", dir.display()),
        &Settings::default().catalogue_options(),
    )
    .unwrap()
}

fn request(tiles: Option<&str>) -> CompletenessRequest {
    CompletenessRequest::parse(
        &Settings::default().registry().unwrap(),
        "fsc_rlie",
        "2024-03-01",
        "2024-03-04",
        tiles,
    )
    .unwrap()
}

async fn job_of(pool: &PgPool, product: &str) -> swath_domain::Job {
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM jobs WHERE product_id = $1 AND retry_of IS NULL")
            .bind(product)
            .fetch_one(pool)
            .await
            .unwrap();
    reload(pool, id).await
}

/// Drives the job of `product` to done, with `products` in its results and its output published
/// `hours` after its input.
async fn finish(pool: &PgPool, product: &str, products: &[&str], hours: i64) -> i64 {
    let job = job_of(pool, product).await;
    let job = move_to(pool, job, JobStatus::Done).await;
    sqlx::query(
        "UPDATE jobs SET results = $2, output_published_at = input_published_at + make_interval(hours => $3)
         WHERE id = $1",
    )
    .bind(job.id)
    .bind(serde_json::json!({
        "products": products
            .iter()
            .map(|path| serde_json::json!({
                "kind": "fsc", "path": path, "size_bytes": 1, "completed_at": null,
                "infos": {}, "published_at": null,
            }))
            .collect::<Vec<_>>()
    }))
    .bind(hours as i32)
    .execute(pool)
    .await
    .unwrap();
    job.id
}

/// The catalogue, ingested, with the jobs driven; answers the catalogue's directory.
async fn prepared(pool: &PgPool, dir: &Path) {
    let published = |d: &str| at(&format!("{d}T13:00:00Z"));
    add_products(
        dir,
        &[
            (DONE, published("2024-03-01")),
            (FAILED, published("2024-03-01")),
            (WAITING, published("2024-03-02")),
            (EMPTY_DONE, published("2024-03-02")),
            (LATE, published("2024-03-03")),
            (OUTSIDE, published("2024-03-03")),
            (L2A, published("2024-03-03")),
            (BEFORE_START, published("2024-03-03")),
        ],
    );
    let window = PollWindow::Explicit {
        from: at("2024-03-01T00:00:00Z"),
        to: at("2024-03-05T00:00:00Z"),
    };
    let report = poll(
        pool,
        &fsc_rlie(),
        catalogue_of(dir).as_ref(),
        window,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.ingest.created, 5, "{report:?}");
    assert_eq!(report.ingest.cancelled, 1, "{report:?}");

    finish(pool, DONE, &["FSC_20240301T101559_S2B_T32TLR_V102_1"], 1).await;
    finish(pool, EMPTY_DONE, &[], 1).await;
    finish(pool, LATE, &["FSC_20240303T101559_S2B_T32TLR_V102_1"], 5).await;
    // Failed, retried, failed again: one product, counted by its retry.
    let failed = job_of(pool, FAILED).await;
    let failed = move_to(pool, failed, JobStatus::Processing).await;
    move_to(pool, failed, JobStatus::InternalError).await;
    let retry = retry_job(pool, job_of(pool, FAILED).await.id, 5)
        .await
        .unwrap()
        .job;
    let retry = move_to(pool, retry, JobStatus::Processing).await;
    move_to(pool, retry, JobStatus::InternalError).await;
}

fn cell<'r>(
    report: &'r CompletenessReport,
    tile: &str,
    d: &str,
) -> &'r swath_engine::reports::Cell {
    report
        .cells
        .iter()
        .find(|c| c.tile == tile && c.day == day(d))
        .unwrap_or_else(|| panic!("no cell {tile} {d}: {:#?}", report.cells))
}

#[sqlx::test(migrations = "../sql")]
async fn the_report_names_every_gap_and_the_catalogue_check_finds_the_unseen(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    prepared(&pool, dir.path()).await;

    // Recorded: the product outside the area and the one created cancelled; not the L2A product.
    let skipped: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT name, tile_id, reason FROM skipped_products ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, BEFORE_START);
    assert_eq!(skipped[0].1.as_deref(), Some("32TLR"));
    assert!(
        skipped[0]
            .2
            .starts_with("sensed before the processing start date"),
        "{skipped:?}"
    );
    assert_eq!(
        skipped[1],
        (
            OUTSIDE.to_string(),
            Some("01CCV".to_string()),
            "tile 01CCV is outside the area of interest".to_string()
        )
    );
    poll(
        &pool,
        &fsc_rlie(),
        catalogue_of(dir.path()).as_ref(),
        PollWindow::Explicit {
            from: at("2024-03-01T00:00:00Z"),
            to: at("2024-03-05T00:00:00Z"),
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    let seen: Vec<i32> =
        sqlx::query_scalar("SELECT times_seen FROM skipped_products ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    // Listed again: the skipped product one row, seen twice; the cancelled one has its job now
    // (already known), and is not recorded again.
    assert_eq!(seen, vec![1, 2]);
    // The product created cancelled is reported by its job, once.
    let before = CompletenessRequest::parse(
        &Settings::default().registry().unwrap(),
        "fsc_rlie",
        "2019-03-01",
        "2019-03-02",
        None,
    )
    .unwrap();
    let report = completeness(&pool, &before, 3.0, None).await.unwrap();
    assert_eq!(report.cells.len(), 1);
    let c = &report.cells[0];
    assert_eq!(
        (c.inputs, c.jobs, c.cancelled, c.state),
        (1, 1, 1, CellState::Gaps)
    );
    assert_eq!(report.gaps.len(), 1);
    assert_eq!(report.gaps[0].reason, GapReason::Cancelled);
    assert!(report.gaps[0]
        .detail
        .starts_with("sensed before the processing start date"));

    let report = completeness(&pool, &request(None), 3.0, None)
        .await
        .unwrap();
    // 3 tiles (two of the area, one outside) x 3 days.
    assert_eq!(report.cells.len(), 9, "{:#?}", report.cells);
    let c = cell(&report, "32TLR", "2024-03-01");
    assert_eq!(
        (c.inputs, c.jobs, c.done_with_products, c.published),
        (1, 1, 1, 1)
    );
    assert_eq!(c.state, CellState::Complete);
    let c = cell(&report, "32TLS", "2024-03-01");
    assert_eq!(
        (c.inputs, c.jobs, c.failed, c.waiting),
        (1, 1, 1, 0),
        "{c:?}"
    );
    assert_eq!(c.state, CellState::Failed);
    let c = cell(&report, "32TLR", "2024-03-02");
    assert_eq!((c.inputs, c.jobs, c.waiting), (1, 1, 1));
    assert_eq!(c.state, CellState::Waiting);
    let c = cell(&report, "32TLS", "2024-03-02");
    assert_eq!(
        (c.inputs, c.done_without_product, c.done_with_products),
        (1, 1, 0)
    );
    assert_eq!(c.state, CellState::Complete);
    let c = cell(&report, "32TLR", "2024-03-03");
    assert_eq!((c.inputs, c.published, c.published_late), (1, 1, 1));
    assert_eq!(c.state, CellState::Gaps);
    let c = cell(&report, "01CCV", "2024-03-03");
    assert_eq!((c.inputs, c.jobs), (1, 0));
    assert_eq!(c.state, CellState::Gaps);
    let c = cell(&report, "32TLS", "2024-03-03");
    assert_eq!(c.inputs, 0);
    assert_eq!(c.state, CellState::Empty);

    let gaps: Vec<(&str, GapReason)> = report
        .gaps
        .iter()
        .map(|g| (g.product.as_str(), g.reason))
        .collect();
    assert_eq!(
        gaps,
        vec![
            (OUTSIDE, GapReason::Skipped),
            (WAITING, GapReason::JobWaiting),
            (LATE, GapReason::PublishedLate),
            (FAILED, GapReason::JobFailed),
        ],
        "{:#?}",
        report.gaps
    );
    let detail = |reason| {
        let g = report.gaps.iter().find(|g| g.reason == reason).unwrap();
        (g.job_id, g.detail.clone())
    };
    assert_eq!(detail(GapReason::JobWaiting).1, "initialized");
    assert_eq!(detail(GapReason::PublishedLate).1, "5.0 h (target 3 h)");
    assert_eq!(detail(GapReason::Skipped).0, None);
    let last_retry: i64 = sqlx::query_scalar("SELECT max(id) FROM jobs WHERE retry_of IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(detail(GapReason::JobFailed).0, Some(last_retry));
    assert!(
        detail(GapReason::JobFailed).1.contains("internal_error"),
        "{:?}",
        detail(GapReason::JobFailed)
    );
    assert_eq!(report.catalogue_check, None);

    // Tiles filter: only the asked tiles, every day shown.
    let report = completeness(&pool, &request(Some("32tls")), 3.0, None)
        .await
        .unwrap();
    assert_eq!(report.cells.len(), 3);
    assert!(report.cells.iter().all(|c| c.tile == "32TLS"));
    assert_eq!(report.gaps.len(), 1);

    // A product published behind swath's back: never listed.
    add_products(dir.path(), &[(UNSEEN, at("2024-03-03T14:00:00Z"))]);
    let request = request(None);
    let listed = list_catalogue_inputs(
        fsc_rlie().as_ref(),
        catalogue_of(dir.path()).as_ref(),
        &request,
    )
    .await
    .unwrap();
    let report = completeness(&pool, &request, 3.0, Some(listed))
        .await
        .unwrap();
    let check = report.catalogue_check.clone().unwrap();
    assert_eq!((check.listed, check.unseen), (6, 1), "{report:#?}");
    let never: Vec<&str> = report
        .gaps
        .iter()
        .filter(|g| g.reason == GapReason::NeverListed)
        .map(|g| g.product.as_str())
        .collect();
    assert_eq!(never, vec![UNSEEN]);
    let c = cell(&report, "32TLS", "2024-03-03");
    assert_eq!((c.inputs, c.jobs, c.state), (1, 0, CellState::Gaps));

    // The command line: a table and the gaps, exit code 0; JSON is the API's shape.
    let url = database_url(&pool);
    let env = [
        ("SWATH_CATALOGUE", &*format!("dir:{}", dir.path().display())),
        ("SWATH_JOB_TYPES", "[fsc_rlie]"),
    ];
    let args = [
        "report",
        "completeness",
        "--type",
        "fsc_rlie",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
    ];
    let out = swath_env(
        &[&args[..], &["--check-catalogue"]].concat(),
        Some(&url),
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "never_listed",
        "job_failed",
        "job_waiting",
        "published_late",
        "skipped",
        "catalogue: 6 input(s) listed, 1 never seen by swath",
        UNSEEN,
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    let out = swath_env(
        &[&args[..], &["--json", "--tiles", "32TLR"]].concat(),
        Some(&url),
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 3);
    assert_eq!(json["cells"][0]["day"], "2024-03-01");
    assert_eq!(json["catalogue_check"], Value::Null);
    // A window too long: refused, naming the parameter.
    let out = swath_env(
        &[
            "report",
            "completeness",
            "--type",
            "fsc_rlie",
            "--from",
            "2024-01-01",
            "--to",
            "2024-06-01",
        ],
        Some(&url),
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("to: the window is 152 days"),
        "{}",
        stderr(&out)
    );
}

#[sqlx::test(migrations = "../sql")]
async fn skipped_products_not_seen_for_the_retention_are_deleted(pool: PgPool) {
    sqlx::query(
        "INSERT INTO skipped_products (job_type, source, name, tile_id, measured_at, reason, last_seen_at)
         VALUES ('fsc_rlie', 'dir:/x', 'OLD', '32TLR', now(), 'r', now() - interval '401 days'),
                ('fsc_rlie', 'dir:/x', 'RECENT', '32TLR', now(), 'r', now() - interval '399 days')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let deleted = swath_engine::db::ingestion::prune_skipped(&pool, 400)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT name FROM skipped_products")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, vec!["RECENT".to_string()]);
}

#[sqlx::test(migrations = "../sql")]
async fn a_campaigns_listing_records_what_it_skipped_with_its_id(pool: PgPool) {
    use swath_engine::db::campaigns::{create_campaign, NewCampaign};
    use swath_engine::pipeline::campaign::{CampaignService, OUTSIDE_TILES};

    let dir = tempfile::tempdir().unwrap();
    let published = at("2024-03-02T13:00:00Z");
    add_products(
        dir.path(),
        &[(DONE, published), (FAILED, published), (OUTSIDE, published)],
    );
    let campaign = create_campaign(
        &pool,
        &NewCampaign {
            name: "tlr".into(),
            job_type: "fsc_rlie".into(),
            source: format!("dir:{}", dir.path().display()),
            from: at("2024-03-01T00:00:00Z"),
            to: at("2024-03-05T00:00:00Z"),
            tiles: Some(vec!["32TLR".into()]),
            reprocess: false,
            image: None,
            max_in_flight: 10,
        },
    )
    .await
    .unwrap();
    let settings = Settings::default();
    CampaignService {
        pool: pool.clone(),
        registry: Arc::new(settings.registry().unwrap()),
        catalogue_options: settings.catalogue_options(),
        owner: uuid::Uuid::new_v4(),
        lease: std::time::Duration::from_secs(60),
        interval: std::time::Duration::from_secs(1),
    }
    .round()
    .await
    .unwrap();
    let skipped: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT name, campaign_id, reason FROM skipped_products ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        skipped,
        vec![
            (
                FAILED.to_string(),
                Some(campaign.id),
                OUTSIDE_TILES.to_string()
            ),
            (
                OUTSIDE.to_string(),
                Some(campaign.id),
                "tile 01CCV is outside the area of interest".to_string()
            ),
        ]
    );
    // The report explains the tile the campaign left out.
    let report = completeness(&pool, &request(Some("32TLS")), 3.0, None)
        .await
        .unwrap();
    assert_eq!(report.gaps.len(), 1);
    assert_eq!(
        (report.gaps[0].reason, report.gaps[0].detail.as_str()),
        (GapReason::Skipped, OUTSIDE_TILES)
    );
}
