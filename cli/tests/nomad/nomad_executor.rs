//! The Nomad executor against the Nomad emulator: the executor contract, registration (namespace,
//! ACL token, agreement with the shipped HCL), and every way an attempt can end on Nomad, through
//! the real dispatch and tracking rounds. Every request swath sends and every answer the emulator
//! gives is checked against Nomad's OpenAPI description.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::PgPool;
use swath_domain::flavor::WorkerFlavor;
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use swath_engine::attempt::failure::{AttemptBackoff, StatusTimeouts};
use swath_engine::config::Settings;
use swath_engine::db::claim::{claim_ready_jobs, Claimant};
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::tokens::{
    exchange_bootstrap_token, issue_bootstrap_token, job_for_token, new_token, Exchange, TokenCheck,
};
use swath_engine::executor::nomad::spec::{worker_job, WorkerJobSettings};
use swath_engine::executor::nomad::{NomadConfig, NomadExecutor};
use swath_engine::executor::{AttemptOutcome, DispatchRequest, Executor, ExecutorError};
use swath_engine::pipeline::dispatch::{dispatch_round, DispatchReport};
use swath_engine::pipeline::track::track_round;

use support::conformance::{run_conformance, Behaviour, Harness};
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

fn config(emulator: &NomadEmulator, max_in_flight: u32) -> NomadConfig {
    NomadConfig {
        address: emulator.url().parse().unwrap(),
        token: None,
        region: None,
        jobs: WorkerJobSettings::default(),
        max_in_flight,
        purge_on_stop: false,
        request_timeout: Duration::from_secs(10),
        watch_wait: Duration::from_secs(5),
    }
}

async fn emulator() -> NomadEmulator {
    NomadEmulator::start(EmulatorOptions::default()).await
}

/// Ends a test: nothing swath sent and nothing the emulator answered broke Nomad's OpenAPI description.
async fn assert_openapi_clean(emulator: &NomadEmulator) {
    let problems = emulator.openapi_problems().await;
    assert!(problems.is_empty(), "OpenAPI problems: {problems:#?}");
}

/// Whether `reference` was stopped (a DELETE of its child job).
async fn was_stopped(emulator: &NomadEmulator, reference: &str) -> bool {
    let child = reference.strip_prefix("nomad/").unwrap();
    emulator.requests().await.iter().any(|r| {
        let path = percent_encoding::percent_decode_str(&r.path).decode_utf8_lossy();
        r.method == "DELETE" && path == format!("/v1/job/{child}")
    })
}

struct NomadHarness {
    emulator: NomadEmulator,
    executor: NomadExecutor,
}

#[async_trait]
impl Harness for NomadHarness {
    fn executor(&self) -> &dyn Executor {
        &self.executor
    }
    fn flavor(&self) -> WorkerFlavor {
        flavor()
    }
    async fn script(&self, job_id: i64, behaviour: Behaviour) {
        let outcome = match behaviour {
            Behaviour::Exit(code) => Outcome::Exit {
                code,
                after: Duration::from_millis(20),
            },
            Behaviour::RunUntilStopped => Outcome::RunUntilStopped,
        };
        self.emulator
            .script(PARENT, &[("job_id", &job_id.to_string())], outcome)
            .await;
    }
    async fn starts(&self, job_id: i64) -> usize {
        let id = job_id.to_string();
        self.emulator
            .dispatches()
            .await
            .iter()
            .filter(|d| d.meta.get("job_id") == Some(&id))
            .count()
    }
}

#[tokio::test]
async fn the_nomad_executor_honours_the_executor_contract() {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 1), vec![flavor()]);
    let harness = NomadHarness { emulator, executor };
    run_conformance(&harness).await;
    let dispatched = harness.emulator.dispatches().await;
    let first = &dispatched[0];
    assert_eq!(first.parent, PARENT);
    assert_eq!(first.payload, b"secret", "the worker token is the payload");
    assert_eq!(
        first.meta.keys().collect::<Vec<_>>(),
        ["attempt", "job_id", "job_type"]
    );
    assert_openapi_clean(&harness.emulator).await;
}

