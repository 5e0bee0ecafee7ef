//! The executor conformance suite against the local executor, with a worker stand-in script.

use std::path::PathBuf;

use async_trait::async_trait;
use swath_domain::flavor::WorkerFlavor;
use swath_engine::executor::local::{LocalExecutor, WorkerCommand};
use swath_engine::executor::Executor;

use support::conformance::{run_conformance, stand_in_worker, Behaviour, Harness};
use support::tiny_flavor;

struct LocalHarness {
    dir: tempfile::TempDir,
    executor: LocalExecutor,
}

#[async_trait]
impl Harness for LocalHarness {
    fn executor(&self) -> &dyn Executor {
        &self.executor
    }
    fn flavor(&self) -> WorkerFlavor {
        tiny_flavor()
    }
    async fn script(&self, job_id: i64, behaviour: Behaviour) {
        let text = match behaviour {
            Behaviour::Exit(code) => code.to_string(),
            Behaviour::RunUntilStopped => "run".into(),
        };
        std::fs::write(self.dir.path().join(job_id.to_string()), text).unwrap();
    }
    async fn starts(&self, job_id: i64) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("{job_id}.starts")))
            .map_or(0, |t| t.lines().count())
    }
}

#[tokio::test]
async fn the_local_executor_honours_the_executor_contract() {
    let dir = tempfile::tempdir().unwrap();
    let command = stand_in_worker(dir.path());
    let executor = LocalExecutor::new(
        command,
        "http://127.0.0.1:9".into(),
        dir.path().join("work"),
        vec![tiny_flavor()],
    );
    run_conformance(&LocalHarness { dir, executor }).await;
}

#[tokio::test]
async fn a_worker_that_cannot_start_is_an_executor_error() {
    let command = WorkerCommand {
        program: PathBuf::from("/nonexistent/swath-worker"),
        args: vec![],
    };
    let executor = LocalExecutor::new(
        command,
        "http://127.0.0.1:9".into(),
        std::env::temp_dir(),
        vec![tiny_flavor()],
    );
    let request = swath_engine::executor::DispatchRequest {
        job_id: 1,
        job_type: "test_job".into(),
        attempt: 1,
        idempotency_token: "t-1".into(),
        worker_token: "secret".into(),
        flavor: tiny_flavor(),
        nomad_job: "x".into(),
    };
    let err = executor.dispatch(&request).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot start /nonexistent/swath-worker"),
        "{err}"
    );
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn stopping_an_attempt_stops_everything_its_worker_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let command = WorkerCommand {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            format!("sleep 600 & echo $! > {}; wait", pid_file.display()),
        ],
    };
    let executor = LocalExecutor::new(
        command,
        "http://127.0.0.1:9".into(),
        dir.path().join("work"),
        vec![tiny_flavor()],
    );
    let request = swath_engine::executor::DispatchRequest {
        job_id: 1,
        job_type: "test_job".into(),
        attempt: 1,
        idempotency_token: "t-1".into(),
        worker_token: "secret".into(),
        flavor: tiny_flavor(),
        nomad_job: "x".into(),
    };
    let reference = executor.dispatch(&request).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let grandchild: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "the worker started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(!gone(grandchild));
    executor.stop(&reference).await.unwrap();
    while !gone(grandchild) {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker's own child was stopped with it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(matches!(
        executor.outcome(&reference).await.unwrap(),
        swath_engine::executor::AttemptOutcome::Failed(_)
            | swath_engine::executor::AttemptOutcome::Running
    ));
}
