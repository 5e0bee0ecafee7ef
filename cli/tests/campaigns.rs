//! Reprocessing campaigns end to end.
//!
//! - One instance on the Nomad emulator, whose dispatches a worker stand-in plays through the
//!   instance's worker API: a campaign over a catalogue directory is throttled to its
//!   `max_in_flight` (read back from the status history), paused (dispatch goes on for other jobs,
//!   not for it), resumed, and completed with exact progress, skipping the products that continuous
//!   ingestion had already made jobs of.
//! - Two real `swath serve` processes and a catalogue that answers slowly, page by page: the instance
//!   listing a campaign is killed with SIGKILL mid-window; the other takes the listing over once the
//!   lease runs out and goes on from the last committed page, so that every product is listed and
//!   made a job once (chaos tier).
//! - Against the database alone: a pause counts the claims made before it; a finished campaign's
//!   jobs (those of a failed listing, retries asked for later) are still claimed, a paused one's
//!   are not; a campaign whose catalogue is down does not hold up the listing of the others.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use swath_domain::flavor::WorkerFlavor;
use swath_domain::{JobStatus, NewJob};
use swath_engine::catalogue;
use swath_engine::config::{ExecutorKind, Settings};
use swath_engine::db::campaigns::{
    campaign_progress, create_campaign, get_campaign, pause_campaign, resume_campaign, Campaign,
    CampaignState, NewCampaign, ALREADY_KNOWN,
};
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::DatabaseUrl;
use swath_engine::pipeline::poller::{poll, PollWindow};
use swath_engine::startup::{self, Options};

use support::catalogue_server::{box_polygon, odata_entry, CatalogueServer, ODataEngine, Reply};
use support::fleet::{stand_in, Fleet, Problems};
use support::nomad_emulator::{
    EmulatedNode, EmulatorOptions, NomadEmulator, Outcome, WorkerRunner,
};
use support::private_pg::free_port;

/// The parent Nomad job of the `tiny` flavor.
const TINY_PARENT: &str = "swath-worker-tiny";

fn tiny() -> WorkerFlavor {
    support::tiny_flavor()
}

/// Settings whose `test_job` runs on the `tiny` flavor.
fn tiny_settings() -> Settings {
    Settings {
        job_types: vec!["test_job".into()],
        flavors: swath_domain::flavor::default_flavors()
            .into_iter()
            .chain([tiny()])
            .collect(),
        job_type_settings: [(
            "test_job".to_string(),
            toml::from_str("worker_flavor = \"tiny\"").unwrap(),
        )]
        .into(),
        ..Settings::default()
    }
}

/// `runner`, each attempt of which first works for `work` (so that attempts overlap and the
/// campaign's throttle is what holds their number).
fn working_for(runner: WorkerRunner, work: Duration) -> WorkerRunner {
    WorkerRunner(Arc::new(move |d| {
        let inner = runner.clone();
        Box::pin(async move {
            tokio::time::sleep(work).await;
            (inner.0)(d).await
        })
    }))
}

/// A directory catalogue with one entry per `(name, published_at)`.
fn catalogue_dir(dir: &Path, products: &[(String, DateTime<Utc>)]) -> String {
    for (name, published) in products {
        let entry = dir.join(name);
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(
            entry.join(catalogue::local::LISTING_FILE),
            serde_json::json!({ "published_at": published }).to_string(),
        )
        .unwrap();
    }
    format!("dir:{}", dir.display())
}

/// An S2 L1C product name, distinct for each `i`.
fn s2_name(i: usize) -> String {
    let tiles = ["32TLR", "32TLS", "31TCH", "33TUN", "32TMS"];
    format!(
        "S2B_MSIL1C_20240301T10{:02}19_N0510_R022_T{}_20240301T12{:02}00.SAFE",
        i % 60,
        tiles[i % tiles.len()],
        i % 60
    )
}

/// Polls `check` until it holds, for at most `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn campaign(pool: &PgPool, id: i64) -> Campaign {
    get_campaign(pool, id).await.unwrap()
}

