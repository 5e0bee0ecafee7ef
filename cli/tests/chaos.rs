//! Chaos: three real `swath serve` processes share one database and the Nomad emulator, and 5 000
//! jobs; the emulator runs a worker stand-in for every dispatch, which reports through the worker
//! API of whichever instance answers. One instance is killed with SIGKILL every few seconds and
//! started again. In the second test the database is also restarted and the instances' connections
//! killed (`pg_terminate_backend`), on a private PostgreSQL server.
//!
//! At the end, whatever happened: every job is `done`, once (one `done` in its history, at its
//! first attempt); the emulator created one child per job and attempt (no duplicate dispatch per
//! idempotency token or per job attempt); every product's publication was confirmed and is in a
//! publication file; every cron tick of healing and dump fired once (distinct ticks, on the
//! pattern, none skipped unless the previous one fired late), the initial sync succeeded once, and
//! no background run is left running; every instance ended alive-or-not as recorded.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use swath_domain::NewJob;
use swath_engine::db::DatabaseUrl;

use support::fleet::{stand_in, Fleet, Problems};
use support::nomad_emulator::{EmulatedNode, EmulatorOptions, NomadEmulator, Outcome};
use support::private_pg::{free_port, PrivatePg};

/// The two tests take the machine's two cores each: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const JOBS: usize = 5000;
const INSTANCES: usize = 3;
const HEALING: (&str, i64) = ("*/3 * * * * *", 3);
const DUMP: (&str, i64) = ("*/10 * * * * *", 10);
/// The parent Nomad job of `test_job`'s flavor.
const PARENT: &str = "swath-worker-eo1.xsmall";
/// Kills at least, whatever the pace of the jobs.
const MIN_KILLS: usize = 6;
/// The longest a chaos run may take before the test fails.
const LIMIT: Duration = Duration::from_secs(300);

/// What happens to the database during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbEvent {
    /// `pg_ctl restart -m fast`.
    Restart,
    /// `pg_terminate_backend` of every other client connection.
    TerminateConnections,
}

struct Plan<'a> {
    kill_every: Duration,
    /// Database events at these times after the start (on the private server).
    db_events: Vec<(Duration, DbEvent)>,
    pg: Option<&'a PrivatePg>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_killed_again_and_again_do_every_job_exactly_once() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Chaos) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (url, _) = support::scratch_database_url("chaos");
    let db = DatabaseUrl::new(&url);
    swath_engine::db::create_database_if_missing(&db)
        .await
        .unwrap();
    run(
        &url,
        Plan {
            kill_every: Duration::from_secs(3),
            db_events: Vec::new(),
            pg: None,
        },
    )
    .await;
    swath_engine::db::drop_database_if_exists(&db)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_recover_by_themselves_from_database_restarts_and_killed_connections() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Chaos) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let pg = PrivatePg::start();
    let url = pg.url("swath_chaos");
    swath_engine::db::create_database_if_missing(&DatabaseUrl::new(&url))
        .await
        .unwrap();
    let secs = Duration::from_secs;
    run(
        &url,
        Plan {
            kill_every: secs(5),
            db_events: vec![
                (secs(8), DbEvent::Restart),
                (secs(16), DbEvent::TerminateConnections),
                (secs(24), DbEvent::Restart),
                (secs(32), DbEvent::TerminateConnections),
                (secs(40), DbEvent::TerminateConnections),
            ],
            pg: Some(&pg),
        },
    )
    .await;
}

