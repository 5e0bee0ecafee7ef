//! Ingestion from catalogues served over HTTP by a local server in the real OData and STAC formats:
//! paging to the end, 429 then success, a 500 mid-walk, a truncated page, unusable products in the
//! middle of a page, the OData skip limit, STAC token links, and the `swath ingest` command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::JobTemplate;
use swath_engine::catalogue::http::{HttpFetcher, RetryPolicy};
use swath_engine::catalogue::odata::ODataCatalogue;
use swath_engine::catalogue::stac::StacCatalogue;
use swath_engine::catalogue::Catalogue;
use swath_engine::config::Settings;
use swath_engine::db::ingestion::{cursor, quarantined};
use swath_engine::pipeline::poller::{poll, PollFailure, PollWindow};

use support::catalogue_server::{box_polygon, odata_entry, CatalogueServer, ODataEngine, Reply};
use support::{database_url, stderr, stdout, swath_env};

/// `n` S2 L1C products on EEA39 tiles, published one minute apart from 2024-03-01T10:00Z.
fn s2_entries(n: usize) -> Vec<Value> {
    let tiles = [
        "32TLR", "32TLS", "31TCH", "33TUN", "32TMS", "31UFS", "30TYN", "29UNV", "34VEM", "33WXS",
    ];
    (0..n)
        .map(|i| {
            let name = format!(
                "S2B_MSIL1C_20240301T10{:02}19_N0510_R022_T{}_20240301T12{:02}00",
                i % 60,
                tiles[i % tiles.len()],
                i % 60
            );
            let published = format!("2024-03-01T10:{:02}:00.123456Z", i % 60);
            odata_entry(&name, &published, box_polygon(7.0, 45.0, 8.0, 46.0))
        })
        .collect()
}

fn names(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            e["Name"]
                .as_str()
                .unwrap()
                .trim_end_matches(".SAFE")
                .to_string()
        })
        .collect()
}

fn fast_retries(attempts: u32) -> HttpFetcher {
    HttpFetcher::new(
        Duration::from_secs(10),
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(2),
        },
    )
    .unwrap()
}

fn fsc_rlie() -> Arc<dyn JobTemplate> {
    Settings::default()
        .registry()
        .unwrap()
        .get("fsc_rlie")
        .unwrap()
        .clone()
}

/// An OData catalogue engine over `entries`, with CDSE's skip limit.
fn engine_of(entries: &[Value]) -> ODataEngine {
    ODataEngine {
        entries: entries.to_vec(),
        skip_limit: 10_000,
    }
}

/// The OData adapter for `server`, with fast retries and pages of `page_size`.
fn odata_of(server: &CatalogueServer, page_size: u32) -> ODataCatalogue {
    ODataCatalogue::new(
        &format!("{}/odata/v1", server.base),
        fast_retries(3),
        page_size,
    )
    .unwrap()
}

/// The STAC catalogue of `server` (pages of 3 items, a sensing look-back of a day).
fn stac_of(server: &CatalogueServer) -> StacCatalogue {
    StacCatalogue::new(
        &format!("{}/v1", server.base),
        fast_retries(3),
        3,
        Duration::from_secs(86_400),
    )
    .unwrap()
}

fn test_job() -> Arc<dyn JobTemplate> {
    Settings::default()
        .registry()
        .unwrap()
        .get("test_job")
        .unwrap()
        .clone()
}

/// One poll of `catalogue` for the `test_job` type over [`window`], without a page callback.
async fn poll_test_job(
    pool: &PgPool,
    catalogue: &dyn Catalogue,
) -> Result<swath_engine::pipeline::poller::PollReport, swath_engine::pipeline::poller::PollError> {
    poll(pool, &test_job(), catalogue, window(), &mut |_| {}).await
}

fn window() -> PollWindow {
    PollWindow::Explicit {
        from: "2024-03-01T00:00:00Z".parse().unwrap(),
        to: "2024-03-02T00:00:00Z".parse().unwrap(),
    }
}

async fn job_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT product_id FROM jobs ORDER BY input_published_at, id")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn skip_of(seen: &support::catalogue_server::Seen) -> usize {
    seen.query
        .get("$skip")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[sqlx::test(migrations = "../sql")]