/// Whether a job in `status` is running an attempt: dispatched and not past `post_processing`.
fn in_flight(status: i16) -> bool {
    (JobStatus::Queued.id()..=JobStatus::PostProcessing.id()).contains(&status)
}

/// The largest number of campaign `id`'s jobs in flight at once, from the status history: a job
/// counts from its change into `queued` until its change out of `post_processing` (or any other
/// change that leaves the dispatched statuses).
async fn most_in_flight(pool: &PgPool, id: i64) -> i64 {
    let changes: Vec<(i64, i16, DateTime<Utc>)> = sqlx::query_as(
        "SELECT h.job_id, h.status, h.time FROM job_status_changes h
         JOIN jobs j ON j.id = h.job_id
         WHERE j.campaign_id = $1
         ORDER BY h.job_id, h.time, h.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap();
    // (time, +1 entering / -1 leaving); at equal times leaving first.
    let mut events: Vec<(DateTime<Utc>, i64)> = Vec::new();
    let mut flying: HashMap<i64, bool> = HashMap::new();
    for (job, status, time) in changes {
        let was = flying.get(&job).copied().unwrap_or(false);
        let is = in_flight(status);
        if is != was {
            events.push((time, if is { 1 } else { -1 }));
            flying.insert(job, is);
        }
    }
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in events {
        now += step;
        most = most.max(now);
    }
    most
}

#[sqlx::test(migrations = "../sql")]
async fn a_campaign_is_throttled_paused_resumed_and_completed_with_exact_progress(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let products_dir = dir.path().join("catalogue");
    std::fs::create_dir_all(&products_dir).unwrap();
    std::fs::create_dir_all(dir.path().join("outputs")).unwrap();
    let from: DateTime<Utc> = "2024-03-01T00:00:00Z".parse().unwrap();
    let to: DateTime<Utc> = "2024-03-02T00:00:00Z".parse().unwrap();
    let at_ten: DateTime<Utc> = "2024-03-01T10:00:00Z".parse().unwrap();
    // Ten products in the window, one minute apart, and three outside it.
    let mut products: Vec<(String, DateTime<Utc>)> = (0..10)
        .map(|i| (s2_name(i), at_ten + TimeDelta::minutes(i as i64)))
        .collect();
    products.extend([
        (s2_name(20), from - TimeDelta::hours(1)),
        (s2_name(21), to),
        (s2_name(22), to + TimeDelta::days(3)),
    ]);
    let spec = catalogue_dir(&products_dir, &products);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let problems = Problems::default();
    let emulator = NomadEmulator::start(EmulatorOptions {
        runner: Some(working_for(
            stand_in(vec![port], problems.clone()),
            Duration::from_millis(500),
        )),
        ..EmulatorOptions::default()
    })
    .await;
    emulator.script(TINY_PARENT, &[], Outcome::Worker).await;
    let settings = Settings {
        executor: ExecutorKind::Nomad,
        nomad_addr: emulator.url(),
        nomad_watch_wait_secs: 2,
        // The campaign's catalogue is the instance's own, so that its inputs may be read.
        catalogue: spec.clone(),
        output_url: format!("file://{}", dir.path().join("outputs").display()),
        publication_file: dir.path().join("publications.jsonl").display().to_string(),
        heartbeat_interval_secs: 1,
        heartbeat_missed_limit: 2,
        lease_secs: 2,
        shutdown_timeout_secs: 2,
        track_interval_secs: 1,
        ..tiny_settings()
    };

    // Continuous ingestion made jobs of the first two products already.
    let registry = settings.registry().unwrap();
    let source = catalogue::open(&spec, &settings.catalogue_options()).unwrap();
    let ingested = poll(
        &pool,
        registry.get("test_job").unwrap(),
        source.as_ref(),
        PollWindow::Explicit {
            from: at_ten,
            to: at_ten + TimeDelta::minutes(2),
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(ingested.ingest.created, 2, "{ingested:?}");

    let instance = startup::start(&pool, &settings, listener, Options::default())
        .await
        .unwrap();
    let created = create_campaign(
        &pool,
        &NewCampaign {
            name: "reprocess-march".into(),
            job_type: "test_job".into(),
            source: spec.clone(),
            from,
            to,
            tiles: None,
            reprocess: false,
            image: None,
            max_in_flight: 2,
        },
    )
    .await
    .unwrap();
    let id = created.id;

    // Paused once one of its jobs is done (early: most of them still wait).
    eventually("a campaign job done", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { campaign_progress(&pool, id).await.unwrap().done >= 1 }
    })
    .await;
    let paused = pause_campaign(&pool, id).await.unwrap();
    assert_eq!(paused.campaign.state, CampaignState::Paused);
    let paused_at = paused.campaign.state_changed_at;

    // Dispatch goes on for other work meanwhile: a plain job created after the pause runs to done.
    let mut plain = NewJob::new("test_job", "plain-after-pause", 3);
    plain.params = serde_json::json!({"product": "plain-after-pause", "mission": "S2"});
    plain.input_path = Some("/eodata/plain/after-pause".into());
    // Created `initialized`: the instance configures it and dispatches it.
    let plain_id = insert_jobs(&pool, &[plain]).await.unwrap()[0].id;
    eventually(
        "the plain job is done during the pause",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move { get_job(&pool, plain_id).await.unwrap().status == JobStatus::Done }
        },
    )
    .await;
    assert_eq!(campaign(&pool, id).await.state, CampaignState::Paused);
    let queued_after_pause: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_status_changes h JOIN jobs j ON j.id = h.job_id
         WHERE j.campaign_id = $1 AND h.status = $2 AND h.time > $3",
    )
    .bind(id)
    .bind(JobStatus::Queued.id())
    .bind(paused_at)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        queued_after_pause <= paused.claimed,
        "{queued_after_pause} campaign jobs dispatched after the pause, {} claimed before it",
        paused.claimed
    );
    let during = campaign_progress(&pool, id).await.unwrap();
    assert!(during.waiting > 0, "jobs wait while paused: {during:?}");

    // Resumed, it completes.
    let resumed = resume_campaign(&pool, id).await.unwrap();
    assert!(
        matches!(
            resumed.state,
            CampaignState::Running | CampaignState::Listing
        ),
        "{resumed:?}"
    );
    eventually("the campaign completed", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move { campaign(&pool, id).await.state == CampaignState::Completed }
    })
    .await;
    let done = campaign(&pool, id).await;
    assert_eq!(
        (done.pages, done.products_listed, done.jobs_created),
        (1, 10, 8),
        "{done:?}"
    );
    assert_eq!(
        done.skipped,
        [(ALREADY_KNOWN.to_string(), 2)].into(),
        "{done:?}"
    );
    assert!(done.listing_finished_at.is_some() && done.finished_at.is_some());
    let progress = campaign_progress(&pool, id).await.unwrap();
    assert_eq!(
        (
            progress.jobs,
            progress.done,
            progress.failed,
            progress.waiting,
            progress.in_flight,
            progress.publishing,
            progress.cancelled
        ),
        (8, 8, 0, 0, 0, 0, 0),
        "{progress:?}"
    );
    // Its jobs are the eight products of the window not ingested before, once each.
    let mut campaign_products: Vec<String> = sqlx::query_scalar(
        "SELECT input_path FROM jobs WHERE campaign_id = $1 ORDER BY input_published_at",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    campaign_products.dedup();
    assert_eq!(campaign_products.len(), 8, "{campaign_products:?}");
    for (name, _) in &products[2..10] {
        assert!(
            campaign_products.iter().any(|p| p.ends_with(name.as_str())),
            "{name} has no campaign job: {campaign_products:?}"
        );
    }

    // Throttled: never more than two of its jobs in flight, and two at some moment.
    let most = most_in_flight(&pool, id).await;
    eprintln!(
        "campaign: {} claimed at the pause, {queued_after_pause} dispatched after it; at most {most} in flight",
        paused.claimed
    );
    assert_eq!(most, 2, "most campaign jobs in flight at once");

    instance.stop().await;
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "worker reports refused: {problems:#?}");
    let openapi = emulator.openapi_problems().await;
    assert!(openapi.is_empty(), "{openapi:#?}");
}

