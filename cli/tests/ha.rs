//! Several instances against one database and the Nomad emulator: a dead instance's jobs are handed
//! back (its claims freed, its ended dispatches settled, its running dispatch adopted and never
//! dispatched again), and an instance that stops gracefully lets go of everything it held, which
//! the other instance takes over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath_domain::flavor::WorkerFlavor;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::attempt::failure::AttemptBackoff;
use swath_engine::cluster::leader::{duties, Leader};
use swath_engine::cluster::Health;
use swath_engine::config::ClusterSettings;
use swath_engine::config::{ExecutorKind, Settings};
use swath_engine::db::claim::{claim_ready_jobs, Claimant};
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::services::Instance;
use swath_engine::db::services::{list_services, register};
use swath_engine::executor::nomad::spec::WorkerJobSettings;
use swath_engine::executor::nomad::{NomadConfig, NomadExecutor};
use swath_engine::executor::{AttemptOutcome, Executor};
use swath_engine::pipeline::dispatch::dispatch_round;
use swath_engine::startup::{self, Options};

use support::drive;
use support::nomad_emulator::{EmulatorOptions, NomadEmulator, Outcome};

const PARENT: &str = "swath-worker-tiny";

fn flavor() -> WorkerFlavor {
    WorkerFlavor {
        name: "tiny".into(),
        cpus: 1,
        memory_mb: 64,
        disk_gb: 1,
        // Sized and pinned for the emulator's smallest VM.
        cpu_mhz: Some(50),
        placement_value: Some("eo1.xsmall".into()),
        local_slots: 1,
        ..WorkerFlavor::default()
    }
}

/// Settings whose `test_job` runs on the `tiny` flavor.
fn tiny_settings() -> Settings {
    Settings {
        job_types: vec!["test_job".into()],
        flavors: swath_domain::flavor::default_flavors()
            .into_iter()
            .chain([flavor()])
            .collect(),
        job_type_settings: [(
            "test_job".to_string(),
            toml::from_str("worker_flavor = \"tiny\"").unwrap(),
        )]
        .into(),
        ..Settings::default()
    }
}

fn nomad(emulator: &NomadEmulator) -> NomadExecutor {
    NomadExecutor::new(
        NomadConfig {
            address: emulator.url().parse().unwrap(),
            token: None,
            region: None,
            jobs: WorkerJobSettings::default(),
            max_in_flight: 10,
            purge_on_stop: false,
            request_timeout: Duration::from_secs(10),
            watch_wait: Duration::from_secs(5),
        },
        vec![flavor()],
    )
}

fn no_backoff() -> AttemptBackoff {
    AttemptBackoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
    }
}

async fn ready_job(pool: &PgPool, name: &str) -> Job {
    let inserted = insert_jobs(pool, &[NewJob::new("test_job", name, 3)])
        .await
        .unwrap();
    let job = get_job(pool, inserted[0].id).await.unwrap();
    drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await
}

async fn script(emulator: &NomadEmulator, job: &Job, outcome: Outcome) {
    emulator
        .script(PARENT, &[("job_id", &job.id.to_string())], outcome)
        .await;
}

/// The children the emulator created for `job`, as `(attempt, idempotency token)`.
async fn children(emulator: &NomadEmulator, job: &Job) -> Vec<(String, String)> {
    emulator
        .dispatches()
        .await
        .into_iter()
        .filter(|d| d.meta["job_id"] == job.id.to_string())
        .map(|d| (d.meta["attempt"].clone(), d.idempotency_token.unwrap()))
        .collect()
}