async fn odata_pages_are_followed_to_the_end(pool: PgPool) {
    let entries = s2_entries(7);
    let engine = engine_of(&entries);
    let server =
        CatalogueServer::start(move |seen, _, base| Reply::Json(engine.page(seen, base))).await;
    let odata = odata_of(&server, 3);
    let report = poll_test_job(&pool, &odata).await.unwrap();
    assert_eq!(report.pages, 3);
    assert_eq!(report.ingest.created, 7);
    assert_eq!(job_names(&pool).await, names(&entries));
    let seen = server.seen();
    assert_eq!(seen.iter().map(skip_of).collect::<Vec<_>>(), vec![0, 3, 6]);
    assert!(seen[0].query["$filter"].contains("PublicationDate ge 2024-03-01T00:00:00.000000Z"));
    let saved = cursor(&pool, "test_job", &odata.source())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        saved,
        "2024-03-01T10:06:00.123456Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
    );

    // The same listing again creates nothing new.
    let again = poll_test_job(&pool, &odata).await.unwrap();
    assert_eq!((again.ingest.created, again.ingest.already_known), (0, 7));
}

#[sqlx::test(migrations = "../sql")]
async fn a_429_is_retried_after_its_retry_after(pool: PgPool) {
    let entries = s2_entries(5);
    let engine = engine_of(&entries);
    let server = CatalogueServer::start(move |seen, index, base| {
        if index == 1 {
            Reply::TooManyRequests(Some("1".into()))
        } else {
            Reply::Json(engine.page(seen, base))
        }
    })
    .await;
    let odata = odata_of(&server, 3);
    let started = std::time::Instant::now();
    let report = poll_test_job(&pool, &odata).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(report.ingest.created, 5);
    assert_eq!(
        server.seen().iter().map(skip_of).collect::<Vec<_>>(),
        vec![0, 3, 3]
    );
    assert_eq!(job_names(&pool).await, names(&entries));
}

#[sqlx::test(migrations = "../sql")]
async fn a_500_mid_walk_loses_nothing_duplicates_nothing_and_keeps_the_cursor_before_it(
    pool: PgPool,
) {
    let entries = s2_entries(7);
    let engine = engine_of(&entries);
    let broken = Arc::new(AtomicBool::new(true));
    let flag = broken.clone();
    let server = CatalogueServer::start(move |seen, _, base| {
        if flag.load(Ordering::SeqCst) && skip_of(seen) == 3 {
            Reply::Status(500, "internal error".into())
        } else {
            Reply::Json(engine.page(seen, base))
        }
    })
    .await;
    let odata = odata_of(&server, 3);
    let err = poll_test_job(&pool, &odata).await.unwrap_err();
    assert_eq!(err.done.pages, 1);
    assert!(matches!(err.error, PollFailure::Catalogue(_)), "{err}");
    assert!(
        err.error
            .to_string()
            .contains("after 3 attempt(s): HTTP 500"),
        "{}",
        err.error
    );
    assert_eq!(
        job_names(&pool).await,
        names(&entries[..3]),
        "the first page is committed"
    );
    let saved = cursor(&pool, "test_job", &odata.source())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        saved,
        "2024-03-01T10:02:00.123456Z"
            .parse::<DateTime<Utc>>()
            .unwrap(),
        "not past the failure"
    );

    // The catalogue recovers; the next continuous poll starts from the cursor (minus the overlap).
    broken.store(false, Ordering::SeqCst);
    let continuous = PollWindow::Continuous {
        overlap: Duration::from_secs(60),
        initial_lookback: Duration::from_secs(86_400),
    };
    let report = poll(&pool, &test_job(), &odata, continuous, &mut |_| {})
        .await
        .unwrap();
    assert!(report.from <= saved - chrono::TimeDelta::seconds(60));
    assert_eq!(report.ingest.created, 4);
    assert_eq!(
        job_names(&pool).await,
        names(&entries),
        "every product exactly once"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_truncated_page_is_read_again(pool: PgPool) {
    let entries = s2_entries(6);
    let engine = engine_of(&entries);
    let server = CatalogueServer::start(move |seen, index, base| {
        let page = engine.page(seen, base);
        if index == 1 {
            Reply::Truncated(page)
        } else {
            Reply::Json(page)
        }
    })
    .await;
    let odata = odata_of(&server, 3);
    let report = poll_test_job(&pool, &odata).await.unwrap();
    assert_eq!(report.ingest.created, 6);
    // Page 2 is read twice; being full and without a next link, it is followed by a window restart
    // at its last publication time (the adapter cannot tell the end from the skip limit).
    // Page 2 is read twice; full and without a next link, but far from the skip limit: the end.
    assert_eq!(
        server.seen().iter().map(skip_of).collect::<Vec<_>>(),
        vec![0, 3, 3]
    );
    assert_eq!(job_names(&pool).await, names(&entries));
}

#[sqlx::test(migrations = "../sql")]
async fn unusable_products_in_the_middle_of_a_page_are_quarantined_and_block_nothing(pool: PgPool) {
    let mut entries = s2_entries(5);
    // A malformed name (30 February) and an entry without its storage path, in the middle.
    entries[1]["Name"] = "S2B_MSIL1C_20240230T101019_N0510_R022_T32TLS_20240301T120100.SAFE".into();
    entries[3].as_object_mut().unwrap().remove("S3Path");
    let bad_path_name = entries[3]["Name"].as_str().unwrap().to_string();
    let engine = engine_of(&entries);
    let server =
        CatalogueServer::start(move |seen, _, base| Reply::Json(engine.page(seen, base))).await;
    let odata = odata_of(&server, 10);
    let fsc = fsc_rlie();
    let report = poll(&pool, &fsc, &odata, window(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.ingest.created, 3);
    assert_eq!(report.ingest.quarantined.len(), 2);
    let expected: Vec<String> = [0, 2, 4]
        .iter()
        .map(|&i| names(&entries)[i].clone())
        .collect();
    assert_eq!(job_names(&pool).await, expected);
    let q = quarantined(&pool).await.unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].name, bad_path_name);
    assert_eq!(q[0].reason, "no S3Path");
    assert!(
        q[1].reason.contains("sensing start \"20240230T101019\""),
        "{}",
        q[1].reason
    );

    // Seen again: counted, not duplicated.
    poll(&pool, &fsc, &odata, window(), &mut |_| {})
        .await
        .unwrap();
    let q = quarantined(&pool).await.unwrap();
    assert_eq!(
        q.iter().map(|r| r.times_seen).collect::<Vec<_>>(),
        vec![2, 2]
    );
}