/// Products of the slow catalogue, and its page size.
const SLOW_PRODUCTS: usize = 40;
const PAGE: usize = 4;
/// How long the slow catalogue takes to answer a page.
const PAGE_DELAY: Duration = Duration::from_millis(400);
/// The parent Nomad job of `test_job`'s default flavor.
const DEFAULT_PARENT: &str = "swath-worker-eo1.xsmall";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_killed_mid_window_is_taken_over_from_its_last_committed_page() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Chaos) {
        return;
    }
    let (url, _) = support::scratch_database_url("campaign_kill");
    let db = DatabaseUrl::new(&url);
    swath_engine::db::create_database_if_missing(&db)
        .await
        .unwrap();
    killed_listing(&url).await;
    swath_engine::db::drop_database_if_exists(&db)
        .await
        .unwrap();
}

/// The value of `$skip` in a catalogue request (0 when absent: the window's first page).
fn skip_of(seen: &support::catalogue_server::Seen) -> usize {
    seen.query
        .get("$skip")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn killed_listing(url: &str) {
    let dir = std::env::temp_dir().join(format!(
        "swath-campaign-kill-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(dir.join("catalogue")).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap();
    swath_engine::db::migrate(&pool).await.unwrap();

    // A catalogue of 40 products that answers each page of 4 slowly.
    let entries: Vec<serde_json::Value> = (0..SLOW_PRODUCTS)
        .map(|i| {
            odata_entry(
                &format!("S2B_MSIL1C_20240301T10{i:02}19_N0510_R022_T32TLR_20240301T12{i:02}00"),
                &format!("2024-03-01T10:{i:02}:00.123456Z"),
                box_polygon(7.0, 45.0, 8.0, 46.0),
            )
        })
        .collect();
    let engine = ODataEngine {
        entries,
        skip_limit: 10_000,
    };
    let server = CatalogueServer::start(move |seen, _, base| {
        Reply::Slow(PAGE_DELAY, Box::new(Reply::Json(engine.page(seen, base))))
    })
    .await;

    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let problems = Problems::default();
    let emulator = NomadEmulator::start(EmulatorOptions {
        runner: Some(stand_in(ports.clone(), problems.clone())),
        nodes: (1..=20)
            .map(|n| EmulatedNode::vm(&format!("worker-{n}"), "eo1.xsmall", 1, 1, 8))
            .collect(),
        ..EmulatorOptions::default()
    })
    .await;
    emulator.script(DEFAULT_PARENT, &[], Outcome::Worker).await;
    let mut fleet = Fleet::start(&ports, &environment(url, &emulator, &dir), &dir);
    fleet.wait_ready(Duration::from_secs(60)).await;

    let id = create_campaign(
        &pool,
        &NewCampaign {
            name: "slow-window".into(),
            job_type: "test_job".into(),
            source: format!("odata+{}/odata/v1", server.base),
            from: "2024-03-01T00:00:00Z".parse().unwrap(),
            to: "2024-03-02T00:00:00Z".parse().unwrap(),
            tiles: None,
            reprocess: false,
            image: None,
            max_in_flight: 10,
        },
    )
    .await
    .unwrap()
    .id;

    // Two pages in, the listing instance is killed.
    eventually("two pages listed", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { campaign(&pool, id).await.pages >= 2 }
    })
    .await;
    let owner: uuid::Uuid = sqlx::query_scalar("SELECT listing_owner FROM campaigns WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM services WHERE id = $1")
        .bind(owner)
        .fetch_one(&pool)
        .await
        .unwrap();
    let victim: usize = name.strip_prefix("chaos-").unwrap().parse().unwrap();
    fleet.kill(victim);
    let survivor_name = format!("chaos-{}", 1 - victim);
    let at_kill = campaign(&pool, id).await;
    assert!(
        at_kill.listing_finished_at.is_none(),
        "killed after the listing ended: {at_kill:?}; logs in {}",
        dir.display()
    );
    assert!(at_kill.pages >= 2 && (at_kill.pages as usize) < SLOW_PRODUCTS / PAGE);

    // The other instance takes the listing over once the lease ran out, and finishes it.
    eventually(
        "the other instance took the listing over",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            let survivor_name = survivor_name.clone();
            async move {
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT s.name FROM campaigns c JOIN services s ON s.id = c.listing_owner
                     WHERE c.id = $1",
                )
                .bind(id)
                .fetch_optional(&pool)
                .await
                .unwrap();
                holder.as_deref() == Some(survivor_name.as_str())
            }
        },
    )
    .await;
    eventually("the window is listed", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { campaign(&pool, id).await.listing_finished_at.is_some() }
    })
    .await;
    let listed = campaign(&pool, id).await;
    assert_eq!(
        (
            listed.pages,
            listed.products_listed,
            listed.jobs_created,
            listed.skipped.len()
        ),
        (
            (SLOW_PRODUCTS / PAGE) as i32,
            SLOW_PRODUCTS as i64,
            SLOW_PRODUCTS as i64,
            0
        ),
        "every page committed once: {listed:?}"
    );
    let (jobs, products): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT product_id) FROM jobs WHERE campaign_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (jobs, products),
        (SLOW_PRODUCTS as i64, SLOW_PRODUCTS as i64)
    );

    // The survivor went on from the last committed page and never started over: the pages were
    // asked for in order, each once but for the page in flight at the kill (asked for again), and
    // the window's first page only once.
    let skips: Vec<usize> = server.seen().iter().map(skip_of).collect();
    eprintln!(
        "campaign kill: instance {victim} killed after {} committed pages; $skip of every request: {skips:?}",
        at_kill.pages
    );
    let pages: Vec<usize> = (0..SLOW_PRODUCTS).step_by(PAGE).collect();
    let mut in_order = skips.clone();
    in_order.dedup();
    assert_eq!(in_order, pages, "pages in order, no restart: {skips:?}");
    let times = |page: usize| skips.iter().filter(|&&s| s == page).count();
    assert_eq!(times(0), 1, "the first page was listed again: {skips:?}");
    let again: Vec<usize> = pages.iter().copied().filter(|&p| times(p) > 1).collect();
    assert!(
        again.len() <= 1 && again.iter().all(|&p| times(p) == 2),
        "pages listed again: {skips:?}"
    );
    assert!(
        again.iter().all(|&p| p >= at_kill.pages as usize * PAGE),
        "a page committed before the kill was listed again: {skips:?}"
    );

    // And the campaign's jobs all run to done, once each.
    eventually("the campaign completed", Duration::from_secs(120), || {
        let pool = pool.clone();
        async move { campaign(&pool, id).await.state == CampaignState::Completed }
    })
    .await;
    let progress = campaign_progress(&pool, id).await.unwrap();
    assert_eq!(
        (progress.jobs, progress.done),
        (SLOW_PRODUCTS as i64, SLOW_PRODUCTS as i64),
        "{progress:?}"
    );
    let dispatched = emulator.dispatches().await;
    let attempts: HashSet<(String, String)> = dispatched
        .iter()
        .map(|d| (d.meta["job_id"].clone(), d.meta["attempt"].clone()))
        .collect();
    assert_eq!(
        attempts.len(),
        dispatched.len(),
        "an attempt dispatched twice"
    );

    let killed = fleet.terminate(Duration::from_secs(20));
    assert!(killed.is_empty(), "instances {killed:?} did not stop");
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "worker reports refused: {problems:#?}");
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn environment(url: &str, emulator: &NomadEmulator, dir: &Path) -> Vec<(String, String)> {
    // Continuous ingestion reads an empty directory: only the campaign lists the slow catalogue.
    let catalogue = format!("dir:{}", dir.join("catalogue").display());
    [
        ("SWATH_DATABASE_URL", url),
        ("SWATH_EXECUTOR", "nomad"),
        ("SWATH_NOMAD_ADDR", &emulator.url()),
        ("SWATH_NOMAD_WATCH_WAIT_SECS", "2"),
        ("SWATH_JOB_TYPES", "[test_job]"),
        ("SWATH_CATALOGUE", &catalogue),
        ("SWATH_CATALOGUE_PAGE_SIZE", &PAGE.to_string()),
        ("SWATH_PUBLISHER", "file"),
        ("SWATH_HEARTBEAT_INTERVAL_SECS", "1"),
        ("SWATH_HEARTBEAT_MISSED_LIMIT", "2"),
        ("SWATH_LEASE_SECS", "2"),
        ("SWATH_SHUTDOWN_TIMEOUT_SECS", "5"),
        ("SWATH_TRACK_INTERVAL_SECS", "1"),
        ("SWATH_INGEST_INTERVAL_SECS", "3600"),
        ("SWATH_RETRY_BASE_SECS", "1"),
        ("SWATH_RETRY_MAX_SECS", "2"),
        ("SWATH_LOG", "info,sqlx=warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A ready campaign job of campaign `id` for product `product`.
async fn ready_campaign_job(pool: &PgPool, id: i64, product: &str) -> i64 {
    let mut job = NewJob::new("test_job", format!("test-{product}"), 3);
    job.product_id = Some(product.to_string());
    job.campaign_id = Some(id);
    job.params = serde_json::json!({"product": product, "mission": "S2"});
    let job_id = insert_jobs(pool, &[job]).await.unwrap()[0].id;
    let job = get_job(pool, job_id).await.unwrap();
    support::drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await;
    job_id
}

fn new_campaign(name: &str, max_in_flight: i32) -> NewCampaign {
    NewCampaign {
        name: name.into(),
        job_type: "test_job".into(),
        source: "dir:/nowhere".into(),
        from: "2024-03-01T00:00:00Z".parse().unwrap(),
        to: "2024-03-02T00:00:00Z".parse().unwrap(),
        tiles: None,
        reprocess: false,
        image: None,
        max_in_flight,
    }
}

#[sqlx::test(migrations = "../sql")]
async fn jobs_of_a_failed_campaign_and_later_retries_of_a_finished_ones_are_dispatched(
    pool: PgPool,
) {
    use swath_engine::db::campaigns::{complete_finished, fail_campaign};
    use swath_engine::db::claim::{claim_ready_jobs, Claimant};
    use swath_engine::db::services::{register, Instance};

    let instance = Instance::new("claims");
    register(&pool, &instance).await.unwrap();
    let claimant = Claimant {
        service_id: instance.service_id,
        tag: instance.tag(),
        lease: Duration::from_secs(60),
    };
    let types = vec!["test_job".to_string()];
    let claim = || claim_ready_jobs(&pool, &claimant, &types, 10);

    // A campaign whose listing failed after its first page: the jobs listed still run, throttled.
    let failed = create_campaign(&pool, &new_campaign("failed", 2))
        .await
        .unwrap()
        .id;
    let mut listed = Vec::new();
    for i in 0..3 {
        listed.push(ready_campaign_job(&pool, failed, &format!("listed-{i}")).await);
    }
    fail_campaign(&pool, failed, "the catalogue refused the listing")
        .await
        .unwrap();
    assert_eq!(campaign(&pool, failed).await.state, CampaignState::Failed);
    let claimed: Vec<i64> = claim().await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(claimed, listed[..2], "two slots of the failed campaign");
    sqlx::query("UPDATE jobs SET service_id = NULL, lease_expires_at = NULL WHERE id = ANY ($1)")
        .bind(&listed)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET status = $2 WHERE id = ANY ($1)")
        .bind(&listed)
        .bind(JobStatus::Cancelled.id())
        .execute(&pool)
        .await
        .unwrap();

    // A completed campaign one of whose jobs failed: its retry runs.
    let completed = create_campaign(&pool, &new_campaign("completed", 1))
        .await
        .unwrap()
        .id;
    let mut job = NewJob::new("test_job", "test-fails", 3);
    job.product_id = Some("fails".into());
    job.campaign_id = Some(completed);
    let failing = insert_jobs(&pool, &[job]).await.unwrap()[0].id;
    let job = get_job(&pool, failing).await.unwrap();
    support::drive(&pool, job, &[JobStatus::InternalError]).await;
    sqlx::query(
        "UPDATE campaigns SET state = 'running', listing_finished_at = clock_timestamp() WHERE id = $1",
    )
    .bind(completed)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(complete_finished(&pool).await.unwrap(), [completed]);
    let retry = swath_engine::db::retries::retry_job(&pool, failing, 3)
        .await
        .unwrap()
        .job;
    assert_eq!(retry.campaign_id, Some(completed));
    support::drive(
        &pool,
        retry.clone(),
        &[JobStatus::Configured, JobStatus::Ready],
    )
    .await;

    // A paused campaign's job waits.
    let paused = create_campaign(&pool, &new_campaign("paused", 5))
        .await
        .unwrap()
        .id;
    ready_campaign_job(&pool, paused, "waits").await;
    pause_campaign(&pool, paused).await.unwrap();

    // A cancelled campaign's jobs are being cancelled with it; a retry asked for later runs.
    let cancelled = create_campaign(&pool, &new_campaign("cancelled", 5))
        .await
        .unwrap()
        .id;
    ready_campaign_job(&pool, cancelled, "being-cancelled").await;
    swath_engine::db::campaigns::cancel_campaign(&pool, cancelled, "enough")
        .await
        .unwrap();
    let later = ready_campaign_job(&pool, cancelled, "retried-later").await;

    let claimed: Vec<i64> = claim().await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(
        claimed,
        [retry.id, later],
        "the retries, not the paused campaign's job nor the cancelled campaign's"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_pause_counts_the_jobs_claimed_before_it_and_stops_further_claims(pool: PgPool) {
    use swath_engine::db::claim::{claim_ready_jobs, Claimant};
    use swath_engine::db::services::{register, Instance};

    let instance = Instance::new("claims");
    register(&pool, &instance).await.unwrap();
    let claimant = Claimant {
        service_id: instance.service_id,
        tag: instance.tag(),
        lease: Duration::from_secs(60),
    };
    let types = vec!["test_job".to_string()];
    let id = create_campaign(&pool, &new_campaign("pausing", 2))
        .await
        .unwrap()
        .id;
    for i in 0..4 {
        ready_campaign_job(&pool, id, &format!("p-{i}")).await;
    }
    let claimed = claim_ready_jobs(&pool, &claimant, &types, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let paused = pause_campaign(&pool, id).await.unwrap();
    assert_eq!(paused.claimed, 1, "the claim made before the pause");
    assert!(claim_ready_jobs(&pool, &claimant, &types, 10)
        .await
        .unwrap()
        .is_empty());
    resume_campaign(&pool, id).await.unwrap();
    // Its own claim is taken again, with the one slot left.
    let again = claim_ready_jobs(&pool, &claimant, &types, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().any(|j| j.id == claimed[0].id));
}

#[sqlx::test(migrations = "../sql")]
async fn a_campaign_whose_catalogue_is_down_does_not_hold_up_the_listing_of_the_others(
    pool: PgPool,
) {
    use swath_engine::catalogue::http::RetryPolicy;
    use swath_engine::pipeline::campaign::CampaignService;

    let dir = tempfile::tempdir().unwrap();
    let at_ten: DateTime<Utc> = "2024-03-01T10:00:00Z".parse().unwrap();
    let products: Vec<(String, DateTime<Utc>)> = (0..3)
        .map(|i| (s2_name(i), at_ten + TimeDelta::minutes(i as i64)))
        .collect();
    let spec = catalogue_dir(dir.path(), &products);
    // Nothing listens there: the catalogue is unavailable.
    let down = format!("odata+http://127.0.0.1:{}/odata/v1", free_port());
    let first = create_campaign(
        &pool,
        &NewCampaign {
            source: down,
            ..new_campaign("catalogue-down", 2)
        },
    )
    .await
    .unwrap()
    .id;
    let second = create_campaign(
        &pool,
        &NewCampaign {
            source: spec.clone(),
            ..new_campaign("catalogue-up", 2)
        },
    )
    .await
    .unwrap()
    .id;
    let settings = Settings {
        catalogue: spec,
        ..tiny_settings()
    };
    let mut catalogue_options = settings.catalogue_options();
    catalogue_options.retry = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    };
    let service = CampaignService {
        pool: pool.clone(),
        registry: Arc::new(settings.registry().unwrap()),
        catalogue_options,
        owner: uuid::Uuid::new_v4(),
        lease: Duration::from_secs(60),
        interval: Duration::from_secs(1),
    };
    service.round().await.unwrap();
    let down = campaign(&pool, first).await;
    assert_eq!(down.state, CampaignState::Listing);
    assert!(down.listing_error.is_some(), "{down:?}");
    let up = campaign(&pool, second).await;
    assert!(
        up.listing_finished_at.is_some() && up.jobs_created == 3,
        "the second campaign was listed in the same round: {up:?}"
    );
}

/// A page slower than the listing lease does not let another instance take the listing over from a
/// live one (which would list the same page twice): the lease is renewed while the page is fetched.
#[sqlx::test(migrations = "../sql")]
async fn a_page_slower_than_the_lease_keeps_the_listing_with_its_instance(pool: PgPool) {
    use swath_engine::db::campaigns::take_listing;
    use swath_engine::pipeline::campaign::CampaignService;

    let lease = Duration::from_millis(600);
    let entries: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            odata_entry(
                &format!("S2B_MSIL1C_20240301T10{i:02}19_N0510_R022_T32TLR_20240301T12{i:02}00"),
                &format!("2024-03-01T10:{i:02}:00.123456Z"),
                box_polygon(7.0, 45.0, 8.0, 46.0),
            )
        })
        .collect();
    let engine = ODataEngine {
        entries,
        skip_limit: 10_000,
    };
    // One page, answered after four leases.
    let server = CatalogueServer::start(move |seen, _, base| {
        Reply::Slow(lease * 4, Box::new(Reply::Json(engine.page(seen, base))))
    })
    .await;
    let id = create_campaign(
        &pool,
        &NewCampaign {
            source: format!("odata+{}/odata/v1", server.base),
            ..new_campaign("slow-page", 2)
        },
    )
    .await
    .unwrap()
    .id;
    let settings = tiny_settings();
    let service = CampaignService {
        pool: pool.clone(),
        registry: Arc::new(settings.registry().unwrap()),
        catalogue_options: settings.catalogue_options(),
        owner: uuid::Uuid::new_v4(),
        lease,
        interval: Duration::from_secs(1),
    };
    let owner = service.owner;
    let listing = tokio::spawn(async move { service.round().await });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT listing_owner FROM campaigns WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        if holder == Some(owner) {
            break;
        }
        assert!(Instant::now() < deadline, "the listing was never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = uuid::Uuid::new_v4();
    let mut tries = 0;
    while !listing.is_finished() {
        assert!(Instant::now() < deadline, "the listing never ended");
        let taken = take_listing(&pool, other, lease, &[]).await.unwrap();
        assert!(
            taken.is_none(),
            "another instance took the listing of a live one (try {tries})"
        );
        tries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listing.await.unwrap().unwrap();
    assert!(tries >= 10, "the page took four leases: {tries} tries");
    let listed = campaign(&pool, id).await;
    assert!(listed.listing_finished_at.is_some(), "{listed:?}");
    assert_eq!((listed.pages, listed.jobs_created), (1, 3));
    assert_eq!(server.seen().len(), 1, "the page was requested once");
}