/// `ours` is contained in `theirs`: every field swath sends is stored with the same value (Nomad
/// adds defaults beside them).
fn assert_contained(ours: &serde_json::Value, theirs: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let other = b
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} is missing in Nomad"));
                assert_contained(v, other, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths differ");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_contained(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(ours, theirs, "{path}"),
    }
}

#[tokio::test]
async fn worker_jobs_are_registered_in_the_namespace_with_the_token_as_the_hcl_says() {
    let emulator = NomadEmulator::start(EmulatorOptions {
        acl_token: Some("nomad-acl-token".into()),
        ..EmulatorOptions::default()
    })
    .await;
    // The shipped HCL's settings, in another namespace.
    let settings = Settings {
        orchestrator_url: "http://swath.service.consul:8080".into(),
        nomad_addr: emulator.url(),
        nomad_namespace: "eo".into(),
        nomad_token: Some(swath_engine::config::Secret::new("nomad-acl-token")),
        ..Settings::default()
    };
    let config = settings.nomad_config().unwrap();
    let executor = NomadExecutor::new(config.clone(), settings.flavors.clone());
    executor.register_all().await.unwrap();
    executor.register_all().await.unwrap();
    for flavor in &settings.flavors {
        let id = format!("swath-worker-{}", flavor.name);
        let stored = emulator
            .registered_job("eo", &id)
            .await
            .unwrap_or_else(|| panic!("{id} registered in namespace eo"));
        assert_contained(&worker_job(&config.jobs, flavor), &stored, &id);
        assert!(emulator.registered_job("default", &id).await.is_none());
        // The file operators run is the same job, namespace aside.
        let file = support::workspace_root()
            .join("nomad")
            .join(format!("{id}.nomad.hcl"));
        let mut from_file = support::jobspec::job_from_hcl(&std::fs::read_to_string(file).unwrap());
        from_file["Namespace"] = "eo".into();
        assert_contained(&from_file, &stored, &id);
    }
    assert!(emulator
        .requests()
        .await
        .iter()
        .all(|r| r.query.contains("namespace=eo")));

    // A wrong token: the executor says Nomad is unavailable, with Nomad's reason.
    let mut wrong = config;
    wrong.token = Some("not-the-token".into());
    let refused = NomadExecutor::new(wrong, settings.flavors.clone())
        .capacity()
        .await;
    match refused {
        Err(ExecutorError::Unavailable(m)) => assert!(m.contains("403"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_openapi_clean(&emulator).await;
}

#[tokio::test]
async fn an_unavailable_nomad_defers_dispatch_and_a_purged_parent_is_registered_again() {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 4), vec![flavor()]);
    let request = DispatchRequest {
        job_id: 9,
        job_type: "test_job".into(),
        attempt: 1,
        idempotency_token: "00000000-0000-4000-8000-000000000009-1".into(),
        worker_token: "t".into(),
        flavor: flavor(),
        nomad_job: "test-job-processing".into(),
    };
    emulator.set_unavailable(true).await;
    assert!(matches!(
        executor.dispatch(&request).await,
        Err(ExecutorError::Unavailable(_))
    ));
    emulator.set_unavailable(false).await;
    let reference = executor.dispatch(&request).await.unwrap();
    assert!(reference.starts_with(&format!("nomad/{PARENT}/dispatch-")));
    // An operator purges the parent: the next dispatch registers it again.
    let client = reqwest::Client::new();
    let purged = client
        .delete(format!("{}/v1/job/{PARENT}?purge=true", emulator.url()))
        .send()
        .await
        .unwrap();
    assert!(purged.status().is_success());
    let mut again = request.clone();
    again.idempotency_token = "00000000-0000-4000-8000-000000000009-2".into();
    again.attempt = 2;
    executor.dispatch(&again).await.unwrap();
    assert!(emulator.registered_job("default", PARENT).await.is_some());
    assert_openapi_clean(&emulator).await;
}

// ----- Through the dispatch and tracking rounds, against the database. -----

fn claimant(lease: Duration) -> Claimant {
    Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: serde_json::json!({"host": "test", "name": "swath"}),
        lease,
    }
}