#[sqlx::test(migrations = "../sql")]
async fn auxiliary_products_are_not_for_the_type_and_are_not_quarantined(pool: PgPool) {
    // What a Sentinel-1 collection lists without a product type filter, among products.
    let aux = [
        "S1A_AUX_INS_V20190228T092500_G20210104T141310.SAFE",
        "S1A_OPER_AUX_POEORB_OPOD_20210401T121624_V20210311T225942_20210313T005942.EOF",
    ];
    let mut entries = s2_entries(3);
    for (i, name) in aux.iter().enumerate() {
        let published = format!("2024-03-01T10:0{i}:30.000000Z");
        entries.insert(
            1 + i,
            odata_entry(name, &published, box_polygon(7.0, 45.0, 8.0, 46.0)),
        );
    }
    let engine = engine_of(&entries);
    let server =
        CatalogueServer::start(move |seen, _, base| Reply::Json(engine.page(seen, base))).await;
    let odata = odata_of(&server, 10);
    let report = poll(&pool, &fsc_rlie(), &odata, window(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.ingest.created, 3);
    assert!(
        report.ingest.quarantined.is_empty(),
        "{:?}",
        report.ingest.quarantined
    );
    assert!(quarantined(&pool).await.unwrap().is_empty());
    // The OData adapter names products after their directory (`.SAFE` appended when missing).
    let skipped: Vec<&str> = report
        .ingest
        .skipped
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(skipped.len(), aux.len(), "{:?}", report.ingest.skipped);
    for (skipped, aux) in skipped.iter().zip(aux) {
        assert!(skipped.starts_with(aux), "{skipped} {aux}");
    }
    assert!(
        report.ingest.skipped[1]
            .reason
            .contains("auxiliary data file (AUX_POEORB)"),
        "{:?}",
        report.ingest.skipped[1]
    );
}

#[sqlx::test(migrations = "../sql")]
async fn the_odata_skip_limit_splits_the_window(pool: PgPool) {
    let entries = s2_entries(8);
    // Like CDSE's 10 000, scaled down: no next link past skip 3.
    let engine = ODataEngine {
        entries: entries.clone(),
        skip_limit: 3,
    };
    let server =
        CatalogueServer::start(move |seen, _, base| Reply::Json(engine.page(seen, base))).await;
    let odata = odata_of(&server, 3).with_skip_limit(3);
    let report = poll_test_job(&pool, &odata).await.unwrap();
    assert_eq!(report.ingest.created, 8);
    assert_eq!(job_names(&pool).await, names(&entries));
    let seen = server.seen();
    let restarts = seen
        .iter()
        .filter(|s| s.query["$filter"].contains("PublicationDate ge 2024-03-01T10:05:00.123456Z"))
        .count();
    assert_eq!(
        restarts, 1,
        "the window restarted at the last publication time of the full page: {seen:#?}"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_refused_request_fails_at_once(pool: PgPool) {
    let server =
        CatalogueServer::start(|_, _, _| Reply::Status(400, "{\"detail\": \"bad filter\"}".into()))
            .await;
    let odata =
        ODataCatalogue::new(&format!("{}/odata/v1", server.base), fast_retries(5), 3).unwrap();
    let err = poll_test_job(&pool, &odata).await.unwrap_err();
    assert!(
        err.error
            .to_string()
            .contains("HTTP 400: {\"detail\": \"bad filter\"}"),
        "{}",
        err.error
    );
    assert_eq!(server.seen().len(), 1, "no retry for a client error");
}

/// A STAC item in the format of the real CDSE item, for `name` published at `published`.
fn stac_item(name: &str, published: &str) -> Value {
    let mut item: Value =
        serde_json::from_str(include_str!("../../../testing/data/stac/s2_l1c_item.json")).unwrap();
    item["id"] = name.into();
    item["properties"]["published"] = published.into();
    item["links"] = json!([{"rel": "enclosure", "href": format!("s3://eodata/test/{name}.SAFE/")}]);
    item
}

#[sqlx::test(migrations = "../sql")]
async fn stac_pages_follow_token_links_and_post_bodies(pool: PgPool) {
    let items: Vec<Value> = names(&s2_entries(6))
        .iter()
        .enumerate()
        .map(|(i, n)| stac_item(n, &format!("2024-03-01T11:{i:02}:00Z")))
        .collect();
    let pages = items.clone();
    let server = CatalogueServer::start(move |seen, _, base| {
        let token = seen.query.get("token").cloned().or_else(|| seen.body.as_ref().and_then(|b| b["token"].as_str().map(String::from)));
        let (range, next) = match token.as_deref() {
            None => (0..3, Some(json!({"rel": "next", "href": format!("{base}/v1/search?token=next:abc")}))),
            Some("next:abc") => (3..5, Some(json!({"rel": "next", "href": format!("{base}/v1/search"), "method": "POST", "body": {"token": "next:def"}}))),
            Some("next:def") => (5..6, None),
            Some(other) => return Reply::Status(400, format!("unknown token {other}")),
        };
        let mut links = vec![json!({"rel": "self", "href": format!("{base}/v1/search")})];
        links.extend(next);
        Reply::Json(json!({"type": "FeatureCollection", "features": pages[range].to_vec(), "links": links}))
    })
    .await;
    let stac = stac_of(&server);
    let report = poll_test_job(&pool, &stac).await.unwrap();
    assert_eq!(report.pages, 3);
    assert_eq!(report.ingest.created, 6);
    let seen = server.seen();
    assert_eq!(seen[0].query["collections"], "sentinel-2-l1c");
    assert_eq!(
        seen[0].query["datetime"],
        "2024-02-29T00:00:00.000000Z/2024-03-02T00:00:00.000000Z"
    );
    assert_eq!(seen[1].query["token"], "next:abc");
    assert_eq!(seen[2].body.as_ref().unwrap()["token"], "next:def");
    let paths: Vec<String> = sqlx::query_scalar("SELECT input_path FROM jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        paths[0].starts_with("s3://eodata/test/S2B_MSIL1C_") && paths[0].ends_with(".SAFE"),
        "{paths:?}"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn swath_ingest_runs_a_backfill_and_reports_failures(pool: PgPool) {
    let entries = s2_entries(4);
    let engine = engine_of(&entries);
    let broken = Arc::new(AtomicBool::new(false));
    let flag = broken.clone();
    let server = CatalogueServer::start(move |seen, _, base| {
        if flag.load(Ordering::SeqCst) {
            Reply::Status(503, "maintenance".into())
        } else {
            Reply::Json(engine.page(seen, base))
        }
    })
    .await;
    let source = format!("odata+{}/odata/v1", server.base);
    let url = database_url(&pool);
    let env = [
        ("SWATH_CATALOGUE_RETRY_BASE_MS", "1"),
        ("SWATH_CATALOGUE_MAX_ATTEMPTS", "2"),
        ("SWATH_CATALOGUE_PAGE_SIZE", "3"),
    ];
    let args: Vec<String> = [
        "ingest",
        "--type",
        "test_job",
        "--source",
        &source,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
    ]
    .map(String::from)
    .to_vec();
    let run = move |url: String, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            swath_env(
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
                Some(&url),
                &env,
            )
        })
    };
    let out = run(url.clone(), args.clone()).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("test_job"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[..5], ["test_job", "2", "4", "4", "0"], "{text}");
    assert!(
        stderr(&out).contains("page 2: 4 listed"),
        "plain log lines off a terminal: {}",
        stderr(&out)
    );
    assert_eq!(job_names(&pool).await, names(&entries));

    broken.store(true, Ordering::SeqCst);
    let out = run(url, args).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HTTP 503"), "{}", stderr(&out));

    let out = swath_env(
        &["ingest", "--type", "test_job", "--from", "tomorrow"],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither an RFC 3339 time nor a YYYY-MM-DD date"),
        "{}",
        stderr(&out)
    );
}

/// The next page is planned while the previous one commits: a plan that may depend on the
/// previous page (same sensing times) must be made again, so relations across pages hold.
#[sqlx::test(migrations = "../sql")]
async fn versions_and_repeats_across_consecutive_pages_are_handled(pool: PgPool) {
    let north = box_polygon(-8.0, 53.52, -6.4, 54.15);
    let south = box_polygon(-8.0, 53.15, -6.4, 53.96);
    let a301 = "S2B_MSIL1C_20211002T113319_N0301_R080_T29UNV_20211002T141024";
    let a500 = "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20211002T203816";
    let b301 = "S2B_MSIL1C_20211002T113319_N0301_R080_T29UNV_20211002T160521";
    let mut repeated = odata_entry(a301, "2021-10-02T15:00:00.000002Z", north.clone());
    repeated["Id"] = "another-catalogue-id".into();
    let entries = vec![
        odata_entry(a301, "2021-10-02T15:00:00.000001Z", north.clone()),
        repeated,
        odata_entry(a500, "2021-10-02T21:00:00Z", north),
        odata_entry(b301, "2021-10-02T22:00:00Z", south),
    ];
    let engine = ODataEngine {
        entries,
        skip_limit: 10_000,
    };
    let server =
        CatalogueServer::start(move |seen, _, base| Reply::Json(engine.page(seen, base))).await;
    // One product per page: every relation crosses a page boundary.
    let odata = odata_of(&server, 1);
    let fsc = fsc_rlie();
    let window = PollWindow::Explicit {
        from: "2021-10-01T00:00:00Z".parse().unwrap(),
        to: "2021-10-03T00:00:00Z".parse().unwrap(),
    };
    let report = poll(&pool, &fsc, &odata, window, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (
            report.pages,
            report.ingest.created,
            report.ingest.superseded,
            report.ingest.already_known
        ),
        (4, 3, 1, 1)
    );
    let rows: Vec<(String, i16)> = sqlx::query_as("SELECT name, status FROM jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (a301.to_string(), 16),
            (a500.to_string(), 1),
            (b301.to_string(), 1)
        ]
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_request_that_times_out_is_retried(pool: PgPool) {
    let entries = s2_entries(2);
    let engine = engine_of(&entries);
    let server = CatalogueServer::start(move |seen, index, base| {
        let page = Reply::Json(engine.page(seen, base));
        if index == 0 {
            Reply::Slow(Duration::from_secs(5), Box::new(page))
        } else {
            page
        }
    })
    .await;
    let http = HttpFetcher::new(
        Duration::from_millis(300),
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(1),
        },
    )
    .unwrap();
    let odata = ODataCatalogue::new(&format!("{}/odata/v1", server.base), http, 10).unwrap();
    let report = poll_test_job(&pool, &odata).await.unwrap();
    assert_eq!(report.ingest.created, 2);
    assert_eq!(
        server.seen().len(),
        2,
        "the timed-out request was sent again"
    );
    assert_eq!(job_names(&pool).await, names(&entries));
}

/// `swath serve` polls on its own, from its cursor, and stops cleanly on SIGTERM.
#[sqlx::test(migrations = "../sql")]
async fn swath_serve_ingests_continuously_until_stopped(pool: PgPool) {
    let now = Utc::now();
    let recent = |i: usize, minutes_ago: i64| {
        let published = (now - chrono::TimeDelta::minutes(minutes_ago))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let sensing = (now - chrono::TimeDelta::hours(2)).format("%Y%m%dT%H%M%S");
        odata_entry(
            &format!(
                "S2B_MSIL1C_{sensing}_N0511_R022_T32TL{}_20991231T00000{i}",
                ["R", "S", "T"][i]
            ),
            &published,
            box_polygon(7.0, 45.0, 8.0, 46.0),
        )
    };
    let entries = Arc::new(std::sync::Mutex::new(vec![recent(0, 30)]));
    let served = entries.clone();
    let server = CatalogueServer::start(move |seen, _, base| {
        let engine = ODataEngine {
            entries: served.lock().unwrap().clone(),
            skip_limit: 10_000,
        };
        Reply::Json(engine.page(seen, base))
    })
    .await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_swath"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SWATH_DATABASE_URL", database_url(&pool))
        .env("SWATH_CATALOGUE", format!("odata+{}/odata/v1", server.base))
        .env("SWATH_JOB_TYPES", "[fsc_rlie]")
        .env("SWATH_INGEST_INTERVAL_SECS", "1")
        .env("SWATH_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let count = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let wait_for = |n: i64| {
        let pool = pool.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while count(pool.clone()).await < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "serve did not ingest {n} job(s) in time"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(1).await;
    // A product published later is picked up by a later round.
    entries.lock().unwrap().push(recent(1, 1));
    wait_for(2).await;
    // Each new job is configured as soon as it is created (woken by the job-change notification),
    // then dispatched: its history shows it became ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT job_id) FROM job_status_changes WHERE status = 3",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if ready == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not configure the jobs in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let pid = child.id() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stderr).contains("swath serve: stopped"));
    assert_eq!(count(pool.clone()).await, 2, "each product once");
}

/// A next link to another host is refused before it is requested: the catalogue's answers are not
/// trusted to send the orchestrator elsewhere (another service on its network, a metadata endpoint).
#[sqlx::test(migrations = "../sql")]
async fn a_next_link_to_another_host_is_refused_and_never_requested(pool: PgPool) {
    let entries = s2_entries(6);
    let other_entries = entries.clone();
    let other = CatalogueServer::start_on([127, 0, 0, 2], move |seen, _, base| {
        Reply::Json(engine_of(&other_entries).page(seen, base))
    })
    .await;
    let foreign = format!("{}/odata/v1/Products?$skip=3", other.base);
    let link = foreign.clone();
    let engine = engine_of(&entries);
    let server = CatalogueServer::start(move |seen, _, base| {
        let mut page = engine.page(seen, base);
        page["@odata.nextLink"] = Value::String(link.clone());
        Reply::Json(page)
    })
    .await;
    let odata = odata_of(&server, 3);
    let err = poll_test_job(&pool, &odata).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&foreign) && text.contains(&server.base),
        "names the link and the expected origin: {text}"
    );
    assert!(
        other.seen().is_empty(),
        "the other host got {:?}",
        other.seen()
    );
    assert_eq!(server.seen().len(), 1, "not retried");
    // The page carrying the link fails as a whole: nothing of it is committed.
    assert_eq!(err.done.pages, 0);
    assert!(job_names(&pool).await.is_empty());
}

