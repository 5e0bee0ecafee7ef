//! How attempts end on Nomad, against the emulator: a worker killed by a signal (raw_exec's exit
//! code `128 + signal` with `Signal` set) is an external failure and is retried, never the worker's
//! own exit code; and the client caps a task's kill timeout at its `max_kill_timeout`.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath_domain::flavor::{default_flavors, WorkerFlavor};
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use swath_engine::attempt::failure::{AttemptBackoff, StatusTimeouts};
use swath_engine::config::Settings;
use swath_engine::db::claim::Claimant;
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::executor::nomad::spec::WorkerJobSettings;
use swath_engine::executor::nomad::{NomadConfig, NomadExecutor};
use swath_engine::executor::{AttemptOutcome, DispatchRequest, Executor};
use swath_engine::pipeline::dispatch::dispatch_round;
use swath_engine::pipeline::track::track_round;

use support::drive;
use support::nomad_emulator::{EmulatorOptions, NomadEmulator, Outcome};

/// The smallest shipped flavor: every test job runs on it.
fn flavor() -> WorkerFlavor {
    default_flavors()
        .into_iter()
        .next()
        .expect("a default flavor")
}

fn parent() -> String {
    format!("swath-worker-{}", flavor().name)
}

fn config(emulator: &NomadEmulator, kill_timeout: Duration) -> NomadConfig {
    NomadConfig {
        address: emulator.url().parse().unwrap(),
        token: None,
        region: None,
        jobs: WorkerJobSettings {
            kill_timeout,
            ..WorkerJobSettings::default()
        },
        max_in_flight: 10,
        purge_on_stop: false,
        request_timeout: Duration::from_secs(10),
        watch_wait: Duration::from_secs(5),
    }
}

fn registry() -> swath_domain::registry::JobTypeRegistry {
    let settings = Settings {
        job_type_settings: [(
            "test_job".to_string(),
            toml::from_str(&format!("worker_flavor = \"{}\"", flavor().name)).unwrap(),
        )]
        .into(),
        ..Settings::default()
    };
    settings.registry().unwrap()
}

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

async fn dispatch(pool: &PgPool, executor: &NomadExecutor) {
    let claimant = Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: serde_json::json!({"host": "test", "name": "swath"}),
        lease: Duration::from_secs(600),
    };
    let report = dispatch_round(
        pool,
        executor,
        &registry(),
        &["test_job".to_string()],
        &[flavor()],
        &claimant,
        no_backoff(),
    )
    .await
    .unwrap();
    assert_eq!(report.queued, 1, "{report:?}");
}

/// Tracks until job `id` satisfies `done` (bounded), and returns it.
async fn track_until(
    pool: &PgPool,
    executor: &NomadExecutor,
    id: i64,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let timeouts = StatusTimeouts::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        track_round(pool, executor, &timeouts, no_backoff(), None, 100)
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

/// The task events of the (only) allocation of `child`, as Nomad's HTTP API returns them.
async fn task_events(emulator: &NomadEmulator, child: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/v1/job/{child}/allocations", emulator.url());
    let allocs: Vec<serde_json::Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(allocs.len(), 1, "{allocs:#?}");
    let states = allocs[0]["TaskStates"].as_object().expect("task states");
    states
        .values()
        .flat_map(|s| s["Events"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[sqlx::test(migrations = "../sql")]
async fn a_worker_killed_by_a_signal_is_retried_not_failed_for_its_exit_code(pool: PgPool) {
    let emulator = NomadEmulator::start(EmulatorOptions::default()).await;
    let executor = NomadExecutor::new(config(&emulator, Duration::from_secs(30)), vec![flavor()]);
    let job = ready_job(&pool, "sigkilled", 3).await;
    emulator
        .script(
            &parent(),
            &[("job_id", &job.id.to_string())],
            Outcome::Signalled {
                signal: 9,
                after: Duration::from_millis(20),
            },
        )
        .await;
    dispatch(&pool, &executor).await;

    let job = track_until(&pool, &executor, job.id, |j| j.status != JobStatus::Queued).await;
    assert_eq!(
        (job.status, job.attempt),
        (JobStatus::Ready, 2),
        "a SIGKILLed worker (exit code 137, signal 9) is retried: {:?} {:?}",
        job.status_error_subtype,
        job.status_message
    );
    let error = support::last_external_error(&pool, job.id).await;
    let message = error.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("signal 9"), "{error:?}");

    // The emulator reports the kill exactly as raw_exec does.
    let child = emulator.dispatches().await[0].child_id.clone();
    let events = task_events(&emulator, &child).await;
    let terminated = events
        .iter()
        .find(|e| e["Type"] == "Terminated")
        .expect("a Terminated event");
    assert_eq!(terminated["ExitCode"], 137);
    assert_eq!(terminated["Signal"], 9);
    assert_eq!(terminated["DisplayMessage"], "Exit Code: 137, Signal: 9");
    assert_eq!(terminated["Details"]["exit_code"], "137");
    assert_eq!(terminated["Details"]["signal"], "9");
    assert_eq!(terminated["Details"]["oom_killed"], "false");
}

#[tokio::test]
async fn the_client_cuts_a_kill_timeout_above_its_max_kill_timeout() {
    let emulator = NomadEmulator::start(EmulatorOptions::default()).await;
    // A kill timeout above Nomad's default max_kill_timeout (30 s), as an operator could register.
    let executor = NomadExecutor::new(config(&emulator, Duration::from_secs(60)), vec![flavor()]);
    emulator
        .script(&parent(), &[], Outcome::RunUntilStopped)
        .await;
    let request = DispatchRequest {
        job_id: 1,
        job_type: "test_job".into(),
        attempt: 1,
        idempotency_token: "uid-1".into(),
        worker_token: "bootstrap".into(),
        flavor: flavor(),
        nomad_job: "test_job".into(),
    };
    let reference = executor.dispatch(&request).await.unwrap();
    let child = emulator.dispatches().await[0].child_id.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while executor.outcome(&reference).await.unwrap() != AttemptOutcome::Running {
        assert!(Instant::now() < deadline, "the child never ran");
        tokio::time::timeout(Duration::from_millis(200), executor.changed())
            .await
            .ok();
    }
    executor.stop(&reference).await.unwrap();
    let killing = loop {
        let events = task_events(&emulator, &child).await;
        if let Some(killing) = events.iter().find(|e| e["Type"] == "Killing") {
            break killing.clone();
        }
        assert!(Instant::now() < deadline, "no Killing event: {events:#?}");
        tokio::time::timeout(Duration::from_millis(200), executor.changed())
            .await
            .ok();
    };
    assert_eq!(killing["KillTimeout"], 30_000_000_000i64, "{killing:#}");
    assert_eq!(killing["Details"]["kill_timeout"], "30s");
    assert_eq!(
        killing["DisplayMessage"],
        "Sent interrupt. Waiting 30s before force killing"
    );
}