fn types() -> Vec<String> {
    vec!["test_job".to_string()]
}

/// Backoff short enough that retries are due at once.
fn no_backoff() -> AttemptBackoff {
    AttemptBackoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
    }
}

async fn ready_job(pool: &PgPool, name: &str, max_attempts: i32) -> Job {
    let mut new = NewJob::new("test_job", name, max_attempts);
    new.priority = JobPriority::Nrt;
    let inserted = insert_jobs(pool, &[new]).await.unwrap();
    let job = get_job(pool, inserted[0].id).await.unwrap();
    drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await
}

/// A registry whose `test_job` runs on the `tiny` flavor.
fn registry() -> swath_domain::registry::JobTypeRegistry {
    let settings = Settings {
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
    };
    settings.registry().unwrap()
}

async fn dispatch(pool: &PgPool, executor: &NomadExecutor, claimant: &Claimant) -> DispatchReport {
    dispatch_round(
        pool,
        executor,
        &registry(),
        &types(),
        &[flavor()],
        claimant,
        no_backoff(),
    )
    .await
    .unwrap()
}

/// Tracks until job `id` satisfies `done` (bounded), and returns it.
async fn track_until(
    pool: &PgPool,
    executor: &NomadExecutor,
    timeouts: &StatusTimeouts,
    id: i64,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        track_round(pool, executor, timeouts, no_backoff(), None, 100)
            .await
            .unwrap();
        let job = get_job(pool, id).await.unwrap();
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} stuck in {}",
            job.status
        );
        tokio::time::timeout(Duration::from_millis(200), executor.changed())
            .await
            .ok();
    }
}

fn quick() -> Duration {
    Duration::from_millis(20)
}