/// The same for a STAC `rel=next` link to another port of the same host (another origin).
#[sqlx::test(migrations = "../sql")]
async fn a_stac_next_link_to_another_origin_is_refused(pool: PgPool) {
    let other = CatalogueServer::start(|_, _, _| {
        Reply::Json(json!({"type": "FeatureCollection", "features": [], "links": []}))
    })
    .await;
    let foreign = format!("{}/v1/search?token=next:abc", other.base);
    let link = foreign.clone();
    let item = stac_item(&names(&s2_entries(1))[0], "2024-03-01T11:00:00Z");
    let server = CatalogueServer::start(move |_, _, _| {
        Reply::Json(
            json!({"type": "FeatureCollection", "features": [item.clone()],
                           "links": [{"rel": "next", "href": link.clone()}]}),
        )
    })
    .await;
    let stac = stac_of(&server);
    let err = poll_test_job(&pool, &stac).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&foreign) && text.contains(&server.base),
        "{text}"
    );
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    assert!(job_names(&pool).await.is_empty());
}

/// A body that never ends is read up to the default cap (64 MiB) and no further: the page fails at
/// once with an error naming the limit and its setting, without waiting for a timeout or retrying.
#[sqlx::test(migrations = "../sql")]
async fn an_endless_body_stops_at_the_default_cap(pool: PgPool) {
    let server = CatalogueServer::start(|_, _, _| Reply::Endless).await;
    let odata = odata_of(&server, 3);
    let err = poll_test_job(&pool, &odata).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("67108864 bytes") && text.contains("SWATH_CATALOGUE_MAX_BODY_MB"),
        "{text}"
    );
    assert_eq!(server.seen().len(), 1, "not retried");
}