/// Polls `check` (bounded) until it holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = "../sql")]
async fn a_dead_instances_jobs_are_handed_back_and_its_running_dispatch_adopted(pool: PgPool) {
    let emulator = NomadEmulator::start(EmulatorOptions::default()).await;
    let executor = Arc::new(nomad(&emulator));
    let registry = tiny_settings().registry().unwrap();
    let types = vec!["test_job".to_string()];

    // Instance A dispatches two jobs (one keeps running, one exits 2), claims a third, and dies.
    let a = Instance::new("a");
    register(&pool, &a).await.unwrap();
    let lease = Duration::from_millis(800);
    let claimant_a = Claimant {
        service_id: a.service_id,
        tag: a.tag(),
        lease,
    };
    let running = ready_job(&pool, "running").await;
    let failing = ready_job(&pool, "exits-2").await;
    script(&emulator, &running, Outcome::RunUntilStopped).await;
    script(
        &emulator,
        &failing,
        Outcome::Exit {
            code: 2,
            after: Duration::from_millis(20),
        },
    )
    .await;
    let round = dispatch_round(
        &pool,
        executor.as_ref(),
        &registry,
        &types,
        &[flavor()],
        &claimant_a,
        no_backoff(),
    )
    .await
    .unwrap();
    assert_eq!(round.queued, 2, "{round:?}");
    let claimed = ready_job(&pool, "claimed").await;
    assert_eq!(
        claim_ready_jobs(&pool, &claimant_a, &types, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let failing_ref = get_job(&pool, failing.id)
        .await
        .unwrap()
        .executor_ref
        .unwrap();
    let running_ref = get_job(&pool, running.id)
        .await
        .unwrap()
        .executor_ref
        .unwrap();
    eventually("the failing attempt exited", || async {
        executor.outcome(&failing_ref).await.unwrap() == AttemptOutcome::Exited(2)
    })
    .await;
    eventually("the running attempt runs", || async {
        executor.outcome(&running_ref).await.unwrap() == AttemptOutcome::Running
    })
    .await;
    sqlx::query(
        "UPDATE services SET heartbeat_at = clock_timestamp() - interval '1 minute' WHERE id = $1",
    )
    .bind(a.service_id)
    .execute(&pool)
    .await
    .unwrap();

    // Instance B leads; its own heartbeats have gone through for as long as A has been silent.
    let b = Instance::new("b");
    register(&pool, &b).await.unwrap();
    let health = Arc::new(Health::default());
    let settings = ClusterSettings {
        heartbeat_interval: Duration::from_millis(100),
        missed_heartbeats: 2,
        lease: Duration::from_secs(60),
        ..ClusterSettings::default()
    };
    health.beat_ok();
    let leader = Leader {
        pool: pool.clone(),
        instance: b.clone(),
        settings,
        health: Arc::clone(&health),
        executor: executor.clone(),
        backoff: no_backoff(),
    };
    // Not yet long enough: A is not judged.
    duties(&leader, &mut None).await.unwrap();
    assert_eq!(state_of(&pool, &a).await, "alive");
    tokio::time::sleep(Duration::from_millis(250)).await;
    duties(&leader, &mut None).await.unwrap();
    assert_eq!(state_of(&pool, &a).await, "dead");
    // A's claim and leases still hold until they run out: nothing is taken from it before.
    let before = get_job(&pool, running.id).await.unwrap();
    if before.lease_expires_at.unwrap() > chrono::Utc::now() {
        assert_eq!(before.service_id, Some(a.service_id));
    }
    tokio::time::sleep(lease).await;
    duties(&leader, &mut None).await.unwrap();

    let running_now = get_job(&pool, running.id).await.unwrap();
    assert_eq!(running_now.status, JobStatus::Queued);
    assert_eq!(
        (running_now.service_id, running_now.executor_ref.as_deref()),
        (Some(b.service_id), Some(running_ref.as_str())),
        "adopted with its dispatch"
    );
    assert!(running_now.lease_expires_at.unwrap() > chrono::Utc::now());
    let failing_now = get_job(&pool, failing.id).await.unwrap();
    assert_eq!(
        (
            failing_now.status,
            failing_now.attempt,
            failing_now.service_id
        ),
        (JobStatus::Ready, 2, None),
        "its exit code 2 settled as a retry"
    );
    let claimed_now = get_job(&pool, claimed.id).await.unwrap();
    assert_eq!(
        (claimed_now.status, claimed_now.service_id),
        (JobStatus::Ready, None)
    );

    // B dispatches what is ready: the retry and the freed claim, never the adopted job.
    let claimant_b = Claimant {
        service_id: b.service_id,
        tag: b.tag(),
        lease: Duration::from_secs(60),
    };
    let round = dispatch_round(
        &pool,
        executor.as_ref(),
        &registry,
        &types,
        &[flavor()],
        &claimant_b,
        no_backoff(),
    )
    .await
    .unwrap();
    assert_eq!(round.queued, 2, "{round:?}");
    assert_eq!(
        children(&emulator, &running).await.len(),
        1,
        "the running job was not dispatched again"
    );
    let uid = failing.uid;
    assert_eq!(
        children(&emulator, &failing).await,
        [
            ("1".to_string(), format!("{uid}-1")),
            ("2".to_string(), format!("{uid}-2"))
        ]
    );
    assert_eq!(children(&emulator, &claimed).await.len(), 1);
    let problems = emulator.openapi_problems().await;
    assert!(problems.is_empty(), "{problems:#?}");
}

async fn state_of(pool: &PgPool, instance: &Instance) -> String {
    list_services(pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id == instance.service_id)
        .unwrap()
        .state
}

#[sqlx::test(migrations = "../sql")]
async fn a_stopping_instance_lets_go_and_the_other_adopts_its_dispatches(pool: PgPool) {
    let emulator = NomadEmulator::start(EmulatorOptions::default()).await;
    emulator.script(PARENT, &[], Outcome::RunUntilStopped).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("catalogue")).unwrap();
    let settings = Settings {
        executor: ExecutorKind::Nomad,
        nomad_addr: emulator.url(),
        nomad_watch_wait_secs: 2,
        catalogue: format!("dir:{}", dir.path().join("catalogue").display()),
        publication_file: dir.path().join("publications.jsonl").display().to_string(),
        heartbeat_interval_secs: 1,
        heartbeat_missed_limit: 2,
        lease_secs: 2,
        shutdown_timeout_secs: 2,
        track_interval_secs: 1,
        ..tiny_settings()
    };
    let jobs = [
        ready_job(&pool, "one").await,
        ready_job(&pool, "two").await,
        ready_job(&pool, "three").await,
    ];
    let listen = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let a = startup::start(&pool, &settings, listen().await, Options::default())
        .await
        .unwrap();
    let owned_by = |owner: uuid::Uuid| {
        let pool = pool.clone();
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        move || {
            let (pool, ids) = (pool.clone(), ids.clone());
            async move {
                let owners: Vec<(i16, Option<uuid::Uuid>)> =
                    sqlx::query_as("SELECT status, service_id FROM jobs WHERE id = ANY ($1)")
                        .bind(&ids)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                owners
                    .iter()
                    .all(|(s, o)| *s == JobStatus::Queued.id() && *o == Some(owner))
            }
        }
    };
    eventually("A dispatched every job", owned_by(a.service_id)).await;
    let b = startup::start(&pool, &settings, listen().await, Options::default())
        .await
        .unwrap();
    let a_id = a.service_id;
    a.stop().await;
    let services = list_services(&pool).await.unwrap();
    let a_row = services.iter().find(|s| s.id == a_id).unwrap();
    assert_eq!(a_row.state, "stopped");
    let leases: Vec<bool> = sqlx::query_scalar(
        "SELECT lease_expires_at <= clock_timestamp() FROM jobs WHERE service_id = $1",
    )
    .bind(a_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        leases.iter().all(|ended| *ended),
        "its leases ended with it (unless B adopted already)"
    );

    eventually("B adopted A's dispatches", owned_by(b.service_id)).await;
    assert_eq!(
        emulator.dispatches().await.len(),
        3,
        "nothing dispatched twice"
    );
    b.stop().await;
    let problems = emulator.openapi_problems().await;
    assert!(problems.is_empty(), "{problems:#?}");
}