#[sqlx::test(migrations = "../sql")]
async fn exit_codes_and_failures_without_one_settle_attempts_as_the_policy_says(pool: PgPool) {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 10), vec![flavor()]);
    let worked = ready_job(&pool, "worked", 3).await;
    let silent = ready_job(&pool, "exit-0-without-report", 3).await;
    let broken = ready_job(&pool, "exit-1", 3).await;
    let setup = ready_job(&pool, "setup-failure", 3).await;
    let lost = ready_job(&pool, "lost", 3).await;
    let script = |job: &Job, outcome: Outcome| {
        let id = job.id.to_string();
        let emulator = &emulator;
        async move { emulator.script(PARENT, &[("job_id", &id)], outcome).await }
    };
    script(&worked, Outcome::RunUntilStopped).await;
    script(
        &silent,
        Outcome::Exit {
            code: 0,
            after: quick(),
        },
    )
    .await;
    script(
        &broken,
        Outcome::Exit {
            code: 1,
            after: quick(),
        },
    )
    .await;
    script(
        &setup,
        Outcome::SetupFailure {
            message: "failed to start: exec format error".into(),
        },
    )
    .await;
    script(&lost, Outcome::Lost { after: quick() }).await;
    let report = dispatch(&pool, &executor, &claimant(Duration::from_secs(600))).await;
    assert_eq!((report.claimed, report.queued), (5, 5), "{report:?}");

    // The worker of `worked` exchanges the bootstrap secret Nomad wrote from the payload for its
    // attempt token, and reports to the end.
    let dispatched = emulator.dispatches().await;
    let payload = &dispatched
        .iter()
        .find(|d| d.meta["job_id"] == worked.id.to_string())
        .unwrap()
        .payload;
    let bootstrap = String::from_utf8(payload.clone()).unwrap();
    let token = new_token();
    let exchanged = exchange_bootstrap_token(&pool, worked.id, 1, &bootstrap, &token)
        .await
        .unwrap();
    assert_eq!(exchanged, Exchange::Exchanged);
    let (check, _) = job_for_token(&pool, worked.id, 1, &token).await.unwrap();
    assert_eq!(check, TokenCheck::Valid { current_attempt: 1 });
    let queued = get_job(&pool, worked.id).await.unwrap();
    drive(
        &pool,
        queued,
        &[
            JobStatus::Started,
            JobStatus::PreProcessing,
            JobStatus::Processing,
            JobStatus::PostProcessing,
            JobStatus::Processed,
        ],
    )
    .await;

    let timeouts = StatusTimeouts::default();
    let silent = track_until(&pool, &executor, &timeouts, silent.id, |j| {
        j.status != JobStatus::Queued
    })
    .await;
    assert_eq!(silent.status, JobStatus::InternalError);
    assert!(silent
        .status_message
        .as_deref()
        .unwrap()
        .contains("without reporting a result"));
    let broken = track_until(&pool, &executor, &timeouts, broken.id, |j| {
        j.status != JobStatus::Queued
    })
    .await;
    assert_eq!(
        (broken.status, broken.status_error_subtype.as_deref()),
        (JobStatus::InternalError, Some("exit code 1"))
    );
    let setup_job = track_until(&pool, &executor, &timeouts, setup.id, |j| j.attempt == 2).await;
    assert_eq!(
        setup_job.status,
        JobStatus::Ready,
        "no exit code: a new attempt"
    );
    let setup_error = support::last_external_error(&pool, setup.id).await;
    assert!(
        setup_error
            .error_message
            .as_deref()
            .unwrap()
            .contains("no exit code"),
        "{setup_error:?}"
    );
    let lost_before = get_job(&pool, lost.id).await.unwrap();
    let lost_job = track_until(&pool, &executor, &timeouts, lost.id, |j| j.attempt == 2).await;
    assert_eq!(lost_job.status, JobStatus::Ready);
    assert_eq!(lost_job.status_error_subtype, None);
    assert!(
        was_stopped(&emulator, lost_before.executor_ref.as_deref().unwrap()).await,
        "the replacement of a lost allocation is stopped"
    );
    let worked = get_job(&pool, worked.id).await.unwrap();
    assert_eq!(
        worked.status,
        JobStatus::Processed,
        "a reported result stands"
    );
    assert_openapi_clean(&emulator).await;
}

#[sqlx::test(migrations = "../sql")]
async fn exit_2_is_retried_with_a_new_token_until_max_attempts_then_terminal(pool: PgPool) {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 10), vec![flavor()]);
    let job = ready_job(&pool, "always-2", 3).await;
    emulator
        .script(
            PARENT,
            &[("job_id", &job.id.to_string())],
            Outcome::Exit {
                code: 2,
                after: quick(),
            },
        )
        .await;
    let claimant = claimant(Duration::from_secs(600));
    let timeouts = StatusTimeouts::default();
    for attempt in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(30);
        // The backoff (1 ms) must pass before the job is due again.
        while dispatch(&pool, &executor, &claimant).await.queued == 0 {
            assert!(
                Instant::now() < deadline,
                "attempt {attempt} never dispatched"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let after = track_until(&pool, &executor, &timeouts, job.id, |j| {
            j.status != JobStatus::Queued
        })
        .await;
        if attempt < 3 {
            assert_eq!(
                (after.status, after.attempt),
                (JobStatus::Ready, attempt + 1)
            );
        } else {
            assert_eq!((after.status, after.attempt), (JobStatus::InternalError, 3));
            assert!(
                after
                    .status_message
                    .as_deref()
                    .unwrap()
                    .contains("3 attempts"),
                "{:?}",
                after.status_message
            );
        }
    }
    let tokens: Vec<_> = emulator
        .dispatches()
        .await
        .into_iter()
        .map(|d| d.idempotency_token.unwrap())
        .collect();
    let uid = job.uid.to_string();
    assert_eq!(
        tokens,
        [1, 2, 3].map(|a| format!("{uid}-{a}")),
        "one dispatch per attempt"
    );
    let errors = job_history(&pool, job.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.status == JobStatus::ExternalError)
        .count();
    assert_eq!(errors, 3, "every attempt's error is kept");
    assert_openapi_clean(&emulator).await;
}