/// Products whose storage path lies outside the configured stores are quarantined with the reason,
/// and get no job: a catalogue cannot make a worker read the host's files or another bucket.
#[sqlx::test(migrations = "../sql")]
async fn inputs_outside_the_stores_are_quarantined_and_get_no_job(pool: PgPool) {
    let mut entries = s2_entries(7);
    let bad = [
        "file:///root",
        "/eodata/../../root",
        "/eodata/test/%2e%2e/%2E%2E/root",
        "s3://another-bucket/x.SAFE",
        "https://elsewhere.example/x.SAFE",
    ];
    for (entry, path) in entries[1..].iter_mut().zip(bad) {
        entry["S3Path"] = path.into();
    }
    let engine = engine_of(&entries);
    let server =
        CatalogueServer::start(move |seen, _, base| Reply::Json(engine.page(seen, base))).await;
    let settings = Settings::default();
    let odata = swath_engine::catalogue::open(
        &format!("odata+{}/odata/v1", server.base),
        &settings.catalogue_options(),
    )
    .unwrap();
    let report = poll_test_job(&pool, odata.as_ref()).await.unwrap();
    assert_eq!(report.ingest.created, 2, "{report:?}");
    assert_eq!(
        job_names(&pool).await,
        vec![names(&entries)[0].clone(), names(&entries)[6].clone()]
    );
    let q = quarantined(&pool).await.unwrap();
    assert_eq!(q.len(), bad.len(), "{q:?}");
    for (record, path) in q.iter().zip(bad) {
        assert!(
            record.reason.contains(path) && record.reason.contains("input"),
            "{}",
            record.reason
        );
    }
}

