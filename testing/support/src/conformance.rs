//! The executor conformance suite: the contract every executor honours, run against each one
//! through a [`Harness`] that scripts what the attempt does.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use swath_domain::flavor::WorkerFlavor;
use swath_engine::executor::{AttemptOutcome, DispatchRequest, Executor, ExecutorError};

/// A worker stand-in for the local executor: reads `<dir>/<job id>` ("N" to exit with code N, "run"
/// to run until stopped) and counts its starts in `<dir>/<job id>.starts`.
const STAND_IN: &str = r#"dir="$1"; echo start >> "$dir/$SWATH_WORKER_JOB_ID.starts"
case "$(cat "$dir/$SWATH_WORKER_JOB_ID")" in
  run) exec sleep 600 ;;
  *) exit "$(cat "$dir/$SWATH_WORKER_JOB_ID")" ;;
esac"#;

/// The command that runs [`STAND_IN`] with its scripts in `dir`.
pub fn stand_in_worker(dir: &std::path::Path) -> swath_engine::executor::local::WorkerCommand {
    swath_engine::executor::local::WorkerCommand {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            STAND_IN.into(),
            "stand-in".into(),
            dir.display().to_string(),
        ],
    }
}

/// What a scripted attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Exits at once with this code.
    Exit(i32),
    /// Runs until stopped.
    RunUntilStopped,
}

/// An executor under test, and a way to script its attempts.
#[async_trait]
pub trait Harness: Sync {
    /// The executor.
    fn executor(&self) -> &dyn Executor;
    /// The flavor the suite dispatches on (with exactly one slot).
    fn flavor(&self) -> WorkerFlavor;
    /// Makes the attempt of `job_id` behave as `behaviour`.
    async fn script(&self, job_id: i64, behaviour: Behaviour);
    /// How many times an attempt of `job_id` actually started.
    async fn starts(&self, job_id: i64) -> usize;
}

fn request(h: &dyn Harness, job_id: i64) -> DispatchRequest {
    DispatchRequest {
        job_id,
        job_type: "test_job".into(),
        attempt: 1,
        idempotency_token: format!("00000000-0000-4000-8000-{job_id:012}-1"),
        worker_token: "secret".into(),
        flavor: h.flavor(),
        nomad_job: "test-job-processing".into(),
    }
}

async fn settle(executor: &dyn Executor, reference: &str) -> AttemptOutcome {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = executor.outcome(reference).await.unwrap();
        if !matches!(outcome, AttemptOutcome::Pending | AttemptOutcome::Running) {
            return outcome;
        }
        assert!(Instant::now() < deadline, "{reference} did not end in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn running(executor: &dyn Executor, reference: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while executor.outcome(reference).await.unwrap() != AttemptOutcome::Running {
        assert!(
            Instant::now() < deadline,
            "{reference} did not start in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the whole suite; panics on the first breach of the contract.
pub async fn run_conformance(h: &dyn Harness) {
    let ex = h.executor();
    let flavor = h.flavor().name;

    // Exit codes come back exactly.
    for (job_id, code) in [(1, 0), (2, 2), (3, 1)] {
        h.script(job_id, Behaviour::Exit(code)).await;
        let reference = ex.dispatch(&request(h, job_id)).await.unwrap();
        assert_eq!(
            settle(ex, &reference).await,
            AttemptOutcome::Exited(code),
            "job {job_id}"
        );
    }

    // Dispatch is idempotent on the token: the same attempt never starts twice.
    h.script(4, Behaviour::Exit(0)).await;
    let first = ex.dispatch(&request(h, 4)).await.unwrap();
    settle(ex, &first).await;
    let again = ex.dispatch(&request(h, 4)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(h.starts(4).await, 1, "dispatched twice, started once");

    // A running attempt takes its slot; a stopped one gives it back and ends without an exit code.
    h.script(5, Behaviour::RunUntilStopped).await;
    let reference = ex.dispatch(&request(h, 5)).await.unwrap();
    running(ex, &reference).await;
    assert_eq!(ex.capacity().await.unwrap()[&flavor], 0);
    h.script(6, Behaviour::Exit(0)).await;
    let refused = ex.dispatch(&request(h, 6)).await;
    assert!(
        matches!(refused, Err(ExecutorError::Unavailable(_))),
        "no slot: {refused:?}"
    );
    ex.stop(&reference).await.unwrap();
    assert!(
        matches!(settle(ex, &reference).await, AttemptOutcome::Failed(_)),
        "stopped"
    );
    assert_eq!(ex.capacity().await.unwrap()[&flavor], 1);
    ex.stop(&reference).await.unwrap();

    // Unknown references and flavors.
    assert_eq!(
        ex.outcome("never-dispatched").await.unwrap(),
        AttemptOutcome::Unknown
    );
    let mut bad = request(h, 7);
    bad.flavor.name = "no-such-flavor".into();
    assert!(matches!(
        ex.dispatch(&bad).await,
        Err(ExecutorError::Refused(_))
    ));
}