#[sqlx::test(migrations = "../sql")]
async fn a_job_never_placed_times_out_is_stopped_and_counts_as_an_attempt(pool: PgPool) {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 10), vec![flavor()]);
    let job = ready_job(&pool, "unplaceable", 3).await;
    emulator
        .script(
            PARENT,
            &[("job_id", &job.id.to_string())],
            Outcome::NeverPlaced,
        )
        .await;
    assert_eq!(
        dispatch(&pool, &executor, &claimant(Duration::from_secs(600)))
            .await
            .queued,
        1
    );
    let queued = get_job(&pool, job.id).await.unwrap();
    let reference = queued.executor_ref.clone().unwrap();
    // Within its timeout, a job Nomad cannot place is only pending.
    let report = track_round(
        &pool,
        &executor,
        &StatusTimeouts::default(),
        no_backoff(),
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!((report.tracked, report.settled), (1, 0));
    let strict = StatusTimeouts(vec![(JobStatus::Queued, Duration::ZERO)]);
    let after = track_until(&pool, &executor, &strict, job.id, |j| {
        j.status != JobStatus::Queued
    })
    .await;
    assert_eq!((after.status, after.attempt), (JobStatus::Ready, 2));
    assert!(
        was_stopped(&emulator, &reference).await,
        "the pending child is stopped"
    );
    let timeout = support::last_external_error(&pool, job.id).await;
    assert_eq!(timeout.error_subtype.as_deref(), Some("timeout"));
    assert_openapi_clean(&emulator).await;
}

/// The instance dispatches and dies before recording it: another instance, once the lease ran out,
/// dispatches the same token and Nomad answers with the child that already exists.
#[sqlx::test(migrations = "../sql")]
async fn a_crash_between_dispatch_and_record_never_dispatches_twice(pool: PgPool) {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 10), vec![flavor()]);
    let job = ready_job(&pool, "crash", 3).await;
    emulator
        .script(
            PARENT,
            &[("job_id", &job.id.to_string())],
            Outcome::RunUntilStopped,
        )
        .await;
    let dead = claimant(Duration::from_secs(600));
    let claimed = claim_ready_jobs(&pool, &dead, &types(), 1)
        .await
        .unwrap()
        .remove(0);
    let token = issue_bootstrap_token(
        &pool,
        claimed.id,
        claimed.attempt,
        dead.service_id,
        dead.lease,
    )
    .await
    .unwrap()
    .unwrap();
    let first = executor
        .dispatch(&DispatchRequest {
            job_id: claimed.id,
            job_type: "test_job".into(),
            attempt: 1,
            idempotency_token: claimed.attempt_token(),
            worker_token: token,
            flavor: flavor(),
            nomad_job: "test-job-processing".into(),
        })
        .await
        .unwrap();
    // ... the instance dies here; its lease runs out.
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1")
        .bind(claimed.id)
        .execute(&pool)
        .await
        .unwrap();
    let report = dispatch(&pool, &executor, &claimant(Duration::from_secs(600))).await;
    assert_eq!((report.claimed, report.queued), (1, 1), "{report:?}");
    let recorded = get_job(&pool, job.id).await.unwrap();
    assert_eq!(
        (recorded.status, recorded.executor_ref.as_deref()),
        (JobStatus::Queued, Some(first.as_str()))
    );
    assert_eq!(
        emulator.dispatches().await.len(),
        1,
        "Nomad created one child"
    );
    let replays = emulator
        .requests()
        .await
        .iter()
        .filter(|r| r.method != "GET" && r.path.ends_with("/dispatch"))
        .count();
    assert_eq!(
        replays, 2,
        "the second dispatch was sent and answered by the token"
    );
    assert_openapi_clean(&emulator).await;
}