async fn run(url: &str, plan: Plan<'_>) {
    let dir = std::env::temp_dir().join(format!("swath-chaos-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("catalogue")).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap();
    swath_engine::db::migrate(&pool).await.unwrap();
    ready_jobs(&pool, JOBS).await;

    let ports: Vec<u16> = (0..INSTANCES).map(|_| free_port()).collect();
    let problems = Problems::default();
    let emulator = NomadEmulator::start(EmulatorOptions {
        runner: Some(stand_in(ports.clone(), problems.clone())),
        // One VM of the test job's kind per attempt in flight: placement is never the bottleneck.
        nodes: (1..=100)
            .map(|n| EmulatedNode::vm(&format!("worker-{n}"), "eo1.xsmall", 1, 1, 8))
            .collect(),
        ..EmulatorOptions::default()
    })
    .await;
    emulator.script(PARENT, &[], Outcome::Worker).await;
    let mut fleet = Fleet::start(&ports, &environment(url, &emulator, &dir), &dir);
    fleet.wait_ready(Duration::from_secs(60)).await;

    let started = Instant::now();
    let chaos_from = Utc::now();
    let mut next_kill = started + plan.kill_every;
    let (mut kills, mut victim) = (0, 0);
    let mut events = plan.db_events.clone();
    let mut done = 0;
    // Until every job is done, every database event happened and enough kills were made.
    while done < JOBS as i64 || !events.is_empty() || kills < MIN_KILLS {
        assert!(
            started.elapsed() < LIMIT,
            "{done} of {JOBS} jobs done after {LIMIT:?}; logs in {}",
            dir.display()
        );
        if Instant::now() >= next_kill {
            fleet.kill(victim);
            fleet.restart(victim);
            kills += 1;
            victim = (victim + 1) % fleet.len();
            next_kill = Instant::now() + plan.kill_every;
        }
        if let (Some(pg), Some(&(at, event))) = (plan.pg, events.first()) {
            if started.elapsed() >= at {
                events.remove(0);
                match event {
                    DbEvent::Restart => tokio::task::block_in_place(|| pg.restart()),
                    DbEvent::TerminateConnections => {
                        let cut: Result<i64, _> = sqlx::query_scalar(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                             WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        )
                        .fetch_one(&pool)
                        .await;
                        eprintln!("chaos: {cut:?} connections terminated");
                    }
                }
                eprintln!("chaos: {event:?} at {:?}", started.elapsed());
            }
        }
        fleet.revive();
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(n) = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 12")
            .fetch_one(&pool)
            .await
        {
            done = n;
        }
    }
    let chaos_took = started.elapsed();
    // One more tick of each pattern after the last kill.
    tokio::time::sleep(Duration::from_secs(DUMP.1 as u64)).await;
    let killed = fleet.terminate(Duration::from_secs(40));
    assert!(
        killed.is_empty(),
        "instances {killed:?} did not stop gracefully; logs in {}",
        dir.display()
    );
    let ended = Utc::now();
    eprintln!(
        "chaos: {JOBS} jobs done in {chaos_took:?} with {kills} kills ({} processes started)",
        fleet.starts()
    );

    check_jobs(&pool).await;
    check_dispatches(&emulator).await;
    check_publications(&pool, &fleet).await;
    check_background_runs(&pool, chaos_from, ended, plan.pg.is_some()).await;
    let services: Vec<String> = sqlx::query_scalar("SELECT state FROM services")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(services.len(), fleet.starts(), "one row per start");
    assert!(services.iter().all(|s| s != "alive"), "{services:?}");
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "worker reports refused: {problems:#?}");
    let openapi = emulator.openapi_problems().await;
    assert!(openapi.is_empty(), "{openapi:#?}");
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn environment(url: &str, emulator: &NomadEmulator, dir: &Path) -> Vec<(String, String)> {
    let catalogue = format!("dir:{}", dir.join("catalogue").display());
    let dumps = format!("file://{}", dir.join("dumps").display());
    [
        ("SWATH_DATABASE_URL", url),
        ("SWATH_EXECUTOR", "nomad"),
        ("SWATH_NOMAD_ADDR", &emulator.url()),
        ("SWATH_NOMAD_MAX_IN_FLIGHT", "100"),
        ("SWATH_NOMAD_WATCH_WAIT_SECS", "5"),
        ("SWATH_JOB_TYPES", "[test_job]"),
        ("SWATH_CATALOGUE", &catalogue),
        ("SWATH_PUBLISHER", "file"),
        ("SWATH_HEARTBEAT_INTERVAL_SECS", "1"),
        ("SWATH_HEARTBEAT_MISSED_LIMIT", "3"),
        ("SWATH_LEASE_SECS", "4"),
        ("SWATH_SHUTDOWN_TIMEOUT_SECS", "5"),
        ("SWATH_TRACK_INTERVAL_SECS", "2"),
        ("SWATH_INGEST_INTERVAL_SECS", "3600"),
        ("SWATH_RETRY_BASE_SECS", "1"),
        ("SWATH_RETRY_MAX_SECS", "2"),
        ("SWATH_START_INITIAL_SYNC", "true"),
        ("SWATH_CRON_PATTERN_HEALING_JOB", HEALING.0),
        ("SWATH_CRON_PATTERN_DUMP_JOB", DUMP.0),
        ("SWATH_DUMP_URL", &dumps),
        ("SWATH_LOG", "info,sqlx=warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `n` `test_job`s, ready at once.
async fn ready_jobs(pool: &PgPool, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            let mut job = NewJob::new("test_job", format!("chaos-{i:05}"), 3);
            job.params = serde_json::json!({"product": format!("chaos-{i:05}"), "mission": "S2"});
            job.input_path = Some(format!("/eodata/chaos/{i:05}"));
            job
        })
        .collect();
    for chunk in jobs.chunks(1000) {
        swath_engine::db::jobs::insert_jobs(pool, chunk)
            .await
            .unwrap();
    }
    for status in [2i16, 3] {
        sqlx::query("UPDATE jobs SET status = $1")
            .bind(status)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Every job is done, once, at its first attempt, and went through each status once.
async fn check_jobs(pool: &PgPool) {
    let statuses: Vec<(i16, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(statuses, [(12, JOBS as i64)], "every job is done");
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE attempt <> 1")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "no attempt was lost or repeated");
    let repeated: Vec<(i64, i16, i64)> = sqlx::query_as(
        "SELECT job_id, status, count(*) FROM job_status_changes GROUP BY job_id, status HAVING count(*) <> 1 LIMIT 20",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        repeated.is_empty(),
        "a status entered twice (job, status, times): {repeated:?}"
    );
    let done_once: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT job_id) FROM job_status_changes WHERE status = 12",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(done_once, JOBS as i64, "one done in each job's history");
}

/// One child per job and attempt, and per idempotency token.
async fn check_dispatches(emulator: &NomadEmulator) {
    let dispatched = emulator.dispatches().await;
    let mut tokens = HashSet::new();
    let mut attempts = HashSet::new();
    for d in &dispatched {
        let token = d
            .idempotency_token
            .clone()
            .expect("every dispatch has a token");
        assert!(
            tokens.insert(token.clone()),
            "token {token} dispatched twice"
        );
        let attempt = (d.meta["job_id"].clone(), d.meta["attempt"].clone());
        assert!(
            attempts.insert(attempt.clone()),
            "{attempt:?} dispatched twice"
        );
    }
    assert_eq!(dispatched.len(), JOBS, "one child per job");
}

/// Every product's message was confirmed, and is in the publication files.
async fn check_publications(pool: &PgPool, fleet: &Fleet) {
    let (all, confirmed): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(confirmed_at) FROM publications")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((all, confirmed), (JOBS as i64, JOBS as i64));
    let mut published = HashSet::new();
    for i in 0..fleet.len() {
        let Ok(text) = std::fs::read_to_string(fleet.publication_file(i)) else {
            continue;
        };
        for line in text.lines() {
            // A line cut by a SIGKILL is not a publication (its message was sent again).
            if let Ok(message) = serde_json::from_str::<serde_json::Value>(line) {
                if let Some(id) = message["message_id"].as_str() {
                    published.insert(id.to_string());
                }
            }
        }
    }
    let products: Vec<String> = sqlx::query_scalar("SELECT message_id FROM publications")
        .fetch_all(pool)
        .await
        .unwrap();
    let missing: Vec<&String> = products
        .iter()
        .filter(|p| !published.contains(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "{} products never published, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Every cron tick fired once: distinct ticks on the pattern, and a tick skipped only when the one
/// before it fired after the skipped one was due (then it fires once, late). Runs succeed, or are
/// refused or abandoned (their instance was killed); with `db_cut`, a run whose database
/// connection was cut may fail. The initial sync succeeded once; nothing is left running.
async fn check_background_runs(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    db_cut: bool,
) {
    for (schedule, (pattern, period)) in [("healing", HEALING), ("dump", DUMP)] {
        let runs: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = sqlx::query_as(
            "SELECT tick_at, started_at, state FROM schedule_runs
             WHERE schedule_id = $1 AND trigger = 'cron' ORDER BY tick_at",
        )
        .bind(schedule)
        .fetch_all(pool)
        .await
        .unwrap();
        let ticks: Vec<DateTime<Utc>> = runs.iter().map(|r| r.0).collect();
        let distinct: HashSet<_> = ticks.iter().collect();
        assert_eq!(
            distinct.len(),
            ticks.len(),
            "{schedule}: a tick fired twice"
        );
        for (tick, started, state) in &runs {
            assert_eq!(
                tick.timestamp() % period,
                0,
                "{schedule}: {tick} is not a tick of {pattern}"
            );
            // A run whose database connection was cut fails, and says so; nothing else fails.
            let allowed: &[&str] = if db_cut {
                &["succeeded", "refused", "abandoned", "failed"]
            } else {
                &["succeeded", "refused", "abandoned"]
            };
            assert!(
                allowed.contains(&state.as_str()),
                "{schedule} {tick}: {state}"
            );
            assert!(*started >= *tick, "{schedule}: fired before its tick");
        }
        let mut late = 0;
        for pair in runs.windows(2) {
            let (gap, fired) = ((pair[1].0 - pair[0].0).num_seconds(), pair[0].1);
            if gap != period {
                late += 1;
                assert!(
                    (fired - pair[0].0).num_milliseconds() >= period * 1000,
                    "{schedule}: ticks after {} were skipped although it fired on time ({fired})",
                    pair[0].0
                );
            }
        }
        let expected = (to - from).num_seconds() / period - 2;
        assert!(
            ticks.iter().filter(|t| **t >= from && **t <= to).count() as i64 >= expected,
            "{schedule}: only {} ticks fired over {} s",
            ticks.len(),
            (to - from).num_seconds()
        );
        let states: HashMap<&str, usize> = runs.iter().fold(HashMap::new(), |mut m, r| {
            *m.entry(r.2.as_str()).or_default() += 1;
            m
        });
        eprintln!("chaos: {schedule} ticks: {states:?}, {late} late");
    }
    let syncs: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM schedule_runs WHERE schedule_id = 'initial_sync' AND state = 'succeeded'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(syncs.len(), 1, "the initial sync succeeded once");
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedule_runs WHERE state = 'running'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(running, 0, "no background run is left running");
    let dumps = std::fs::read_dir(dump_dir(pool).await)
        .map(|d| d.count())
        .unwrap_or(0);
    let succeeded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM schedule_runs WHERE schedule_id = 'dump' AND state = 'succeeded'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        dumps as i64 >= succeeded,
        "every succeeded dump left its file"
    );
}

/// The directory of the last succeeded dump.
async fn dump_dir(pool: &PgPool) -> PathBuf {
    let url: Option<String> = sqlx::query_scalar(
        "SELECT result->>'url' FROM schedule_runs WHERE schedule_id = 'dump' AND state = 'succeeded'
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
    .flatten();
    let url = url.expect("at least one dump succeeded");
    let path = PathBuf::from(url.strip_prefix("file://").unwrap());
    let last = swath_engine::schedule::dump::read_dump(&path).expect("the last dump reads back");
    assert_eq!(last.len(), JOBS, "the last dump holds every job");
    path.parent().unwrap().to_path_buf()
}