/// A page over a small cap fails at once, announced (`Content-Length`) or not (chunked): not retried,
/// with an error naming the size and the setting; the pages before it stay ingested.
#[sqlx::test(migrations = "../sql")]
async fn a_body_over_the_cap_fails_its_page_and_keeps_the_pages_before(pool: PgPool) {
    for streamed in [false, true] {
        let entries = s2_entries(6);
        let engine = engine_of(&entries);
        let server = CatalogueServer::start(move |seen, _, base| {
            let mut page = engine.page(seen, base);
            if skip_of(seen) == 3 {
                // Padding any JSON reader accepts, past the cap.
                page["padding"] = Value::String("x".repeat(64 * 1024));
            }
            if streamed {
                Reply::Streamed(page)
            } else {
                Reply::Json(page)
            }
        })
        .await;
        let odata = ODataCatalogue::new(
            &format!("{}/odata/v1", server.base),
            fast_retries(3).with_max_body(32 * 1024),
            3,
        )
        .unwrap();
        sqlx::query("TRUNCATE jobs CASCADE")
            .execute(&pool)
            .await
            .unwrap();
        let err = poll_test_job(&pool, &odata).await.unwrap_err();
        let text = err.to_string();
        let size = if streamed {
            "more than 32768 bytes"
        } else {
            "(Content-Length)"
        };
        assert!(
            text.contains(size)
                && text.contains("limit of 32768 bytes")
                && text.contains("SWATH_CATALOGUE_MAX_BODY_MB"),
            "{text}"
        );
        assert!(matches!(
            err.error,
            PollFailure::Catalogue(swath_engine::catalogue::CatalogueError::BodyTooLarge { .. })
        ));
        assert_eq!(server.seen().len(), 2, "the big page is not asked again");
        assert_eq!(err.done.pages, 1);
        assert_eq!(job_names(&pool).await, names(&entries[..3]));
    }
}