#[tokio::test]
async fn changes_are_observed_with_blocking_queries_not_polling() {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 4), vec![flavor()]);
    emulator
        .script(PARENT, &[("job_id", "5")], Outcome::RunUntilStopped)
        .await;
    let reference = executor
        .dispatch(&DispatchRequest {
            job_id: 5,
            job_type: "test_job".into(),
            attempt: 1,
            idempotency_token: "00000000-0000-4000-8000-000000000005-1".into(),
            worker_token: "t".into(),
            flavor: flavor(),
            nomad_job: "test-job-processing".into(),
        })
        .await
        .unwrap();
    let deadline = Duration::from_secs(20);
    let start = Instant::now();
    while executor.outcome(&reference).await.unwrap() != AttemptOutcome::Running {
        assert!(start.elapsed() < deadline, "the child started");
        tokio::time::timeout(Duration::from_millis(100), executor.changed())
            .await
            .ok();
    }
    // Catch up with the cluster: once nothing moves, a watch is held.
    while tokio::time::timeout(Duration::from_millis(300), executor.changed())
        .await
        .is_ok()
    {
        assert!(start.elapsed() < deadline, "the cluster settled");
    }
    let blocked_before = emulator.requests().await.len();
    let watch = executor.changed();
    tokio::pin!(watch);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut watch)
            .await
            .is_err(),
        "nothing changed: the query is held"
    );
    executor.stop(&reference).await.unwrap();
    tokio::time::timeout(deadline, watch)
        .await
        .expect("the stop wakes the watcher");
    let summaries = emulator.requests().await[blocked_before..]
        .iter()
        .filter(|r| r.path.ends_with("/summary"))
        .count();
    assert!(summaries <= 2, "one held query, not a poll: {summaries}");
    assert_openapi_clean(&emulator).await;
}

/// A parent job that is missing (never registered, or purged) is watched like one that exists:
/// Nomad answers the 404 of its summary with `X-Nomad-Index` (`command/agent/job_endpoint.go`
/// `jobSummaryRequest` sets the query meta before the 404), so the next query blocks on that index
/// instead of index 0, which Nomad answers at once. Over a window of a second, the dispatch and
/// tracking loops send a handful of requests, not hundreds.
#[sqlx::test(migrations = "../sql")]
async fn a_missing_parent_is_watched_with_blocking_queries_not_hammered(pool: PgPool) {
    use std::sync::Arc;
    use swath_engine::db::tracking::TrackScope;
    use swath_engine::pipeline::execution::{dispatch_loop, track_loop, DispatchLoop, TrackLoop};

    let emulator = emulator().await;
    let executor: Arc<dyn Executor> =
        Arc::new(NomadExecutor::new(config(&emulator, 4), vec![flavor()]));
    let interval = Duration::from_secs(600);
    let claimant = claimant(Duration::from_secs(600));
    let dispatching = DispatchLoop {
        executor: executor.clone(),
        registry: Arc::new(registry()),
        enabled: types(),
        flavors: vec![flavor()],
        claimant: claimant.clone(),
        backoff: no_backoff(),
        interval,
    };
    let tracking = TrackLoop {
        executor,
        timeouts: StatusTimeouts::default(),
        backoff: no_backoff(),
        scope: TrackScope::OwnedOrOrphaned(claimant.service_id),
        batch: 100,
        interval,
    };
    let before = emulator.requests().await.len();
    // The measuring window: both loops run for one second, then are dropped.
    let window = Duration::from_secs(1);
    let loops = futures_util::future::join(
        dispatch_loop(&pool, dispatching, std::future::pending()),
        track_loop(&pool, tracking, std::future::pending()),
    );
    assert!(tokio::time::timeout(window, loops).await.is_err());
    let sent = emulator.requests().await.len() - before;
    assert!(
        sent <= 10,
        "the loops sent {sent} requests in {window:?} while the parent is missing"
    );
    assert!(emulator.registered_job("default", PARENT).await.is_none());
    assert_openapi_clean(&emulator).await;
}

/// An operator stops the parent (`nomad job stop swath-worker-tiny`): Nomad refuses every dispatch
/// with 500 `Specified job "…" is stopped` (`nomad/job_endpoint.go` `Dispatch`) until the job is
/// registered again, so the executor registers it again and dispatches.
#[tokio::test]
async fn a_stopped_parent_is_registered_again_and_the_dispatch_goes_through() {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 4), vec![flavor()]);
    executor.register_all().await.unwrap();
    let stopped = reqwest::Client::new()
        .delete(format!("{}/v1/job/{PARENT}", emulator.url()))
        .send()
        .await
        .unwrap();
    assert!(stopped.status().is_success());
    assert_eq!(
        emulator.registered_job("default", PARENT).await.unwrap()["Stop"],
        true
    );
    let reference = executor
        .dispatch(&DispatchRequest {
            job_id: 11,
            job_type: "test_job".into(),
            attempt: 1,
            idempotency_token: "00000000-0000-4000-8000-000000000011-1".into(),
            worker_token: "t".into(),
            flavor: flavor(),
            nomad_job: "test-job-processing".into(),
        })
        .await
        .expect("the stopped parent is registered again, then dispatched");
    assert!(reference.starts_with(&format!("nomad/{PARENT}/dispatch-")));
    assert_eq!(
        emulator.registered_job("default", PARENT).await.unwrap()["Stop"],
        false
    );
    assert_eq!(emulator.dispatches().await.len(), 1);
    assert_openapi_clean(&emulator).await;
}

/// The same-token race: a dispatch that timed out on swath's side commits late, and its replay
/// (same idempotency token) is answered with the ID of a child Nomad dropped at apply time
/// (`nomad/fsm.go` `applyUpsertJob`, `nomad/job_endpoint.go` `Dispatch`). The child swath
/// recorded never exists; before calling the attempt vanished, the executor dispatches again with
/// the same token, which names the child that does run, and follows (and stops) that one.
#[tokio::test]
async fn a_dispatch_answered_with_a_dropped_child_is_resolved_through_its_token() {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 4), vec![flavor()]);
    emulator
        .script(PARENT, &[("job_id", "12")], Outcome::RunUntilStopped)
        .await;
    emulator.race_next_dispatch().await;
    let token = "00000000-0000-4000-8000-000000000012-1";
    let reference = executor
        .dispatch(&DispatchRequest {
            job_id: 12,
            job_type: "test_job".into(),
            attempt: 1,
            idempotency_token: token.into(),
            worker_token: "t".into(),
            flavor: flavor(),
            nomad_job: "test-job-processing".into(),
        })
        .await
        .unwrap();
    let created = emulator.dispatches().await;
    assert_eq!(created.len(), 1);
    let real = format!("nomad/{}", created[0].child_id);
    assert_ne!(reference, real, "the answer names the dropped child");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = executor.outcome(&reference).await.unwrap();
        assert_ne!(
            outcome,
            AttemptOutcome::Unknown,
            "the attempt is not vanished"
        );
        if outcome == AttemptOutcome::Running {
            break;
        }
        assert!(Instant::now() < deadline, "the child runs: {outcome:?}");
        tokio::time::timeout(Duration::from_millis(100), executor.changed())
            .await
            .ok();
    }
    assert_eq!(emulator.dispatches().await.len(), 1, "no second child");
    let with_token: Vec<_> = emulator
        .requests()
        .await
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.ends_with("/dispatch"))
        .collect();
    assert_eq!(with_token.len(), 2, "dispatched again once");
    assert!(with_token
        .iter()
        .all(|r| r.query.contains(&format!("idempotency_token={token}"))));
    executor.stop(&reference).await.unwrap();
    assert!(
        was_stopped(&emulator, &real).await,
        "the running child is stopped"
    );
    assert_openapi_clean(&emulator).await;
}

/// The allocations of a child, as Nomad lists them.
async fn child_allocations(emulator: &NomadEmulator, reference: &str) -> Vec<serde_json::Value> {
    let child = reference.strip_prefix("nomad/").unwrap();
    let escaped = percent_encoding::utf8_percent_encode(child, percent_encoding::NON_ALPHANUMERIC);
    reqwest::get(format!("{}/v1/job/{escaped}/allocations", emulator.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An operator runs `nomad alloc stop` on a running attempt: Nomad migrates the allocation,
/// placing a replacement whatever the reschedule policy (`nomad/alloc_endpoint.go` `Stop`,
/// `scheduler/reconciler/filters.go`), which would run the same attempt a second time. The
/// executor stops the child as soon as it sees the second allocation, and reads the attempt's
/// outcome from the first one (stopped), never from the replacement (whose worker would be refused
/// its bootstrap secret and exit 0 as superseded).
#[tokio::test]
async fn an_allocation_stopped_by_an_operator_is_not_run_again_by_its_replacement() {
    let emulator = emulator().await;
    let executor = NomadExecutor::new(config(&emulator, 4), vec![flavor()]);
    emulator
        .script(PARENT, &[("job_id", "13")], Outcome::RunUntilStopped)
        .await;
    let reference = executor
        .dispatch(&DispatchRequest {
            job_id: 13,
            job_type: "test_job".into(),
            attempt: 1,
            idempotency_token: "00000000-0000-4000-8000-000000000013-1".into(),
            worker_token: "t".into(),
            flavor: flavor(),
            nomad_job: "test-job-processing".into(),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while executor.outcome(&reference).await.unwrap() != AttemptOutcome::Running {
        assert!(Instant::now() < deadline, "the child started");
        tokio::time::timeout(Duration::from_millis(100), executor.changed())
            .await
            .ok();
    }
    let allocations = child_allocations(&emulator, &reference).await;
    assert_eq!(allocations.len(), 1);
    let first = allocations[0]["ID"].as_str().unwrap().to_string();
    let stopped = reqwest::Client::new()
        .post(format!("{}/v1/allocation/{first}/stop", emulator.url()))
        .send()
        .await
        .unwrap();
    assert!(stopped.status().is_success());

    let outcome = loop {
        let outcome = executor.outcome(&reference).await.unwrap();
        if !matches!(outcome, AttemptOutcome::Running | AttemptOutcome::Pending) {
            break outcome;
        }
        assert!(
            Instant::now() < deadline,
            "the attempt still looks alive: {outcome:?}"
        );
        tokio::time::timeout(Duration::from_millis(100), executor.changed())
            .await
            .ok();
    };
    assert_eq!(
        outcome,
        AttemptOutcome::Failed(format!("allocation {first} was stopped")),
        "the outcome is the first allocation's"
    );
    assert!(
        was_stopped(&emulator, &reference).await,
        "the child is stopped"
    );
    // The replacement was placed, and is stopped with its job.
    loop {
        let allocations = child_allocations(&emulator, &reference).await;
        let replacements: Vec<_> = allocations.iter().filter(|a| a["ID"] != first).collect();
        if !replacements.is_empty() && replacements.iter().all(|a| a["DesiredStatus"] == "stop") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replacement keeps running: {allocations:#?}"
        );
        tokio::time::timeout(Duration::from_millis(100), executor.changed())
            .await
            .ok();
    }
    assert_openapi_clean(&emulator).await;
}
